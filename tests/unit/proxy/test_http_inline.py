"""The record proxy's HTTP session over real loopback sockets, in one event loop: the inline
path serves a warm connection's exchanges, and an exchange the session cannot finish is
recorded as failed and never keeps the record lane.

The app is a small HTTP/1.1 server written for these tests (asyncio streams): it answers every
request with its own target as the body, after ``?ms=N`` milliseconds when asked, or with the
exact head and body it received for ``/echo``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from wiretape.model import SetInfo
from wiretape.protocols.http1 import RequestHead, ResponseHead
from wiretape.proxy.httpconn import Finished, HttpSession, Route
from wiretape.proxy.inbound import InboundHooks
from wiretape.proxy.server import Listener
from wiretape.proxy.streams import ByteStream
from wiretape.runner.recorder import Recorder
from wiretape.store.reader import load_set
from wiretape.store.writer import SetWriter

TIMEOUT = 5.0


async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            length = head.lower().partition(b"\r\ncontent-length: ")[2].partition(b"\r\n")[0]
            received = await reader.readexactly(int(length)) if length else b""
            ms = parse_qs(urlsplit(target).query).get("ms")
            if ms:
                await asyncio.sleep(int(ms[0]) / 1000)
            body = head + received if target == "/echo" else target.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


class Hooks(InboundHooks):
    """The inbound hooks, counting inline finishes (kept as wire bytes, or built), failing on
    ``/boom``, and with ``wire=False`` declining every exchange offered as wire bytes."""

    def __init__(self, recorder: Recorder, port: int, *, wire: bool = True) -> None:
        super().__init__(recorder, "127.0.0.1", port)
        self.wire = wire
        self.wire_finished = 0
        self.built_finished = 0

    @property
    def inline_finished(self) -> int:
        return self.wire_finished + self.built_finished

    def route(self, head: RequestHead, ticket: object) -> Route:
        if head.target.startswith("/boom"):
            raise RuntimeError("the route table is broken")
        return super().route(head, ticket)

    def finished_now(self, ticket: object, done: Finished) -> None:
        self.built_finished += 1
        super().finished_now(ticket, done)

    def finished_wire(
        self,
        ticket: object,
        request: bytes,
        response: bytes,
        heads: tuple[RequestHead, ResponseHead],
        bodies: tuple[bytes, bytes],
        started: float,
        duration: float,
    ) -> bool:
        if not self.wire:
            return False
        kept = super().finished_wire(ticket, request, response, heads, bodies, started, duration)
        self.wire_finished += kept
        return kept


@asynccontextmanager
async def proxy(
    tmp_path: Path, *, concurrent: bool = False, wire: bool = True
) -> AsyncIterator[tuple[int, Hooks, SetWriter]]:
    upstream = await asyncio.start_server(app, "127.0.0.1", 0)
    writer = SetWriter(tmp_path, SetInfo(name="s", created=0.0, app_command="app"))
    recorder = Recorder(writer, concurrent=concurrent)
    hooks = Hooks(recorder, upstream.sockets[0].getsockname()[1], wire=wire)
    try:
        async with serving(hooks) as port:
            yield port, hooks, writer
    finally:
        upstream.close()
        await upstream.wait_closed()
        writer.close()


@asynccontextmanager
async def serving(hooks: InboundHooks) -> AsyncIterator[int]:
    """The record proxy's HTTP sessions with ``hooks``, listening; yields the port."""

    async def serve(client: ByteStream) -> None:
        await HttpSession(client, hooks).run()

    listener = Listener("inbound", serve)
    await listener.start()
    try:
        yield listener.port
    finally:
        await listener.stop(grace=0.5)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, target: str) -> None:
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: app\r\n\r\n".encode())

    async def body(self) -> bytes:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        return await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)

    async def get(self, target: str) -> bytes:
        self.send(target)
        return await self.body()

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), TIMEOUT) == b""

    def close(self) -> None:
        self.writer.close()
        self.reader.feed_eof()


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_a_warm_connection_is_served_inline_through_the_lane(tmp_path: Path) -> None:
    async def test() -> None:
        async with proxy(tmp_path) as (port, hooks, _):
            clients = [await Client.open(port) for _ in range(4)]
            for n, client in enumerate(clients):  # the first exchange opens the app connection
                assert await client.get(f"/warm/{n}") == f"/warm/{n}".encode()
            assert hooks.inline_finished == 0
            for i in range(10):
                for n, client in enumerate(clients):  # four at once, queued on the lane
                    client.send(f"/r/{n}/{i}?ms=1")
                for n, client in enumerate(clients):
                    assert await client.body() == f"/r/{n}/{i}?ms=1".encode()
            for client in clients:
                client.close()
            assert hooks.inline_finished == 40, "warm exchanges were not served inline"
            assert hooks.wire_finished == 40, "clean exchanges were not kept as wire bytes"

        tests = load_set(tmp_path / "s").tests
        assert len(tests) == 44
        for test in tests:  # each recorded response is its own request's
            assert test.response is not None and test.response.body == test.request.target.encode()

    run(test())


@pytest.mark.parametrize("when", ["cold", "warm", "queued"])
def test_an_exchange_the_session_cannot_finish_is_recorded_failed_and_frees_the_lane(
    tmp_path: Path, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="wiretape.proxy")  # the expected traceback

    async def test() -> None:
        async with proxy(tmp_path) as (port, _, _):
            broken = await Client.open(port)
            if when != "cold":
                assert await broken.get("/warm") == b"/warm"
            if when == "queued":  # the broken request waits for the lane, then fails
                slow = await Client.open(port)
                assert await slow.get("/warm") == b"/warm"
                slow.send("/slow?ms=200")
                await asyncio.sleep(0.05)
            broken.send("/boom")
            assert await broken.closed()
            broken.close()
            if when == "queued":
                assert await slow.body() == b"/slow?ms=200"
                slow.close()
            after = await Client.open(port)  # the lane is free again
            assert await after.get("/after") == b"/after"
            after.close()

        tests = load_set(tmp_path / "s").tests
        failed = [t for t in tests if t.request.target == "/boom"]
        assert len(failed) == 1
        assert failed[0].response is None
        assert failed[0].error is not None
        assert "wiretape could not finish this exchange" in failed[0].error
        assert "the route table is broken" in failed[0].error
        assert tests[-1].request.target == "/after" and tests[-1].error is None

    run(test())


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_concurrent_mode_adds_a_traceparent_line_to_the_exact_head(
    tmp_path: Path, warm: bool
) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: app\r\nX-Order: 1\r\nContent-Length: 5\r\n\r\n"

    async def test() -> None:
        async with proxy(tmp_path, concurrent=True) as (port, _, _):
            client = await Client.open(port)
            if warm:
                assert await client.get("/warm") == b"/warm"
            client.writer.write(head + b"hello")
            echoed = await client.body()
            client.close()
        lines = echoed.split(b"\r\n")
        # The client's head, byte for byte, then one traceparent line, then the body.
        assert echoed.startswith(head[:-2])
        assert re.fullmatch(rb"traceparent: 00-[0-9a-f]{32}-[0-9a-f]{16}-01", lines[4]), lines
        assert echoed.endswith(b"\r\n\r\nhello")
        assert len(echoed) == len(head) + len(lines[4]) + 2 + 5

    run(test())


# Warm exchanges after ``GET /warm``: the first three hold nothing to redact; the others hold a
# credential in a header, a query parameter, a JSON body, a key format, and a JSON escape.
def _post(body: bytes, *extra: bytes) -> bytes:
    return (
        b"POST /echo HTTP/1.1\r\nHost: app\r\nContent-Type: application/json\r\n"
        + b"".join(extra)
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


EXCHANGES = [
    b"GET /a?page=2&sort=name HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n",
    _post(b'{"name": "Ada", "items": [1, 2, 3]}'),
    b"GET /echo HTTP/1.1\r\nHost: app\r\nX-Trace: t-1\r\n\r\n",
    b"GET /b HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer abc.def\r\n\r\n",
    b"GET /c?api_key=k-123&page=1 HTTP/1.1\r\nHost: app\r\n\r\n",
    _post(b'{"user": "ada", "password": "hunter2"}'),
    _post(b'{"note": "ghp_' + b"a" * 36 + b'"}'),
    _post(b'{"pass\\u0077ord": "hunter3"}'),
]
CLEAN = 3


@pytest.mark.parametrize("wire", [True, False], ids=["wire", "built"])
def test_exchanges_kept_as_wire_bytes_load_as_the_built_ones(tmp_path: Path, wire: bool) -> None:
    """The same exchanges, recorded once with the wire form allowed and once without, load as
    the same tests; only exchanges with nothing to redact take the wire form."""

    async def record(path: Path, wire: bool) -> Hooks:
        async with proxy(path, wire=wire) as (port, hooks, _):
            client = await Client.open(port)
            assert await client.get("/warm") == b"/warm"
            for raw in EXCHANGES:
                client.writer.write(raw)
                await client.body()
            client.close()
        return hooks

    async def test() -> None:
        hooks = await record(tmp_path / "a", wire)
        if wire:
            assert (hooks.wire_finished, hooks.built_finished) == (CLEAN, len(EXCHANGES) - CLEAN)
        else:
            assert (hooks.wire_finished, hooks.built_finished) == (0, len(EXCHANGES))
        reference = await record(tmp_path / "b", wire=False)
        assert reference.wire_finished == 0

        def shape(path: Path) -> list[tuple[object, ...]]:
            tests = load_set(path / "s").tests
            return [(t.id, t.request, t.response, t.error, t.upgraded) for t in tests]

        got, want = shape(tmp_path / "a"), shape(tmp_path / "b")
        assert len(got) == len(EXCHANGES) + 1
        assert got == want
        # (The app echoes requests, so only the requests are certain to be redacted.)
        requests = repr([t.request for t in load_set(tmp_path / "a" / "s").tests])
        for secret in ("abc.def", "k-123", "hunter2", "ghp_aaaa", "hunter3"):
            assert secret not in requests, secret

    run(test())
