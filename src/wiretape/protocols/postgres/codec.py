"""Sans-I/O PostgreSQL protocol 3.0: a parser for each direction, and ``encode``.

How the parsers work
--------------------
``FrontendParser`` reads what the client sends and ``BackendParser`` what the server sends. Fed
bytes go into one buffer; ``_pos`` is the offset of the next unparsed byte and ``_base`` the
stream offset of the buffer's first byte. The parsed prefix is dropped when new bytes arrive, so
the buffer holds at most the message being read plus whatever followed it in the same ``feed()``.

``next_event()`` runs the handler of the current state until one returns a message or
``NEED_DATA``. A message is decoded only once all of it is buffered: the type byte is checked as
soon as it arrives, the length as soon as its four bytes arrive (against ``max_message_size``
and the size range of that type), and then the payload is decoded in one go by the decoder that
the type byte selects. Every decision depends on complete units, so a stream fed whole or byte by
byte gives the same messages and the same errors. Large messages (a DataRow with a big value, a
CopyData chunk) are buffered whole, up to ``max_message_size`` (1 GiB by default, the largest
message PostgreSQL itself accepts). When everything fed before was parsed, the fed bytes become
the buffer as they are, without a copy.

Typed messages can also be split off undecoded: ``frames()`` (or ``next_frame()``) returns their
exact bytes after the same checks of type and length, and ``decode_frame()`` decodes one with the
same decoder and errors as ``next_event()``. A proxy that only needs some messages decoded, or
that recognizes repeated messages by their bytes, reads frames (see ``frames.py``).

Connection start (data, in ``_AFTER_UNTYPED`` and ``_ANSWERS``)::

    STARTUP --StartupMessage--> TYPED --Terminate--> DONE
    STARTUP --CancelRequest--> DONE
    STARTUP --SSLRequest/GSSENCRequest--> AWAIT_ANSWER --ssl_answered(S|G|N)--> STARTUP

After ``S`` or ``G`` the client's next bytes are a TLS or GSSAPI handshake. A proxy that
terminates the encryption keeps feeding the decrypted stream, which starts again with a
StartupMessage; one that does not should stop feeding (``encrypted`` tells). The server side
mirrors this: ``BackendParser.expect_ssl_answer()`` makes it read the one-byte answer.

The client's ``p`` message has no structure of its own: it is a password, a SASL message or a
GSSAPI token depending on the last authentication request of the server, which the caller
reports with ``FrontendParser.expect_auth()`` (``_AUTH_STATES`` maps requests to decoders).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, Generic, NoReturn, TypeVar

from wiretape.errors import ProtocolError
from wiretape.protocols.postgres.messages import (
    BACKEND_TYPES,
    FRONTEND_TYPES,
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationOther,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    BackendMessage,
    Bind,
    BindComplete,
    CancelRequest,
    Close,
    CloseComplete,
    CommandComplete,
    CopyBothResponse,
    CopyData,
    CopyDone,
    CopyFail,
    CopyInResponse,
    CopyOutResponse,
    DataRow,
    Describe,
    EmptyQueryResponse,
    ErrorResponse,
    Execute,
    FieldDescription,
    Flush,
    FrontendMessage,
    FunctionCall,
    FunctionCallResponse,
    GSSENCRequest,
    GSSResponse,
    Message,
    NegotiateProtocolVersion,
    NoData,
    NoticeResponse,
    NotificationResponse,
    ObjectKind,
    ParameterDescription,
    ParameterStatus,
    Parse,
    ParseComplete,
    PasswordMessage,
    PortalSuspended,
    Query,
    ReadyForQuery,
    RowDescription,
    SASLInitialResponse,
    SASLResponse,
    SSLAnswer,
    SSLRequest,
    StartupMessage,
    Sync,
    Terminate,
    TransactionStatus,
)

__all__ = [
    "CANCEL_REQUEST_CODE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_STARTUP_SIZE",
    "GSSENC_REQUEST_CODE",
    "NEED_DATA",
    "SSL_REQUEST_CODE",
    "BackendParser",
    "FrontendParser",
    "NeedData",
    "bind_fields",
    "data_row_values",
    "encode",
    "normalize_sql",
    "statement_kind",
]


class NeedData(enum.Enum):
    """What ``next_event()`` returns when it needs more bytes: the single member ``NEED_DATA``."""

    NEED_DATA = "need-data"


NEED_DATA = NeedData.NEED_DATA

SSL_REQUEST_CODE = 80877103  # 1234 << 16 | 5679
GSSENC_REQUEST_CODE = 80877104  # 1234 << 16 | 5680
CANCEL_REQUEST_CODE = 80877102  # 1234 << 16 | 5678
DEFAULT_MAX_MESSAGE_SIZE = 1 << 30
DEFAULT_MAX_STARTUP_SIZE = 10_000  # what the server accepts for a startup packet
_MAX_SECRET_KEY = 256
_COMPACT_AT = 1 << 16

_I16 = struct.Struct("!h")
_U16 = struct.Struct("!H")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_NULL = b"\xff\xff\xff\xff"


# -- payload reader -------------------------------------------------------------------------------


class _Reader:
    """Reads the fields of one payload; every failure names the field and its stream offset."""

    __slots__ = ("_base", "_data", "_pos", "_what")

    def __init__(self, data: bytes, base: int, what: str) -> None:
        self._data = data
        self._base = base
        self._pos = 0
        self._what = what

    def fail(self, problem: str, at: int | None = None) -> NoReturn:
        where = self._pos if at is None else at
        raise ProtocolError(f"malformed {self._what}: {problem}", self._base + where)

    def _take(self, size: int, field: str) -> int:
        pos = self._pos
        left = len(self._data) - pos
        if left < size:
            self.fail(f"it ends inside {field} ({size} bytes needed, {left} left)")
        self._pos = pos + size
        return pos

    def byte(self, field: str) -> int:
        return self._data[self._take(1, field)]

    def int16(self, field: str) -> int:
        value: int = _I16.unpack_from(self._data, self._take(2, field))[0]
        return value

    def count16(self, field: str) -> int:
        value: int = _U16.unpack_from(self._data, self._take(2, field))[0]
        return value

    def int32(self, field: str) -> int:
        value: int = _I32.unpack_from(self._data, self._take(4, field))[0]
        return value

    def uint32(self, field: str) -> int:
        value: int = _U32.unpack_from(self._data, self._take(4, field))[0]
        return value

    def cstring(self, field: str) -> str:
        data, pos = self._data, self._pos
        end = data.find(0, pos)
        if end < 0:
            self.fail(f"{field} is not NUL-terminated")
        self._pos = end + 1
        return data[pos:end].decode("utf-8", "surrogateescape")

    def raw(self, size: int, field: str) -> bytes:
        pos = self._take(size, field)
        return self._data[pos : pos + size]

    def value(self, field: str) -> bytes | None:
        """An Int32 length and that many bytes; length -1 is NULL."""
        at = self._pos
        size = self.int32(f"the length of {field}")
        if size == -1:
            return None
        if size < 0:
            self.fail(f"{field} has length {size}; only -1 (NULL) may be negative", at)
        return self.raw(size, field)

    def int16s(self, field: str) -> tuple[int, ...]:
        count = self.count16(f"the number of {field}")
        pos = self._take(2 * count, field)
        return struct.unpack_from(f"!{count}h", self._data, pos)

    def oids(self, field: str) -> tuple[int, ...]:
        count = self.count16(f"the number of {field}")
        pos = self._take(4 * count, field)
        return struct.unpack_from(f"!{count}I", self._data, pos)

    def values(self, field: str) -> tuple[bytes | None, ...]:
        count = self.count16(f"the number of {field}")
        return tuple([self.value(field) for _ in range(count)])

    def rest(self) -> bytes:
        pos = self._pos
        self._pos = len(self._data)
        return self._data[pos:]

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def left(self) -> int:
        return len(self._data) - self._pos

    def done(self) -> None:
        if self._pos != len(self._data):
            self.fail(f"{len(self._data) - self._pos} unexpected bytes after its last field")


# -- decoders, one per message type ---------------------------------------------------------------


def _object_kind(r: _Reader) -> ObjectKind:
    at = r.pos
    kind = r.byte("the object kind")
    if kind not in (0x53, 0x50):
        r.fail(f"object kind {bytes([kind])!r} is neither 'S' (statement) nor 'P' (portal)", at)
    return ObjectKind(chr(kind))


def _parse(r: _Reader) -> Parse:
    return Parse(r.cstring("the statement name"), r.cstring("the query"), r.oids("parameter types"))


def _bind(r: _Reader) -> Bind:
    return Bind(
        r.cstring("the portal name"),
        r.cstring("the statement name"),
        r.int16s("parameter format codes"),
        r.values("parameter values"),
        r.int16s("result format codes"),
    )


def _function_call(r: _Reader) -> FunctionCall:
    return FunctionCall(
        r.uint32("the function OID"),
        r.int16s("argument format codes"),
        r.values("arguments"),
        r.int16("the result format code"),
    )


def _password(r: _Reader) -> PasswordMessage:
    return PasswordMessage(r.cstring("the password"))


def _sasl_initial(r: _Reader) -> SASLInitialResponse:
    return SASLInitialResponse(r.cstring("the SASL mechanism"), r.value("the initial response"))


_Decoder = Callable[[_Reader], Any]

_FRONTEND_DECODERS: Mapping[bytes, _Decoder] = {
    b"Q": lambda r: Query(r.cstring("the query")),
    b"P": _parse,
    b"B": _bind,
    b"D": lambda r: Describe(_object_kind(r), r.cstring("the name")),
    b"E": lambda r: Execute(r.cstring("the portal name"), r.int32("the row limit")),
    b"S": lambda r: Sync(),
    b"H": lambda r: Flush(),
    b"C": lambda r: Close(_object_kind(r), r.cstring("the name")),
    b"d": lambda r: CopyData(r.rest()),
    b"c": lambda r: CopyDone(),
    b"f": lambda r: CopyFail(r.cstring("the error message")),
    b"F": _function_call,
    b"X": lambda r: Terminate(),
    b"p": lambda r: GSSResponse(r.rest()),  # until an auth request is known (_AUTH_STATES)
}


def _authentication(r: _Reader) -> BackendMessage:
    code = r.int32("the authentication code")
    if code == 0:
        return AuthenticationOk()
    if code == 3:
        return AuthenticationCleartextPassword()
    if code == 5:
        return AuthenticationMD5Password(r.raw(4, "the MD5 salt"))
    if code == 10:
        mechanisms: list[str] = []
        while mechanism := r.cstring("a SASL mechanism name (the list ends with an empty one)"):
            mechanisms.append(mechanism)
        return AuthenticationSASL(tuple(mechanisms))
    if code == 11:
        return AuthenticationSASLContinue(r.rest())
    if code == 12:
        return AuthenticationSASLFinal(r.rest())
    return AuthenticationOther(code, r.rest())


def _secret_key(r: _Reader) -> bytes:
    at = r.pos
    key = r.rest()
    if not 4 <= len(key) <= _MAX_SECRET_KEY:
        r.fail(f"the secret key is {len(key)} bytes; expected 4 to {_MAX_SECRET_KEY}", at)
    return key


def _ready(r: _Reader) -> ReadyForQuery:
    at = r.pos
    status = r.byte("the transaction status")
    if status not in (0x49, 0x54, 0x45):
        r.fail(f"transaction status {bytes([status])!r} is not 'I', 'T' or 'E'", at)
    return ReadyForQuery(TransactionStatus(chr(status)))


def _negotiate(r: _Reader) -> NegotiateProtocolVersion:
    version = r.int32("the newest protocol version")
    at = r.pos
    count = r.int32("the number of unrecognized options")
    if count < 0 or count > r.left:
        r.fail(f"{count} unrecognized options cannot fit in the {r.left} bytes left", at)
    return NegotiateProtocolVersion(
        version, tuple(r.cstring("an option name") for _ in range(count))
    )


def _row_description(r: _Reader) -> RowDescription:
    count = r.count16("the number of fields")
    return RowDescription(
        tuple(
            [
                FieldDescription(
                    r.cstring("a field name"),
                    r.uint32("a table OID"),
                    r.int16("a column number"),
                    r.uint32("a type OID"),
                    r.int16("a type size"),
                    r.int32("a type modifier"),
                    r.int16("a format code"),
                )
                for _ in range(count)
            ]
        )
    )


def _fields(r: _Reader) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    while code := r.byte("a field code (the list ends with a zero byte)"):
        fields.append((chr(code), r.cstring("a field value")))
    return tuple(fields)


def _copy_format(r: _Reader) -> tuple[int, tuple[int, ...]]:
    at = r.pos
    overall = r.byte("the overall COPY format")
    if overall > 1:
        r.fail(f"overall COPY format {overall} is neither 0 (text) nor 1 (binary)", at)
    return overall, r.int16s("column format codes")


def _notification(r: _Reader) -> NotificationResponse:
    return NotificationResponse(
        r.int32("the process ID"), r.cstring("the channel"), r.cstring("the payload")
    )


_BACKEND_DECODERS: Mapping[bytes, _Decoder] = {
    b"R": _authentication,
    b"S": lambda r: ParameterStatus(r.cstring("the parameter name"), r.cstring("the value")),
    b"K": lambda r: BackendKeyData(r.int32("the process ID"), _secret_key(r)),
    b"Z": _ready,
    b"v": _negotiate,
    b"T": _row_description,
    b"D": lambda r: DataRow(r.values("column values")),
    b"C": lambda r: CommandComplete(r.cstring("the command tag")),
    b"I": lambda r: EmptyQueryResponse(),
    b"E": lambda r: ErrorResponse(_fields(r)),
    b"N": lambda r: NoticeResponse(_fields(r)),
    b"A": _notification,
    b"1": lambda r: ParseComplete(),
    b"2": lambda r: BindComplete(),
    b"3": lambda r: CloseComplete(),
    b"n": lambda r: NoData(),
    b"t": lambda r: ParameterDescription(r.oids("parameter types")),
    b"s": lambda r: PortalSuspended(),
    b"G": lambda r: CopyInResponse(*_copy_format(r)),
    b"H": lambda r: CopyOutResponse(*_copy_format(r)),
    b"W": lambda r: CopyBothResponse(*_copy_format(r)),
    b"d": lambda r: CopyData(r.rest()),
    b"c": lambda r: CopyDone(),
    b"V": lambda r: FunctionCallResponse(r.value("the result")),
}

# -- fields of frequent frames, read without building a message ----------------------------------
# Each returns None for anything but a well-formed frame of its type; ``decode_frame`` then says
# what is wrong with it. Whatever they accept, the decoders above accept and read the same.


def _utf8(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _is_frame(frame: bytes, tag: int) -> bool:
    return len(frame) >= 5 and frame[0] == tag and _I32.unpack_from(frame, 1)[0] == len(frame) - 1


def bind_fields(
    frame: bytes,
) -> tuple[str, str, tuple[int, ...], tuple[bytes | None, ...], tuple[int, ...]] | None:
    """A Bind frame's portal, statement, parameter formats, parameters and result formats."""
    end = len(frame)
    if not _is_frame(frame, 0x42):
        return None
    portal_end = frame.find(0, 5)
    if portal_end < 0:
        return None
    statement_end = frame.find(0, portal_end + 1)
    if statement_end < 0:
        return None
    pos = statement_end + 3
    if pos > end:
        return None
    count = (frame[pos - 2] << 8) | frame[pos - 1]
    if pos + 2 * count + 2 > end:
        return None
    formats: tuple[int, ...] = struct.unpack_from(f"!{count}h", frame, pos) if count else ()
    pos += 2 * count + 2
    found = _sized_values(frame, pos, (frame[pos - 2] << 8) | frame[pos - 1])
    if found is None:
        return None
    params, pos = found
    pos += 2
    if pos > end:
        return None
    count = (frame[pos - 2] << 8) | frame[pos - 1]
    if pos + 2 * count != end:
        return None
    results: tuple[int, ...] = struct.unpack_from(f"!{count}h", frame, pos) if count else ()
    portal = _utf8(frame[5:portal_end]) if portal_end > 5 else ""
    statement = (
        _utf8(frame[portal_end + 1 : statement_end]) if statement_end > portal_end + 1 else ""
    )
    return portal, statement, formats, tuple(params), results


def data_row_values(frame: bytes) -> list[bytes | None] | None:
    """A DataRow frame's column values (None for NULL)."""
    end = len(frame)
    if end < 7 or not _is_frame(frame, 0x44):
        return None
    found = _sized_values(frame, 7, (frame[5] << 8) | frame[6])
    return found[0] if found is not None and found[1] == end else None


def _sized_values(frame: bytes, pos: int, count: int) -> tuple[list[bytes | None], int] | None:
    """``count`` length-prefixed values from ``pos`` (length -1 for NULL) and the offset past
    them; None when they overrun the frame."""
    end = len(frame)
    values: list[bytes | None] = []
    for _ in range(count):
        if pos + 4 > end:
            return None
        (size,) = _I32.unpack_from(frame, pos)
        pos += 4
        if size == -1:
            values.append(None)
        elif 0 <= size <= end - pos:
            values.append(frame[pos : pos + size])
            pos += size
        else:
            return None
    return values, pos


# Payload size (without type byte and length) allowed per type: (minimum, maximum or None).
# Checked as soon as the length arrives, so a corrupt length fails before its body is awaited.
_FRONTEND_SIZES: Mapping[bytes, tuple[int, int | None]] = {
    b"Q": (1, None),
    b"P": (4, None),
    b"B": (8, None),
    b"D": (2, None),
    b"E": (5, None),
    b"S": (0, 0),
    b"H": (0, 0),
    b"C": (2, None),
    b"d": (0, None),
    b"c": (0, 0),
    b"f": (1, None),
    b"F": (10, None),
    b"X": (0, 0),
    b"p": (0, None),
}
_BACKEND_SIZES: Mapping[bytes, tuple[int, int | None]] = {
    b"R": (4, None),
    b"S": (2, None),
    b"K": (8, 4 + _MAX_SECRET_KEY),
    b"Z": (1, 1),
    b"v": (8, None),
    b"T": (2, None),
    b"D": (2, None),
    b"C": (1, None),
    b"I": (0, 0),
    b"E": (1, None),
    b"N": (1, None),
    b"A": (6, None),
    b"1": (0, 0),
    b"2": (0, 0),
    b"3": (0, 0),
    b"n": (0, 0),
    b"t": (2, None),
    b"s": (0, 0),
    b"G": (3, None),
    b"H": (3, None),
    b"W": (3, None),
    b"d": (0, None),
    b"c": (0, 0),
    b"V": (4, None),
}


def _names(types: Mapping[bytes, tuple[type, ...]]) -> dict[int, str]:
    return {tag[0]: "/".join(cls.__name__ for cls in classes) for tag, classes in types.items()}


_FRONTEND_NAMES = _names(FRONTEND_TYPES) | {ord("p"): "PasswordMessage/SASL/GSS response"}
_BACKEND_NAMES = _names(BACKEND_TYPES) | {ord("R"): "Authentication"}


# -- untyped startup messages ---------------------------------------------------------------------


def _startup(r: _Reader, version: int) -> StartupMessage:
    parameters: list[tuple[str, str]] = []
    while name := r.cstring("a parameter name (the list ends with an empty one)"):
        parameters.append((name, r.cstring(f"the value of parameter {name!r}")))
    return StartupMessage(tuple(parameters), version >> 16, version & 0xFFFF)


def _untyped_sizes(code: int) -> tuple[str, int, int]:
    """The message name and its allowed total length range for a startup-phase request code."""
    if code == SSL_REQUEST_CODE:
        return "SSLRequest", 8, 8
    if code == GSSENC_REQUEST_CODE:
        return "GSSENCRequest", 8, 8
    if code == CANCEL_REQUEST_CODE:
        return "CancelRequest", 16, 12 + _MAX_SECRET_KEY
    return "StartupMessage", 9, 1 << 31


def _untyped(r: _Reader, code: int) -> FrontendMessage:
    if code == SSL_REQUEST_CODE:
        return SSLRequest()
    if code == GSSENC_REQUEST_CODE:
        return GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        return CancelRequest(r.int32("the process ID"), _secret_key(r))
    return _startup(r, code)


# -- parsers --------------------------------------------------------------------------------------

M = TypeVar("M")
_R = TypeVar("_R")


class _Parser(Generic[M]):
    """Buffering, offsets, end of stream and the sticky error state shared by both parsers."""

    def __init__(
        self,
        *,
        max_message_size: int,
        decoders: Mapping[bytes, _Decoder],
        sizes: Mapping[bytes, tuple[int, int | None]],
        names: Mapping[int, str],
        side: str,
    ) -> None:
        if max_message_size < 4:
            raise ValueError("max_message_size must be at least 4 (the length field itself)")
        self._max = max_message_size
        self._decoders = dict(decoders)
        self._sizes = sizes
        self._names = names
        self._side = side
        self._bounds = _bounds(sizes)
        self._final = -1  # the type byte of a message after which frames stop (Terminate)
        self._buf: bytes | bytearray = b""
        self._base = 0
        self._pos = 0
        self._eof = False
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        self._check_error()
        if not data:
            return
        if self._eof:
            raise ProtocolError(
                "feed() was called after feed_eof(); a closed stream cannot receive more bytes",
                self.consumed,
            )
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            # Everything before was parsed: the fed bytes are the buffer, without a copy.
            self._base += pos
            self._buf = bytes(data)
            self._pos = 0
            return
        if not isinstance(buf, bytearray):
            self._buf = bytearray(memoryview(buf)[pos:])
            self._base += pos
            self._pos = 0
        elif pos and (pos >= _COMPACT_AT or pos * 2 >= len(buf)):
            del buf[:pos]
            self._base += pos
            self._pos = 0
        self._buf += data

    def feed_eof(self) -> None:
        """The peer closed its side; ``next_event()`` raises if a message was left incomplete."""
        self._check_error()
        self._eof = True

    def next_event(self) -> M | NeedData:
        return self._run(self._step)

    def _run(self, step: Callable[[], _R]) -> _R:
        self._check_error()
        try:
            result = step()
            if result is NEED_DATA and self._eof and self._incomplete():
                pending = len(self._buf) - self._pos
                raise ProtocolError(
                    f"connection closed inside a message ({pending} bytes of it arrived)",
                    self.consumed,
                )
        except ProtocolError as exc:
            self._error = exc
            raise
        return result

    @property
    def consumed(self) -> int:
        """Bytes of the stream parsed so far (the stream offset of the next unparsed byte)."""
        return self._base + self._pos

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet parsed."""
        return len(self._buf) - self._pos

    def _step(self) -> M | NeedData:
        raise NotImplementedError

    def _incomplete(self) -> bool:
        return len(self._buf) > self._pos

    def _check_error(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.message, self._error.offset)

    def _payload(self, start: int, end: int) -> bytes:
        with memoryview(self._buf)[start:end] as view:
            return view.tobytes()

    def _header(
        self,
        known: Mapping[bytes, object],
        sizes: Mapping[bytes, tuple[int, int | None]],
        names: Mapping[int, str],
        side: str,
    ) -> int | NeedData:
        """The total size of the typed message at ``_pos`` once all of it is buffered.

        Checks the type byte as soon as it arrives and the length as soon as its four bytes do.
        """
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 1:
            return NEED_DATA
        at = self._base + pos
        tag = bytes(buf[pos : pos + 1])
        if tag not in known:
            raise ProtocolError(
                f"unknown {side} message type {tag!r}: not a PostgreSQL 3.0 message "
                "(the connection may use another protocol, or the stream lost its framing)",
                at,
            )
        if avail < 5:
            return NEED_DATA
        name = names[tag[0]]
        (length,) = _I32.unpack_from(buf, pos + 1)
        if length < 4:
            raise ProtocolError(
                f"{name} message has length {length}; the length counts itself, so it is at "
                "least 4",
                at + 1,
            )
        if length > self._max:
            raise ProtocolError(
                f"{name} message of {length} bytes is larger than max_message_size={self._max}; "
                "raise max_message_size if such messages are legitimate",
                at + 1,
            )
        low, high = sizes[tag]
        size = length - 4
        if size < low or (high is not None and size > high):
            if high is None:
                expected = f"at least {low}"
            else:
                expected = f"exactly {low}" if low == high else f"{low} to {high}"
            raise ProtocolError(
                f"{name} message has a {size}-byte payload; expected {expected}", at + 1
            )
        if avail < 1 + length:
            return NEED_DATA
        total: int = 1 + length
        return total

    def _typed(
        self,
        decoders: Mapping[bytes, _Decoder],
        sizes: Mapping[bytes, tuple[int, int | None]],
        names: Mapping[int, str],
        side: str,
    ) -> Any:
        """One typed message (type byte, Int32 length, payload), or NEED_DATA."""
        total = self._header(decoders, sizes, names, side)
        if not isinstance(total, int):
            return NEED_DATA
        pos = self._pos
        tag = bytes(self._buf[pos : pos + 1])
        reader = _Reader(self._payload(pos + 5, pos + total), self._base + pos + 5, names[tag[0]])
        message = decoders[tag](reader)
        reader.done()
        self._pos = pos + total
        return message

    # frames: typed messages split off undecoded

    def next_frame(self) -> bytes | NeedData:
        """The next typed message as its exact bytes (type byte, length, payload), undecoded.

        Its type and length are checked as ``next_event()`` checks them, so a stream split into
        frames fails at the same offsets with the same errors; ``decode_frame()`` then decodes
        (and checks) the payload. Only for typed messages: a ``FrontendParser`` reads the
        connection start with ``next_event()`` until the StartupMessage, and a ``BackendParser``
        reads an SSL answer with ``next_event()``.
        """
        error = self._error
        if error is None and self._framing():
            buf, pos = self._buf, self._pos
            avail = len(buf) - pos
            if avail >= 5:
                bounds = self._bounds.get(buf[pos])
                (length,) = _I32.unpack_from(buf, pos + 1)
                if (
                    bounds is not None
                    and bounds[0] <= length <= bounds[1]
                    and length <= self._max
                    and avail > length
                ):
                    end = pos + 1 + length
                    if isinstance(buf, bytes):
                        frame = buf[pos:end]
                    else:
                        frame = bytes(buf[pos:end]) if length < 4096 else self._payload(pos, end)
                    self._pos = end
                    self._framed(frame)
                    return frame
        return self._run(self._next_frame)

    def frames(self) -> tuple[int, list[bytes]]:
        """Every complete typed message buffered, as ``next_frame()`` returns them, with the
        stream offset of the first; no frames when more bytes are needed.

        It stops before a message that breaks the framing, so the frames before it come out
        first; the call after them raises ``ProtocolError``, as ``next_frame()`` would.
        """
        buf, pos = self._buf, self._pos
        start = self._base + pos
        end = len(buf)
        if self._error is None and self._framing():
            if pos == end:
                return start, []
            bounds, limit, final = self._bounds, self._max, self._final
            whole = buf if isinstance(buf, bytes) else None
            out: list[bytes] = []
            while end - pos >= 5:
                tag = buf[pos]
                allowed = bounds.get(tag)
                (length,) = _I32.unpack_from(buf, pos + 1)
                stop = pos + 1 + length
                if (
                    allowed is None
                    or not allowed[0] <= length <= allowed[1]
                    or length > limit
                    or stop > end
                ):
                    break
                if whole is not None:
                    out.append(whole[pos:stop])
                else:
                    out.append(bytes(buf[pos:stop]) if length < 4096 else self._payload(pos, stop))
                pos = stop
                if tag == final:
                    break
            if out:
                self._pos = pos
                self._framed(out[-1])
                return start, out
        frame = self.next_frame()
        return start, [frame] if isinstance(frame, bytes) else []

    def decode_frame(self, frame: bytes, at: int) -> M:
        """The message of a frame that ``next_frame()`` returned; ``at`` is its stream offset.

        A payload that does not decode raises ``ProtocolError`` as ``next_event()`` would for it,
        and the parser then stays in that error.
        """
        self._check_error()
        tag = frame[:1]
        reader = _Reader(frame[5:], at + 5, self._names[frame[0]])
        try:
            message: M = self._decoders[tag](reader)
            reader.done()
        except ProtocolError as exc:
            self._error = exc
            raise
        return message

    def _framing(self) -> bool:
        """Whether the parser reads typed messages, the state in which frames are split."""
        raise NotImplementedError

    def _framed(self, frame: bytes) -> None:
        """State change caused by a frame just split off."""

    def _next_frame(self) -> bytes | NeedData:
        if not self._framing():
            return self._not_framing()
        total = self._header(self._decoders, self._sizes, self._names, self._side)
        if not isinstance(total, int):
            return NEED_DATA
        pos = self._pos
        frame = self._payload(pos, pos + total)
        self._pos = pos + total
        self._framed(frame)
        return frame

    def _not_framing(self) -> NeedData:
        raise RuntimeError("next_frame() reads typed messages only; call next_event() here")


def _bounds(
    sizes: Mapping[bytes, tuple[int, int | None]],
) -> dict[int, tuple[int, int]]:
    """Type byte -> the range of the length field (payload size + 4) allowed for it."""
    return {
        tag[0]: (low + 4, (1 << 31) - 1 if high is None else high + 4)
        for tag, (low, high) in sizes.items()
    }


class _FState(enum.Enum):
    STARTUP = "startup"  # an untyped message comes next
    AWAIT_ANSWER = "await-answer"  # SSLRequest/GSSENCRequest sent; waiting for ssl_answered()
    TYPED = "typed"  # typed messages
    DONE = "done"  # after Terminate or CancelRequest; no more bytes may come


class _Auth(enum.Enum):
    """How the next ``p`` message decodes: what the last authentication request asked for."""

    UNKNOWN = "unknown"
    PASSWORD = "password"
    SASL_INITIAL = "sasl-initial"
    SASL = "sasl"


_AFTER_UNTYPED: Mapping[type, _FState] = {
    StartupMessage: _FState.TYPED,
    SSLRequest: _FState.AWAIT_ANSWER,
    GSSENCRequest: _FState.AWAIT_ANSWER,
    CancelRequest: _FState.DONE,
}
_ANSWERS: Mapping[type, frozenset[bytes]] = {
    SSLRequest: frozenset({b"S", b"N"}),
    GSSENCRequest: frozenset({b"G", b"N"}),
}
_AUTH_STATES: Mapping[type, _Auth] = {
    AuthenticationCleartextPassword: _Auth.PASSWORD,
    AuthenticationMD5Password: _Auth.PASSWORD,
    AuthenticationSASL: _Auth.SASL_INITIAL,
    AuthenticationSASLContinue: _Auth.SASL,
    AuthenticationSASLFinal: _Auth.UNKNOWN,
    AuthenticationOk: _Auth.UNKNOWN,
    AuthenticationOther: _Auth.UNKNOWN,
}
_P_DECODERS: Mapping[_Auth, _Decoder] = {
    _Auth.UNKNOWN: lambda r: GSSResponse(r.rest()),
    _Auth.PASSWORD: _password,
    _Auth.SASL_INITIAL: _sasl_initial,
    _Auth.SASL: lambda r: SASLResponse(r.rest()),
}


class FrontendParser(_Parser[FrontendMessage]):
    """Parses what a client sends, starting with the untyped first message of a connection.

    Raises only ``ProtocolError``; after one, every call raises it again.
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_startup_size: int = DEFAULT_MAX_STARTUP_SIZE,
    ) -> None:
        super().__init__(
            max_message_size=max_message_size,
            decoders=_FRONTEND_DECODERS,
            sizes=_FRONTEND_SIZES,
            names=_FRONTEND_NAMES,
            side="frontend",
        )
        self._max_startup = max_startup_size
        self._final = 0x58  # Terminate
        self._state = _FState.STARTUP
        self._asked: type | None = None
        self._encrypted = False
        self._auth = _Auth.UNKNOWN

    def ssl_answered(self, answer: bytes) -> None:
        """Report the server's answer to the SSLRequest (``S``/``N``) or GSSENCRequest (``G``/``N``)
        this parser returned last; parsing resumes with the next startup message."""
        self._check_error()
        if self._state is not _FState.AWAIT_ANSWER or self._asked is None:
            raise ProtocolError(
                "ssl_answered() called but no SSLRequest or GSSENCRequest is awaiting an answer",
                self.consumed,
            )
        allowed = _ANSWERS[self._asked]
        if answer not in allowed:
            self._error = ProtocolError(
                f"the server answered {answer!r} to {self._asked.__name__}; expected one of "
                f"{sorted(allowed)}",
                self.consumed,
            )
            raise self._error
        self._encrypted = self._encrypted or answer != b"N"
        self._asked = None
        self._state = _FState.STARTUP

    def expect_auth(self, request: BackendMessage) -> None:
        """Report a message of the server: an authentication request decides how ``p`` decodes.

        Any other message is ignored, so a proxy may pass every server message through here.
        """
        self._check_error()
        state = _AUTH_STATES.get(type(request))
        if state is not None:
            self._auth = state
            self._decoders[b"p"] = _P_DECODERS[state]

    @property
    def awaiting_ssl_answer(self) -> bool:
        return self._state is _FState.AWAIT_ANSWER

    @property
    def encrypted(self) -> bool:
        """Whether the server accepted SSL or GSSAPI encryption on this connection."""
        return self._encrypted

    def _incomplete(self) -> bool:
        return self._state in (_FState.STARTUP, _FState.TYPED) and super()._incomplete()

    def _framing(self) -> bool:
        return self._state is _FState.TYPED

    def _framed(self, frame: bytes) -> None:
        if frame[0] == 0x58:  # Terminate
            self._state = _FState.DONE

    def _not_framing(self) -> NeedData:
        if self._state is _FState.DONE:
            return self._done()
        return super()._not_framing()

    def _done(self) -> NeedData:
        if len(self._buf) > self._pos:
            raise ProtocolError(
                "the client sent bytes after Terminate or CancelRequest, which end the connection",
                self.consumed,
            )
        return NEED_DATA

    def _step(self) -> FrontendMessage | NeedData:
        state = self._state
        if state is _FState.TYPED:
            message: FrontendMessage | NeedData = self._typed(
                self._decoders, _FRONTEND_SIZES, _FRONTEND_NAMES, "frontend"
            )
            if isinstance(message, Terminate):
                self._state = _FState.DONE
            return message
        if state is _FState.STARTUP:
            return self._on_startup()
        if state is _FState.DONE:
            return self._done()
        return NEED_DATA

    def _on_startup(self) -> FrontendMessage | NeedData:
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 4:
            return NEED_DATA
        at = self._base + pos
        (length,) = _I32.unpack_from(buf, pos)
        if length < 8:
            raise ProtocolError(
                f"startup packet has length {length}; it needs at least 8 bytes (length and "
                "request code)",
                at,
            )
        if length > self._max_startup:
            hint = ""
            if buf[pos] == 0x16:
                hint = (
                    "; the bytes look like a TLS handshake, as sent by clients using direct "
                    "SSL negotiation (sslnegotiation=direct), which this parser does not read"
                )
            raise ProtocolError(
                f"startup packet length {length} is larger than max_startup_size="
                f"{self._max_startup}{hint}",
                at,
            )
        if avail < 8:
            return NEED_DATA
        (code,) = _U32.unpack_from(buf, pos + 4)
        major = code >> 16
        if major != 3 and code not in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE):
            what = "request code" if major == 1234 else "protocol version"
            raise ProtocolError(
                f"unsupported {what} {major}.{code & 0xFFFF} in the startup packet: only "
                "protocol 3.x, SSLRequest, GSSENCRequest and CancelRequest are parsed",
                at + 4,
            )
        name, low, high = _untyped_sizes(code)
        if not low <= length <= high:
            expected = f"exactly {low}" if low == high else f"{low} to {high}"
            raise ProtocolError(f"{name} has length {length}; expected {expected}", at)
        if avail < length:
            return NEED_DATA
        reader = _Reader(self._payload(pos + 8, pos + length), at + 8, name)
        message = _untyped(reader, code)
        reader.done()
        self._pos = pos + length
        self._state = _AFTER_UNTYPED[type(message)]
        if self._state is _FState.AWAIT_ANSWER:
            self._asked = type(message)
        return message


class _BState(enum.Enum):
    TYPED = "typed"
    AWAIT_ANSWER = "await-answer"  # the next byte answers SSLRequest/GSSENCRequest


class BackendParser(_Parser[BackendMessage]):
    """Parses what a server sends. Raises only ``ProtocolError``; then every call raises it."""

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(
            max_message_size=max_message_size,
            decoders=_BACKEND_DECODERS,
            sizes=_BACKEND_SIZES,
            names=_BACKEND_NAMES,
            side="backend",
        )
        self._state = _BState.TYPED

    def _framing(self) -> bool:
        return self._state is _BState.TYPED

    def expect_ssl_answer(self) -> None:
        """The client sent SSLRequest or GSSENCRequest: the next byte is the one-byte answer.

        An old server that does not know the request answers with an ErrorResponse instead,
        which is parsed as usual.
        """
        self._check_error()
        self._state = _BState.AWAIT_ANSWER

    def _step(self) -> BackendMessage | NeedData:
        if self._state is _BState.AWAIT_ANSWER:
            pos = self._pos
            if pos >= len(self._buf):
                return NEED_DATA
            answer = bytes(self._buf[pos : pos + 1])
            if answer in (b"S", b"N", b"G"):
                self._pos = pos + 1
                self._state = _BState.TYPED
                return SSLAnswer(answer)
            if answer != b"E":
                raise ProtocolError(
                    f"the server answered {answer!r} to an SSLRequest/GSSENCRequest; "
                    "expected 'S', 'G', 'N' or an ErrorResponse",
                    self._base + pos,
                )
            self._state = _BState.TYPED
        message: BackendMessage | NeedData = self._typed(
            self._decoders, _BACKEND_SIZES, _BACKEND_NAMES, "backend"
        )
        return message


# -- encoding -------------------------------------------------------------------------------------


def _cstr(text: str, field: str) -> bytes:
    if "\0" in text:
        raise ProtocolError(
            f"cannot encode {field} {text[:100]!r}: protocol strings cannot contain NUL"
        )
    try:
        return text.encode("utf-8", "surrogateescape") + b"\0"
    except UnicodeEncodeError:
        raise ProtocolError(
            f"cannot encode {field} {text[:100]!r}: it has a surrogate that does not stand for "
            "a byte (only U+DC80..U+DCFF do)"
        ) from None


def _value(value: bytes | None) -> bytes:
    return _NULL if value is None else _I32.pack(len(value)) + value


def _values(values: tuple[bytes | None, ...]) -> bytes:
    return _U16.pack(len(values)) + b"".join([_value(v) for v in values])


def _int16s(codes: tuple[int, ...]) -> bytes:
    return struct.pack(f"!H{len(codes)}h", len(codes), *codes)


def _oids(oids: tuple[int, ...]) -> bytes:
    return struct.pack(f"!H{len(oids)}I", len(oids), *oids)


def _key(key: bytes, what: str) -> bytes:
    if not 4 <= len(key) <= _MAX_SECRET_KEY:
        raise ProtocolError(
            f"cannot encode {what}: its secret key is {len(key)} bytes; expected 4 to "
            f"{_MAX_SECRET_KEY}"
        )
    return key


def _kind(kind: str) -> bytes:
    if kind not in ("S", "P"):
        raise ProtocolError(f"cannot encode object kind {kind!r}: use 'S' or 'P'")
    return kind.encode()


def _pairs(pairs: tuple[tuple[str, str], ...], what: str) -> bytes:
    out = []
    for name, value in pairs:
        if not name:
            raise ProtocolError(f"cannot encode an empty {what} name: it would end the list")
        out.append(_cstr(name, f"{what} name") + _cstr(value, f"{what} {name!r}"))
    return b"".join(out) + b"\0"


def _error_fields(fields: tuple[tuple[str, str], ...]) -> bytes:
    out = []
    for code, value in fields:
        if len(code) != 1 or not 1 <= ord(code) <= 255:
            raise ProtocolError(
                f"cannot encode error field code {code!r}: it must be one character from "
                "U+0001 to U+00FF"
            )
        out.append(code.encode("latin-1") + _cstr(value, f"error field {code!r}"))
    return b"".join(out) + b"\0"


def _e_startup(m: StartupMessage) -> bytes:
    if m.major != 3:
        raise ProtocolError(f"cannot encode protocol version {m.major}.{m.minor}: use 3.x")
    body = _U16.pack(m.major) + _U16.pack(m.minor) + _pairs(m.parameters, "startup parameter")
    return _I32.pack(len(body) + 4) + body


def _e_cancel(m: CancelRequest) -> bytes:
    key = _key(m.secret_key, "CancelRequest")
    return _I32.pack(12 + len(key)) + _U32.pack(CANCEL_REQUEST_CODE) + _I32.pack(m.process_id) + key


def _e_ssl_answer(m: SSLAnswer) -> bytes:
    if m.answer not in (b"S", b"N", b"G"):
        raise ProtocolError(f"cannot encode SSL answer {m.answer!r}: use b'S', b'N' or b'G'")
    return m.answer


def _e_auth_other(m: AuthenticationOther) -> bytes:
    if m.code in (0, 3, 5, 10, 11, 12):
        raise ProtocolError(
            f"cannot encode AuthenticationOther with code {m.code}: that code has its own "
            "message class"
        )
    return _I32.pack(m.code) + m.data


def _e_md5(m: AuthenticationMD5Password) -> bytes:
    if len(m.salt) != 4:
        raise ProtocolError(f"cannot encode an MD5 salt of {len(m.salt)} bytes: it is 4 bytes")
    return _I32.pack(5) + m.salt


def _e_sasl(m: AuthenticationSASL) -> bytes:
    names = []
    for mechanism in m.mechanisms:
        if not mechanism:
            raise ProtocolError("cannot encode an empty SASL mechanism name: it ends the list")
        names.append(_cstr(mechanism, "SASL mechanism"))
    return _I32.pack(10) + b"".join(names) + b"\0"


def _e_ready(m: ReadyForQuery) -> bytes:
    if m.status not in ("I", "T", "E"):
        raise ProtocolError(f"cannot encode transaction status {m.status!r}: use I, T or E")
    return str(m.status).encode()


def _e_negotiate(m: NegotiateProtocolVersion) -> bytes:
    options = b"".join(_cstr(o, "protocol option") for o in m.unrecognized)
    return _I32.pack(m.newest_version) + _I32.pack(len(m.unrecognized)) + options


def _e_field(f: FieldDescription) -> bytes:
    return _cstr(f.name, "field name") + struct.pack(
        "!IhIhih", f.table_oid, f.column_attr, f.type_oid, f.type_size, f.type_modifier, f.format
    )


def _e_copy(m: CopyInResponse | CopyOutResponse | CopyBothResponse) -> bytes:
    if m.format not in (0, 1):
        raise ProtocolError(f"cannot encode overall COPY format {m.format}: use 0 or 1")
    return bytes([m.format]) + _int16s(m.column_formats)


def _e_notification(m: NotificationResponse) -> bytes:
    return _I32.pack(m.process_id) + _cstr(m.channel, "channel") + _cstr(m.payload, "payload")


def _e_bind(m: Bind) -> bytes:
    return b"".join(
        [
            _cstr(m.portal, "portal name"),
            _cstr(m.statement, "statement name"),
            _int16s(m.param_formats),
            _values(m.params),
            _int16s(m.result_formats),
        ]
    )


def _e_function_call(m: FunctionCall) -> bytes:
    return (
        _U32.pack(m.function_oid)
        + _int16s(m.arg_formats)
        + _values(m.args)
        + _I16.pack(m.result_format)
    )


def _e_sasl_initial(m: SASLInitialResponse) -> bytes:
    return _cstr(m.mechanism, "SASL mechanism") + _value(m.data)


def _empty(m: object) -> bytes:
    return b""


_UNTYPED_ENCODERS: Mapping[type, Callable[[Any], bytes]] = {
    StartupMessage: _e_startup,
    SSLRequest: lambda m: _I32.pack(8) + _U32.pack(SSL_REQUEST_CODE),
    GSSENCRequest: lambda m: _I32.pack(8) + _U32.pack(GSSENC_REQUEST_CODE),
    CancelRequest: _e_cancel,
    SSLAnswer: _e_ssl_answer,
}

# Payload encoders of typed messages; the type byte is the class's ``tag``.
_PAYLOAD_ENCODERS: Mapping[type, Callable[[Any], bytes]] = {
    AuthenticationOk: lambda m: _I32.pack(0),
    AuthenticationCleartextPassword: lambda m: _I32.pack(3),
    AuthenticationMD5Password: _e_md5,
    AuthenticationSASL: _e_sasl,
    AuthenticationSASLContinue: lambda m: _I32.pack(11) + m.data,
    AuthenticationSASLFinal: lambda m: _I32.pack(12) + m.data,
    AuthenticationOther: _e_auth_other,
    PasswordMessage: lambda m: _cstr(m.password, "password"),
    SASLInitialResponse: _e_sasl_initial,
    SASLResponse: lambda m: m.data,
    GSSResponse: lambda m: m.data,
    ParameterStatus: lambda m: _cstr(m.name, "parameter name") + _cstr(m.value, "value"),
    BackendKeyData: lambda m: _I32.pack(m.process_id) + _key(m.secret_key, "BackendKeyData"),
    ReadyForQuery: _e_ready,
    NegotiateProtocolVersion: _e_negotiate,
    Terminate: _empty,
    Query: lambda m: _cstr(m.query, "query"),
    RowDescription: lambda m: _U16.pack(len(m.fields)) + b"".join(map(_e_field, m.fields)),
    DataRow: lambda m: _values(m.values),
    CommandComplete: lambda m: _cstr(m.command_tag, "command tag"),
    EmptyQueryResponse: _empty,
    ErrorResponse: lambda m: _error_fields(m.fields),
    NoticeResponse: lambda m: _error_fields(m.fields),
    NotificationResponse: _e_notification,
    Parse: lambda m: (
        _cstr(m.name, "statement name") + _cstr(m.query, "query") + _oids(m.param_types)
    ),
    Bind: _e_bind,
    Describe: lambda m: _kind(m.kind) + _cstr(m.name, "name"),
    Execute: lambda m: _cstr(m.portal, "portal name") + _I32.pack(m.max_rows),
    Sync: _empty,
    Flush: _empty,
    Close: lambda m: _kind(m.kind) + _cstr(m.name, "name"),
    ParseComplete: _empty,
    BindComplete: _empty,
    CloseComplete: _empty,
    NoData: _empty,
    ParameterDescription: lambda m: _oids(m.type_oids),
    PortalSuspended: _empty,
    CopyInResponse: _e_copy,
    CopyOutResponse: _e_copy,
    CopyBothResponse: _e_copy,
    CopyData: lambda m: m.data,
    CopyDone: _empty,
    CopyFail: lambda m: _cstr(m.message, "error message"),
    FunctionCall: _e_function_call,
    FunctionCallResponse: lambda m: _value(m.result),
}


def encode(message: Message) -> bytes:
    """The exact bytes of ``message`` on the wire; the inverse of the parsers.

    Raises ``ProtocolError`` for values the protocol cannot carry (a NUL in a string, a number
    out of range, a secret key of the wrong size...), naming the field to fix.
    """
    kind = type(message)
    payload_encoder = _PAYLOAD_ENCODERS.get(kind)
    try:
        if payload_encoder is not None:
            payload = payload_encoder(message)
            tag: bytes = message.tag  # type: ignore[union-attr]
            return tag + _I32.pack(len(payload) + 4) + payload
        untyped = _UNTYPED_ENCODERS.get(kind)
        if untyped is not None:
            return untyped(message)
    except struct.error as exc:
        raise ProtocolError(
            f"cannot encode {kind.__name__}: a number or count is out of range for its field "
            f"({exc}); fix the recorded value"
        ) from None
    raise TypeError(f"encode() takes a PostgreSQL message, not {kind.__name__}")


# -- helpers for matching statements --------------------------------------------------------------

_SQL_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\n\r\f\v]+)
  | (?P<line>--[^\n]*)
  | (?P<block>/\*)
  | (?P<estring>[eE]'(?:[^'\\]|\\.|'')*'?)
  | (?P<string>'(?:[^']|'')*'?)
  | (?P<ident>"(?:[^"]|"")*"?)
  | (?P<dollar>\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$)
  | (?P<word>[A-Za-z0-9_$\x80-\U0010ffff]+)
  | (?P<other>.)
    """,
    re.DOTALL | re.VERBOSE,
)


def _block_comment_end(text: str, pos: int) -> int:
    """The end of the (nestable) block comment whose ``/*`` ends at ``pos``."""
    depth = 1
    while depth:
        close = text.find("*/", pos)
        if close < 0:
            return len(text)
        opening = text.find("/*", pos, close)
        if opening >= 0:
            depth += 1
            pos = opening + 2
        else:
            depth -= 1
            pos = close + 2
    return pos


def normalize_sql(text: str) -> str:
    """``text`` with comments removed, whitespace collapsed and unquoted words lower-cased.

    String literals (``'...'``, ``E'...'``, dollar-quoted) and quoted identifiers are kept as
    they are; a comment counts as whitespace. Unquoted identifiers and keywords are folded to
    lower case, as PostgreSQL folds them, so the result names the same statement.
    """
    out: list[str] = []
    space = False
    pos, end = 0, len(text)
    while pos < end:
        match = _SQL_TOKEN.match(text, pos)
        assert match is not None  # the last alternative matches any character
        group, token = match.lastgroup, match.group()
        pos = match.end()
        if group in ("space", "line"):
            space = True
            continue
        if group == "block":
            pos = _block_comment_end(text, pos)
            space = True
            continue
        if group == "dollar":
            close = text.find(token, pos)
            stop = end if close < 0 else close + len(token)
            token += text[pos:stop]
            pos = stop
        elif group in ("word", "other", "estring"):
            token = "e" + token[1:] if group == "estring" else token.lower()
        if space and out:
            out.append(" ")
        space = False
        out.append(token)
    return "".join(out)


_GENERATED_NAME = re.compile(
    r"""
      __asyncpg_[a-z]+_[0-9a-f]+__   # asyncpg
    | _pg3_[0-9]+                    # psycopg 3
    | _p[0-9]+ | _auto[0-9]+         # Npgsql
    | [SC]_[0-9]+                    # PgJDBC statements and portals
    | stmtcache_[0-9a-f]+            # pgx
    | lrupsc_[0-9]+_[0-9]+           # pgx v4
    | sqlx_[sc]_[0-9]+               # SQLx
    | [sp][0-9]+                     # tokio-postgres statements and portals
    | a[0-9]+                        # Rails (ActiveRecord)
    | pdo_stmt_[0-9a-f]+             # PHP PDO
    """,
    re.VERBOSE,
)


def statement_kind(name: str) -> str:
    """A stable key for a prepared statement or portal name.

    Names that drivers generate from a counter or a hash (``__asyncpg_stmt_1a__``, ``_pg3_3``,
    ``S_12``, ``stmtcache_…``) differ between runs, so they map to ``""``, like the unnamed
    statement, and callers key such statements by their query text. Other names are returned
    unchanged.
    """
    return "" if _GENERATED_NAME.fullmatch(name) else name
