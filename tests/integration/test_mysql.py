"""MySQL/MariaDB end to end: the mainstream Python drivers recorded through wiretape, replayed
without the database.

One real MariaDB 10.11 (mariadb-install-db into a temporary directory, password authentication)
serves a module recording of tests/apps/mysqlapp.py, which runs each scenario with each driver.
The server is then stopped, so any replay that reached it would fail, and ``wiretape test`` must
pass every test. Further tests cover misses, TLS on both sides, authentication plugins and auth
switches, caching_sha2_password against a scripted server, malformed bytes and the stored form.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mysql.connector
import pymysql
import pytest
import yaml
from tests.helpers.mariadb_server import MariaDB, mariadb_server
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.wt import (
    Recording,
    get_json,
    load,
    run_test_json,
    run_wiretape,
    set_path,
    write_config,
)

from wiretape.config import DepConfig
from wiretape.model import DepInfo, SetInfo, WireRequest, WireResponse
from wiretape.protocols.mysql.packets import encode_frames, join_payload, scan_packet
from wiretape.proxy.mysql import MysqlRecordHooks
from wiretape.proxy.server import Listener
from wiretape.proxy.tls import CertificateAuthority, client_context
from wiretape.runner.recorder import Recorder
from wiretape.store.reader import load_set
from wiretape.store.writer import SetWriter

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "tests" / "apps" / "mysqlapp.py"
SCHEMA = """
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) UNIQUE,
                    score DECIMAL(8,2));
CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, msg TEXT);
INSERT INTO items (name, score) VALUES ('first', 1.25), ('second', NULL);
DELIMITER //
CREATE PROCEDURE two_results(n INT)
BEGIN
  SELECT n AS n, n * 2 AS twice;
  SELECT name FROM items ORDER BY id LIMIT 2;
END //
DELIMITER ;
"""

SCENARIOS = [
    "pymysql/basic",
    "pymysql/types",
    "pymysql/params",
    "pymysql/nonce",
    "pymysql/insert?arg=new-item",
    "pymysql/rollback",
    "pymysql/unique",
    "pymysql/multi",
    "pymysql/prepared",
    "pymysql/large",
    "pymysql/session",
    "pymysql/infile",
    "mysqlclient/basic",
    "mysqlclient/types",
    "mysqlclient/params",
    "mysqlclient/insert?arg=mc-item",
    "mysqlclient/rollback",
    "mysqlclient/unique",
    "mysqlclient/multi",
    "mysqlclient/call",
    "mysqlclient/options",
    "connector/basic",
    "connector/prepared",
    "connector/prepared",  # a new cursor prepares again: the server hands out new ids
    "connector/prepared_types",
    "connector/nonce",
    "connector/prepared_insert?arg=c-item",
    "connector/long_data",
    "connector/rollback",
    "connector/unique",
    "connector/multi",
    "connector/call",
    "sqlalchemy/basic",
    "sqlalchemy/orm_tx?arg=a",
    "sqlalchemy/rollback",
    "sqlalchemy/unique",
    "sqlalchemy/types",
    "sqlalchemy/multi",
]
if mysql.connector.HAVE_CEXT:  # the C extension of mysql-connector-python, when installed
    SCENARIOS += [
        "connector-c/basic",
        "connector-c/prepared",
        "connector-c/rollback",
        "connector-c/unique",
        "connector-c/multi",
    ]


# The generated value of tests/apps/mysqlapp.py's nonce scenario: the first value in the text
# (PyMySQL) and the first parameter (mysql-connector's prepared statement).
NONCE_NOISE = [{"sql": "SELECT COUNT(*) FROM items WHERE name <>", "params": [1]}]


def configure(
    dir: Path,
    db: MariaDB,
    *,
    extra_env: dict[str, str] | None = None,
    dep_extra: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    port = free_port()
    env = {
        "MYSQL_HOST": "{deps.db.host}",
        "MYSQL_PORT": "{deps.db.port}",
        "MYSQL_USER": db.user,
        "MYSQL_PASSWORD": db.password,
        "MYSQL_DB": db.database,
        **(extra_env or {}),
    }
    write_config(
        dir,
        command=f"{sys.executable} {APP} {port}",
        port=port,
        health="/health",
        deps={"db": {"protocol": "mysql", "upstream": db.address, **(dep_extra or {})}},
        env=env,
        extra={"app": {"startup_timeout": 60}, **(extra or {})},
    )


@dataclass
class Recorded:
    dir: Path
    answers: list[tuple[str, int, Any]]
    output: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    dir = tmp_path_factory.mktemp("mysql")
    with mariadb_server() as db:
        db.sql(SCHEMA, database=db.database)
        configure(dir, db, dep_extra={"request_noise": NONCE_NOISE})
        answers = []
        with Recording(dir) as rec:
            for path in SCENARIOS:
                status, body = get_json(f"{rec.url}/{path}")
                answers.append((path, status, body))
            assert rec.stop() == 0, rec.output()
            output = rec.output()
    # MariaDB is stopped from here on.
    yield Recorded(dir, answers, output)


def test_every_driver_recorded_real_answers(recorded: Recorded) -> None:
    failed = [(path, body) for path, status, body in recorded.answers if status != 200]
    assert failed == []
    by_path = {p: b["result"] for p, _, b in recorded.answers}
    assert by_path["pymysql/basic"] == [[1, "first", "Decimal('1.25')"]]
    assert by_path["pymysql/unique"]["errno"] == 1062
    assert by_path["connector/unique"]["errno"] == 1062
    assert by_path["connector/unique"]["sqlstate"] == "23000"
    assert by_path["sqlalchemy/unique"]["errno"] == 1062
    assert by_path["pymysql/rollback"] == {
        "in_tx": True, "inside": [1], "after_tx": False, "after": [0],
    }  # fmt: skip
    assert by_path["connector/rollback"]["in_tx"] is True
    assert by_path["connector/rollback"]["after"] == [[0]]
    assert by_path["pymysql/large"]["rows"] == 20_000
    assert by_path["pymysql/multi"] == [[[1]], [["two", "Decimal('2.5')"]], 0]
    assert by_path["mysqlclient/call"][:2] == [[[3, 6]], [["first"], ["second"]]]
    assert by_path["connector/call"] == [[[4, 8]], [["first"], ["second"]]]
    assert by_path["sqlalchemy/multi"][:2] == [[[5, 10]], [["first"], ["second"]]]
    assert by_path["sqlalchemy/orm_tx?arg=a"][1:] == ["orm a", "Decimal('2.25')"]
    assert by_path["pymysql/insert?arg=new-item"]["insert_id"] == 3
    # LOAD DATA LOCAL INFILE is declined: wiretape clears CLIENT_LOCAL_FILES.
    assert by_path["pymysql/infile"]["errno"] in (1148, 4166), by_path["pymysql/infile"]
    prepared = by_path["connector/prepared"]
    assert prepared[0] == [[1, "first", "Decimal('1.25')"]]
    assert prepared[2][0][:3] == [None, "ünïcode ✓", "0x00ff62696e"]
    assert by_path["connector/long_data"] == [[5000, "9dd4e461268c8034f5c8564e155c67a6", 7]]
    types = by_path["pymysql/types"][0]
    assert types[:3] == [None, "héllo 日本 🎉", "0x00ff10"]
    assert by_path["connector/prepared_types"][0][:3] == types[:3]
    assert by_path["sqlalchemy/types"][0][:3] == types[:3]


def test_replay_without_the_database_passes_every_test(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0
    assert len(report["results"]) == len(SCENARIOS)


def test_stored_form_is_readable_and_secret_free(recorded: Recorded) -> None:
    test_set = load(recorded.dir)
    session = [m for m in test_set.session if m.protocol == "mysql"]
    assert session, "connection start-ups are session mocks"
    startup = session[0]
    assert isinstance(startup.request, WireRequest)
    assert startup.request.data == {"connect": {"user": "wiretape", "database": "app"}}
    assert isinstance(startup.response, WireResponse)
    greeting = startup.response.data["messages"][0]["Handshake"]  # type: ignore[index]
    assert "10.11" in greeting["server_version"]
    assert "COMPRESS" not in greeting["capabilities"]
    assert "LOCAL_FILES" not in greeting["capabilities"]
    # What the client announced, so that replay encodes every reply before the client connects.
    client = startup.response.data["client"]  # type: ignore[index]
    assert {"PROTOCOL_41", "SECURE_CONNECTION"} <= set(client["capabilities"])
    mocks = [m for ms in test_set.mocks.values() for m in ms]
    requests = [m.request for m in mocks if isinstance(m.request, WireRequest)]
    executes = [r.data for r in requests if isinstance(r.data, dict) and "execute" in r.data]
    assert {
        "execute": "SELECT id, name, score FROM items WHERE id = ?",
        "params": [1],
        "types": ["TINY UNSIGNED"],
    } in executes
    rows = [
        message["BinaryRow"]
        for m in mocks
        if isinstance(m.response, WireResponse) and isinstance(m.response.data, dict)
        for message in m.response.data.get("messages", ())
        if "BinaryRow" in message
    ]
    assert [1, "first", "1.25"] in rows  # binary rows are stored value by value
    assert any("prepare" in r.data for r in requests if isinstance(r.data, dict))
    # The 20,000-row answer is stored as raw bytes in bodies/, with a readable preview.
    large = [m for m in mocks if isinstance(m.response, WireResponse) and m.response.raw]
    assert len(large) == 1
    for path in set_path(recorded.dir).rglob("*"):
        if path.is_file():
            assert b"my-secret-pw" not in path.read_bytes(), path
    scan = run_wiretape(recorded.dir, "secrets", "scan", "s")
    assert scan.returncode == 0, scan.stdout + scan.stderr


def test_without_its_request_noise_rule_a_generated_value_misses(recorded: Recorded) -> None:
    path = recorded.dir / "wiretape.yaml"
    kept = path.read_text()
    config = yaml.safe_load(kept)
    del config["deps"]["db"]["request_noise"]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        done, report = run_test_json(recorded.dir, timeout=300)
    finally:
        path.write_text(kept)
    assert done.returncode == 1
    failed = {r["target"]: r for r in report["results"] if r["status"] != "passed"}
    assert sorted(failed) == ["/connector/nonce", "/pymysql/nonce"], sorted(failed)
    for result in failed.values():
        assert "nonce-" in json.dumps(result["misses"]), result


def test_a_changed_query_misses_with_an_explanation(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, env={"MYSQLAPP_VARIANT": "changed"}, timeout=300)
    assert done.returncode == 1
    basic = next(r for r in report["results"] if r["test_id"].endswith("get-pymysql-basic"))
    assert basic["status"] == "failed"
    text = json.dumps(basic)
    assert "score IS NOT NULL" in text
    assert "closest" in text or "candidates" in text
    # The app saw wiretape's ERR packet: the response body carries its code and message.
    assert "1105" in text and "wiretape: no recorded answer" in text


# -- recording edge cases, each against its own server ----------------------------------------


def record_and_replay(dir: Path, paths: list[str]) -> list[tuple[str, int, Any]]:
    """Record ``paths`` (the caller stops the server afterwards), return the live answers."""
    answers = []
    with Recording(dir) as rec:
        for path in paths:
            status, body = get_json(f"{rec.url}/{path}")
            answers.append((path, status, body))
        assert rec.stop() == 0, rec.output()
    return answers


def assert_replays_green(dir: Path, count: int) -> None:
    done, report = run_test_json(dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0 and len(report["results"]) == count


def _dep_port(rec: Recording) -> int:
    # The app prints the dependency address it was given; read it from the app log.
    deadline = time.monotonic() + 30
    log_dir = rec.dir / "wiretape" / ".runs"
    while time.monotonic() < deadline:
        for path in log_dir.glob("record-*.app.log"):
            found = path.read_text(errors="replace")
            if "MYSQLAPP_DB=" in found:
                return int(found.split("MYSQLAPP_DB=", 1)[1].split()[0].rsplit(":", 1)[1])
        time.sleep(0.1)
    raise AssertionError("the app did not report the dependency address")


def _read_packet(sock: socket.socket, limit: float = 10) -> tuple[int, bytes] | None:
    deadline = time.monotonic() + limit
    data = b""
    while time.monotonic() < deadline:
        found = scan_packet(data, 0, 0)
        if found is not None:
            return found[0], join_payload(data, 0, found[2])
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    return None


def test_malformed_bytes_while_recording_pass_through(tmp_path: Path) -> None:
    with mariadb_server() as db:
        db.sql(SCHEMA, database=db.database)
        configure(tmp_path, db)
        with Recording(tmp_path) as rec:
            status, body = get_json(f"{rec.url}/pymysql/basic")
            assert status == 200, body
            port = _dep_port(rec)
            # A login that is no MySQL handshake response: passed through to the real server,
            # which refuses it.
            with socket.create_connection(("127.0.0.1", port), timeout=10) as bad:
                assert _read_packet(bad) is not None  # the greeting
                bad.sendall(encode_frames(1, b"\x00garbage that is no login"))
                answer = _read_packet(bad)
                assert answer is None or answer[1][:1] == b"\xff", answer
            # A logged-in connection that sends a packet out of sequence: passed through too.
            conn = pymysql.connect(host="127.0.0.1", port=port, user=db.user, password=db.password)
            conn._sock.sendall(encode_frames(5, b"\x03SELECT 1"))  # type: ignore[union-attr]
            with pytest.raises(pymysql.Error):
                conn.query("SELECT 2")
            conn.close()
            # Other connections keep working.
            status, body = get_json(f"{rec.url}/connector/basic")
            assert status == 200, body
            assert rec.stop() == 0
            assert "passing this connection through" in rec.output()


@pytest.mark.parametrize(
    ("app_ssl", "client_tls", "upstream_tls", "app_tls", "server_tls"),
    [
        # The app verifies wiretape (SSL_CERT_FILE holds the wiretape CA); wiretape reaches the
        # server in TLS because it offers it.
        ("verify", "accept", "prefer", True, True),
        # The same app, wiretape to the server in plain TCP.
        ("verify", "accept", "disable", True, False),
        # The app without TLS (declined), wiretape verifies the server against its test CA.
        ("", "decline", "verify-full", False, True),
        # The app without TLS: "prefer" follows it, so an RSA-encrypted password would work.
        ("", "decline", "prefer", False, False),
    ],
)
def test_tls_from_the_client_and_toward_the_server(
    tmp_path: Path,
    app_ssl: str,
    client_tls: str,
    upstream_tls: str,
    app_tls: bool,
    server_tls: bool,
) -> None:
    with mariadb_server(ssl=True) as db:
        assert db.ca is not None
        db.sql(SCHEMA, database=db.database)
        server_ca = tmp_path / "server-ca.pem"
        server_ca.write_bytes(db.ca.read_bytes())
        configure(
            tmp_path,
            db,
            extra_env={"MYSQLAPP_SSL": app_ssl},
            dep_extra={"client_tls": client_tls, "upstream_tls": upstream_tls},
            extra={"tls": {"extra_ca": str(server_ca)}},
        )
        answers = record_and_replay(tmp_path, ["ssl/info", "pymysql/basic", "connector/basic"])
    expected = {"app_tls": app_tls, "tls_to_server": server_tls, "user": "wiretape@%"}
    assert answers[0][1:] == (200, {"result": expected}), answers
    assert all(status == 200 for _, status, _ in answers), answers
    assert_replays_green(tmp_path, 3)


def test_upstream_tls_require_fails_clearly_without_tls(tmp_path: Path) -> None:
    with mariadb_server() as db:
        configure(tmp_path, db, dep_extra={"upstream_tls": "require"})
        answers = record_and_replay(tmp_path, ["pymysql/basic"])
    status, body = answers[0][1:]
    assert status == 500
    assert "does not accept TLS" in body["failed"]


AUTH_USERS = {"native": "native-pw", "edwards": "ed25519-pw", "wiretape": "my-secret-pw"}


def test_auth_plugins_and_auth_switches_pass_through_and_are_never_stored(tmp_path: Path) -> None:
    with mariadb_server(ed25519=True) as db:
        db.sql(
            "CREATE USER native@'%' IDENTIFIED VIA mysql_native_password "
            "USING PASSWORD('native-pw');\n"
            "CREATE USER edwards@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed25519-pw');\n"
            "GRANT ALL ON app.* TO native@'%';\nGRANT ALL ON app.* TO edwards@'%';\n"
        )
        configure(tmp_path, db, extra_env={"AUTH_USERS": json.dumps(AUTH_USERS)})
        paths = [
            "auth/native?arg=pymysql",  # mysql_native_password, as the greeting announces
            "auth/edwards?arg=mysqlclient",  # the server switches to client_ed25519
            "auth/native?arg=connector",  # the client offers caching_sha2_password: switched
        ]
        answers = record_and_replay(tmp_path, paths)
    for path, status, body in answers:
        user = path.split("/")[1].split("?")[0]
        assert (status, body) == (200, {"result": [[f"{user}@%", 2]]}), path
    for path in set_path(tmp_path).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in AUTH_USERS.values():
                assert secret.encode() not in data, (path, secret)
    assert_replays_green(tmp_path, len(paths))


# -- caching_sha2_password, against a scripted MySQL 8 server -----------------------------------

SHA2_PASSWORD = "sha2-secret-pw"
NONCE = b"0123456789abcdefghij"


def _sha2_scramble(password: bytes, nonce: bytes) -> bytes:
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(hashlib.sha256(p1).digest() + nonce).digest()
    return bytes(a ^ b for a, b in zip(p1, p2, strict=True))


class Sha2Server:
    """A MySQL 8-style server speaking caching_sha2_password: the fast path for a cached
    account, full authentication (with an RSA public-key exchange on a plain connection)
    otherwise. Any SELECT gets ``1``, other statements OK; enough to log in and query."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.cached = False  # after one full authentication the account is cached
        self.log: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        async def read() -> tuple[int, bytes]:
            head = await reader.readexactly(4)
            size = int.from_bytes(head[:3], "little")
            return head[3], await reader.readexactly(size)

        def send(seq: int, payload: bytes) -> None:
            writer.write(encode_frames(seq, payload))

        caps = 0x81FFF7FF & ~0x800 & ~0x20  # MySQL 8 flags without SSL and compression
        greeting = (
            b"\x0a8.0.36-scripted\x00" + struct.pack("<I", 7) + NONCE[:8] + b"\x00"
            + struct.pack("<H", caps & 0xFFFF) + b"\xff" + struct.pack("<H", 2)
            + struct.pack("<H", caps >> 16) + bytes([21]) + bytes(10) + NONCE[8:] + b"\x00"
            + b"caching_sha2_password\x00"
        )  # fmt: skip
        send(0, greeting)
        seq, login = await read()
        user_end = login.index(b"\x00", 32)
        auth_len = login[user_end + 1]
        scrambled = login[user_end + 2 : user_end + 2 + auth_len]
        if scrambled != _sha2_scramble(SHA2_PASSWORD.encode(), NONCE):
            send(seq + 1, b"\xff\x15\x04#28000Access denied")
            await writer.drain()
            return
        if self.cached:
            self.log.append("fast")
            send(seq + 1, b"\x01\x03")
            send(seq + 2, b"\x00\x00\x00\x02\x00\x00\x00")
        else:
            self.log.append("full")
            send(seq + 1, b"\x01\x04")
            seq, request = await read()
            if request == b"\x02":  # the client asks for the public key
                send(seq + 1, b"\x01" + self.pem)
                seq, request = await read()
            secret = self.key.decrypt(
                request,
                padding.OAEP(
                    mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
                ),
            )
            plain = bytes(a ^ NONCE[i % len(NONCE)] for i, a in enumerate(secret))
            if plain.rstrip(b"\x00") != SHA2_PASSWORD.encode():
                send(seq + 1, b"\xff\x15\x04#28000Access denied")
                await writer.drain()
                return
            self.cached = True
            send(seq + 1, b"\x00\x00\x00\x02\x00\x00\x00")
        await writer.drain()
        while True:
            try:
                seq, command = await read()
            except asyncio.IncompleteReadError:
                return
            if command[:1] == b"\x01":
                return
            self.log.append(command[1:].decode())
            if not command[1:].startswith(b"SELECT"):
                send(seq + 1, b"\x00\x00\x00\x02\x00\x00\x00")
                await writer.drain()
                continue
            column = (
                b"\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00"
            )
            for i, payload in enumerate(
                [b"\x01", column, b"\xfe\x00\x00\x02\x00", b"\x011", b"\xfe\x00\x00\x02\x00"]
            ):
                send(seq + 1 + i, payload)
            await writer.drain()


@contextlib.contextmanager
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread, for servers that a blocking client talks to."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_caching_sha2_password_full_and_fast_paths_through_the_record_proxy(
    tmp_path: Path,
) -> None:
    fake = Sha2Server()
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    with event_loop_thread() as loop:

        def run(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

        server = run(asyncio.start_server(fake.serve, "127.0.0.1", 0))
        upstream_port = server.sockets[0].getsockname()[1]
        info = SetInfo("s", time.time(), "test", (DepInfo("db", "mysql", "x"),))
        writer = SetWriter(tmp_path / "sets", info)
        dep = DepConfig("db", "mysql", f"127.0.0.1:{upstream_port}")
        hooks = MysqlRecordHooks(Recorder(writer), dep, ca=ca, upstream_tls=client_context())
        listener = Listener("record db", hooks.serve)
        run(listener.start())

        def login(**tls: Any) -> None:
            conn = pymysql.connect(
                host="127.0.0.1", port=listener.port, user="app", password=SHA2_PASSWORD, **tls
            )
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchall() == ((1,),)
            conn.close()

        try:
            # Without TLS: full authentication with the server's public key, then the fast path.
            login(ssl_disabled=True)
            login(ssl_disabled=True)
            # The app uses TLS (verified against the wiretape CA) and the server has none: the
            # app sends its password in clear, and wiretape encrypts it for the server.
            fake.cached = False
            login(ssl={"ca": str(ca.cert_path), "check_hostname": True})
            with pytest.raises(pymysql.err.OperationalError) as refused:
                pymysql.connect(
                    host="127.0.0.1", port=listener.port, user="app", password="no",
                    ssl_disabled=True,
                )  # fmt: skip
            assert refused.value.args[0] == 1045
        finally:
            run(listener.stop(0.5))
            writer.close()
            server.close()
            run(server.wait_closed())
    queries = [e for e in fake.log if not e.startswith("SET")]
    assert queries == ["full", "SELECT 1", "fast", "SELECT 1", "full", "SELECT 1"]
    test_set = load_set(tmp_path / "sets" / "s")
    requests = [m.request.data for m in test_set.session if isinstance(m.request, WireRequest)]
    connects = [r for r in requests if isinstance(r, dict) and "connect" in r]
    assert len(connects) == 3  # the refused login is not stored
    assert requests.count({"query": "SELECT 1"}) == 3
    for path in (tmp_path / "sets").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SHA2_PASSWORD.encode() not in data
            assert b"PUBLIC KEY" not in data, "auth rounds are not stored"
    handshake = test_set.session[0].response.data["messages"][0]["Handshake"]  # type: ignore[union-attr]
    assert handshake["auth_plugin"] == "caching_sha2_password"
