"""PostgreSQL frames to steps, keys and stored answers (``protocols.postgres.frames``).

What the frame tables give must be what the decoded messages give: the same steps and keys, the
same stored answers, the same exchanges from the tracker, and the same bytes back from a stored
answer, with the same errors for stored data that cannot be replayed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.protocols.test_pg_exchange import CLIENT_POOL, SERVER_POOL
from tests.unit.protocols.test_postgres import typed_backend, typed_frontend

from wiretape.errors import ProtocolError
from wiretape.protocols.postgres.codec import BackendParser, FrontendParser, encode
from wiretape.protocols.postgres.exchange import (
    SERVER_TAGS,
    Exchange,
    Tracker,
    client_step,
    decode_messages,
    encode_messages,
    message_doc,
    request_for,
)
from wiretape.protocols.postgres.frames import ClientFrames, ServerFrames, encode_answer
from wiretape.protocols.postgres.messages import (
    AuthenticationOk,
    Bind,
    BindComplete,
    Close,
    CommandComplete,
    CopyFail,
    CopyInResponse,
    DataRow,
    Describe,
    Execute,
    FieldDescription,
    FrontendMessage,
    FunctionCall,
    NotificationResponse,
    ObjectKind,
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
from wiretape.protocols.wire import PlainError


def started_frontend() -> FrontendParser:
    parser = FrontendParser()
    parser.feed(encode(StartupMessage((("user", "u"),))))
    parser.next_event()
    return parser


def decode_client(frame: bytes, at: int) -> FrontendMessage:
    message: FrontendMessage = started_frontend().decode_frame(frame, at)
    return message


def decode_server(frame: bytes, at: int) -> Any:
    return BackendParser().decode_frame(frame, at)


def same_step(frames: ClientFrames, m: FrontendMessage, statements: dict[str, str]) -> None:
    got = frames.step(encode(m), 0, statements, decode_client)
    want = client_step(m, statements)
    assert got.stored() == want.step
    assert got.key == want.key == request_for([want.step]).key[0]
    assert (got.expect, got.flags, got.prepared, got.closed) == (
        want.expect,
        want.flags,
        want.prepared,
        want.closed,
    )


client_messages = st.one_of([s for cls, s in typed_frontend.items() if cls is not Terminate])
statement_maps = st.dictionaries(
    st.sampled_from(["", "s1", "_pg3_2", "S_1", "mine"]), st.sampled_from(["SELECT $1", "x"])
)


@given(st.lists(st.tuples(client_messages, statement_maps), max_size=6))
def test_client_frames_give_the_steps_of_their_messages(
    cases: list[tuple[FrontendMessage, dict[str, str]]],
) -> None:
    frames = ClientFrames()
    for m, statements in cases * 2:  # the second time from the table, where one is kept
        same_step(frames, m, statements)


def test_a_kept_frame_that_names_a_statement_resolves_it_every_time() -> None:
    frames = ClientFrames()
    describe = Describe(ObjectKind.STATEMENT, "s1")
    close = Close(ObjectKind.STATEMENT, "s1")
    for sql in ("SELECT 1", "SELECT 2"):
        for m in (describe, close, Bind("", "s1", (), (b"7",), ())):
            same_step(frames, m, {"s1": sql})


@settings(max_examples=200)
@given(st.lists(st.one_of(list(typed_backend.values())), max_size=8))
def test_server_frames_give_the_stored_form_of_their_messages(messages: list[Any]) -> None:
    frames = ServerFrames()
    for m in messages * 2:
        answer = frames.answer(encode(m), 0, decode_server)
        try:
            doc = message_doc(m)
        except PlainError:
            assert answer == m  # stored as the message: storing it raises, as before
        else:
            assert answer == (encode(m), doc)


def same_error(fast: Any, frame: bytes, decode: Any) -> None:
    with pytest.raises(ProtocolError) as got:
        fast()
    with pytest.raises(ProtocolError) as want:
        decode(frame, 100)
    assert (got.value.message, got.value.offset) == (want.value.message, want.value.offset)


def test_malformed_frames_raise_what_the_decoder_raises() -> None:
    bind = bytearray(encode(Bind("", "", (), (b"12",), ())))
    bind[-7] = 9  # a parameter length past the end
    row = encode(DataRow((b"1",)))
    row = row[:5] + b"\x00\x02" + row[7:]  # two values announced, one sent
    same_error(
        lambda: ClientFrames().step(bytes(bind), 100, {}, decode_client), bytes(bind), decode_client
    )
    same_error(lambda: ServerFrames().answer(row, 100, decode_server), row, decode_server)


# -- the tracker fed frames -----------------------------------------------------------------------


def exchange_view(e: Exchange) -> Any:
    try:
        stored = e.response_data()
    except PlainError as exc:
        stored = str(exc)
    return (
        e.request.data,
        e.request.key,
        stored,
        e.messages,
        e.wire(),
        e.message_count,
        e.started,
        e.ended,
        e.after,
    )


CLIENTS: list[FrontendMessage] = [
    *CLIENT_POOL,
    Query("LISTEN events"),
    Parse("mine", "LISTEN other", ()),
    Close(ObjectKind.STATEMENT, "_pg3_1"),
    Close(ObjectKind.PORTAL, ""),
    CopyFail("stop"),
    FunctionCall(7, (0,), (b"1",), 0),
]
SERVERS: list[Any] = [
    *SERVER_POOL,
    NotificationResponse(1, "events", "hi"),
    CopyInResponse(0, ()),
    AuthenticationOk(),  # never stored; stays a message
]


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=len(SERVERS) - 1)),
        max_size=60,
    )
)
def test_the_tracker_fed_frames_makes_the_exchanges_it_makes_from_messages(
    events: list[tuple[bool, int]],
) -> None:
    by_message, by_frame = Tracker(), Tracker()
    client_frames, server_frames = ClientFrames(), ServerFrames()
    a: list[Exchange] = []
    b: list[Exchange] = []
    for i, (from_client, n) in enumerate(events):
        if from_client:
            m = CLIENTS[n % len(CLIENTS)]
            a += by_message.client(m, float(i))
            info = client_frames.step(encode(m), 0, by_frame.statements, decode_client)
            b += by_frame.add_client(info, float(i))
        else:
            r = SERVERS[n]
            a += by_message.server(r, float(i))
            answer = server_frames.answer(encode(r), 0, decode_server)
            b += by_frame.add_server(SERVER_TAGS[type(r)], answer, float(i))
    a += by_message.close()
    b += by_frame.close()
    assert [exchange_view(e) for e in a] == [exchange_view(e) for e in b]


# -- stored answers back to bytes -----------------------------------------------------------------


def slow(data: Any) -> tuple[bytes, TransactionStatus | None]:
    messages = decode_messages(data)
    status = None
    for m in messages:
        if isinstance(m, ReadyForQuery):
            status = m.status
    return encode_messages(messages), status


storable = st.one_of(
    [s for cls, s in typed_backend.items() if not cls.__name__.startswith(("Auth", "SSL"))]
)


@settings(max_examples=300)
@given(st.lists(storable, max_size=10))
def test_encoded_answers_are_the_messages_bytes(messages: list[Any]) -> None:
    data = json.loads(json.dumps({"messages": [message_doc(m) for m in messages]}))
    assert encode_answer(data) == slow(data)
    assert encode_answer(data)[0] == b"".join(encode(m) for m in messages)


FIELD = {"name": "x", "type": 23, "size": 4, "modifier": -1, "format": 0, "table": 0, "column": 0}


@pytest.mark.parametrize(
    "messages",
    [
        [{"DataRow": [None, "a", {"base64": "AAE="}]}, {"ReadyForQuery": "T"}],
        [{"RowDescription": [FIELD, {**FIELD, "name": "é"}]}, "BindComplete"],
        [{"CommandComplete": "SELECT \udcff"}, {"ReadyForQuery": "E"}, {"ReadyForQuery": "I"}],
        [{"ErrorResponse": [["S", "ERROR"]]}, "NoData", {"ParameterDescription": [23]}],
    ],
)
def test_encoded_answers_of_each_shape(messages: list[Any]) -> None:
    assert encode_answer({"messages": messages}) == slow({"messages": messages})


BROKEN: list[Any] = [
    None,
    {"messages": "x"},
    {"messages": [{"DataRow": "x"}]},
    {"messages": [{"DataRow": [1]}]},
    {"messages": [{"DataRow": [{"base64": "!!"}]}]},
    {"messages": [{"DataRow": ["\ud800"]}]},
    {"messages": [{"DataRow": [None] * 70000}]},
    {"messages": ["NoSuchMessage"]},
    {"messages": [{"ReadyForQuery": "Q"}]},
    {"messages": [{"ReadyForQuery": 1}]},
    {"messages": [{"CommandComplete": "a\0b"}]},
    {"messages": [{"CommandComplete": 5}]},
    {"messages": [{"RowDescription": [{**FIELD, "type": True}]}]},
    {"messages": [{"RowDescription": [{**FIELD, "type": 2**40}]}]},
    {"messages": [{"RowDescription": [{**FIELD, "name": None}]}]},
    {"messages": [{"RowDescription": [{"name": "x"}]}]},
    {"messages": [{"RowDescription": "x"}]},
    {"messages": [{"CommandComplete": "a\0b"}, "NoSuchMessage"]},
    {"messages": [{"DataRow": [], "CommandComplete": "x"}]},
]


@pytest.mark.parametrize("data", BROKEN)
def test_answers_that_cannot_be_replayed_fail_as_before(data: Any) -> None:
    with pytest.raises((PlainError, ProtocolError, UnicodeError)) as fast:
        encode_answer(data)
    with pytest.raises((PlainError, ProtocolError, UnicodeError)) as full:
        slow(data)
    assert type(fast.value) is type(full.value)
    assert str(fast.value) == str(full.value)


def test_a_pgbench_batch_through_the_tables() -> None:
    frames = ClientFrames()
    parse = Parse("", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", ())
    batch = [parse, Bind("", "", (), (b"42",), ()), Describe(ObjectKind.PORTAL, ""), Execute("", 0)]
    statements: dict[str, str] = {}
    keys = []
    for m in [*batch, Sync()]:
        info = frames.step(encode(m), 0, statements, decode_client)
        if info.prepared:
            statements[info.prepared[0]] = info.prepared[1]
        keys.append(info.key)
    steps = [client_step(m, {"": parse.query}).step for m in [*batch, Sync()]]
    assert tuple(keys) == request_for(steps).key
    answer = [
        ParseComplete(),
        BindComplete(),
        RowDescription((FieldDescription("abalance", 16397, 3, 23, 4, -1, 0),)),
        DataRow((b"0",)),
        CommandComplete("SELECT 1"),
        ReadyForQuery(TransactionStatus.IDLE),
    ]
    docs = {"messages": [message_doc(m) for m in answer]}
    assert encode_answer(docs) == (encode_messages(answer), TransactionStatus.IDLE)
