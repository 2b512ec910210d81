"""Sans-I/O HTTP/1.x: a parser that turns one direction of a connection into events, and encoders.

How the parser works
--------------------
Fed bytes go into one bytearray. ``_pos`` is the read offset; ``_raw`` marks the start of the
bytes consumed but not yet handed out by ``take_raw()``. The consumed prefix is dropped from the
buffer once it is large, so a long connection does not keep its history. ``next_event()`` runs the
handler of the current state (``_handlers`` maps each ``_State`` to one); a handler returns an
event, returns ``NEED_DATA``, or moves to another state and returns ``None`` so the loop runs the
next handler. Heads are located with ``find(b"\\r\\n\\r\\n")`` inside a ``max_head_size`` window
and parsed in one go; a body event is a slice of whatever body bytes are buffered. Every decision
depends only on complete units (a whole head, a whole chunk-size line, two bytes of CRLF), so a
stream fed whole or byte by byte gives the same events; only the split of ``BodyData`` differs.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn

from wiretape.errors import ProtocolError
from wiretape.model import (
    Headers,
    HttpRequest,
    HttpResponse,
    body_bytes,
    body_size,
    header_all,
    header_tokens,
)

__all__ = [
    "NEED_DATA",
    "BodyData",
    "EndOfMessage",
    "Event",
    "Http1Parser",
    "Informational",
    "Kind",
    "NeedData",
    "Paused",
    "RequestHead",
    "ResponseHead",
    "encode_chunk",
    "encode_last_chunk",
    "encode_request",
    "encode_request_head",
    "encode_response",
    "encode_response_head",
    "is_keep_alive",
]


class Kind(enum.Enum):
    """Which side of the connection a parser reads."""

    REQUEST = "request"
    RESPONSE = "response"


class NeedData(enum.Enum):
    """What ``next_event()`` returns when it needs more bytes: the single member ``NEED_DATA``."""

    NEED_DATA = "need-data"


NEED_DATA = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: str
    version: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class Informational:
    """A 1xx response other than 101; the final response to the same request follows."""

    status: int
    reason: str
    version: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class BodyData:
    """Body bytes with the chunked framing removed; content codings are left as they are."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    trailers: Headers = ()


@dataclass(frozen=True, slots=True)
class Paused:
    """The request asked to switch protocols; call ``resume()`` if the response did not switch."""

    reason: str


Event = RequestHead | ResponseHead | Informational | BodyData | EndOfMessage | Paused


class _State(enum.Enum):
    HEAD = "head"  # waiting for a start line and its header fields
    LENGTH = "length"  # body of known length; ``_remaining`` bytes left (may be 0)
    CHUNK_SIZE = "chunk-size"  # waiting for a chunk-size line
    CHUNK_DATA = "chunk-data"  # ``_remaining`` bytes of chunk data left
    CHUNK_END = "chunk-end"  # the CRLF after chunk data
    TRAILERS = "trailers"  # the trailer section after the last chunk
    UNTIL_EOF = "until-eof"  # response body delimited by the connection closing
    PAUSED = "paused"  # request asked for a switch; waiting for resume()
    SWITCHED = "switched"  # the stream is a raw tunnel now
    CLOSED = "closed"  # the peer closed at a message boundary
    ERROR = "error"

    # Members are singletons: identity hashing, in C (Enum's own hashes the name in Python,
    # and ``next_event`` looks a state up in ``_handlers`` for every event).
    __hash__ = object.__hash__


_IN_MESSAGE = frozenset(
    {
        _State.LENGTH,
        _State.CHUNK_SIZE,
        _State.CHUNK_DATA,
        _State.CHUNK_END,
        _State.TRAILERS,
        _State.UNTIL_EOF,
    }
)

_EOF_IN_STATE = {
    _State.LENGTH: "before the end of the body",
    _State.CHUNK_SIZE: "inside a chunked body, before a chunk-size line",
    _State.CHUNK_DATA: "inside a chunk of a chunked body",
    _State.CHUNK_END: "inside a chunked body, before the CRLF that ends a chunk",
    _State.TRAILERS: "inside the trailer section of a chunked body",
}

_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1"})
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_TOKEN = re.compile(_TCHAR + "+")
_FIELD = re.compile(r"(" + _TCHAR + r"+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
# Greedy: a value keeps its trailing whitespace, stripped only where there is some (a lazy value
# would try the end of the line at every character).
_FIELD_LINE = re.compile(r"(" + _TCHAR + r"+):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)\r\n")
_FIELDS_OK = re.compile(r"(?:" + _TCHAR + r"+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_TARGET = re.compile(r"[\x21-\x7e\x80-\xff]+")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_AUTHORITY = re.compile(r"[^/?#@\s]+:[0-9]+")
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n\x00]*)?")
_LENGTH = re.compile(r"[0-9]{1,18}")
_COMPACT_AT = 1 << 16


class _Framing(enum.Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_EOF = "until-eof"


class Http1Parser:
    """Parses one direction of an HTTP/1.x connection (``Kind.REQUEST`` or ``Kind.RESPONSE``).

    Raises only ``ProtocolError``; after one, the parser is in an error state and every call
    except ``take_raw()``, ``take_buffered()`` and the properties raises it again.
    """

    def __init__(
        self, kind: Kind, *, max_head_size: int = 65536, max_chunk_line: int = 4096
    ) -> None:
        self._kind = kind
        self._max_head = max_head_size
        self._max_chunk_line = max_chunk_line
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0
        self._raw = 0
        self._scan = 0  # where the next search for a line end may start
        self._state = _State.HEAD
        self._remaining = 0
        self._methods: deque[str] = deque()
        self._pause_reason = ""
        self._crlf_skipped = False
        self._eof = False
        self._starved = False
        self._error: ProtocolError | None = None
        self._handlers: dict[_State, Callable[[], Event | NeedData | None]] = {
            _State.HEAD: self._on_head,
            _State.LENGTH: self._on_length,
            _State.CHUNK_SIZE: self._on_chunk_size,
            _State.CHUNK_DATA: self._on_chunk_data,
            _State.CHUNK_END: self._on_chunk_end,
            _State.TRAILERS: self._on_trailers,
            _State.UNTIL_EOF: self._on_until_eof,
            _State.PAUSED: self._on_paused,
            _State.SWITCHED: self._on_idle,
            _State.CLOSED: self._on_idle,
        }

    # -- public API ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._check_error()
        if not data:
            return
        if self._eof:
            raise ProtocolError(
                "feed() was called after feed_eof(); a closed stream cannot receive more bytes",
                self.consumed,
            )
        self._compact()
        self._buf += data
        self._starved = False

    def feed_eof(self) -> None:
        """The peer closed its side.

        Ends a body read until close. If a message is incomplete this raises ``ProtocolError``
        at once when the parser has already asked for data, otherwise from the ``next_event()``
        call that runs out of bytes. At a message boundary it is not an error.
        """
        self._check_error()
        if self._eof:
            return
        self._eof = True
        if self._starved:
            error = self._incomplete()
            if error is not None:
                self._fail(error)

    def next_event(self) -> Event | NeedData:
        self._check_error()
        try:
            while True:
                result = self._handlers[self._state]()
                if result is not None:
                    break
            if result is NEED_DATA:
                self._starved = True
                if self._eof:
                    error = self._incomplete()
                    if error is not None:
                        raise error
                    if self._state is _State.HEAD:
                        self._state = _State.CLOSED
        except ProtocolError as exc:
            self._fail(exc)
        return result

    def take_raw(self) -> bytes:
        """The exact bytes consumed since the last call. Call it regularly: they are kept."""
        raw = self._slice(self._raw, self._pos)
        self._raw = self._pos
        return raw

    def take_buffered(self) -> bytes:
        """Every fed byte not yet returned by ``take_raw()``, consumed or not; empties the buffer.

        Works in any state; meant for falling back to raw pass-through after a ``ProtocolError``.
        """
        data = self._slice(self._raw, len(self._buf))
        self._base += len(self._buf)
        self._buf.clear()
        self._pos = self._raw = self._scan = 0
        return data

    def expect_response_to(self, method: str) -> None:
        """Queue the method of the next request whose response this parser will read."""
        self._check_error()
        if self._kind is not Kind.RESPONSE:
            raise ProtocolError("expect_response_to() is only meaningful on a RESPONSE parser")
        self._methods.append(method)

    def resume(self) -> None:
        """Leave ``Paused`` (the response did not switch protocols).

        Called before the request reached ``Paused``, it cancels the pause of the current
        request; with no pause pending it does nothing.
        """
        self._check_error()
        self._pause_reason = ""
        if self._state is _State.PAUSED:
            self._state = _State.HEAD

    def take_trailing(self) -> bytes:
        """The bytes buffered after the point where the stream became a tunnel.

        On a paused request parser it also marks the stream as switched: the proxy calls it
        there when the response switched protocols.
        """
        self._check_error()
        if self._state is _State.PAUSED:
            self._state = _State.SWITCHED
        if self._state is not _State.SWITCHED:
            raise ProtocolError(
                f"take_trailing() called while the parser is in state {self._state.value!r}; "
                "it is only valid once the stream switched protocols",
                self.consumed,
            )
        data = self._slice(self._pos, len(self._buf))
        del self._buf[self._pos :]
        return data

    @property
    def consumed(self) -> int:
        """Bytes of the stream parsed so far (the stream offset of the next unparsed byte)."""
        return self._base + self._pos

    @property
    def buffered(self) -> int:
        """Bytes fed but not parsed yet."""
        return len(self._buf) - self._pos

    @property
    def in_message(self) -> bool:
        return self._state in _IN_MESSAGE

    @property
    def switched(self) -> bool:
        return self._state is _State.SWITCHED

    # -- plumbing -----------------------------------------------------------------------------

    def _check_error(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.message, self._error.offset)

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._state = _State.ERROR
        self._error = error
        raise error

    def _compact(self) -> None:
        done = self._raw
        if done and (done >= _COMPACT_AT or done * 2 >= len(self._buf)):
            del self._buf[:done]
            self._base += done
            self._pos -= done
            self._raw = 0
            self._scan = max(0, self._scan - done)

    def _slice(self, start: int, end: int) -> bytes:
        if start >= end:
            return b""
        if end - start <= 4096:  # small: one copy through a bytearray slice is quicker
            return bytes(self._buf[start:end])
        with memoryview(self._buf)[start:end] as view:  # large: copied once
            return view.tobytes()

    def _incomplete(self) -> ProtocolError | None:
        what = self._kind.value
        if self._state is _State.HEAD:
            pending = len(self._buf) - self._pos
            if pending == 0:
                return None
            where = f"inside a {what} head ({pending} bytes of it arrived)"
        elif self._state is _State.LENGTH:
            where = f"{self._remaining} bytes before the end of the {what} body"
        elif self._state in _EOF_IN_STATE:
            where = f"{_EOF_IN_STATE[self._state]} of a {what}"
        else:
            return None
        return ProtocolError(f"connection closed {where}", self.consumed)

    def _end_message(self) -> EndOfMessage:
        self._state = _State.PAUSED if self._pause_reason else _State.HEAD
        return EndOfMessage()

    def _find(self, sep: bytes, limit: int) -> int:
        """Index of ``sep`` wholly inside ``[_pos, _pos + limit)``, or -1 (remembering the scan)."""
        buf = self._buf
        idx = buf.find(sep, max(self._scan, self._pos), self._pos + limit)
        self._scan = 0 if idx >= 0 else max(self._pos, len(buf) - len(sep) + 1)
        return idx

    # -- state handlers -----------------------------------------------------------------------

    def _on_head(self) -> Event | NeedData | None:
        buf, pos = self._buf, self._pos
        if self._kind is Kind.REQUEST and not self._crlf_skipped and buf.startswith(b"\r\n", pos):
            self._crlf_skipped = True
            self._pos = pos = pos + 2
        idx = self._find(b"\r\n\r\n", self._max_head)
        if idx < 0:
            if len(buf) - pos >= self._max_head:
                raise ProtocolError(
                    f"{self._kind.value} head is larger than max_head_size={self._max_head} "
                    "bytes (or lacks the blank line that ends it); raise max_head_size if such "
                    "heads are legitimate",
                    self._base + pos + self._max_head,
                )
            return NEED_DATA
        offset = self._base + pos
        line, _, fields = buf[pos:idx].decode("latin-1").partition("\r\n")
        event: Event
        if self._kind is Kind.REQUEST:
            event = self._request_head(line, fields, offset)
        else:
            event = self._response_head(line, fields, offset)
        self._crlf_skipped = False
        self._pos = idx + 4
        return event

    def _request_head(self, line: str, fields: str, offset: int) -> RequestHead:
        parts = line.split(" ")
        if len(parts) != 3:
            raise ProtocolError(
                f"malformed request line {line[:200]!r}: expected 'METHOD target HTTP/1.1' "
                "separated by single spaces",
                offset,
            )
        method, target, version = parts
        if not _TOKEN.fullmatch(method):
            raise ProtocolError(f"invalid character in request method {method[:100]!r}", offset)
        _check_version(version, offset)
        _check_target(method, target, offset + len(method) + 1)
        headers = _parse_fields(fields, offset + len(line) + 2)
        special = _special_fields(headers)
        framing, length = _framing(special, offset, request=True)
        if framing is _Framing.CHUNKED:
            self._state = _State.CHUNK_SIZE
        else:
            self._state = _State.LENGTH
            self._remaining = length
        if method == "CONNECT":
            self._pause_reason = f"CONNECT {target}"
        else:
            upgrade = special.get("upgrade")
            if upgrade and "upgrade" in _tokens(special.get("connection", ())):
                self._pause_reason = f"Upgrade: {', '.join(upgrade)}"
        return RequestHead(method, target, version, headers)

    def _response_head(self, line: str, fields: str, offset: int) -> ResponseHead | Informational:
        parts = line.split(" ", 2)
        version = parts[0]
        _check_version(version, offset)
        code = parts[1] if len(parts) > 1 else ""
        if not (len(code) == 3 and code.isascii() and code.isdigit()) or code[0] == "0":
            raise ProtocolError(
                f"malformed status line {line[:200]!r}: the status code must be three digits "
                "from 100 to 999",
                offset,
            )
        reason = parts[2] if len(parts) > 2 else ""
        # A printable phrase (the usual case) has no control character; else the full check.
        if not reason.isprintable() and not _FIELD_VALUE.fullmatch(reason):
            raise ProtocolError(f"control character in reason phrase {reason[:200]!r}", offset)
        status = int(code)
        headers = _parse_fields(fields, offset + len(line) + 2)
        if 100 <= status < 200 and status != 101:
            return Informational(status, reason, version, headers)
        method = self._methods.popleft() if self._methods else ""
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            self._state = _State.SWITCHED
        elif method == "HEAD" or status in (204, 304):
            self._state = _State.LENGTH
            self._remaining = 0
        else:
            framing, length = _framing(_special_fields(headers), offset, request=False)
            if framing is _Framing.CHUNKED:
                self._state = _State.CHUNK_SIZE
            elif framing is _Framing.LENGTH:
                self._state = _State.LENGTH
                self._remaining = length
            else:
                self._state = _State.UNTIL_EOF
        return ResponseHead(status, reason, version, headers)

    def _on_length(self) -> Event | NeedData | None:
        if self._remaining == 0:
            return self._end_message()
        return self._body_slice()

    def _body_slice(self) -> BodyData | NeedData:
        pos = self._pos
        n = min(self._remaining, len(self._buf) - pos)
        if n <= 0:
            return NEED_DATA
        self._pos = pos + n
        self._remaining -= n
        return BodyData(self._slice(pos, pos + n))

    def _on_chunk_size(self) -> Event | NeedData | None:
        idx = self._find(b"\r\n", self._max_chunk_line + 2)
        pos = self._pos
        if idx < 0:
            if len(self._buf) - pos >= self._max_chunk_line + 2:
                raise ProtocolError(
                    f"chunk-size line is longer than max_chunk_line={self._max_chunk_line} bytes",
                    self._base + pos,
                )
            return NEED_DATA
        line = bytes(self._buf[pos:idx])
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            raise ProtocolError(
                f"invalid chunk-size line {line[:100]!r}: expected a hexadecimal size (at most "
                "16 digits) and optional ';' extensions",
                self._base + pos,
            )
        size = int(match[1], 16)
        self._pos = idx + 2
        if size == 0:
            self._state = _State.TRAILERS
        else:
            self._state = _State.CHUNK_DATA
            self._remaining = size
        return None

    def _on_chunk_data(self) -> Event | NeedData | None:
        if self._remaining == 0:
            self._state = _State.CHUNK_END
            return None
        return self._body_slice()

    def _on_chunk_end(self) -> Event | NeedData | None:
        pos = self._pos
        if len(self._buf) - pos < 2:
            return NEED_DATA
        if not self._buf.startswith(b"\r\n", pos):
            raise ProtocolError(
                "chunk data is not followed by CRLF: the chunk size does not match the data",
                self._base + pos,
            )
        self._pos = pos + 2
        self._state = _State.CHUNK_SIZE
        return None

    def _on_trailers(self) -> Event | NeedData | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return NEED_DATA
        if buf.startswith(b"\r\n", pos):
            self._pos = pos + 2
            return self._end_message()
        idx = self._find(b"\r\n\r\n", self._max_head)
        if idx < 0:
            if len(buf) - pos >= self._max_head:
                raise ProtocolError(
                    f"trailer section is larger than max_head_size={self._max_head} bytes",
                    self._base + pos + self._max_head,
                )
            return NEED_DATA
        trailers = _parse_fields(buf[pos:idx].decode("latin-1"), self._base + pos)
        self._pos = idx + 4
        self._end_message()
        return EndOfMessage(trailers)

    def _on_until_eof(self) -> Event | NeedData | None:
        pos, end = self._pos, len(self._buf)
        if end > pos:
            self._pos = end
            return BodyData(self._slice(pos, end))
        if self._eof:
            self._state = _State.CLOSED
            return EndOfMessage()
        return NEED_DATA

    def _on_paused(self) -> Event | NeedData | None:
        return Paused(self._pause_reason)

    def _on_idle(self) -> Event | NeedData | None:
        return NEED_DATA


# -- head helpers ---------------------------------------------------------------------------------


def _parse_fields(text: str, offset: int) -> Headers:
    """Parse CRLF-separated field lines; ``offset`` is the stream offset of ``text``."""
    if not text:
        return ()
    block = text + "\r\n"
    if _FIELDS_OK.fullmatch(block):
        if " \r\n" in block or "\t\r\n" in block:
            return tuple((name, value.rstrip(" \t")) for name, value in _FIELD_LINE.findall(block))
        return tuple(_FIELD_LINE.findall(block))
    for line in text.split("\r\n"):
        if not _FIELD.fullmatch(line):
            raise ProtocolError(_field_problem(line), offset)
        offset += len(line) + 2
    raise ProtocolError("malformed header section", offset)


def _field_problem(line: str) -> str:
    shown = repr(line[:200])
    if line[:1] in (" ", "\t"):
        return f"obsolete line folding (a header line starting with whitespace): {shown}"
    name, colon, _ = line.partition(":")
    if not colon:
        return f"header line without a colon: {shown}"
    if name != name.rstrip(" \t"):
        return f"whitespace between header name and colon: {shown}"
    if not _TOKEN.fullmatch(name):
        return f"invalid character in header name: {shown}"
    return f"invalid character (CR, LF, NUL or another control) in header value: {shown}"


def _check_version(version: str, offset: int) -> None:
    if version not in _VERSIONS:
        raise ProtocolError(
            f"unsupported HTTP version {version[:50]!r}: only HTTP/1.0 and HTTP/1.1 are parsed",
            offset,
        )


def _check_target(method: str, target: str, offset: int) -> None:
    if not _TARGET.fullmatch(target):
        raise ProtocolError(f"invalid character in request target {target[:200]!r}", offset)
    if method == "CONNECT":
        if not _AUTHORITY.fullmatch(target):
            raise ProtocolError(
                f"CONNECT target {target[:200]!r} is not in authority form (host:port)", offset
            )
    elif not (target[0] == "/" or target == "*" or _ABSOLUTE.match(target)):
        raise ProtocolError(
            f"request target {target[:200]!r} is neither a path, an absolute URL nor '*'",
            offset,
        )


_SPECIAL = frozenset({"content-length", "transfer-encoding", "connection", "upgrade"})
_SPECIAL_SIZES = frozenset(len(name) for name in _SPECIAL)


def _special_fields(headers: Headers) -> dict[str, list[str]]:
    """The values of the headers that decide framing and upgrades, by lower-case name."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        if len(name) in _SPECIAL_SIZES:
            key = name.lower()
            if key in _SPECIAL:
                found.setdefault(key, []).append(value)
    return found


def _tokens(values: Iterable[str]) -> list[str]:
    """The lower-cased comma-separated tokens of header ``values``, in order."""
    return [
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    ]


def _framing(special: dict[str, list[str]], offset: int, *, request: bool) -> tuple[_Framing, int]:
    """How the body of a message that may have one is delimited (RFC 9112 §6.3)."""
    if "transfer-encoding" not in special:  # the usual case: no length, or one plain one
        given = special.get("content-length")
        if given is None:
            return (_Framing.NONE, 0) if request else (_Framing.UNTIL_EOF, 0)
        if len(given) == 1:
            single = given[0]
            if 0 < len(single) <= 18 and single.isascii() and single.isdigit():
                return _Framing.LENGTH, int(single)
    codings = _tokens(special.get("transfer-encoding", ()))
    if codings:
        if codings.count("chunked") > 1 or "chunked" in codings[:-1]:
            raise ProtocolError(
                f"Transfer-Encoding {', '.join(codings)!r} applies chunked other than exactly "
                "once and last",
                offset,
            )
        if codings[-1] == "chunked":
            return _Framing.CHUNKED, 0
        if request:
            raise ProtocolError(
                f"request Transfer-Encoding {', '.join(codings)!r} does not end with chunked, "
                "so the body length cannot be determined",
                offset,
            )
        return _Framing.UNTIL_EOF, 0
    lengths = {
        token.strip() for value in special.get("content-length", ()) for token in value.split(",")
    }
    if not lengths:
        return (_Framing.NONE, 0) if request else (_Framing.UNTIL_EOF, 0)
    for value in lengths:
        if not _LENGTH.fullmatch(value):
            raise ProtocolError(
                f"invalid Content-Length {value[:50]!r}: expected a decimal number of at most "
                "18 digits",
                offset,
            )
    values = {int(v) for v in lengths}
    if len(values) > 1:
        raise ProtocolError(
            f"conflicting Content-Length values {sorted(values)}: the body length is ambiguous",
            offset,
        )
    return _Framing.LENGTH, values.pop()


# -- encoders -----------------------------------------------------------------------------------


def _encode_head(start_line: str, headers: Headers) -> bytes:
    parts = [start_line]
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise ProtocolError(
                f"cannot encode header name {name!r}: it must be a non-empty token "
                "(letters, digits, !#$%&'*+-.^_`|~); fix the recorded header"
            )
        if not _FIELD_VALUE.fullmatch(value):
            raise ProtocolError(
                f"cannot encode header {name}: its value {value[:200]!r} contains CR, LF or "
                "another control character; fix the recorded header"
            )
        parts.append(f"{name}: {value}")
    parts.append("\r\n")
    text = "\r\n".join(parts)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ProtocolError(
            f"cannot encode {text[exc.start : exc.end]!r} in an HTTP/1 head: heads are latin-1; "
            "percent-encode or remove the character in the recording"
        ) from None


def encode_request_head(
    method: str, target: str, headers: Headers, version: str = "HTTP/1.1"
) -> bytes:
    if not _TOKEN.fullmatch(method):
        raise ProtocolError(f"cannot encode request method {method!r}: it must be a token")
    if not _TARGET.fullmatch(target):
        raise ProtocolError(
            f"cannot encode request target {target!r}: it must be non-empty, without spaces or "
            "control characters"
        )
    _check_encodable_version(version)
    return _encode_head(f"{method} {target} {version}", headers)


def encode_response_head(
    status: int, reason: str, headers: Headers, version: str = "HTTP/1.1"
) -> bytes:
    if not 100 <= status <= 999:
        raise ProtocolError(f"cannot encode status {status}: it must be from 100 to 999")
    if not _FIELD_VALUE.fullmatch(reason):
        raise ProtocolError(f"cannot encode reason phrase {reason!r}: it has control characters")
    _check_encodable_version(version)
    return _encode_head(f"{version} {status} {reason}", headers)


def _check_encodable_version(version: str) -> None:
    if version not in _VERSIONS:
        raise ProtocolError(f"cannot encode HTTP version {version!r}: use HTTP/1.0 or HTTP/1.1")


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body; empty data gives b"" (an empty chunk would end the body)."""
    if not data:
        return b""
    return b"%x\r\n%b\r\n" % (len(data), data)


def encode_last_chunk(trailers: Headers = ()) -> bytes:
    return b"0\r\n" + _encode_head("", trailers)[2:]


def _framed(headers: Headers, size: int) -> tuple[Headers, bool]:
    """Headers that frame a body of ``size`` bytes, and whether the body goes chunked."""
    codings = _tokens(header_all(headers, "transfer-encoding"))
    if codings and codings[-1] == "chunked":
        return headers, True
    if any(name.lower() == "content-length" for name, _ in headers):
        length = str(size)
        return tuple(
            (name, length if name.lower() == "content-length" else value) for name, value in headers
        ), False
    if codings or size == 0:
        return headers, False
    return (*headers, ("Content-Length", str(size))), False


def encode_response(resp: HttpResponse, *, head_only: bool = False) -> bytes:
    """Bytes a server sends for ``resp``, framed for the body it carries now.

    Chunked responses send the body as one chunk plus the last chunk with ``resp.trailers``;
    otherwise a Content-Length header is set to the real body length (or added when there is
    no framing header and the body is non-empty). 1xx, 204 and 304 carry no body.
    ``head_only`` (a response to HEAD) gives the head alone; its headers are left as recorded
    when the body is empty, since a HEAD response describes a body it does not carry.
    """
    if 100 <= resp.status < 200 or resp.status in (204, 304):
        return encode_response_head(resp.status, resp.reason, resp.headers, resp.version)
    if head_only:
        size = body_size(resp.body)
        headers = resp.headers if size == 0 else _framed(resp.headers, size)[0]
        return encode_response_head(resp.status, resp.reason, headers, resp.version)
    body = body_bytes(resp.body)
    headers, chunked = _framed(resp.headers, len(body))
    head = encode_response_head(resp.status, resp.reason, headers, resp.version)
    if chunked:
        return head + encode_chunk(body) + encode_last_chunk(resp.trailers)
    return head + body


def encode_request(req: HttpRequest) -> bytes:
    """Bytes a client sends for ``req``, with the same framing rules as ``encode_response``."""
    body = body_bytes(req.body)
    headers, chunked = _framed(req.headers, len(body))
    head = encode_request_head(req.method, req.target, headers, req.version)
    if chunked:
        return head + encode_chunk(body) + encode_last_chunk(req.trailers)
    return head + body


def is_keep_alive(version: str, headers: Headers) -> bool:
    """Whether the connection stays open after this message (RFC 9112 §9.3)."""
    tokens = header_tokens(headers, "connection")
    if "close" in tokens:
        return False
    if version == "HTTP/1.1":
        return True
    return version == "HTTP/1.0" and "keep-alive" in tokens
