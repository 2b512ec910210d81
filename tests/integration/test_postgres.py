"""PostgreSQL end to end: every mainstream driver recorded through wiretape, replayed without it.

One real PostgreSQL 15 (initdb into a temporary directory, SCRAM authentication) serves a module
recording of tests/apps/pgapp.py, which runs each scenario with each driver. The server is then
stopped, so any replay that reached it would fail, and ``wiretape test`` must pass every test.
Further tests cover misses, TLS on both sides, malformed bytes and the stored form.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.servers import Postgres, postgres_server
from tests.helpers.wt import (
    Recording,
    get_json,
    load,
    run_test_json,
    run_wiretape,
    set_path,
    write_config,
)

from wiretape.model import WireRequest, WireResponse

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "tests" / "apps" / "pgapp.py"
SCHEMA = """
CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE, score numeric);
CREATE TABLE log (id serial PRIMARY KEY, msg text);
INSERT INTO items (name, score) VALUES ('first', 1.25), ('second', NULL);
"""

SCENARIOS = [
    "psycopg/basic",
    "psycopg/insert?arg=new-item",
    "psycopg/prepared",
    "psycopg/prepared",  # the statements are prepared already: Bind without Parse
    "psycopg/pipeline",
    "psycopg/rollback",
    "psycopg/failed_tx",
    "psycopg/unique",
    "psycopg/nulls",
    "psycopg/unicode",
    "psycopg/bytea",
    "psycopg/types_text",
    "psycopg/types_binary",
    "psycopg/copy",
    "psycopg/listen",
    "psycopg/large",
    "psycopg-async/basic",
    "psycopg-async/prepared",
    "psycopg-async/pipeline",
    "psycopg-async/failed_tx",
    "psycopg-async/types_binary",
    "psycopg2/basic",
    "psycopg2/rollback",
    "psycopg2/failed_tx",
    "psycopg2/unique",
    "psycopg2/nulls_unicode_bytea",
    "psycopg2/large",
    "psycopg2/types",
    "asyncpg/basic",
    "asyncpg/rollback",
    "asyncpg/failed_tx",
    "asyncpg/unique",
    "asyncpg/types",
    "asyncpg/large",
    "asyncpg/executemany",
    "sqlalchemy/basic",
    "sqlalchemy/orm_tx?arg=a",
    "sqlalchemy/rollback",
    "sqlalchemy/unique",
    "psql/basic",
    "psql/multi",
    "psql/error",
]


def configure(
    dir: Path,
    pg: Postgres,
    *,
    extra_env: dict[str, str] | None = None,
    dep_extra: dict[str, str] | None = None,
    dsn_extra: str = "",
    extra: dict[str, Any] | None = None,
) -> None:
    port = free_port()
    env = {
        "PG_DSN": (
            f"host={{deps.db.host}} port={{deps.db.port}} user={pg.user} "
            f"password={pg.password} dbname={pg.database} {dsn_extra}"
        ).strip(),
        "PG_URL": f"postgresql://{pg.user}:{pg.password}@{{deps.db}}/{pg.database}",
        "PATH": f"{pg.bin_dir}:{os.environ.get('PATH', '')}",
        "PGAPP_DB": "{deps.db}",
        **(extra_env or {}),
    }
    write_config(
        dir,
        command=f"{sys.executable} {APP} {port}",
        port=port,
        health="/health",
        deps={"db": {"protocol": "postgres", "upstream": pg.address, **(dep_extra or {})}},
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
    dir = tmp_path_factory.mktemp("pg")
    with postgres_server() as pg:
        pg.psql(SCHEMA)
        configure(dir, pg)
        answers = []
        with Recording(dir) as rec:
            for path in SCENARIOS:
                status, body = get_json(f"{rec.url}/{path}")
                answers.append((path, status, body))
            assert rec.stop() == 0, rec.output()
            output = rec.output()
    # PostgreSQL is stopped from here on.
    yield Recorded(dir, answers, output)


def test_every_driver_recorded_real_answers(recorded: Recorded) -> None:
    for path, status, body in recorded.answers:
        assert status == 200, (path, body)
        assert "result" in body, (path, body)
    by_path = {p: b["result"] for p, _, b in recorded.answers}
    assert by_path["psycopg/failed_tx"][0]["sqlstate"] == "22012"
    assert by_path["psycopg/failed_tx"][1]["sqlstate"] == "25P02"
    assert by_path["asyncpg/unique"]["sqlstate"] == "23505"
    assert by_path["psycopg/large"]["rows"] == 100_000
    assert by_path["psycopg/listen"] == [["events", "hello"]]


def test_replay_without_postgres_passes_every_test(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0
    assert len(report["results"]) == len(SCENARIOS)


def test_stored_form_is_readable_and_secret_free(recorded: Recorded) -> None:
    test_set = load(recorded.dir)
    session = [m for m in test_set.session if m.protocol == "postgres"]
    assert session, "connection start-ups are session mocks"
    startup = session[0]
    assert isinstance(startup.request, WireRequest)
    assert startup.request.data[0]["startup"]["user"] == "wiretape"
    mocks = [m for ms in test_set.mocks.values() for m in ms]
    sqls = [m.request.summary for m in mocks if isinstance(m.request, WireRequest)]
    assert any("SELECT id, name, score FROM items WHERE id = $1" in s for s in sqls)
    # The 100k-row answers are stored as raw bytes in bodies/, with a readable preview.
    large = [m for m in mocks if isinstance(m.response, WireResponse) and m.response.raw]
    assert len(large) >= 2
    for path in set_path(recorded.dir).rglob("*"):
        if path.is_file():
            assert b"pg-secret-pw" not in path.read_bytes(), path
    scan = run_wiretape(recorded.dir, "secrets", "scan", "s")
    assert scan.returncode == 0, scan.stdout + scan.stderr


def test_prepared_statement_from_an_earlier_test_is_bound_by_name(recorded: Recorded) -> None:
    test_set = load(recorded.dir)
    first, second = sorted(t for t in test_set.mocks if t.endswith("psycopg-prepared"))

    def steps(test_id: str) -> list[Any]:
        return [
            step
            for m in test_set.mocks[test_id]
            if isinstance(m.request, WireRequest)
            for step in m.request.data
            if isinstance(step, dict)
        ]

    assert any("parse" in s for s in steps(first))
    # The second run binds the statements psycopg prepared in the first one.
    assert not any("parse" in s for s in steps(second))
    assert any("bind" in s for s in steps(second))


def test_a_changed_query_misses_with_an_explanation(recorded: Recorded, tmp_path: Path) -> None:
    done, report = run_test_json(recorded.dir, env={"PGAPP_VARIANT": "changed"}, timeout=300)
    assert done.returncode == 1
    basic = next(r for r in report["results"] if r["test_id"].endswith("get-psycopg-basic"))
    assert basic["status"] == "failed"
    text = json.dumps(basic)
    assert "score IS NOT NULL" in text
    assert "closest" in text or "candidates" in text


def _startup(user: str = "u", database: str = "app") -> bytes:
    body = struct.pack("!I", 196608)
    for key, value in (("user", user), ("database", database)):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def _read_until(sock: socket.socket, marker: bytes, limit: float = 10) -> bytes:
    deadline = time.monotonic() + limit
    data = b""
    while marker not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_malformed_bytes_while_recording_pass_through(tmp_path: Path) -> None:
    with postgres_server() as pg:
        pg.psql(SCHEMA)
        configure(tmp_path, pg)
        with Recording(tmp_path) as rec:
            cfg_port = _dep_port(rec)
            # A client that sends garbage after its start-up: bytes pass through untouched and
            # the real server answers them; wiretape keeps serving other connections.
            with socket.create_connection(("127.0.0.1", cfg_port), timeout=10) as bad:
                bad.sendall(_startup(pg.user, pg.database))
                _read_until(bad, b"R")
                bad.sendall(b"\x00garbage that is not a message" * 3)
                answer = _read_until(bad, b"E")
                # The real server saw the garbage and rejected it: it was passed through.
                assert b"E" in answer, answer
            status, body = get_json(f"{rec.url}/psycopg/basic")
            assert status == 200, body
            assert rec.stop() == 0
            assert (
                "passing this connection through" in rec.output() or "cannot parse" in rec.output()
            )


def _dep_port(rec: Recording) -> int:
    # The app's environment names the dependency's proxy address; read it from the app log.
    deadline = time.monotonic() + 30
    log_dir = rec.dir / "wiretape" / ".runs"
    while time.monotonic() < deadline:
        for path in log_dir.glob("record-*.app.log"):
            text = path.read_text(errors="replace")
            if "PGAPP_DB" in text:
                return int(text.split("PGAPP_DB=", 1)[1].split()[0].rsplit(":", 1)[1])
        time.sleep(0.1)
    raise AssertionError("the app did not report the dependency address")


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


@pytest.mark.parametrize(
    ("sslmode", "upstream_tls", "app_ssl"),
    [
        # The app verifies wiretape (the runner sets PGSSLROOTCERT); SCRAM over TLS on the
        # app's side means "prefer" reaches the server in plain TCP.
        ("verify-full", "prefer", True),
        ("require", "prefer", True),
        # The app without TLS; wiretape verifies the server against the server's own test CA.
        ("disable", "verify-full", False),
    ],
)
def test_tls_from_the_client_and_toward_the_server(
    tmp_path: Path, sslmode: str, upstream_tls: str, app_ssl: bool
) -> None:
    with postgres_server(ssl=True) as pg:
        assert pg.ca is not None
        pg.psql(SCHEMA)
        server_ca = tmp_path / "server-ca.pem"
        server_ca.write_bytes(pg.ca.read_bytes())
        configure(
            tmp_path,
            pg,
            dsn_extra=f"sslmode={sslmode}",
            dep_extra={"upstream_tls": upstream_tls},
            extra={"tls": {"extra_ca": str(server_ca)}},
        )
        answers = record_and_replay(tmp_path, ["psycopg/ssl", "psycopg/basic"])
    assert answers[0][1:] == (200, {"result": {"ssl": app_ssl, "user": "wiretape"}}), answers
    assert answers[1][1] == 200, answers
    assert_replays_green(tmp_path, 2)


def test_upstream_tls_require_fails_clearly_without_tls(tmp_path: Path) -> None:
    with postgres_server() as pg:
        configure(tmp_path, pg, dep_extra={"upstream_tls": "require"})
        answers = record_and_replay(tmp_path, ["psycopg/basic"])
    status, body = answers[0][1:]
    assert status == 500
    assert "does not accept TLS" in body["failed"]


AUTH_USERS = {"trusty": "", "clear": "clear-pw", "md5user": "md5-pw", "wiretape": "pg-secret-pw"}


def test_every_authentication_method_passes_through_and_is_never_stored(tmp_path: Path) -> None:
    hba = [
        "host all trusty 127.0.0.1/32 trust",
        "host all clear 127.0.0.1/32 password",
        "host all md5user 127.0.0.1/32 md5",
    ]
    with postgres_server(hba=hba) as pg:
        pg.psql(
            "CREATE ROLE trusty LOGIN; CREATE ROLE clear LOGIN PASSWORD 'clear-pw'; "
            "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-pw';"
        )
        configure(tmp_path, pg, extra_env={"AUTH_PASSWORDS": json.dumps(AUTH_USERS)})
        answers = record_and_replay(tmp_path, [f"auth/{user}" for user in AUTH_USERS])
    for (path, status, body), user in zip(answers, AUTH_USERS, strict=True):
        assert (status, body) == (200, {"result": [user, 2]}), path
    for path in set_path(tmp_path).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in ("clear-pw", "md5-pw", "pg-secret-pw"):
                assert secret.encode() not in data, (path, secret)
    assert_replays_green(tmp_path, len(AUTH_USERS))


def test_a_cancel_request_reaches_the_server(tmp_path: Path) -> None:
    with postgres_server() as pg:
        configure(tmp_path, pg)
        started = time.monotonic()
        answers = record_and_replay(tmp_path, ["psycopg/cancel"])
        assert time.monotonic() - started < 9
    assert answers[0][1:] == (200, {"result": {"error": "QueryCanceled", "sqlstate": "57014"}})
    assert_replays_green(tmp_path, 1)


def test_request_noise_ignores_a_parameter_the_app_generates(tmp_path: Path) -> None:
    with postgres_server() as pg:
        pg.psql(SCHEMA)
        configure(tmp_path, pg)
        record_and_replay(tmp_path, ["psycopg/random_insert", "psycopg/basic"])
    done, report = run_test_json(tmp_path, timeout=300)
    assert done.returncode == 1
    failed = report["results"][0]
    assert failed["status"] == "failed" and "INSERT INTO log" in json.dumps(failed)
    config = tmp_path / "wiretape.yaml"
    text = config.read_text().replace(
        "protocol: postgres\n",
        "protocol: postgres\n    request_noise:\n    - {sql: 'insert into log', params: [1]}\n",
    )
    assert text != config.read_text()
    config.write_text(text)
    assert_replays_green(tmp_path, 2)


def test_kill_9_keeps_every_completed_database_exchange(tmp_path: Path) -> None:
    with postgres_server() as pg:
        pg.psql(SCHEMA)
        configure(tmp_path, pg)
        rec = Recording(tmp_path)
        with rec:
            # The lane admits a request only once the one before it is on disk, so every test
            # before the last answered one is durable; the last one may or may not be.
            for i in range(1, 5):
                status, body = get_json(f"{rec.url}/psycopg/insert?arg=kill-{i}")
                assert status == 200, body
            rec.kill9()
    test_set = load(tmp_path)
    ids = [t.id for t in test_set.tests]
    assert ids[:3] == [f"000{i}-get-psycopg-insert" for i in range(1, 4)], ids
    for test in test_set.tests:
        statements = [
            m.request.summary
            for m in test_set.mocks.get(test.id, ())
            if isinstance(m.request, WireRequest)
        ]
        assert any("INSERT INTO items" in s for s in statements), (test.id, statements)
    # The killed recording replays as it is.
    assert_replays_green(tmp_path, len(ids))
