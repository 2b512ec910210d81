"""The MySQL mock server against real clients (PyMySQL, mysql-connector-python, and a raw
socket), on a real loopback socket.

The mocks are built from plain data exactly as the store holds them. Covered: the recorded
greeting with a fresh scramble and any credentials accepted, hits with byte-exact packets and
sequence ids, OK packets with insert ids, warnings and the in-transaction flag, prepared
statements under the mock server's own ids, a miss (1105/HY000 naming the closest recording),
TLS with the wiretape CA, and malformed bytes on one connection (1835, closed) while another
keeps working.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mysql.connector
import pymysql
import pytest
from pymysql.constants import SERVER_STATUS

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import LinkKind, Mock, WireResponse
from wiretape.protocols.mysql.exchange import request_for
from wiretape.protocols.mysql.messages import (
    Capability,
    HandshakeResponse41,
    decode_handshake,
    encode_payload,
)
from wiretape.protocols.mysql.packets import Reader, encode_frames, join_payload, scan_packet
from wiretape.proxy.mysql import MysqlMockServer
from wiretape.proxy.server import Listener
from wiretape.proxy.tls import CertificateAuthority

pytestmark = pytest.mark.integration

SQL = "SELECT name FROM users WHERE id = ?"
_ids = iter(range(1, 10_000))


def _mock(step: Any, messages: list[Any], test: str | None = "t1") -> Mock:
    return Mock(
        id=f"db-{next(_ids):04d}",
        dep="db",
        protocol="mysql",
        request=request_for(step),
        response=WireResponse({"messages": messages}),
        test=test,
        link=LinkKind.SESSION if test is None else LinkKind.LANE,
    )


def column(name: str, ftype: str, charset: int = 45, flags: int = 0) -> dict[str, Any]:
    return {
        "Column": {
            "name": name, "type": ftype, "table": "users", "schema": "app",
            "charset": charset, "length": 80, "flags": flags, "decimals": 0,
        }
    }  # fmt: skip


def ok(status: list[str], **fields: Any) -> dict[str, Any]:
    return {"OK": {"affected_rows": 0, "insert_id": 0, "status": status, **fields}}


EOF_ = {"EOF": {"status": ["AUTOCOMMIT"]}}
CONNECT = _mock(
    {"connect": {"user": "recorded"}},
    [
        {
            "Handshake": {
                "server_version": "8.0.36-recorded",
                "capabilities": [
                    "LONG_PASSWORD", "FOUND_ROWS", "LONG_FLAG", "CONNECT_WITH_DB",
                    "PROTOCOL_41", "TRANSACTIONS", "SECURE_CONNECTION", "MULTI_STATEMENTS",
                    "MULTI_RESULTS", "PS_MULTI_RESULTS", "PLUGIN_AUTH", "CONNECT_ATTRS",
                    "PLUGIN_AUTH_LENENC_CLIENT_DATA", "LOCAL_FILES", "COMPRESS", "SSL",
                ],
                "charset": 255,
                "status": ["AUTOCOMMIT"],
                "auth_plugin": "caching_sha2_password",
            }
        },
        ok(["AUTOCOMMIT"]),
    ],
    test=None,
)  # fmt: skip
SELECT_7 = _mock(
    {"query": "SELECT name FROM users WHERE id = 7"},
    [{"Columns": 1}, column("name", "VAR_STRING"), EOF_, {"Row": ["alice"]}, EOF_],
)
PREPARE = _mock(
    {"prepare": SQL},
    [
        {"PrepareOk": {"statement_id": 41, "params": 1, "columns": 1}},
        column("?", "LONGLONG", 63),
        EOF_,
        column("name", "VAR_STRING"),
        EOF_,
    ],
    test=None,
)
EXECUTE_7 = _mock(
    {"execute": SQL, "params": [7], "types": ["LONGLONG"]},
    [{"Columns": 1}, column("name", "VAR_STRING"), EOF_, {"BinaryRow": ["alice"]}, EOF_],
)
TRANSACTION = [
    _mock({"query": "START TRANSACTION"}, [ok(["IN_TRANS", "AUTOCOMMIT"])]),
    _mock(
        {"query": "INSERT INTO users (name) VALUES ('bob')"},
        [ok(["IN_TRANS", "AUTOCOMMIT"], affected_rows=1, insert_id=9, warnings=1)],
    ),
    _mock({"query": "ROLLBACK"}, [ok(["AUTOCOMMIT"])]),
]
SESSION = [
    _mock({"query": "SET AUTOCOMMIT = 0"}, [ok([])], test=None),
    _mock({"query": "SET AUTOCOMMIT = 1"}, [ok(["AUTOCOMMIT"])], test=None),
    _mock({"query": "SET NAMES utf8mb4"}, [ok(["AUTOCOMMIT"])], test=None),
    _mock(
        {"query": "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_0900_ai_ci'"},
        [ok(["AUTOCOMMIT"])],
        test=None,
    ),
    _mock({"query": "SET @@session.autocommit = ON"}, [ok(["AUTOCOMMIT"])], test=None),
    _mock("ping", [ok(["AUTOCOMMIT"])], test=None),
]


class Server:
    def __init__(self, index: MockIndex, ca: CertificateAuthority | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.ca = ca
        dep = DepConfig("db", "mysql", "127.0.0.1:1")
        self.listener = Listener("mock db", MysqlMockServer(dep, index, ca=ca).serve)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(10)
        self.port = self.listener.port

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(0.2), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def index() -> MockIndex:
    idx = MockIndex([CONNECT, PREPARE, *SESSION], {"t1": [SELECT_7, EXECUTE_7, *TRANSACTION]})
    idx.begin_test("t1")
    return idx


@pytest.fixture
def server(index: MockIndex, tmp_path: Path) -> Iterator[Server]:
    srv = Server(index, CertificateAuthority.load_or_create(tmp_path / "ca"))
    try:
        yield srv
    finally:
        srv.close()


def connect(server: Server, **extra: Any) -> pymysql.connections.Connection[Any]:
    args: dict[str, Any] = {"user": "nobody", "password": "wrong", "database": "x", **extra}
    return pymysql.connect(host="127.0.0.1", port=server.port, autocommit=True, **args)


# -- a raw client, to see the bytes -------------------------------------------------------------


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def packet(self) -> tuple[int, bytes] | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = scan_packet(self.buf, 0, 0)
            if found is not None:
                seq, _, end = found
                payload = join_payload(self.buf, 0, end)
                self.buf = self.buf[end:]
                return seq, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        raise AssertionError("no packet within 10 s")

    def login(self) -> tuple[int, bytes]:
        greeting = self.packet()
        assert greeting is not None
        caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
        caps |= Capability.LONG_PASSWORD | Capability.TRANSACTIONS
        login = HandshakeResponse41(
            caps, 1 << 24, 45, "raw", b"x" * 20, auth_plugin_name="mysql_native_password"
        )
        self.sock.sendall(encode_frames(1, encode_payload(login)))
        answer = self.packet()
        assert answer is not None
        return greeting

    def command(self, payload: bytes) -> list[tuple[int, bytes]]:
        """Send a command; the packets of the reply, up to its final EOF/OK/ERR."""
        self.sock.sendall(encode_frames(0, payload))
        out = []
        eofs = 0
        while True:
            got = self.packet()
            assert got is not None
            out.append(got)
            first = got[1][0]
            if first == 0xFF or (first == 0x00 and len(out) == 1 and payload[0] != 0x16):
                return out
            if first == 0xFE and len(got[1]) < 9:
                eofs += 1
                if eofs == 2:
                    return out

    def close(self) -> None:
        self.sock.close()


def test_the_recorded_greeting_with_a_fresh_scramble_and_any_credentials(server: Server) -> None:
    raw = RawClient(server.port)
    try:
        seq, payload = raw.login()
        greeting = decode_handshake(Reader(payload, 0, "greeting"))
        assert seq == 0
        assert greeting.server_version == "8.0.36-recorded"
        assert greeting.auth_plugin_name == "caching_sha2_password"
        assert greeting.capabilities & Capability.SSL  # client_tls: accept, with a CA
        assert not greeting.capabilities & (Capability.LOCAL_FILES | Capability.COMPRESS)
        assert len(greeting.scramble) == 20 and b"\x00" not in greeting.scramble
    finally:
        raw.close()
    other = RawClient(server.port)
    try:
        again = decode_handshake(Reader(other.login()[1], 0, "greeting"))
        assert again.scramble != greeting.scramble
        assert again.connection_id != greeting.connection_id
    finally:
        other.close()
    with connect(server, password="anything at all") as conn:
        assert conn.get_server_info() == "8.0.36-recorded"
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM users WHERE id = %s", (7,))
            assert cur.fetchall() == (("alice",),)


def test_a_hit_is_replayed_byte_exact_with_its_sequence_ids(server: Server) -> None:
    raw = RawClient(server.port)
    try:
        raw.login()
        reply = raw.command(b"\x03SELECT name FROM users WHERE id = 7")
    finally:
        raw.close()
    assert [seq for seq, _ in reply] == [1, 2, 3, 4, 5]
    col = b"".join(bytes([len(t)]) + t for t in (b"def", b"app", b"users", b"users"))
    col += b"\x04name\x04name\x0c" + struct.pack("<HIBHB", 45, 80, 253, 0, 0) + b"\x00\x00"
    eof = b"\xfe\x00\x00\x02\x00"
    assert [payload for _, payload in reply] == [b"\x01", col, eof, b"\x05alice", eof]


def test_ok_packets_carry_insert_ids_warnings_and_the_transaction_flag(server: Server) -> None:
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("START TRANSACTION")
        assert conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
        cur.execute("INSERT INTO users (name) VALUES ('bob')")
        assert (cur.lastrowid, cur.rowcount, cur.warning_count) == (9, 1, 1)
        cur.execute("ROLLBACK")
        assert not conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS


def test_prepared_statements_get_the_mock_servers_ids(server: Server, index: MockIndex) -> None:
    raw = RawClient(server.port)
    try:
        raw.login()
        for expected_id in (1, 2):  # the recording said 41; each prepare gets a new id
            reply = raw.command(b"\x16" + SQL.encode())
            assert reply[0][0] == 1
            assert struct.unpack("<I", reply[0][1][1:5])[0] == expected_id
        execute = (
            b"\x17" + struct.pack("<IBI", 2, 0, 1) + b"\x00\x01\x08\x00" + struct.pack("<q", 7)
        )
        rows = raw.command(execute)
        assert rows[3] == (4, b"\x00\x00\x05alice")
        unknown = raw.command(b"\x17" + struct.pack("<IBI", 41, 0, 1))
        assert unknown[0][1][:3] == b"\xff\x51\x04"  # 1105: 41 is no id this connection knows
        assert b"<statement 41 prepared before the recording>" in unknown[0][1]
    finally:
        raw.close()
    # mysql-connector binds 7 as TINY UNSIGNED, not LONGLONG: parameters match by value.
    index.begin_test("t1")
    conn = mysql.connector.connect(
        host="127.0.0.1", port=server.port, user="u", password="p", use_pure=True,
        ssl_disabled=True, autocommit=True,
    )  # fmt: skip
    try:
        cur = conn.cursor(prepared=True)
        cur.execute(SQL, (7,))
        assert cur.fetchall() == [("alice",)]
        cur.close()
    finally:
        conn.close()


def test_a_miss_is_an_error_naming_the_statement(server: Server, index: MockIndex) -> None:
    with connect(server) as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.Error) as caught:
            cur.execute("SELECT name FROM users WHERE id = 8")
        code, message = caught.value.args
        assert code == 1105
        assert message.startswith("wiretape: no recorded answer for SELECT name FROM users")
        assert "closest recording" in message and "id = 7" in message
        # The connection is still usable after the miss.
        cur.execute("SELECT name FROM users WHERE id = 7")
        assert cur.fetchall() == (("alice",),)
    misses = index.misses("t1")
    assert len(misses) == 1
    assert misses[0].request == "SELECT name FROM users WHERE id = 8"
    assert misses[0].candidates and "id = 7" in misses[0].candidates[0].differences[0]


def test_tls_with_the_wiretape_ca(server: Server) -> None:
    assert server.ca is not None
    ssl_args = {"ca": str(server.ca.cert_path), "check_hostname": True}
    with connect(server, ssl=ssl_args) as conn, conn.cursor() as cur:
        assert isinstance(conn._sock, ssl.SSLSocket)
        cur.execute("SELECT name FROM users WHERE id = 7")
        assert cur.fetchall() == (("alice",),)


def test_malformed_bytes_get_an_error_and_other_connections_keep_working(server: Server) -> None:
    with connect(server) as good:
        raw = RawClient(server.port)
        try:
            raw.login()
            raw.sock.sendall(encode_frames(3, b"\x03SELECT 1"))  # out of sequence
            answer = raw.packet()
            assert answer is not None
            assert answer[1][:3] == b"\xff\x2b\x07"  # 1835, ER_MALFORMED_PACKET
            assert b"wiretape: malformed packet" in answer[1]
            assert raw.packet() is None  # then the connection is closed
        finally:
            raw.close()
        with good.cursor() as cur:
            cur.execute("SELECT name FROM users WHERE id = 7")
            assert cur.fetchall() == (("alice",),)
