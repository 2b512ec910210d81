"""Polling the app's socket while the record lane waits (``wiretape.proxy.lanepoll``).

The policy is tested on its own; the read on real socket pairs; and the whole path through the
record proxy's HTTP session with an app in its own thread, so that the app answers while the
event loop polls: every answer polled for and read directly must reach its own client, whole,
and be recorded as that client's test.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from tests.unit.proxy.test_http_inline import serving

from wiretape.model import BlobRef, Body, SetInfo
from wiretape.proxy.inbound import InboundHooks
from wiretape.proxy.lanepoll import PROBE_EVERY, LanePoll, usable_cpus
from wiretape.runner.recorder import Recorder
from wiretape.store.reader import load_set
from wiretape.store.writer import SetWriter

WINDOW = 50e-6
TIMEOUT = 10.0

# --- the policy ----------------------------------------------------------------------------


def test_a_new_lane_polls_and_a_fast_app_keeps_it_polling() -> None:
    poll = LanePoll(WINDOW)
    assert poll.worth_polling()
    for _ in range(100):
        poll.observe(10e-6)
        assert poll.worth_polling()
    assert poll.average == pytest.approx(10e-6, rel=1e-3)


def test_answers_slower_than_the_window_stop_the_polling_but_for_probes() -> None:
    poll = LanePoll(WINDOW)
    timeouts = 0
    while poll.worth_polling():  # each poll finds nothing within the window
        poll.observe(2 * WINDOW)
        timeouts += 1
        assert timeouts < 10, "polling did not stop for a slow app"
    assert timeouts >= 2, "one slow answer alone stopped the polling"
    decisions = [poll.worth_polling() for _ in range(10 * PROBE_EVERY)]
    probes = [i for i, probe in enumerate(decisions) if probe]
    assert len(probes) == 10 and probes[0] < PROBE_EVERY  # one in every PROBE_EVERY requests
    assert {b - a for a, b in itertools.pairwise(probes)} == {PROBE_EVERY}


def test_probes_that_find_fast_answers_bring_the_polling_back() -> None:
    poll = LanePoll(WINDOW)
    for _ in range(20):
        poll.observe(2 * WINDOW)
    assert not poll.worth_polling()
    probes = 0
    for _ in range(200 * PROBE_EVERY):
        if poll.worth_polling():
            probes += 1
            poll.observe(5e-6)
            if poll.average <= WINDOW:
                break
    assert poll.worth_polling()
    assert 1 <= probes <= 20


def test_a_zero_window_never_polls() -> None:
    poll = LanePoll(0.0)
    assert not any(poll.worth_polling() for _ in range(10 * PROBE_EVERY))


def test_usable_cpus_are_those_of_the_affinity_mask() -> None:
    assert usable_cpus() == len(os.sched_getaffinity(0))


def test_the_lane_polls_only_with_a_second_cpu_and_not_when_concurrent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SetWriter(tmp_path, SetInfo(name="s", created=0.0, app_command="app"))
    try:
        lane, concurrent = Recorder(writer), Recorder(writer, concurrent=True)
        monkeypatch.setattr("wiretape.proxy.inbound.usable_cpus", lambda: 2)
        assert InboundHooks(lane, "127.0.0.1", 1).lane_poll is not None
        assert InboundHooks(lane, "127.0.0.1", 1, lane_poll_us=0).lane_poll is None
        assert InboundHooks(concurrent, "127.0.0.1", 1).lane_poll is None
        monkeypatch.setattr("wiretape.proxy.inbound.usable_cpus", lambda: 1)
        assert InboundHooks(lane, "127.0.0.1", 1).lane_poll is None
    finally:
        writer.close()


# --- the read ------------------------------------------------------------------------------


@contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        ours = socket.create_connection(server.getsockname())
        theirs, _ = server.accept()
    ours.setblocking(False)
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def test_read_returns_what_arrives_within_the_window() -> None:
    with tcp_pair() as (ours, theirs):
        poll = LanePoll(0.5)  # long enough for the thread below on a busy machine
        timer = threading.Timer(0.002, theirs.sendall, (b"HTTP/1.1 200 OK\r\n",))
        timer.start()
        try:
            assert poll.read(ours.fileno(), 65536) == b"HTTP/1.1 200 OK\r\n"
        finally:
            timer.join()
        assert 0 < poll.average < 0.5 / 8  # learned: about 2 ms, weighted by 1/8


def test_read_gives_up_after_the_window_and_counts_it_as_slow() -> None:
    with tcp_pair() as (ours, _):
        poll = LanePoll(WINDOW)
        started = time.perf_counter()
        assert poll.read(ours.fileno(), 65536) is None
        assert time.perf_counter() - started >= WINDOW
        assert poll.average == pytest.approx(2 * WINDOW / 8)


def test_read_reports_the_end_and_leaves_it_for_the_event_loop() -> None:
    with tcp_pair() as (ours, theirs):
        theirs.shutdown(socket.SHUT_WR)
        poll = LanePoll(0.5)
        assert poll.read(ours.fileno(), 65536) == b""
        assert ours.recv(10) == b""  # still readable as ended


def test_read_leaves_a_reset_to_the_event_loop() -> None:
    with tcp_pair() as (ours, theirs):
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        theirs.close()  # an RST
        poll = LanePoll(0.5)
        assert poll.read(ours.fileno(), 65536) is None


def test_read_takes_at_most_size_bytes_and_leaves_the_rest() -> None:
    with tcp_pair() as (ours, theirs):
        theirs.sendall(b"x" * 5000)
        time.sleep(0.05)
        poll = LanePoll(0.5)
        assert poll.read(ours.fileno(), 1000) == b"x" * 1000
        assert os.read(ours.fileno(), 10000) == b"x" * 4000


# --- through the record proxy ---------------------------------------------------------------

needs_two_cpus = pytest.mark.skipif(usable_cpus() < 2, reason="the lane polls with 2 CPUs or more")

BIG = 300_000  # more than one read: the rest comes through the event loop


def _answer(target: str) -> bytes:
    """The app's answer to ``target``: its target as the body, framed as the target asks."""
    body = target.encode()
    if target.startswith("/big"):
        body = body + b"." * (BIG - len(body))
    if target.startswith("/chunked"):
        half = len(body) // 2
        chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            half,
            body[:half],
            len(body) - half,
            body[half:],
        )
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    close = b"Connection: close\r\n" if target.startswith("/close") else b""
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (close, len(body), body)


def _serve_connection(conn: socket.socket) -> None:
    with conn:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            if target.startswith("/slow"):
                time.sleep(0.003)
            if target.startswith("/reset"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            conn.sendall(_answer(target))
            if target.startswith("/close"):
                return


@contextmanager
def threaded_app() -> Iterator[int]:
    """An HTTP/1.1 app in threads of its own, so that it answers while the event loop polls."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


@asynccontextmanager
async def proxy(
    tmp_path: Path, app_port: int, window_us: int
) -> AsyncIterator[tuple[int, InboundHooks, SetWriter]]:
    writer = SetWriter(tmp_path, SetInfo(name="s", created=0.0, app_command="app"))
    hooks = InboundHooks(Recorder(writer), "127.0.0.1", app_port, lane_poll_us=window_us)
    try:
        async with serving(hooks) as port:
            yield port, hooks, writer
    finally:
        writer.close()


async def exchange(port: int, targets: list[str]) -> list[bytes]:
    """Send ``targets`` on one connection, one at a time; the bodies, as the client got them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    bodies = []
    try:
        for target in targets:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: app\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            if b"chunked" in head.lower():
                body = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                    data = await reader.readexactly(size + 2)
                    if not size:
                        break
                    body += data[:-2]
            else:
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
            bodies.append(body)
    finally:
        writer.close()
    return bodies


def read_body(body: Body) -> bytes:
    return body.read() if isinstance(body, BlobRef) else body


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def expected_body(target: str) -> bytes:
    return (
        _answer(target).partition(b"\r\n\r\n")[2]
        if not target.startswith("/chunked")
        else (target.encode())
    )


@needs_two_cpus
@pytest.mark.parametrize("window_us", [0, 200_000])
def test_answers_read_while_polling_reach_their_clients_and_their_tests(
    tmp_path: Path, window_us: int
) -> None:
    """Four connections through the lane, 25 requests each: plain, chunked and large answers.
    With a window long enough for any machine, nearly every answer is read by the poll."""
    kinds = ["/plain", "/chunked", "/big", "/plain"]

    async def test() -> None:
        with threaded_app() as app_port:
            async with proxy(tmp_path, app_port, window_us) as (port, hooks, _):
                plans = [[f"{kinds[n]}/{n}/{i}" for i in range(25)] for n in range(4)]
                results = await asyncio.gather(*(exchange(port, plan) for plan in plans))
                for plan, bodies in zip(plans, results, strict=True):
                    assert bodies == [expected_body(t) for t in plan]
                poll = hooks.lane_poll
                if window_us:
                    # The first exchange of each connection opens it on the task path.
                    assert poll is not None
                    assert poll.answered >= 80, f"only {poll.answered} of 100 answers polled"
                else:
                    assert poll is None

        tests = load_set(tmp_path / "s").tests
        assert len(tests) == 100
        for test in tests:  # each recorded answer is its own request's
            assert test.response is not None
            body = test.response.body
            assert read_body(body) == expected_body(test.request.target)

    run(test())


@needs_two_cpus
def test_an_app_that_closes_or_resets_after_a_polled_request_is_recorded_as_it_did(
    tmp_path: Path,
) -> None:
    async def test() -> None:
        with threaded_app() as app_port:
            async with proxy(tmp_path, app_port, 200_000) as (port, hooks, _):
                assert await exchange(port, ["/warm", "/close/1"]) == [
                    b"/warm",
                    b"/close/1",
                ]
                assert await exchange(port, ["/warm", "/plain/after"]) == [
                    b"/warm",
                    b"/plain/after",
                ]
                with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                    await exchange(port, ["/warm", "/reset"])
                assert await exchange(port, ["/warm", "/plain/last"]) == [b"/warm", b"/plain/last"]
                assert hooks.lane_poll is not None
                assert hooks.lane_poll.answered >= 3

        tests = {t.request.target: t for t in load_set(tmp_path / "s").tests}
        assert tests["/close/1"].response is not None
        assert tests["/close/1"].response.body == b"/close/1"
        assert tests["/reset"].error is not None  # the app died mid-answer
        assert tests["/plain/last"].response is not None

    run(test())


@needs_two_cpus
def test_a_slow_app_stops_the_polling(tmp_path: Path) -> None:
    async def test() -> None:
        with threaded_app() as app_port:
            async with proxy(tmp_path, app_port, 50) as (port, hooks, _):
                poll = hooks.lane_poll
                assert poll is not None
                await exchange(port, [f"/slow/{i}" for i in range(30)])
                assert poll.average > poll.window
                assert poll.answered == 0
                assert poll.polls <= 10, f"{poll.polls} polls for 30 answers of 3 ms"

    run(test())
