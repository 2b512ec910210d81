"""Transcript tests of the forwarding loop over in-memory streams: no sockets involved.

Each test plays the client and the upstream by hand and checks the exact bytes each side sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from wiretape.model import Body, Headers, HttpRequest
from wiretape.protocols.http1 import RequestHead
from wiretape.proxy.httpconn import (
    BodySink,
    Finished,
    HttpSession,
    MemorySink,
    Route,
)
from wiretape.proxy.streams import ByteStream, MemoryStream, memory_pair


@dataclass
class Hooks:
    """The hooks of a plain reverse proxy that keeps what finished."""

    done: list[Finished] = field(default_factory=list)
    admitted: list[str] = field(default_factory=list)
    takes_connect: bool = False

    async def admit(self, head: RequestHead) -> object:
        self.admitted.append(head.target)
        return head.target

    def route(self, head: RequestHead, ticket: object) -> Route:
        return Route(("up",), "upstream", 80)

    def request_of(self, head: RequestHead, body: Body, trailers: Headers) -> HttpRequest:
        return HttpRequest(head.method, head.target, head.headers, body, head.version)

    def new_sink(self) -> BodySink:
        return MemorySink()

    async def finished(self, ticket: object, done: Finished) -> None:
        self.done.append(done)

    async def connect(self, head: RequestHead, client: ByteStream, leftover: bytes) -> None:
        raise AssertionError("not used")


class Rig:
    def __init__(self) -> None:
        self.hooks = Hooks()
        self.client, server_side = memory_pair("client", "proxy")
        self.upstreams: asyncio.Queue[MemoryStream] = asyncio.Queue()

        async def connector(route: Route, timeout: float) -> ByteStream:
            ours, theirs = memory_pair("proxy", "upstream")
            self.upstreams.put_nowait(theirs)
            return ours

        self.session = HttpSession(server_side, self.hooks, connector=connector)
        self.task = asyncio.create_task(self.session.run())

    async def upstream(self) -> MemoryStream:
        return await asyncio.wait_for(self.upstreams.get(), 2)


async def read_exactly(stream: MemoryStream, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = await asyncio.wait_for(stream.read(), 2)
        assert chunk, f"stream ended after {got!r}"
        got += chunk
    return got


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


REQ = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_request_and_its_response_pass_through_byte_for_byte() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.client.write(REQ)
        up = await rig.upstream()
        assert await read_exactly(up, len(REQ)) == REQ
        up.write(RESP)
        assert await read_exactly(rig.client, len(RESP)) == RESP
        rig.client.close()
        await rig.task
        [done] = rig.hooks.done
        assert done.response is not None and done.response.body == b"ok"
        assert done.request.target == "/a" and done.error is None

    run(scenario)


def test_a_pipelined_request_waits_for_the_previous_response() -> None:
    async def scenario() -> None:
        rig = Rig()
        second = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        rig.client.write(REQ + second)
        up = await rig.upstream()
        assert await read_exactly(up, len(REQ)) == REQ
        await asyncio.sleep(0.01)
        assert up._inbox.empty()  # /b is held back while /a is answered
        up.write(RESP)
        assert await read_exactly(up, len(second)) == second
        up.write(RESP)
        assert await read_exactly(rig.client, 2 * len(RESP)) == RESP + RESP
        rig.client.close()
        await rig.task
        assert [d.request.target for d in rig.hooks.done] == ["/a", "/b"]

    run(scenario)


def test_expect_100_continue_waits_for_the_upstream() -> None:
    async def scenario() -> None:
        rig = Rig()
        head = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        rig.client.write(head)
        up = await rig.upstream()
        assert await read_exactly(up, len(head)) == head
        cont = b"HTTP/1.1 100 Continue\r\n\r\n"
        up.write(cont)
        assert await read_exactly(rig.client, len(cont)) == cont
        rig.client.write(b"data")
        assert await read_exactly(up, 4) == b"data"
        up.write(RESP)
        assert await read_exactly(rig.client, len(RESP)) == RESP
        rig.client.close()
        await rig.task
        [done] = rig.hooks.done
        assert done.request.body == b"data"

    run(scenario)


def test_an_upstream_that_closes_without_answering_gets_a_502() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.client.write(REQ)
        up = await rig.upstream()
        await read_exactly(up, len(REQ))
        up.close()
        reply = b""
        while chunk := await asyncio.wait_for(rig.client.read(), 2):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert b"closed the connection without answering" in reply
        await rig.task
        [done] = rig.hooks.done
        assert done.error is not None and "without answering" in done.error
        assert done.response is not None and done.response.status == 502

    run(scenario)


def test_a_malformed_request_gets_a_400_and_nothing_goes_upstream() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.client.write(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        reply = b""
        while chunk := await asyncio.wait_for(rig.client.read(), 2):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"malformed HTTP request" in reply
        await rig.task
        assert rig.upstreams.empty() and rig.hooks.done == []

    run(scenario)


def test_a_chunked_response_streams_before_it_ends() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.client.write(REQ)
        up = await rig.upstream()
        await read_exactly(up, len(REQ))
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        up.write(head + b"5\r\nhello\r\n")
        first = await read_exactly(rig.client, len(head) + 10)
        assert first == head + b"5\r\nhello\r\n"  # forwarded before the body is complete
        up.write(b"0\r\n\r\n")
        assert await read_exactly(rig.client, 5) == b"0\r\n\r\n"
        rig.client.close()
        await rig.task
        [done] = rig.hooks.done
        assert done.response is not None and done.response.body == b"hello"

    run(scenario)
