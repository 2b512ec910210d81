"""The HTTP/1.x forwarding loop shared by the inbound and the outbound proxies.

How this works: one ``HttpSession`` serves one client connection. It parses the client's
request stream with the sans-I/O codec and, for each request, asks its ``Hooks`` for admission
(the record lane), for a route (which upstream, and an optional rewritten head) and for body
sinks. The exact raw bytes of each parsed event go to the peer at once, so bodies stream and are
never held whole on the forwarding path; the sinks receive the decoded body bytes for the
recording. Responses are parsed the same way in the other direction. When the response ends the
hooks get a finished ``HttpRequest``/``HttpResponse`` pair (or an error) to record. On the inline
path (``HttpSession._serve_inline``) a small exchange is first offered as the bytes that crossed
the wire (``finished_wire``), which the hooks may keep as they are instead of the built pair.

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
from typing import Protocol, cast

from wiretape.errors import ProtocolError
from wiretape.model import Body, Headers, HttpRequest, HttpResponse
from wiretape.protocols.http1 import (
    NEED_DATA,
    BodyData,
    EndOfMessage,
    Http1Parser,
    Informational,
    Kind,
    NeedData,
    Paused,
    RequestHead,
    ResponseHead,
    encode_response,
    is_keep_alive,
)
from wiretape.proxy.lanepoll import LanePoll
from wiretape.proxy.streams import BUFFER_LIMIT, READ_SIZE, ByteStream, SocketStream, open_stream

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
    extra: bytes = b""  # field lines (each ending in CRLF) added to the end of the raw head

    def head_for(self, raw_head: bytes) -> bytes:
        """The request head to send upstream, given the one the client sent."""
        if self.head is not None:
            return self.head
        if self.extra:
            return raw_head[:-2] + self.extra + b"\r\n"  # before the blank line
        return raw_head


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


class InlineHooks(Hooks, Protocol):
    """Hooks that can also admit and finish without a task, for the inline path."""

    def admit_now(self, head: RequestHead) -> object | None:
        """``admit`` if that needs no wait; else None (then ``wait_admission``)."""
        ...

    def wait_admission(self, on_turn: Callable[[], None]) -> None:
        """Call ``on_turn`` when this request's turn comes (then ``admitted``)."""
        ...

    def cancel_admission(self, on_turn: Callable[[], None]) -> bool:
        """Withdraw a ``wait_admission``; False when ``on_turn`` was already called."""
        ...

    def admitted(self, head: RequestHead) -> object:
        """The ticket of a request whose turn came."""
        ...

    def finished_now(self, ticket: object, done: Finished) -> None:
        """``finished`` without a task."""
        ...

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
        """``finished_now`` for an exchange given as the bytes that crossed the wire: the
        request as the client sent it and the response as the upstream sent it (one message
        each, no 1xx, no trailers), their heads, and their two bodies without transfer framing.
        False when the hooks want it built instead: then the session calls ``finished_now`` for
        the same exchange."""
        ...


# An exchange is kept whole as its wire bytes for ``finished_wire`` up to this size.
WIRE_LIMIT = 1 << 16


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
    __slots__ = ("fd", "key", "parser", "stream")

    def __init__(self, key: tuple[object, ...], stream: ByteStream) -> None:
        self.key = key
        self.stream = stream
        self.parser = Http1Parser(Kind.RESPONSE)
        self.fd: int | None = None  # for ``LanePoll``, looked up on first use


def _at_eof(stream: ByteStream) -> bool:
    return type(stream) is SocketStream and stream.at_eof


Connector = Callable[[Route, float], Awaitable[ByteStream]]


async def connect_route(route: Route, timeout: float) -> ByteStream:
    return await open_stream(
        route.host,
        route.port,
        tls=route.tls,  # type: ignore[arg-type]
        server_hostname=route.server_hostname,
        timeout=timeout,
    )


class _Exchange:
    """One request and its response, from admission to ``finished``."""

    __slots__ = (
        "error",
        "head",
        "keep",
        "received",
        "reply",
        "req_sink",
        "request_done",
        "request_error",
        "resp_sink",
        "rhead",
        "started",
        "started_wall",
        "ticket",
        "trailers",
        "up",
        "wire_req",
        "wire_resp",
        "wire_size",
    )

    def __init__(self, head: RequestHead, ticket: object, req_sink: BodySink) -> None:
        self.head = head
        self.ticket = ticket
        self.req_sink = req_sink
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.resp_sink: BodySink | None = None
        self.up: _Upstream | None = None
        self.rhead: ResponseHead | None = None  # once parsed
        self.received = False  # whether the upstream sent anything for it
        self.trailers: Headers = ()  # the request's
        self.request_done = False
        self.request_error = False
        self.error: str | None = None
        self.reply: HttpResponse | None = None  # what wiretape answered itself, if it had to
        self.keep = True
        # The exchange's bytes as they crossed the wire, kept on the inline path while small.
        self.wire_req: list[bytes] | None = None
        self.wire_resp: list[bytes] | None = None
        self.wire_size = 0

    def keep_wire(self, side: list[bytes], raw: bytes) -> None:
        self.wire_size += len(raw)
        if self.wire_size > WIRE_LIMIT:
            self.wire_req = self.wire_resp = None
        else:
            side.append(raw)


_NO_TICKET = object()  # the request is not admitted yet
_CLOSE = object()  # inline path's hand-off: the connection ends

# Phases of the inline path (see ``HttpSession._serve_inline``).
_IDLE, _QUEUED, _WAITING = 0, 1, 2


class HttpSession:
    """Serves one client connection (see the module docstring).

    With hooks that admit without a task (``InlineHooks``) and plain sockets on both sides, a
    connection is served *inline*: each chunk the event loop receives is parsed and forwarded in
    its callback, a request waiting for the record lane waits as a callback, and the session's
    task sleeps. Only simple exchanges go that way: the whole request in hand, an upstream
    connection already open, nothing to wait for but the response. Anything else (the first
    connection to the app, a request body still arriving, ``Expect``, CONNECT, a protocol switch,
    malformed bytes, a peer that stops reading or closes) is handed back to the task at the
    point reached, and the task path below goes on from there with the same parsers and the
    same exchange state.
    """

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
        self._inline_hooks: InlineHooks | None = (
            cast(InlineHooks, hooks)
            if getattr(hooks, "inline", False) and type(client) is SocketStream
            else None
        )
        self._done: asyncio.Future[None] | None = None  # set while serving inline
        self._handoff: object = None
        self._error: BaseException | None = None
        self._phase = _IDLE
        self._client_closed = False  # while serving inline
        self._queued: RequestHead | None = None
        self._open: _Exchange | None = None  # admitted, not finished yet
        self._lane_poll: LanePoll | None = (
            getattr(hooks, "lane_poll", None) if self._inline_hooks is not None else None
        )

    async def _abandon(self, error: BaseException) -> None:
        """Finish an exchange that the session cannot carry on, as failed, so that the record
        lane passes on. CONNECT tunnels are the hooks' own and are not tracked."""
        x, self._open = self._open, None
        if x is None:
            return
        for sink in (x.req_sink, x.resp_sink):
            if sink is not None:
                sink.abort()
        reason = f"{type(error).__name__}: {error}"
        await self.hooks.finished(
            x.ticket,
            Finished(
                request=self.hooks.request_of(x.head, b"", x.trailers),
                response=None,
                error=f"wiretape could not finish this exchange: {reason}",
                started=x.started_wall,
                duration=time.perf_counter() - x.started,
            ),
        )

    async def run(self) -> None:
        try:
            await self._serve()
        except ProtocolError as exc:
            await self._abandon(exc)
            log.warning("malformed request from %s: %s", self.client.peer, exc)
            self.client.write(error_response(400, f"malformed HTTP request: {exc}"))
            await self.client.drain()
        except Exception as exc:
            await self._abandon(exc)
            raise
        finally:
            self._close_upstream()
            self.client.close()

    async def _serve(self) -> None:
        while True:
            handoff = await self._serve_inline() if self._inline_hooks else None
            if handoff is _CLOSE:
                return
            if isinstance(handoff, _Exchange):
                keep = await self._respond(handoff)
            elif isinstance(handoff, RequestHead):
                keep = await self._exchange(handoff, _NO_TICKET)
            elif isinstance(handoff, tuple):
                keep = await self._exchange(*handoff)
            else:
                head = await self._next_head()
                if head is None:
                    return
                keep = await self._exchange(head, _NO_TICKET)
            if not keep:
                return

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
        up = self.upstream
        if up is not None:
            if type(up.stream) is SocketStream:
                up.stream.detach()
            up.stream.close()
            self.upstream = None

    async def _connect(self, route: Route) -> _Upstream:
        up = self.upstream
        # Reused while the key stays; not once the upstream closed it while idle.
        if up is not None and up.key == route.key and not _at_eof(up.stream):
            return up
        self._close_upstream()
        stream = await self.connector(route, self.connect_timeout)
        self.upstream = _Upstream(route.key, stream)
        return self.upstream

    # -- the task path ------------------------------------------------------------------------

    async def _exchange(self, head: RequestHead, ticket: object) -> bool:
        """Forward one request and its response. Returns whether the connection goes on."""
        raw_head = self.parser.take_raw()
        sink = self.hooks.new_sink()
        if ticket is _NO_TICKET:
            ticket = await self.hooks.admit(head)
        x = self._open = _Exchange(head, ticket, sink)
        if head.method == "CONNECT" and self.hooks.takes_connect:
            self._open = None  # the tunnel is the hooks' own
            await self._drain_request(x)
            await self.hooks.connect(head, self.client, self.parser.take_trailing())
            return False
        try:
            route = self.hooks.route(head, ticket)
            up = await self._connect(route)
        except RouteError as exc:
            await self._refuse(x, exc.status, exc.message)
            return False
        except (TimeoutError, OSError) as exc:
            message = f"cannot connect to upstream {route.host}:{route.port}: {exc}"
            await self._refuse(x, 502, message)
            return False
        x.up = up
        up.parser.expect_response_to(head.method)
        self._forward_first(x, route.head_for(raw_head))
        return await self._respond(x)

    async def _refuse(self, x: _Exchange, status: int, message: str) -> None:
        """Answer a request that cannot be forwarded, and record that answer."""
        await self._drain_request(x)
        x.reply = error_reply(status, message)
        x.error = message
        self.client.write(encode_response(x.reply))
        self._open = None
        await self.hooks.finished(x.ticket, self._conclude(x, None))

    def _forward_first(self, x: _Exchange, head: bytes) -> None:
        """Send the request head and the part of its body already parsed."""
        assert x.up is not None
        try:
            self._forward_request_body(x, head)
        except ProtocolError as exc:
            self._request_failed(x, exc)
            x.request_done = True  # as far as it goes

    async def _respond(self, x: _Exchange) -> bool:
        """Finish an exchange whose request head went upstream: the rest of the request body,
        the response, ``finished``. Returns whether the connection goes on."""
        up = x.up
        assert up is not None
        body_task: asyncio.Task[None] | None = None
        try:
            if not x.request_done:
                body_task = asyncio.create_task(self._pump_request_body(x))
            if x.resp_sink is None:
                x.resp_sink = self.hooks.new_sink()
            response = await self._pump_response(x)
            if body_task is not None:
                if response is not None and not x.request_done:
                    # The upstream answered before the request body ended: stop forwarding it.
                    body_task.cancel()
                    x.keep = False
                with contextlib.suppress(asyncio.CancelledError):
                    await body_task
            if x.error is not None and x.request_error:
                self._close_upstream()
            done = self._conclude(x, response)
            self._open = None
            await self.hooks.finished(x.ticket, done)
        finally:
            if x.resp_sink is not None:
                x.resp_sink.abort()
        if done.upgraded:
            await self._tunnel_upgraded()
            return False
        return self._goes_on(x, done.response)

    def _conclude(
        self,
        x: _Exchange,
        response: tuple[ResponseHead, Headers] | None,
        bodies: tuple[Body, Body] | None = None,
    ) -> Finished:
        """The finished exchange, for the hooks; ``bodies`` when the sinks are finished."""
        if bodies is None:
            bodies = self._finish_bodies(x, response is not None)
        resp = x.reply
        if response is not None:
            rhead, trailers = response
            resp = HttpResponse(
                status=rhead.status,
                reason=rhead.reason,
                headers=rhead.headers,
                body=bodies[1],
                version=rhead.version,
                trailers=trailers,
            )
        head = x.head
        return Finished(
            request=self.hooks.request_of(head, bodies[0], x.trailers),
            response=resp,
            error=x.error,
            started=x.started_wall,
            duration=time.perf_counter() - x.started,
            upgraded=self.upstream is not None and self.upstream.parser.switched,
        )

    def _finish_bodies(self, x: _Exchange, responded: bool) -> tuple[Body, Body]:
        """The request body, and the response body if the upstream answered (else empty)."""
        request = x.req_sink.finish()
        if not responded:
            return request, b""
        sink, x.resp_sink = x.resp_sink, None
        assert sink is not None
        return request, sink.finish()

    def _goes_on(self, x: _Exchange, resp: HttpResponse | ResponseHead | None) -> bool:
        """Whether the connection serves another request after this exchange."""
        if x.error is not None or not x.keep or self.parser.switched:
            return False
        if resp is not None and not is_keep_alive(resp.version, resp.headers):
            return False
        return is_keep_alive(x.head.version, x.head.headers)

    def _forward_request_body(self, x: _Exchange, prefix: bytes = b"") -> bool:
        """Forward what is already parsed of the request body (after ``prefix``) in one write.

        Returns True once the request has ended.
        """
        parser = self.parser
        sink = x.req_sink
        done = False
        while True:
            ev = parser.next_event()
            if isinstance(ev, BodyData):
                sink.write(ev.data)
                continue
            if isinstance(ev, EndOfMessage):
                x.trailers = ev.trailers
                done = True
            elif isinstance(ev, Paused):
                done = True
            break
        raw = parser.take_raw()
        if raw and x.wire_req is not None:
            x.keep_wire(x.wire_req, raw)
        if prefix:
            raw = prefix + raw if raw else prefix
        if raw:
            assert x.up is not None
            x.up.stream.write(raw)
        if done:
            x.request_done = True
        return done

    def _request_failed(self, x: _Exchange, exc: ProtocolError) -> None:
        x.error = (
            f"client disconnected mid-request: {exc.message}"
            if self._client_eof
            else f"malformed request body: {exc}"
        )
        x.request_error = True
        x.keep = False
        # The upstream must see the request end too: drop its connection.
        self._close_upstream()
        if not x.received and not self._client_eof:
            # Nothing of a response reached the client yet: tell it why there will be none.
            x.reply = error_reply(400, x.error)
            self.client.write(encode_response(x.reply))

    async def _pump_request_body(self, x: _Exchange) -> None:
        up = x.up
        assert up is not None
        try:
            while not self._forward_request_body(x):
                await up.stream.drain()
                if not await self._read_client():
                    self.parser.feed_eof()
                    raise ProtocolError("client closed the connection mid-request")
        except ProtocolError as exc:
            self._request_failed(x, exc)

    async def _drain_request(self, x: _Exchange) -> None:
        """Read and discard a request body that will not be forwarded."""
        with contextlib.suppress(ProtocolError):
            while True:
                ev = self.parser.next_event()
                if isinstance(ev, BodyData):
                    x.req_sink.write(ev.data)
                elif isinstance(ev, (EndOfMessage, Paused)):
                    self.parser.take_raw()
                    x.request_done = True
                    return
                elif not await self._read_client():
                    return

    def _pass_response(self, x: _Exchange) -> EndOfMessage | Informational | NeedData | None:
        """Take the response events parsed so far: the body into the sink, the bytes on to the
        client. Stops at the end (EndOfMessage), after a 1xx (Informational), when it needs more
        bytes (NEED_DATA), or when the response switched protocols (None)."""
        up, sink = x.up, x.resp_sink
        assert up is not None and sink is not None
        parser = up.parser
        while True:
            ev = parser.next_event()
            if isinstance(ev, BodyData):
                sink.write(ev.data)
                continue
            if isinstance(ev, ResponseHead):
                x.rhead = ev
                if not parser.switched:
                    continue
            raw = parser.take_raw()
            if raw:
                self.client.write(raw)
                if x.wire_resp is not None:
                    x.keep_wire(x.wire_resp, raw)
            if isinstance(ev, ResponseHead):
                return None
            assert isinstance(ev, (EndOfMessage, Informational, NeedData)), ev  # a response's
            return ev

    async def _pump_response(self, x: _Exchange) -> tuple[ResponseHead, Headers] | None:
        up = x.up
        assert up is not None
        parser = up.parser
        client = self.client
        eof = False
        try:
            if x.rhead is not None and parser.switched:  # the inline path forwarded the 101
                return x.rhead, ()
            while True:
                ev = self._pass_response(x)
                if ev is None:  # switched protocols
                    assert x.rhead is not None
                    return x.rhead, ()
                if isinstance(ev, EndOfMessage):
                    await client.drain()
                    assert x.rhead is not None
                    return x.rhead, ev.trailers
                if isinstance(ev, Informational):
                    await client.drain()
                    continue
                # Need data: what was parsed so far went on; read on.
                if eof:
                    raise ProtocolError("the connection closed before a response")
                await client.drain()
                if x.request_error:
                    return None
                if self.upstream is not up:
                    raise ProtocolError("upstream connection was dropped")
                data = await up.stream.read()
                if not data:
                    if x.request_error:
                        return None
                    parser.feed_eof()
                    eof = True
                    continue
                x.received = True
                parser.feed(data)
        except ProtocolError as exc:
            x.keep = False
            if x.request_error:
                return None
            self._close_upstream()
            if x.rhead is None:
                if not x.received:
                    msg = "the upstream closed the connection without answering"
                else:
                    msg = f"the upstream sent a malformed response: {exc}"
                x.error = msg
                x.reply = error_reply(502, msg)
                client.write(encode_response(x.reply))
                await client.drain()
            else:
                x.error = f"the upstream broke off its response: {exc}"
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

    # -- the inline path ----------------------------------------------------------------------
    #
    # Phases: _IDLE (between requests: client bytes are parsed at once), _QUEUED (a request
    # head waits for admission; client bytes are only buffered), _WAITING (the request went
    # upstream; upstream bytes are parsed and forwarded, client bytes buffered). ``_stop``
    # ends it and leaves in ``_handoff`` where the task goes on: None (read the next request),
    # a RequestHead (not admitted yet), a (head, ticket) pair (admitted, not forwarded), an
    # _Exchange (forwarded: ``_respond``), or _CLOSE.

    async def _serve_inline(self) -> object:
        """Serve inline until something needs the task; return the hand-off (see above)."""
        client = cast(SocketStream, self.client)
        up = self.upstream
        if up is not None and _at_eof(up.stream):
            self._close_upstream()  # the app closed the idle connection
            up = None
        if up is not None and not self._attach_upstream(up):
            return None
        done = self._done = asyncio.get_running_loop().create_future()
        self._handoff = None
        self._phase = _IDLE
        self._client_closed = False
        if not client.attach(self._client_fed, self._client_ended, end_on_pause=False):
            self._done = None
            if up is not None and type(up.stream) is SocketStream:
                up.stream.detach()
            return None
        try:
            self._advance()  # requests already buffered
            await done
        finally:
            if self._done is done:  # cancelled while serving inline
                self._detach()
                if self._phase == _QUEUED:
                    assert self._inline_hooks is not None
                    self._inline_hooks.cancel_admission(self._on_turn)
        error, self._error = self._error, None
        if error is not None:
            raise error
        handoff, self._handoff = self._handoff, None
        return handoff

    def _attach_upstream(self, up: _Upstream) -> bool:
        stream = up.stream
        if type(stream) is not SocketStream:
            return False
        return stream.attach(self._upstream_fed, self._upstream_ended, end_on_pause=False)

    def _detach(self) -> None:
        cast(SocketStream, self.client).detach()
        up = self.upstream
        if up is not None and type(up.stream) is SocketStream:
            up.stream.detach()

    def _stop(self, handoff: object, error: BaseException | None = None) -> None:
        """End the inline path; the task goes on from ``handoff``."""
        done = self._done
        if done is None:
            return
        self._done = None
        self._detach()
        if self._phase == _QUEUED:
            hooks = self._inline_hooks
            assert hooks is not None
            if hooks.cancel_admission(self._on_turn):
                assert self._queued is not None
                handoff = self._queued
            self._queued = None
        self._handoff = handoff
        if error is not None and self._error is None:
            self._error = error
        if not done.done():
            done.set_result(None)

    def _stop_here(self, error: BaseException | None = None) -> None:
        """``_stop``, the task going on from the phase reached."""
        self._stop(self._open if self._phase == _WAITING else None, error)

    def _client_fed(self, data: bytes) -> bool:
        self.parser.feed(data)
        if self._phase == _IDLE:
            self._advance()
        elif self.parser.buffered > BUFFER_LIMIT:
            # Pipelined bytes pile up while a request is served: let the socket push back.
            self._stop_here()
        return self._done is not None

    def _client_ended(self, error: BaseException | None) -> None:
        if error is None and self._phase != _IDLE:
            # The client closed its side (or the connection broke) with a whole request sent:
            # that request keeps its place in the lane and goes upstream, as on the task path.
            self._client_closed = True
            return
        self._stop_here(error)

    def _upstream_ended(self, error: BaseException | None) -> None:
        if self._phase == _WAITING or error is not None:
            self._stop_here(error)
            return
        # The app closed an idle connection: the next request opens a new one.
        self._close_upstream()

    def _advance(self) -> None:
        """Parse and start the next buffered request, if one is complete (phase _IDLE)."""
        hooks = self._inline_hooks
        assert hooks is not None
        parser = self.parser
        while True:
            try:
                ev = parser.next_event()
            except ProtocolError:
                self._stop(None)  # the task reads the same error from the parser
                return
            if isinstance(ev, RequestHead):
                break
            if isinstance(ev, Paused):
                parser.resume()
                continue
            if ev is not NEED_DATA:
                error = ProtocolError(f"unexpected {type(ev).__name__} between requests")
                self._stop(None, error)
            return
        head = ev
        if head.method == "CONNECT":
            self._stop(head)
            return
        ticket = hooks.admit_now(head)
        if ticket is None:
            self._phase = _QUEUED
            self._queued = head
            hooks.wait_admission(self._on_turn)
            return
        self._start(head, ticket)

    def _on_turn(self) -> None:
        """The queued request is admitted (called from the lane, in another callback)."""
        try:
            head = self._queued
            assert head is not None and self._inline_hooks is not None
            self._queued = None
            self._phase = _IDLE
            self._start(head, self._inline_hooks.admitted(head))
        except BaseException as exc:  # raised again in this session's task, not the caller's
            self._stop(None, exc)

    def _start(self, head: RequestHead, ticket: object) -> None:
        """Send an admitted request upstream, or hand it to the task."""
        # Tracked from here: should anything fail, the task finishes it (``_abandon``).
        x = self._open = _Exchange(head, ticket, self.hooks.new_sink())
        up = self.upstream
        try:
            route = self.hooks.route(head, ticket)
        except RouteError:
            up = None  # the task answers it
        if up is None or up.key != route.key:
            self._stop((head, ticket))
            return
        x.up = up
        x.resp_sink = self.hooks.new_sink()
        raw_head = self.parser.take_raw()
        x.wire_req, x.wire_resp, x.wire_size = [raw_head], [], len(raw_head)
        up.parser.expect_response_to(head.method)
        self._phase = _WAITING
        self._forward_first(x, route.head_for(raw_head))
        if not x.request_done or x.request_error or cast(SocketStream, up.stream).paused_writing:
            self._stop(x)
            return
        poll = self._lane_poll
        if poll is not None and poll.worth_polling():
            asyncio.get_running_loop().call_soon(self._poll_upstream, x, poll)

    def _poll_upstream(self, x: _Exchange, poll: LanePoll) -> None:
        """Wait a little for a fast app's answer without sleeping (see ``lanepoll``)."""
        # Still served inline, so the upstream connection is open: its end would have ended that.
        if self._done is None or self._open is not x or x.received or x.up is None:
            return
        up = x.up
        stream = up.stream
        if type(stream) is not SocketStream:
            return
        if up.fd is None:
            up.fd = stream.plain_fd()
        if up.fd >= 0 and (data := poll.read(up.fd, READ_SIZE)):
            stream.deliver(data)

    def _upstream_fed(self, data: bytes) -> bool:
        up = self.upstream
        assert up is not None
        up.parser.feed(data)
        x = self._open if self._phase == _WAITING else None
        if x is None:
            self._stop(None)  # bytes nobody asked for: the next response read meets them
            return False
        x.received = True
        client = cast(SocketStream, self.client)
        while True:
            try:
                ev = self._pass_response(x)
            except ProtocolError:
                self._stop(x)  # the task reads the same error from the parser
                return False
            if ev is None:  # switched protocols: the task tunnels
                self._stop(x)
                return False
            if isinstance(ev, EndOfMessage):
                assert x.rhead is not None
                self._finish_inline(x, (x.rhead, ev.trailers))
                return self._done is not None
            if client.paused_writing:
                self._stop(x)
                return False
            if ev is NEED_DATA:
                return True
            # Informational: the final response may be buffered already. (The recording
            # holds only the final response, so the wire form, which would hold both, is
            # not used.)
            x.wire_req = x.wire_resp = None

    def _finish_inline(self, x: _Exchange, response: tuple[ResponseHead, Headers]) -> None:
        hooks = self._inline_hooks
        assert hooks is not None
        bodies = self._finish_bodies(x, True)
        self._open = None
        self._phase = _IDLE
        # Either call may admit another connection's request.
        if not (
            x.wire_resp is not None
            and x.wire_req is not None
            and not x.trailers
            and not response[1]
            and type(bodies[0]) is bytes
            and type(bodies[1]) is bytes
            and hooks.finished_wire(
                x.ticket,
                b"".join(x.wire_req),
                b"".join(x.wire_resp),
                (x.head, response[0]),
                cast(tuple[bytes, bytes], bodies),
                x.started_wall,
                time.perf_counter() - x.started,
            )
        ):
            hooks.finished_now(x.ticket, self._conclude(x, response, bodies))
        if self._done is None:
            return
        if not self._goes_on(x, response[0]):
            self._stop(_CLOSE)
        elif self._client_closed or cast(SocketStream, self.client).paused_writing:
            self._stop(None)  # the task reads what is left
        elif self.parser.buffered:  # a pipelined request; else the next bytes call _advance
            self._advance()


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
