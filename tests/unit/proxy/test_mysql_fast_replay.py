"""Transcript tests of the MySQL mock server over in-memory streams: the answers to queries sent
one at a time (each read holds one plain COM_QUERY, which skips the parser's buffer) are those
to the same queries sent in one piece (parsed packet by packet), for hits, repeated statements,
misses, prepared statements and framings that need adapting."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import LinkKind, Miss, Mock, WireResponse
from wiretape.protocols.mysql.exchange import request_for
from wiretape.protocols.mysql.messages import (
    Capability,
    HandshakeResponse41,
    StmtExecute,
    StmtPrepare,
    decode_handshake,
    encode_payload,
)
from wiretape.protocols.mysql.packets import Reader, encode_frames, join_payload, scan_packet
from wiretape.proxy.mysql import MysqlMockServer
from wiretape.proxy.streams import memory_pair

C = Capability
COLUMN = {
    "name": "id", "type": "LONG", "table": "accounts", "schema": "app", "charset": 63,
    "length": 11, "flags": 20483, "decimals": 0,
}  # fmt: skip
EOF_ = {"EOF": {"status": ["AUTOCOMMIT"]}}


def ok(status: list[str], **fields: Any) -> dict[str, Any]:
    return {"OK": {"affected_rows": 0, "insert_id": 0, "status": status, **fields}}


def add_mock(made: list[Mock], step: Any, messages: list[Any]) -> None:
    """Append a session mock of ``step`` answered by ``messages``, numbered after ``made``."""
    made.append(
        Mock(
            id=f"db-{len(made) + 1:04d}", dep="db", protocol="mysql",
            request=request_for(step), response=WireResponse({"messages": messages}),
            test=None, link=LinkKind.SESSION,
        )
    )  # fmt: skip


def mocks(client: int | None = None) -> list[Mock]:
    """The recordings; ``client`` is the capabilities stored for the client of the start-up."""
    made: list[Mock] = []

    def mock(step: Any, messages: list[Any]) -> None:
        add_mock(made, step, messages)

    mock(
        {"connect": {"user": "app"}},
        [
            {
                "Handshake": {
                    "server_version": "10.11-recorded",
                    "capabilities": [
                        "LONG_PASSWORD", "PROTOCOL_41", "SECURE_CONNECTION", "PLUGIN_AUTH",
                        "TRANSACTIONS", "MULTI_RESULTS", "SESSION_TRACK", "DEPRECATE_EOF",
                        "QUERY_ATTRIBUTES",
                    ],
                    "charset": 45,
                    "status": ["AUTOCOMMIT"],
                    "auth_plugin": "mysql_native_password",
                }
            },
            ok(["AUTOCOMMIT"]),
        ],
    )  # fmt: skip
    if client is not None:
        response = made[0].response
        assert isinstance(response, WireResponse)
        made[0] = dataclasses.replace(
            made[0], response=WireResponse(dict(response.data, client={"capabilities": client}))
        )
    for n in (1, 2, 1):  # the first statement twice, with different answers
        mock(
            {"query": f"SELECT id FROM accounts WHERE id = {n}"},
            [{"Columns": 1}, {"Column": COLUMN}, EOF_, {"Row": [f"{n}{len(made)}"]}, EOF_],
        )
    mock(
        {"query": "UPDATE accounts SET id = id WHERE id = 1"},
        [ok(["AUTOCOMMIT", "IN_TRANS"], affected_rows=1, info="Rows matched: 1")],
    )
    mock({"query": "SELECT broken"}, [{"ERR": {"code": 1064, "state": "42000", "message": "x"}}])
    mock(
        {"prepare": "SELECT id FROM accounts WHERE id = ?"},
        [
            {"PrepareOk": {"statement_id": 7, "params": 1, "columns": 1}},
            {"Column": dict(COLUMN, name="?", type="LONGLONG")},
            EOF_,
            {"Column": COLUMN},
            EOF_,
        ],
    )
    mock(
        {"execute": "SELECT id FROM accounts WHERE id = ?", "params": [1], "types": ["LONGLONG"]},
        [{"Columns": 1}, {"Column": COLUMN}, EOF_, {"BinaryRow": [1]}, EOF_],
    )
    return made


def packets(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        found = scan_packet(data, 0, 0)
        assert found is not None
        seq, _, end = found
        out.append((seq, join_payload(data, 0, end)))
        data = data[end:]
    return out


def commands(caps: int) -> list[bytes]:
    """The client's commands; with CLIENT_QUERY_ATTRIBUTES, COM_QUERY and COM_STMT_EXECUTE
    carry an attribute or parameter count."""
    attributes = bool(caps & C.QUERY_ATTRIBUTES)

    def query(sql: str) -> bytes:
        return b"\x03" + (b"\x00\x01" if attributes else b"") + sql.encode()

    execute = encode_payload(StmtExecute(1, 0, 1, ())) + (b"\x01" if attributes else b"")
    execute += b"\x00\x01\x08\x00" + (1).to_bytes(8, "little")
    return [
        query("SELECT id FROM accounts WHERE id = 1"),
        query("SELECT  id FROM accounts WHERE id = 2 -- a comment"),
        query("SELECT id FROM accounts WHERE id = 1"),
        query("SELECT id FROM accounts WHERE id = 1"),  # the last answer repeats
        query("UPDATE accounts SET id = id WHERE id = 1"),
        query("SELECT broken"),
        query("SELECT not recorded"),
        b"\x0e",  # a ping nobody recorded: OK with the status the UPDATE left
        encode_payload(StmtPrepare("SELECT id FROM accounts WHERE id = ?")),
        execute,
    ]


Answers = list[list[tuple[int, bytes]]]


async def replay(
    caps: int, *, one_by_one: bool, client: int | None = None
) -> tuple[Answers, list[Miss]]:
    index = MockIndex(mocks(client), {})
    index.begin_test(None)
    server = MysqlMockServer(DepConfig("db", "mysql", "127.0.0.1:1"), index, ca=None)
    client, server_side = memory_pair("client", "server")
    served = asyncio.ensure_future(server.serve(server_side))
    greeting = decode_handshake(Reader(packets(await client.read())[0][1], 0, "greeting"))
    login = HandshakeResponse41(
        greeting.capabilities & caps, 1 << 24, 45, "app", b"x" * 20,
        auth_plugin_name="mysql_native_password",
    )  # fmt: skip
    client.write(encode_frames(1, encode_payload(login)))
    assert packets(await client.read())[0][1][:1] == b"\x00"
    sent = commands(caps)
    answers = []
    if one_by_one:
        for command in sent:
            client.write(encode_frames(0, command))
            answers.append(packets(await client.read()))
        client.write(encode_frames(0, b"\x01"))
        await asyncio.wait_for(served, 5)
    else:
        quit_ = encode_frames(0, b"\x01")
        client.write(b"".join(encode_frames(0, command) for command in sent) + quit_)
        await asyncio.wait_for(served, 5)
        server_side.close()
        data = b""
        while chunk := await client.read():
            data += chunk
        answers = packets_by_command(data)
    return answers, index.misses(None)


def packets_by_command(data: bytes) -> list[list[tuple[int, bytes]]]:
    """Split a stream of replies where each one starts again at sequence id 1."""
    out: list[list[tuple[int, bytes]]] = []
    for seq, payload in packets(data):
        if seq == 1 or not out:
            out.append([])
        out[-1].append((seq, payload))
    return out


BASE = C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.TRANSACTIONS | C.MULTI_RESULTS


@pytest.mark.parametrize(
    "caps",
    [BASE, BASE | C.SESSION_TRACK | C.DEPRECATE_EOF, BASE | C.QUERY_ATTRIBUTES],
    ids=["as-recorded", "deprecate-eof", "query-attributes"],
)
def test_queries_one_at_a_time_get_the_answers_of_queries_in_one_piece(caps: int) -> None:
    fast, fast_misses = asyncio.run(replay(int(caps), one_by_one=True))
    slow, slow_misses = asyncio.run(replay(int(caps), one_by_one=False))
    assert fast == slow
    assert [m.request for m in fast_misses] == [m.request for m in slow_misses]
    if caps & C.QUERY_ATTRIBUTES:
        return  # recorded without attributes, so every query misses, whichever way it is read
    assert len(fast_misses) == 1 and "SELECT not recorded" in fast_misses[0].request
    if caps == BASE:
        rows = [payload for answer in fast[:4] for seq, payload in answer if seq == 4]
        assert rows == [b"\x0211", b"\x0222", b"\x0213", b"\x0213"]
    assert fast[5][0][1][:3] == b"\xff\x28\x04"  # the recorded ERR 1064
    assert fast[6][0][1][:3] == b"\xff\x51\x04"  # 1105: the miss
    ping = fast[7][0][1]
    assert ping[0] == 0x00 and ping[3:5] == b"\x03\x00"  # AUTOCOMMIT | IN_TRANS from the UPDATE
    assert fast[9][-2][1] == b"\x00\x00\x01\x00\x00\x00"  # the binary row, via statement 1


def test_equal_recorded_answers_are_written_alike_and_others_as_recorded() -> None:
    """Answers equal to the previous one for the same statement reuse its bytes; binary rows
    never do (-0.0 equals 0.0 but is written differently)."""
    double = dict(COLUMN, name="d", type="DOUBLE", charset=63, length=22, flags=0, decimals=31)
    made: list[Mock] = []

    def mock(step: Any, messages: list[Any]) -> None:
        add_mock(made, step, messages)

    for row in ("9", "9", "10"):
        mock(
            {"query": "SELECT 9"},
            [{"Columns": 1}, {"Column": COLUMN}, EOF_, {"Row": [row]}, EOF_],
        )
    sql = "SELECT d FROM t WHERE id = ?"
    mock(
        {"prepare": sql},
        [
            {"PrepareOk": {"statement_id": 3, "params": 1, "columns": 1}},
            {"Column": dict(COLUMN, name="?", type="LONGLONG")},
            EOF_,
            {"Column": double},
            EOF_,
        ],
    )
    for value in (0.0, -0.0):
        mock(
            {"execute": sql, "params": [1], "types": ["LONGLONG"]},
            [{"Columns": 1}, {"Column": double}, EOF_, {"BinaryRow": [value]}, EOF_],
        )

    async def run() -> list[list[tuple[int, bytes]]]:
        index = MockIndex(made, {})
        index.begin_test(None)
        server = MysqlMockServer(DepConfig("db", "mysql", "127.0.0.1:1"), index, ca=None)
        client, server_side = memory_pair("client", "server")
        served = asyncio.ensure_future(server.serve(server_side))
        await client.read()
        login = HandshakeResponse41(
            int(BASE), 1 << 24, 45, "app", b"x" * 20, auth_plugin_name="mysql_native_password"
        )
        client.write(encode_frames(1, encode_payload(login)))
        await client.read()
        execute = encode_payload(StmtExecute(1, 0, 1, ()))
        execute += b"\x00\x01\x08\x00" + (1).to_bytes(8, "little")
        answers = []
        for command in (
            b"\x03SELECT 9", b"\x03SELECT 9", b"\x03SELECT 9", b"\x03SELECT 9",
            encode_payload(StmtPrepare(sql)), execute, execute,
        ):  # fmt: skip
            client.write(encode_frames(0, command))
            answers.append(packets(await client.read()))
        client.write(encode_frames(0, b"\x01"))
        await asyncio.wait_for(served, 5)
        return answers

    answers = asyncio.run(run())
    assert [answer[3][1] for answer in answers[:4]] == [b"\x019", b"\x019", b"\x0210", b"\x0210"]
    assert answers[0] == answers[1]
    rows = [answer[3][1] for answer in answers[5:]]
    assert rows == [b"\x00\x00" + bytes(8), b"\x00\x00" + bytes(7) + b"\x80"]


RECORDED_CAPS = (
    C.LONG_PASSWORD | C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.TRANSACTIONS
    | C.MULTI_RESULTS | C.SESSION_TRACK | C.DEPRECATE_EOF | C.QUERY_ATTRIBUTES
)  # fmt: skip


@pytest.mark.parametrize(
    "caps", [BASE, BASE | C.SESSION_TRACK | C.DEPRECATE_EOF], ids=["eof", "deprecate-eof"]
)
def test_replies_to_a_recorded_client_are_encoded_before_it_connects(caps: int) -> None:
    index = MockIndex(mocks(int(caps)), {})
    server = MysqlMockServer(DepConfig("db", "mysql", "127.0.0.1:1"), index, ca=None)
    commands = {
        m.id
        for m in index.mocks_of("db")
        if isinstance(m.request.data, dict) and {"query", "execute"} & set(m.request.data)
    }
    assert len(commands) == 6
    # Every command's reply, for what this client negotiates with the recorded greeting;
    # not the prepare's, whose reply carries its connection's statement id.
    assert set(server.encoded) == {(mock_id, 1, caps & RECORDED_CAPS, 0) for mock_id in commands}
    # And they are the bytes the same replies get when encoded as they are served.
    ahead = asyncio.run(replay(int(caps), one_by_one=True, client=int(caps)))
    served = asyncio.run(replay(int(caps), one_by_one=True))
    assert ahead == served


def test_a_recording_without_the_clients_capabilities_is_encoded_as_it_is_served() -> None:
    index = MockIndex(mocks(), {})
    server = MysqlMockServer(DepConfig("db", "mysql", "127.0.0.1:1"), index, ca=None)
    assert server.encoded == {}
