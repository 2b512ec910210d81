"""Generic TCP: a connection as a sequence of turns, stored as plain data (sans-I/O).

Nothing is parsed; what is recorded is who sent which bytes, in which order, with which pauses.

How turns are cut
-----------------
A *turn* is the bytes the client sends, reassembled across reads, followed by every byte the
server sends until the client sends again. So a turn begins with the first client bytes after
server bytes (or at the start of the connection), and ends when the client sends after the
server has answered, or when the connection closes. A server that speaks first (a greeting)
gives a first turn with no client bytes. Only this order of events is kept, never the read
boundaries: TCP may split or join the same bytes differently on every run. The server's bytes of
a turn are kept as *chunks* with the pause before each: the first from the moment the client's
last bytes of the turn arrived (or, for a greeting, from the moment the connection was
established), the others from the chunk before. Pauses shorter than ``MERGE_GAP`` join the
chunks around them. A turn ends with ``close: true`` when the server closed the connection.

A turn is stored when it ends, so the last turn of a connection that stays open (a pooled one)
is stored when the client sends again or the connection closes; it is linked to the test that
was in flight when its client bytes were sent.

Stored form (plain data, see ``wiretape.protocols.wire``)
--------------------------------------------------------
A request is ``{send: 'get user:1\\r\\n'}`` (readable text, else ``{base64: ...}``); a greeting
is ``{send: ''}``. Client bytes longer than ``LARGE_SEND`` are kept as ``{send: {sha256: ...,
size: ..., head: ...}}`` and match by digest. A response is ``{chunks: [{delay_ms: 0.4, data:
'VALUE user:1 0 5\\r\\nalice\\r\\nEND\\r\\n'}], close: true}``. An answer over
``LARGE_ANSWER`` bytes is kept as raw bytes in ``bodies/`` and its plain data lists the chunks
by size (``{delay_ms: 0.4, size: 65536}``), with the total ``size`` and a ``head`` preview.

Replay matching (``Sends``)
---------------------------
The recorded client bytes of every turn of a dependency are the candidates. Live client bytes
accumulate in a buffer; ``Sends.match`` says which candidates the buffer begins with
(*complete*) and whether the buffer is still the beginning of a longer candidate (*partial*).
The match key is the client bytes themselves, so the usual rules of the index apply: identical
turns are answered in recorded order within a test, greetings may answer any test.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from wiretape.model import WireRequest
from wiretape.protocols.wire import PlainError, WireCodec, bytes_of, plain_bytes

__all__ = [
    "CODEC",
    "LARGE_ANSWER",
    "LARGE_SEND",
    "MERGE_GAP",
    "Answer",
    "Digest",
    "Exchange",
    "Match",
    "Send",
    "Sends",
    "Spool",
    "Tracker",
    "answer_of",
    "preview",
    "request_for",
    "rewrite_stream",
    "send_of",
]

LARGE_SEND = 1 << 20
LARGE_ANSWER = 64 * 1024
MERGE_GAP = 0.001  # seconds: server reads closer together than this are one chunk
HEAD = 64  # bytes of a large send or answer kept readable
HEAD_WINDOW = 4096  # bytes past the head redacted with it, so a value across its end is whole
PREVIEW_CHARS = 100


@dataclass(frozen=True, slots=True)
class Digest:
    """Client bytes too large to keep: their digest, size and first bytes."""

    sha256: str
    size: int
    head: bytes

    def matches(self, data: bytes) -> bool:
        return len(data) >= self.size and hashlib.sha256(data[: self.size]).hexdigest() == (
            self.sha256
        )

    def could_start(self, data: bytes) -> bool:
        """Whether ``data`` may be the beginning of these bytes (only the head is known)."""
        n = min(len(data), len(self.head))
        return len(data) < self.size and data[:n] == self.head[:n]


Send = bytes | Digest


def preview(data: bytes, limit: int = PREVIEW_CHARS) -> str:
    """One line showing ``data``: text with escapes, or hex for binary bytes."""
    if not data:
        return "(nothing: the server speaks first)"
    try:
        text = data.decode("utf-8")
        binary = any(ord(c) < 0x20 and c not in "\r\n\t" for c in text)
    except UnicodeDecodeError:
        binary = True
    if binary:
        shown = data[: limit // 2].hex()
        out = f"hex {shown}"
        clipped = len(data) > limit // 2
    else:
        escaped = text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
        escaped = escaped.replace("\t", "\\t")
        out = escaped[:limit]
        clipped = len(escaped) > limit
    return f"{out}… ({len(data):,} bytes)" if clipped else out


def _summary(send: Send) -> str:
    if isinstance(send, Digest):
        return f"{preview(send.head)}… ({send.size:,} bytes, sha256 {send.sha256[:12]})"
    return preview(send)


def _key(send: Send) -> object:
    if isinstance(send, Digest):
        return ("tcp-digest", send.sha256, send.size)
    return ("tcp", send)


def _send_doc(send: Send) -> Any:
    if isinstance(send, Digest):
        return {"sha256": send.sha256, "size": send.size, "head": plain_bytes(send.head)}
    return plain_bytes(send)


def send_of(data: Any) -> Send:
    """The client bytes (or their digest) of a stored request."""
    if not isinstance(data, dict) or "send" not in data:
        raise PlainError(f"a tcp request is {{send: ...}}, found {data!r:.80}")
    node = data["send"]
    if isinstance(node, dict) and "sha256" in node:
        sha, size = node.get("sha256"), node.get("size")
        if not isinstance(sha, str) or len(sha) != 64 or not isinstance(size, int) or size < 0:
            raise PlainError("send: a digest is {sha256: <64 hex digits>, size: N, head: ...}")
        return Digest(sha, size, bytes_of(node.get("head", ""), "send.head"))
    return bytes_of(node, "send")


def request_for(send: Send) -> WireRequest:
    """The request of a turn whose client bytes are ``send`` (``b""``: a greeting)."""
    return WireRequest(
        summary=_summary(send),
        data={"send": _send_doc(send)},
        key=_key(send),
        reusable=send == b"",
    )


def _request(data: Any) -> WireRequest:
    return request_for(send_of(data))


# -- answers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A recorded answer ready to send: (pause in seconds, bytes or a size in the raw bytes)."""

    chunks: tuple[tuple[float, bytes | int], ...]
    close: bool = False


def _delay(node: Any, where: str) -> float:
    if isinstance(node, bool) or not isinstance(node, int | float) or node < 0:
        raise PlainError(f"{where}: delay_ms must be a number >= 0, found {node!r:.40}")
    if not math.isfinite(node):
        raise PlainError(f"{where}: delay_ms must be finite")
    return float(node) / 1000


def answer_of(data: Any, *, raw: bool = False) -> Answer:
    """The chunks of a stored response; with ``raw``, sizes into the raw bytes kept aside."""
    if not isinstance(data, dict) or not isinstance(data.get("chunks"), list):
        raise PlainError(f"a tcp response is {{chunks: [...]}}, found {data!r:.80}")
    close = data.get("close", False)
    if not isinstance(close, bool):
        raise PlainError("close: expected true or false")
    chunks: list[tuple[float, bytes | int]] = []
    for i, chunk in enumerate(data["chunks"]):
        where = f"chunks[{i}]"
        if not isinstance(chunk, dict):
            raise PlainError(f"{where}: expected {{delay_ms: ..., data: ...}}")
        delay = _delay(chunk.get("delay_ms", 0), where)
        if raw:
            size = chunk.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise PlainError(f"{where}: size must be a whole number >= 0")
            chunks.append((delay, size))
        else:
            if "data" not in chunk:
                raise PlainError(f"{where}: data is missing")
            chunks.append((delay, bytes_of(chunk["data"], f"{where}.data")))
    return Answer(tuple(chunks), close)


def _check_response(data: Any) -> None:
    answer_of(data)


CODEC = WireCodec("tcp", _request, _check_response)


# -- recording ------------------------------------------------------------------------------------


class Spool(Protocol):
    """Where a large answer's bytes go (the store's body spool)."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> object: ...


@dataclass(slots=True)
class Exchange:
    """One turn of a connection."""

    send: bytearray | Digest
    started: float
    last_client: float
    tag: object = None
    chunks: list[list[Any]] = field(default_factory=list)  # [delay, bytes | None, size]
    last_server: float | None = None
    size: int = 0
    head: bytes = b""
    spool: Spool | None = None
    raw: object = None
    close: bool = False
    ended: float = 0.0
    hasher: Any = None  # sha256 of a large send, while it grows

    def raw_replaced(self, raw: object, size: int, head: bytes) -> None:
        """The spooled answer was rewritten (redacted) into ``raw``: ``size`` bytes beginning
        with ``head``. The last chunk takes the difference in size."""
        if self.chunks:
            self.chunks[-1][2] += size - self.size
        self.raw, self.size, self.head = raw, size, head[:HEAD]

    @property
    def answered(self) -> bool:
        return self.last_server is not None or self.close

    @property
    def request(self) -> WireRequest:
        send = self.send
        return request_for(send if isinstance(send, Digest) else bytes(send))

    def response_data(self) -> dict[str, Any]:
        doc: dict[str, Any]
        if self.spool is None and self.raw is None:
            doc = {
                "chunks": [
                    {"delay_ms": _ms(delay), "data": plain_bytes(data)}
                    for delay, data, _ in self.chunks
                ]
            }
        else:
            doc = {
                "chunks": [
                    {"delay_ms": _ms(delay), "size": size} for delay, _, size in self.chunks
                ],
                "size": self.size,
                "head": plain_bytes(self.head),
            }
        if self.close:
            doc["close"] = True
        return doc


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000, 3)


class Tracker:
    """Cuts one connection's traffic into turns.

    ``client`` and ``server`` take the bytes each side sent, in the order they arrived, with
    the time; ``client`` returns the turn its bytes ended, if any. ``server_closed`` marks the
    server's end of the stream and ``close`` returns the turn still open. ``new_tag`` is called
    when a turn's client bytes begin (the caller's link to the test in flight); a greeting gets
    ``opening_tag``. With ``spool``, an answer over ``LARGE_ANSWER`` bytes is written there
    instead of being held. With ``redact`` (``Secrets.redact_bytes``), a turn's kept bytes
    leave ``_end`` through it: the client bytes (or a large send's head), and the server chunks
    as one stream, so a value split between two reads is found too. A spooled answer is the
    caller's to redact (``Exchange.raw_replaced``).
    """

    def __init__(
        self,
        *,
        opened: float,
        new_tag: Callable[[], object],
        opening_tag: object = None,
        spool: Callable[[], Spool] | None = None,
        redact: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.opened = opened
        self.new_tag = new_tag
        self.opening_tag = opening_tag
        self.spool = spool
        self.redact = redact
        self.current: Exchange | None = None
        self.turns = 0

    def client(self, data: bytes, now: float) -> list[Exchange]:
        done: list[Exchange] = []
        if not data:
            return done
        turn = self.current
        if turn is None or turn.answered:
            if turn is not None:
                done.append(self._end(turn))
            turn = Exchange(bytearray(), now, now, self.new_tag())
            self.current = turn
            self.turns += 1
        self._add_send(turn, data)
        turn.last_client = now
        return done

    def _add_send(self, turn: Exchange, data: bytes) -> None:
        send = turn.send
        if isinstance(send, bytearray):
            send += data
            if len(send) <= LARGE_SEND:
                return
            turn.hasher = hashlib.sha256(send)
            # A value that runs past the head is still seen whole in the window.
            head = bytes(send[: HEAD + HEAD_WINDOW])
            if self.redact is not None:
                head = self.redact(head)
            turn.send = Digest("", len(send), head[:HEAD])
            return
        turn.hasher.update(data)
        turn.send = Digest("", send.size + len(data), send.head)

    def server(self, data: bytes, now: float) -> None:
        if not data:
            return
        turn = self.current
        if turn is None:
            turn = Exchange(bytearray(), self.opened, self.opened, self.opening_tag)
            self.current = turn
            self.turns += 1
        since = turn.last_client if turn.last_server is None else turn.last_server
        delay = now - since
        turn.last_server = now
        if len(turn.head) < HEAD:
            turn.head += data[: HEAD - len(turn.head)]
        turn.size += len(data)
        if turn.chunks and delay < MERGE_GAP:
            last = turn.chunks[-1]
            last[2] += len(data)
            if last[1] is not None:
                last[1] += data
        else:
            kept = None if turn.spool is not None else bytearray(data)
            turn.chunks.append([delay, kept, len(data)])
        if turn.spool is not None:
            turn.spool.write(data)
        elif self.spool is not None and turn.size > LARGE_ANSWER:
            spool = self.spool()
            for chunk in turn.chunks:
                spool.write(bytes(chunk[1]))
                chunk[1] = None
            turn.spool = spool

    def server_closed(self, now: float) -> None:
        turn = self.current
        if turn is None:
            turn = Exchange(bytearray(), self.opened, self.opened, self.opening_tag)
            self.current = turn
            self.turns += 1
        turn.close = True
        if turn.last_server is None:
            turn.last_server = now

    def close(self) -> list[Exchange]:
        turn, self.current = self.current, None
        return [] if turn is None else [self._end(turn)]

    def _end(self, turn: Exchange) -> Exchange:
        if isinstance(turn.send, Digest):
            turn.send = Digest(turn.hasher.hexdigest(), turn.send.size, turn.send.head)
            turn.hasher = None
        for chunk in turn.chunks:
            if isinstance(chunk[1], bytearray):
                chunk[1] = bytes(chunk[1])
        if self.redact is not None:
            self._redact(turn, self.redact)
        if turn.spool is not None:
            turn.raw = turn.spool.finish()
            turn.spool = None
        turn.ended = turn.last_server if turn.last_server is not None else turn.last_client
        return turn

    @staticmethod
    def _redact(turn: Exchange, redact: Callable[[bytes], bytes]) -> None:
        if isinstance(turn.send, bytearray):
            turn.send = bytearray(redact(bytes(turn.send)))
        kept = [chunk[1] for chunk in turn.chunks]
        if turn.spool is None and kept and all(isinstance(data, bytes) for data in kept):
            pieces = rewrite_stream(cast(list[bytes], kept), redact)
            if pieces is not None:
                for chunk, data in zip(turn.chunks, pieces, strict=True):
                    chunk[1], chunk[2] = data, len(data)
                turn.size = sum(len(data) for data in pieces)
                turn.head = b"".join(pieces)[:HEAD]


def rewrite_stream(
    pieces: Sequence[bytes], rewrite: Callable[[bytes], bytes]
) -> list[bytes] | None:
    """``pieces`` rewritten as one stream, then cut again at the same offsets; None when
    ``rewrite`` changed nothing. When the length changed the last piece takes the difference
    (each piece keeps its offset, as far as the new stream reaches)."""
    whole = b"".join(pieces)
    new = rewrite(whole)
    if new == whole:
        return None
    out: list[bytes] = []
    at = 0
    for i, piece in enumerate(pieces):
        end = len(new) if i == len(pieces) - 1 else min(at + len(piece), len(new))
        out.append(new[at:end])
        at = end
    return out


# -- replay matching ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Match:
    """What a buffer of live client bytes is, against the recorded turns.

    ``complete``: the recorded client bytes the buffer begins with, longest first.
    ``partial``: the buffer is the beginning of a longer recording, so more bytes may come.
    """

    complete: tuple[Send, ...] = ()
    partial: bool = False

    @property
    def miss(self) -> bool:
        return not self.complete and not self.partial


class Sends:
    """The recorded client bytes of one dependency's turns, searchable by prefix."""

    def __init__(self, sends: Iterable[Send]) -> None:
        plain: set[bytes] = set()
        digests: set[Digest] = set()
        for send in sends:
            if isinstance(send, Digest):
                digests.add(send)
            else:
                plain.add(send)
        self.has_opening = b"" in plain
        plain.discard(b"")
        self._set = plain
        self._sorted = sorted(plain)
        self._lengths = sorted({len(s) for s in plain}, reverse=True)
        self._digests = tuple(sorted(digests, key=lambda d: -d.size))

    def __len__(self) -> int:
        return len(self._set) + len(self._digests)

    def match(self, buffer: bytes) -> Match:
        if not buffer:
            return Match(partial=bool(self))
        complete: list[tuple[int, Send]] = []
        for length in self._lengths:
            if length <= len(buffer) and buffer[:length] in self._set:
                complete.append((length, buffer[:length]))
        partial = False
        at = bisect.bisect_right(self._sorted, buffer)
        if at < len(self._sorted) and self._sorted[at].startswith(buffer):
            partial = True
        for digest in self._digests:
            if digest.matches(buffer):
                complete.append((digest.size, digest))
            elif digest.could_start(buffer):
                partial = True
        complete.sort(key=lambda item: -item[0])
        return Match(tuple(send for _, send in complete), partial)
