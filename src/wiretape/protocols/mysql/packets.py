"""MySQL packet framing and the primitive field types of the protocol.

A packet on the wire is a 3-byte little-endian payload length, a 1-byte sequence id and the
payload. A payload of 2^24-1 bytes or more is sent as several frames: every frame but the last
carries exactly 0xFFFFFF bytes, the sequence id goes up by one per frame, and a payload whose
length is a multiple of 0xFFFFFF ends with an empty frame. ``scan_packet`` finds where one logical
packet ends without copying it; ``join_payload`` strips the frame headers.

``Reader`` walks one payload and reports errors at their offset in the stream, so an error in
the fourth frame of a large packet still points at the right byte.
"""

from __future__ import annotations

import struct

from wiretape.errors import ProtocolError

__all__ = [
    "MAX_FRAME",
    "Reader",
    "encode_frames",
    "frame_count",
    "join_payload",
    "lenenc_bytes",
    "lenenc_int",
    "scan_packet",
    "stream_offset",
]

MAX_FRAME = 0xFFFFFF
_HEADER = 4


def frame_count(payload_len: int) -> int:
    """How many frames carry a payload of this length."""
    return payload_len // MAX_FRAME + 1


def stream_offset(start: int, pos: int) -> int:
    """Stream offset of payload byte ``pos`` of the packet whose first header is at ``start``."""
    return start + _HEADER * (pos // MAX_FRAME + 1) + pos


def scan_packet(buf: bytes | bytearray, pos: int, base: int) -> tuple[int, int, int] | None:
    """Locate the logical packet starting at ``buf[pos]``.

    Returns ``(seq, payload_len, end)`` where ``end`` is the index just past its last frame, or
    None when the packet is incomplete. ``base`` is the stream offset of ``buf[0]``.
    """
    seq = -1
    size = 0
    at = pos
    while True:
        if len(buf) - at < _HEADER:
            return None
        length = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16
        frame_seq = buf[at + 3]
        if seq < 0:
            seq = frame_seq
        elif frame_seq != (seq + (at - pos) // (MAX_FRAME + _HEADER)) % 256:
            raise ProtocolError(
                f"continuation frame of a large packet has sequence id {frame_seq}, expected "
                f"{(seq + (at - pos) // (MAX_FRAME + _HEADER)) % 256}; the stream is out of step",
                base + at + 3,
            )
        at += _HEADER + length
        size += length
        if length < MAX_FRAME:
            if len(buf) < at:
                return None
            return seq, size, at
        if len(buf) < at:
            return None


def join_payload(buf: bytes | bytearray, pos: int, end: int) -> bytes:
    """The payload of the packet at ``buf[pos:end]`` with its frame headers removed."""
    view = memoryview(buf)
    try:
        if end - pos <= MAX_FRAME + _HEADER - 1:
            return bytes(view[pos + _HEADER : end])
        parts = []
        at = pos
        while at < end:
            length = buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16
            parts.append(view[at + _HEADER : at + _HEADER + length])
            at += _HEADER + length
        return b"".join(parts)
    finally:
        view.release()


def encode_frames(seq: int, payload: bytes) -> bytes:
    """The frames that carry ``payload``, the first one with sequence id ``seq``."""
    if not 0 <= seq <= 255:
        raise ProtocolError(f"cannot encode sequence id {seq}: it must be from 0 to 255")
    if len(payload) < MAX_FRAME:
        return struct.pack("<I", len(payload) | seq << 24) + payload
    out = bytearray()
    for i in range(frame_count(len(payload))):
        chunk = payload[i * MAX_FRAME : (i + 1) * MAX_FRAME]
        out += struct.pack("<I", len(chunk) | ((seq + i) % 256) << 24)
        out += chunk
    return bytes(out)


def lenenc_int(value: int) -> bytes:
    """A length-encoded integer in its shortest form."""
    if value < 0:
        raise ProtocolError(f"cannot encode {value} as a length-encoded integer: it is negative")
    if value < 0xFB:
        return bytes((value,))
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    if value < 1 << 64:
        return b"\xfe" + value.to_bytes(8, "little")
    raise ProtocolError(f"cannot encode {value} as a length-encoded integer: it exceeds 2^64-1")


def lenenc_bytes(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


_LENENC_MIN = {0xFC: (2, 0xFB), 0xFD: (3, 1 << 16), 0xFE: (8, 1 << 24)}


class Reader:
    """A cursor over one payload; every failure is a ``ProtocolError`` at a stream offset."""

    __slots__ = ("_data", "_start", "pos", "what")

    def __init__(self, data: bytes, start: int, what: str) -> None:
        self._data = data
        self._start = start  # stream offset of the packet's first header
        self.pos = 0
        self.what = what

    @property
    def data(self) -> bytes:
        return self._data

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos

    def at_end(self) -> bool:
        return self.pos >= len(self._data)

    def offset(self, pos: int | None = None) -> int:
        return stream_offset(self._start, self.pos if pos is None else pos)

    def error(self, problem: str, pos: int | None = None) -> ProtocolError:
        return ProtocolError(f"malformed {self.what}: {problem}", self.offset(pos))

    def _need(self, n: int, field: str) -> None:
        if self.remaining < n:
            raise self.error(f"{field} needs {n} bytes but only {self.remaining} remain")

    def peek(self) -> int:
        if self.pos >= len(self._data):
            self._need(1, "a field")
        return self._data[self.pos]

    # The readers below check the length inline: they run for every field of every packet.

    def u8(self, field: str = "a 1-byte integer") -> int:
        pos = self.pos
        if pos >= len(self._data):
            self._need(1, field)
        self.pos = pos + 1
        return self._data[pos]

    def uint(self, n: int, field: str) -> int:
        pos = self.pos
        end = pos + n
        if end > len(self._data):
            self._need(n, field)
        self.pos = end
        return int.from_bytes(self._data[pos:end], "little")

    def fixed(self, n: int, field: str) -> bytes:
        pos = self.pos
        end = pos + n
        if end > len(self._data):
            self._need(n, field)
        self.pos = end
        return self._data[pos:end]

    def rest(self) -> bytes:
        value = self._data[self.pos :]
        self.pos = len(self._data)
        return value

    def nul(self, field: str) -> bytes:
        end = self._data.find(b"\x00", self.pos)
        if end < 0:
            raise self.error(f"{field} lacks its terminating NUL byte")
        value = self._data[self.pos : end]
        self.pos = end + 1
        return value

    def lenenc(self, field: str) -> int:
        at = self.pos
        if at < len(self._data) and self._data[at] < 0xFB:
            self.pos = at + 1
            return self._data[at]
        first = self.u8(field)
        if first < 0xFB:
            return first
        if first not in _LENENC_MIN:
            raise self.error(f"{field} starts with 0x{first:02x}, not a length-encoded integer", at)
        size, minimum = _LENENC_MIN[first]
        value = self.uint(size, field)
        if value < minimum:
            raise self.error(
                f"{field} uses a {size + 1}-byte form for {value}; only the shortest form can be "
                "re-encoded exactly",
                at,
            )
        return value

    def lenenc_bytes(self, field: str) -> bytes:
        at = self.pos
        data = self._data
        if at < len(data) and data[at] < 0xFB:  # the common case: a length under 251
            start = at + 1
            end = start + data[at]
            if end <= len(data):
                self.pos = end
                return data[start:end]
        size = self.lenenc(field)
        if size > self.remaining:
            raise self.error(
                f"{field} claims {size} bytes but only {self.remaining} remain in the packet", at
            )
        return self.fixed(size, field)

    def end(self) -> None:
        if self.pos < len(self._data):
            raise self.error(f"{self.remaining} unexpected bytes after the last field")
