"""A tiny byte-stream interface under the proxy loops.

The HTTP session code talks to a ``ByteStream`` rather than to asyncio streams, so the same
loop serves plain sockets, TLS terminated in memory (``TlsServerStream``) and in-memory pipes in
tests. ``TlsServerStream`` uses ``ssl.MemoryBIO`` so that bytes already read while sniffing the
first byte of a CONNECT tunnel can be handed to the TLS layer instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Protocol

READ_SIZE = 65536


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


class SocketStream:
    __slots__ = ("_peer", "_reader", "_writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        info = writer.get_extra_info("peername")
        self._peer = f"{info[0]}:{info[1]}" if isinstance(info, tuple) else str(info)

    async def read(self) -> bytes:
        try:
            return await self._reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    def write_eof(self) -> None:
        try:
            if self._writer.can_write_eof() and not self._writer.is_closing():
                self._writer.write_eof()
        except (OSError, RuntimeError):
            pass

    def close(self) -> None:
        self._writer.close()

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Upgrade this (client-side) connection to TLS, as after PostgreSQL's SSLRequest."""
        await self._writer.start_tls(context, server_hostname=server_hostname)

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
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host,
            port,
            ssl=tls,
            server_hostname=server_hostname if tls else None,
            limit=READ_SIZE * 4,
        ),
        timeout,
    )
    return SocketStream(reader, writer)


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
