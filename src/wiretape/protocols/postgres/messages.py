"""The messages of the PostgreSQL frontend/backend protocol 3.0, one frozen dataclass each.

Every message decodes losslessly: ``encode(decode(bytes)) == bytes``. To make that hold:

- text fields (SQL, names, parameter values, error fields) are ``str`` decoded from UTF-8 with
  ``surrogateescape``, so bytes in another client encoding survive as lone surrogates
  (U+DC80..U+DCFF) and encode back to the same bytes;
- column values, parameters, COPY data and authentication tokens are ``bytes``, with ``None`` for
  SQL NULL where the protocol has a -1 length;
- format codes and count-prefixed lists keep the form they had on the wire (a Bind with one format
  code for all parameters stays that way).

Typed messages carry their type byte in the class attribute ``tag``; the same byte means different
messages in the two directions (``S`` is Sync from the client and ParameterStatus from the
server), and ``p`` from the client is a password, a SASL message or a GSSAPI token depending on the
authentication request it answers. The tables at the end map type bytes to classes per direction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "BACKEND_TYPES",
    "FRONTEND_TYPES",
    "PROTOCOL_3_0",
    "AuthenticationCleartextPassword",
    "AuthenticationMD5Password",
    "AuthenticationMessage",
    "AuthenticationOk",
    "AuthenticationOther",
    "AuthenticationSASL",
    "AuthenticationSASLContinue",
    "AuthenticationSASLFinal",
    "BackendKeyData",
    "BackendMessage",
    "Bind",
    "BindComplete",
    "CancelRequest",
    "Close",
    "CloseComplete",
    "CommandComplete",
    "CopyBothResponse",
    "CopyData",
    "CopyDone",
    "CopyFail",
    "CopyInResponse",
    "CopyOutResponse",
    "DataRow",
    "Describe",
    "EmptyQueryResponse",
    "ErrorResponse",
    "Execute",
    "FieldDescription",
    "Flush",
    "FrontendMessage",
    "FunctionCall",
    "FunctionCallResponse",
    "GSSENCRequest",
    "GSSResponse",
    "Message",
    "NegotiateProtocolVersion",
    "NoData",
    "NoticeResponse",
    "NotificationResponse",
    "ObjectKind",
    "ParameterDescription",
    "ParameterStatus",
    "Parse",
    "ParseComplete",
    "PasswordMessage",
    "PortalSuspended",
    "Query",
    "ReadyForQuery",
    "RowDescription",
    "SASLInitialResponse",
    "SASLResponse",
    "SSLAnswer",
    "SSLRequest",
    "StartupMessage",
    "Sync",
    "Terminate",
    "TransactionStatus",
]

PROTOCOL_3_0 = 3 << 16

Pairs = tuple[tuple[str, str], ...]


class TransactionStatus(enum.StrEnum):
    """The status byte of ReadyForQuery."""

    IDLE = "I"
    IN_TRANSACTION = "T"
    FAILED = "E"


class ObjectKind(enum.StrEnum):
    """What Describe and Close refer to."""

    STATEMENT = "S"
    PORTAL = "P"


# -- untyped messages: the first message of a connection ------------------------------------------


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """Protocol version and the connection parameters (``user``, ``database``, GUCs, ``_pq_.*``)."""

    parameters: Pairs
    major: int = 3
    minor: int = 0

    def get(self, name: str) -> str | None:
        for key, value in self.parameters:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Sent on a fresh connection; ``secret_key`` is 4 bytes in protocol 3.0 (up to 256 in 3.2)."""

    process_id: int
    secret_key: bytes


@dataclass(frozen=True, slots=True)
class SSLAnswer:
    """The server's single-byte answer: ``S``/``N`` to SSLRequest, ``G``/``N`` to GSSENCRequest."""

    answer: bytes


# -- authentication -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthenticationOk:
    tag: ClassVar[bytes] = b"R"
    code: ClassVar[int] = 0


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword:
    tag: ClassVar[bytes] = b"R"
    code: ClassVar[int] = 3


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password:
    tag: ClassVar[bytes] = b"R"
    code: ClassVar[int] = 5
    salt: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationSASL:
    tag: ClassVar[bytes] = b"R"
    code: ClassVar[int] = 10
    mechanisms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue:
    tag: ClassVar[bytes] = b"R"
    code: ClassVar[int] = 11
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal:
    tag: ClassVar[bytes] = b"R"
    code: ClassVar[int] = 12
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationOther:
    """Any other request: KerberosV5 (2), SCMCredential (6), GSS (7), GSSContinue (8), SSPI (9)...

    ``code`` must not be one that has its own class (0, 3, 5, 10, 11, 12).
    """

    tag: ClassVar[bytes] = b"R"
    code: int
    data: bytes = b""


AuthenticationMessage = (
    AuthenticationOk
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | AuthenticationOther
)


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    """A ``p`` answering CleartextPassword or MD5Password (the MD5 hash is text as well)."""

    tag: ClassVar[bytes] = b"p"
    password: str


@dataclass(frozen=True, slots=True)
class SASLInitialResponse:
    """A ``p`` answering AuthenticationSASL; ``data`` is None when there is no initial response."""

    tag: ClassVar[bytes] = b"p"
    mechanism: str
    data: bytes | None


@dataclass(frozen=True, slots=True)
class SASLResponse:
    """A ``p`` answering AuthenticationSASLContinue."""

    tag: ClassVar[bytes] = b"p"
    data: bytes


@dataclass(frozen=True, slots=True)
class GSSResponse:
    """A ``p`` answering a GSSAPI/SSPI request, or any ``p`` whose request was not seen."""

    tag: ClassVar[bytes] = b"p"
    data: bytes


# -- session --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParameterStatus:
    tag: ClassVar[bytes] = b"S"
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class BackendKeyData:
    """``secret_key`` is 4 bytes in protocol 3.0 (up to 256 in 3.2)."""

    tag: ClassVar[bytes] = b"K"
    process_id: int
    secret_key: bytes


@dataclass(frozen=True, slots=True)
class ReadyForQuery:
    tag: ClassVar[bytes] = b"Z"
    status: TransactionStatus


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion:
    """``newest_version`` is the Int32 as sent (PostgreSQL sends major << 16 | minor)."""

    tag: ClassVar[bytes] = b"v"
    newest_version: int
    unrecognized: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Terminate:
    tag: ClassVar[bytes] = b"X"


# -- simple query and results ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    tag: ClassVar[bytes] = b"Q"
    query: str


@dataclass(frozen=True, slots=True)
class FieldDescription:
    """One column of a RowDescription; ``type_size`` and ``type_modifier`` are often -1."""

    name: str
    table_oid: int
    column_attr: int
    type_oid: int
    type_size: int
    type_modifier: int
    format: int


@dataclass(frozen=True, slots=True)
class RowDescription:
    tag: ClassVar[bytes] = b"T"
    fields: tuple[FieldDescription, ...]


@dataclass(frozen=True, slots=True)
class DataRow:
    """Column values as sent, text or binary per the result format; None is SQL NULL."""

    tag: ClassVar[bytes] = b"D"
    values: tuple[bytes | None, ...]


@dataclass(frozen=True, slots=True)
class CommandComplete:
    tag: ClassVar[bytes] = b"C"
    command_tag: str


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse:
    tag: ClassVar[bytes] = b"I"


@dataclass(frozen=True, slots=True)
class _Fields:
    """Ordered (code, value) pairs; codes are one character (S, V, C, M, D, H, P, ...)."""

    fields: Pairs

    def get(self, code: str) -> str | None:
        for key, value in self.fields:
            if key == code:
                return value
        return None

    @property
    def severity(self) -> str | None:
        """The localized severity (``S``); ``V`` holds the untranslated one on 9.6+ servers."""
        return self.get("S")

    @property
    def sqlstate(self) -> str | None:
        return self.get("C")

    @property
    def message(self) -> str | None:
        return self.get("M")


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Fields):
    tag: ClassVar[bytes] = b"E"


@dataclass(frozen=True, slots=True)
class NoticeResponse(_Fields):
    tag: ClassVar[bytes] = b"N"


@dataclass(frozen=True, slots=True)
class NotificationResponse:
    tag: ClassVar[bytes] = b"A"
    process_id: int
    channel: str
    payload: str


# -- extended query -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parse:
    """``param_types`` are type OIDs; 0 leaves a parameter's type to the server."""

    tag: ClassVar[bytes] = b"P"
    name: str
    query: str
    param_types: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Bind:
    """Format code lists are as sent: empty (all text), one (applies to all) or one per item."""

    tag: ClassVar[bytes] = b"B"
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Describe:
    tag: ClassVar[bytes] = b"D"
    kind: ObjectKind
    name: str


@dataclass(frozen=True, slots=True)
class Execute:
    """``max_rows`` 0 means no limit."""

    tag: ClassVar[bytes] = b"E"
    portal: str
    max_rows: int = 0


@dataclass(frozen=True, slots=True)
class Sync:
    tag: ClassVar[bytes] = b"S"


@dataclass(frozen=True, slots=True)
class Flush:
    tag: ClassVar[bytes] = b"H"


@dataclass(frozen=True, slots=True)
class Close:
    tag: ClassVar[bytes] = b"C"
    kind: ObjectKind
    name: str


@dataclass(frozen=True, slots=True)
class ParseComplete:
    tag: ClassVar[bytes] = b"1"


@dataclass(frozen=True, slots=True)
class BindComplete:
    tag: ClassVar[bytes] = b"2"


@dataclass(frozen=True, slots=True)
class CloseComplete:
    tag: ClassVar[bytes] = b"3"


@dataclass(frozen=True, slots=True)
class NoData:
    tag: ClassVar[bytes] = b"n"


@dataclass(frozen=True, slots=True)
class ParameterDescription:
    tag: ClassVar[bytes] = b"t"
    type_oids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PortalSuspended:
    tag: ClassVar[bytes] = b"s"


# -- COPY -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CopyInResponse:
    """``format`` 0 is text, 1 binary; ``column_formats`` has one code per column."""

    tag: ClassVar[bytes] = b"G"
    format: int
    column_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyOutResponse:
    tag: ClassVar[bytes] = b"H"
    format: int
    column_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyBothResponse:
    tag: ClassVar[bytes] = b"W"
    format: int
    column_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyData:
    """Sent both ways; its bytes are a slice of a COPY or replication stream, kept opaque."""

    tag: ClassVar[bytes] = b"d"
    data: bytes


@dataclass(frozen=True, slots=True)
class CopyDone:
    tag: ClassVar[bytes] = b"c"


@dataclass(frozen=True, slots=True)
class CopyFail:
    tag: ClassVar[bytes] = b"f"
    message: str


# -- function call (legacy fast-path interface) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunctionCall:
    tag: ClassVar[bytes] = b"F"
    function_oid: int
    arg_formats: tuple[int, ...]
    args: tuple[bytes | None, ...]
    result_format: int


@dataclass(frozen=True, slots=True)
class FunctionCallResponse:
    tag: ClassVar[bytes] = b"V"
    result: bytes | None


# -- unions and type tables -----------------------------------------------------------------------

FrontendMessage = (
    StartupMessage
    | SSLRequest
    | GSSENCRequest
    | CancelRequest
    | PasswordMessage
    | SASLInitialResponse
    | SASLResponse
    | GSSResponse
    | Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Sync
    | Flush
    | Close
    | CopyData
    | CopyDone
    | CopyFail
    | FunctionCall
    | Terminate
)

BackendMessage = (
    SSLAnswer
    | AuthenticationMessage
    | ParameterStatus
    | BackendKeyData
    | ReadyForQuery
    | NegotiateProtocolVersion
    | RowDescription
    | DataRow
    | CommandComplete
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | NotificationResponse
    | ParseComplete
    | BindComplete
    | CloseComplete
    | NoData
    | ParameterDescription
    | PortalSuspended
    | CopyInResponse
    | CopyOutResponse
    | CopyBothResponse
    | CopyData
    | CopyDone
    | FunctionCallResponse
)

Message = FrontendMessage | BackendMessage

FRONTEND_TYPES: Mapping[bytes, tuple[type[FrontendMessage], ...]] = {
    b"Q": (Query,),
    b"P": (Parse,),
    b"B": (Bind,),
    b"D": (Describe,),
    b"E": (Execute,),
    b"S": (Sync,),
    b"H": (Flush,),
    b"C": (Close,),
    b"d": (CopyData,),
    b"c": (CopyDone,),
    b"f": (CopyFail,),
    b"F": (FunctionCall,),
    b"X": (Terminate,),
    b"p": (PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse),
}
"""Type byte -> the client messages it can introduce (``p`` is decided by the auth state)."""

BACKEND_TYPES: Mapping[bytes, tuple[type[BackendMessage], ...]] = {
    b"R": (
        AuthenticationOk,
        AuthenticationCleartextPassword,
        AuthenticationMD5Password,
        AuthenticationSASL,
        AuthenticationSASLContinue,
        AuthenticationSASLFinal,
        AuthenticationOther,
    ),
    b"S": (ParameterStatus,),
    b"K": (BackendKeyData,),
    b"Z": (ReadyForQuery,),
    b"v": (NegotiateProtocolVersion,),
    b"T": (RowDescription,),
    b"D": (DataRow,),
    b"C": (CommandComplete,),
    b"I": (EmptyQueryResponse,),
    b"E": (ErrorResponse,),
    b"N": (NoticeResponse,),
    b"A": (NotificationResponse,),
    b"1": (ParseComplete,),
    b"2": (BindComplete,),
    b"3": (CloseComplete,),
    b"n": (NoData,),
    b"t": (ParameterDescription,),
    b"s": (PortalSuspended,),
    b"G": (CopyInResponse,),
    b"H": (CopyOutResponse,),
    b"W": (CopyBothResponse,),
    b"d": (CopyData,),
    b"c": (CopyDone,),
    b"V": (FunctionCallResponse,),
}
"""Type byte -> the server messages it can introduce (``R`` is decided by its Int32 code)."""
