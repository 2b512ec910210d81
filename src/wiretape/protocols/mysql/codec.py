"""Sans-I/O MySQL/MariaDB parsers: ``ClientParser`` reads what the client sends and
``ServerParser`` what the server sends, sharing one ``Conversation``.

How this works
--------------
A MySQL packet means nothing on its own: a server packet starting with 0xFE is an EOF, an auth
switch or an OK depending on the phase and on the command in flight, and the parameters of
COM_STMT_EXECUTE can only be split with the parameter count from the prepare. So the proxy
creates one ``Conversation`` per connection and hands it to both parsers. Each parser writes
what it learns there (capabilities, commands in flight, prepared statements, what the server
asked the client for) and reads what the other one wrote.

When a packet needs knowledge the other direction has not delivered yet (a reply whose command
the client parser has not parsed, a COM_STMT_EXECUTE whose prepare is still unanswered), the
parser *stalls*: ``next_event()`` returns ``NEED_DATA`` without consuming the packet and
retries on the next call. The proxy feeds both parsers as bytes arrive and drains both; since
every such decision waits for the facts it needs instead of guessing, the events are the same
however the bytes of the two directions are split or interleaved. A stalled parser still
buffers at most ``max_packet_size`` bytes before it gives up with ``ProtocolError``.

Phases (``Phase``): GREETING (server sends HandshakeV10) → LOGIN (client sends SSLRequest
and/or HandshakeResponse41) → AUTH (AuthSwitch / AuthMoreData rounds until OK or ERR) →
COMMAND. Sequence ids are checked everywhere: a command starts at 0, its reply continues from
the command's last sequence id, and in AUTH each side continues from the other.

Command replies follow ``_REPLY_OF`` (which kind of reply a command gets) and ``_FIRST``
(the state the reply starts in); the response states are:

    FIRST ──OK/ERR──▶ done (or FIRST again if SERVER_MORE_RESULTS_EXISTS)
      │ └─0xFB──▶ INFILE (client sends the file) ──OK/ERR──▶ done / FIRST
      └─column count──▶ DEFS ×n ──▶ [DEFS_EOF] ──▶ ROWS ──EOF/OK/ERR──▶ done / FIRST
    PREPARE ──PrepareOk──▶ DEFS (params) [EOF] DEFS (columns) [EOF] ──▶ done
    SIMPLE / GENERIC: one packet.   AUTH (COM_CHANGE_USER): as the AUTH phase.

After an SSLRequest the client parser holds: call ``start_tls()`` on it to take the bytes it
buffered past the request (the start of the TLS handshake), then feed both parsers the
decrypted streams. Compression (CLIENT_COMPRESS / zstd) is not decoded: once it is negotiated
the parsers raise ``ProtocolError`` on the next byte so the proxy passes the rest through.

Result sets repeat the same column definitions and EOF packets: each distinct payload is
decoded once and its (immutable) message shared by the packets that carry it.

Large packets: a logical packet (up to 2^24-1 bytes per frame, continued over frames) is
buffered whole, up to ``max_packet_size``; result sets stream one row per event, so memory
is bounded by the largest single row or statement, not by the size of a result.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NoReturn

from wiretape.errors import ProtocolError
from wiretape.protocols.mysql.messages import (
    CURSOR_EXISTS,
    DEPRECATE_EOF,
    EXTENDED_METADATA,
    MORE_RESULTS_EXISTS,
    QUERY_ATTRIBUTES,
    AuthMoreData,
    AuthSwitchResponse,
    BinaryRow,
    Capability,
    ClientAuthData,
    ClientMessage,
    ColumnDefinition,
    Command,
    CommandCode,
    EofPacket,
    ErrPacket,
    GenericResponse,
    HandshakeResponse41,
    HandshakeV10,
    InitDb,
    LocalInfileData,
    LocalInfileRequest,
    MariaDbCapability,
    Message,
    OkPacket,
    Ping,
    PrepareOk,
    Query,
    Quit,
    SetOption,
    SslRequest,
    StmtClose,
    StmtExecute,
    StmtFetch,
    StmtPrepare,
    StmtReset,
    StmtSendLongData,
    TextRow,
    decode_auth_switch,
    decode_column,
    decode_column_count,
    decode_command,
    decode_eof,
    decode_err,
    decode_execute,
    decode_handshake,
    decode_login,
    decode_ok,
    decode_prepare_ok,
    decode_text_row,
    encode_payload,
    split_binary_row,
)
from wiretape.protocols.mysql.packets import (
    MAX_FRAME,
    Reader,
    encode_frames,
    frame_count,
    join_payload,
    scan_packet,
)

__all__ = [
    "NEED_DATA",
    "ClientParser",
    "Conversation",
    "EndOfResponse",
    "Event",
    "NeedData",
    "Packet",
    "Phase",
    "PreparedStatement",
    "ServerParser",
    "encode_packet",
]


class NeedData(enum.Enum):
    NEED_DATA = "need-data"


NEED_DATA = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class Packet:
    """One logical packet: the sequence id of its first frame and its decoded message."""

    seq: int
    message: Message


@dataclass(frozen=True, slots=True)
class EndOfResponse:
    """The server finished replying to ``request`` (None for a greeting refused with ERR)."""

    request: ClientMessage | None


Event = Packet | EndOfResponse


def encode_packet(packet: Packet, capabilities: int = 0) -> bytes:
    """The exact bytes of ``packet`` (framed, split over frames when large)."""
    return encode_frames(packet.seq, encode_payload(packet.message, capabilities))


class Phase(enum.Enum):
    GREETING = "greeting"  # the server's HandshakeV10 (or ERR) comes next
    LOGIN = "login"  # the client's SSLRequest / HandshakeResponse41 comes next
    AUTH = "auth"  # auth rounds until the server's OK or ERR
    COMMAND = "command"  # authenticated; the client sends commands
    CLOSED = "closed"  # login refused; nothing more may come
    COMPRESSED = "compressed"  # compression negotiated; not decoded


class Reply(enum.Enum):
    """The kind of reply a command gets."""

    NONE = "none"
    SIMPLE = "simple"  # one OK / ERR / EOF
    RESULT = "result"  # OK / ERR / LOCAL INFILE / result sets
    PREPARE = "prepare"
    FETCH = "fetch"  # binary rows of an open cursor
    AUTH = "auth"  # COM_CHANGE_USER: auth rounds
    GENERIC = "generic"  # one packet of a command this codec does not model


_REPLY_OF: dict[type[Any], Reply] = {
    Query: Reply.RESULT,
    StmtExecute: Reply.RESULT,
    StmtPrepare: Reply.PREPARE,
    StmtFetch: Reply.FETCH,
    Ping: Reply.SIMPLE,
    InitDb: Reply.SIMPLE,
    StmtReset: Reply.SIMPLE,
    SetOption: Reply.SIMPLE,
    StmtClose: Reply.NONE,
    StmtSendLongData: Reply.NONE,
    Quit: Reply.NONE,
    Command: Reply.GENERIC,
}


class _R(enum.Enum):
    FIRST = "first"
    DEFS = "defs"
    DEFS_EOF = "defs-eof"
    ROWS = "rows"
    INFILE = "infile"
    PREPARE = "prepare"
    SIMPLE = "simple"
    GENERIC = "generic"
    AUTH = "auth"


_FIRST = {
    Reply.RESULT: _R.FIRST,
    Reply.PREPARE: _R.PREPARE,
    Reply.FETCH: _R.ROWS,
    Reply.SIMPLE: _R.SIMPLE,
    Reply.GENERIC: _R.GENERIC,
    Reply.AUTH: _R.AUTH,
}


class _Ask(enum.Enum):
    """What a server packet asked the client to send."""

    AUTH_SWITCH = "auth-switch"
    AUTH_MORE = "auth-more"
    INFILE = "infile"


@dataclass
class PreparedStatement:
    num_params: int
    num_columns: int
    params: list[ColumnDefinition] = field(default_factory=list)
    columns: list[ColumnDefinition] = field(default_factory=list)
    bound_types: tuple[tuple[int, int], ...] | None = None  # from the last execute that bound
    long_data: set[int] = field(default_factory=set)  # parameters sent since the last execute
    result_columns: list[ColumnDefinition] | None = None  # of the last execute (for fetch)


@dataclass
class _Pending:
    request: ClientMessage
    reply: Reply
    last_seq: int
    statement_id: int | None = None


class Conversation:
    """What both parsers of one connection know. Create one per connection.

    To parse a connection whose login was not seen, pass ``phase=Phase.COMMAND`` and the
    negotiated ``capabilities``.
    """

    def __init__(
        self,
        *,
        phase: Phase = Phase.GREETING,
        capabilities: int | None = None,
        mariadb_capabilities: int = 0,
    ) -> None:
        self.phase = phase
        self.handshake: HandshakeV10 | None = None
        self.login: HandshakeResponse41 | None = None
        self.tls = False
        self._capabilities = capabilities
        self._mariadb = mariadb_capabilities
        self.statements: dict[int, PreparedStatement] = {}
        self.last_prepared: int | None = None
        self.prepares_in_flight = 0
        self.quit = False
        self._pending: deque[_Pending] = deque()
        self._asks: deque[tuple[int, _Ask]] = deque()
        self._client_seq = 0  # last sequence id the client used in the current exchange
        self._server_seq: int | None = None
        self._infile_end: int | None = None

    @property
    def capabilities(self) -> int:
        """The negotiated capabilities (what both the greeting and the login announced)."""
        if self._capabilities is not None:
            return self._capabilities
        if self.handshake is None or self.login is None:
            return 0
        return self.handshake.capabilities & self.login.capabilities

    @property
    def mariadb_capabilities(self) -> int:
        if self.handshake is None or self.login is None:
            return self._mariadb
        return self.handshake.mariadb_capabilities & self.login.mariadb_capabilities

    @property
    def pending(self) -> tuple[ClientMessage, ...]:
        """Commands sent whose reply has not finished, oldest first."""
        return tuple(p.request for p in self._pending)

    def _server_busy(self) -> bool:
        return self.phase is Phase.AUTH or bool(self._pending)

    # -- a server that writes its own replies (replay), so no ServerParser reads them ----------

    def authenticated(self) -> None:
        """The server accepted the login: commands follow."""
        if self.phase is not Phase.AUTH:
            raise ProtocolError(f"cannot accept a login in phase {self.phase.value}")
        self.phase = Phase.COMMAND
        self._asks.clear()

    @property
    def reply_seq(self) -> int:
        """The sequence id that starts the reply to the oldest command still waiting for one."""
        if not self._pending:
            raise ProtocolError("no command is waiting for a reply")
        return (self._pending[0].last_seq + 1) % 256

    def reply_sent(self, prepared: PrepareOk | None = None) -> None:
        """The reply to the oldest waiting command was sent. For COM_STMT_PREPARE, ``prepared``
        is the PrepareOk it carried (None when it was an error): executes of that statement
        are then decoded with its parameter count."""
        if not self._pending:
            raise ProtocolError("no command is waiting for a reply")
        pending = self._pending.popleft()
        self._asks.clear()
        if isinstance(pending.request, StmtPrepare):
            self.prepares_in_flight = max(0, self.prepares_in_flight - 1)
            self.last_prepared = None if prepared is None else prepared.statement_id
            if prepared is not None:
                self.statements[prepared.statement_id] = PreparedStatement(
                    prepared.num_params, prepared.num_columns
                )


_COMPACT_AT = 1 << 16


# Members tested on every packet, as module globals: on Python 3.11, looking an enum member up
# on its class costs several times more.
_GREETING, _LOGIN, _AUTH, _COMMAND, _CLOSED, _COMPRESSED = (
    Phase.GREETING, Phase.LOGIN, Phase.AUTH, Phase.COMMAND, Phase.CLOSED, Phase.COMPRESSED,
)  # fmt: skip
_ROWS, _DEFS, _DEFS_EOF, _SIMPLE, _GENERIC, _PREPARE, _INFILE, _AUTH_STATE = (
    _R.ROWS, _R.DEFS, _R.DEFS_EOF, _R.SIMPLE, _R.GENERIC, _R.PREPARE, _R.INFILE, _R.AUTH,
)  # fmt: skip
_RESULT_REPLY, _PREPARE_REPLY, _NO_REPLY, _GENERIC_REPLY = (
    Reply.RESULT, Reply.PREPARE, Reply.NONE, Reply.GENERIC,
)  # fmt: skip
_COM_EXECUTE = int(CommandCode.STMT_EXECUTE)
_COM_CHANGE_USER = int(CommandCode.CHANGE_USER)


class _Parser:
    _what = "packet"

    def __init__(self, conversation: Conversation, *, max_packet_size: int = 1 << 26) -> None:
        self.conversation = conversation
        self._max = max_packet_size
        self._buf = bytearray()
        self._base = 0
        self._pos = 0
        self._raw = 0
        self._eof = False
        self._hold = False
        self._queue: deque[Event] = deque()
        self._error: ProtocolError | None = None

    # -- public API ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._check_error()
        if not data:
            return
        if self._eof:
            raise ProtocolError("feed() was called after feed_eof()", self.consumed)
        self._compact()
        self._buf += data

    def feed_eof(self) -> None:
        """The peer closed its side; an incomplete packet is then reported by next_event()."""
        self._check_error()
        self._eof = True

    def next_event(self) -> Event | NeedData:
        self._check_error()
        if self._queue:
            return self._queue.popleft()
        try:
            return self._step()
        except ProtocolError as exc:
            self._fail(exc)

    def take_raw(self) -> bytes:
        """The exact bytes consumed since the last call. Call it regularly: they are kept."""
        raw = bytes(self._buf[self._raw : self._pos])
        self._raw = self._pos
        return raw

    def discard_raw(self) -> None:
        """Forget the bytes consumed so far without copying them (they were forwarded already)."""
        self._raw = self._pos
        self._compact()

    def take_buffered(self) -> bytes:
        """Every fed byte not yet returned by take_raw(); empties the buffer (for fallback)."""
        data = bytes(self._buf[self._raw :])
        self._base += len(self._buf)
        self._buf.clear()
        self._pos = self._raw = 0
        return data

    def start_tls(self) -> bytes:
        """The bytes buffered past the SSLRequest; afterwards feed the decrypted stream."""
        self._check_error()
        data = bytes(self._buf[self._pos :])
        del self._buf[self._pos :]
        self._hold = False
        return data

    @property
    def consumed(self) -> int:
        return self._base + self._pos

    @property
    def awaiting_tls(self) -> bool:
        return self._hold

    @property
    def idle(self) -> bool:
        """No event is queued and no byte waits to be parsed: ``next_event()`` needs data."""
        return not self._queue and self._pos == len(self._buf) and self._error is None

    # -- plumbing -----------------------------------------------------------------------------

    def _check_error(self) -> None:
        if self._error is not None:
            raise ProtocolError(self._error.message, self._error.offset)

    def _fail(self, error: ProtocolError) -> NoReturn:
        self._error = error
        raise error

    def _compact(self) -> None:
        done = self._raw
        if done and (done >= _COMPACT_AT or done * 2 >= len(self._buf)):
            del self._buf[:done]
            self._base += done
            self._pos -= done
            self._raw = 0

    def _step(self) -> Event | NeedData:
        if self._hold:
            return NEED_DATA
        buf = self._buf
        pos = self._pos
        start = self._base + pos
        pending = len(buf) - pos
        if pending and self.conversation.phase is _COMPRESSED:
            raise ProtocolError(
                "the connection negotiated protocol compression, which wiretape does not "
                "decode; pass the rest of the connection through",
                start,
            )
        seq = size = end = -1
        if pending >= 4:
            size = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            if size < MAX_FRAME:  # one frame: the common case, found without scan_packet
                if pos + 4 + size <= len(buf):
                    seq, end = buf[pos + 3], pos + 4 + size
            elif (found := scan_packet(buf, pos, self._base)) is not None:
                seq, size, end = found
        if end < 0:
            if pending > self._max + 4 * (pending // MAX_FRAME + 1):
                raise self._too_large(start)
            if self._eof and pending:
                raise ProtocolError(
                    f"connection closed inside a {self._what} ({pending} bytes of it arrived)",
                    start,
                )
            return NEED_DATA
        if size > self._max:
            raise self._too_large(start)
        if size < MAX_FRAME:
            events = self._handle(seq, bytes(buf[pos + 4 : end]), start, 1)
        else:
            events = self._handle(seq, join_payload(buf, pos, end), start, frame_count(size))
        if events is None:
            if pending > self._max + 4 * (pending // MAX_FRAME + 1):
                raise ProtocolError(
                    f"{pending} bytes are buffered while the {self._what} parser waits for the "
                    "other direction of the connection; feed both parsers",
                    start,
                )
            return NEED_DATA
        self._pos = end
        self._queue.extend(events[1:])
        return events[0]

    def _too_large(self, start: int) -> ProtocolError:
        return ProtocolError(
            f"a {self._what} is larger than max_packet_size={self._max} bytes; raise it if "
            "such packets are legitimate",
            start,
        )

    def _handle(self, seq: int, payload: bytes, start: int, frames: int) -> list[Event] | None:
        raise NotImplementedError


# Result sets repeat the same few column definitions and EOF packets: each payload is decoded
# once (the messages are immutable, so packets share them).
_KEPT = 4096
_columns: dict[tuple[bool, bytes], ColumnDefinition] = {}
_eofs: dict[bytes, EofPacket] = {}


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _KEPT:
        cache.clear()
    cache[key] = value


def _eof(payload: bytes, start: int) -> EofPacket:
    found = _eofs.get(payload)
    if found is None:
        found = decode_eof(Reader(payload, start, _SERVER_PACKET))
        _keep(_eofs, payload, found)
    return found


def _text_values(payload: bytes, columns: int) -> tuple[bytes | None, ...] | None:
    """The values of a text row whose values are all NULL or shorter than 251 bytes (the
    common case, split here without a ``Reader``); None for any other row, which
    ``decode_text_row`` then reads (and reports, when it is malformed)."""
    values: list[bytes | None] = []
    pos = 0
    size = len(payload)
    for _ in range(columns):
        if pos >= size:
            return None
        length = payload[pos]
        if length < 0xFB:
            end = pos + 1 + length
            if end > size:
                return None
            values.append(payload[pos + 1 : end])
            pos = end
        elif length == 0xFB:
            values.append(None)
            pos += 1
        else:
            return None
    return tuple(values) if pos == size else None


_SERVER_PACKET = "server packet"


def _bad_seq(seq: int, expected: int, start: int, what: str) -> ProtocolError:
    return ProtocolError(
        f"{what} has sequence id {seq}, expected {expected}; the stream is out of step",
        start + 3,
    )


class ClientParser(_Parser):
    """Parses what the client sends. Raises only ``ProtocolError``; after one, it stays failed."""

    _what = "client packet"

    def __init__(self, conversation: Conversation, *, max_packet_size: int = 1 << 26) -> None:
        super().__init__(conversation, max_packet_size=max_packet_size)
        self._infile_next: int | None = None

    def _handle(self, seq: int, payload: bytes, start: int, frames: int) -> list[Event] | None:
        conv = self.conversation
        last = (seq + frames - 1) % 256
        if conv.phase is _GREETING:
            return None
        if conv.phase is _LOGIN:
            return self._login(seq, payload, start, last)
        if conv.phase is _CLOSED or conv.quit:
            raise ProtocolError("the client sent a packet after COM_QUIT or a refused login", start)
        if self._infile_next is not None:
            if seq != self._infile_next:
                raise _bad_seq(seq, self._infile_next, start, "LOCAL INFILE data")
            return self._infile(seq, payload, last)
        if seq == 0:
            if conv.phase is _AUTH:
                return None  # the command follows an OK the server parser has not read yet
            return self._command(payload, start, last)
        return self._answer(seq, payload, start, last)

    def take_query(self, data: bytes) -> Query | None:
        """Parse ``data`` at once when it is exactly one plain COM_QUERY: one frame with sequence
        id 0 and no query attributes, arriving in the command phase with no byte buffered and
        no event queued. The query is consumed and waits for its reply as if ``feed(data)`` and
        ``next_event()`` had returned it (its bytes are not kept for ``take_raw``).

        None when ``data`` is anything else; nothing is consumed then: ``feed`` it.
        """
        size = len(data) - 4
        if (
            not 0 < size < MAX_FRAME
            or data[4] != _COM_QUERY
            or data[3] != 0
            or data[0] | data[1] << 8 | data[2] << 16 != size
            or size > self._max
            or self._pos != len(self._buf)
            or self._raw != self._pos
            or self._queue
            or self._hold
            or self._eof
            or self._error is not None
            or self._infile_next is not None
        ):
            return None
        conv = self.conversation
        if conv.phase is not _COMMAND or conv.quit or conv.capabilities & QUERY_ATTRIBUTES:
            return None
        message = Query(data[5:].decode("utf-8", "surrogateescape"))
        conv._pending.append(_Pending(message, _RESULT_REPLY, 0))
        self._base += len(self._buf) + len(data)
        self._buf.clear()
        self._pos = self._raw = 0
        return message

    def _login(self, seq: int, payload: bytes, start: int, last: int) -> list[Event]:
        conv = self.conversation
        expected = 2 if conv.tls else 1
        if seq != expected:
            raise _bad_seq(seq, expected, start, "the handshake response")
        message = decode_login(Reader(payload, start, "handshake response"))
        if isinstance(message, SslRequest):
            if conv.tls:
                raise ProtocolError("a second SSLRequest", start)
            conv.tls = True
            self._hold = True
        else:
            conv.login = message
            conv.phase = Phase.AUTH
            conv._client_seq = last
            conv._server_seq = None
        return [Packet(seq, message)]

    def _infile(self, seq: int, payload: bytes, last: int) -> list[Event]:
        if payload:
            self._infile_next = (last + 1) % 256
        else:
            self._infile_next = None
            self.conversation._infile_end = seq
        return [Packet(seq, LocalInfileData(payload))]

    def _answer(self, seq: int, payload: bytes, start: int, last: int) -> list[Event] | None:
        """A packet answering something the server asked for (auth data, a local file)."""
        conv = self.conversation
        asks = conv._asks
        while asks and asks[0][0] < seq - 1:
            asks.popleft()  # asked for nothing that needs an answer (fast-auth success)
        if not asks or asks[0][0] != seq - 1:
            if not asks and conv._server_busy():
                return None
            raise ProtocolError(
                f"the client sent a packet with sequence id {seq} that answers nothing the "
                "server asked for",
                start + 3,
            )
        _, ask = asks.popleft()
        if ask is _Ask.INFILE:
            return self._infile(seq, payload, last)
        conv._client_seq = last
        if ask is _Ask.AUTH_SWITCH:
            return [Packet(seq, AuthSwitchResponse(payload))]
        return [Packet(seq, ClientAuthData(payload))]

    def _command(self, payload: bytes, start: int, last: int) -> list[Event] | None:
        conv = self.conversation
        if not payload:
            raise ProtocolError("an empty command packet", start)
        reader = Reader(payload, start, "command")
        caps = conv.capabilities
        statement_id = None
        message: ClientMessage
        if payload[0] == _COM_EXECUTE:
            if len(payload) >= 5:
                statement_id = int.from_bytes(payload[1:5], "little")
                if statement_id == 0xFFFFFFFF:  # MariaDB: the last statement prepared
                    if conv.prepares_in_flight:
                        return None
                    statement_id = conv.last_prepared
            info = None if statement_id is None else conv.statements.get(statement_id)
            if info is None and conv.prepares_in_flight:
                return None
            message = decode_execute(
                reader,
                caps,
                None if info is None else info.num_params,
                None if info is None else info.bound_types,
                frozenset() if info is None else frozenset(info.long_data),
            )
            if info is not None:
                info.long_data.clear()
                if message.params and message.new_params_bound:
                    info.bound_types = tuple((p.type, p.flags) for p in message.params)
        else:
            if (
                payload[0] in _STATEMENT_COMMANDS
                and len(payload) >= 5
                and conv.prepares_in_flight
                and int.from_bytes(payload[1:5], "little") not in conv.statements
            ):
                return None  # names a statement whose prepare is still unanswered
            message = decode_command(reader, caps)
        reply = _REPLY_OF.get(type(message), _GENERIC_REPLY)
        if isinstance(message, Command) and message.code == _COM_CHANGE_USER:
            reply = Reply.AUTH
            conv._client_seq = last
            conv._server_seq = None
        elif isinstance(message, StmtPrepare):
            conv.prepares_in_flight += 1
        elif isinstance(message, StmtClose):
            conv.statements.pop(message.statement_id, None)
        elif isinstance(message, StmtSendLongData | StmtReset):
            info = conv.statements.get(message.statement_id)
            if info is not None:
                if isinstance(message, StmtReset):
                    info.long_data.clear()
                else:
                    info.long_data.add(message.param_id)
        elif isinstance(message, StmtFetch):
            statement_id = message.statement_id
        elif isinstance(message, Quit):
            conv.quit = True
        if reply is not _NO_REPLY:
            conv._pending.append(_Pending(message, reply, last, statement_id))
        return [Packet(0, message)]


_COM_QUERY = int(CommandCode.QUERY)
_STATEMENT_COMMANDS = frozenset(
    {
        CommandCode.STMT_CLOSE,
        CommandCode.STMT_RESET,
        CommandCode.STMT_FETCH,
        CommandCode.STMT_SEND_LONG_DATA,
    }
)


@dataclass
class _Response:
    pending: _Pending
    state: _R
    next_seq: int
    binary: bool = False
    columns: int = 0
    defs: list[ColumnDefinition] = field(default_factory=list)
    remaining: int = 0
    blocks: list[tuple[str, int]] = field(default_factory=list)
    block: str = "columns"
    types: list[int] | None = None


class ServerParser(_Parser):
    """Parses what the server sends. Raises only ``ProtocolError``; after one, it stays failed."""

    _what = "server packet"

    def __init__(self, conversation: Conversation, *, max_packet_size: int = 1 << 26) -> None:
        super().__init__(conversation, max_packet_size=max_packet_size)
        self._resp: _Response | None = None

    def _handle(self, seq: int, payload: bytes, start: int, frames: int) -> list[Event] | None:
        conv = self.conversation
        last = (seq + frames - 1) % 256
        if not payload:
            raise ProtocolError("an empty server packet", start)
        resp = self._resp
        if (
            resp is not None
            and resp.state is not _AUTH_STATE
            and resp.state is not _INFILE
            and conv.phase is _COMMAND
            and conv._pending
        ):
            # Inside a reply (the common case): what the checks below come to.
            if seq != resp.next_seq:
                raise _bad_seq(seq, resp.next_seq, start, "this reply packet")
            resp.next_seq = (last + 1) % 256
            message, done = self._reply(resp, payload, start, seq)
            if not done:
                return [Packet(seq, message)]
            conv._pending.popleft()
            conv._asks.clear()
            self._resp = None
            return [Packet(seq, message), EndOfResponse(resp.pending.request)]
        reader = Reader(payload, start, _SERVER_PACKET)
        if conv.phase is Phase.GREETING:
            if seq != 0:
                raise _bad_seq(seq, 0, start, "the greeting")
            if payload[0] == 0xFF:
                conv.phase = Phase.CLOSED
                return [Packet(seq, decode_err(reader)), EndOfResponse(None)]
            reader.what = "greeting"
            handshake = decode_handshake(reader)
            if not handshake.capabilities & Capability.PROTOCOL_41:
                raise ProtocolError("the server does not speak protocol 4.1", start)
            conv.handshake = handshake
            conv.phase = Phase.LOGIN
            return [Packet(seq, handshake)]
        if conv.phase is Phase.LOGIN:
            return None
        if conv.phase is Phase.AUTH:
            return self._auth(seq, last, reader, None)
        if conv.phase is Phase.CLOSED:
            raise ProtocolError("the server sent a packet after refusing the login", start)
        if not conv._pending:
            return None
        resp = self._resp
        if resp is None:
            pending = conv._pending[0]
            resp = _Response(pending, _FIRST[pending.reply], (pending.last_seq + 1) % 256)
            resp.binary = isinstance(pending.request, StmtExecute | StmtFetch)
            if isinstance(pending.request, StmtFetch):
                resp.types = self._fetch_types(pending)
            self._resp = resp
        if resp.state is _R.AUTH:
            return self._auth(seq, last, reader, resp.pending)
        if resp.state is _R.INFILE:
            if conv._infile_end is None:
                return None
            expected = (conv._infile_end + 1) % 256
            if seq != expected:
                raise _bad_seq(seq, expected, start, "the reply to LOCAL INFILE data")
            conv._infile_end = None
        elif seq != resp.next_seq:
            raise _bad_seq(seq, resp.next_seq, start, "this reply packet")
        resp.next_seq = (last + 1) % 256
        message, done = self._reply(resp, payload, start, seq)
        events: list[Event] = [Packet(seq, message)]
        if done:
            conv._pending.popleft()
            conv._asks.clear()
            self._resp = None
            events.append(EndOfResponse(resp.pending.request))
        return events

    def _fetch_types(self, pending: _Pending) -> list[int] | None:
        info = self.conversation.statements.get(pending.statement_id or 0)
        if info is None or info.result_columns is None:
            return None
        return [c.type for c in info.result_columns]

    # -- auth ---------------------------------------------------------------------------------

    def _auth(self, seq: int, last: int, r: Reader, pending: _Pending | None) -> list[Event] | None:
        conv = self.conversation
        after_client = (conv._client_seq + 1) % 256
        after_server = None if conv._server_seq is None else (conv._server_seq + 1) % 256
        if seq not in (after_client, after_server):
            if seq > after_client:
                return None  # answers a client packet not parsed yet
            raise _bad_seq(seq, after_client, r.offset(0), "this auth packet")
        first = r.peek()
        message: Message
        request: ClientMessage | None = conv.login if pending is None else pending.request
        if first == 0x00:
            message = decode_ok(r, conv.capabilities)
        elif first == 0xFF:
            message = decode_err(r)
        elif first == 0xFE:
            message = decode_auth_switch(r)
            conv._asks.append((last, _Ask.AUTH_SWITCH))
        elif first == 0x01:
            message = AuthMoreData(r.rest()[1:])
            conv._asks.append((last, _Ask.AUTH_MORE))
        else:
            raise r.error(f"0x{first:02x} is not an auth reply (OK, ERR, 0xFE or 0x01)", 0)
        conv._server_seq = last
        if not isinstance(message, OkPacket | ErrPacket):
            return [Packet(seq, message)]
        conv._asks.clear()
        if pending is not None:
            conv._pending.popleft()
            self._resp = None
        elif isinstance(message, ErrPacket):
            conv.phase = Phase.CLOSED
        else:
            conv.phase = Phase.COMMAND
            caps = conv.capabilities
            if caps & (Capability.COMPRESS | Capability.ZSTD_COMPRESSION_ALGORITHM):
                conv.phase = Phase.COMPRESSED
            if conv.mariadb_capabilities & MariaDbCapability.CACHE_METADATA:
                raise ProtocolError(
                    "the connection negotiated MariaDB's metadata cache, which wiretape does not "
                    "decode; pass it through",
                    r.offset(0),
                )
        return [Packet(seq, message), EndOfResponse(request)]

    # -- command replies ----------------------------------------------------------------------

    def _reply(self, resp: _Response, payload: bytes, start: int, seq: int) -> tuple[Message, bool]:
        conv = self.conversation
        caps = conv.capabilities
        first = payload[0]  # never empty: _handle refuses empty packets
        size = len(payload)
        state = resp.state
        if state is _ROWS:
            if first == 0xFF:
                return decode_err(Reader(payload, start, _SERVER_PACKET)), True
            deprecate_eof = caps & DEPRECATE_EOF
            if first == 0xFE and size < (MAX_FRAME if deprecate_eof else 9):
                if deprecate_eof:
                    ok = decode_ok(Reader(payload, start, _SERVER_PACKET), caps)
                    return ok, self._more(resp, ok.status)
                eof = _eof(payload, start)
                return eof, self._more(resp, eof.status)
            return self._row(resp, payload, start), False
        if state is _DEFS:
            return self._definition(resp, payload, start)
        r = Reader(payload, start, _SERVER_PACKET)
        if state is _SIMPLE or state is _GENERIC:
            if first == 0x00:
                return decode_ok(r, caps), True
            if first == 0xFF:
                return decode_err(r), True
            if first == 0xFE and size < 9:
                return decode_eof(r), True
            if state is _GENERIC:
                return GenericResponse(r.rest()), True
            raise r.error(f"0x{first:02x} is not OK, ERR or EOF", 0)
        if state is _PREPARE:
            return self._prepare(resp, r)
        if state is _DEFS_EOF:
            if not (first == 0xFE and size < 9):
                raise r.error("expected the EOF packet that ends column definitions", 0)
            eof = _eof(payload, start)
            if self._next_block(resp):
                return eof, False
            if resp.pending.reply is _PREPARE_REPLY:
                return eof, True
            if resp.binary and eof.status & CURSOR_EXISTS:
                return eof, True
            resp.state = _R.ROWS
            return eof, False
        if first == 0xFF:
            return decode_err(r), True
        if state is _INFILE:
            if first != 0x00:
                raise r.error("expected OK or ERR after the LOCAL INFILE data", 0)
            ok = decode_ok(r, caps)
            return ok, self._more(resp, ok.status)
        # FIRST
        if first == 0x00:
            ok = decode_ok(r, caps)
            return ok, self._more(resp, ok.status)
        if first == 0xFB and not resp.binary:
            r.u8()
            request = LocalInfileRequest(r.rest().decode("utf-8", "surrogateescape"))
            resp.state = _R.INFILE
            conv._asks.append((seq, _Ask.INFILE))
            return request, False
        count = decode_column_count(r, caps)
        resp.columns = count.count
        resp.defs = []
        resp.types = None
        if count.metadata_follows == 0:
            resp.types = self._known_types(resp)
            resp.blocks = []
            resp.state = _R.ROWS if caps & DEPRECATE_EOF else _R.DEFS_EOF
        else:
            resp.blocks = [("columns", count.count)]
            self._next_block(resp)
        return count, False

    def _more(self, resp: _Response, status: int) -> bool:
        """Whether the reply is done after a packet carrying ``status``."""
        if status & MORE_RESULTS_EXISTS and resp.pending.reply is _RESULT_REPLY:
            resp.state = _R.FIRST
            return False
        return True

    def _known_types(self, resp: _Response) -> list[int] | None:
        info = self.conversation.statements.get(resp.pending.statement_id or 0)
        if not resp.binary or info is None or len(info.columns) != resp.columns:
            return None
        return [c.type for c in info.columns]

    def _next_block(self, resp: _Response) -> bool:
        """Move to the next non-empty block of definitions; False when none is left."""
        while resp.blocks:
            name, count = resp.blocks.pop(0)
            if count:
                resp.block, resp.remaining, resp.state = name, count, _R.DEFS
                return True
        return False

    def _definition(self, resp: _Response, payload: bytes, start: int) -> tuple[Message, bool]:
        conv = self.conversation
        extended = bool(conv.mariadb_capabilities & EXTENDED_METADATA)
        column = _columns.get((extended, payload))
        if column is None:
            column = decode_column(Reader(payload, start, "column definition"), extended)
            _keep(_columns, (extended, payload), column)
        resp.remaining -= 1
        prepared = resp.pending.reply is _PREPARE_REPLY
        info = conv.statements.get(resp.pending.statement_id or 0)
        if prepared and info is not None:
            (info.params if resp.block == "params" else info.columns).append(column)
        elif not prepared:
            resp.defs.append(column)
        if resp.remaining:
            return column, False
        if not prepared:
            resp.types = [c.type for c in resp.defs]
            if resp.binary and info is not None:
                info.result_columns = list(resp.defs)
        if not conv.capabilities & DEPRECATE_EOF:
            resp.state = _R.DEFS_EOF
            return column, False
        if self._next_block(resp):
            return column, False
        if prepared:
            return column, True
        resp.state = _R.ROWS
        return column, False

    def _prepare(self, resp: _Response, r: Reader) -> tuple[Message, bool]:
        conv = self.conversation
        first = r.peek()
        conv.prepares_in_flight = max(0, conv.prepares_in_flight - 1)
        if first == 0xFF:
            conv.last_prepared = None
            return decode_err(r), True
        if first != 0x00:
            raise r.error(f"0x{first:02x} is not a prepare reply (OK or ERR)", 0)
        r.what = "prepare OK"
        ok = decode_prepare_ok(r)
        conv.statements[ok.statement_id] = PreparedStatement(ok.num_params, ok.num_columns)
        conv.last_prepared = ok.statement_id
        resp.pending.statement_id = ok.statement_id
        if ok.metadata_follows == 0:
            return ok, True
        resp.blocks = [("params", ok.num_params), ("columns", ok.num_columns)]
        return ok, not self._next_block(resp)

    def _row(self, resp: _Response, payload: bytes, start: int) -> Message:
        if not resp.binary:
            values = _text_values(payload, resp.columns)
            if values is not None:
                return TextRow(values)
            return decode_text_row(Reader(payload, start, "text row"), resp.columns)
        r = Reader(payload, start, _SERVER_PACKET)
        if r.peek() != 0x00:
            raise r.error("a binary row starts with 0x00", 0)
        if resp.types is not None:
            try:
                split_binary_row(resp.types, r.data)
            except ProtocolError as exc:
                raise ProtocolError(exc.message, r.offset(exc.offset or 0)) from None
        return BinaryRow(r.rest())
