"""MySQL/MariaDB exchanges: each command paired with the server's whole reply, in plain data.

An *exchange* is one command (COM_QUERY, COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_PING, ...) and
every packet of the server's reply to it, multiple result sets included. The codec already pairs
them (``EndOfResponse`` names the command a reply finished), so ``Tracker`` only keeps the open
exchanges in command order, resolves statement ids to the SQL they were prepared with, and
leaves out what must never be stored: the auth rounds of COM_CHANGE_USER. Commands the server
does not answer (COM_STMT_CLOSE, COM_QUIT, COM_STMT_SEND_LONG_DATA) are not exchanges; data
sent with COM_STMT_SEND_LONG_DATA is stored as the parameter of the execute that uses it.

Stored form (plain data, see ``wiretape.protocols.wire``)
--------------------------------------------------------
A request is one step, for example::

    {query: "SELECT id, name FROM items WHERE id = 1"}
    {prepare: "SELECT name FROM items WHERE id > ?"}
    {execute: "SELECT name FROM items WHERE id > ?", params: [0], types: [TINY UNSIGNED]}
    ping
    {connect: {user: app, database: shop}}

Statement ids are replaced by the SQL they were prepared with, so an execute matches by what it
runs whatever id the server (or, on replay, the mock server) handed out. Parameters match by
value: ``types`` is kept for readers but not matched, since drivers choose an integer's width by
its magnitude. SQL or a name that is not readable UTF-8 is stored as ``{base64: ...}``. A
response is
``{messages: [...]}``, one entry per server packet: ``{OK: {affected_rows: 1, insert_id: 7,
status: [IN_TRANS, AUTOCOMMIT]}}``, ``{ERR: {code: 1062, state: '23000', message: ...}}``,
``{Columns: 2}``, ``{Column: {name: id, type: LONG, ...}}``, ``{EOF: {status: [...]}}``,
``{Row: ['1', alice, null]}`` (text protocol), ``{BinaryRow: [1, alice, null]}`` (binary protocol,
each value in a readable form for its column type), ``{PrepareOk: {statement_id: 1, ...}}``.
Both are lossless: ``encode_reply`` writes the recorded packets again byte for byte when the
client negotiated the same capabilities, and adapts their framing (EOF packets or
CLIENT_DEPRECATE_EOF, CLIENT_SESSION_TRACK's OK layout, optional metadata) when it did not.

Binary values (parameters and binary rows) are written by type: integers as integers, FLOAT and
DOUBLE as floats, DATE/DATETIME/TIMESTAMP as ``YYYY-MM-DD[ hh:mm:ss[.ffffff]]`` and TIME as
``[-]hh:mm:ss[.ffffff]`` (the form decides the length on the wire; ``''`` is the zero-length
form), strings as text or ``{base64: ...}``. A value that would not come back as the same bytes
is kept as ``{base64: ...}`` of its raw bytes.
"""

from __future__ import annotations

import base64
import enum
import functools
import math
import re
import struct
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from wiretape.compare.values import kind_token
from wiretape.errors import ProtocolError
from wiretape.model import WireRequest
from wiretape.protocols.mysql.codec import EndOfResponse, Packet
from wiretape.protocols.mysql.messages import (
    AuthMoreData,
    AuthSwitchRequest,
    AuthSwitchResponse,
    BinaryRow,
    Capability,
    ClientAuthData,
    ClientMessage,
    ColumnCount,
    ColumnDefinition,
    Command,
    CommandCode,
    EofPacket,
    ErrPacket,
    FieldType,
    GenericResponse,
    HandshakeResponse41,
    HandshakeV10,
    InitDb,
    LocalInfileData,
    LocalInfileRequest,
    MariaDbCapability,
    OkPacket,
    Param,
    Ping,
    PrepareOk,
    Query,
    Quit,
    ServerMessage,
    ServerStatus,
    SetOption,
    StmtClose,
    StmtExecute,
    StmtFetch,
    StmtPrepare,
    StmtReset,
    StmtSendLongData,
    TextRow,
    encode_binary_row,
    encode_payload,
    split_binary_row,
)
from wiretape.protocols.mysql.messages import normalize_sql as _normalize_sql
from wiretape.protocols.mysql.packets import encode_frames, frame_count
from wiretape.protocols.wire import (
    NoiseRules,
    PlainError,
    WireCodec,
    bytes_of,
    loose_bytes,
    plain_bytes,
)

__all__ = [
    "CODEC",
    "LAST_PREPARED",
    "Exchange",
    "Statements",
    "Tracker",
    "client_capabilities",
    "client_doc",
    "connect_request",
    "decode_messages",
    "encode_reply",
    "is_reusable_sql",
    "message_doc",
    "messages_doc",
    "request_for",
    "step_for",
    "value_bytes",
    "value_doc",
    "with_request_noise",
]

SUMMARY_MAX = 300
LAST_PREPARED = 0xFFFFFFFF  # MariaDB: COM_STMT_EXECUTE of the statement prepared last
_UNSIGNED_PARAM = 0x80
_UNSIGNED_COLUMN = 0x20

# Applications send the same few statements over and over; normalizing each once is enough.
normalize_sql = functools.lru_cache(maxsize=8192)(_normalize_sql)

# -- flags and types as readable names ---------------------------------------------------------


def _flag_list(value: int, flags: type[enum.IntFlag]) -> list[str | int]:
    """Set bits by name (bits without a name as one integer, last)."""
    return list(_flag_names(value, flags))


@functools.lru_cache(maxsize=1024)
def _flag_names(value: int, flags: type[enum.IntFlag]) -> tuple[str | int, ...]:
    out: list[str | int] = []
    for flag in flags:
        if value & flag.value and flag.name is not None:
            out.append(flag.name)
            value &= ~flag.value
    if value:
        out.append(value)
    return tuple(out)


def _flags_of(node: Any, flags: type[enum.IntFlag], where: str) -> int:
    if isinstance(node, int) and not isinstance(node, bool) and node >= 0:
        return node
    if not isinstance(node, list):
        raise PlainError(f"{where}: expected a list of flag names")
    value = 0
    for item in node:
        if isinstance(item, str):
            try:
                value |= flags[item].value
            except KeyError:
                raise PlainError(f"{where}: unknown flag {item!r:.60}") from None
        elif isinstance(item, int) and not isinstance(item, bool) and item >= 0:
            value |= item
        else:
            raise PlainError(f"{where}: expected flag names, found {item!r:.60}")
    return value


_TYPE_NAMES: dict[int, str] = {int(t.value): t.name for t in FieldType}


def _type_name(ftype: int) -> str | int:
    return _TYPE_NAMES.get(ftype, ftype)


def _type_of(node: Any, where: str) -> int:
    if isinstance(node, int) and not isinstance(node, bool):
        return node
    if isinstance(node, str):
        try:
            return FieldType[node].value
        except KeyError:
            pass
    raise PlainError(f"{where}: expected a field type name, found {node!r:.60}")


def _int(node: Any, where: str) -> int:
    if not isinstance(node, int) or isinstance(node, bool):
        raise PlainError(f"{where}: expected an integer, found {node!r:.60}")
    return node


def _str(node: Any, where: str) -> str:
    if not isinstance(node, str):
        raise PlainError(f"{where}: expected a string, found {node!r:.60}")
    return node


def _dict(node: Any, where: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(node, dict) or not set(keys) <= set(node):
        raise PlainError(f"{where}: expected a mapping with {', '.join(keys) or 'fields'}")
    return node


def _text_doc(text: str) -> Any:
    """Protocol text (decoded with surrogateescape) as a string, or ``{base64: ...}`` when its
    bytes are no readable UTF-8 (binary literals in SQL, bytes quoted in error messages)."""
    if text.isascii() and text.isprintable():
        return text
    return plain_bytes(text.encode("utf-8", "surrogateescape"))


def _text_of(node: Any, where: str) -> str:
    if isinstance(node, str):
        return node
    return bytes_of(node, where).decode("utf-8", "surrogateescape")


# -- binary-protocol values --------------------------------------------------------------------

_INT_WIDTH: dict[int, int] = {
    FieldType.TINY: 1,
    FieldType.SHORT: 2,
    FieldType.YEAR: 2,
    FieldType.LONG: 4,
    FieldType.INT24: 4,
    FieldType.LONGLONG: 8,
}
_FLOATS: dict[int, str] = {FieldType.FLOAT: "<f", FieldType.DOUBLE: "<d"}
_DATES = frozenset({FieldType.DATE, FieldType.NEWDATE})
_DATETIMES = frozenset({FieldType.DATETIME, FieldType.TIMESTAMP})
_DATE_TEXT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?)?", re.ASCII
)
_TIME_TEXT = re.compile(r"(-?)(\d{2,})(?::(\d{2}):(\d{2})(?:\.(\d{6}))?)", re.ASCII)


def _temporal_text(ftype: int, raw: bytes) -> str | None:
    if not raw:
        return ""
    if ftype == FieldType.TIME:
        if len(raw) not in (8, 12):
            return None
        sign, days, hour, minute, second = struct.unpack("<BIBBB", raw[:8])
        if sign > 1 or hour > 23:
            return None
        text = f"{'-' if sign else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}"
        return text + (f".{int.from_bytes(raw[8:], 'little'):06d}" if len(raw) == 12 else "")
    if len(raw) not in (4, 7, 11):
        return None
    year, month, day = struct.unpack("<HBB", raw[:4])
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if len(raw) >= 7:
        text += f" {raw[4]:02d}:{raw[5]:02d}:{raw[6]:02d}"
    if len(raw) == 11:
        text += f".{int.from_bytes(raw[7:], 'little'):06d}"
    return text


def _temporal_bytes(ftype: int, text: str) -> bytes | None:
    if not text:
        return b""
    if ftype == FieldType.TIME:
        m = _TIME_TEXT.fullmatch(text)
        if m is None:
            return None
        hours = int(m.group(2))
        out = struct.pack(
            "<BIBBB", 1 if m.group(1) else 0, hours // 24, hours % 24, int(m.group(3)),
            int(m.group(4)),
        )  # fmt: skip
        return out + (int(m.group(5)).to_bytes(4, "little") if m.group(5) else b"")
    d = _DATE_TEXT.fullmatch(text)
    if d is None:
        return None
    out = struct.pack("<HBB", int(d.group(1)), int(d.group(2)), int(d.group(3)))
    if d.group(4) is not None:
        out += bytes((int(d.group(4)), int(d.group(5)), int(d.group(6))))
    if d.group(7) is not None:
        out += int(d.group(7)).to_bytes(4, "little")
    return out


def _is_temporal(ftype: int) -> bool:
    return ftype in _DATES or ftype in _DATETIMES or ftype == FieldType.TIME


def value_doc(ftype: int, raw: bytes, unsigned: bool = False) -> Any:
    """A binary-protocol value (without its length prefix) in its readable stored form."""
    width = _INT_WIDTH.get(ftype)
    if width is not None:
        if len(raw) == width:
            return int.from_bytes(raw, "little", signed=not unsigned)
        return {"base64": _b64(raw)}
    fmt = _FLOATS.get(ftype)
    if fmt is not None:
        if struct.calcsize(fmt) == len(raw):
            value = struct.unpack(fmt, raw)[0]
            if math.isfinite(value) and struct.pack(fmt, value) == raw:
                return value
        return {"base64": _b64(raw)}
    if _is_temporal(ftype):
        text = _temporal_text(ftype, raw)
        if text is not None and _temporal_bytes(ftype, text) == raw:
            return text
        return {"base64": _b64(raw)}
    return plain_bytes(raw)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def value_bytes(ftype: int, node: Any, unsigned: bool = False, where: str = "value") -> bytes:
    """The raw binary-protocol value that ``value_doc`` turned into ``node``."""
    if isinstance(node, dict):
        return bytes_of(node, where)
    if isinstance(node, bool):
        raise PlainError(f"{where}: a boolean is not a MySQL value")
    if isinstance(node, int):
        width = _INT_WIDTH.get(ftype)
        if width is None:
            raise PlainError(f"{where}: an integer for field type {_type_name(ftype)}")
        try:
            return node.to_bytes(width, "little", signed=not unsigned)
        except OverflowError:
            raise PlainError(f"{where}: {node} does not fit a {_type_name(ftype)}") from None
    if isinstance(node, float):
        fmt = _FLOATS.get(ftype)
        if fmt is None:
            raise PlainError(f"{where}: a float for field type {_type_name(ftype)}")
        return struct.pack(fmt, node)
    if isinstance(node, str):
        if _is_temporal(ftype):
            raw = _temporal_bytes(ftype, node)
            if raw is None:
                raise PlainError(f"{where}: {node!r:.60} is not a {_type_name(ftype)} value")
            return raw
        if ftype in _INT_WIDTH or ftype in _FLOATS:
            raise PlainError(f"{where}: text for field type {_type_name(ftype)}")
        return bytes_of(node, where)
    raise PlainError(f"{where}: expected a value, found {node!r:.60}")


# -- server packets <-> plain data -------------------------------------------------------------


# The parsers hand out one object per distinct column definition, so its stored form is made
# once per object (the cache keeps the object, so its id is not reused) and copied.
_KEPT = 4096
_column_docs: dict[int, tuple[ColumnDefinition, dict[str, Any], bool]] = {}


def _column_doc(c: ColumnDefinition) -> dict[str, Any]:
    found = _column_docs.get(id(c))
    if found is None or found[0] is not c:
        doc = _new_column_doc(c)
        nested = any(type(v) is dict for v in doc.values())
        if len(_column_docs) >= _KEPT:
            _column_docs.clear()
        found = _column_docs[id(c)] = (c, doc, nested)
    doc = dict(found[1])
    if found[2]:
        for key, value in doc.items():
            if type(value) is dict:
                doc[key] = dict(value)
    return doc


def _new_column_doc(c: ColumnDefinition) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": _text_doc(c.name), "type": _type_name(c.type)}
    if c.org_name != c.name:
        doc["org_name"] = _text_doc(c.org_name)
    doc["table"] = _text_doc(c.table)
    if c.org_table != c.table:
        doc["org_table"] = _text_doc(c.org_table)
    doc["schema"] = _text_doc(c.schema)
    doc.update(charset=c.charset, length=c.length, flags=c.flags, decimals=c.decimals)
    if c.catalog != "def":
        doc["catalog"] = _text_doc(c.catalog)
    if c.extended_info is not None:
        doc["extended"] = plain_bytes(c.extended_info)
    return doc


def _column_of(node: Any, where: str) -> ColumnDefinition:
    d = _dict(node, where, ("name", "type", "table", "schema", "charset", "length", "flags"))
    name = _text_of(d["name"], where)
    table = _text_of(d["table"], where)
    ext = d.get("extended")
    return ColumnDefinition(
        schema=_text_of(d["schema"], where),
        table=table,
        org_table=_text_of(d.get("org_table", table), where),
        name=name,
        org_name=_text_of(d.get("org_name", name), where),
        charset=_int(d["charset"], where),
        length=_int(d["length"], where),
        type=_type_of(d["type"], where),
        flags=_int(d["flags"], where),
        decimals=_int(d.get("decimals", 0), where),
        catalog=_text_of(d.get("catalog", "def"), where),
        extended_info=None if ext is None else bytes_of(ext, f"{where}.extended"),
    )


def _ok_doc(m: OkPacket) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "affected_rows": m.affected_rows,
        "insert_id": m.last_insert_id,
        "status": _flag_list(m.status, ServerStatus),
    }
    if m.warnings:
        doc["warnings"] = m.warnings
    if m.info is None or m.info:
        doc["info"] = None if m.info is None else _text_doc(m.info)
    if m.session_state is not None:
        doc["session_state"] = plain_bytes(m.session_state)
    if m.header == 0xFE:
        doc["eof"] = True
    return doc


def _ok_of(node: Any, where: str) -> OkPacket:
    d = _dict(node, where, ("affected_rows", "insert_id", "status"))
    info = d.get("info", "")
    if info is not None:
        info = _text_of(info, f"{where}.info")
    state = d.get("session_state")
    return OkPacket(
        affected_rows=_int(d["affected_rows"], where),
        last_insert_id=_int(d["insert_id"], where),
        status=_flags_of(d["status"], ServerStatus, f"{where}.status"),
        warnings=_int(d.get("warnings", 0), where),
        info=info,
        session_state=None if state is None else bytes_of(state, f"{where}.session_state"),
        header=0xFE if d.get("eof") is True else 0x00,
    )


def _eof_doc(m: EofPacket) -> dict[str, Any]:
    doc: dict[str, Any] = {"status": _flag_list(m.status, ServerStatus)}
    if m.warnings:
        doc["warnings"] = m.warnings
    return doc


def handshake_doc(m: HandshakeV10) -> dict[str, Any]:
    """The greeting without what is per connection (connection id, scramble)."""
    doc: dict[str, Any] = {
        "server_version": _text_doc(m.server_version),
        "capabilities": _flag_list(m.capabilities, Capability),
    }
    if not m.capabilities & Capability.LONG_PASSWORD:
        doc["mariadb_capabilities"] = _flag_list(m.mariadb_capabilities, MariaDbCapability)
    doc.update(
        charset=m.charset,
        status=_flag_list(m.status, ServerStatus),
        auth_plugin=m.auth_plugin_name,
    )
    return doc


def client_doc(login: HandshakeResponse41) -> dict[str, Any]:
    """The capabilities a client announced in its login, stored beside a start-up's reply: the
    mock server encodes every recorded reply for the framing the same client will negotiate
    again, before that client connects."""
    doc: dict[str, Any] = {"capabilities": _flag_list(login.capabilities, Capability)}
    if login.mariadb_capabilities:
        doc["mariadb_capabilities"] = _flag_list(login.mariadb_capabilities, MariaDbCapability)
    return doc


def client_capabilities(data: Any) -> tuple[int, int] | None:
    """The client's capabilities and MariaDB capabilities that ``client_doc`` stored in a
    start-up's reply; None when there are none (an older recording) or they cannot be read."""
    node = data.get("client") if isinstance(data, dict) else None
    if not isinstance(node, dict):
        return None
    try:
        caps = _flags_of(node.get("capabilities"), Capability, "client.capabilities")
        maria = _flags_of(node.get("mariadb_capabilities", []), MariaDbCapability, "client")
    except PlainError:
        return None
    return caps, maria


def _handshake_of(node: Any, where: str) -> HandshakeV10:
    d = _dict(node, where, ("server_version", "capabilities", "charset", "status"))
    caps = _flags_of(d["capabilities"], Capability, f"{where}.capabilities")
    maria = _flags_of(d.get("mariadb_capabilities", []), MariaDbCapability, where)
    plugin = d.get("auth_plugin")
    if plugin is not None:
        plugin = _str(plugin, f"{where}.auth_plugin")
    return HandshakeV10(
        server_version=_text_of(d["server_version"], where),
        connection_id=0,
        scramble1=bytes(8),
        capabilities=caps,
        charset=_int(d["charset"], where),
        status=_flags_of(d["status"], ServerStatus, f"{where}.status"),
        auth_data_len=21,
        scramble2=bytes(13),
        auth_plugin_name=plugin,
        reserved=bytes(6) + (0 if caps & Capability.LONG_PASSWORD else maria).to_bytes(4, "little"),
    )


class _RowTypes:
    """The column types of the result set being read, for binary rows."""

    __slots__ = ("_cols", "_want", "types")

    def __init__(self) -> None:
        self.types: list[tuple[int, bool]] | None = None
        self._want = 0
        self._cols: list[tuple[int, bool]] = []

    def see(self, m: object) -> None:
        if isinstance(m, ColumnCount):
            self.types = None
            self._cols = []
            self._want = 0 if m.metadata_follows == 0 else m.count
        elif isinstance(m, PrepareOk):
            self.types = None
            self._want = 0
        elif isinstance(m, ColumnDefinition) and self._want:
            self._cols.append((m.type, bool(m.flags & _UNSIGNED_COLUMN)))
            self._want -= 1
            if not self._want:
                self.types = self._cols


def _binary_row_doc(m: BinaryRow, types: list[tuple[int, bool]] | None) -> Any:
    if types is not None:
        try:
            values = split_binary_row([t for t, _ in types], m.raw)
        except ProtocolError:
            pass
        else:
            return [
                None if v is None else value_doc(t, v, unsigned)
                for v, (t, unsigned) in zip(values, types, strict=True)
            ]
    return {"base64": _b64(m.raw)}


def _text_row_doc(m: TextRow) -> dict[str, Any]:
    return {"Row": [None if v is None else plain_bytes(v) for v in m.values]}


def message_doc(m: ServerMessage, row_types: list[tuple[int, bool]] | None = None) -> Any:
    """One server packet as plain data (binary rows need their result's column types)."""
    if type(m) is ColumnDefinition:
        return {"Column": _column_doc(m)}
    if isinstance(m, OkPacket):
        return {"OK": _ok_doc(m)}
    if isinstance(m, ErrPacket):
        return {"ERR": {"code": m.code, "state": m.sql_state, "message": _text_doc(m.message)}}
    if isinstance(m, EofPacket):
        return {"EOF": _eof_doc(m)}
    if isinstance(m, ColumnCount):
        if m.metadata_follows is None:
            return {"Columns": m.count}
        return {"Columns": {"count": m.count, "metadata": m.metadata_follows}}
    if isinstance(m, ColumnDefinition):
        return {"Column": _column_doc(m)}
    if isinstance(m, TextRow):
        return _text_row_doc(m)
    if isinstance(m, BinaryRow):
        return {"BinaryRow": _binary_row_doc(m, row_types)}
    if isinstance(m, PrepareOk):
        doc: dict[str, Any] = {
            "statement_id": m.statement_id,
            "params": m.num_params,
            "columns": m.num_columns,
        }
        if m.warnings:
            doc["warnings"] = m.warnings
        if m.metadata_follows is not None:
            doc["metadata"] = m.metadata_follows
        return {"PrepareOk": doc}
    if isinstance(m, LocalInfileRequest):
        return {"LocalInfile": _text_doc(m.filename)}
    if isinstance(m, GenericResponse):
        return {"Generic": plain_bytes(m.payload)}
    if isinstance(m, HandshakeV10):
        return {"Handshake": handshake_doc(m)}
    raise PlainError(f"{type(m).__name__} is not stored in a MySQL response")


def messages_doc(messages: Sequence[ServerMessage]) -> list[Any]:
    """Server packets as plain data, in order."""
    types = _RowTypes()
    out = []
    for m in messages:
        if isinstance(m, TextRow):  # the bulk of a result set, and of no concern to types.see
            out.append(_text_row_doc(m))
            continue
        out.append(message_doc(m, types.types))
        types.see(m)
    return out


def _message_of(node: Any, where: str, types: _RowTypes) -> ServerMessage:
    if not (isinstance(node, dict) and len(node) == 1):
        raise PlainError(f"{where}: expected {{Name: fields}}")
    ((name, body),) = node.items()
    at = f"{where}.{name}"
    if name == "OK":
        return _ok_of(body, at)
    if name == "ERR":
        d = _dict(body, at, ("code", "message"))
        state = d.get("state")
        return ErrPacket(
            _int(d["code"], at),
            _text_of(d["message"], at),
            None if state is None else _str(state, at),
        )
    if name == "EOF":
        d = _dict(body, at, ("status",))
        return EofPacket(_int(d.get("warnings", 0), at), _flags_of(d["status"], ServerStatus, at))
    if name == "Columns":
        if isinstance(body, dict):
            d = _dict(body, at, ("count", "metadata"))
            return ColumnCount(_int(d["count"], at), _int(d["metadata"], at))
        return ColumnCount(_int(body, at))
    if name == "Column":
        return _column_of(body, at)
    if name == "Row":
        if not isinstance(body, list):
            raise PlainError(f"{at}: expected a list of column values")
        return TextRow(
            tuple(None if v is None else bytes_of(v, f"{at}[{i}]") for i, v in enumerate(body))
        )
    if name == "BinaryRow":
        if isinstance(body, dict):
            return BinaryRow(bytes_of(body, at))
        if not isinstance(body, list):
            raise PlainError(f"{at}: expected a list of column values or {{base64: ...}}")
        if types.types is None or len(types.types) != len(body):
            raise PlainError(f"{at}: the column definitions before it do not describe this row")
        values = [
            None if v is None else value_bytes(t, v, unsigned, f"{at}[{i}]")
            for i, (v, (t, unsigned)) in enumerate(zip(body, types.types, strict=True))
        ]
        try:
            return BinaryRow(encode_binary_row([t for t, _ in types.types], values))
        except ProtocolError as exc:
            raise PlainError(f"{at}: {exc.message}") from None
    if name == "PrepareOk":
        d = _dict(body, at, ("statement_id", "params", "columns"))
        follows = d.get("metadata")
        return PrepareOk(
            _int(d["statement_id"], at),
            _int(d["columns"], at),
            _int(d["params"], at),
            _int(d.get("warnings", 0), at),
            None if follows is None else _int(follows, at),
        )
    if name == "LocalInfile":
        return LocalInfileRequest(_text_of(body, at))
    if name == "Generic":
        return GenericResponse(bytes_of(body, at))
    if name == "Handshake":
        return _handshake_of(body, at)
    raise PlainError(f"{where}: unknown message {name!r:.60}")


def decode_messages(data: Any, where: str = "response") -> list[ServerMessage]:
    """The server packets of a stored response."""
    try:
        return _decode_messages(data, where)
    except PlainError:
        raise
    except (ValueError, OverflowError, TypeError, struct.error) as exc:
        raise PlainError(f"{where}: {exc}") from None


def _decode_messages(data: Any, where: str) -> list[ServerMessage]:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise PlainError(f"{where}: expected a mapping with a messages list")
    types = _RowTypes()
    out = []
    for i, node in enumerate(data["messages"]):
        m = _message_of(node, f"{where}.messages[{i}]", types)
        types.see(m)
        out.append(m)
    return out


def _check_response(data: Any) -> None:
    decode_messages(data)


# -- replay: stored packets -> bytes for the live connection -----------------------------------


def _adapt_ok(m: OkPacket, caps: int) -> OkPacket:
    if caps & Capability.SESSION_TRACK or (m.info is not None and m.session_state is None):
        return m
    status = m.status & ~ServerStatus.SESSION_STATE_CHANGED
    return OkPacket(
        m.affected_rows, m.last_insert_id, status, m.warnings, m.info or "", None, m.header
    )


def _end_status(messages: Sequence[ServerMessage], start: int) -> int:
    """The status of the packet that ends the result set whose rows start at ``start``."""
    for m in messages[start:]:
        if isinstance(m, EofPacket | OkPacket):
            return m.status
        if isinstance(m, ErrPacket):
            break
    return 0


def adapt_reply(
    messages: Sequence[ServerMessage],
    capabilities: int,
    mariadb_capabilities: int = 0,
    statement_id: int | None = None,
) -> Iterator[ServerMessage]:
    """``messages`` framed for a connection with these negotiated capabilities.

    With the capabilities of the recording this yields the recorded packets unchanged.
    Otherwise EOF packets after column definitions are dropped or added and a result set ends
    with an EOF or with CLIENT_DEPRECATE_EOF's OK, as the connection expects; OK packets lose
    what needs CLIENT_SESSION_TRACK when it is off; optional and extended metadata follow the
    connection. ``statement_id`` replaces the one in a PrepareOk.
    """
    deprecate = bool(capabilities & Capability.DEPRECATE_EOF)
    optional = bool(capabilities & Capability.OPTIONAL_RESULTSET_METADATA)
    extended = bool(mariadb_capabilities & MariaDbCapability.EXTENDED_METADATA)
    blocks: list[int] = []  # column definitions still to come, per block
    then_rows = False  # rows follow the definitions (a result set, not a prepare)
    rows = False  # inside the rows of a result set
    i = 0
    n = len(messages)

    def end_of_block() -> Iterator[ServerMessage]:
        nonlocal i, rows
        recorded = i < n and isinstance(messages[i], EofPacket)
        eof = messages[i] if recorded else EofPacket(0, _end_status(messages, i))
        if recorded:
            i += 1
        if not deprecate:
            yield eof
        while blocks and not blocks[0]:
            blocks.pop(0)
        rows = then_rows and not blocks

    while i < n:
        m = messages[i]
        i += 1
        if isinstance(m, ColumnDefinition) and blocks:
            if extended != (m.extended_info is not None):
                m = _with_extended(m, b"" if extended else None)
            yield m
            blocks[0] -= 1
            if not blocks[0]:
                blocks.pop(0)
                yield from end_of_block()
        elif isinstance(m, ColumnCount):
            if optional != (m.metadata_follows is not None):
                m = ColumnCount(m.count, 1 if optional else None)
            yield m
            then_rows = True
            if m.metadata_follows == 0:
                blocks = []
                yield from end_of_block()
            else:
                blocks = [m.count]
        elif isinstance(m, PrepareOk):
            if statement_id is not None:
                m = PrepareOk(
                    statement_id, m.num_columns, m.num_params, m.warnings, m.metadata_follows
                )
            yield m
            then_rows = False
            blocks = (
                [] if m.metadata_follows == 0 else [b for b in (m.num_params, m.num_columns) if b]
            )
        elif rows and isinstance(m, EofPacket):
            rows = False
            if deprecate:
                yield _adapt_ok(
                    OkPacket(0, 0, m.status, m.warnings, None, None, 0xFE), capabilities
                )
            else:
                yield m
        elif isinstance(m, OkPacket):
            rows = False
            if m.header == 0xFE and not deprecate:
                yield EofPacket(m.warnings, m.status)
            else:
                yield _adapt_ok(m, capabilities)
        else:
            if isinstance(m, ErrPacket):
                rows = False
            yield m


def _with_extended(m: ColumnDefinition, ext: bytes | None) -> ColumnDefinition:
    return ColumnDefinition(
        m.schema, m.table, m.org_table, m.name, m.org_name, m.charset, m.length, m.type,
        m.flags, m.decimals, m.catalog, ext,
    )  # fmt: skip


def encode_reply(
    messages: Sequence[ServerMessage],
    *,
    seq: int,
    capabilities: int,
    mariadb_capabilities: int = 0,
    statement_id: int | None = None,
) -> bytes:
    """The bytes of a reply whose first packet has sequence id ``seq`` (see ``adapt_reply``)."""
    out = bytearray()
    for m in adapt_reply(messages, capabilities, mariadb_capabilities, statement_id):
        payload = encode_payload(m, capabilities)
        out += encode_frames(seq, payload)
        seq = (seq + frame_count(len(payload))) % 256
    return bytes(out)


# -- client commands -> steps ------------------------------------------------------------------


class Statements:
    """One connection's prepared statements: id -> the SQL it was prepared with, and the
    parameter data sent for the next execute with COM_STMT_SEND_LONG_DATA."""

    __slots__ = ("_long", "_sql", "last")

    def __init__(self) -> None:
        self._sql: dict[int, str] = {}
        self._long: dict[int, dict[int, bytearray]] = {}
        self.last: int | None = None

    def sent(self, m: ClientMessage) -> None:
        """Follow a command that changes a statement but is not answered (or only by OK)."""
        if isinstance(m, StmtSendLongData):
            chunks = self._long.setdefault(self._id(m.statement_id), {})
            chunks.setdefault(m.param_id, bytearray()).extend(m.data)
        elif isinstance(m, StmtReset):
            self._long.pop(self._id(m.statement_id), None)
        elif isinstance(m, StmtClose):
            self.closed(m.statement_id)

    def take_long_data(self, statement_id: int) -> dict[int, bytes]:
        """The long data sent for the execute of ``statement_id`` (forgotten: it is used)."""
        chunks = self._long.pop(self._id(statement_id), {})
        return {param: bytes(data) for param, data in chunks.items()}

    def _id(self, statement_id: int) -> int:
        if statement_id == LAST_PREPARED and self.last is not None:
            return self.last
        return statement_id

    def prepared(self, statement_id: int, sql: str) -> None:
        self._sql[statement_id] = sql
        self.last = statement_id

    def failed(self) -> None:
        self.last = None

    def closed(self, statement_id: int) -> None:
        self._sql.pop(statement_id, None)
        self._long.pop(statement_id, None)

    def sql(self, statement_id: int) -> str:
        statement_id = self._id(statement_id)
        found = self._sql.get(statement_id)
        if found is None:
            return f"<statement {statement_id} prepared before the recording>"
        return found


def _param_type(p: Param) -> Any:
    name = _type_name(p.type)
    if p.flags == 0 and isinstance(name, str):
        return name
    if p.flags == _UNSIGNED_PARAM and isinstance(name, str):
        return f"{name} UNSIGNED"
    return [p.type, p.flags]


def _param_type_of(node: Any, where: str) -> tuple[int, int]:
    if isinstance(node, list) and len(node) == 2:
        return _int(node[0], where), _int(node[1], where)
    if isinstance(node, str) and node.endswith(" UNSIGNED"):
        return _type_of(node[: -len(" UNSIGNED")], where), _UNSIGNED_PARAM
    return _type_of(node, where), 0


def _param_docs(params: Sequence[Param], long_data: dict[int, bytes] | None = None) -> Any:
    values = []
    for i, p in enumerate(params):
        value = p.value
        if p.long_data:
            value = (long_data or {}).get(i, b"")
        values.append(None if value is None else value_doc(p.type, value, bool(p.flags & 0x80)))
    doc: dict[str, Any] = {
        "params": values,
        "types": [_param_type(p) for p in params],  # kept, but not matched on
    }
    if any(p.name is not None for p in params):
        doc["names"] = [p.name for p in params]
    if any(p.long_data for p in params):
        doc["long_data"] = [i for i, p in enumerate(params) if p.long_data]
    return doc


def _command_name(code: int) -> str | int:
    try:
        return CommandCode(code).name
    except ValueError:
        return code


def step_for(m: ClientMessage, statements: Statements) -> Any:
    """A command as a stored step, with statement ids resolved to their SQL and the long data
    sent for an execute in place of its parameters (``statements.sent`` collected it).

    None for what is not stored: commands without a reply and the auth data of COM_CHANGE_USER.
    """
    if isinstance(m, Query):
        step: dict[str, Any] = {"query": _text_doc(m.sql)}
        if m.attributes is not None:
            step["attributes"] = _param_docs(m.attributes.params)
            if m.attributes.set_count != 1:
                step["attribute_sets"] = m.attributes.set_count
        return step
    if isinstance(m, StmtPrepare):
        return {"prepare": _text_doc(m.sql)}
    if isinstance(m, StmtExecute):
        step = {"execute": _text_doc(statements.sql(m.statement_id))}
        long_data = statements.take_long_data(m.statement_id)
        if m.unparsed is not None:
            step["unparsed"] = plain_bytes(m.unparsed)
        else:
            step.update(_param_docs(m.params, long_data))
        if m.flags:
            step["flags"] = m.flags
        if m.iteration_count != 1:
            step["iterations"] = m.iteration_count
        return step
    if isinstance(m, StmtFetch):
        return {"fetch": _text_doc(statements.sql(m.statement_id)), "rows": m.num_rows}
    if isinstance(m, StmtReset):
        return {"reset_statement": _text_doc(statements.sql(m.statement_id))}
    if isinstance(m, Ping):
        return "ping"
    if isinstance(m, InitDb):
        return {"init_db": _text_doc(m.schema)}
    if isinstance(m, SetOption):
        return {"set_option": m.option}
    if isinstance(m, Command):
        if m.code == CommandCode.CHANGE_USER:
            user = m.payload.split(b"\x00", 1)[0]
            return {"change_user": plain_bytes(user)}
        step = {"command": _command_name(m.code)}
        if m.payload:
            step["payload"] = plain_bytes(m.payload)
        return step
    return None


def connect_request(user: str, database: str | None) -> WireRequest:
    """The request a connection's start-up is stored under (no credentials)."""
    params: dict[str, Any] = {"user": _text_doc(user)}
    if database is not None:
        params["database"] = _text_doc(database)
    return request_for({"connect": params})


# -- steps -> match keys -----------------------------------------------------------------------

_SQL_KINDS = ("query", "prepare", "execute", "fetch", "reset_statement")
_KINDS = (*_SQL_KINDS, "init_db", "set_option", "change_user", "command", "connect")
_BARE = ("ping",)


def _param_key(ftype: int, flags: int, raw: bytes | None) -> object:
    """A parameter as matched: by value, whatever width the driver bound an integer or float
    with (drivers pick TINY, SHORT, LONG or LONGLONG by magnitude)."""
    if raw is None:
        return None
    width = _INT_WIDTH.get(ftype)
    if width is not None and len(raw) == width:
        return ("int", int.from_bytes(raw, "little", signed=not flags & _UNSIGNED_PARAM))
    fmt = _FLOATS.get(ftype)
    if fmt is not None and len(raw) == struct.calcsize(fmt):
        value = struct.unpack(fmt, raw)[0]
        return ("float", value if value == value else raw)  # NaN is not equal to itself
    if _is_temporal(ftype):
        return ("time", raw)
    return raw


def _params_key(step: dict[str, Any], where: str) -> tuple[Any, ...]:
    params = step.get("params", [])
    types = step.get("types", [])
    if not isinstance(params, list) or not isinstance(types, list) or len(params) != len(types):
        raise PlainError(f"{where}: params and types must be lists of the same length")
    values = []
    for i, (node, kind) in enumerate(zip(params, types, strict=True)):
        ftype, flags = _param_type_of(kind, f"{where}.types[{i}]")
        raw = None
        if node is not None:
            raw = value_bytes(ftype, node, bool(flags & _UNSIGNED_PARAM), f"{where}.params[{i}]")
        values.append(_param_key(ftype, flags, raw))
    names = step.get("names")
    return (tuple(values), None if names is None else tuple(names))


def _step_key(step: Any, where: str = "request") -> tuple[Any, ...]:
    if isinstance(step, str):
        if step not in _BARE:
            raise PlainError(f"{where}: unknown step {step!r:.60}")
        return (step,)
    if not isinstance(step, dict):
        raise PlainError(f"{where}: expected a step name or a mapping")
    kinds = [k for k in step if k in _KINDS]
    if len(kinds) != 1:
        raise PlainError(f"{where}: expected exactly one of {', '.join(_KINDS)}")
    kind = kinds[0]
    value = step[kind]
    at = f"{where}.{kind}"
    if kind == "connect":
        _dict(value, at, ("user",))
        return ("connect",)
    if kind in _SQL_KINDS:
        parts: list[Any] = [kind, normalize_sql(_text_of(value, at))]
    elif kind == "set_option":
        parts = [kind, _int(value, at)]
    elif kind == "command":
        code = value if isinstance(value, int) else _command_code(value, at)
        payload = step.get("payload")
        return (kind, code, b"" if payload is None else bytes_of(payload, f"{where}.payload"))
    else:
        parts = [kind, _text_of(value, at)]
    if kind == "query" and "attributes" in step:
        parts.append(_params_key(_dict(step["attributes"], f"{where}.attributes"), where))
        parts.append(step.get("attribute_sets", 1))
    if kind == "execute":
        if "unparsed" in step:
            parts.append(bytes_of(step["unparsed"], f"{where}.unparsed"))
        else:
            parts.append(_params_key(step, where))
        parts.append(_int(step.get("flags", 0), where))
        parts.append(_int(step.get("iterations", 1), where))
    if kind == "fetch":
        parts.append(_int(step.get("rows", 0), where))
    return tuple(parts)


def _command_code(node: Any, where: str) -> int:
    if isinstance(node, str):
        try:
            return CommandCode[node].value
        except KeyError:
            pass
    raise PlainError(f"{where}: expected a command name or code, found {node!r:.60}")


_LITERAL = re.compile(r"'((?:[^'\\]|\\.|'')*)'")


_LOOSE_KINDS = ("uuid-", "time:", "jwt:")


def _typed_kind(text: str) -> str | None:
    """The kind of a UUID, a timestamp or a JWT; None for anything else."""
    if len(text) > 2048:
        return None
    token = kind_token(text)
    return token if token is not None and token.startswith(_LOOSE_KINDS) else None


def _loose_sql(sql: str) -> str:
    if "'" not in sql:
        return sql

    def typed(m: re.Match[str]) -> str:
        token = _typed_kind(m.group(1))
        return m.group() if token is None else f"'~{token}'"

    return _LITERAL.sub(typed, sql)


def _loosen(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """``key`` with UUIDs, timestamps and JWTs (literals in SQL text, parameters) reduced to
    their kind."""
    if key[0] not in _SQL_KINDS:
        return key
    out = [key[0], _loose_sql(key[1])]
    for part in key[2:]:
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], tuple):
            part = (tuple(loose_bytes(v, _LOOSE_KINDS) for v in part[0]), part[1])
        out.append(part)
    return tuple(out)


# -- which answers do not depend on the test ---------------------------------------------------

_REUSABLE_HEAD = re.compile(r"(SHOW|SET|USE|DESCRIBE|DESC|HELP)\b", re.IGNORECASE)
_READ_HEAD = re.compile(r"\(?\s*(SELECT|WITH)\b", re.IGNORECASE)
_WRITES = re.compile(
    r"\b(INSERT|UPDATE|DELETE|REPLACE|INTO|FOR\s+UPDATE|LOCK\s+IN|LAST_INSERT_ID|ROW_COUNT|"
    r"FOUND_ROWS|NEXTVAL|LASTVAL|NEXT\s+VALUE|GET_LOCK|RELEASE_LOCK|SLEEP|SETVAL)\b"
    r"|@@(?:SESSION\.)?(?:IDENTITY|LAST_INSERT_ID)\b|(?<![@\w])@(?!@)",
    re.IGNORECASE,
)
_CATALOG = re.compile(r"\b(information_schema|performance_schema|mysql|sys)\s*\.", re.IGNORECASE)
_FROM = re.compile(r"\bFROM\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`", re.DOTALL)


def _statements(text: str) -> list[str]:
    """The statements of a multi-statement text (``;`` outside quotes separates them)."""
    if ";" not in text:
        return [text]
    blanked = _QUOTED.sub(lambda m: "x" * len(m.group()), text)
    out, start = [], 0
    for pos, char in enumerate(blanked):
        if char == ";":
            out.append(text[start:pos].strip())
            start = pos + 1
    out.append(text[start:].strip())
    return [s for s in out if s]


@functools.lru_cache(maxsize=8192)
def is_reusable_sql(sql: str) -> bool:
    """Whether a statement's answer does not depend on the test that ran it.

    True for session settings and introspection (SET, SHOW, USE, DESCRIBE), for reads of the
    system schemas, and for SELECTs without FROM (``SELECT 1``, ``SELECT @@version``,
    ``SELECT DATABASE()``) that read nothing a test changes (``LAST_INSERT_ID()``,
    ``ROW_COUNT()``, user variables and sequences are not reusable).
    """
    return all(_reusable_one(part) for part in _statements(normalize_sql(sql)))


def _reusable_one(text: str) -> bool:
    if not text:
        return True
    if _REUSABLE_HEAD.match(text):
        return not re.match(r"SET\s+(SESSION\s+|GLOBAL\s+)?TRANSACTION\b", text, re.IGNORECASE)
    if not _READ_HEAD.match(text) or _WRITES.search(text):
        return False
    return bool(_CATALOG.search(text)) or not _FROM.search(text)


def _oneline(node: Any) -> str:
    """Stored text (SQL, a name) on one line, readable whatever bytes it holds."""
    try:
        text = _text_of(node, "text")
    except PlainError:
        return "?"
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())


def _show(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    try:
        raw = bytes_of(value)
    except PlainError:
        return "?"
    return "0x" + raw.hex() if len(raw) <= 16 else f"<{len(raw)} bytes>"


def _summary(step: Any) -> str:
    if isinstance(step, str):
        return step
    if "query" in step:
        text = _oneline(step["query"])
    elif "prepare" in step:
        text = f"prepare {_oneline(step['prepare'])}"
    elif "execute" in step:
        params = ", ".join(_show(p) for p in step.get("params", ()))
        text = f"{_oneline(step['execute'])} [{params}]"
    elif "fetch" in step:
        text = f"fetch {step.get('rows')} rows of {_oneline(step['fetch'])}"
    elif "reset_statement" in step:
        text = f"reset {_oneline(step['reset_statement'])}"
    elif "init_db" in step:
        text = f"use {_oneline(step['init_db'])}"
    elif "set_option" in step:
        text = f"set option {step['set_option']}"
    elif "change_user" in step:
        text = f"change user to {_oneline(step['change_user'])}"
    elif "connect" in step:
        text = f"connection start-up ({_oneline(step['connect'].get('user'))})"
    else:
        text = f"command {step.get('command')}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 3] + "..."


def request_for(step: Any, *, exact_only: bool = False) -> WireRequest:
    """The matchable request of a stored step (plain data).

    ``exact_only`` skips what only a miss or the store needs (the summary, the loose key and
    whether it is reusable): the replay server's fast path for the common case of a hit.
    """
    if not exact_only and type(step) is dict and len(step) == 1:
        sql = step.get("query")
        if type(sql) is str:
            # Applications send the same statements over and over: each text is keyed once.
            found = _query_requests.get(sql)
            if found is None:
                found = _request_for(step, exact_only=False)
                if len(_query_requests) >= _KEPT:
                    _query_requests.clear()
                _query_requests[sql] = found
            return found
    return _request_for(step, exact_only=exact_only)


_query_requests: dict[str, WireRequest] = {}


def _request_for(step: Any, *, exact_only: bool) -> WireRequest:
    try:
        key = _step_key(step)
    except PlainError:
        raise
    except (ValueError, OverflowError, TypeError, struct.error) as exc:
        raise PlainError(f"request: {exc}") from None
    if exact_only:
        return WireRequest(summary="", data=step, key=key)
    loose = _loosen(key)
    kind = key[0]
    # Prepares, pings, settings and start-ups answer the same in any test.
    reusable = is_reusable_sql(key[1]) if kind in ("query", "execute") else kind != "fetch"
    return WireRequest(
        summary=_summary(step),
        data=step,
        key=key,
        reusable=reusable,
        loose_key=None if loose == key else loose,
    )


# -- request noise (``deps.NAME.request_noise``) -----------------------------------------------

NOISE = "<noise>"

# The values of a statement's text, with what must not be taken for one: identifiers and words
# (a digit in ``t1`` is not a number), quoted identifiers, and parameter markers.
_SQL_VALUE = re.compile(
    r"(?P<word>`(?:[^`]|``)*`|[A-Za-z_$][\w$]*)"
    r"|(?P<value>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\""
    r"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)",
    re.DOTALL,
)


@functools.lru_cache(maxsize=64)
def _noise_prefixes(rules: NoiseRules) -> tuple[tuple[str, frozenset[int]], ...]:
    return tuple((normalize_sql(sql).casefold(), frozenset(numbers)) for sql, numbers in rules)


def with_request_noise(req: WireRequest, rules: NoiseRules) -> WireRequest:
    """``req`` matched without the values that ``rules`` name.

    A rule is (statement prefix, 1-based positions): a statement whose normalized SQL starts
    with the normalized prefix, in any case, ignores the values at those positions. For a
    prepared statement's execution they are its parameters. For a statement sent as text (which
    is how PyMySQL and mysqlclient send every statement, its parameters written into the text)
    they are the values in the text, counted from its start: quoted strings, numbers and NULL.
    The stored data and the summary are unchanged; only the keys differ.
    """
    key = req.key
    if not rules or type(key) is not tuple or len(key) < 2 or key[0] not in ("query", "execute"):
        return req
    sql = key[1]
    if type(sql) is not str:
        return req
    start = sql.casefold()
    positions: set[int] = set()
    for prefix, numbers in _noise_prefixes(rules):
        if start.startswith(prefix):
            positions |= numbers
    if not positions:
        return req
    masked = _masked(key, positions)
    loose = req.loose_key
    if type(loose) is tuple and loose[:1] == key[:1]:
        loose = _masked(loose, positions)
    if masked == key and loose == req.loose_key:
        return req
    return WireRequest(
        summary=req.summary, data=req.data, key=masked, reusable=req.reusable, loose_key=loose
    )


def _masked(key: tuple[Any, ...], positions: set[int]) -> tuple[Any, ...]:
    """A ``query`` or ``execute`` key with the values at ``positions`` (from 1) masked."""
    if key[0] == "query":
        return (key[0], _masked_text(key[1], positions), *key[2:])
    part = key[2] if len(key) > 2 else None
    if not (isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], tuple)):
        return key  # parameters the proxy could not parse: matched as bytes
    values = tuple(NOISE if i + 1 in positions else v for i, v in enumerate(part[0]))
    return (*key[:2], (values, part[1]), *key[3:])


def _masked_text(sql: str, positions: set[int]) -> str:
    out: list[str] = []
    at = 0
    count = 0
    for match in _SQL_VALUE.finditer(sql):
        token = match.group()
        if match.lastgroup == "word" and token.casefold() != "null":
            continue
        count += 1
        if count in positions:
            out.append(sql[at : match.start()])
            out.append(NOISE)
            at = match.end()
    out.append(sql[at:])
    return "".join(out)


CODEC = WireCodec(
    name="mysql",
    request=request_for,
    check_response=_check_response,
    with_noise=with_request_noise,
)


# -- tracking a connection ---------------------------------------------------------------------


_SERVER_KINDS = frozenset(ServerMessage.__args__)


@dataclass(slots=True)
class Exchange:
    """A completed command: the request and every packet of the server's reply, in order."""

    request: WireRequest
    packets: list[Packet]
    started: float
    ended: float
    tag: object = None  # what the caller's ``new_tag`` gave when the command was sent
    client: dict[str, Any] | None = None  # a start-up's: the login's capabilities (client_doc)

    @property
    def messages(self) -> list[ServerMessage]:
        out: list[ServerMessage] = []
        for p in self.packets:
            m = p.message
            if type(m) in _SERVER_KINDS or isinstance(m, ServerMessage):
                out.append(cast(ServerMessage, m))
        return out

    def response_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"messages": messages_doc(self.messages)}
        if self.client is not None:
            data["client"] = self.client
        return data


@dataclass(slots=True)
class _Open:
    message: ClientMessage
    step: Any
    started: float
    tag: object
    packets: list[Packet] = field(default_factory=list)


_NO_REPLY = (StmtClose, StmtSendLongData, Quit)
_NOT_STORED = (AuthSwitchResponse, ClientAuthData, LocalInfileData)
_AUTH = (AuthSwitchRequest, AuthMoreData)
_RESULT_KINDS = frozenset({TextRow, ColumnDefinition, ColumnCount, EofPacket, OkPacket})


class Tracker:
    """Pairs one connection's commands with their replies (sans-I/O).

    Feed every event of the command phase from both parsers of one ``Conversation``, in the
    order the parsers give them; ``server`` returns the exchanges it completed. ``new_tag`` is
    called when a command is sent; its result is the exchange's ``tag``.
    """

    def __init__(self, new_tag: Callable[[], object] | None = None) -> None:
        self._new_tag = new_tag
        self.statements = Statements()
        self._open: deque[_Open] = deque()

    def client(self, event: Packet, now: float) -> None:
        m = event.message
        if type(m) is Query:  # the common case, which none of the checks below concern
            step = step_for(m, self.statements)
        else:
            if not isinstance(m, ClientMessage):
                raise ProtocolError(f"{type(m).__name__} is not sent by a client")
            if isinstance(m, _NOT_STORED):
                return  # credentials (COM_CHANGE_USER) or a local file: never stored
            self.statements.sent(m)
            if isinstance(m, _NO_REPLY):
                return
            step = step_for(m, self.statements)
            if step is None:
                raise ProtocolError(f"{type(m).__name__} is not a command of the command phase")
        tag = self._new_tag() if self._new_tag is not None else None
        self._open.append(_Open(m, step, now, tag))

    def server(self, event: Packet | EndOfResponse, now: float) -> list[Exchange]:
        if not self._open:
            raise ProtocolError("a server packet answers no command that was tracked")
        head = self._open[0]
        if isinstance(event, Packet):
            if type(event.message) in _RESULT_KINDS:  # the common case, as below
                head.packets.append(event)
                return []
            if not isinstance(event.message, _AUTH):
                head.packets.append(event)
            if isinstance(event.message, PrepareOk) and isinstance(head.message, StmtPrepare):
                self.statements.prepared(event.message.statement_id, head.message.sql)
            elif isinstance(event.message, ErrPacket) and isinstance(head.message, StmtPrepare):
                self.statements.failed()
            return []
        if event.request is not head.message:
            raise ProtocolError("a reply ended for a command other than the oldest one")
        self._open.popleft()
        return [Exchange(request_for(head.step), head.packets, head.started, now, head.tag)]
