"""Listening sockets for the proxies and mock servers, with clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from wiretape.proxy.streams import READ_SIZE, ByteStream, SocketStream

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
        self._server = await asyncio.start_server(
            self._accept,
            self.host,
            self.port,
            limit=READ_SIZE * 4,
            reuse_address=True,
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        stream = SocketStream(reader, writer)
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
            self._tasks.discard(task)

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


def install_fast_loop() -> None:
    """Use uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
