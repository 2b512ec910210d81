"""The inbound proxy: clients talk to it; it forwards to the app and records each request."""

from __future__ import annotations

from collections.abc import Callable

from wiretape.model import Body, Headers, HttpRequest
from wiretape.protocols.http1 import RequestHead, ResponseHead
from wiretape.proxy.httpconn import BodySink, Finished, HttpSession, Route
from wiretape.proxy.lanepoll import DEFAULT_WINDOW_US, LanePoll, usable_cpus
from wiretape.proxy.streams import ByteStream
from wiretape.runner.recorder import ActiveTest, Recorder


class InboundHooks:
    takes_connect = False
    inline = True  # implements ``InlineHooks``

    def __init__(
        self,
        recorder: Recorder,
        app_host: str,
        app_port: int,
        *,
        lane_poll_us: int = DEFAULT_WINDOW_US,
    ) -> None:
        self.recorder = recorder
        # Only the lane waits on the app with nothing else to do (see ``lanepoll``), and only
        # with a second CPU for the app to answer on while this one polls.
        self.lane_poll = (
            LanePoll(lane_poll_us / 1e6)
            if lane_poll_us > 0 and not recorder.concurrent and usable_cpus() > 1
            else None
        )
        self.key = ("app", app_host, app_port)
        self.app_host = app_host
        self.app_port = app_port
        self._route = Route(self.key, app_host, app_port)

    async def admit(self, head: RequestHead) -> object:
        return await self.recorder.begin_test(head.method, head.target, head.headers)

    def admit_now(self, head: RequestHead) -> object | None:
        return self.recorder.begin_test_now(head.method, head.target, head.headers)

    def wait_admission(self, on_turn: Callable[[], None]) -> None:
        self.recorder.lane.wait(on_turn)

    def cancel_admission(self, on_turn: Callable[[], None]) -> bool:
        return self.recorder.lane.cancel(on_turn)

    def admitted(self, head: RequestHead) -> object:
        return self.recorder.start_test(head.method, head.target, head.headers)

    def route(self, head: RequestHead, ticket: object) -> Route:
        assert isinstance(ticket, ActiveTest)
        if ticket.injected_traceparent is None:
            return self._route
        extra = b"traceparent: " + ticket.injected_traceparent.encode("ascii") + b"\r\n"
        return Route(self.key, self.app_host, self.app_port, extra=extra)

    def request_of(self, head: RequestHead, body: Body, trailers: Headers) -> HttpRequest:
        return HttpRequest(
            method=head.method,
            target=head.target,
            headers=head.headers,
            body=body,
            version=head.version,
            trailers=trailers,
        )

    def new_sink(self) -> BodySink:
        return self.recorder.new_sink()

    async def finished(self, ticket: object, done: Finished) -> None:
        assert isinstance(ticket, ActiveTest)
        await self.recorder.end_test(ticket, done)

    def finished_now(self, ticket: object, done: Finished) -> None:
        assert isinstance(ticket, ActiveTest)
        self.recorder.end_test_now(ticket, done)

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
        assert isinstance(ticket, ActiveTest)
        head, rhead = heads
        return self.recorder.end_test_wire(
            ticket,
            request,
            response,
            (head.headers, rhead.headers),
            head.target,
            bodies,
            started,
            duration,
        )

    async def connect(self, head: RequestHead, client: ByteStream, leftover: bytes) -> None:
        raise AssertionError("the inbound proxy forwards CONNECT to the app")

    async def serve(self, client: ByteStream) -> None:
        await HttpSession(client, self).run()
