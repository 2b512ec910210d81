"""The PostgreSQL mock server reading frames, without sockets: a client's bytes in, the answer out.

Transcripts of whole sessions: hits answered with the recorded bytes, statement names resolved,
a miss in the extended protocol skipping to Sync, request noise, malformed bytes, and the same
answers whether the client's bytes come whole or byte by byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from tests.helpers.scripted import Scripted

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import LinkKind, Mock, WireResponse
from wiretape.protocols.postgres.codec import NEED_DATA, BackendParser, encode
from wiretape.protocols.postgres.exchange import (
    message_doc,
    request_for,
    startup_request,
    with_request_noise,
)
from wiretape.protocols.postgres.messages import (
    BackendMessage,
    Bind,
    BindComplete,
    CommandComplete,
    DataRow,
    Describe,
    ErrorResponse,
    Execute,
    FieldDescription,
    Flush,
    FrontendMessage,
    ObjectKind,
    ParameterStatus,
    Parse,
    ParseComplete,
    Query,
    ReadyForQuery,
    RowDescription,
    StartupMessage,
    Sync,
    Terminate,
    TransactionStatus,
)
from wiretape.proxy.postgres import PgMockServer

STARTUP = StartupMessage((("user", "app"),))
SQL = "SELECT name FROM users WHERE id = $1"
IDLE = ReadyForQuery(TransactionStatus.IDLE)
ROWS = RowDescription((FieldDescription("name", 0, 0, 25, -1, -1, 0),))


def mock(n: int, steps: list[Any], answer: list[BackendMessage]) -> Mock:
    stored = json.loads(json.dumps({"messages": [message_doc(m) for m in answer]}))
    return Mock(
        f"db-{n:04d}",
        "db",
        "postgres",
        request_for(json.loads(json.dumps(steps))),
        WireResponse(stored),
        None,
        LinkKind.SESSION,
    )


def extended(sql: str, param: bytes, name: str = "") -> list[FrontendMessage]:
    return [
        Parse(name, sql, ()),
        Bind("", name, (), (param,), ()),
        Describe(ObjectKind.PORTAL, ""),
        Execute("", 0),
        Sync(),
    ]


def steps_of(sql: str, param: str) -> list[Any]:
    return [
        {"parse": sql},
        {"bind": sql, "params": [param]},
        {"describe_portal": ""},
        {"execute": 0},
        "sync",
    ]


def answer(name: bytes) -> list[BackendMessage]:
    return [
        ParseComplete(),
        BindComplete(),
        ROWS,
        DataRow((name,)),
        CommandComplete("SELECT 1"),
        IDLE,
    ]


START = [ParameterStatus("server_version", "15.0"), IDLE]


def start_mock() -> Mock:
    return Mock(
        "db-start",
        "db",
        "postgres",
        startup_request(STARTUP),
        WireResponse({"messages": [message_doc(m) for m in START]}),
        None,
        LinkKind.SESSION,
    )


def server(mocks: list[Mock], noise: tuple[tuple[str, tuple[int, ...]], ...] = ()) -> PgMockServer:
    index = MockIndex([start_mock(), *mocks], {})
    index.begin_test(None)
    dep = DepConfig("db", "postgres", "127.0.0.1:1", request_noise=noise)
    return PgMockServer(dep, index, ca=None)


def session(srv: PgMockServer, messages: list[FrontendMessage], *, split: bool = False) -> bytes:
    data = encode(STARTUP) + b"".join(encode(m) for m in messages)
    chunks = [data[i : i + 1] for i in range(len(data))] if split else [data]
    stream = Scripted(chunks)
    asyncio.run(srv.serve(stream))
    return bytes(stream.sent)


def answers(sent: bytes) -> list[BackendMessage]:
    parser = BackendParser()
    parser.feed(sent)
    out = []
    while (m := parser.next_event()) is not NEED_DATA:
        assert not isinstance(m, type(NEED_DATA))
        out.append(m)
    return out


def encoded(*messages: BackendMessage) -> bytes:
    return b"".join(encode(m) for m in messages)


OPENING = encoded(*[m for m in [*START]])


@pytest.mark.parametrize("split", [False, True])
def test_recorded_batches_get_their_recorded_bytes(split: bool) -> None:
    srv = server(
        [mock(1, steps_of(SQL, "1"), answer(b"ann")), mock(2, steps_of(SQL, "2"), answer(b"bob"))]
    )
    sent = session(srv, [*extended(SQL, b"2"), *extended(SQL, b"1"), Terminate()], split=split)
    ok = b"R\x00\x00\x00\x08\x00\x00\x00\x00"  # AuthenticationOk
    assert sent == ok + OPENING + encoded(*answer(b"bob")) + encoded(*answer(b"ann"))


def test_a_named_statement_is_matched_by_its_sql() -> None:
    prepare: list[Any] = [{"parse": SQL, "statement": "lookup"}, "sync"]
    use: list[Any] = [
        {"bind": SQL, "statement": "lookup", "params": ["7"]},
        {"execute": 0},
        "sync",
    ]
    srv = server(
        [
            mock(1, prepare, [ParseComplete(), IDLE]),
            mock(2, use, [BindComplete(), DataRow((b"x",)), CommandComplete("SELECT 1"), IDLE]),
        ]
    )
    sent = session(
        srv,
        [
            Parse("lookup", SQL, ()),
            Sync(),
            Bind("", "lookup", (), (b"7",), ()),
            Execute("", 0),
            Sync(),
        ],
    )
    assert answers(sent)[-4:] == [
        BindComplete(),
        DataRow((b"x",)),
        CommandComplete("SELECT 1"),
        IDLE,
    ]


def test_a_miss_skips_the_rest_up_to_sync() -> None:
    srv = server([mock(1, steps_of(SQL, "1"), answer(b"ann"))])
    missed = [Parse("", "SELECT 2", ()), Bind("", "", (), (), ()), Execute("", 0), Flush()]
    got = answers(session(srv, [*missed, Execute("", 0), Sync(), *extended(SQL, b"1")]))
    error = got[3]
    assert isinstance(error, ErrorResponse) and error.sqlstate == "WT001"
    assert "SELECT 2" in (error.message or "")
    assert got[4:] == [IDLE, *answer(b"ann")]  # the Execute before the Sync is skipped


def test_request_noise_ignores_the_named_parameter() -> None:
    insert = "INSERT INTO log VALUES ($1, $2)"
    noise = ((insert, (2,)),)
    steps: list[Any] = [
        {"parse": insert},
        {"bind": insert, "params": ["a", "r1"]},
        {"execute": 0},
        "sync",
    ]
    recorded = mock(
        1, steps, [ParseComplete(), BindComplete(), CommandComplete("INSERT 0 1"), IDLE]
    )
    masked = with_request_noise(recorded.request, noise)  # as replay keys the recordings
    srv = server([dataclasses.replace(recorded, request=masked)], noise)
    live = [Parse("", insert, ()), Bind("", "", (), (b"a", b"r2"), ()), Execute("", 0), Sync()]
    assert answers(session(srv, live))[-3:] == [BindComplete(), CommandComplete("INSERT 0 1"), IDLE]
    other = [Parse("", insert, ()), Bind("", "", (), (b"b", b"r2"), ()), Execute("", 0), Sync()]
    error = answers(session(srv, other))[-2]
    assert isinstance(error, ErrorResponse) and error.sqlstate == "WT001"


def test_a_simple_query_and_a_lone_flush() -> None:
    steps: list[Any] = [{"query": "select 1"}]
    srv = server([mock(1, steps, [ROWS, DataRow((b"1",)), CommandComplete("SELECT 1"), IDLE])])
    sent = session(srv, [Flush(), Query("SELECT  1"), Terminate(), Query("ignored")])
    assert answers(sent)[-4:] == [ROWS, DataRow((b"1",)), CommandComplete("SELECT 1"), IDLE]


@pytest.mark.parametrize(
    "tail",
    [
        b"Z\x00\x00\x00\x04",  # not a client message type
        encode(Bind("", "", (), (b"1",), ()))[:-3] + b"\x00\x09\x00",  # a value past the end
        b"Q\x00\x00\x00\x02",  # a length below 4
    ],
)
def test_malformed_bytes_get_08P01_and_the_connection_ends(tail: bytes) -> None:
    srv = server([mock(1, steps_of(SQL, "1"), answer(b"ann"))])
    data = encode(STARTUP) + encoded(*extended(SQL, b"1")) + tail + encoded(*extended(SQL, b"1"))
    stream = Scripted([data])
    asyncio.run(srv.serve(stream))
    got = answers(bytes(stream.sent))
    assert got[-7:-1] == answer(b"ann")
    last = got[-1]
    assert isinstance(last, ErrorResponse) and last.sqlstate == "08P01"


def test_answers_are_encoded_before_the_first_connection() -> None:
    in_test = dataclasses.replace(mock(3, steps_of(SQL, "3"), answer(b"cy")), test="0001-get")
    other = dataclasses.replace(mock(4, steps_of(SQL, "4"), answer(b"di")), dep="cache")
    index = MockIndex(
        [start_mock(), mock(1, steps_of(SQL, "1"), answer(b"ann")), other],
        {"0001-get": [in_test]},
    )
    srv = PgMockServer(DepConfig("db", "postgres", "127.0.0.1:1"), index, ca=None)
    assert srv.encoded["db-0001"] == (encoded(*answer(b"ann")), TransactionStatus.IDLE)
    assert srv.encoded["db-0003"] == (encoded(*answer(b"cy")), TransactionStatus.IDLE)
    assert "db-0004" not in srv.encoded  # another dependency's
    assert srv.invalid == {}


def test_a_recorded_answer_that_cannot_be_sent_gets_an_error_and_others_still_answer() -> None:
    broken = dataclasses.replace(
        mock(1, steps_of(SQL, "1"), answer(b"ann")),
        response=WireResponse({"messages": [{"Bogus": 1}]}),
    )
    srv = server([broken, mock(2, steps_of(SQL, "2"), answer(b"bob"))])
    assert "Bogus" in srv.invalid["db-0001"]
    got = answers(session(srv, [*extended(SQL, b"1"), *extended(SQL, b"2"), Terminate()]))
    error = got[3]
    assert isinstance(error, ErrorResponse)
    assert dict(error.fields)["C"] == "WT001"
    assert "db-0001 cannot be sent" in dict(error.fields)["M"]
    assert got[4] == IDLE
    assert got[5:] == answer(b"bob")
