"""Sans-I/O Redis RESP2/RESP3: a parser for each direction of a connection, and encoders.

How the parser works
--------------------
Fed bytes go into one bytearray; ``_pos`` is the read offset and the consumed prefix is dropped
on the next ``feed()`` once it is large, so the buffer holds at most the message being parsed
plus its incomplete tail. Every element starts with a header line (``$5\\r\\n``, ``*2\\r\\n``,
``+OK\\r\\n``...) found with ``find(b"\\r\\n")`` inside a ``max_line`` window. Open aggregates
live on an explicit stack of ``_Frame`` objects, so a large array fed in many pieces is never
re-parsed: progress is kept between calls. A bulk value of at most ``stream_threshold`` bytes is
taken in one piece once all of it is buffered; a longer one is *streamed*: its header is
consumed at once and its data handed out as ``BulkChunk`` events as it arrives.

Common shapes take a quick path: when no element is open, the bytes ahead are split on CRLF
once (at most ``_QUICK_WINDOW`` of them) and every complete command that is an array of short
bulk strings, or reply that is a scalar (simple string or error, integer, short bulk string,
null) or a flat array of scalars, is queued at once. Each part is checked as the full parser
would (canonical lengths, the same limits); the first element that is of another shape,
incomplete or wrong is left to the full parser, which gives the same events and errors for it.
A bulk string holding CRLF is split apart, so its length does not match and it goes there too.

Lossless by construction: the parser accepts only the canonical spelling of every element
(lengths and integers without signs or leading zeros, ``#t``/``#f``, CRLF everywhere), and the
values keep what the spelling leaves open (a double's text, simple vs bulk, the three kinds of
null, a verbatim string's format, an inline command's line). So ``encode(decode(b)) == b``.

Event grammar
-------------
A ``Kind.REPLY`` parser yields, for each top-level element::

    Reply(value)                    # a complete reply; value may be Attributed(...)
    Push(value)                     # out-of-band data: a PushData, possibly Attributed
    node                            # a reply or push holding a streamed bulk (below)

    node      := Item(value)                                    # a complete small child
               | BulkStart(kind, length, format) BulkChunk(data)* BulkEnd()
               | AggregateStart(kind, length) node{n} AggregateEnd()

where ``n`` is ``length`` for ARRAY, SET and PUSH, ``2 * length`` for MAP, and
``2 * length + 1`` for ATTRIBUTE (its pairs, then the element it is attached to). A top-level
node is never an ``Item``. An aggregate is announced with ``AggregateStart`` only when a streamed
bulk occurs somewhere inside it; its children completed before that come first as ``Item``
events, and its children after that are ``Item`` events unless they too hold a streamed bulk.
Streamed bulks are the ones longer than ``stream_threshold``; a VERBATIM ``BulkStart`` carries
the three-byte format, and its ``length`` and chunks cover the text after ``fmt:``.

A ``Kind.COMMAND`` parser yields ``Command(args, inline, line)`` for each command; a command
with an argument longer than ``stream_threshold`` comes as ``AggregateStart(ARRAY, argc)``, an
``Item(BulkString(arg))`` or a streamed bulk per argument, and ``AggregateEnd()``.

``encode_event()`` maps every event to its bytes on its own, so joining the encoded events of a
stream gives back the stream. RESP3 streamed strings and aggregates (``$?``, ``*?``), which Redis
does not send, are refused with ``ProtocolError``.
"""

from __future__ import annotations

import enum
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NoReturn

from wiretape.errors import ProtocolError

__all__ = [
    "DEFAULT_STREAM_THRESHOLD",
    "NEED_DATA",
    "REDACTED",
    "AggregateEnd",
    "AggregateKind",
    "AggregateStart",
    "Array",
    "Attributed",
    "BigNumber",
    "Boolean",
    "BulkChunk",
    "BulkEnd",
    "BulkError",
    "BulkKind",
    "BulkStart",
    "BulkString",
    "Command",
    "Double",
    "Event",
    "Integer",
    "Item",
    "Kind",
    "Map",
    "NeedData",
    "Null",
    "NullKind",
    "Push",
    "PushData",
    "Reply",
    "RespParser",
    "Set",
    "SimpleError",
    "SimpleString",
    "Value",
    "Verbatim",
    "command_name",
    "encode_command",
    "encode_event",
    "encode_inline",
    "encode_reply",
    "redact_auth",
]

DEFAULT_STREAM_THRESHOLD = 1 << 20
REDACTED = b"[redacted]"


class Kind(enum.Enum):
    """Which direction of the connection a parser reads."""

    COMMAND = "command"  # client to server
    REPLY = "reply"  # server to client


class NeedData(enum.Enum):
    """What ``next_event()`` returns when it needs more bytes: the single member ``NEED_DATA``."""

    NEED_DATA = "need-data"


NEED_DATA = NeedData.NEED_DATA


class NullKind(enum.Enum):
    """The three spellings of null: RESP3 ``_``, RESP2 null bulk ``$-1``, null array ``*-1``."""

    RESP3 = "_"
    BULK = "$"
    ARRAY = "*"


class AggregateKind(enum.Enum):
    ARRAY = "*"
    MAP = "%"
    SET = "~"
    ATTRIBUTE = "|"
    PUSH = ">"


class BulkKind(enum.Enum):
    STRING = "$"
    ERROR = "!"
    VERBATIM = "="


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimpleString:
    data: bytes


@dataclass(frozen=True, slots=True)
class SimpleError:
    data: bytes


@dataclass(frozen=True, slots=True)
class Integer:
    value: int


@dataclass(frozen=True, slots=True)
class BulkString:
    data: bytes


@dataclass(frozen=True, slots=True)
class Null:
    kind: NullKind = NullKind.RESP3


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool


@dataclass(frozen=True, slots=True)
class Double:
    """A RESP3 double, kept as the server spelled it (``1.5``, ``1e+300``, ``inf``, ``-nan``)."""

    text: str

    @property
    def value(self) -> float:
        text = self.text.lower()
        if "nan" in text:
            return math.nan
        return float(text)


@dataclass(frozen=True, slots=True)
class BigNumber:
    text: str

    @property
    def value(self) -> int:
        return int(self.text)


@dataclass(frozen=True, slots=True)
class BulkError:
    data: bytes


@dataclass(frozen=True, slots=True)
class Verbatim:
    """A verbatim string: ``format`` is three bytes such as ``b"txt"`` or ``b"mkd"``."""

    format: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Map:
    items: tuple[tuple[Value, Value], ...]


@dataclass(frozen=True, slots=True)
class Set:
    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class PushData:
    """The body of a RESP3 push (``>``); only valid at the top level of a reply stream."""

    items: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Attributed:
    """``value`` preceded on the wire by an attribute map (``|``)."""

    attributes: tuple[tuple[Value, Value], ...]
    value: Value


Value = (
    SimpleString
    | SimpleError
    | Integer
    | BulkString
    | Null
    | Boolean
    | Double
    | BigNumber
    | BulkError
    | Verbatim
    | Array
    | Map
    | Set
    | PushData
    | Attributed
)


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One command. ``line`` is the exact line of an inline command (with its line end)."""

    args: tuple[bytes, ...]
    inline: bool = False
    line: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply:
    value: Value


@dataclass(frozen=True, slots=True)
class Push:
    """Out-of-band data (pub/sub messages, invalidations); ``value`` is a possibly attributed
    ``PushData``."""

    value: Value

    @property
    def items(self) -> tuple[Value, ...]:
        value = self.value
        while isinstance(value, Attributed):
            value = value.value
        return value.items if isinstance(value, PushData) else ()


@dataclass(frozen=True, slots=True)
class AggregateStart:
    kind: AggregateKind
    length: int


@dataclass(frozen=True, slots=True)
class Item:
    value: Value


@dataclass(frozen=True, slots=True)
class AggregateEnd:
    pass


@dataclass(frozen=True, slots=True)
class BulkStart:
    kind: BulkKind
    length: int
    format: bytes = b""


@dataclass(frozen=True, slots=True)
class BulkChunk:
    data: bytes


@dataclass(frozen=True, slots=True)
class BulkEnd:
    pass


Event = (
    Command | Reply | Push | AggregateStart | Item | AggregateEnd | BulkStart | BulkChunk | BulkEnd
)


# -- parser ---------------------------------------------------------------------------------------

_INTEGER = re.compile(rb"0|-?[1-9][0-9]*")
_DOUBLE = re.compile(
    rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
    rb"|[+-]?(?:[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN](?:\([0-9A-Za-z_]*\))?)"
)
_BIG_NUMBER = re.compile(rb"[+-]?[0-9]+")
_COMPACT_AT = 1 << 16
_CR, _LF, _STAR, _DOLLAR = 13, 10, 42, 36
_QUICK_WINDOW = 4096
_QUICK_COUNTS = {b"*%d" % n: n for n in range(1, 1000)}
_QUICK_LENGTHS = {b"$%d" % n: n for n in range(1000)}
_INCOMPLETE, _OTHER = -1, -2
_KNOWN_SIZE = 1024  # the longest chunk whose events are kept in ``known``
_KNOWN_ENTRIES = 1024


_TYPES: dict[int, str] = {
    ord("+"): "simple string",
    ord("-"): "simple error",
    ord(":"): "integer",
    ord("_"): "null",
    ord("#"): "boolean",
    ord(","): "double",
    ord("("): "big number",
    ord("$"): "bulk string",
    ord("!"): "bulk error",
    ord("="): "verbatim string",
    ord("*"): "array",
    ord("%"): "map",
    ord("~"): "set",
    ord("|"): "attribute",
    ord(">"): "push",
}
_BULK_KINDS = {ord(k.value): k for k in BulkKind}
_AGGREGATE_KINDS = {ord(k.value): k for k in AggregateKind}
_BULK_HEADERS = {k: k.value.encode() for k in BulkKind}
_AGGREGATE_HEADERS = {k: k.value.encode() for k in AggregateKind}
_EMPTY: dict[AggregateKind, Value] = {
    AggregateKind.ARRAY: Array(()),
    AggregateKind.MAP: Map(()),
    AggregateKind.SET: Set(()),
    AggregateKind.PUSH: PushData(()),
}


class _Frame:
    """An open aggregate: how many children it needs and the ones parsed so far."""

    __slots__ = ("announced", "done", "expected", "items", "kind", "length")

    def __init__(self, kind: AggregateKind, length: int) -> None:
        self.kind = kind
        self.length = length
        if kind is AggregateKind.MAP:
            self.expected = 2 * length
        elif kind is AggregateKind.ATTRIBUTE:
            self.expected = 2 * length + 1
        else:
            self.expected = length
        self.items: list[Value] = []
        self.done = 0  # children completed after the frame was announced
        self.announced = False

    def build(self) -> Value:
        items = self.items
        kind = self.kind
        if kind is AggregateKind.ARRAY:
            return Array(tuple(items))
        if kind is AggregateKind.MAP:
            return Map(_pairs(items))
        if kind is AggregateKind.SET:
            return Set(tuple(items))
        if kind is AggregateKind.PUSH:
            return PushData(tuple(items))
        return Attributed(_pairs(items[:-1]), items[-1])


def _pairs(items: list[Value]) -> tuple[tuple[Value, Value], ...]:
    return tuple(zip(items[::2], items[1::2], strict=True))


class RespParser:
    """Parses one direction of a Redis connection: ``Kind.COMMAND`` or ``Kind.REPLY``.

    ``feed()`` bytes, then call ``next_event()`` until it returns ``NEED_DATA``. Raises only
    ``ProtocolError``; after one, every call raises it again.

    ``known`` is a dict that parsers of the same kind and limits may share (the connections of
    one dependency): the events of a small chunk fed into an empty buffer and read whole by the
    quick path are kept there, so the same chunk fed again is not parsed again.
    """

    def __init__(
        self,
        kind: Kind,
        *,
        stream_threshold: int = DEFAULT_STREAM_THRESHOLD,
        max_depth: int = 64,
        max_aggregate_length: int = 1 << 32,
        max_bulk_length: int = 512 << 20,
        max_line: int = 1 << 20,
        known: dict[bytes, tuple[Event, ...]] | None = None,
    ) -> None:
        if stream_threshold < 0 or max_depth < 1 or max_line < 1:
            raise ValueError("stream_threshold must be >= 0, max_depth and max_line >= 1")
        self._kind = kind
        self._threshold = stream_threshold
        self._max_depth = max_depth
        self._max_aggregate = max_aggregate_length
        self._max_bulk = max_bulk_length
        self._max_line = max_line
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0
        self._stack: list[_Frame] = []
        self._out: deque[Event] = deque()
        self._bulk_left = -1  # data bytes left of the streamed bulk, -1 when not streaming
        self._eof = False
        self._error: ProtocolError | None = None
        self._quick_ok = max_line >= 3  # the headers the quick path reads have at most 3 digits
        self._quick_limit = min(stream_threshold, max_bulk_length)
        self._slow_at = self._slow_end = -1  # where the quick path last found nothing to take
        self._fed: bytes | None = None  # the last chunk fed, while it is all the buffer holds
        self._known = known

    # -- public API ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._check_error()
        if not data:
            return
        if self._eof:
            self._fail(
                ProtocolError(
                    "feed() was called after feed_eof(); a closed stream cannot receive more bytes",
                    self.consumed,
                )
            )
        pos = self._pos
        buf = self._buf
        if pos and (pos >= _COMPACT_AT or pos * 2 >= len(buf)):
            del buf[:pos]
            self._base += pos
            self._pos = 0
        self._fed = None if buf or type(data) is not bytes else data
        buf += data

    def feed_eof(self) -> None:
        """The peer closed its side; the next ``next_event()`` that runs out of bytes raises
        ``ProtocolError`` if a message is incomplete."""
        self._check_error()
        self._eof = True

    def next_event(self) -> Event | NeedData:
        if self._out:
            return self._out.popleft()
        if self._error is not None:
            self._check_error()
        if not self._stack and self._bulk_left < 0:
            if self._pos >= len(self._buf):
                return NEED_DATA
            if self._quick_ok:
                self._quick()
                if self._out:
                    return self._out.popleft()
        try:
            result = self._step()
            if result is NEED_DATA and self._eof and self.in_message:
                raise ProtocolError(
                    f"connection closed inside a {self._kind.value} "
                    f"({len(self._buf) - self._pos} unparsed bytes buffered)",
                    self.consumed,
                )
        except ProtocolError as exc:
            self._fail(exc)
        return result

    @property
    def consumed(self) -> int:
        """Bytes of the stream parsed so far (the stream offset of the next unparsed byte)."""
        return self._base + self._pos

    @property
    def in_message(self) -> bool:
        """Whether a command or reply has started but not completed."""
        return bool(self._stack) or self._bulk_left >= 0 or self._pos < len(self._buf)

    @property
    def buffer_size(self) -> int:
        """Bytes held in the internal buffer (parsed or not)."""
        return len(self._buf)

    # -- plumbing -----------------------------------------------------------------------------

    def _check_error(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.message, self._error.offset)

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._error = error
        self._out.clear()
        raise error

    def _step(self) -> Event | NeedData:
        buf = self._buf
        stack = self._stack
        command = self._kind is Kind.COMMAND
        while True:
            if self._out:
                return self._out.popleft()
            if self._bulk_left >= 0:
                event = self._stream_bulk()
                if event is None:
                    continue
                return event
            pos = self._pos
            size = len(buf)
            if pos >= size:
                return NEED_DATA
            t = buf[pos]
            if command:
                if not stack:
                    if t != _STAR:
                        return self._inline()
                elif t != _DOLLAR:
                    raise ProtocolError(
                        f"expected '$' (a bulk string argument) in a command, got {chr(t)!r}",
                        self._base + pos,
                    )
            end = buf.find(b"\r\n", pos + 1, pos + self._max_line + 3)
            if end < 0:
                return self._no_line(t, pos, size)
            value: Value
            if t == _DOLLAR:
                digits = buf[pos + 1 : end]
                if digits.isdigit() and (digits[0] != 48 or len(digits) == 1) and len(digits) < 19:
                    length = int(digits)
                else:
                    length = self._length(digits, pos, nullable=not command)
                    if length < 0:
                        value = Null(NullKind.BULK)
                        self._pos = end + 2
                        length = -2
                if length >= 0:
                    if length > self._max_bulk:
                        self._check_bulk(length, pos)
                    start = end + 2
                    if length > self._threshold:
                        if not self._start_stream(BulkKind.STRING, length, start):
                            return NEED_DATA
                        continue
                    stop = start + length
                    if size < stop + 2:
                        return NEED_DATA
                    if buf[stop] != _CR or buf[stop + 1] != _LF:
                        self._bad_terminator(stop)
                    value = BulkString(bytes(buf[start:stop]))
                    self._pos = stop + 2
            elif t == 43:  # '+'
                data = bytes(buf[pos + 1 : end])
                if b"\n" in data or b"\r" in data:
                    raise ProtocolError("CR or LF inside a simple string", self._base + pos + 1)
                value = SimpleString(data)
                self._pos = end + 2
            elif t == _STAR or t in _AGGREGATE_KINDS:
                digits = buf[pos + 1 : end]
                akind = _AGGREGATE_KINDS[t]
                if digits.isdigit() and (digits[0] != 48 or len(digits) == 1) and len(digits) < 19:
                    length = int(digits)
                else:
                    length = self._length(
                        digits, pos, nullable=akind is AggregateKind.ARRAY and not command
                    )
                self._pos = end + 2
                if length < 0:
                    value = Null(NullKind.ARRAY)
                else:
                    self._open(akind, length, pos)
                    if length or akind is AggregateKind.ATTRIBUTE:
                        continue
                    value = _EMPTY[akind]
            elif t in _BULK_KINDS:
                value_or_none = self._other_bulk(t, pos, end, size)
                if value_or_none is None:
                    if self._bulk_left >= 0:
                        continue
                    return NEED_DATA
                value = value_or_none
            else:
                value = self._simple(t, bytes(buf[pos + 1 : end]), pos)
                self._pos = end + 2
            if not stack:
                if command:
                    assert isinstance(value, Array)
                    return Command(())
                if isinstance(value, PushData | Attributed):
                    return self._top(value)
                return Reply(value)
            frame = stack[-1]
            if not frame.announced:
                items = frame.items
                items.append(value)
                if len(items) < frame.expected:
                    continue
                stack.pop()
                value = frame.build()
            else:
                self._out.append(Item(value))
                frame.done += 1
                if frame.done < frame.expected:
                    continue
                stack.pop()
                self._out.append(AggregateEnd())
                event = self._finish(None)
                if event is not None:
                    return event
                continue
            event = self._finish(value)
            if event is not None:
                return event

    # -- quick path ------------------------------------------------------------------------------

    def _quick(self) -> None:
        """Queue the complete top-level elements of common shapes found at the read offset, from
        one split of the next ``_QUICK_WINDOW`` bytes on CRLF: commands that are arrays of short
        bulk strings; replies that are simple strings or errors, integers, short bulk strings,
        nulls, or flat arrays of those. It stops at the first element of another shape, not
        complete in the window, or not valid, which ``_step`` then parses (or reports). A bulk
        string whose data holds CRLF is split apart, so its length does not match and it stops
        there too: whatever is queued is exactly what ``_step`` would give."""
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if self._base + pos == self._slow_at and self._base + size == self._slow_end:
            return  # this element was tried and goes to _step, and no byte came since
        whole = self._fed if pos == 0 else None  # the buffer is this one chunk
        known = self._known
        if whole is not None and known is not None:
            events = known.get(whole)
            if events is not None:
                self._out.extend(events)
                self._pos = size
                return
        stop = pos + _QUICK_WINDOW
        chunk = whole[:stop] if whole is not None else bytes(buf[pos:stop])
        parts = chunk.split(b"\r\n")
        if self._kind is Kind.COMMAND:
            taken, short = self._quick_commands(parts)
        else:
            taken, short = self._quick_replies(parts)
        used = sum(map(len, parts[:taken])) + 2 * taken
        self._pos = pos + used
        if used == size:
            if whole is not None and known is not None and size <= _KNOWN_SIZE:
                if len(known) >= _KNOWN_ENTRIES:
                    del known[next(iter(known))]
                known[whole] = tuple(self._out)
        elif not (short and taken and stop < size):  # unless the window cut the next element
            self._slow_at = self._base + pos + used
            self._slow_end = self._base + size

    def _quick_commands(self, parts: list[bytes]) -> tuple[int, bool]:
        """How many of ``parts`` make complete commands (queued), and whether the next command is
        incomplete (rather than of another shape)."""
        out = self._out
        limit = self._quick_limit
        most = self._max_aggregate
        n = len(parts) - 1  # the last part is what follows the last CRLF
        i = 0
        while i < n:
            count = _QUICK_COUNTS.get(parts[i])
            if count is None or count > most:
                return i, False
            end = i + 1 + 2 * count
            if end > n:
                return i, True
            args = parts[i + 2 : end : 2]
            for head, arg in zip(parts[i + 1 : end : 2], args, strict=True):
                length = _QUICK_LENGTHS.get(head)
                if length != len(arg) or length > limit:
                    return i, False
            out.append(Command(tuple(args)))
            i = end
        return i, True

    def _quick_replies(self, parts: list[bytes]) -> tuple[int, bool]:
        """As ``_quick_commands``, for replies."""
        out = self._out
        n = len(parts) - 1
        i = 0
        items: list[Value] = []
        while i < n:
            part = parts[i]
            if part[:1] != b"*":
                j = self._quick_scalar(parts, i, n, items)
                if j < 0:
                    return i, j == _INCOMPLETE
                out.append(Reply(items.pop()))
                i = j
                continue
            count = _QUICK_COUNTS.get(part)
            if count is None:
                if part != b"*-1":
                    return i, False
                out.append(Reply(Null(NullKind.ARRAY)))
                i += 1
                continue
            if count > self._max_aggregate:
                return i, False
            j = i + 1
            for _ in range(count):
                j = self._quick_scalar(parts, j, n, items)
                if j < 0:
                    return i, j == _INCOMPLETE
            out.append(Reply(Array(tuple(items))))
            items.clear()
            i = j
        return i, True

    def _quick_scalar(self, parts: list[bytes], i: int, n: int, items: list[Value]) -> int:
        """Append the simple string or error, integer, short bulk string or null bulk that starts
        at ``parts[i]`` to ``items``; the index of the part after it, or ``_INCOMPLETE`` or
        ``_OTHER``."""
        if i >= n:
            return _INCOMPLETE
        part = parts[i]
        t = part[:1]
        if t == b"$":
            length = _QUICK_LENGTHS.get(part)
            if length is None:
                if part == b"$-1":
                    items.append(Null(NullKind.BULK))
                    return i + 1
                return _OTHER
            if i + 1 >= n:
                return _INCOMPLETE
            data = parts[i + 1]
            if len(data) != length or length > self._quick_limit:
                return _OTHER
            items.append(BulkString(data))
            return i + 2
        if len(part) > self._max_line + 1:
            return _OTHER
        body = part[1:]
        if t == b"+" or t == b"-":
            if b"\r" in body or b"\n" in body:
                return _OTHER
            items.append(SimpleString(body) if t == b"+" else SimpleError(body))
            return i + 1
        if t == b":" and len(body) <= 20 and _INTEGER.fullmatch(body):
            number = int(body)
            if -(1 << 63) <= number < 1 << 63:
                items.append(Integer(number))
                return i + 1
        return _OTHER

    def _no_line(self, t: int, pos: int, size: int) -> NeedData:
        """No CRLF yet after the type byte at ``pos``: wait, or refuse what cannot be RESP."""
        name = _TYPES.get(t)
        if name is None:
            self._unknown(t, pos)
        if size >= pos + self._max_line + 3:
            raise ProtocolError(
                f"{name} line is longer than max_line={self._max_line} bytes (or lacks its "
                "CRLF); raise max_line if such lines are legitimate",
                self._base + pos,
            )
        return NEED_DATA

    def _unknown(self, t: int, pos: int) -> NoReturn:
        raise ProtocolError(
            f"unknown RESP type byte {bytes([t])!r}: the stream is not RESP or lost its framing",
            self._base + pos,
        )

    def _check_bulk(self, length: int, pos: int) -> None:
        if length > self._max_bulk:
            raise ProtocolError(
                f"{_TYPES[self._buf[pos]]} of {length} bytes is longer than max_bulk_length="
                f"{self._max_bulk}",
                self._base + pos,
            )

    def _bad_terminator(self, stop: int) -> NoReturn:
        raise ProtocolError(
            "bulk data is not followed by CRLF: the length does not match the data",
            self._base + stop,
        )

    def _other_bulk(self, t: int, pos: int, end: int, size: int) -> Value | None:
        """A bulk error or verbatim string; None when more bytes are needed or it streams."""
        buf = self._buf
        length = self._length(buf[pos + 1 : end], pos, nullable=False)
        self._check_bulk(length, pos)
        kind = _BULK_KINDS[t]
        if kind is BulkKind.VERBATIM and length < 4:
            raise ProtocolError(
                f"verbatim string of {length} bytes cannot hold its 'fmt:' prefix",
                self._base + pos,
            )
        start = end + 2
        if length > self._threshold:
            self._start_stream(kind, length, start)
            return None
        stop = start + length
        if size < stop + 2:
            return None
        if buf[stop] != _CR or buf[stop + 1] != _LF:
            self._bad_terminator(stop)
        data = bytes(buf[start:stop])
        value = BulkError(data) if kind is BulkKind.ERROR else self._verbatim(data, pos)
        self._pos = stop + 2
        return value

    def _top(self, value: Value) -> Event:
        inner = value
        while isinstance(inner, Attributed):
            inner = inner.value
        return Push(value) if isinstance(inner, PushData) else Reply(value)

    def _length(self, digits: bytearray, pos: int, *, nullable: bool) -> int:
        """The length in a header line, or -1 for a null; raises for anything else."""
        what = _TYPES[self._buf[pos]]
        if digits.isdigit() and (len(digits) == 1 or digits[0] != 48):
            if len(digits) <= 18:
                return int(digits)
            problem = "more than 18 digits"
        elif nullable and digits == b"-1":
            return -1
        elif digits[:1] == b"?":
            problem = "RESP3 streamed (length '?') types are not supported"
        else:
            problem = "expected a decimal length without sign or leading zeros" + (
                " (or -1)" if nullable else ""
            )
        raise ProtocolError(
            f"invalid {what} length {bytes(digits[:40])!r}: {problem}", self._base + pos
        )

    def _simple(self, t: int, body: bytes, pos: int) -> Value:
        if t == 43 or t == 45:  # '+' '-'
            if b"\r" in body or b"\n" in body:
                raise ProtocolError(
                    "CR or LF inside a simple string or error", self._base + pos + 1
                )
            return SimpleString(body) if t == 43 else SimpleError(body)
        if t == 58:  # ':'
            if len(body) <= 20 and _INTEGER.fullmatch(body):
                number = int(body)
                if -(1 << 63) <= number < 1 << 63:
                    return Integer(number)
            problem = "invalid integer (expected a signed 64-bit decimal without leading zeros)"
        elif t == 95:  # '_'
            if not body:
                return Null()
            problem = "null with a payload"
        elif t == 35:  # '#'
            if body == b"t" or body == b"f":
                return Boolean(body == b"t")
            problem = "invalid boolean (expected t or f)"
        elif t == 44:  # ','
            if _DOUBLE.fullmatch(body):
                return Double(body.decode("ascii"))
            problem = "invalid double"
        elif t == 40:  # '('
            if _BIG_NUMBER.fullmatch(body):
                return BigNumber(body.decode("ascii"))
            problem = "invalid big number"
        else:
            self._unknown(t, pos)
        raise ProtocolError(f"{problem} {body[:40]!r}", self._base + pos)

    def _verbatim(self, data: bytes, pos: int) -> Verbatim:
        if data[3] != 58:
            raise ProtocolError(
                f"verbatim string does not start with a 3-byte format and ':' ({data[:4]!r})",
                self._base + pos,
            )
        return Verbatim(data[:3], data[4:])

    def _open(self, kind: AggregateKind, length: int, pos: int) -> None:
        stack = self._stack
        if length > self._max_aggregate:
            raise ProtocolError(
                f"{kind.name.lower()} of {length} elements is longer than max_aggregate_length="
                f"{self._max_aggregate}",
                self._base + pos,
            )
        if kind is AggregateKind.PUSH and not all(
            f.kind is AggregateKind.ATTRIBUTE and len(f.items) + f.done == f.expected - 1
            for f in stack
        ):
            raise ProtocolError(
                "push data inside another element: pushes are only valid at the top level",
                self._base + pos,
            )
        if length == 0 and kind is not AggregateKind.ATTRIBUTE:
            return
        if len(stack) >= self._max_depth:
            raise ProtocolError(
                f"elements nested deeper than max_depth={self._max_depth}", self._base + pos
            )
        stack.append(_Frame(kind, length))

    def _finish(self, value: Value | None) -> Event | None:
        """Hand a completed element (``None``: one already streamed out) to its parent."""
        stack = self._stack
        out = self._out
        while stack:
            frame = stack[-1]
            if frame.announced:
                if value is not None:
                    out.append(Item(value))
                frame.done += 1
                if frame.done < frame.expected:
                    return None
                stack.pop()
                out.append(AggregateEnd())
                value = None
            else:
                assert value is not None  # a streamed child means the frame was announced
                frame.items.append(value)
                if len(frame.items) < frame.expected:
                    return None
                stack.pop()
                value = frame.build()
        if value is None:
            return None
        if self._kind is Kind.COMMAND:
            assert isinstance(value, Array)
            return Command(tuple(v.data for v in value.items if isinstance(v, BulkString)))
        inner = value
        while isinstance(inner, Attributed):
            inner = inner.value
        return Push(value) if isinstance(inner, PushData) else Reply(value)

    def _start_stream(self, kind: BulkKind, length: int, start: int) -> bool:
        """Announce the open frames and a streamed bulk; False if more bytes are needed first."""
        fmt = b""
        if kind is BulkKind.VERBATIM:
            if len(self._buf) < start + 4:
                return False
            data = bytes(self._buf[start : start + 4])
            self._verbatim(data, self._pos)
            fmt, start, length = data[:3], start + 4, length - 4
        out = self._out
        for frame in self._stack:
            if not frame.announced:
                out.append(AggregateStart(frame.kind, frame.length))
                out.extend(Item(v) for v in frame.items)
                frame.done = len(frame.items)
                frame.items = []
                frame.announced = True
        out.append(BulkStart(kind, length, fmt))
        self._pos = start
        self._bulk_left = length
        return True

    def _stream_bulk(self) -> Event | NeedData | None:
        pos, left = self._pos, self._bulk_left
        size = len(self._buf)
        if left:
            n = min(left, size - pos)
            if n <= 0:
                return NEED_DATA
            self._pos = pos + n
            self._bulk_left = left - n
            with memoryview(self._buf)[pos : pos + n] as view:
                return BulkChunk(view.tobytes())
        if size - pos < 2:
            return NEED_DATA
        if self._buf[pos] != _CR or self._buf[pos + 1] != _LF:
            raise ProtocolError(
                "streamed bulk is not followed by CRLF: the length does not match the data",
                self._base + pos,
            )
        self._pos = pos + 2
        self._bulk_left = -1
        self._out.append(BulkEnd())
        event = self._finish(None)
        assert event is None
        return None

    def _inline(self) -> Event | NeedData:
        buf, pos = self._buf, self._pos
        limit = pos + self._max_line + 2
        end = buf.find(b"\n", pos, limit)
        if end < 0:
            if len(buf) >= limit:
                raise ProtocolError(
                    f"inline command is longer than max_line={self._max_line} bytes (or lacks "
                    "its line end)",
                    self._base + pos,
                )
            return NEED_DATA
        line = bytes(buf[pos : end + 1])
        self._pos = end + 1
        text = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        return Command(tuple(_split_inline(text, self._base + pos)), True, line)


_SPACE = frozenset(b" \t\n\v\f\r")
_UNQUOTED_END = frozenset(b" \t\n\r")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _split_inline(line: bytes, offset: int) -> list[bytes]:
    """Split an inline command line into arguments as redis-server does (``sdssplitargs``)."""
    if b"\0" in line:
        raise ProtocolError("NUL byte in an inline command", offset + line.index(b"\0"))
    if not any(c in line for c in (b'"', b"'", b"\v", b"\f")):
        return line.split()
    args: list[bytes] = []
    n, i = len(line), 0
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0
        while True:
            if i >= n:
                if quote:
                    raise ProtocolError("unbalanced quotes in an inline command", offset + i)
                break
            c = line[i]
            if quote == 34:  # inside "..."
                if (
                    c == 92
                    and i + 3 < n
                    and line[i + 1] == 120
                    and {line[i + 2], line[i + 3]} <= _HEX
                ):
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                if c == 92 and i + 1 < n:
                    current.append(_ESCAPES.get(line[i + 1], line[i + 1]))
                    i += 2
                    continue
            elif quote == 39 and c == 92 and i + 1 < n and line[i + 1] == 39:  # \' in '...'
                current.append(39)
                i += 2
                continue
            if quote:
                if c == quote:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ProtocolError(
                            "a closing quote in an inline command must be followed by a space",
                            offset + i,
                        )
                    i += 1
                    break
                current.append(c)
            elif c in _UNQUOTED_END:
                break
            elif c == 34 or c == 39:
                quote = c
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


# -- encoders -------------------------------------------------------------------------------------


def encode_command(args: Iterable[bytes]) -> bytes:
    """A command as a RESP array of bulk strings, the form every client library sends."""
    items = list(args)
    parts = [b"*%d\r\n" % len(items)]
    for arg in items:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


_INLINE_PLAIN = re.compile(rb"[\x21\x23-\x26\x28-\x5b\x5d-\x7e\x80-\xff]+")
_QUOTE_ESCAPES = {10: b"\\n", 13: b"\\r", 9: b"\\t", 8: b"\\b", 7: b"\\a", 34: b'\\"', 92: b"\\\\"}


def encode_inline(args: Sequence[bytes]) -> bytes:
    """A command as an inline line that redis-server splits back into ``args``."""
    if not args:
        raise ProtocolError("cannot encode an inline command without arguments")
    words = []
    for i, arg in enumerate(args):
        if _INLINE_PLAIN.fullmatch(arg) and not (i == 0 and arg[0] == _STAR):  # '*': multibulk
            words.append(arg)
            continue
        quoted = bytearray(b'"')
        for c in arg:
            escape = _QUOTE_ESCAPES.get(c)
            if escape is not None:
                quoted += escape
            elif c < 0x20 or c == 0x7F:
                quoted += b"\\x%02x" % c
            else:
                quoted.append(c)
        quoted.append(34)
        words.append(bytes(quoted))
    return b" ".join(words) + b"\r\n"


def encode_reply(value: Value) -> bytes:
    """The exact bytes of ``value`` (the inverse of parsing it)."""
    parts: list[bytes] = []
    _encode_value(value, parts, top=True)
    return b"".join(parts)


def _encode_value(value: Value, parts: list[bytes], *, top: bool) -> None:
    if isinstance(value, BulkString):
        parts.append(b"$%d\r\n%b\r\n" % (len(value.data), value.data))
    elif isinstance(value, SimpleString | SimpleError):
        if b"\r" in value.data or b"\n" in value.data:
            raise ProtocolError(
                f"cannot encode {value.data[:40]!r} as a simple string or error: it contains CR "
                "or LF; record it as a bulk string"
            )
        parts.append((b"+" if isinstance(value, SimpleString) else b"-") + value.data + b"\r\n")
    elif isinstance(value, Integer):
        parts.append(b":%d\r\n" % value.value)
    elif isinstance(value, Null):
        parts.append(
            b"_\r\n" if value.kind is NullKind.RESP3 else value.kind.value.encode() + b"-1\r\n"
        )
    elif isinstance(value, Boolean):
        parts.append(b"#t\r\n" if value.value else b"#f\r\n")
    elif isinstance(value, Double):
        text = value.text.encode("ascii", "replace")
        if not _DOUBLE.fullmatch(text):
            raise ProtocolError(f"cannot encode double {value.text[:40]!r}: not a RESP3 double")
        parts.append(b"," + text + b"\r\n")
    elif isinstance(value, BigNumber):
        text = value.text.encode("ascii", "replace")
        if not _BIG_NUMBER.fullmatch(text):
            raise ProtocolError(f"cannot encode big number {value.text[:40]!r}: not an integer")
        parts.append(b"(" + text + b"\r\n")
    elif isinstance(value, BulkError):
        parts.append(b"!%d\r\n%b\r\n" % (len(value.data), value.data))
    elif isinstance(value, Verbatim):
        if len(value.format) != 3:
            raise ProtocolError(f"cannot encode verbatim format {value.format!r}: need 3 bytes")
        parts.append(b"=%d\r\n%b:%b\r\n" % (len(value.data) + 4, value.format, value.data))
    elif isinstance(value, Array | Set | PushData):
        if isinstance(value, PushData) and not top:
            raise ProtocolError("cannot encode push data inside another element")
        header = b"*" if isinstance(value, Array) else b"~" if isinstance(value, Set) else b">"
        parts.append(header + b"%d\r\n" % len(value.items))
        for item in value.items:
            _encode_value(item, parts, top=False)
    elif isinstance(value, Map):
        _encode_pairs(b"%", value.items, parts)
    else:
        _encode_pairs(b"|", value.attributes, parts)
        _encode_value(value.value, parts, top=top)


def _encode_pairs(
    header: bytes, pairs: tuple[tuple[Value, Value], ...], parts: list[bytes]
) -> None:
    parts.append(header + b"%d\r\n" % len(pairs))
    for key, item in pairs:
        _encode_value(key, parts, top=False)
        _encode_value(item, parts, top=False)


def encode_event(event: Event) -> bytes:
    """The bytes of one event; the encoded events of a stream, joined, are the stream."""
    if isinstance(event, Reply | Push):
        return encode_reply(event.value)
    if isinstance(event, Command):
        if event.inline:
            return event.line or encode_inline(event.args)
        return encode_command(event.args)
    if isinstance(event, Item):
        parts: list[bytes] = []
        _encode_value(event.value, parts, top=True)  # may be the value a top-level attribute wraps
        return b"".join(parts)
    if isinstance(event, AggregateStart):
        return _AGGREGATE_HEADERS[event.kind] + b"%d\r\n" % event.length
    if isinstance(event, BulkStart):
        if event.kind is BulkKind.VERBATIM:
            if len(event.format) != 3:
                raise ProtocolError(f"cannot encode verbatim format {event.format!r}: need 3 bytes")
            return b"=%d\r\n%b:" % (event.length + 4, event.format)
        return _BULK_HEADERS[event.kind] + b"%d\r\n" % event.length
    if isinstance(event, BulkChunk):
        return event.data
    if isinstance(event, BulkEnd):
        return b"\r\n"
    return b""


# -- command helpers ------------------------------------------------------------------------------

# Commands whose first argument names a subcommand (Redis "container" commands).
_CONTAINERS = frozenset(
    {
        b"ACL",
        b"CLIENT",
        b"CLUSTER",
        b"COMMAND",
        b"CONFIG",
        b"FUNCTION",
        b"LATENCY",
        b"MEMORY",
        b"MODULE",
        b"OBJECT",
        b"PUBSUB",
        b"SCRIPT",
        b"SLOWLOG",
        b"XGROUP",
        b"XINFO",
    }
)


def command_name(cmd: Command) -> str:
    """The upper-cased command name, with the subcommand of a container (``CONFIG GET``)."""
    if not cmd.args:
        return ""
    name = cmd.args[0].upper()
    if name in _CONTAINERS and len(cmd.args) > 1:
        name += b" " + cmd.args[1].upper()
    return name.decode("latin-1")


_SECRET_CONFIGS = frozenset({b"REQUIREPASS", b"MASTERAUTH", b"MASTERUSER"})


def _secret_positions(args: tuple[bytes, ...]) -> list[int]:
    """Indexes of the arguments of ``args`` that carry a password."""
    name = args[0].upper() if args else b""
    n = len(args)
    if name == b"AUTH":
        return [n - 1] if n in (2, 3) else []
    if name == b"HELLO":
        found = []
        i = 2 if n > 1 and args[1].upper() not in (b"AUTH", b"SETNAME") else 1
        while i < n:
            option = args[i].upper()
            if option == b"AUTH":
                if i + 2 < n:
                    found.append(i + 2)
                i += 3
            elif option == b"SETNAME":
                i += 2
            else:
                i += 1
        return found
    if name == b"MIGRATE":
        found = []
        i = 6
        while i < n:
            option = args[i].upper()
            if option == b"AUTH" and i + 1 < n:
                found.append(i + 1)
                i += 2
            elif option == b"AUTH2" and i + 2 < n:
                found.append(i + 2)
                i += 3
            elif option == b"KEYS":
                break
            else:
                i += 1
        return found
    if name == b"CONFIG" and n > 1 and args[1].upper() == b"SET":
        return [i + 1 for i in range(2, n - 1, 2) if args[i].upper() in _SECRET_CONFIGS]
    if name == b"ACL" and n > 2 and args[1].upper() == b"SETUSER":
        return [i for i in range(3, n) if args[i][:1] in (b">", b"<", b"#", b"!")]
    return []


def redact_auth(cmd: Command, placeholder: bytes | Callable[[bytes], bytes] = REDACTED) -> Command:
    """``cmd`` with every password replaced by ``placeholder`` (or ``placeholder(password)``).

    Covers ``AUTH [user] password``, ``HELLO ... AUTH user password``, ``MIGRATE ... AUTH`` /
    ``AUTH2``, ``CONFIG SET requirepass|masterauth|masteruser`` and the password rules of
    ``ACL SETUSER`` (``>pw``, ``<pw``, ``#hash``, ``!hash``, which keep their prefix). An inline
    command gets a new ``line`` spelling the redacted arguments. Other commands are returned
    unchanged.
    """
    positions = _secret_positions(cmd.args)
    if not positions:
        return cmd
    args = list(cmd.args)
    acl = args[0].upper() == b"ACL"
    for i in positions:
        secret = args[i][1:] if acl else args[i]
        masked = placeholder(secret) if callable(placeholder) else placeholder
        args[i] = args[i][:1] + masked if acl else masked
    new_args = tuple(args)
    if new_args == cmd.args:
        return cmd
    line = encode_inline(new_args) if cmd.inline else b""
    return replace(cmd, args=new_args, line=line)
