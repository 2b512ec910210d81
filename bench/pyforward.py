"""The ``python-forward`` column of the inbound benchmark: the floor of a Python proxy here.

A TCP forwarder on the same event loop wiretape uses (uvloop when installed), with nothing on
top: every accepted connection gets its own connection to the app, and each chunk received on
one side is written to the other in the receive callback. No parsing, no recording, no task per
connection. Its throughput is what a single-threaded Python proxy can reach on this machine at
all: two more sockets per request, one ``recv`` and one ``send`` on each, and the event loop's
dispatch. wiretape's record proxy is read against this as well as against ``direct``.

With ``--lane`` (the ``python-forward-lane`` column) it also keeps wiretape's record lane: one
request in flight to the app at a time, across all connections, the others waiting in arrival
order. It knows just enough HTTP for the benchmark's traffic: requests without a body, one per
write, and responses framed by ``Content-Length``. It is the floor of a lane proxy here: a
request pays the same wake-ups of a waiting app and a waiting client as in wiretape's lane,
and nothing else.

    python bench/pyforward.py LISTEN_PORT APP_PORT [--lane]
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
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


class _Lane:
    """One request in flight at a time, across all connections."""

    def __init__(self) -> None:
        self.busy = False
        self.waiting: deque[tuple[_LaneClient, bytes]] = deque()

    def send(self, client: _LaneClient, request: bytes) -> None:
        if self.busy:
            self.waiting.append((client, request))
        else:
            self.busy = True
            if not client.forward(request):
                self.release()

    def release(self) -> None:
        while self.waiting:
            client, request = self.waiting.popleft()
            if client.forward(request):
                return
        self.busy = False


class _LaneUpstream(_Side):
    """The app side: counts the response's bytes, and passes the lane on at its end."""

    def __init__(self, lane: _Lane) -> None:
        super().__init__()
        self.lane = lane
        self.head = b""
        self.left = -1  # body bytes still to come; -1 while the head is incomplete
        self.in_flight = False

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.in_flight:  # the answer will not come: the lane passes on
            self.in_flight = False
            self.lane.release()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        assert peer is not None and peer.transport is not None
        peer.transport.write(data)
        if self.left < 0:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            length = self.head.lower().partition(b"\r\ncontent-length:")[2].partition(b"\r\n")
            self.left = int(length[0] or 0) - (len(self.head) - end - 4)
            self.head = b""
        else:
            self.left -= len(data)
        if self.left == 0:
            self.left = -1
            self.in_flight = False
            self.lane.release()


class _LaneClient(_Side):
    def __init__(self, app_port: int, lane: _Lane) -> None:
        super().__init__()
        self.app_port = app_port
        self.lane = lane
        self.up: _LaneUpstream | None = None
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        up = _LaneUpstream(self.lane)
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: up, "127.0.0.1", self.app_port
            )
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        up.peer, self.peer, self.up = self, up, up
        for data in self.pending:
            self.data_received(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.up is None:
            self.pending.append(data)
        else:
            self.lane.send(self, data)

    def eof_received(self) -> bool:
        # The client is done: its app connection goes too (releasing the lane if it held it).
        self.ended = True
        if self.up is not None and self.up.transport is not None:
            self.up.transport.close()
        return False

    def forward(self, request: bytes) -> bool:
        """Send ``request`` to the app; False if this connection is gone (the lane goes on)."""
        up = self.up
        if self.ended or up is None or up.transport is None or up.transport.is_closing():
            return False
        up.in_flight = True
        up.transport.write(request)
        return True


async def serve(listen: int, app_port: int, lane: bool = False) -> None:
    loop = asyncio.get_running_loop()
    the_lane = _Lane()
    server = await loop.create_server(
        (lambda: _LaneClient(app_port, the_lane)) if lane else (lambda: _Client(app_port)),
        "127.0.0.1",
        listen,
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), lane="--lane" in sys.argv[3:]))


if __name__ == "__main__":
    main()
