"""The PostgreSQL mock server against a real client (psycopg 3), on a real loopback socket.

The mocks are built from plain data exactly as the store holds them; the client is unchanged
psycopg. Covered: any credentials accepted, a hit, a miss (SQLSTATE WT001 with the closest
recording), TLS with the wiretape CA (``verify-full``), and malformed bytes on one connection
(08P01, closed) while another connection keeps working.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import LinkKind, Mock, WireResponse
from wiretape.protocols.postgres import StartupMessage, encode
from wiretape.protocols.postgres.exchange import request_for
from wiretape.proxy.postgres import PgMockServer
from wiretape.proxy.server import Listener
from wiretape.proxy.tls import CertificateAuthority

pytestmark = pytest.mark.integration

SQL = "SELECT name FROM users WHERE id = $1"


def _mock(steps: list[Any], messages: list[Any], test: str | None = "t1") -> Mock:
    return Mock(
        id=f"db-{abs(hash(repr(steps))) % 10000:04d}",
        dep="db",
        protocol="postgres",
        request=request_for(steps),
        response=WireResponse({"messages": messages}),
        test=test,
        link=LinkKind.LANE,
    )


ROW_DESC = {
    "RowDescription": [
        {
            "name": "name",
            "type": 25,
            "size": -1,
            "modifier": -1,
            "format": 0,
            "table": 0,
            "column": 0,
        }
    ]
}

# What psycopg 3 sends for conn.execute(SQL_with_%s, (7,)) with an int parameter.
QUERY_STEPS = [
    {"parse": SQL, "types": [21]},
    {"bind": SQL, "params": [{"base64": "AAc="}], "param_formats": [1], "result_formats": [0]},
    {"describe_portal": ""},
    {"execute": 0},
    "sync",
]
QUERY_ANSWER = [
    "ParseComplete",
    "BindComplete",
    ROW_DESC,
    {"DataRow": ["alice"]},
    {"CommandComplete": "SELECT 1"},
    {"ReadyForQuery": "I"},
]


class Server:
    def __init__(
        self, index: MockIndex, ca: CertificateAuthority | None, max_message_size: int = 1 << 30
    ) -> None:
        self.loop = asyncio.new_event_loop()
        dep = DepConfig("db", "postgres", "127.0.0.1:1", max_message_size=max_message_size)
        self.listener = Listener("mock db", PgMockServer(dep, index, ca=ca).serve)
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
    idx = MockIndex([], {"t1": [_mock(QUERY_STEPS, QUERY_ANSWER)]})
    idx.begin_test("t1")
    return idx


@pytest.fixture
def server(index: MockIndex, tmp_path: Path) -> Iterator[Server]:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    srv = Server(index, ca)
    srv.ca = ca  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.close()


def test_any_credentials_then_a_recorded_answer(server: Server) -> None:
    dsn = f"host=127.0.0.1 port={server.port} user=nobody password=wrong dbname=x sslmode=disable"
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM users WHERE id = %s", (7,)).fetchall() == [("alice",)]


def test_a_miss_is_an_error_naming_the_statement(server: Server, index: MockIndex) -> None:
    dsn = f"host=127.0.0.1 port={server.port} user=u dbname=x sslmode=disable"
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT name FROM users WHERE id = %s", (8,))
        assert caught.value.sqlstate == "WT001"
        assert "no recorded answer" in str(caught.value)
        # The connection is still usable after the miss.
        assert conn.execute("SELECT name FROM users WHERE id = %s", (7,)).fetchone() == ("alice",)
    misses = index.misses("t1")
    assert len(misses) == 1
    assert "0x0008" in misses[0].request
    assert misses[0].candidates and "0x0007" in misses[0].candidates[0].differences[0]


def test_tls_with_the_wiretape_ca_verify_full(server: Server) -> None:
    ca: CertificateAuthority = server.ca  # type: ignore[attr-defined]
    dsn = (
        f"host=127.0.0.1 port={server.port} user=u dbname=x sslmode=verify-full "
        f"sslrootcert={ca.cert_path}"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("SELECT name FROM users WHERE id = %s", (7,)).fetchone() == ("alice",)


def test_malformed_bytes_get_08P01_and_other_connections_keep_working(server: Server) -> None:
    dsn = f"host=127.0.0.1 port={server.port} user=u dbname=x sslmode=disable"
    with psycopg.connect(dsn, autocommit=True) as good:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as bad:
            bad.sendall(b"\x00\x00\x00\x08\x00\x03\x00\x00")  # a start-up with no parameters
            time.sleep(0.1)
            bad.sendall(b"Z\x00\x00\x00\x02garbage")  # an unknown type and a bad length
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = bad.recv(65536)
                if not chunk:
                    break
                data += chunk
            assert b"08P01" in data
            assert b"malformed" in data
        assert good.execute("SELECT name FROM users WHERE id = %s", (7,)).fetchone() == ("alice",)


def test_a_message_over_the_configured_limit_is_refused(index: MockIndex) -> None:
    srv = Server(index, None, max_message_size=1024)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(encode(StartupMessage((("user", "u"),))))
            big = b"SELECT '" + b"x" * 5000 + b"'\x00"
            sock.sendall(b"Q" + (len(big) + 4).to_bytes(4, "big") + big)
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        assert b"08P01" in data and b"max_message_size=1024" in data
    finally:
        srv.close()
