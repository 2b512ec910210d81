"""MySQL/MariaDB messages: one frozen dataclass per payload kind, its wire form, and helpers.

Every ``decode_*`` function reads one payload and keeps everything needed to write the same
bytes again; ``encode_payload`` writes them. Where the wire form depends on negotiated
capabilities (OK packets with CLIENT_SESSION_TRACK), ``encode_payload`` takes them. Forms the
codec could not reproduce byte for byte (a length-encoded integer in a longer form than needed,
padding bits set in a NULL bitmap) are rejected with ``ProtocolError`` rather than normalised.

Text is decoded as UTF-8 with ``surrogateescape``, so any byte string survives the round trip.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wiretape.errors import ProtocolError
from wiretape.protocols.mysql.packets import Reader, lenenc_bytes, lenenc_int

__all__ = [
    "AuthMoreData",
    "AuthSwitchRequest",
    "AuthSwitchResponse",
    "BinaryRow",
    "Capability",
    "ClientAuthData",
    "ClientMessage",
    "ColumnCount",
    "ColumnDefinition",
    "Command",
    "CommandCode",
    "EofPacket",
    "ErrPacket",
    "FieldType",
    "GenericResponse",
    "HandshakeResponse41",
    "HandshakeV10",
    "InitDb",
    "LocalInfileData",
    "LocalInfileRequest",
    "MariaDbCapability",
    "Message",
    "OkPacket",
    "Param",
    "Ping",
    "PrepareOk",
    "Query",
    "QueryAttributes",
    "Quit",
    "ServerMessage",
    "ServerStatus",
    "SetOption",
    "SslRequest",
    "StmtClose",
    "StmtExecute",
    "StmtFetch",
    "StmtPrepare",
    "StmtReset",
    "StmtSendLongData",
    "TextRow",
    "decode_binary_row",
    "decode_binary_value",
    "decode_connect_attrs",
    "decode_session_state",
    "encode_binary_row",
    "encode_payload",
    "normalize_sql",
    "split_binary_row",
]


class Capability(enum.IntFlag):
    LONG_PASSWORD = 1  # MariaDB calls it CLIENT_MYSQL: unset means MariaDB extensions apply
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25
    ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTHENTICATION = 1 << 28
    CAPABILITY_EXTENSION = 1 << 29
    SSL_VERIFY_SERVER_CERT = 1 << 30
    REMEMBER_OPTIONS = 1 << 31


class MariaDbCapability(enum.IntFlag):
    """MariaDB's extended capabilities, carried in the reserved bytes of both handshakes."""

    PROGRESS = 1
    COM_MULTI = 1 << 1
    STMT_BULK_OPERATIONS = 1 << 2
    EXTENDED_METADATA = 1 << 3
    CACHE_METADATA = 1 << 4


class ServerStatus(enum.IntFlag):
    IN_TRANS = 1
    AUTOCOMMIT = 1 << 1
    MORE_RESULTS_EXISTS = 1 << 3
    QUERY_NO_GOOD_INDEX_USED = 1 << 4
    QUERY_NO_INDEX_USED = 1 << 5
    CURSOR_EXISTS = 1 << 6
    LAST_ROW_SENT = 1 << 7
    DB_DROPPED = 1 << 8
    NO_BACKSLASH_ESCAPES = 1 << 9
    METADATA_CHANGED = 1 << 10
    QUERY_WAS_SLOW = 1 << 11
    PS_OUT_PARAMS = 1 << 12
    IN_TRANS_READONLY = 1 << 13
    SESSION_STATE_CHANGED = 1 << 14


class CommandCode(enum.IntEnum):
    SLEEP = 0x00
    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    FIELD_LIST = 0x04
    STATISTICS = 0x09
    PING = 0x0E
    CHANGE_USER = 0x11
    STMT_PREPARE = 0x16
    STMT_EXECUTE = 0x17
    STMT_SEND_LONG_DATA = 0x18
    STMT_CLOSE = 0x19
    STMT_RESET = 0x1A
    SET_OPTION = 0x1B
    STMT_FETCH = 0x1C
    RESET_CONNECTION = 0x1F


class FieldType(enum.IntEnum):
    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    TYPED_ARRAY = 20
    VECTOR = 242
    INVALID = 243
    BOOL = 244
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


# Width of a binary-protocol value by type: a fixed size, or -1 (one length byte, temporal
# types) or -2 (length-encoded string). Types missing here cannot be framed.
_FIXED_WIDTH = {
    FieldType.NULL: 0,
    FieldType.TINY: 1,
    FieldType.SHORT: 2,
    FieldType.YEAR: 2,
    FieldType.LONG: 4,
    FieldType.INT24: 4,
    FieldType.FLOAT: 4,
    FieldType.LONGLONG: 8,
    FieldType.DOUBLE: 8,
}
_TEMPORAL = frozenset(
    {FieldType.DATE, FieldType.DATETIME, FieldType.TIMESTAMP, FieldType.TIME, FieldType.NEWDATE}
)
_STRING_LIKE = frozenset(
    {
        FieldType.DECIMAL,
        FieldType.NEWDECIMAL,
        FieldType.VARCHAR,
        FieldType.BIT,
        FieldType.ENUM,
        FieldType.SET,
        FieldType.TINY_BLOB,
        FieldType.MEDIUM_BLOB,
        FieldType.LONG_BLOB,
        FieldType.BLOB,
        FieldType.VAR_STRING,
        FieldType.STRING,
        FieldType.GEOMETRY,
        FieldType.JSON,
        FieldType.VECTOR,
    }
)
# The flags tested on every packet, as plain ints: ``int & IntFlag`` builds an enum member
# through IntFlag.__rand__, several times slower than int arithmetic.
SESSION_TRACK = int(Capability.SESSION_TRACK)
_CLIENT_MYSQL = int(Capability.LONG_PASSWORD)
DEPRECATE_EOF = int(Capability.DEPRECATE_EOF)
OPTIONAL_METADATA = int(Capability.OPTIONAL_RESULTSET_METADATA)
QUERY_ATTRIBUTES = int(Capability.QUERY_ATTRIBUTES)
SESSION_STATE_CHANGED = int(ServerStatus.SESSION_STATE_CHANGED)
MORE_RESULTS_EXISTS = int(ServerStatus.MORE_RESULTS_EXISTS)
CURSOR_EXISTS = int(ServerStatus.CURSOR_EXISTS)
EXTENDED_METADATA = int(MariaDbCapability.EXTENDED_METADATA)
UNSIGNED_FLAG = 0x80  # in the flag byte of a parameter type
_UNSIGNED_COLUMN = 0x20  # in the flags of a column definition
STMT_PARAMETER_COUNT_AVAILABLE = 0x08  # COM_STMT_EXECUTE flag


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _raw(text: str, field: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ProtocolError(
            f"cannot encode {field} {text[:80]!r}: it holds a lone surrogate that is not an "
            "escaped byte; fix the recorded text"
        ) from None


def _nul_raw(text: str, field: str) -> bytes:
    data = _raw(text, field)
    if b"\x00" in data:
        raise ProtocolError(f"cannot encode {field} {text[:80]!r}: it contains a NUL byte")
    return data + b"\x00"


def _uint(value: int, size: int, field: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise ProtocolError(f"cannot encode {field}={value}: it must fit in {size} bytes")
    return value.to_bytes(size, "little")


# -- server messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeV10:
    """The server's greeting. ``scramble`` is the whole nonce without its terminating NUL."""

    server_version: str
    connection_id: int
    scramble1: bytes  # auth-plugin-data-part-1, 8 bytes
    capabilities: int
    charset: int
    status: int
    auth_data_len: int
    scramble2: bytes  # auth-plugin-data-part-2 as sent, usually with a trailing NUL
    auth_plugin_name: str | None
    reserved: bytes = bytes(10)  # MariaDB puts its extended capabilities in the last 4

    @property
    def scramble(self) -> bytes:
        return self.scramble1 + self.scramble2.rstrip(b"\x00")

    @property
    def mariadb_capabilities(self) -> int:
        if self.capabilities & _CLIENT_MYSQL:
            return 0
        return int.from_bytes(self.reserved[6:10], "little")


@dataclass(frozen=True, slots=True)
class OkPacket:
    """OK. ``info`` is None when CLIENT_SESSION_TRACK is on and the packet ends at warnings."""

    affected_rows: int = 0
    last_insert_id: int = 0
    status: int = 0
    warnings: int = 0
    info: str | None = ""
    session_state: bytes | None = None  # raw; see decode_session_state()
    header: int = 0x00  # 0xFE when it ends a result set under CLIENT_DEPRECATE_EOF


@dataclass(frozen=True, slots=True)
class ErrPacket:
    code: int
    message: str
    sql_state: str | None = "HY000"


@dataclass(frozen=True, slots=True)
class EofPacket:
    warnings: int = 0
    status: int = 0


@dataclass(frozen=True, slots=True)
class AuthSwitchRequest:
    plugin_name: str
    plugin_data: bytes


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    """Extra auth data; for caching_sha2_password b"\\x03" is fast-auth success and b"\\x04"
    asks for the full password, and a PEM public key is sent this way too."""

    data: bytes

    @property
    def fast_auth_success(self) -> bool:
        return self.data == b"\x03"

    @property
    def full_auth_required(self) -> bool:
        return self.data == b"\x04"


@dataclass(frozen=True, slots=True)
class LocalInfileRequest:
    filename: str


@dataclass(frozen=True, slots=True)
class ColumnCount:
    """First packet of a result set; ``metadata_follows`` only with OPTIONAL_RESULTSET_METADATA."""

    count: int
    metadata_follows: int | None = None


@dataclass(frozen=True, slots=True)
class ColumnDefinition:
    """ColumnDefinition41. ``extended_info`` only with MariaDB's extended metadata."""

    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    charset: int
    length: int
    type: int
    flags: int = 0
    decimals: int = 0
    catalog: str = "def"
    extended_info: bytes | None = None


@dataclass(frozen=True, slots=True)
class TextRow:
    values: tuple[bytes | None, ...]


@dataclass(frozen=True, slots=True)
class BinaryRow:
    """A binary-protocol row kept as sent; decode it with ``decode_binary_row(columns, row)``."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class PrepareOk:
    statement_id: int
    num_columns: int
    num_params: int
    warnings: int = 0
    metadata_follows: int | None = None


@dataclass(frozen=True, slots=True)
class GenericResponse:
    """The reply to a command this codec does not model, kept as it was sent."""

    payload: bytes


# -- client messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SslRequest:
    """The short handshake response that asks to continue in TLS."""

    capabilities: int
    max_packet_size: int
    charset: int
    reserved: bytes = bytes(23)


@dataclass(frozen=True, slots=True)
class HandshakeResponse41:
    capabilities: int
    max_packet_size: int
    charset: int
    user: str
    auth_response: bytes
    database: str | None = None
    auth_plugin_name: str | None = None
    connect_attrs_raw: bytes | None = None  # see decode_connect_attrs()
    zstd_level: int | None = None
    reserved: bytes = bytes(23)  # MariaDB puts its extended capabilities in the last 4

    @property
    def connect_attrs(self) -> tuple[tuple[str, str], ...]:
        return decode_connect_attrs(self.connect_attrs_raw or b"")

    @property
    def mariadb_capabilities(self) -> int:
        return int.from_bytes(self.reserved[19:23], "little")


@dataclass(frozen=True, slots=True)
class AuthSwitchResponse:
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientAuthData:
    """What the client sends after AuthMoreData (a public-key request, a password...)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LocalInfileData:
    """A piece of the file asked for by LocalInfileRequest; empty data ends the file."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Param:
    """A bound parameter: binary-protocol ``value`` without its length prefix; None is NULL,
    unless ``long_data``: the value was sent before, with COM_STMT_SEND_LONG_DATA."""

    type: int
    value: bytes | None
    flags: int = 0  # 0x80: unsigned
    name: str | None = None  # query attribute name (CLIENT_QUERY_ATTRIBUTES)
    long_data: bool = False


@dataclass(frozen=True, slots=True)
class QueryAttributes:
    params: tuple[Param, ...] = ()
    set_count: int = 1


@dataclass(frozen=True, slots=True)
class Query:
    """COM_QUERY. ``attributes`` is present exactly when CLIENT_QUERY_ATTRIBUTES is on."""

    sql: str
    attributes: QueryAttributes | None = None


@dataclass(frozen=True, slots=True)
class StmtPrepare:
    sql: str


@dataclass(frozen=True, slots=True)
class StmtExecute:
    """COM_STMT_EXECUTE.

    ``params`` are decoded with the parameter count from the prepare (and, when
    ``new_params_bound`` is false, the types bound by the previous execute). ``count_sent``
    says the packet carries a parameter_count (CLIENT_QUERY_ATTRIBUTES). ``unparsed`` holds the
    parameter section as sent when the statement was unknown to the conversation.
    """

    statement_id: int
    flags: int = 0
    iteration_count: int = 1
    params: tuple[Param, ...] = ()
    new_params_bound: bool = True
    count_sent: bool = False
    unparsed: bytes | None = None


@dataclass(frozen=True, slots=True)
class StmtSendLongData:
    statement_id: int
    param_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StmtClose:
    statement_id: int


@dataclass(frozen=True, slots=True)
class StmtReset:
    statement_id: int


@dataclass(frozen=True, slots=True)
class StmtFetch:
    statement_id: int
    num_rows: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class InitDb:
    schema: str


@dataclass(frozen=True, slots=True)
class SetOption:
    option: int


@dataclass(frozen=True, slots=True)
class Command:
    """A command this codec does not model, with its payload after the command byte."""

    code: int
    payload: bytes


ServerMessage = (
    HandshakeV10
    | OkPacket
    | ErrPacket
    | EofPacket
    | AuthSwitchRequest
    | AuthMoreData
    | LocalInfileRequest
    | ColumnCount
    | ColumnDefinition
    | TextRow
    | BinaryRow
    | PrepareOk
    | GenericResponse
)
ClientMessage = (
    SslRequest
    | HandshakeResponse41
    | AuthSwitchResponse
    | ClientAuthData
    | LocalInfileData
    | Query
    | StmtPrepare
    | StmtExecute
    | StmtSendLongData
    | StmtClose
    | StmtReset
    | StmtFetch
    | Ping
    | Quit
    | InitDb
    | SetOption
    | Command
)
Message = ServerMessage | ClientMessage


# -- decoding: server --------------------------------------------------------------------------


def decode_handshake(r: Reader) -> HandshakeV10:
    version = r.u8("protocol version")
    if version != 10:
        raise r.error(f"protocol version {version} is not supported (only 10 is)", 0)
    server_version = _text(r.nul("server version"))
    connection_id = r.uint(4, "connection id")
    scramble1 = r.fixed(8, "auth-plugin-data-part-1")
    if r.u8("filler") != 0:
        raise r.error("the filler after auth-plugin-data-part-1 is not 0", r.pos - 1)
    low = r.uint(2, "capability flags")
    if r.at_end():
        raise r.error("short pre-4.1 greeting without character set and status; not supported")
    charset = r.u8("character set")
    status = r.uint(2, "status flags")
    caps = low | r.uint(2, "upper capability flags") << 16
    auth_len = r.u8("auth-plugin-data length")
    reserved = r.fixed(10, "reserved bytes")
    scramble2 = b""
    if caps & Capability.SECURE_CONNECTION:
        scramble2 = r.fixed(max(13, auth_len - 8), "auth-plugin-data-part-2")
    plugin = _text(r.nul("auth plugin name")) if caps & Capability.PLUGIN_AUTH else None
    r.end()
    return HandshakeV10(
        server_version,
        connection_id,
        scramble1,
        caps,
        charset,
        status,
        auth_len,
        scramble2,
        plugin,
        reserved,
    )


def decode_ok(r: Reader, capabilities: int) -> OkPacket:
    header = r.u8("header")
    affected = r.lenenc("affected rows")
    last_id = r.lenenc("last insert id")
    status = r.uint(2, "status flags")
    warnings = r.uint(2, "warning count")
    info: str | None
    state = None
    if capabilities & SESSION_TRACK:
        info = None
        if not r.at_end():
            info = _text(r.lenenc_bytes("info"))
            if status & SESSION_STATE_CHANGED:
                state = r.lenenc_bytes("session state info")
        r.end()
    else:
        info = _text(r.rest())
    return OkPacket(affected, last_id, status, warnings, info, state, header)


def decode_err(r: Reader) -> ErrPacket:
    r.u8("header")
    code = r.uint(2, "error code")
    state = None
    if not r.at_end() and r.peek() == 0x23:  # '#'
        r.u8()
        state = r.fixed(5, "SQL state").decode("latin-1")
    return ErrPacket(code, _text(r.rest()), state)


def decode_eof(r: Reader) -> EofPacket:
    r.u8("header")
    warnings = r.uint(2, "warning count")
    status = r.uint(2, "status flags")
    r.end()
    return EofPacket(warnings, status)


def decode_auth_switch(r: Reader) -> AuthSwitchRequest:
    r.u8("header")
    if r.at_end():
        raise r.error("old-style auth switch (a lone 0xFE) is not supported")
    name = _text(r.nul("auth plugin name"))
    return AuthSwitchRequest(name, r.rest())


def decode_column_count(r: Reader, capabilities: int) -> ColumnCount:
    count = r.lenenc("column count")
    if count == 0:
        raise r.error("a result set with 0 columns", 0)
    follows = None
    if capabilities & OPTIONAL_METADATA:
        follows = r.u8("metadata-follows flag")
    r.end()
    return ColumnCount(count, follows)


def decode_column(r: Reader, extended: bool) -> ColumnDefinition:
    catalog = _text(r.lenenc_bytes("catalog"))
    schema = _text(r.lenenc_bytes("schema"))
    table = _text(r.lenenc_bytes("table"))
    org_table = _text(r.lenenc_bytes("org_table"))
    name = _text(r.lenenc_bytes("name"))
    org_name = _text(r.lenenc_bytes("org_name"))
    ext = r.lenenc_bytes("extended type info") if extended else None
    at = r.pos
    if r.lenenc("length of fixed fields") != 0x0C:
        raise r.error("the length of the fixed fields is not 12", at)
    charset = r.uint(2, "character set")
    length = r.uint(4, "column length")
    ftype = r.u8("column type")
    flags = r.uint(2, "column flags")
    decimals = r.u8("decimals")
    if r.fixed(2, "filler") != b"\x00\x00":
        raise r.error("the filler after decimals is not zero", r.pos - 2)
    r.end()
    return ColumnDefinition(
        schema, table, org_table, name, org_name, charset, length, ftype, flags, decimals,
        catalog, ext,
    )  # fmt: skip


def decode_text_row(r: Reader, columns: int) -> TextRow:
    values: list[bytes | None] = []
    for i in range(columns):
        if r.peek() == 0xFB:
            r.u8()
            values.append(None)
        else:
            values.append(r.lenenc_bytes(f"value of column {i + 1}"))
    r.end()
    return TextRow(tuple(values))


def decode_prepare_ok(r: Reader) -> PrepareOk:
    r.u8("header")
    stmt = r.uint(4, "statement id")
    columns = r.uint(2, "column count")
    params = r.uint(2, "parameter count")
    if r.u8("reserved byte") != 0:
        raise r.error("the reserved byte is not 0", r.pos - 1)
    warnings = r.uint(2, "warning count")
    follows = None if r.at_end() else r.u8("metadata-follows flag")
    r.end()
    return PrepareOk(stmt, columns, params, warnings, follows)


# -- decoding: client --------------------------------------------------------------------------


def decode_login(r: Reader) -> SslRequest | HandshakeResponse41:
    caps = r.uint(4, "capability flags")
    if not caps & Capability.PROTOCOL_41:
        raise r.error("pre-4.1 handshake response (HandshakeResponse320) is not supported", 0)
    max_packet = r.uint(4, "max packet size")
    charset = r.u8("character set")
    reserved = r.fixed(23, "reserved bytes")
    if r.at_end() and caps & Capability.SSL:
        return SslRequest(caps, max_packet, charset, reserved)
    user = _text(r.nul("user name"))
    if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth = r.lenenc_bytes("auth response")
    elif caps & Capability.SECURE_CONNECTION:
        auth = r.fixed(r.u8("auth response length"), "auth response")
    else:
        auth = r.nul("auth response")
    db = _text(r.nul("database")) if caps & Capability.CONNECT_WITH_DB else None
    plugin = _text(r.nul("auth plugin name")) if caps & Capability.PLUGIN_AUTH else None
    attrs = r.lenenc_bytes("connection attributes") if caps & Capability.CONNECT_ATTRS else None
    zstd = r.u8("zstd level") if caps & Capability.ZSTD_COMPRESSION_ALGORITHM else None
    r.end()
    return HandshakeResponse41(
        caps, max_packet, charset, user, auth, db, plugin, attrs, zstd, reserved
    )


def value_width(ftype: int) -> int:
    """Binary value framing for a type: bytes, -1 (1-byte length) or -2 (length-encoded)."""
    if ftype in _FIXED_WIDTH:
        return _FIXED_WIDTH[FieldType(ftype)]
    if ftype in _TEMPORAL:
        return -1
    if ftype in _STRING_LIKE:
        return -2
    raise ProtocolError(f"binary values of field type {ftype} cannot be framed (unknown type)")


def _read_value(r: Reader, ftype: int, field: str) -> bytes:
    at = r.pos
    try:
        width = value_width(ftype)
    except ProtocolError as exc:
        raise r.error(f"{field}: {exc.message}", at) from None
    if width >= 0:
        return r.fixed(width, field)
    if width == -1:
        return r.fixed(r.u8(field), field)
    return r.lenenc_bytes(field)


def _write_value(ftype: int, value: bytes) -> bytes:
    width = value_width(ftype)
    if width >= 0:
        if len(value) != width:
            raise ProtocolError(
                f"cannot encode a {len(value)}-byte value of field type {ftype}: "
                f"it takes {width} bytes"
            )
        return value
    if width == -1:
        if len(value) > 255:
            raise ProtocolError(f"cannot encode a temporal value of {len(value)} bytes (max 255)")
        return bytes((len(value),)) + value
    return lenenc_bytes(value)


def _read_bitmap(r: Reader, count: int, offset: int, field: str) -> list[bool]:
    start = r.pos
    bitmap = r.fixed((count + offset + 7) // 8, field)
    bits = int.from_bytes(bitmap, "little")
    if bits >> (count + offset) or bits & ((1 << offset) - 1):
        raise r.error(f"{field} has bits set outside its {count} entries", start)
    return [bool(bits >> (i + offset) & 1) for i in range(count)]


def _write_bitmap(nulls: list[bool], offset: int) -> bytes:
    bits = sum(1 << (i + offset) for i, null in enumerate(nulls) if null)
    return bits.to_bytes((len(nulls) + offset + 7) // 8, "little")


def _read_params(
    r: Reader,
    count: int,
    named: bool,
    types: tuple[tuple[int, int], ...] | None,
    long_data: frozenset[int] = frozenset(),
) -> tuple[tuple[Param, ...], bool]:
    """NULL bitmap, bound flag, types (and names), values. ``types`` are the last bound ones;
    the parameters numbered in ``long_data`` (from 0) were sent before and have no value."""
    nulls = _read_bitmap(r, count, 0, "NULL bitmap")
    at = r.pos
    bound = r.u8("new-params-bound flag")
    if bound > 1:
        raise r.error(f"new-params-bound flag is {bound}, not 0 or 1", at)
    names: list[str | None] = [None] * count
    if bound:
        bound_types = []
        for i in range(count):
            bound_types.append((r.u8(f"type of parameter {i + 1}"), r.u8("parameter flags")))
            if named:
                names[i] = _text(r.lenenc_bytes(f"name of parameter {i + 1}"))
        types = tuple(bound_types)
    elif types is None or len(types) != count:
        raise r.error("parameters are not re-bound and their types are not known", at)
    params = []
    for i, ((ftype, flags), null, name) in enumerate(zip(types, nulls, names, strict=True)):
        if not null and i in long_data:
            params.append(Param(ftype, None, flags, name, True))
            continue
        value = None if null else _read_value(r, ftype, f"value of parameter {i + 1}")
        params.append(Param(ftype, value, flags, name))
    return tuple(params), bool(bound)


def _write_params(params: tuple[Param, ...], bound: bool, named: bool) -> bytes:
    out = bytearray(_write_bitmap([p.value is None and not p.long_data for p in params], 0))
    out.append(1 if bound else 0)
    if bound:
        for p in params:
            out += _uint(p.type, 1, "parameter type") + _uint(p.flags, 1, "parameter flags")
            if named:
                if p.name is None:
                    raise ProtocolError("cannot encode a query attribute without a name")
                out += lenenc_bytes(_raw(p.name, "parameter name"))
            elif p.name is not None:
                raise ProtocolError("parameter names are only sent with query attributes")
    for p in params:
        if p.long_data and p.value is not None:
            raise ProtocolError("a parameter sent as long data has no value in the execute")
        if p.value is not None:
            out += _write_value(p.type, p.value)
    return bytes(out)


def decode_query(r: Reader, capabilities: int) -> Query:
    r.u8("command")
    attributes = None
    if capabilities & QUERY_ATTRIBUTES:
        count = r.lenenc("parameter count")
        set_count = r.lenenc("parameter set count")
        params: tuple[Param, ...] = ()
        if count:
            at = r.pos
            params, bound = _read_params(r, count, True, None)
            if not bound:
                raise r.error("query attributes are sent without their types", at)
        attributes = QueryAttributes(params, set_count)
    return Query(_text(r.rest()), attributes)


def decode_execute(
    r: Reader,
    capabilities: int,
    num_params: int | None,
    types: tuple[tuple[int, int], ...] | None,
    long_data: frozenset[int] = frozenset(),
) -> StmtExecute:
    """``num_params`` None means the statement is unknown: the parameters stay unparsed.
    ``long_data``: the parameters (numbered from 0) sent with COM_STMT_SEND_LONG_DATA."""
    r.u8("command")
    stmt = r.uint(4, "statement id")
    flags = r.u8("flags")
    iterations = r.uint(4, "iteration count")
    if num_params is None:
        return StmtExecute(stmt, flags, iterations, unparsed=r.rest())
    named = bool(capabilities & QUERY_ATTRIBUTES)
    params: tuple[Param, ...] = ()
    bound = True
    count_sent = False
    if num_params > 0 or (named and flags & STMT_PARAMETER_COUNT_AVAILABLE):
        count = num_params
        if named:
            count = r.lenenc("parameter count")
            count_sent = True
        if count > 0:
            params, bound = _read_params(r, count, named, types, long_data)
    r.end()
    return StmtExecute(stmt, flags, iterations, params, bound, count_sent)


def _u32_command(r: Reader, cls: type[StmtClose] | type[StmtReset]) -> StmtClose | StmtReset:
    r.u8("command")
    stmt = r.uint(4, "statement id")
    r.end()
    return cls(stmt)


def decode_command(r: Reader, capabilities: int) -> ClientMessage:
    """A command other than COM_STMT_EXECUTE (which needs the statement; see decode_execute)."""
    code = r.peek()
    if code == CommandCode.QUERY:
        return decode_query(r, capabilities)
    if code == CommandCode.STMT_PREPARE:
        r.u8()
        return StmtPrepare(_text(r.rest()))
    if code in (CommandCode.PING, CommandCode.QUIT):
        r.u8()
        r.end()
        return Ping() if code == CommandCode.PING else Quit()
    if code == CommandCode.INIT_DB:
        r.u8()
        return InitDb(_text(r.rest()))
    if code == CommandCode.STMT_CLOSE:
        return _u32_command(r, StmtClose)
    if code == CommandCode.STMT_RESET:
        return _u32_command(r, StmtReset)
    if code == CommandCode.STMT_SEND_LONG_DATA:
        r.u8()
        stmt = r.uint(4, "statement id")
        return StmtSendLongData(stmt, r.uint(2, "parameter id"), r.rest())
    if code == CommandCode.STMT_FETCH:
        r.u8()
        stmt = r.uint(4, "statement id")
        rows = r.uint(4, "row count")
        r.end()
        return StmtFetch(stmt, rows)
    if code == CommandCode.SET_OPTION:
        r.u8()
        option = r.uint(2, "option")
        r.end()
        return SetOption(option)
    r.u8()
    return Command(code, r.rest())


# -- encoding ----------------------------------------------------------------------------------


def _enc_handshake(m: HandshakeV10, caps: int) -> bytes:
    if len(m.scramble1) != 8 or len(m.reserved) != 10:
        raise ProtocolError("cannot encode HandshakeV10: scramble1 takes 8 bytes, reserved 10")
    if m.capabilities & Capability.SECURE_CONNECTION:
        if len(m.scramble2) != max(13, m.auth_data_len - 8):
            raise ProtocolError(
                f"cannot encode HandshakeV10: scramble2 must be {max(13, m.auth_data_len - 8)} "
                f"bytes for auth_data_len={m.auth_data_len}"
            )
    elif m.scramble2:
        raise ProtocolError("cannot encode HandshakeV10: scramble2 needs SECURE_CONNECTION")
    if (m.auth_plugin_name is None) == bool(m.capabilities & Capability.PLUGIN_AUTH):
        raise ProtocolError("cannot encode HandshakeV10: a plugin name goes with PLUGIN_AUTH")
    out = b"\x0a" + _nul_raw(m.server_version, "server version")
    out += _uint(m.connection_id, 4, "connection id") + m.scramble1 + b"\x00"
    out += _uint(m.capabilities & 0xFFFF, 2, "capabilities") + _uint(m.charset, 1, "charset")
    out += _uint(m.status, 2, "status") + _uint(m.capabilities >> 16, 2, "capabilities")
    out += _uint(m.auth_data_len, 1, "auth_data_len") + m.reserved + m.scramble2
    if m.auth_plugin_name is not None:
        out += _nul_raw(m.auth_plugin_name, "auth plugin name")
    return out


def _enc_ok(m: OkPacket, caps: int) -> bytes:
    if m.header not in (0x00, 0xFE):
        raise ProtocolError(f"cannot encode an OK packet with header 0x{m.header:02x}")
    out = bytes((m.header,)) + lenenc_int(m.affected_rows) + lenenc_int(m.last_insert_id)
    out += _uint(m.status, 2, "status") + _uint(m.warnings, 2, "warnings")
    if caps & SESSION_TRACK:
        if m.info is None:
            if m.session_state is not None:
                raise ProtocolError("cannot encode an OK packet with session state but no info")
            return out
        out += lenenc_bytes(_raw(m.info, "info"))
        if (m.session_state is not None) != bool(m.status & SESSION_STATE_CHANGED):
            raise ProtocolError(
                "cannot encode an OK packet: session state goes with SESSION_STATE_CHANGED"
            )
        if m.session_state is not None:
            out += lenenc_bytes(m.session_state)
        return out
    if m.info is None or m.session_state is not None:
        raise ProtocolError(
            "cannot encode an OK packet with no info or with session state: the connection "
            "did not negotiate CLIENT_SESSION_TRACK"
        )
    return out + _raw(m.info, "info")


def _enc_err(m: ErrPacket, caps: int) -> bytes:
    out = b"\xff" + _uint(m.code, 2, "error code")
    if m.sql_state is not None:
        state = m.sql_state.encode("latin-1", "replace")
        if len(state) != 5:
            raise ProtocolError(f"cannot encode SQL state {m.sql_state!r}: it takes 5 characters")
        out += b"#" + state
    elif m.message.startswith("#"):
        raise ProtocolError("cannot encode an ERR message starting with '#' without a SQL state")
    return out + _raw(m.message, "error message")


def _enc_column(m: ColumnDefinition, caps: int) -> bytes:
    out = b"".join(
        lenenc_bytes(_raw(text, "column name field"))
        for text in (m.catalog, m.schema, m.table, m.org_table, m.name, m.org_name)
    )
    if m.extended_info is not None:
        out += lenenc_bytes(m.extended_info)
    return out + b"\x0c" + struct.pack(
        "<HIBHB2x",
        *(_check(v, n, f) for v, n, f in (
            (m.charset, 2, "charset"), (m.length, 4, "length"), (m.type, 1, "type"),
            (m.flags, 2, "flags"), (m.decimals, 1, "decimals"),
        )),
    )  # fmt: skip


def _check(value: int, size: int, field: str) -> int:
    _uint(value, size, field)
    return value


def _enc_text_row(m: TextRow, caps: int) -> bytes:
    return b"".join(b"\xfb" if v is None else lenenc_bytes(v) for v in m.values)


def _enc_prepare_ok(m: PrepareOk, caps: int) -> bytes:
    out = b"\x00" + _uint(m.statement_id, 4, "statement id") + _uint(m.num_columns, 2, "columns")
    out += _uint(m.num_params, 2, "params") + b"\x00" + _uint(m.warnings, 2, "warnings")
    if m.metadata_follows is not None:
        out += _uint(m.metadata_follows, 1, "metadata_follows")
    return out


def _enc_column_count(m: ColumnCount, caps: int) -> bytes:
    if m.count == 0:
        raise ProtocolError("cannot encode a result set with 0 columns")
    out = lenenc_int(m.count)
    if m.metadata_follows is not None:
        out += _uint(m.metadata_follows, 1, "metadata_follows")
    return out


def _enc_login(m: SslRequest | HandshakeResponse41) -> bytes:
    if len(m.reserved) != 23:
        raise ProtocolError("cannot encode a handshake response: reserved takes 23 bytes")
    caps = m.capabilities
    if not caps & Capability.PROTOCOL_41:
        raise ProtocolError("cannot encode a handshake response without CLIENT_PROTOCOL_41")
    out = _uint(caps, 4, "capabilities") + _uint(m.max_packet_size, 4, "max packet size")
    out += _uint(m.charset, 1, "charset") + m.reserved
    if isinstance(m, SslRequest):
        if not caps & Capability.SSL:
            raise ProtocolError("cannot encode an SSLRequest without CLIENT_SSL")
        return out
    out += _nul_raw(m.user, "user name")
    if caps & Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA:
        out += lenenc_bytes(m.auth_response)
    elif caps & Capability.SECURE_CONNECTION:
        out += _uint(len(m.auth_response), 1, "auth response length") + m.auth_response
    else:
        if b"\x00" in m.auth_response:
            raise ProtocolError("cannot encode a NUL-terminated auth response holding a NUL")
        out += m.auth_response + b"\x00"
    for flag, value, name in (
        (Capability.CONNECT_WITH_DB, m.database, "database"),
        (Capability.PLUGIN_AUTH, m.auth_plugin_name, "auth plugin name"),
    ):
        if (value is not None) != bool(caps & flag):
            raise ProtocolError(f"cannot encode {name}: it goes with CLIENT_{flag.name}")
        if value is not None:
            out += _nul_raw(value, name)
    if (m.connect_attrs_raw is not None) != bool(caps & Capability.CONNECT_ATTRS):
        raise ProtocolError("cannot encode connect attributes: they go with CLIENT_CONNECT_ATTRS")
    if m.connect_attrs_raw is not None:
        out += lenenc_bytes(m.connect_attrs_raw)
    if (m.zstd_level is not None) != bool(caps & Capability.ZSTD_COMPRESSION_ALGORITHM):
        raise ProtocolError("cannot encode zstd level: it goes with ZSTD_COMPRESSION_ALGORITHM")
    if m.zstd_level is not None:
        out += _uint(m.zstd_level, 1, "zstd level")
    if len(out) == 32 and caps & Capability.SSL:
        raise ProtocolError("cannot encode this handshake response: it would read as SSLRequest")
    return out


def _enc_query(m: Query, caps: int) -> bytes:
    out = b"\x03"
    if m.attributes is not None:
        params = m.attributes.params
        out += lenenc_int(len(params)) + lenenc_int(m.attributes.set_count)
        if params:
            out += _write_params(params, True, True)
    return out + _raw(m.sql, "SQL text")


def _enc_execute(m: StmtExecute, caps: int) -> bytes:
    out = b"\x17" + _uint(m.statement_id, 4, "statement id") + _uint(m.flags, 1, "flags")
    out += _uint(m.iteration_count, 4, "iteration count")
    if m.unparsed is not None:
        if m.params:
            raise ProtocolError("cannot encode COM_STMT_EXECUTE with both params and unparsed")
        return out + m.unparsed
    if m.count_sent:
        out += lenenc_int(len(m.params))
    if m.params:
        out += _write_params(m.params, m.new_params_bound, m.count_sent)
    return out


def _enc_command(m: ClientMessage, caps: int) -> bytes:
    if isinstance(m, StmtPrepare):
        return b"\x16" + _raw(m.sql, "SQL text")
    if isinstance(m, Ping):
        return b"\x0e"
    if isinstance(m, Quit):
        return b"\x01"
    if isinstance(m, InitDb):
        return b"\x02" + _raw(m.schema, "schema")
    if isinstance(m, StmtClose):
        return b"\x19" + _uint(m.statement_id, 4, "statement id")
    if isinstance(m, StmtReset):
        return b"\x1a" + _uint(m.statement_id, 4, "statement id")
    if isinstance(m, StmtSendLongData):
        return (
            b"\x18"
            + _uint(m.statement_id, 4, "statement id")
            + _uint(m.param_id, 2, "param id")
            + m.data
        )
    if isinstance(m, StmtFetch):
        return b"\x1c" + _uint(m.statement_id, 4, "statement id") + _uint(m.num_rows, 4, "rows")
    if isinstance(m, SetOption):
        return b"\x1b" + _uint(m.option, 2, "option")
    if isinstance(m, Command):
        if m.code in _MODELLED:
            raise ProtocolError(
                f"cannot encode Command(code=0x{m.code:02x}): that command has its own message"
            )
        return _uint(m.code, 1, "command code") + m.payload
    raise ProtocolError(f"cannot encode {type(m).__name__}")


_MODELLED = frozenset(
    {
        CommandCode.QUERY, CommandCode.STMT_PREPARE, CommandCode.PING, CommandCode.QUIT,
        CommandCode.INIT_DB, CommandCode.STMT_CLOSE, CommandCode.STMT_RESET,
        CommandCode.STMT_SEND_LONG_DATA, CommandCode.STMT_FETCH, CommandCode.SET_OPTION,
        CommandCode.STMT_EXECUTE,
    }
)  # fmt: skip

_ENCODERS: dict[type[Any], Callable[[Any, int], bytes]] = {
    HandshakeV10: _enc_handshake,
    OkPacket: _enc_ok,
    ErrPacket: _enc_err,
    EofPacket: lambda m, c: b"\xfe" + _uint(m.warnings, 2, "warnings") + _uint(m.status, 2, "s"),
    AuthSwitchRequest: lambda m, c: b"\xfe" + _nul_raw(m.plugin_name, "plugin") + m.plugin_data,
    AuthMoreData: lambda m, c: b"\x01" + m.data,
    LocalInfileRequest: lambda m, c: b"\xfb" + _raw(m.filename, "file name"),
    ColumnCount: _enc_column_count,
    ColumnDefinition: _enc_column,
    TextRow: _enc_text_row,
    BinaryRow: lambda m, c: m.raw,
    PrepareOk: _enc_prepare_ok,
    GenericResponse: lambda m, c: m.payload,
    SslRequest: lambda m, c: _enc_login(m),
    HandshakeResponse41: lambda m, c: _enc_login(m),
    AuthSwitchResponse: lambda m, c: m.data,
    ClientAuthData: lambda m, c: m.data,
    LocalInfileData: lambda m, c: m.data,
    Query: _enc_query,
    StmtExecute: _enc_execute,
}


def encode_payload(message: Message, capabilities: int = 0) -> bytes:
    """The payload bytes of ``message``; ``capabilities`` are the negotiated ones."""
    encoder = _ENCODERS.get(type(message), _enc_command)
    return encoder(message, capabilities)


# -- helpers -----------------------------------------------------------------------------------


def decode_connect_attrs(raw: bytes) -> tuple[tuple[str, str], ...]:
    """The key/value pairs of a connection-attributes block."""
    r = Reader(raw, -4, "connection attributes")
    pairs = []
    while not r.at_end():
        key = _text(r.lenenc_bytes("attribute name"))
        pairs.append((key, _text(r.lenenc_bytes("attribute value"))))
    return tuple(pairs)


def decode_session_state(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    """(type, data) for each change in an OK packet's session state info."""
    r = Reader(raw, -4, "session state info")
    changes = []
    while not r.at_end():
        kind = r.u8("change type")
        changes.append((kind, r.lenenc_bytes("change data")))
    return tuple(changes)


def split_binary_row(types: list[int] | tuple[int, ...], raw: bytes) -> list[bytes | None]:
    """The raw value of each column of a binary row (None for NULL), given the column types."""
    r = Reader(raw, -4, "binary row")
    if r.u8("header") != 0:
        raise r.error("a binary row starts with 0x00", 0)
    nulls = _read_bitmap(r, len(types), 2, "NULL bitmap")
    values = [
        None if null else _read_value(r, ftype, f"value of column {i + 1}")
        for i, (ftype, null) in enumerate(zip(types, nulls, strict=True))
    ]
    r.end()
    return values


def encode_binary_row(
    types: list[int] | tuple[int, ...], values: list[bytes | None] | tuple[bytes | None, ...]
) -> bytes:
    """The binary-protocol row of ``values``, raw values as ``split_binary_row`` gives them."""
    if len(types) != len(values):
        raise ProtocolError(
            f"cannot encode a binary row of {len(values)} values for {len(types)} columns"
        )
    out = bytearray(b"\x00")
    out += _write_bitmap([v is None for v in values], 2)
    for ftype, value in zip(types, values, strict=True):
        if value is not None:
            out += _write_value(ftype, value)
    return bytes(out)


def decode_binary_row(
    columns: list[ColumnDefinition] | tuple[ColumnDefinition, ...], raw: bytes
) -> list[Any]:
    """Python values of a binary row, typed by its column definitions."""
    values = split_binary_row([c.type for c in columns], raw)
    return [
        None if v is None else decode_binary_value(c.type, v, bool(c.flags & _UNSIGNED_COLUMN))
        for c, v in zip(columns, values, strict=True)
    ]


_INT_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}


def decode_binary_value(ftype: int, value: bytes, unsigned: bool = False) -> Any:
    """A Python value for one binary-protocol value (without its length prefix).

    Integers and floats become int/float, DECIMAL a ``decimal.Decimal``, temporal values
    ``date``/``datetime``/``timedelta`` (or their text when Python cannot hold them, such as
    a zero date), and every string-like type the raw bytes.
    """
    if ftype == FieldType.NULL:
        return None
    if ftype in (FieldType.FLOAT, FieldType.DOUBLE):
        return struct.unpack("<f" if len(value) == 4 else "<d", value)[0]
    if ftype in _FIXED_WIDTH:
        fmt = _INT_FORMATS[len(value)]
        return struct.unpack("<" + (fmt.upper() if unsigned else fmt), value)[0]
    if ftype in (FieldType.DECIMAL, FieldType.NEWDECIMAL):
        try:
            return decimal.Decimal(value.decode("ascii"))
        except (decimal.InvalidOperation, UnicodeDecodeError):
            raise ProtocolError(f"DECIMAL value {value[:40]!r} is not a number") from None
    if ftype == FieldType.TIME:
        return _decode_time(value)
    if ftype in _TEMPORAL:
        return _decode_datetime(ftype, value)
    return value


def _decode_datetime(ftype: int, value: bytes) -> Any:
    if len(value) not in (0, 4, 7, 11):
        raise ProtocolError(f"a binary DATE/DATETIME value has {len(value)} bytes")
    padded = value + bytes(11 - len(value))
    year, month, day, hour, minute, second, micro = struct.unpack("<HBBBBBI", padded)
    try:
        if ftype in (FieldType.DATE, FieldType.NEWDATE):
            return datetime.date(year, month, day)
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        text = f"{year:04d}-{month:02d}-{day:02d}"
        if ftype in (FieldType.DATE, FieldType.NEWDATE):
            return text
        return f"{text} {hour:02d}:{minute:02d}:{second:02d}" + (f".{micro:06d}" if micro else "")


def _decode_time(value: bytes) -> datetime.timedelta:
    if len(value) not in (0, 8, 12):
        raise ProtocolError(f"a binary TIME value has {len(value)} bytes")
    padded = value + bytes(12 - len(value))
    negative, days, hour, minute, second, micro = struct.unpack("<BIBBBI", padded)
    delta = datetime.timedelta(
        days=days, hours=hour, minutes=minute, seconds=second, microseconds=micro
    )
    return -delta if negative else delta


_SQL_TOKENS = re.compile(
    r"""
    (?P<quoted>'(?:[^'\\]|\\.|'')*'?|"(?:[^"\\]|\\.|"")*"?|`(?:[^`]|``)*`?)
    | (?P<comment>\#[^\n]*|--(?:[ \t\r\n\f\v][^\n]*|$)|/\*(?!!).*?(?:\*/|\Z))
    | (?P<space>\s+)
    """,
    re.VERBOSE | re.DOTALL,
)


def normalize_sql(text: str) -> str:
    """``text`` with comments removed and whitespace runs collapsed, outside quotes/backticks.

    ``#`` and ``-- `` comments run to the end of the line and ``/* */`` comments are removed,
    except ``/*! ... */`` (MySQL executes it) and ``/*+ ... */`` (optimizer hints). A removed
    comment counts as whitespace; leading and trailing whitespace goes. Quoted strings and
    identifiers are kept exactly, so a difference inside them still tells queries apart.
    """
    out: list[str] = []
    gap = False
    pos = 0
    for match in _SQL_TOKENS.finditer(text):
        kept = text[pos : match.start()]
        pos = match.end()
        token = match.group()
        if match.lastgroup == "quoted" or token.startswith("/*+"):
            kept += token
        elif kept:
            out.append((" " if gap and out else "") + kept)
            gap = True
            continue
        else:
            gap = True
            continue
        out.append((" " if gap and out else "") + kept)
        gap = False
    if pos < len(text):
        out.append((" " if gap and out else "") + text[pos:])
    return "".join(out)
