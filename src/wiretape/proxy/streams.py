"""A tiny byte-stream interface under the proxy loops.

The HTTP session code talks to a ``ByteStream`` rather than to asyncio streams, so the same
loop serves plain sockets, TLS terminated in memory (``TlsServerStream``) and in-memory pipes in
tests. ``TlsServerStream`` uses ``ssl.MemoryBIO`` so that bytes already read while sniffing the
first byte of a CONNECT tunnel can be handed to the TLS layer instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Protocol, cast

READ_SIZE = 65536
BUFFER_LIMIT = READ_SIZE * 4


class ByteStream(Protocol):
    async def read(self) -> bytes:
        """Up to READ_SIZE bytes; b"" at end of stream."""
        ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...

    @property
    def peer(self) -> str: ...


class SocketProtocol(asyncio.Protocol):
    """The transport side of a ``SocketStream``: received chunks wait in a deque until read.

    No ``StreamReader`` in between: a chunk handed over by the event loop is returned by ``read``
    as it is (split only above ``READ_SIZE``), and a reader waiting for data is woken by setting
    its future directly. Reading pauses while more than ``BUFFER_LIMIT`` bytes wait unread, and
    ``drain`` waits while the transport has paused writing.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_drain",
        "_end_on_pause",
        "_eof",
        "_inline",
        "_loop",
        "_on_end",
        "_paused_reading",
        "_paused_writing",
        "_waiter",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._paused_writing = False
        self._inline: Callable[[bytes], bool] | None = None
        self._on_end: Callable[[BaseException | None], None] | None = None
        self._end_on_pause = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        inline = self._inline
        if inline is not None:
            try:
                if inline(data):
                    return
            except BaseException as exc:  # handed to on_end: raised again in the owner's task
                self._end_inline(exc)
                return
            self._end_inline()
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()
        if self._buffered > BUFFER_LIMIT and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._end_inline()
        self._wake()
        # Keep the transport open: the other direction may still be sending. A TLS transport
        # closes after the peer's close_notify whatever this says, and warns if asked not to.
        transport = self.transport
        return transport is None or transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._end_inline()
        self._wake()
        self._release_drain()

    def pause_writing(self) -> None:
        self._paused_writing = True
        if self._end_on_pause:
            self._end_inline()

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._release_drain()

    @property
    def paused_writing(self) -> bool:
        return self._paused_writing

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._chunks

    def attach(
        self,
        feed: Callable[[bytes], bool],
        on_end: Callable[[BaseException | None], None],
        *,
        end_on_pause: bool = True,
    ) -> bool:
        """Hand every chunk received to ``feed``, in the event loop's callback, until ``feed``
        returns False (it keeps what it took), raises, the peer ends its side, or (with
        ``end_on_pause``) writing pauses. Then ``on_end`` is called once, with the exception
        ``feed`` raised or None, and chunks wait for ``read`` again. ``detach`` ends it without
        calling ``on_end``.

        Returns False, having done nothing, when chunks wait unread, the stream has ended,
        writing is paused or a feed is already attached: ``read`` then.
        """
        if self._chunks or self._eof or self._paused_writing or self._inline is not None:
            return False
        self._inline = feed
        self._on_end = on_end
        self._end_on_pause = end_on_pause
        return True

    def detach(self) -> None:
        self._inline = None
        self._on_end = None
        self._end_on_pause = True

    async def serve_inline(self, feed: Callable[[bytes], bool]) -> bool:
        """``attach`` ``feed`` and wait until it ends: the task sleeps while chunks are served
        without waking it. Returns False at once, having done nothing, when ``attach`` cannot
        (``read`` then). An exception raised by ``feed`` is raised here.
        """
        done = self._loop.create_future()

        def on_end(error: BaseException | None) -> None:
            if error is not None and not done.done():
                done.set_exception(error)
            _settle(done)

        if not self.attach(feed, on_end):
            return False
        try:
            await done
        finally:
            if self._inline is feed:  # cancelled while serving inline
                self.detach()
        return True

    def _end_inline(self, error: BaseException | None = None) -> None:
        on_end = self._on_end
        if on_end is None:
            return
        self.detach()
        on_end(error)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        _settle(waiter)

    def _release_drain(self) -> None:
        drain, self._drain = self._drain, None
        _settle(drain)

    async def read(self) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            waiter = self._loop.create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        data = self._chunks.popleft()
        if len(data) > READ_SIZE:
            self._chunks.appendleft(data[READ_SIZE:])
            data = data[:READ_SIZE]
        self._buffered -= len(data)
        if self._paused_reading and self._buffered <= BUFFER_LIMIT // 2 and self.transport:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        if not self._paused_writing:
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        drain = self._drain
        if drain is None:
            drain = self._drain = self._loop.create_future()
        await drain


async def serve_inline(stream: ByteStream, feed: Callable[[bytes], bool]) -> bool:
    """``stream.serve_inline(feed)`` for a plain socket stream (see
    ``SocketProtocol.serve_inline``); False at once for any other stream, which is read."""
    if type(stream) is SocketStream:
        return await stream.serve_inline(feed)
    return False


def _settle(future: asyncio.Future[None] | None) -> None:
    """Let whoever awaits ``future`` go on."""
    if future is not None and not future.done():
        future.set_result(None)


class SocketStream:
    """A ``ByteStream`` over a TCP (or TLS) transport."""

    __slots__ = ("_peer", "_protocol", "_transport")

    def __init__(self, transport: asyncio.Transport, protocol: SocketProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        info = transport.get_extra_info("peername")
        self._peer = f"{info[0]}:{info[1]}" if isinstance(info, tuple) else str(info)

    async def read(self) -> bytes:
        return await self._protocol.read()

    def write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    async def drain(self) -> None:
        await self._protocol.drain()

    async def serve_inline(self, feed: Callable[[bytes], bool]) -> bool:
        """See ``SocketProtocol.serve_inline``."""
        return await self._protocol.serve_inline(feed)

    def attach(
        self,
        feed: Callable[[bytes], bool],
        on_end: Callable[[BaseException | None], None],
        *,
        end_on_pause: bool = True,
    ) -> bool:
        """See ``SocketProtocol.attach``."""
        return self._protocol.attach(feed, on_end, end_on_pause=end_on_pause)

    def detach(self) -> None:
        self._protocol.detach()

    @property
    def paused_writing(self) -> bool:
        """Whether the transport's write buffer is over its limit (``drain`` would wait)."""
        return self._protocol.paused_writing

    @property
    def at_eof(self) -> bool:
        """The peer ended its side and every chunk it sent was read."""
        return self._protocol.at_eof

    def write_eof(self) -> None:
        try:
            if self._transport.can_write_eof() and not self._transport.is_closing():
                self._transport.write_eof()
        except (OSError, RuntimeError):
            pass

    def close(self) -> None:
        self._transport.close()

    def plain_fd(self) -> int:
        """The socket's file descriptor when it carries plain TCP, for reading it directly
        (``deliver``); -1 for TLS, or once closing."""
        transport = self._transport
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("sslcontext") is not None:
            return -1
        return -1 if transport.is_closing() else int(sock.fileno())

    def deliver(self, data: bytes) -> None:
        """Hand ``data``, read from ``plain_fd`` directly, to the protocol, as the event loop
        hands over what it reads."""
        self._protocol.data_received(data)

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Upgrade this (client-side) connection to TLS, as after PostgreSQL's SSLRequest."""
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            self._transport, self._protocol, context, server_hostname=server_hostname
        )
        if transport is None:
            raise ConnectionResetError("the connection closed during the TLS handshake")
        self._transport = transport
        self._protocol.transport = self._transport

    @property
    def peer(self) -> str:
        return self._peer


async def open_stream(
    host: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 10.0,
) -> SocketStream:
    loop = asyncio.get_running_loop()
    protocol = SocketProtocol(loop)
    transport, _ = await asyncio.wait_for(
        loop.create_connection(
            lambda: protocol,
            host,
            port,
            ssl=tls,
            server_hostname=server_hostname if tls else None,
        ),
        timeout,
    )
    return SocketStream(transport, protocol)


class PrefixStream:
    """A stream that first returns bytes already read from ``inner``."""

    __slots__ = ("_inner", "_prefix")

    def __init__(self, prefix: bytes, inner: ByteStream) -> None:
        self._prefix = prefix
        self._inner = inner

    async def read(self) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self._inner.read()

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    async def drain(self) -> None:
        await self._inner.drain()

    def write_eof(self) -> None:
        self._inner.write_eof()

    def close(self) -> None:
        self._inner.close()

    @property
    def peer(self) -> str:
        return self._inner.peer


class TlsServerStream:
    """Server-side TLS over another stream, driven through memory BIOs."""

    def __init__(self, inner: ByteStream, context: ssl.SSLContext, initial: bytes = b"") -> None:
        self._inner = inner
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_side=True)
        if initial:
            self._in.write(initial)
        self._eof = False

    async def handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                await self._inner.drain()
                if not await self._fill():
                    raise ConnectionResetError("client closed during the TLS handshake") from None

    async def _fill(self) -> bool:
        data = await self._inner.read()
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self._inner.write(pending)

    async def read(self) -> bytes:
        while True:
            try:
                data = self._obj.read(READ_SIZE)
                self._flush()
                return data
            except ssl.SSLWantReadError:
                self._flush()
                if self._eof:
                    return b""
                if not await self._fill():
                    self._eof = True
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError:
                return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._obj.write(view)
            view = view[n:]
        self._flush()

    async def drain(self) -> None:
        await self._inner.drain()

    def write_eof(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()
        self._flush()

    def close(self) -> None:
        self._inner.close()

    @property
    def peer(self) -> str:
        return self._inner.peer


_CA_VARIABLES = "SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS and CURL_CA_BUNDLE"


def refused_certificate(exc: BaseException) -> bool:
    """Whether a server-side handshake failed on the client's alert that it does not accept
    the certificate (``TLSV1_ALERT_UNKNOWN_CA``, ``SSLV3_ALERT_BAD_CERTIFICATE``...)."""
    reason = str(getattr(exc, "reason", None) or "")
    return "ALERT" in reason and ("CERTIFICATE" in reason or reason.endswith("_CA"))


async def terminate_app_tls(
    client: ByteStream,
    context: ssl.SSLContext,
    initial: bytes,
    *,
    dep: str,
    log: logging.Logger,
) -> TlsServerStream | None:
    """Terminate the TLS an app opened toward dependency ``dep``, with ``context`` (a
    certificate of the wiretape CA); None when the handshake fails. An app that refused the
    certificate does not trust the wiretape CA: that is a warning saying what to do, any other
    failure is logged as information."""
    stream = TlsServerStream(client, context, initial)
    try:
        await stream.handshake()
    except (ssl.SSLError, ConnectionError) as exc:
        if refused_certificate(exc):
            log.warning(
                "%s: the app refused wiretape's certificate (%s); it must trust the wiretape "
                "CA, which %s point at, or use deps.%s.client_tls: decline",
                dep,
                exc,
                _CA_VARIABLES,
                dep,
            )
        else:
            log.info("%s: the app's TLS handshake failed: %s", dep, exc)
        return None
    return stream


class MemoryStream:
    """One end of an in-memory byte pipe (``memory_pair``): transcript tests need no sockets."""

    def __init__(self, name: str) -> None:
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._peer: MemoryStream | None = None
        self._name = name
        self.closed = False
        self._eof_sent = False
        self._eof_seen = False

    async def read(self) -> bytes:
        if self.closed or self._eof_seen:
            return b""
        data = await self._inbox.get()
        self._eof_seen = not data
        return data

    def write(self, data: bytes) -> None:
        if data and not self._eof_sent and not self.closed and self._peer is not None:
            self._peer._inbox.put_nowait(bytes(data))

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def write_eof(self) -> None:
        if not self._eof_sent and self._peer is not None:
            self._eof_sent = True
            self._peer._inbox.put_nowait(b"")

    def close(self) -> None:
        if not self.closed:
            self.write_eof()
            self.closed = True

    @property
    def peer(self) -> str:
        return self._name


def memory_pair(a: str = "a", b: str = "b") -> tuple[MemoryStream, MemoryStream]:
    left, right = MemoryStream(a), MemoryStream(b)
    left._peer, right._peer = right, left
    return left, right
