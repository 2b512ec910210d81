"""Generic TCP end to end: memcached and a paced line server recorded, replayed without them.

A real memcached (text protocol, driven by pymemcache in tests/apps/tcpapp.py) and the paced
server of tests/helpers/memcached_server.py (it speaks first and pauses between its lines) serve
a module recording. Both are then stopped, so any replay that reached them would fail, and
``wiretape test`` must pass every test. Further tests cover a changed key (a miss with its
explanation), the recorded pauses against ``--latency none``, the stored form, and the mock
server driven directly by raw sockets: bytes that match nothing, bytes that stop half-way,
pipelined turns and bytes sent one at a time.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.memcached_server import GAP_S, THINK_S, Server, memcached_server, paced_server
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.wt import Recording, get_json, load, run_test_json, set_path, write_config

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import Miss, Mock, WireRequest, WireResponse
from wiretape.protocols.tcp import send_of
from wiretape.proxy import tcp as tcp_proxy
from wiretape.proxy.server import Listener
from wiretape.proxy.tcp import TcpMockServer

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "tests" / "apps" / "tcpapp.py"
SCENARIOS = [
    "kv/basic",
    "kv/noreply",
    "kv/counter",
    "kv/multi",
    "kv/cas",
    "kv/large",
    "kv/secret",
    "kv/large-secret",
    "kv/basic",  # the same commands again: answered again, in recorded order
    "paced",
    "paced/echo/hi",
]


def configure(dir: Path, memcached: Server, paced: Server, protocol: str = "tcp") -> None:
    port = free_port()
    write_config(
        dir,
        command=f"{sys.executable} {APP} {port}",
        port=port,
        health="/health",
        deps={
            "cache": {"protocol": protocol, "upstream": memcached.address},
            "paced": {"protocol": protocol, "upstream": paced.address},
        },
        env={"MEMCACHED": "{deps.cache}", "PACED": "{deps.paced}"},
        extra={"app": {"startup_timeout": 60}},
    )


@dataclass
class Recorded:
    dir: Path
    answers: list[tuple[str, int, Any]]


def record_scenarios(dir: Path, scenarios: list[str], protocol: str = "tcp") -> Recorded:
    answers = []
    with memcached_server() as memcached, paced_server() as paced:
        configure(dir, memcached, paced, protocol)
        with Recording(dir) as rec:
            for path in scenarios:
                status, body = get_json(f"{rec.url}/{path}")
                answers.append((path, status, body))
            assert rec.stop() == 0, rec.output()
    # Both servers are stopped from here on.
    return Recorded(dir, answers)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    yield record_scenarios(tmp_path_factory.mktemp("tcp"), SCENARIOS)


def answer(recorded: Recorded, path: str) -> Any:
    for name, status, body in recorded.answers:
        if name == path:
            assert status == 200, (path, body)
            return body
    raise AssertionError(f"{path} was not recorded")


def test_the_recording_saw_real_answers(recorded: Recorded) -> None:
    for path, status, body in recorded.answers:
        assert status == 200, (path, body)
    assert answer(recorded, "kv/basic")["result"] == [True, "alice", None, True, None]
    assert answer(recorded, "kv/noreply")["result"] == ["shh"]
    assert answer(recorded, "kv/counter")["result"] == [True, 15, 13, None]
    assert answer(recorded, "kv/multi")["result"] == [
        [],
        {"tcpapp:a": "1", "tcpapp:b": "2"},
    ]
    assert answer(recorded, "kv/cas")["result"] == ["v1", True, False, "v2"]
    assert answer(recorded, "kv/large")["result"] == [True, 100 * 1024, True]
    assert answer(recorded, "kv/secret")["result"] == [True, 20, True]
    assert answer(recorded, "kv/large-secret")["result"] == [True, 2 * 100 * 1024 + 22, True]
    assert answer(recorded, "paced") == {
        "greeting": ["HELLO paced"],
        "answer": ["one", "two", "END"],
        "bye": ["BYE"],
    }
    assert answer(recorded, "paced/echo/hi")["answer"] == ["hi"]


def test_replay_without_the_servers_passes_every_test(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0
    assert len(report["results"]) == len(SCENARIOS)


def _mocks(recorded: Recorded) -> list[Mock]:
    test_set = load(recorded.dir)
    return [*test_set.session, *(m for ms in test_set.mocks.values() for m in ms)]


def _send(mock: Mock) -> bytes:
    assert isinstance(mock.request, WireRequest)
    send = send_of(mock.request.data)
    assert isinstance(send, bytes)
    return send


def test_the_stored_form_is_readable_turns(recorded: Recorded) -> None:
    mocks = _mocks(recorded)
    assert mocks and all(m.protocol == "tcp" for m in mocks)
    cache = [m for m in mocks if m.dep == "cache"]
    gets = [m for m in cache if _send(m) == b"get tcpapp:nobody\r\n"]
    assert len(gets) == 2  # kv/basic twice
    assert all(
        isinstance(m.request, WireRequest) and m.request.data == {"send": "get tcpapp:nobody\r\n"}
        for m in gets
    )
    assert gets[0].response is not None and isinstance(gets[0].response, WireResponse)
    assert [c["data"] for c in gets[0].response.data["chunks"]] == ["END\r\n"]
    # The noreply set and the get after it are one turn: the server said nothing in between.
    quiet = [m for m in cache if _send(m).startswith(b"set tcpapp:quiet")]
    assert len(quiet) == 1 and _send(quiet[0]).endswith(b"get tcpapp:quiet\r\n")
    large = [m for m in cache if isinstance(m.response, WireResponse) and m.response.raw]
    assert sorted(_send(m) for m in large) == [
        b"get tcpapp:large\r\n",
        b"get tcpapp:large-secret\r\n",
    ]
    for mock in large:
        preview = mock.response.data  # type: ignore[union-attr]
        assert preview["size"] > 100 * 1024
        assert sum(c["size"] for c in preview["chunks"]) == preview["size"]
    paced = [m for m in mocks if m.dep == "paced"]
    greetings = [m for m in paced if _send(m) == b""]
    assert len(greetings) == 2  # one connection per paced request
    assert all(m.request.reusable for m in greetings)
    [wait] = [m for m in paced if _send(m) == b"WAIT\r\n"]
    assert isinstance(wait.response, WireResponse)
    delays = [c["delay_ms"] for c in wait.response.data["chunks"]]
    assert len(delays) == 2
    assert delays[0] >= THINK_S * 1000 * 0.8 and delays[1] >= GAP_S * 1000 * 0.8
    quits = [m for m in paced if _send(m) == b"QUIT\r\n"]
    assert len(quits) == 2
    assert all(isinstance(m.response, WireResponse) and m.response.data.get("close") for m in quits)
    # On disk: the text as it went over the wire, readable.
    files = (set_path(recorded.dir) / "mocks").glob("*.yaml")
    assert any('send: "get tcpapp:nobody\\r\\n"' in f.read_text() for f in files)


def test_recorded_pauses_are_honoured_unless_latency_is_none(recorded: Recorded) -> None:
    paced_total = THINK_S + GAP_S
    done, report = run_test_json(recorded.dir, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    by_target = {r["target"]: r for r in report["results"]}
    assert by_target["/paced"]["duration"] >= paced_total * 0.8
    done, fast = run_test_json(recorded.dir, args=["--latency", "none"], timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    by_target = {r["target"]: r for r in fast["results"]}
    assert by_target["/paced"]["duration"] <= paced_total * 0.6
    assert all(r["status"] == "passed" for r in fast["results"])


def test_a_changed_key_misses_with_an_explanation(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, env={"TCPAPP_VARIANT": "changed"}, timeout=300)
    assert done.returncode == 1
    basic = next(r for r in report["results"] if r["target"] == "/kv/basic")
    assert basic["status"] == "failed"
    assert basic["misses"], basic
    miss = basic["misses"][0]
    assert miss["dep"] == "cache"
    assert "tcpapp:changed:user:1" in miss["request"]
    best = miss["candidates"][0]
    assert "tcpapp:user:1" in best["differences"][0]
    # The app saw the connection close: its answer says so, and differs from the recording.
    assert any(d["path"].startswith("body") for d in basic["differences"]), basic
    # The paced server's turns did not change: those tests still pass.
    paced = next(r for r in report["results"] if r["target"] == "/paced")
    assert paced["status"] == "passed", paced


API_KEY = b"AKIA" + b"TCPAPPEXAMPLE123"  # tests/apps/tcpapp.py's


def test_keys_in_the_bytes_are_stored_as_placeholders_of_the_same_length(
    recorded: Recorded,
) -> None:
    root = set_path(recorded.dir)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.parent.name == "bodies" for p in files)  # the large answer is kept aside
    for path in files:
        assert API_KEY not in path.read_bytes(), path
    [secrets] = (recorded.dir / "wiretape" / ".secrets").glob("*.yaml")
    assert API_KEY.decode() in secrets.read_text()
    tagged = [_send(m) for m in _mocks(recorded) if b"wiretape:secret:" in _send(m)]
    [stored] = [send for send in tagged if send.startswith(b"set tcpapp:apikey ")]
    value = stored.split(b"\r\n")[1]
    assert value.startswith(b"wiretape:secret:") and len(value) == len(API_KEY)


def test_without_the_secrets_file_a_key_the_app_sends_misses_and_stays_hidden(
    recorded: Recorded,
) -> None:
    [secrets] = (recorded.dir / "wiretape" / ".secrets").glob("*.yaml")
    away = secrets.with_name("away")
    secrets.rename(away)
    try:
        done, report = run_test_json(recorded.dir, timeout=300)
    finally:
        away.rename(secrets)
    assert done.returncode == 1
    assert API_KEY.decode() not in json.dumps(report)
    result = next(r for r in report["results"] if r["target"] == "/kv/secret")
    assert result["status"] == "failed" and result["misses"], result
    assert "wiretape:secret:unknown-1" in result["misses"][0]["request"]
    basic = next(r for r in report["results"] if r["target"] == "/kv/basic")
    assert basic["status"] == "passed", basic


# -- the mock server driven directly -----------------------------------------------------------


class MockServer:
    """A TcpMockServer on a real loopback port, on its own event loop thread."""

    def __init__(self, server: TcpMockServer) -> None:
        self.loop = asyncio.new_event_loop()
        self.listener = Listener("mock tcp", server.serve)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(10)
        self.port = self.listener.port

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(0.5), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything ``sock`` receives within ``timeout``; and whether the peer closed."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


@dataclass
class Direct:
    server: MockServer
    index: MockIndex
    misses: list[Miss]
    test_id: str


@pytest.fixture
def direct(recorded: Recorded) -> Iterator[Direct]:
    """The recorded cache turns served as in the test of the first /kv/basic."""
    test_set = load(recorded.dir)
    index = MockIndex(test_set.session, dict(test_set.mocks))
    basic = next(t.id for t in test_set.tests if t.request.target == "/kv/basic")
    index.begin_test(basic)
    misses: list[Miss] = []
    dep = DepConfig("cache", "tcp", "127.0.0.1:1")
    server = MockServer(
        TcpMockServer(dep, index, _mocks(recorded), latency="none", on_miss=misses.append)
    )
    try:
        yield Direct(server, index, misses, basic)
    finally:
        server.close()


def test_bytes_that_match_nothing_close_the_connection(direct: Direct) -> None:
    with socket.create_connection(("127.0.0.1", direct.server.port), timeout=10) as sock:
        sock.sendall(b"get tcpapp:user:2\r\n")
        data, closed = _read_all(sock, 5)
    assert (data, closed) == (b"", True)
    [miss] = direct.misses
    assert miss.request == "get tcpapp:user:2\\r\\n"
    assert "recorded 'get tcpapp:user:1\\\\r\\\\n'" in miss.candidates[0].differences[0]
    assert miss.reason
    assert direct.index.misses(direct.test_id) == [miss]


def test_turns_match_on_the_reassembled_stream(direct: Direct) -> None:
    with socket.create_connection(("127.0.0.1", direct.server.port), timeout=10) as sock:
        for byte in b"set tcpapp:user:1 0 0 5\r\nalice\r\n":
            sock.sendall(bytes([byte]))
        assert _read_all(sock, 0.5) == (b"STORED\r\n", False)
        # Two turns sent at once are answered one after the other.
        sock.sendall(b"get tcpapp:user:1\r\nget tcpapp:nobody\r\n")
        data, closed = _read_all(sock, 0.5)
        assert data == b"VALUE tcpapp:user:1 0 5\r\nalice\r\nEND\r\nEND\r\n"
        assert not closed
    assert direct.misses == []


def test_bytes_that_stop_half_way_are_a_miss(
    direct: Direct, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcp_proxy, "STALL_WAIT", 0.3)
    with socket.create_connection(("127.0.0.1", direct.server.port), timeout=10) as sock:
        sock.sendall(b"set tcpapp:user:1 0 0 5\r\nal")
        data, closed = _read_all(sock, 5)
    assert (data, closed) == (b"", True)
    [miss] = direct.misses
    assert miss.request.startswith("set tcpapp:user:1 0 0 5\\r\\nal")
