"""``protocol: auto`` end to end: one kind of dependency, its protocol told from the first bytes.

The same configuration (``protocol: auto`` and a ``HOST:PORT`` upstream) is recorded in front of
memcached and the paced line server (neither is recognized: generic TCP; the paced server speaks
first), a real PostgreSQL (handed to the PostgreSQL proxy), a real Redis (handed to the Redis
proxy) and an HTTP service (handed to the HTTP proxy). Each recording is replayed with its
servers stopped and must pass; each mock keeps the protocol that recorded it.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.procs import REPO_ROOT, Proc, free_port
from tests.helpers.redis_server import REDIS_PASSWORD, redis_server
from tests.helpers.servers import postgres_server
from tests.helpers.wt import Recording, get_json, load, run_test_json, write_config
from tests.integration.test_tcp import record_scenarios

from wiretape.model import Mock, WireRequest

pytestmark = pytest.mark.integration

APPS = REPO_ROOT / "tests" / "apps"


def all_mocks(dir: Path) -> list[Mock]:
    test_set = load(dir)
    return [*test_set.session, *(m for ms in test_set.mocks.values() for m in ms)]


def replay_passes(dir: Path, count: int) -> dict[str, Any]:
    done, report = run_test_json(dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0
    assert len(report["results"]) == count
    return report


def test_memcached_and_a_server_that_speaks_first_are_generic_tcp(tmp_path: Path) -> None:
    scenarios = ["kv/basic", "kv/cas", "kv/large", "paced", "kv/basic"]
    recorded = record_scenarios(tmp_path, scenarios, protocol="auto")
    assert [status for _, status, _ in recorded.answers] == [200] * len(scenarios)
    mocks = all_mocks(tmp_path)
    assert {m.protocol for m in mocks} == {"tcp"}
    sends: dict[str, list[Any]] = {m.dep: [] for m in mocks}
    for m in mocks:
        assert isinstance(m.request, WireRequest)
        sends[m.dep].append(m.request.data["send"])
    assert "get tcpapp:user:1\r\n" in sends["cache"]
    assert "" not in sends["cache"]  # memcached waits for the client
    assert sends["paced"][:2] == ["", "WAIT\r\n"]  # the greeting came first
    replay_passes(tmp_path, len(scenarios))


PG_SCHEMA = """
CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE, score numeric);
CREATE TABLE log (id serial PRIMARY KEY, msg text);
INSERT INTO items (name, score) VALUES ('first', 1.25), ('second', NULL);
"""
PG_SCENARIOS = [
    "psycopg/basic",
    "psycopg/insert?arg=auto-item",
    "psycopg2/basic",
    "asyncpg/basic",
    "psql/basic",
]


def test_postgres_is_handed_to_the_postgres_proxy(tmp_path: Path) -> None:
    answers = []
    with postgres_server() as pg:
        pg.psql(PG_SCHEMA)
        port = free_port()
        write_config(
            tmp_path,
            command=f"{sys.executable} {APPS / 'pgapp.py'} {port}",
            port=port,
            health="/health",
            deps={"db": {"protocol": "auto", "upstream": pg.address}},
            env={
                "PG_DSN": (
                    f"host={{deps.db.host}} port={{deps.db.port}} user={pg.user} "
                    f"password={pg.password} dbname={pg.database}"
                ),
                "PG_URL": f"postgresql://{pg.user}:{pg.password}@{{deps.db}}/{pg.database}",
                "PATH": f"{pg.bin_dir}:{os.environ.get('PATH', '')}",
                "PGAPP_DB": "{deps.db}",
            },
            extra={"app": {"startup_timeout": 60}},
        )
        with Recording(tmp_path) as rec:
            for path in PG_SCENARIOS:
                answers.append((path, *get_json(f"{rec.url}/{path}")))
            assert rec.stop() == 0, rec.output()
    # PostgreSQL is stopped from here on.
    for path, status, body in answers:
        assert status == 200, (path, body)
    assert answers[0][2]["result"] == [[1, "first", "1.25"]]
    mocks = all_mocks(tmp_path)
    assert {m.protocol for m in mocks} == {"postgres"}
    summaries = [m.request.summary for m in mocks]
    assert any("SELECT id, name, score FROM items WHERE id = $1" in s for s in summaries)
    replay_passes(tmp_path, len(PG_SCENARIOS))


def test_redis_is_handed_to_the_redis_proxy(tmp_path: Path) -> None:
    scenarios = ["sync2/basic", "async3/basic", "sync3-py/basic"]
    with redis_server(password=REDIS_PASSWORD) as server:
        port = free_port()
        write_config(
            tmp_path,
            command=f"{sys.executable} {APPS / 'redisapp.py'} {port}",
            port=port,
            health="/health",
            deps={"cache": {"protocol": "auto", "upstream": server.address}},
            env={
                "REDIS_HOST": "{deps.cache.host}",
                "REDIS_PORT": "{deps.cache.port}",
                "REDIS_PASSWORD": REDIS_PASSWORD,
            },
            extra={"app": {"startup_timeout": 60}},
        )
        with Recording(tmp_path) as rec:
            answers = [get_json(f"{rec.url}/{path}") for path in scenarios]
            assert rec.stop() == 0, rec.output()
    # redis-server is stopped from here on.
    for status, body in answers:
        assert status == 200, body
        assert body["result"][:3] == [True, "alice", None], body
    mocks = all_mocks(tmp_path)
    assert {m.protocol for m in mocks} == {"redis"}
    replay_passes(tmp_path, len(scenarios))


def record_twice(
    dir: Path, upstream_port: int, url: str, extra: dict[str, Any] | None = None
) -> Any:
    """Record caller.py's ``/twice`` with ``up``, an ``auto`` dependency in front of
    upstream.py on ``upstream_port``, at ``url`` in the app's ``UPSTREAM_URL``; its answer."""
    port = free_port()
    write_config(
        dir,
        command=shlex.join([sys.executable, str(APPS / "caller.py"), "--port", str(port)]),
        port=port,
        health="/healthz",
        env={"UPSTREAM_URL": url},
        deps={"up": {"protocol": "auto", "upstream": f"127.0.0.1:{upstream_port}"}},
        extra=extra,
    )
    with Recording(dir) as rec:
        answer = get_json(f"{rec.url}/twice")
        assert rec.stop() == 0, rec.output()
    return answer


def twice_replays(dir: Path, answer: Any) -> None:
    """The recorded ``/twice`` was answered by the real upstream, went through the HTTP proxy,
    and replays (the upstream is stopped by now)."""
    status, body = answer
    assert status == 200, body
    assert body == {"first": 1, "second": 2, "total": 3}, body
    mocks = all_mocks(dir)
    assert [m.protocol for m in mocks] == ["http", "http"]
    assert all(m.dep == "up" for m in mocks)
    replay_passes(dir, 1)


def test_http_is_handed_to_the_http_proxy(tmp_path: Path) -> None:
    upstream_port = free_port()
    upstream = Proc(
        [sys.executable, str(APPS / "upstream.py"), "--port", str(upstream_port)],
        name="upstream",
        port=upstream_port,
        log_dir=tmp_path / "logs",
    )
    try:
        upstream.wait_ready(timeout=15)
        answer = record_twice(tmp_path, upstream_port, "http://{deps.up}")
    finally:
        upstream.stop()
    twice_replays(tmp_path, answer)
