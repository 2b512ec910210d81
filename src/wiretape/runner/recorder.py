"""Turns finished exchanges into tests and mocks, and links every mock to its test.

How this works: by default a *record lane* admits one inbound request at a time, so any outgoing
call that starts while a test is in flight belongs to that test exactly (``LinkKind.LANE``), and
calls made while no test is in flight are session mocks. The lane is released only once the
finished test and its mocks have been written, so a completed test is on disk before the next
one starts.

In concurrent mode requests run in parallel. A call carrying a W3C ``traceparent`` whose trace id
belongs to an active test is linked exactly; the inbound proxy adds a ``traceparent`` to requests
that lack one so that apps which propagate it get exact links. Otherwise the call goes to the test
in flight when it started (``WINDOW``), or, when several were, to the most recent one and is
marked ``AMBIGUOUS`` with the other candidates listed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from wiretape.model import (
    Headers,
    LinkKind,
    Mock,
    TestCase,
    WireRequest,
    WireResponse,
    header_get,
)
from wiretape.proxy.httpconn import BodySink, Finished
from wiretape.secrets import Secrets
from wiretape.store.format import test_id_for
from wiretape.store.writer import SetWriter, wait_written


def trace_id_of(headers: Headers) -> str | None:
    value = header_get(headers, "traceparent")
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) >= 4 and len(parts[1]) == 32:
        return parts[1].lower()
    return None


async def _durable(future: Future[None]) -> None:
    """Wait for a store write; most are done already, so skip the thread hop then."""
    if future.done():
        future.result()
    else:
        await asyncio.wrap_future(future)


class Lane:
    """The record lane: one owner at a time, handed to waiters in arrival order.

    A waiter is a plain callback, called synchronously by ``release`` with the lane already its
    own, so a connection served inline in the event loop's callbacks can wait for the lane
    without a task (``wait``); ``take`` is the same for a task.
    """

    __slots__ = ("_waiters", "busy")

    def __init__(self) -> None:
        self.busy = False
        self._waiters: deque[Callable[[], None]] = deque()

    def try_take(self) -> bool:
        if self.busy:  # waiters only ever wait while the lane is busy
            return False
        self.busy = True
        return True

    def wait(self, on_taken: Callable[[], None]) -> None:
        """Call ``on_taken`` once the lane is the caller's (after every earlier waiter)."""
        self._waiters.append(on_taken)

    def cancel(self, on_taken: Callable[[], None]) -> bool:
        """Withdraw a waiter; False when it was already called (the lane is its own)."""
        try:
            self._waiters.remove(on_taken)
        except ValueError:
            return False
        return True

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft()()  # the lane stays busy: it passes to that waiter
        else:
            self.busy = False

    async def take(self) -> None:
        if self.try_take():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_taken() -> None:
            if future.cancelled():
                self.release()  # its task gave up: pass the lane on
            else:
                future.set_result(None)

        self.wait(on_taken)
        try:
            await future
        except asyncio.CancelledError:
            if not self.cancel(on_taken) and not future.cancelled():
                self.release()  # handed over, then cancelled before the task ran
            raise


@dataclass(slots=True)
class ActiveTest:
    id: str
    trace_id: str | None
    started: float
    injected_traceparent: str | None = None
    mocks: list[Mock] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Attribution:
    test: str | None
    link: LinkKind
    candidates: tuple[str, ...] = ()


class Recorder:
    def __init__(
        self,
        writer: SetWriter,
        *,
        secrets: Secrets | None = None,
        concurrent: bool = False,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.writer = writer
        self.secrets = secrets or Secrets()
        self.concurrent = concurrent
        self.lane = Lane()
        self._next_index = 1
        self._next_mock = 1
        self._active: dict[str, ActiveTest] = {}
        self._by_trace: dict[str, str] = {}
        self._on_change = on_change
        self.tests = 0
        self.mocks = 0
        self.errors = 0

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def new_sink(self) -> BodySink:
        return self.writer.new_spool()

    async def begin_test(self, method: str, target: str, headers: Headers) -> ActiveTest:
        if not self.concurrent:
            await self.lane.take()
        return self.start_test(method, target, headers)

    def begin_test_now(self, method: str, target: str, headers: Headers) -> ActiveTest | None:
        """``begin_test`` without waiting: None when the lane is busy (then ``lane.wait``, and
        ``start_test`` once the lane is taken)."""
        if not self.concurrent and not self.lane.try_take():
            return None
        return self.start_test(method, target, headers)

    def start_test(self, method: str, target: str, headers: Headers) -> ActiveTest:
        """A test begins; in lane mode the caller holds the lane."""
        index = self._next_index
        self._next_index += 1
        test_id = test_id_for(index, method, self.secrets.redact_target(target))
        trace = trace_id_of(headers)
        injected = None
        if trace is None and self.concurrent:
            # Apps that propagate trace context will carry this one to their outgoing calls.
            ids = os.urandom(24).hex()  # a trace id and a parent id
            trace = ids[:32]
            injected = f"00-{trace}-{ids[32:]}-01"
        active = ActiveTest(test_id, trace, time.time(), injected)
        self._active[test_id] = active
        if trace is not None:
            self._by_trace[trace] = test_id
        return active

    async def end_test(self, active: ActiveTest, done: Finished) -> None:
        try:
            await _durable(self._write_test(active, done))
            self._changed()
        finally:
            if not self.concurrent:
                self.lane.release()

    def end_test_now(self, active: ActiveTest, done: Finished) -> None:
        """``end_test`` without a task. A journal append is done when it returns, so waiting for
        the test to be durable does not block; the lane passes on only after that."""
        try:
            wait_written(self._write_test(active, done))
            self._changed()
        finally:
            if not self.concurrent:
                self.lane.release()

    def end_test_wire(
        self,
        active: ActiveTest,
        request: bytes,
        response: bytes,
        headers: tuple[Headers, Headers],
        target: str,
        bodies: tuple[bytes, bytes],
        started: float,
        duration: float,
    ) -> bool:
        """``end_test_now`` for an exchange given as the bytes that crossed the wire (``request``
        as the client sent it, ``response`` as the app sent it, one message each and without
        trailers), with the two parsed header sections and the two bodies unframed.

        Such an exchange is kept in that form when redaction would change nothing in it
        (``Secrets.wire_is_clean``). Otherwise this returns False with the test still open and
        the lane still held: the caller then builds the exchange and calls ``end_test_now``.
        """
        if not self.secrets.wire_is_clean((request, response), headers, target, bodies):
            return False
        try:
            self._forget(active)
            wait_written(
                self.writer.add_wire_test(
                    active.id, request, response, started, duration, active.mocks
                )
            )
            self.tests += 1
            self._changed()
        finally:
            if not self.concurrent:
                self.lane.release()
        return True

    def _forget(self, active: ActiveTest) -> None:
        """``active`` is over: calls made from now on are not its own."""
        self._active.pop(active.id, None)
        if active.trace_id is not None:
            self._by_trace.pop(active.trace_id, None)

    def _write_test(self, active: ActiveTest, done: Finished) -> Future[None]:
        self._forget(active)
        test = TestCase(
            id=active.id,
            request=self.secrets.redact_request(done.request),
            response=self.secrets.redact_response(done.response),
            error=done.error,
            started=done.started,
            duration=done.duration,
            upgraded=done.upgraded,
        )
        future = self.writer.add_test(test, active.mocks)
        self.tests += 1
        if done.error is not None:
            self.errors += 1
        return future

    def attribute(self, headers: Headers) -> Attribution:
        trace = trace_id_of(headers)
        if trace is not None and trace in self._by_trace:
            return Attribution(self._by_trace[trace], LinkKind.TRACEPARENT)
        if not self._active:
            return Attribution(None, LinkKind.SESSION)
        if not self.concurrent:
            return Attribution(next(iter(self._active)), LinkKind.LANE)
        if len(self._active) == 1:
            return Attribution(next(iter(self._active)), LinkKind.WINDOW)
        ordered = sorted(self._active.values(), key=lambda a: a.started)
        chosen = ordered[-1].id
        others = tuple(a.id for a in ordered if a.id != chosen)
        return Attribution(chosen, LinkKind.AMBIGUOUS, others)

    def attribute_now(self) -> Attribution:
        """The test a call starting now belongs to, for protocols without headers."""
        return self.attribute(())

    async def add_wire_mock(
        self,
        dep: str,
        protocol: str,
        attr: Attribution,
        request: WireRequest,
        response: WireResponse | None,
        *,
        started: float,
        duration: float,
        error: str | None = None,
    ) -> None:
        """A database or TCP exchange; its codec has already left credentials out."""
        mock = Mock(
            id=f"{dep}-{self._next_mock:04d}",
            dep=dep,
            protocol=protocol,
            request=request,
            response=response,
            test=attr.test,
            link=attr.link,
            candidates=attr.candidates,
            error=error,
            started=started,
            duration=duration,
        )
        await self._keep(mock, attr)

    async def _keep(self, mock: Mock, attr: Attribution) -> None:
        self._next_mock += 1
        self.mocks += 1
        if attr.test is None:
            # Session mocks of one event-loop pass share one journal write. Their exchanges were
            # already forwarded, so waiting for each write would only delay the next one.
            if self.writer.defer_session_mock(mock):
                asyncio.get_running_loop().call_soon(self.writer.flush)
        elif attr.test in self._active:
            self._active[attr.test].mocks.append(mock)
        else:
            await _durable(self.writer.add_mocks(attr.test, [mock]))
        self._changed()

    async def add_mock(self, dep: str, protocol: str, attr: Attribution, done: Finished) -> None:
        mock = Mock(
            id=f"{dep}-{self._next_mock:04d}",
            dep=dep,
            protocol=protocol,
            request=self.secrets.redact_request(done.request),
            response=self.secrets.redact_response(done.response),
            test=attr.test,
            link=attr.link,
            candidates=attr.candidates,
            error=done.error,
            started=done.started,
            duration=done.duration,
        )
        await self._keep(mock, attr)
