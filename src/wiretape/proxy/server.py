"""Listening sockets for the proxies and mock servers, with clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from wiretape.proxy.streams import ByteStream, SocketProtocol, SocketStream

log = logging.getLogger("wiretape.proxy")

Handler = Callable[[ByteStream], Awaitable[None]]


class Listener:
    """One TCP listener; every accepted connection runs ``handler`` in its own task."""

    def __init__(self, name: str, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.handler = handler
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Accepted(loop, self), self.host, self.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    def _accept(self, stream: SocketStream) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, stream: SocketStream) -> None:
        try:
            await self.handler(stream)
        except asyncio.CancelledError:
            # Shutdown cancelled this connection; ending quietly keeps asyncio's stream
            # callback from reporting the cancellation as an error.
            pass
        except Exception:
            log.exception("%s: connection from %s failed", self.name, stream.peer)
        finally:
            stream.close()

    async def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, give open connections ``grace`` seconds, then cancel them."""
        if self._server is not None:
            self._server.close()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


class _Accepted(SocketProtocol):
    """An accepted connection: its handler starts as soon as the connection is made."""

    __slots__ = ("_listener",)

    def __init__(self, loop: asyncio.AbstractEventLoop, listener: Listener) -> None:
        super().__init__(loop)
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._listener._accept(SocketStream(cast(asyncio.Transport, transport), self))


def install_fast_loop() -> None:
    """Use uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
