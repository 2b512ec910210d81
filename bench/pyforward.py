"""The ``python-forward`` column of the inbound benchmark: the floor of a Python proxy here.

A TCP forwarder on the same event loop wiretape uses (uvloop when installed), with nothing on
top: every accepted connection gets its own connection to the app, and each chunk received on
one side is written to the other in the receive callback. No parsing, no recording, no task per
connection. Its throughput is what a single-threaded Python proxy can reach on this machine at
all: two more sockets per request, one ``recv`` and one ``send`` on each, and the event loop's
dispatch. wiretape's record proxy is read against this as well as against ``direct``.

    python bench/pyforward.py LISTEN_PORT APP_PORT
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast


class _Side(asyncio.Protocol):
    """One socket of a forwarded pair; its peer is the other socket's ``_Side``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []  # received before the peer connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        peer = self.peer
        if peer is not None and peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.close()

    # Back-pressure: a side that cannot write stops its peer from reading.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Side):
    def __init__(self, app_port: int) -> None:
        super().__init__()
        self.app_port = app_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        up = _Side()
        try:
            await loop.create_connection(lambda: up, "127.0.0.1", self.app_port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        up.peer, self.peer = self, up
        for side in (self, up):
            for data in side.pending:
                side.data_received(data)
            side.pending.clear()


async def serve(listen: int, app_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(app_port), "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2])))


if __name__ == "__main__":
    main()
