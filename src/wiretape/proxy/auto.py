"""``protocol: auto``: tell each connection's protocol from its first bytes, then hand it on.

Record (``AutoRecordHooks``): the proxy waits up to ``SNIFF_WAIT`` for the client's first
bytes and reads on (each read again within ``SNIFF_WAIT``) until ``wiretape.protocols.sniff``
is certain. HTTP/1 goes to the HTTP dependency proxy, PostgreSQL and Redis (and MySQL) to theirs,
each with the bytes already read pushed back in front of the stream (``PrefixStream``), so they
see the connection from its first byte. Anything else is recorded as generic TCP. When the
client says nothing within ``SNIFF_WAIT``, the server may be one that speaks first: the proxy
connects to the upstream and whichever side then speaks first decides. A MySQL greeting goes to
the MySQL proxy (which opens its own upstream connection, so the one that carried the greeting
is closed); any other greeting is recorded as generic TCP on the connection that is open
already. Each mock keeps the protocol that recorded it in its ``protocol`` field.

A TLS ClientHello is terminated with the wiretape CA (``terminates``: unless the dependency has
``client_tls: decline``, or the client offers only application protocols other than HTTP/1.1,
such as ``h2`` or PostgreSQL's direct TLS), and what runs inside is sniffed in turn. HTTP/1 then
goes to the HTTP proxy with an ``https://`` upstream, Redis to the Redis proxy with TLS toward
the server, and anything else is recorded as generic TCP with TLS toward the server
(``as_protocol``). The recordings hold the plaintext, so they replay: a handshake's bytes never
repeat. A ClientHello that is not terminated is relayed untouched, as generic TCP.

The protocol proxies come from the runner (``sub_handlers``): the same factory that serves a
dependency of that protocol, so ``auto`` uses exactly the protocols this build can record, and
falls back to generic TCP for the others.

Replay (``AutoMockServer``): the mock server sniffs the same way, terminates TLS the same way,
and hands the connection to the mock server of the sniffed protocol. If this dependency
recorded connections where the server spoke first, a client that says nothing within
``SNIFF_WAIT`` gets the recorded greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import Mock
from wiretape.protocols.sniff import NEED_DATA, Side, Sniffed, Sniffer
from wiretape.proxy.server import Handler
from wiretape.proxy.streams import ByteStream, PrefixStream, terminate_app_tls
from wiretape.proxy.tcp import TcpMockServer, TcpRecordHooks
from wiretape.proxy.tls import CertificateAuthority, client_context
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
    "terminate_tls",
    "terminates",
    "wire_mock_handler",
    "wire_record_handler",
]

log = logging.getLogger("wiretape.auto")

SNIFF_WAIT = 0.2  # seconds the client may stay silent before the server is asked to speak first
# Sniffed protocol -> the dependency protocol whose proxy takes the connection; others are tcp.
_DISPATCH = {"http": "http", "postgres": "postgres", "redis": "redis", "mysql": "mysql"}

# The protocols whose own proxy takes a connection found inside terminated TLS; the others are
# recorded as generic TCP over TLS.
_OVER_TLS = frozenset({"http", "redis"})
_HTTP1 = "http/1.1"

SubHandlers = Callable[[str, bool], Handler | None]


def dispatch_protocol(verdict: Sniffed) -> str:
    """The dependency protocol that handles a connection with this verdict."""
    return _DISPATCH.get(verdict.protocol, "tcp")


def terminates(dep: DepConfig, verdict: Sniffed) -> bool:
    """Whether wiretape terminates a connection that opened with this TLS ClientHello: when the
    dependency accepts the app's TLS (``client_tls``) and the client can speak a protocol that
    wiretape reads (no ALPN, or HTTP/1.1 among the ALPN protocols offered)."""
    if verdict.protocol != "tls" or dep.client_tls != "accept":
        return False
    return not verdict.alpn or _HTTP1 in verdict.alpn


def as_protocol(dep: DepConfig, protocol: str, tls: bool = False) -> DepConfig:
    """``dep`` as a dependency of ``protocol`` (an http upstream is a URL). ``tls``: the app's
    TLS was terminated, so the server is reached over TLS too unless ``upstream_tls`` is
    ``disable``: ``https://`` for HTTP, and for Redis ``prefer`` becomes ``require``."""
    secure = tls and dep.upstream_tls != "disable"
    upstream = dep.upstream
    if protocol == "http":
        upstream = f"{'https' if secure else 'http'}://{dep.upstream}"
    upstream_tls = dep.upstream_tls
    if secure and protocol == "redis" and upstream_tls == "prefer":
        upstream_tls = "require"
    return dataclasses.replace(dep, protocol=protocol, upstream=upstream, upstream_tls=upstream_tls)


def sub_handlers(
    dep: DepConfig, dep_handler: Callable[[DepConfig], Handler], supported: Collection[str]
) -> SubHandlers:
    """The handler for each protocol an ``auto`` connection may turn out to speak (in clear, or
    inside TLS that wiretape terminated), made on first use by ``dep_handler``; None for
    protocols not in ``supported`` (and tcp)."""
    made: dict[tuple[str, bool], Handler | None] = {}

    def handler_for(protocol: str, tls: bool) -> Handler | None:
        key = (protocol, tls)
        if key not in made:
            usable = protocol in supported and protocol not in ("tcp", "auto")
            made[key] = dep_handler(as_protocol(dep, protocol, tls)) if usable else None
        return made[key]

    return handler_for


async def terminate_tls(
    client: ByteStream, hello: bytes, verdict: Sniffed, dep: DepConfig, ca: CertificateAuthority
) -> ByteStream | None:
    """The plaintext of ``client``, whose TLS handshake began with ``hello``, after answering it
    with a certificate of the wiretape CA: for the server name the client asked for, or for the
    loopback names. None when the handshake fails (logged)."""
    context = None
    if verdict.sni:
        try:
            context = ca.server_context(verdict.sni)
        except ValueError as exc:  # a name no certificate can carry
            log.info("%s: no certificate for the server name %r: %s", dep.name, verdict.sni, exc)
    if context is None:
        context = ca.loopback_context(alpn=(_HTTP1,))
    return await terminate_app_tls(client, context, hello, dep=dep.name, log=log)


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
    """Record proxy for one ``protocol: auto`` dependency.

    ``tcp`` records generic TCP in clear; ``tcp_tls`` records it inside TLS that wiretape
    terminated with ``ca``, with TLS toward the server.
    """

    def __init__(
        self,
        dep: DepConfig,
        tcp: TcpRecordHooks,
        handler_for: SubHandlers,
        *,
        ca: CertificateAuthority | None = None,
        tcp_tls: TcpRecordHooks | None = None,
    ) -> None:
        self.dep = dep
        self.tcp = tcp
        self.tcp_tls = tcp_tls or tcp
        self.handler_for = handler_for
        self.ca = ca

    async def serve(self, client: ByteStream) -> None:
        opening = self.tcp.recorder.attribute_now()
        first = await _read_within(client, SNIFF_WAIT)
        if first is None:
            await self._server_first(client, opening)
            return
        if not first:
            return
        verdict, seen = await _sniff(client, first, Side.CLIENT)
        await self._client_first(verdict, client, seen, opening)

    async def _client_first(
        self,
        verdict: Sniffed,
        client: ByteStream,
        seen: bytes,
        opening: Attribution,
        upstream: ByteStream | None = None,
        connected: float | None = None,
    ) -> None:
        """Hand on a connection whose client spoke first (``seen``: its bytes read so far)."""
        if self.ca is not None and terminates(self.dep, verdict):
            if upstream is not None:
                upstream.close()
            await self._inside_tls(client, seen, verdict, opening)
            return
        if verdict.protocol == "tls":
            log.info(
                "%s: a TLS connection (ALPN %s) is relayed untouched, as generic TCP: "
                "it cannot be replayed",
                self.dep.name,
                ", ".join(verdict.alpn) or "none",
            )
        stream = PrefixStream(seen, client)
        await self._dispatch(verdict, stream, opening, False, upstream, connected)

    async def _dispatch(
        self,
        verdict: Sniffed,
        client: ByteStream,
        opening: Attribution,
        tls: bool,
        upstream: ByteStream | None = None,
        connected: float | None = None,
    ) -> None:
        """``client``'s connection to the proxy of its protocol, or recorded as generic TCP;
        ``tls``: inside TLS that wiretape terminated."""
        protocol = dispatch_protocol(verdict)
        handler = None
        if not tls or protocol in _OVER_TLS:
            handler = self.handler_for(protocol, tls)
        log.debug("%s: %s connection%s (%s)", self.dep.name, protocol, " in TLS" * tls, verdict)
        if handler is not None:
            if upstream is not None:
                upstream.close()
            await handler(client)
            return
        tcp = self.tcp_tls if tls else self.tcp
        await tcp.relay(client, upstream, opening=opening, connected=connected)

    async def _inside_tls(
        self, client: ByteStream, hello: bytes, verdict: Sniffed, opening: Attribution
    ) -> None:
        assert self.ca is not None
        stream = await terminate_tls(client, hello, verdict, self.dep, self.ca)
        if stream is None:
            return
        first = await _read_within(stream, SNIFF_WAIT)
        if first is None:
            await self._server_first(stream, opening, tls=True)
            return
        if not first:
            return
        inner, seen = await _sniff(stream, first, Side.CLIENT)
        await self._dispatch(inner, PrefixStream(seen, stream), opening, True)

    async def _server_first(
        self, client: ByteStream, opening: Attribution, tls: bool = False
    ) -> None:
        """The client said nothing at first: the server may be one that speaks first.
        ``tls``: ``client`` is inside TLS that wiretape terminated."""
        tcp = self.tcp_tls if tls else self.tcp
        upstream = await tcp.connect()
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
            if tls:
                await self._dispatch(
                    verdict, PrefixStream(seen, client), opening, True, upstream, connected
                )
            else:
                await self._client_first(verdict, client, seen, opening, upstream, connected)
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
        if verdict.protocol == "mysql" and not tls:
            handler = self.handler_for(dispatch_protocol(verdict), False)
        log.debug("%s: the server spoke first (%s)", self.dep.name, verdict)
        if handler is not None:
            upstream.close()
            await handler(stream)
            return
        await tcp.relay(
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
        *,
        ca: CertificateAuthority | None = None,
    ) -> None:
        self.dep = dep
        self.tcp = tcp
        self.handler_for = handler_for
        self.ca = ca
        self.protocols = frozenset(m.protocol for m in recorded if m.dep == dep.name)
        self.server_first = tcp.has_opening or "mysql" in self.protocols

    async def serve(self, client: ByteStream) -> None:
        if self.server_first:
            first = await _read_within(client, SNIFF_WAIT)
            if first is None:
                mysql = None if self.tcp.has_opening else self.handler_for("mysql", False)
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
        tls = self.ca is not None and terminates(self.dep, verdict)
        if tls:
            assert self.ca is not None
            inner = await terminate_tls(client, seen, verdict, self.dep, self.ca)
            if inner is None:
                return
            client = inner
            if self.tcp.has_opening:
                first = await _read_within(client, SNIFF_WAIT)
                if first is None:  # a greeting inside TLS
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
        if (not tls or protocol in _OVER_TLS) and (
            protocol in self.protocols or "tcp" not in self.protocols
        ):
            # One mock server per protocol, in clear or not: they share what was recorded.
            handler = self.handler_for(protocol, False)
        log.debug("%s: %s connection%s (%s)", self.dep.name, protocol, " in TLS" * tls, verdict)
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
    *,
    ca: CertificateAuthority | None = None,
    upstream_tls: ssl.SSLContext | None = None,
) -> Handler:
    """The record handler of a ``tcp`` or ``auto`` dependency. ``ca`` terminates the TLS of an
    app on an ``auto`` dependency; ``upstream_tls`` is the context toward its server then."""
    tcp = TcpRecordHooks(recorder, dep)
    if dep.protocol == "tcp":
        return tcp.serve
    tcp_tls = tcp
    if dep.upstream_tls != "disable":
        context = upstream_tls or client_context(verify=dep.upstream_tls == "verify-full")
        tcp_tls = TcpRecordHooks(recorder, dep, tls=context)
    handler_for = sub_handlers(dep, dep_handler, supported)
    return AutoRecordHooks(dep, tcp, handler_for, ca=ca, tcp_tls=tcp_tls).serve


def wire_mock_handler(
    dep: DepConfig,
    index: MockIndex,
    test_set: TestSet,
    dep_handler: Callable[[DepConfig], Handler],
    supported: Collection[str],
    *,
    latency: str = "recorded",
    secrets: Secrets | None = None,
    ca: CertificateAuthority | None = None,
) -> Handler:
    """The replay handler of a ``tcp`` or ``auto`` dependency; ``ca`` terminates the TLS of an
    app on an ``auto`` dependency."""
    recorded = [*test_set.session, *(m for mocks in test_set.mocks.values() for m in mocks)]
    tcp = TcpMockServer(dep, index, recorded, latency=latency, secrets=secrets)
    if dep.protocol == "tcp":
        return tcp.serve
    handler_for = sub_handlers(dep, dep_handler, supported)
    return AutoMockServer(dep, tcp, handler_for, recorded, ca=ca).serve
