"""Redis end to end: redis-py in every mode recorded through wiretape, replayed without Redis.

One real redis-server (``--requirepass``, no persistence, a temporary directory) serves a module
recording of tests/apps/redisapp.py, which runs each scenario with each client: sync and asyncio,
RESP2 and RESP3, hiredis and redis-py's Python parser. The server is then stopped, so any replay
that reached it would fail, and ``wiretape test`` must pass every test. Further tests cover a
changed key (a miss with its explanation), malformed bytes in both modes, the stored form, and
that the password is nowhere in the set. The mock server is also driven directly by redis-py for
request noise and for a miss at the protocol level.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.helpers.redis_server import REDIS_PASSWORD, Redis, configure_redisapp, redis_server
from tests.helpers.wt import (
    Recording,
    get_json,
    load,
    run_test_json,
    run_wiretape,
    set_path,
)

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import LinkKind, Mock, WireRequest, WireResponse
from wiretape.protocols.redis_exchange import Requests, with_request_noise
from wiretape.proxy.redis import RedisMockServer
from wiretape.proxy.server import Listener

pytestmark = pytest.mark.integration

SYNC = ("sync2", "sync3", "sync2-py", "sync3-py")
ASYNC = ("async2", "async3", "async2-py", "async3-py")
SYNC_SCENARIOS = ("parser", "basic", "pipeline", "multi", "watch", "discard", "blocking", "pubsub")
ASYNC_SCENARIOS = ("parser", "basic", "pipeline", "concurrent", "multi", "watch", "blocking")
SCENARIOS = [
    *(f"{c}/{s}" for c in SYNC for s in (*SYNC_SCENARIOS, "errors")),
    *(f"{c}/{s}" for c in ASYNC for s in (*ASYNC_SCENARIOS, "pubsub", "errors")),
    "sync2/noauth",
    "sync3-py/noauth",
    "sync2/large",
    "async3-py/large",
    "sync3/basic",  # a second time: the same commands answered again, in recorded order
    "sync2/generated",  # a UUID key and timestamps: other values on replay, matched by kind
]
PARSERS = {
    "sync2": "_HiredisParser",
    "sync3": "_HiredisParser",
    "sync2-py": "_RESP2Parser",
    "sync3-py": "_RESP3Parser",
    "async2": "_AsyncHiredisParser",
    "async3": "_AsyncHiredisParser",
    "async2-py": "_AsyncRESP2Parser",
    "async3-py": "_AsyncRESP3Parser",
}


def configure(dir: Path, server: Redis) -> None:
    configure_redisapp(dir, server)


@dataclass
class Recorded:
    dir: Path
    answers: dict[str, list[tuple[int, Any]]]
    output: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    dir = tmp_path_factory.mktemp("redis")
    answers: dict[str, list[tuple[int, Any]]] = {}
    with redis_server(password=REDIS_PASSWORD) as server:
        configure(dir, server)
        with Recording(dir) as rec:
            for path in SCENARIOS:
                answers.setdefault(path, []).append(get_json(f"{rec.url}/{path}"))
            assert rec.stop() == 0, rec.output()
            output = rec.output()
    # redis-server is stopped from here on.
    yield Recorded(dir, answers, output)


def result(recorded: Recorded, path: str) -> Any:
    status, body = recorded.answers[path][0]
    assert status == 200, (path, body)
    return body["result"]


def test_every_client_recorded_real_answers(recorded: Recorded) -> None:
    for path, answers in recorded.answers.items():
        for status, body in answers:
            assert status == 200, (path, body)
            assert "result" in body, (path, body)
    for client, parser in PARSERS.items():
        assert result(recorded, f"{client}/parser") == parser
    for client in (*SYNC, *ASYNC):
        assert result(recorded, f"{client}/basic")[:3] == [True, "alice", None]
        assert result(recorded, f"{client}/watch") == [
            "before",
            "aborted",
            "changed by another client",
        ]
        empty, waited, got, waited_for_push = result(recorded, f"{client}/blocking")
        assert (empty, waited, got, waited_for_push) == (
            None,
            True,
            [f"{client}:queue", "job-1"],
            True,
        )
        messages = [m for m in result(recorded, f"{client}/pubsub") if "message" in m[0]]
        assert [m[-1] for m in messages][:3] == ["hello 0", "hello 1", "hello 2"]
        assert "WRONGTYPE" in json.dumps(result(recorded, f"{client}/errors"))
    assert result(recorded, "sync2/multi")[:3] == [True, 2, "2"]
    # redis-py reads SET's QUEUED as False; EXISTS 0 shows the SET was discarded.
    assert result(recorded, "sync2/discard") == ["OK", False, "OK", 0]
    assert result(recorded, "sync2/pipeline")[:3] == [True, 1, "1"]
    assert len(result(recorded, "sync2/pipeline")) == 300
    assert result(recorded, "sync2/noauth")["message"] == "Authentication required."
    assert result(recorded, "sync2/generated") == [True, "alice", True, 1]
    for path in ("sync2/large", "async3-py/large"):
        assert result(recorded, path)[0] == 50 * 1024 * 1024
        assert result(recorded, path)[2] is True


def test_replay_without_redis_passes_every_test(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0
    assert len(report["results"]) == len(SCENARIOS)
    by_target = {r["target"]: r for r in report["results"]}
    # Blocking answers came at their recorded delay (each scenario blocks about 0.5 s in all).
    assert by_target["/sync2/blocking"]["duration"] >= 0.4
    assert by_target["/async3-py/blocking"]["duration"] >= 0.4


def _mocks(recorded: Recorded) -> list[Mock]:
    test_set = load(recorded.dir)
    return [*test_set.session, *(m for ms in test_set.mocks.values() for m in ms)]


def _args(mock: Mock) -> list[Any]:
    assert isinstance(mock.request, WireRequest)
    data = mock.request.data
    args = data["command"] if isinstance(data, dict) else data
    assert isinstance(args, list)
    return args


def _named(mocks: list[Mock], *words: str) -> list[Mock]:
    return [m for m in mocks if [str(a).upper() for a in _args(m)[: len(words)]] == list(words)]


def test_stored_form_is_readable_and_secret_free(recorded: Recorded) -> None:
    mocks = _mocks(recorded)
    assert all(m.protocol == "redis" for m in mocks)
    auth = _named(mocks, "AUTH")
    assert auth and all(m.request.data == ["AUTH", "wiretape:secret"] for m in auth)
    hello = _named(mocks, "HELLO")
    assert hello
    assert all(
        m.request.data == ["HELLO", "3", "AUTH", "default", "wiretape:secret"] for m in hello
    )
    assert all(m.request.reusable for m in (*auth, *hello, *_named(mocks, "SELECT")))
    blpop = _named(mocks, "BLPOP")
    assert blpop
    for m in blpop:
        assert isinstance(m.response, WireResponse) and isinstance(m.response.data, dict)
        assert m.response.data["delay_ms"] >= 150
    subscribed = [
        m
        for m in _named(mocks, "SUBSCRIBE") + _named(mocks, "PSUBSCRIBE")
        if isinstance(m.response, WireResponse) and "after" in m.response.data
    ]
    assert subscribed, "pub/sub messages are kept with their delay"
    queued = [m for m in mocks if isinstance(m.request.data, dict) and m.request.data.get("tx")]
    assert queued
    large = [m for m in mocks if isinstance(m.response, WireResponse) and m.response.raw]
    assert len(large) == 2
    big_sets = [m for m in _named(mocks, "SET") if "sha256" in str(_args(m)[2])]
    assert [_args(m)[2]["size"] for m in big_sets] == [50 * 1024 * 1024] * 2
    for path in set_path(recorded.dir).rglob("*"):
        if path.is_file():
            assert REDIS_PASSWORD.encode() not in path.read_bytes(), path
    scan = run_wiretape(recorded.dir, "secrets", "scan", "s")
    assert scan.returncode == 0, scan.stdout + scan.stderr


def test_a_changed_key_misses_with_an_explanation(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, env={"REDISAPP_VARIANT": "changed"}, timeout=300)
    assert done.returncode == 1
    basic = next(r for r in report["results"] if r["target"] == "/sync2/basic")
    assert basic["status"] == "failed"
    [miss] = basic["misses"]
    assert miss["request"] == "SET sync2:changed:user:1 alice"
    best = miss["candidates"][0]
    assert "SET sync2:user:1 alice" in best["differences"][0]
    # The app saw the explanation as a Redis error.
    noauth = next(r for r in report["results"] if r["target"] == "/sync2/noauth")
    text = json.dumps(noauth["differences"])
    assert "wiretape: no recorded answer for GET sync2:changed:user:1" in text
    assert f"closest recording {noauth['misses'][0]['candidates'][0]['mock_id']}" in text


def test_malformed_bytes_pass_through_when_recording_and_close_when_replaying(
    tmp_path: Path,
) -> None:
    with redis_server(password=REDIS_PASSWORD) as server:
        configure(tmp_path, server)
        with Recording(tmp_path) as rec:
            status, body = get_json(f"{rec.url}/raw/malformed")
            assert status == 200, body
            # The real server saw the bytes, untouched, and refused them itself.
            assert body["result"]["reply"].startswith("-ERR Protocol error"), body
            assert body["result"]["closed"] is True
            status, after = get_json(f"{rec.url}/sync2/basic")
            assert status == 200, after
            assert rec.stop() == 0
            assert "passing this connection through" in rec.output()
    done, report = run_test_json(tmp_path, timeout=120)
    raw, basic = report["results"]
    assert raw["status"] == "failed"
    actual = {d["path"]: d["actual"] for d in raw["differences"]}
    assert actual["body.result.reply"].startswith("-ERR wiretape: malformed command:"), actual
    assert "body.result.closed" not in actual  # closed after the error, as the server did
    assert basic["status"] == "passed", basic  # the other connections kept working
    assert done.returncode == 1


# -- the mock server driven directly -----------------------------------------------------------


class MockServer:
    """A RedisMockServer on a real loopback port, on its own event loop thread."""

    def __init__(self, server: RedisMockServer) -> None:
        self.loop = asyncio.new_event_loop()
        self.listener = Listener("mock cache", server.serve)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(10)
        self.port = self.listener.port

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(0.5), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _mock(id: str, data: list[str], response: Any, test: str | None = "t1") -> Mock:
    request = Requests().request([a.encode() for a in data])
    return Mock(
        id=id,
        dep="cache",
        protocol="redis",
        request=request,
        response=WireResponse(response),
        test=test,
        link=LinkKind.LANE,
    )


def test_request_noise_rules_of_the_dependency() -> None:
    rules = (("SET", (1,)), ("GET", (1,)))
    recorded = [
        _mock("cache-1", ["SET", "session-0a1b", "alice"], {"reply": {"simple": "OK"}}),
        _mock("cache-2", ["GET", "session-0a1b"], {"reply": "alice"}),
    ]
    # As replay keys recorded mocks: without the arguments the rules name.
    keyed = [replace(m, request=with_request_noise(m.request, rules)) for m in recorded]
    index = MockIndex([], {"t1": keyed})
    index.begin_test("t1")
    dep = DepConfig("cache", "redis", "127.0.0.1:1", request_noise=rules)
    server = MockServer(RedisMockServer(dep, index))
    try:
        client = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
        session = f"session-{time.time_ns()}"  # generated by the app: differs on every run
        assert client.set(session, "alice") is True
        assert client.get(session) == b"alice"
        with pytest.raises(redis.ResponseError, match="no recorded answer for SET session-1 bob"):
            client.set("session-1", "bob")  # the rule covers the key, not the value
        client.close()
    finally:
        server.close()
    assert index.unused("t1") == []


def test_a_miss_and_malformed_bytes_at_the_protocol_level() -> None:
    mocks = [_mock("cache-1", ["GET", "k"], {"reply": "v"}, test=None)]
    index = MockIndex(mocks, {})
    index.begin_test(None)
    server = MockServer(RedisMockServer(DepConfig("cache", "redis", "127.0.0.1:1"), index))
    try:
        good = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
        assert good.get("k") == b"v"
        with pytest.raises(redis.ResponseError) as miss:
            good.get("kk")
        assert "wiretape: no recorded answer for GET kk; closest recording cache-1" in str(
            miss.value
        )
        assert [m.request for m in index.misses(None) if m.request.startswith("GET")] == ["GET kk"]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as bad:
            bad.sendall(b"*1\r\n:12\r\n")
            data = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chunk = bad.recv(4096)
                if not chunk:
                    break
                data += chunk
        assert data.startswith(b"-ERR wiretape: malformed command: expected '$'"), data
        assert good.get("k") == b"v"  # the other connection keeps working
        good.close()
    finally:
        server.close()


def test_a_value_over_max_message_size_is_refused_on_replay() -> None:
    index = MockIndex([], {})
    index.begin_test(None)
    dep = DepConfig("cache", "redis", "127.0.0.1:1", max_message_size=1024)
    server = MockServer(RedisMockServer(dep, index))
    try:
        client = redis.Redis(port=server.port, protocol=2, socket_timeout=10)
        with pytest.raises(redis.ResponseError, match="longer than max_bulk_length=1024"):
            client.set("k", b"x" * 2000)
        client.close()
    finally:
        server.close()
