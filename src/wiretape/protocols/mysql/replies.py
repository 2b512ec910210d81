"""Stored MySQL replies written straight to wire bytes, for the replay server.

How this works
--------------
``encode_reply(decode_messages(data), ...)`` builds one message object per stored packet, adapts
the sequence to the live connection's capabilities and encodes it. On replay most recorded
answers are used exactly once, so that work is done once per query. ``reply_bytes`` writes the
common replies (OK, ERR, text and binary result sets) from the plain data in one pass, following
the same rules as ``adapt_reply`` to see where the recorded framing and the connection's
framing agree. When anything would have to be adapted, or the stored data is anything but the
plain form wiretape writes itself, it returns None and the caller uses ``encode_reply``, which
then also reports what is wrong with the data. When it returns bytes they are exactly those
``encode_reply`` gives (the fuzz tests compare both).
"""

from __future__ import annotations

import struct
from typing import Any

from wiretape.errors import ProtocolError
from wiretape.protocols.mysql.exchange import value_bytes
from wiretape.protocols.mysql.messages import (
    DEPRECATE_EOF,
    EXTENDED_METADATA,
    OPTIONAL_METADATA,
    SESSION_STATE_CHANGED,
    SESSION_TRACK,
    FieldType,
    ServerStatus,
    encode_binary_row,
)
from wiretape.protocols.mysql.packets import MAX_FRAME, lenenc_int
from wiretape.protocols.wire import PlainError, bytes_of

__all__ = ["reply_bytes"]

_STATUS_BITS = {name: int(flag.value) for name, flag in ServerStatus.__members__.items()}
_TYPE_CODES = {name: int(ftype.value) for name, ftype in FieldType.__members__.items()}
_COLUMN_FIXED = struct.Struct("<BHIBHB2x")
_UNSIGNED_COLUMN = 0x20
_ABSENT: Any = object()
_TYPE_FORMS = (int, str)
_COLUMNS_KEPT = 4096
_columns: dict[tuple[Any, ...], tuple[bytes, int, int, bool]] = {}


class _Adapted(Exception):
    """The reply needs ``encode_reply``: a packet changes for this connection, or the stored
    data is not in the form this module writes."""


def reply_bytes(
    data: Any, *, seq: int, capabilities: int, mariadb_capabilities: int = 0
) -> tuple[bytes, int, bool] | None:
    """The bytes of the stored reply ``data`` (``{messages: [...]}``) for a connection with
    these capabilities, its first packet numbered ``seq``; the status flags of its last OK
    or EOF packet (-1 when it has none); and whether stored data equal to ``data`` (``==``)
    is sure to give the same bytes, which is not so with binary rows (-0.0 equals 0.0).

    None when the reply holds other packets than OK, ERR, EOF and result sets, when a packet
    has to be adapted to the connection (see ``adapt_reply``), or when the data is not exactly
    in its stored form: ``encode_reply(decode_messages(data), ...)`` handles those.
    """
    try:
        return _reply_bytes(data, seq, capabilities, mariadb_capabilities)
    except (_Adapted, PlainError, ProtocolError, ValueError, TypeError, KeyError, OverflowError):
        return None


def _reply_bytes(data: Any, seq: int, caps: int, maria: int) -> tuple[bytes, int, bool]:
    if type(data) is not dict:
        raise _Adapted
    docs = data.get("messages")
    if type(docs) is not list:
        raise _Adapted
    if caps & OPTIONAL_METADATA:
        raise _Adapted  # stored column counts without the metadata flag would change
    deprecate = bool(caps & DEPRECATE_EOF)
    extended = bool(maria & EXTENDED_METADATA)
    track = bool(caps & SESSION_TRACK)
    parts: list[bytes] = []
    status = -1
    defs = 0  # column definitions of the current result set still to come
    rows = False  # inside the rows of a result set
    defs_end = False  # the next packet is the EOF that ends the column definitions
    types: list[tuple[int, bool]] | None = None  # column types, for binary rows
    cols: list[tuple[int, bool]] = []
    equal_bytes = True
    last = len(docs) - 1
    for i, node in enumerate(docs):
        if type(node) is not dict or len(node) != 1:
            raise _Adapted
        ((name, body),) = node.items()
        if name == "Row":
            payload = _text_row(body)
        elif name == "Column":
            payload, ftype, flags, has_ext = _column(body)
            if defs:
                cols.append((ftype, bool(flags & _UNSIGNED_COLUMN)))
                if has_ext != extended:
                    raise _Adapted
                defs -= 1
                if not defs:
                    types = cols
                    # An EOF packet ends the definitions exactly when the connection expects one.
                    defs_end = i < last and type(docs[i + 1]) is dict and "EOF" in docs[i + 1]
                    if defs_end == deprecate:
                        raise _Adapted
                    rows = not defs_end
        elif name == "EOF":
            if defs_end:
                defs_end = False
                rows = True
            elif rows and deprecate:
                raise _Adapted  # becomes an OK packet
            else:
                rows = False
            payload, status = _eof(body)
        elif name == "OK":
            rows = False
            payload, status = _ok(body, deprecate, track)
        elif name == "Columns":
            if type(body) is not int or body <= 0:
                raise _Adapted
            payload = lenenc_int(body)
            defs = body
            types, cols = None, []
        elif name == "ERR":
            rows = False
            payload = _err(body)
        elif name == "BinaryRow":
            payload = _binary_row(body, types)
            equal_bytes = False
        else:
            raise _Adapted
        if len(payload) >= MAX_FRAME:
            raise _Adapted
        parts.append((len(payload) | seq << 24).to_bytes(4, "little"))
        parts.append(payload)
        seq = (seq + 1) % 256
    return b"".join(parts), status, equal_bytes


def _lenenc(data: bytes) -> bytes:
    if len(data) < 0xFB:
        return bytes((len(data),)) + data
    return lenenc_int(len(data)) + data


def _text(node: Any) -> bytes:
    if type(node) is str:
        return node.encode("utf-8", "surrogateescape")
    return bytes_of(node)  # {base64: ...}: surrogate escapes make text and bytes the same


def _uint(node: Any, limit: int) -> int:
    if type(node) is not int or not 0 <= node < limit:
        raise _Adapted
    return node


def _status(node: Any) -> int:
    if type(node) is int and node >= 0:
        return node
    if type(node) is not list:
        raise _Adapted
    value = 0
    for item in node:
        if type(item) is str:
            value |= _STATUS_BITS[item]
        elif type(item) is int and item >= 0:
            value |= item
        else:
            raise _Adapted
    return value


def _text_row(body: Any) -> bytes:
    if type(body) is not list:
        raise _Adapted
    parts = []
    for value in body:
        if value is None:
            parts.append(b"\xfb")
        elif type(value) is str:
            parts.append(_lenenc(value.encode("utf-8", "surrogateescape")))
        else:
            parts.append(_lenenc(bytes_of(value)))
    return b"".join(parts)


def _column(body: Any) -> tuple[bytes, int, int, bool]:
    """A column definition's payload, its type and flags, and whether it has extended
    metadata. Result sets repeat the same few definitions, so they are kept by content."""
    if type(body) is not dict:
        raise _Adapted
    key = (tuple(body), tuple(body.values()))
    try:
        found = _columns.get(key)
    except TypeError:  # a value in base64 form
        return _new_column(body)
    # Values equal to the stored form's but of another type (1.0 or True for 1) are not the
    # stored form: they are looked at anew.
    if (
        found is not None
        and type(body["charset"]) is int
        and type(body["length"]) is int
        and type(body["flags"]) is int
        and type(body.get("decimals", 0)) is int
        and type(body["type"]) in _TYPE_FORMS
    ):
        return found
    made = _new_column(body)
    if len(_columns) >= _COLUMNS_KEPT:
        _columns.clear()
    _columns[key] = made
    return made


def _new_column(body: dict[str, Any]) -> tuple[bytes, int, int, bool]:
    name = _text(body["name"])
    table = _text(body["table"])
    org_table = body.get("org_table", _ABSENT)
    org_name = body.get("org_name", _ABSENT)
    catalog = body.get("catalog", _ABSENT)
    payload = b"".join(
        (
            b"\x03def" if catalog is _ABSENT else _lenenc(_text(catalog)),
            _lenenc(_text(body["schema"])),
            _lenenc(table),
            _lenenc(table if org_table is _ABSENT else _text(org_table)),
            _lenenc(name),
            _lenenc(name if org_name is _ABSENT else _text(org_name)),
        )
    )
    ext = body.get("extended")
    if ext is not None:
        payload += _lenenc(_text(ext))
    ftype = body["type"]
    if type(ftype) is str:
        ftype = _TYPE_CODES[ftype]
    flags = _uint(body["flags"], 1 << 16)
    fixed = _COLUMN_FIXED.pack(
        0x0C,
        _uint(body["charset"], 1 << 16),
        _uint(body["length"], 1 << 32),
        _uint(ftype, 1 << 8),
        flags,
        _uint(body.get("decimals", 0), 1 << 8),
    )
    return payload + fixed, ftype, flags, ext is not None


def _eof(body: Any) -> tuple[bytes, int]:
    if type(body) is not dict:
        raise _Adapted
    status = _uint(_status(body["status"]), 1 << 16)
    warnings = _uint(body.get("warnings", 0), 1 << 16)
    return b"\xfe" + (warnings | status << 16).to_bytes(4, "little"), status


def _ok(body: Any, deprecate: bool, track: bool) -> tuple[bytes, int]:
    if type(body) is not dict:
        raise _Adapted
    eof = body.get("eof") is True
    if eof and not deprecate:
        raise _Adapted  # becomes an EOF packet
    status = _uint(_status(body["status"]), 1 << 16)
    warnings = _uint(body.get("warnings", 0), 1 << 16)
    affected = _uint(body["affected_rows"], 1 << 64)
    insert_id = _uint(body["insert_id"], 1 << 64)
    info = body.get("info", "")
    state = body.get("session_state")
    head = b"\xfe" if eof else b"\x00"
    if affected < 0xFB and insert_id < 0xFB:
        head += bytes((affected, insert_id))
    else:
        head += lenenc_int(affected) + lenenc_int(insert_id)
    payload = head + (status | warnings << 16).to_bytes(4, "little")
    if not track:
        if info is None or state is not None:
            raise _Adapted  # the connection gets the OK without session tracking
        return payload + _text(info), status
    if info is None:
        if state is not None:
            raise _Adapted
        return payload, status
    payload += _lenenc(_text(info))
    if (state is not None) != bool(status & SESSION_STATE_CHANGED):
        raise _Adapted
    if state is not None:
        payload += _lenenc(bytes_of(state))
    return payload, status


def _err(body: Any) -> bytes:
    if type(body) is not dict:
        raise _Adapted
    code = _uint(body["code"], 1 << 16)
    text = _text(body["message"])
    state = body.get("state")
    head = b"\xff" + code.to_bytes(2, "little")
    if state is None:
        if text.startswith(b"#"):
            raise _Adapted
        return head + text
    if type(state) is not str:
        raise _Adapted
    raw_state = state.encode("latin-1", "replace")
    if len(raw_state) != 5:
        raise _Adapted
    return head + b"#" + raw_state + text


def _binary_row(body: Any, types: list[tuple[int, bool]] | None) -> bytes:
    if type(body) is dict:
        return bytes_of(body)
    if type(body) is not list or types is None or len(types) != len(body):
        raise _Adapted
    values = [
        None if v is None else value_bytes(t, v, unsigned)
        for v, (t, unsigned) in zip(body, types, strict=True)
    ]
    return encode_binary_row([t for t, _ in types], values)
