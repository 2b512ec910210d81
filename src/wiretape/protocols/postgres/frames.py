"""PostgreSQL frames to steps, keys and stored answers, and stored answers back to bytes.

How this works
--------------
The record proxy and the mock server split what they read into frames (``frames()`` of the
parsers: each message's exact bytes, its type and length checked) rather than decoding every
message. Most
frames repeat byte for byte, on a connection and across the connections of an application: the
Parse of a statement, Describe, Execute, Sync, and from the server ParseComplete, a
RowDescription, CommandComplete, ReadyForQuery. What such a frame means (its ``ClientStep``, or
its stored form) is worked out once by the full decoder and then looked up by the frame's bytes.
The frames that do not repeat, Bind with its parameters and DataRow, are read by ``bind_fields``
and ``data_row_values``, which accept only well-formed frames; any other goes to the full
decoder, which reads it or raises the error ``next_event()`` would have raised. So the steps,
keys and stored forms are exactly those that the messages give, and malformed bytes fail at the
same message.

``encode_answer`` is the way back for replay: the bytes of a stored answer, built from the plain
data without making message objects for the common messages.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from wiretape.protocols.postgres.codec import bind_fields, data_row_values, encode
from wiretape.protocols.postgres.exchange import (
    _BARE,
    Answer,
    ClientStep,
    bind_client_step,
    client_step,
    decode_messages,
    encode_messages,
    message_doc,
)
from wiretape.protocols.postgres.messages import (
    BackendMessage,
    Close,
    Describe,
    FrontendMessage,
    ObjectKind,
    ReadyForQuery,
    TransactionStatus,
)
from wiretape.protocols.wire import PlainError, bytes_of, plain_bytes

__all__ = ["ClientFrames", "ServerFrames", "encode_answer"]

KEPT_FRAME_SIZE = 4096  # larger frames are worked out every time
KEPT_FRAMES = 4096  # a full table is emptied and starts again

# Client frames whose meaning depends on nothing but their bytes (Describe and Close only for a
# portal: for a statement, the step names the statement's SQL).
_STABLE = frozenset(b"QPESHcDC")
_BIND = ord("B")
_DATA_ROW = ord("D")


class ClientFrames:
    """Client frames to ``ClientStep``s, remembering the frames that repeat.

    One table serves all connections of a dependency: what it keeps does not depend on a
    connection's state.
    """

    def __init__(self) -> None:
        self._known: dict[bytes, ClientStep] = {}

    def step(
        self,
        frame: bytes,
        at: int,
        statements: Mapping[str, str],
        decode: Callable[[bytes, int], FrontendMessage],
    ) -> ClientStep:
        """The step of ``frame`` (found at stream offset ``at``), statement names resolved with
        ``statements``; ``decode`` is the parser's ``decode_frame``, used for frames met first."""
        known = self._known.get(frame)
        if known is not None:
            return known
        tag = frame[0]
        if tag == _BIND:
            fields = bind_fields(frame)
            if fields is not None:
                return bind_client_step(statements, fields)
        message = decode(frame, at)
        info = client_step(message, statements)
        if (
            tag in _STABLE
            and len(frame) <= KEPT_FRAME_SIZE
            and not (isinstance(message, Describe | Close) and message.kind is ObjectKind.STATEMENT)
        ):
            if len(self._known) >= KEPT_FRAMES:
                self._known.clear()
            self._known[frame] = info
        return info


class ServerFrames:
    """Server frames to tracker answers (the frame with its stored form), remembering the stored
    form of frames that repeat."""

    def __init__(self) -> None:
        self._docs: dict[bytes, Any] = {}

    def answer(
        self, frame: bytes, at: int, decode: Callable[[bytes, int], BackendMessage]
    ) -> Answer:
        """``frame`` with its stored form; the decoded message itself when it has no stored form
        (``message_doc`` raises for it when the exchange is stored, as for any message)."""
        if frame[0] == _DATA_ROW:
            values = data_row_values(frame)
            if values is not None:
                return frame, {"DataRow": [None if v is None else plain_bytes(v) for v in values]}
            return frame, message_doc(decode(frame, at))
        doc = self._docs.get(frame)
        if doc is not None:
            return frame, doc
        message = decode(frame, at)
        try:
            doc = message_doc(message)
        except PlainError:
            return message
        if len(frame) <= KEPT_FRAME_SIZE:
            if len(self._docs) >= KEPT_FRAMES:
                self._docs.clear()
            self._docs[frame] = doc
        return frame, doc


# -- stored answers to bytes --------------------------------------------------------------------

_I32 = struct.Struct("!i")
_U16 = struct.Struct("!H")
_FIELD = struct.Struct("!xIhIhih")  # after the name's NUL
_NULL = b"\xff\xff\xff\xff"
_BARE_FRAMES = {name: encode(make()) for name, make in _BARE.items()}
_READY = {status.value: encode(ReadyForQuery(status)) for status in TransactionStatus}
_STATUS = {status.value: status for status in TransactionStatus}


def _frame(tag: bytes, payload: bytes) -> bytes:
    return tag + _I32.pack(len(payload) + 4) + payload


def _data_row(body: Any) -> bytes | None:
    if type(body) is not list or len(body) > 0xFFFF:
        return None
    parts = [_U16.pack(len(body))]
    for value in body:
        if value is None:
            parts.append(_NULL)
            continue
        raw = value.encode("utf-8", "surrogateescape") if type(value) is str else bytes_of(value)
        parts.append(_I32.pack(len(raw)))
        parts.append(raw)
    return _frame(b"D", b"".join(parts))


def _row_description(body: Any) -> bytes | None:
    if type(body) is not list or len(body) > 0xFFFF:
        return None
    parts = [_U16.pack(len(body))]
    for field in body:
        if type(field) is not dict:
            return None
        get = field.get
        name, table, column, oid = get("name"), get("table"), get("column"), get("type")
        size, modifier, form = get("size"), get("modifier"), get("format")
        if (
            type(name) is not str
            or "\0" in name
            or type(table) is not int
            or type(column) is not int
            or type(oid) is not int
            or type(size) is not int
            or type(modifier) is not int
            or type(form) is not int
        ):
            return None
        parts.append(name.encode("utf-8", "surrogateescape"))
        parts.append(_FIELD.pack(table, column, oid, size, modifier, form))
    return _frame(b"T", b"".join(parts))


def _command_complete(body: Any) -> bytes | None:
    if type(body) is not str or "\0" in body:
        return None
    return _frame(b"C", body.encode("utf-8", "surrogateescape") + b"\0")


_ENCODERS: Mapping[str, Callable[[Any], bytes | None]] = {
    "DataRow": _data_row,
    "RowDescription": _row_description,
    "CommandComplete": _command_complete,
}
# Messages whose body is one string, by (name, body): command tags and ReadyForQuery repeat.
_SHORT: dict[tuple[str, str], bytes] = {("ReadyForQuery", s): f for s, f in _READY.items()}
_SHORT_KEPT = 1024


def _fast(data: Any) -> tuple[bytes, TransactionStatus | None] | None:
    if type(data) is not dict:
        return None
    nodes = data.get("messages")
    if type(nodes) is not list:
        return None
    out: list[bytes] = []
    status: str | None = None
    for node in nodes:
        if type(node) is str:
            frame = _BARE_FRAMES.get(node)
        elif type(node) is dict and len(node) == 1:
            ((name, body),) = node.items()
            if type(body) is str:
                frame = _SHORT.get((name, body))
                if frame is None and name == "CommandComplete":
                    frame = _command_complete(body)
                    if frame is not None and len(_SHORT) < _SHORT_KEPT:
                        _SHORT[name, body] = frame
                elif name == "ReadyForQuery":
                    status = body
            else:
                encoder = _ENCODERS.get(name)
                frame = None if encoder is None else encoder(body)
        else:
            return None
        if frame is None:
            return None
        out.append(frame)
    return b"".join(out), None if status is None else _STATUS[status]


def encode_answer(data: Any) -> tuple[bytes, TransactionStatus | None]:
    """The bytes of a stored answer's messages and the status of its last ReadyForQuery.

    The same as encoding ``decode_messages(data)``, with the same errors for data that cannot
    be replayed.
    """
    try:
        fast = _fast(data)
    except (ValueError, struct.error, OverflowError):  # PlainError is a ValueError
        fast = None
    if fast is not None:
        return fast
    messages = decode_messages(data)
    status = None
    for message in messages:
        if isinstance(message, ReadyForQuery):
            status = message.status
    return encode_messages(messages), status
