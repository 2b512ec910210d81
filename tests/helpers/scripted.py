"""A scripted client stream for driving a proxy or mock server connection without sockets."""

from __future__ import annotations


class Scripted:
    """The server's end of a connection whose client sends ``chunks``, one per read, then closes;
    what the server writes is kept in ``sent``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)
        self.sent = bytearray()

    async def read(self) -> bytes:
        return next(self._chunks, b"")

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def peer(self) -> str:
        return "scripted"
