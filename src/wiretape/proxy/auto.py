"""``protocol: auto``: tell each connection's protocol from its first bytes, then hand it on.

Record (``AutoRecordHooks``): the proxy waits up to ``SNIFF_WAIT`` for the client's first
bytes and reads on (each read again within ``SNIFF_WAIT``) until ``wiretape.protocols.sniff``
is certain. HTTP/1 goes to the HTTP dependency proxy, PostgreSQL and Redis (and MySQL) to theirs,
each with the bytes already read pushed back in front of the stream (``PrefixStream``), so they
see the connection from its first byte. Anything else, TLS that wiretape does not terminate
included, is recorded as generic TCP. When the client says nothing within ``SNIFF_WAIT``, the
server may be one that speaks first: the proxy connects to the upstream and whichever side then
speaks first decides. A MySQL greeting goes to the MySQL proxy (which opens its own upstream
connection, so the one that carried the greeting is closed); any other greeting is recorded as
generic TCP on the connection that is open already. Each mock keeps the protocol that recorded it
in its ``protocol`` field.

The protocol proxies come from the runner (``sub_handlers``): the same factory that serves a
dependency of that protocol, so ``auto`` uses exactly the protocols this build can record, and
falls back to generic TCP for the others.

Replay (``AutoMockServer``): the mock server sniffs the same way and hands the connection to the
mock server of the sniffed protocol. If this dependency recorded connections where the server
spoke first, a client that says nothing within ``SNIFF_WAIT`` gets the recorded greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import Mock
from wiretape.protocols.sniff import NEED_DATA, Side, Sniffed, Sniffer
from wiretape.proxy.server import Handler
from wiretape.proxy.streams import ByteStream, PrefixStream
from wiretape.proxy.tcp import TcpMockServer, TcpRecordHooks
from wiretape.runner.recorder import Attribution, Recorder
from wiretape.secrets import Secrets

if TYPE_CHECKING:
    from wiretape.store.reader import TestSet

__all__ = [
    "SNIFF_WAIT",
    "AutoMockServer",
    "AutoRecordHooks",
    "as_protocol",
    "dispatch_protocol",
    "sub_handlers",
    "wire_mock_handler",
    "wire_record_handler",
]

log = logging.getLogger("wiretape.auto")

SNIFF_WAIT = 0.2  # seconds the client may stay silent before the server is asked to speak first
# Sniffed protocol -> the dependency protocol whose proxy takes the connection; others are tcp.
_DISPATCH = {"http": "http", "postgres": "postgres", "redis": "redis", "mysql": "mysql"}

SubHandlers = Callable[[str], Handler | None]


def dispatch_protocol(verdict: Sniffed) -> str:
    """The dependency protocol that handles a connection with this verdict."""
    return _DISPATCH.get(verdict.protocol, "tcp")


def as_protocol(dep: DepConfig, protocol: str) -> DepConfig:
    """``dep`` as a dependency of ``protocol`` (an http upstream is a URL)."""
    upstream = f"http://{dep.upstream}" if protocol == "http" else dep.upstream
    return dataclasses.replace(dep, protocol=protocol, upstream=upstream)


def sub_handlers(
    dep: DepConfig, dep_handler: Callable[[DepConfig], Handler], supported: Collection[str]
) -> SubHandlers:
    """The handler for each protocol an ``auto`` connection may turn out to speak, made on
    first use by ``dep_handler``; None for protocols not in ``supported`` (and tcp)."""
    made: dict[str, Handler | None] = {}

    def handler_for(protocol: str) -> Handler | None:
        if protocol not in made:
            usable = protocol in supported and protocol not in ("tcp", "auto")
            made[protocol] = dep_handler(as_protocol(dep, protocol)) if usable else None
        return made[protocol]

    return handler_for


async def _read_within(stream: ByteStream, timeout: float) -> bytes | None:
    """The next bytes of ``stream``; None when none came within ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(stream.read(), timeout)
    except TimeoutError:
        return None


async def _sniff(stream: ByteStream, first: bytes, side: Side) -> tuple[Sniffed, bytes]:
    """Read on from ``stream`` until the verdict is certain; the verdict and every byte read."""
    sniffer = Sniffer(side)
    verdict = sniffer.feed(first)
    while verdict is NEED_DATA:
        data = await _read_within(stream, SNIFF_WAIT)
        if not data:
            return sniffer.finish(), sniffer.buffered
        verdict = sniffer.feed(data)
    assert isinstance(verdict, Sniffed)
    return verdict, sniffer.buffered


async def _cancel(task: asyncio.Future[bytes]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


# -- record -------------------------------------------------------------------------------------


class AutoRecordHooks:
    """Record proxy for one ``protocol: auto`` dependency."""

    def __init__(self, dep: DepConfig, tcp: TcpRecordHooks, handler_for: SubHandlers) -> None:
        self.dep = dep
        self.tcp = tcp
        self.handler_for = handler_for

    async def serve(self, client: ByteStream) -> None:
        opening = self.tcp.recorder.attribute_now()
        first = await _read_within(client, SNIFF_WAIT)
        if first is None:
            await self._server_first(client, opening)
            return
        if not first:
            return
        verdict, seen = await _sniff(client, first, Side.CLIENT)
        await self._client_first(verdict, PrefixStream(seen, client), opening)

    async def _client_first(
        self,
        verdict: Sniffed,
        client: ByteStream,
        opening: Attribution,
        upstream: ByteStream | None = None,
        connected: float | None = None,
    ) -> None:
        protocol = dispatch_protocol(verdict)
        handler = self.handler_for(protocol)
        log.debug("%s: %s connection (%s)", self.dep.name, protocol, verdict)
        if handler is not None:
            if upstream is not None:
                upstream.close()
            await handler(client)
            return
        await self.tcp.relay(client, upstream, opening=opening, connected=connected)

    async def _server_first(self, client: ByteStream, opening: Attribution) -> None:
        upstream = await self.tcp.connect()
        if upstream is None:
            return
        connected = time.time()
        from_client = asyncio.ensure_future(client.read())
        from_server = asyncio.ensure_future(upstream.read())
        try:
            done, _ = await asyncio.wait(
                {from_client, from_server}, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            await _cancel(from_client)
            await _cancel(from_server)
            upstream.close()
            raise
        if from_server not in done:
            await _cancel(from_server)
            first = from_client.result()
            if not first:
                upstream.close()
                return
            verdict, seen = await _sniff(client, first, Side.CLIENT)
            await self._client_first(
                verdict, PrefixStream(seen, client), opening, upstream, connected
            )
            return
        greeting = from_server.result()
        greeted = time.time()
        stream: ByteStream = client
        if from_client in done:
            stream = PrefixStream(from_client.result(), client)
        else:
            await _cancel(from_client)
        verdict, seen = Sniffer(Side.SERVER).finish(), b""
        if greeting:
            verdict, seen = await _sniff(upstream, greeting, Side.SERVER)
        handler = None
        if verdict.protocol == "mysql":
            handler = self.handler_for(dispatch_protocol(verdict))
        log.debug("%s: the server spoke first (%s)", self.dep.name, verdict)
        if handler is not None:
            upstream.close()
            await handler(stream)
            return
        await self.tcp.relay(
            stream, upstream, opening=opening, connected=connected, greeting=seen, greeted=greeted
        )


# -- replay -------------------------------------------------------------------------------------


class AutoMockServer:
    """Answers a ``protocol: auto`` dependency from the recordings during replay."""

    def __init__(
        self,
        dep: DepConfig,
        tcp: TcpMockServer,
        handler_for: SubHandlers,
        recorded: Iterable[Mock],
    ) -> None:
        self.dep = dep
        self.tcp = tcp
        self.handler_for = handler_for
        self.protocols = frozenset(m.protocol for m in recorded if m.dep == dep.name)
        self.server_first = tcp.has_opening or "mysql" in self.protocols

    async def serve(self, client: ByteStream) -> None:
        if self.server_first:
            first = await _read_within(client, SNIFF_WAIT)
            if first is None:
                mysql = None if self.tcp.has_opening else self.handler_for("mysql")
                if mysql is not None:
                    await mysql(client)
                else:
                    await self.tcp.serve_connection(client, greet=True)
                return
        else:
            first = await client.read()
        if not first:
            return
        verdict, seen = await _sniff(client, first, Side.CLIENT)
        stream = PrefixStream(seen, client)
        protocol = dispatch_protocol(verdict)
        handler = None
        if protocol in self.protocols or "tcp" not in self.protocols:
            handler = self.handler_for(protocol)
        log.debug("%s: %s connection (%s)", self.dep.name, protocol, verdict)
        if handler is not None:
            await handler(stream)
        else:
            await self.tcp.serve_connection(stream, greet=False)


# -- runner glue --------------------------------------------------------------------------------


def wire_record_handler(
    recorder: Recorder,
    dep: DepConfig,
    dep_handler: Callable[[DepConfig], Handler],
    supported: Collection[str],
) -> Handler:
    """The record handler of a ``tcp`` or ``auto`` dependency."""
    tcp = TcpRecordHooks(recorder, dep)
    if dep.protocol == "tcp":
        return tcp.serve
    return AutoRecordHooks(dep, tcp, sub_handlers(dep, dep_handler, supported)).serve


def wire_mock_handler(
    dep: DepConfig,
    index: MockIndex,
    test_set: TestSet,
    dep_handler: Callable[[DepConfig], Handler],
    supported: Collection[str],
    *,
    latency: str = "recorded",
    secrets: Secrets | None = None,
) -> Handler:
    """The replay handler of a ``tcp`` or ``auto`` dependency."""
    recorded = [*test_set.session, *(m for mocks in test_set.mocks.values() for m in mocks)]
    tcp = TcpMockServer(dep, index, recorded, latency=latency, secrets=secrets)
    if dep.protocol == "tcp":
        return tcp.serve
    return AutoMockServer(dep, tcp, sub_handlers(dep, dep_handler, supported), recorded).serve
