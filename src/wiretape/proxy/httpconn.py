"""The HTTP/1.x forwarding loop shared by the inbound and the outbound proxies.

How this works: one ``HttpSession`` serves one client connection. It parses the client's
request stream with the sans-I/O codec and, for each request, asks its ``Hooks`` for admission
(the record lane), for a route (which upstream, and an optional rewritten head) and for body
sinks. The exact raw bytes of each parsed event go to the peer at once, so bodies stream and are
never held whole on the forwarding path; the sinks receive the decoded body bytes for the
recording. Responses are parsed the same way in the other direction. When the response ends the
hooks get a finished ``HttpRequest``/``HttpResponse`` pair (or an error) to record.

Requests on one client connection are handled in order: a pipelined request waits until the
previous response is complete, which is what lets the record lane admit one request at a time.
A 101 response or a CONNECT that the hooks do not take over turns the connection into a raw
tunnel that is forwarded untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from wiretape.errors import ProtocolError
from wiretape.model import Body, Headers, HttpRequest, HttpResponse
from wiretape.protocols.http1 import (
    BodyData,
    EndOfMessage,
    Http1Parser,
    Informational,
    Kind,
    Paused,
    RequestHead,
    ResponseHead,
    encode_response,
    is_keep_alive,
)
from wiretape.proxy.streams import ByteStream, open_stream

log = logging.getLogger("wiretape.proxy")


class BodySink(Protocol):
    def write(self, data: bytes) -> None: ...

    def finish(self) -> Body: ...

    def abort(self) -> None: ...


class MemorySink:
    __slots__ = ("_parts", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self.size += len(data)

    def finish(self) -> Body:
        return b"".join(self._parts)

    def abort(self) -> None:
        self._parts.clear()


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes."""

    key: tuple[object, ...]  # connections are reused while the key stays the same
    host: str
    port: int
    tls: object | None = None  # ssl.SSLContext for https upstreams
    server_hostname: str | None = None
    head: bytes | None = None  # rewritten request head; None forwards the raw head


class RouteError(Exception):
    """The hooks cannot route this request; ``status`` is answered to the client."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(slots=True)
class Finished:
    """What the hooks receive when one exchange is over."""

    request: HttpRequest
    response: HttpResponse | None
    error: str | None
    started: float
    duration: float
    upgraded: bool = False


class Hooks(Protocol):
    async def admit(self, head: RequestHead) -> object:
        """Wait until this request may go upstream; return a ticket for ``finished``."""
        ...

    def route(self, head: RequestHead, ticket: object) -> Route: ...

    def request_of(self, head: RequestHead, body: Body, trailers: Headers) -> HttpRequest: ...

    def new_sink(self) -> BodySink: ...

    async def finished(self, ticket: object, done: Finished) -> None: ...

    @property
    def takes_connect(self) -> bool:
        """Whether ``connect`` serves CONNECT requests (else they are forwarded upstream)."""
        ...

    async def connect(self, head: RequestHead, client: ByteStream, leftover: bytes) -> None:
        """Serve a CONNECT tunnel; owns ``client`` until it returns."""
        ...


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_reply(status: int, message: str) -> HttpResponse:
    """The answer wiretape gives itself when it cannot forward; it is recorded as such."""
    body = ("wiretape: " + message + "\n").encode("utf-8", "replace")
    headers = (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        ("X-Wiretape-Error", "1"),
    )
    return HttpResponse(status, _REASONS.get(status, "Error"), headers, body)


def error_response(status: int, message: str) -> bytes:
    return encode_response(error_reply(status, message))


class _Upstream:
    __slots__ = ("key", "parser", "stream")

    def __init__(self, key: tuple[object, ...], stream: ByteStream) -> None:
        self.key = key
        self.stream = stream
        self.parser = Http1Parser(Kind.RESPONSE)


class _ClientGone(Exception):
    pass


Connector = Callable[[Route, float], Awaitable[ByteStream]]


async def connect_route(route: Route, timeout: float) -> ByteStream:
    return await open_stream(
        route.host,
        route.port,
        tls=route.tls,  # type: ignore[arg-type]
        server_hostname=route.server_hostname,
        timeout=timeout,
    )


class HttpSession:
    def __init__(
        self,
        client: ByteStream,
        hooks: Hooks,
        *,
        connect_timeout: float = 10.0,
        connector: Connector = connect_route,
    ) -> None:
        self.client = client
        self.hooks = hooks
        self.connector = connector
        self.parser = Http1Parser(Kind.REQUEST)
        self.upstream: _Upstream | None = None
        self.connect_timeout = connect_timeout
        self._client_eof = False

    async def run(self) -> None:
        try:
            while True:
                head = await self._next_head()
                if head is None:
                    return
                keep = await self._exchange(head)
                if not keep:
                    return
        except ProtocolError as exc:
            log.warning("malformed request from %s: %s", self.client.peer, exc)
            self.client.write(error_response(400, f"malformed HTTP request: {exc}"))
            await self.client.drain()
        except _ClientGone:
            pass
        finally:
            self._close_upstream()
            self.client.close()

    async def _read_client(self) -> bool:
        data = await self.client.read()
        if not data:
            self._client_eof = True
            return False
        self.parser.feed(data)
        return True

    async def _next_head(self) -> RequestHead | None:
        while True:
            ev = self.parser.next_event()
            if isinstance(ev, RequestHead):
                return ev
            if isinstance(ev, Paused):
                # An Upgrade/CONNECT request whose response did not switch protocols.
                self.parser.resume()
                continue
            if isinstance(ev, (BodyData, EndOfMessage)):
                raise ProtocolError(f"unexpected {type(ev).__name__} between requests")
            if self._client_eof or not await self._read_client():
                if self.parser.in_message:
                    self.parser.feed_eof()
                return None

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.stream.close()
            self.upstream = None

    async def _connect(self, route: Route) -> _Upstream:
        up = self.upstream
        if up is not None and up.key == route.key:
            return up
        self._close_upstream()
        stream = await self.connector(route, self.connect_timeout)
        self.upstream = _Upstream(route.key, stream)
        return self.upstream

    async def _exchange(self, head: RequestHead) -> bool:
        """Forward one request and its response. Returns whether the connection goes on."""
        raw_head = self.parser.take_raw()
        ticket = await self.hooks.admit(head)
        started_wall = time.time()
        started = time.perf_counter()
        req_sink = self.hooks.new_sink()
        resp_sink: BodySink | None = None
        state = _ExchangeState()
        try:
            if head.method == "CONNECT" and self.hooks.takes_connect:
                await self._drain_request(req_sink, state)
                await self.hooks.connect(head, self.client, self.parser.take_trailing())
                return False
            try:
                route = self.hooks.route(head, ticket)
                up = await self._connect(route)
            except RouteError as exc:
                await self._drain_request(req_sink, state)
                reply = error_reply(exc.status, exc.message)
                self.client.write(encode_response(reply))
                await self._finish(
                    ticket, head, req_sink, state, reply, exc.message, started_wall, started
                )
                return False
            except (TimeoutError, OSError) as exc:
                message = f"cannot connect to upstream {route.host}:{route.port}: {exc}"
                await self._drain_request(req_sink, state)
                reply = error_reply(502, message)
                self.client.write(encode_response(reply))
                await self._finish(
                    ticket, head, req_sink, state, reply, message, started_wall, started
                )
                return False
            up.parser.expect_response_to(head.method)
            first = route.head if route.head is not None else raw_head
            body_task: asyncio.Task[None] | None = None
            if not self._forward_request_body(up, req_sink, state, first):
                body_task = asyncio.create_task(self._pump_request_body(up, req_sink, state))
            resp_sink = self.hooks.new_sink()
            response = await self._pump_response(up, resp_sink, state, head)
            if body_task is not None:
                if response is not None and not state.request_done:
                    # The upstream answered before the request body ended: stop forwarding it.
                    body_task.cancel()
                    state.keep = False
                with contextlib.suppress(asyncio.CancelledError):
                    await body_task
            if state.error is not None and state.request_error:
                self._close_upstream()
            resp = state.reply
            if response is not None:
                rhead, trailers = response
                resp = HttpResponse(
                    status=rhead.status,
                    reason=rhead.reason,
                    headers=rhead.headers,
                    body=resp_sink.finish(),
                    version=rhead.version,
                    trailers=trailers,
                )
                resp_sink = None
            upgraded = self.upstream is not None and self.upstream.parser.switched
            await self._finish(
                ticket,
                head,
                req_sink,
                state,
                resp,
                state.error,
                started_wall,
                started,
                upgraded=upgraded,
            )
            if upgraded:
                await self._tunnel_upgraded()
                return False
            if state.error is not None or not state.keep:
                return False
            if self.parser.switched:
                return False
            if resp is not None and not is_keep_alive(resp.version, resp.headers):
                return False
            return is_keep_alive(head.version, head.headers)
        finally:
            if resp_sink is not None:
                resp_sink.abort()

    async def _finish(
        self,
        ticket: object,
        head: RequestHead,
        req_sink: BodySink,
        state: _ExchangeState,
        resp: HttpResponse | None,
        error: str | None,
        started_wall: float,
        started: float,
        *,
        upgraded: bool = False,
    ) -> None:
        request = self.hooks.request_of(head, req_sink.finish(), state.trailers)
        await self.hooks.finished(
            ticket,
            Finished(
                request=request,
                response=resp,
                error=error,
                started=started_wall,
                duration=time.perf_counter() - started,
                upgraded=upgraded,
            ),
        )

    def _forward_request_body(
        self, up: _Upstream, sink: BodySink, state: _ExchangeState, prefix: bytes = b""
    ) -> bool:
        """Forward what is already parsed of the request body (after ``prefix``) in one write.

        Returns True once the request has ended.
        """
        parser = self.parser
        done = False
        while True:
            ev = parser.next_event()
            if isinstance(ev, BodyData):
                sink.write(ev.data)
                continue
            if isinstance(ev, EndOfMessage):
                state.trailers = ev.trailers
                done = True
            elif isinstance(ev, Paused):
                done = True
            break
        raw = parser.take_raw()
        if prefix:
            raw = prefix + raw if raw else prefix
        if raw:
            up.stream.write(raw)
        if done:
            state.request_done = True
        return done

    async def _pump_request_body(
        self,
        up: _Upstream,
        sink: BodySink,
        state: _ExchangeState,
    ) -> None:
        try:
            while not self._forward_request_body(up, sink, state):
                await up.stream.drain()
                if not await self._read_client():
                    self.parser.feed_eof()
                    raise ProtocolError("client closed the connection mid-request")
        except ProtocolError as exc:
            state.error = (
                f"client disconnected mid-request: {exc.message}"
                if (self._client_eof)
                else f"malformed request body: {exc}"
            )
            state.request_error = True
            state.keep = False
            # The upstream must see the request end too: drop its connection.
            self._close_upstream()

    async def _drain_request(self, sink: BodySink, state: _ExchangeState) -> None:
        """Read and discard a request body that will not be forwarded."""
        with contextlib.suppress(ProtocolError):
            while True:
                ev = self.parser.next_event()
                if isinstance(ev, BodyData):
                    sink.write(ev.data)
                elif isinstance(ev, (EndOfMessage, Paused)):
                    self.parser.take_raw()
                    state.request_done = True
                    return
                elif not await self._read_client():
                    return

    async def _pump_response(
        self,
        up: _Upstream,
        sink: BodySink,
        state: _ExchangeState,
        head: RequestHead,
    ) -> tuple[ResponseHead, Headers] | None:
        parser = up.parser
        client = self.client
        rhead: ResponseHead | None = None
        received = False
        eof = False
        try:
            while True:
                ev = parser.next_event()
                if isinstance(ev, BodyData):
                    sink.write(ev.data)
                    continue
                if isinstance(ev, ResponseHead):
                    rhead = ev
                    if parser.switched:
                        client.write(parser.take_raw())
                        return rhead, ()
                    continue
                if isinstance(ev, EndOfMessage):
                    raw = parser.take_raw()
                    if raw:
                        client.write(raw)
                    await client.drain()
                    assert rhead is not None
                    return rhead, ev.trailers
                if isinstance(ev, Informational):
                    client.write(parser.take_raw())
                    await client.drain()
                    continue
                # Need data: forward what was parsed so far, then read on.
                if eof:
                    raise ProtocolError("the connection closed before a response")
                raw = parser.take_raw()
                if raw:
                    client.write(raw)
                await client.drain()
                if state.request_error:
                    return None
                if self.upstream is not up:
                    raise ProtocolError("upstream connection was dropped")
                data = await up.stream.read()
                if not data:
                    if state.request_error:
                        return None
                    parser.feed_eof()
                    eof = True
                    continue
                received = True
                parser.feed(data)
        except ProtocolError as exc:
            state.keep = False
            if state.request_error:
                return None
            self._close_upstream()
            if rhead is None:
                if not received:
                    msg = "the upstream closed the connection without answering"
                else:
                    msg = f"the upstream sent a malformed response: {exc}"
                state.error = msg
                state.reply = error_reply(502, msg)
                client.write(encode_response(state.reply))
                await client.drain()
            else:
                state.error = f"the upstream broke off its response: {exc}"
            return None

    async def _tunnel_upgraded(self) -> None:
        up = self.upstream
        assert up is not None
        leftover = self.parser.take_trailing()
        if leftover:
            up.stream.write(leftover)
        back = up.parser.take_trailing()
        if back:
            self.client.write(back)
        await pipe_both(self.client, up.stream)


async def pipe(src: ByteStream, dst: ByteStream) -> None:
    while True:
        data = await src.read()
        if not data:
            dst.write_eof()
            return
        dst.write(data)
        await dst.drain()


async def pipe_both(a: ByteStream, b: ByteStream) -> None:
    """Forward bytes both ways, untouched, until both sides have closed."""
    try:
        await asyncio.gather(pipe(a, b), pipe(b, a))
    finally:
        a.close()
        b.close()


@dataclass(slots=True)
class _ExchangeState:
    trailers: Headers = ()
    request_done: bool = False
    request_error: bool = False
    error: str | None = None
    reply: HttpResponse | None = None  # what wiretape answered itself, if it had to
    keep: bool = True
