"""MySQL codec: hand-built captures (per the protocol documentation) parsed and re-encoded."""

from __future__ import annotations

import datetime
import decimal
import struct

import pytest

from wiretape.errors import ProtocolError
from wiretape.protocols.mysql import (
    NEED_DATA,
    AuthMoreData,
    AuthSwitchRequest,
    AuthSwitchResponse,
    BinaryRow,
    Capability,
    ClientAuthData,
    ClientParser,
    ColumnCount,
    ColumnDefinition,
    Command,
    Conversation,
    EndOfResponse,
    EofPacket,
    ErrPacket,
    Event,
    FieldType,
    GenericResponse,
    HandshakeResponse41,
    HandshakeV10,
    LocalInfileData,
    LocalInfileRequest,
    OkPacket,
    Packet,
    Param,
    Phase,
    Ping,
    PrepareOk,
    Query,
    QueryAttributes,
    Quit,
    ServerParser,
    SslRequest,
    StmtClose,
    StmtExecute,
    StmtPrepare,
    StmtReset,
    StmtSendLongData,
    TextRow,
    decode_binary_row,
    decode_binary_value,
    decode_session_state,
    encode_packet,
    normalize_sql,
)
from wiretape.protocols.mysql.packets import MAX_FRAME

C = Capability
BASE_CAPS = (
    C.LONG_PASSWORD
    | C.PROTOCOL_41
    | C.SECURE_CONNECTION
    | C.PLUGIN_AUTH
    | C.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | C.CONNECT_WITH_DB
    | C.CONNECT_ATTRS
    | C.TRANSACTIONS
    | C.MULTI_RESULTS
    | C.LOCAL_FILES
)


def pkt(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def lenc(data: bytes) -> bytes:
    assert len(data) < 251
    return bytes([len(data)]) + data


def greeting(caps: int, plugin: bytes = b"caching_sha2_password") -> bytes:
    return (
        b"\x0a8.0.36\x00"
        + struct.pack("<I", 42)
        + b"abcdefgh\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + b"\xff"
        + struct.pack("<H", 2)
        + struct.pack("<H", caps >> 16)
        + bytes([21])
        + bytes(10)
        + b"ijklmnopqrst\x00"
        + plugin
        + b"\x00"
    )


def login(caps: int, *, user: bytes = b"app", db: bytes = b"shop") -> bytes:
    attrs = lenc(b"_client_name") + lenc(b"libmysql") + lenc(b"_pid") + lenc(b"123")
    return (
        struct.pack("<IIB", caps, 16 * 1024 * 1024, 0xFF)
        + bytes(23)
        + user
        + b"\x00"
        + lenc(bytes(range(32)))
        + db
        + b"\x00"
        + b"caching_sha2_password\x00"
        + lenc(attrs)
    )


def coldef(name: bytes, ftype: int, *, charset: int = 0xFF, flags: int = 0) -> bytes:
    return (
        lenc(b"def")
        + lenc(b"shop")
        + lenc(b"users")
        + lenc(b"users")
        + lenc(name)
        + lenc(name)
        + b"\x0c"
        + struct.pack("<HIBHB", charset, 255, ftype, flags, 0)
        + b"\x00\x00"
    )


def eof(status: int = 2) -> bytes:
    return b"\xfe\x00\x00" + struct.pack("<H", status)


OK_AUTH = b"\x00\x00\x00\x02\x00\x00\x00"


class Session:
    """Both parsers of one connection, pumped until neither can progress."""

    def __init__(self, conversation: Conversation | None = None) -> None:
        self.conv = conversation or Conversation()
        self.client = ClientParser(self.conv)
        self.server = ServerParser(self.conv)
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        self.client_raw = b""
        self.server_raw = b""

    def pump(self) -> None:
        progress = True
        while progress:
            progress = False
            for parser, events in (
                (self.client, self.client_events),
                (self.server, self.server_events),
            ):
                event = parser.next_event()
                if event is not NEED_DATA:
                    assert not isinstance(event, type(NEED_DATA))
                    events.append(event)
                    progress = True
            self.client_raw += self.client.take_raw()
            self.server_raw += self.server.take_raw()

    def c(self, data: bytes) -> Session:
        self.client.feed(data)
        self.pump()
        return self

    def s(self, data: bytes) -> Session:
        self.server.feed(data)
        self.pump()
        return self


def messages(events: list[Event]) -> list[object]:
    return [e.message if isinstance(e, Packet) else e for e in events]


def reencoded(events: list[Event], caps: int) -> bytes:
    return b"".join(encode_packet(e, caps) for e in events if isinstance(e, Packet))


def full_session_bytes() -> tuple[bytes, bytes]:
    caps = BASE_CAPS
    client = b"".join(
        [
            pkt(1, login(caps)),
            pkt(0, b"\x03SELECT id, name FROM users"),
            pkt(0, b"\x16SELECT name FROM users WHERE id = ?"),
            pkt(0, b"\x17" + struct.pack("<IBIBBBBQ", 1, 0, 1, 0, 1, 8, 0, 2)),
            pkt(0, b"\x19" + struct.pack("<I", 1)),
            pkt(0, b"\x01"),
        ]
    )  # fmt: skip
    server = b"".join(
        [
            pkt(0, greeting(caps)),
            pkt(2, b"\x01\x03"),
            pkt(3, OK_AUTH),
            pkt(1, b"\x02"),
            pkt(2, coldef(b"id", FieldType.LONGLONG)),
            pkt(3, coldef(b"name", FieldType.VAR_STRING)),
            pkt(4, eof()),
            pkt(5, lenc(b"1") + lenc(b"alice")),
            pkt(6, lenc(b"2") + b"\xfb"),
            pkt(7, eof()),
            pkt(1, b"\x00" + struct.pack("<IHHBH", 1, 1, 1, 0, 0)),
            pkt(2, coldef(b"?", FieldType.LONGLONG)),
            pkt(3, eof()),
            pkt(4, coldef(b"name", FieldType.VAR_STRING)),
            pkt(5, eof()),
            pkt(1, b"\x01"),
            pkt(2, coldef(b"name", FieldType.VAR_STRING)),
            pkt(3, eof()),
            pkt(4, b"\x00\x00" + lenc(b"bob")),
            pkt(5, eof()),
        ]
    )
    return client, server


def test_a_full_session_parses_and_reencodes_exactly() -> None:
    client, server = full_session_bytes()
    session = Session().s(server[:100]).c(client).s(server[100:])
    cm = messages(session.client_events)
    sm = messages(session.server_events)
    login_msg = cm[0]
    assert isinstance(login_msg, HandshakeResponse41)
    assert login_msg.user == "app" and login_msg.database == "shop"
    assert login_msg.auth_plugin_name == "caching_sha2_password"
    assert login_msg.connect_attrs == (("_client_name", "libmysql"), ("_pid", "123"))
    assert cm[1:] == [
        Query("SELECT id, name FROM users"),
        StmtPrepare("SELECT name FROM users WHERE id = ?"),
        StmtExecute(1, 0, 1, (Param(FieldType.LONGLONG, (2).to_bytes(8, "little")),)),
        StmtClose(1),
        Quit(),
    ]
    hello = sm[0]
    assert isinstance(hello, HandshakeV10)
    assert hello.server_version == "8.0.36" and hello.connection_id == 42
    assert hello.scramble == b"abcdefghijklmnopqrst"
    assert hello.auth_plugin_name == "caching_sha2_password"
    assert hello.capabilities == BASE_CAPS and hello.charset == 0xFF and hello.status == 2
    assert sm[1] == AuthMoreData(b"\x03") and sm[1].fast_auth_success
    assert sm[2] == OkPacket(status=2, info="")
    assert sm[3] == EndOfResponse(login_msg)
    assert sm[4] == ColumnCount(2)
    assert isinstance(sm[5], ColumnDefinition) and sm[5].name == "id"
    assert sm[7] == EofPacket(0, 2)
    assert sm[8:11] == [TextRow((b"1", b"alice")), TextRow((b"2", None)), EofPacket(0, 2)]
    assert sm[11] == EndOfResponse(Query("SELECT id, name FROM users"))
    assert sm[12] == PrepareOk(1, 1, 1, 0)
    assert isinstance(sm[-2], EofPacket)
    row = sm[-3]
    assert isinstance(row, BinaryRow)
    column = sm[-5]
    assert isinstance(column, ColumnDefinition)
    assert decode_binary_row([column], row.raw) == [b"bob"]
    assert isinstance(sm[-1], EndOfResponse) and isinstance(sm[-1].request, StmtExecute)
    assert session.client_raw == client and session.server_raw == server
    assert reencoded(session.client_events, session.conv.capabilities) == client
    assert reencoded(session.server_events, session.conv.capabilities) == server
    assert session.conv.pending == ()
    assert 1 not in session.conv.statements


def test_the_session_gives_the_same_events_byte_by_byte() -> None:
    client, server = full_session_bytes()
    whole = Session().s(server).c(client)
    split = Session()
    for i in range(max(len(client), len(server))):
        split.c(client[i : i + 1]).s(server[i : i + 1])
    assert split.client_events == whole.client_events
    assert split.server_events == whole.server_events


def test_deprecate_eof_session_track_and_multiple_results() -> None:
    caps = BASE_CAPS | C.DEPRECATE_EOF | C.SESSION_TRACK | C.MULTI_STATEMENTS
    state = b"\x01" + lenc(lenc(b"shop2"))
    ok_more = b"\xfe\x00\x00" + struct.pack("<HH", 0x000A, 0)
    server = b"".join(
        [
            pkt(0, greeting(caps)),
            pkt(2, b"\x00\x00\x00\x02\x40\x00\x00" + lenc(b"") + lenc(state)),
            pkt(1, b"\x01"),
            pkt(2, coldef(b"a", FieldType.LONG)),
            pkt(3, lenc(b"7")),
            pkt(4, ok_more),
            pkt(5, b"\x00\x01\x05\x02\x00\x01\x00" + lenc(b"Rows matched: 1")),
        ]
    )
    client = pkt(1, login(caps)) + pkt(0, b"\x03SELECT 7; UPDATE t SET a=1")
    session = Session().s(server).c(client)
    sm = messages(session.server_events)
    assert sm[1] == OkPacket(0, 0, 0x4002, 0, "", state)
    assert decode_session_state(state) == ((1, lenc(b"shop2")),)
    assert sm[3:] == [
        ColumnCount(1),
        sm[4],
        TextRow((b"7",)),
        OkPacket(0, 0, 0x0A, 0, None, None, 0xFE),
        OkPacket(1, 5, 2, 1, "Rows matched: 1"),
        EndOfResponse(Query("SELECT 7; UPDATE t SET a=1")),
    ]
    assert reencoded(session.server_events, session.conv.capabilities) == server


def test_auth_switch_and_full_auth_with_public_key() -> None:
    caps = BASE_CAPS
    pem = b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"
    server = b"".join(
        [
            pkt(0, greeting(caps, b"mysql_native_password")),
            pkt(2, b"\xfecaching_sha2_password\x00" + b"n" * 20 + b"\x00"),
            pkt(4, b"\x01\x04"),
            pkt(6, b"\x01" + pem),
            pkt(8, OK_AUTH),
        ]
    )
    client = b"".join([pkt(1, login(caps)), pkt(3, b"s" * 32), pkt(5, b"\x02"), pkt(7, b"e" * 256)])
    session = Session()
    for i in range(0, max(len(client), len(server)), 7):
        session.s(server[i : i + 7]).c(client[i : i + 7])
    sm = messages(session.server_events)
    assert sm[1] == AuthSwitchRequest("caching_sha2_password", b"n" * 20 + b"\x00")
    assert isinstance(sm[2], AuthMoreData) and sm[2].full_auth_required
    assert sm[3] == AuthMoreData(pem)
    assert messages(session.client_events)[1:] == [
        AuthSwitchResponse(b"s" * 32),
        ClientAuthData(b"\x02"),
        ClientAuthData(b"e" * 256),
    ]
    assert session.conv.phase is Phase.COMMAND
    assert reencoded(session.client_events, caps) == client


def test_ssl_request_holds_until_start_tls() -> None:
    caps = BASE_CAPS | C.SSL
    session = Session().s(pkt(0, greeting(caps)))
    ssl = struct.pack("<IIB", caps, 1 << 24, 0xFF) + bytes(23)
    client_hello = b"\x16\x03\x01\x00\xa5\x01"
    session.c(pkt(1, ssl) + client_hello)
    assert messages(session.client_events) == [SslRequest(caps, 1 << 24, 0xFF)]
    assert session.client.awaiting_tls
    assert session.client.start_tls() == client_hello
    session.c(pkt(2, login(caps))).s(pkt(3, OK_AUTH))
    assert isinstance(messages(session.client_events)[1], HandshakeResponse41)
    assert session.conv.phase is Phase.COMMAND and session.conv.tls


def test_local_infile_round() -> None:
    session = Session(Conversation(phase=Phase.COMMAND, capabilities=BASE_CAPS))
    client = pkt(0, b"\x03LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t")
    client += pkt(2, b"1,a\n2,b\n") + pkt(3, b"3,c\n") + pkt(4, b"")
    server = pkt(1, b"\xfb/tmp/x.csv") + pkt(5, b"\x00\x03\x00\x02\x00\x00\x00")
    session.s(server).c(client)
    assert messages(session.server_events)[:2] == [
        LocalInfileRequest("/tmp/x.csv"),
        OkPacket(3, 0, 2, 0, ""),
    ]
    assert messages(session.client_events)[1:] == [
        LocalInfileData(b"1,a\n2,b\n"),
        LocalInfileData(b"3,c\n"),
        LocalInfileData(b""),
    ]
    assert isinstance(session.server_events[-1], EndOfResponse)


def test_pipelined_execute_waits_for_the_prepare_reply() -> None:
    caps = BASE_CAPS | C.DEPRECATE_EOF
    session = Session(Conversation(phase=Phase.COMMAND, capabilities=caps))
    execute = b"\x17" + struct.pack("<IBI", 7, 0, 1) + b"\x02\x01" + b"\x03\x00\x06\x00"
    execute += (5).to_bytes(4, "little")
    again = b"\x17" + struct.pack("<IBI", 7, 0, 1) + b"\x00\x00" + (6).to_bytes(4, "little")
    session.c(pkt(0, b"\x16INSERT INTO t VALUES (?, ?)") + pkt(0, execute) + pkt(0, again))
    assert len(session.client_events) == 1  # the execute waits: its parameter count is unknown
    prepare_ok = b"\x00" + struct.pack("<IHHBH", 7, 0, 2, 0, 0)
    session.s(pkt(1, prepare_ok) + pkt(2, coldef(b"?", 3)) + pkt(3, coldef(b"?", 3)))
    cm = messages(session.client_events)
    assert cm[1] == StmtExecute(
        7, 0, 1, (Param(3, (5).to_bytes(4, "little")), Param(6, None)), True
    )
    assert cm[2] == StmtExecute(
        7, 0, 1, (Param(3, (6).to_bytes(4, "little")), Param(6, b"")), False
    )
    session.s(pkt(1, b"\x00\x01\x00\x02\x00\x00\x00") + pkt(1, b"\x00\x01\x00\x02\x00\x00\x00"))
    assert session.conv.pending == ()
    assert reencoded(session.client_events, caps) == session.client_raw


def test_statement_commands_wait_for_the_prepare_that_names_them() -> None:
    caps = BASE_CAPS | C.DEPRECATE_EOF
    session = Session(Conversation(phase=Phase.COMMAND, capabilities=caps))
    reset = pkt(0, b"\x1a" + struct.pack("<I", 3))
    session.c(pkt(0, b"\x16SELECT 1") + reset)
    assert messages(session.client_events) == [StmtPrepare("SELECT 1")]
    session.s(pkt(1, b"\x00" + struct.pack("<IHHBH", 3, 0, 0, 0, 0)))
    assert messages(session.client_events)[1:] == [StmtReset(3)]
    # With no prepare in flight, an unknown id is parsed at once.
    session.c(pkt(0, b"\x19" + struct.pack("<I", 99)))
    assert messages(session.client_events)[2:] == [StmtClose(99)]


def test_a_server_role_answers_for_itself() -> None:
    """The replay server writes its own replies: the conversation is told what they were."""
    conv = Conversation(phase=Phase.LOGIN)
    hello = Session().s(pkt(0, greeting(BASE_CAPS))).server_events[0]
    assert isinstance(hello, Packet) and isinstance(hello.message, HandshakeV10)
    conv.handshake = hello.message
    client = ClientParser(conv)
    client.feed(pkt(1, login(BASE_CAPS)) + pkt(0, b"\x16SELECT ?, ?"))
    assert isinstance(client.next_event(), Packet)
    assert client.next_event() is NEED_DATA  # the command waits for the login's answer
    conv.authenticated()
    prepare = client.next_event()
    assert isinstance(prepare, Packet) and prepare.message == StmtPrepare("SELECT ?, ?")
    assert conv.reply_seq == 1
    conv.reply_sent(PrepareOk(1, 0, 2))
    client.feed(pkt(0, b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x03\x00\x03\x00"
                    + struct.pack("<ii", 5, 6)))  # fmt: skip
    execute = client.next_event()
    assert isinstance(execute, Packet) and isinstance(execute.message, StmtExecute)
    assert [p.value for p in execute.message.params] == [struct.pack("<i", 5), struct.pack("<i", 6)]
    conv.reply_sent()
    assert conv.pending == ()
    client.discard_raw()
    assert client.take_raw() == b""
    with pytest.raises(ProtocolError, match="no command is waiting"):
        conv.reply_sent()
    with pytest.raises(ProtocolError, match="cannot accept a login"):
        conv.authenticated()


def test_query_attributes_and_execute_parameter_count() -> None:
    caps = BASE_CAPS | C.QUERY_ATTRIBUTES | C.DEPRECATE_EOF
    conv = Conversation(phase=Phase.COMMAND, capabilities=caps)
    session = Session(conv)
    plain = pkt(0, b"\x03\x00\x01SELECT 1")
    attr = pkt(0, b"\x03\x01\x01\x00\x01\xfe\x00" + lenc(b"a") + lenc(b"1") + b"SELECT 2")
    session.c(plain + attr)
    assert messages(session.client_events) == [
        Query("SELECT 1", QueryAttributes()),
        Query("SELECT 2", QueryAttributes((Param(FieldType.STRING, b"1", 0, "a"),))),
    ]
    assert reencoded(session.client_events, caps) == plain + attr


def test_binary_values_decode() -> None:
    assert decode_binary_value(FieldType.LONGLONG, b"\xff" * 8) == -1
    assert decode_binary_value(FieldType.LONGLONG, b"\xff" * 8, unsigned=True) == 2**64 - 1
    assert decode_binary_value(FieldType.DOUBLE, struct.pack("<d", 1.5)) == 1.5
    assert decode_binary_value(FieldType.NEWDECIMAL, b"12.50") == decimal.Decimal("12.50")
    value = struct.pack("<HBBBBBI", 2024, 2, 29, 13, 14, 15, 16)
    assert decode_binary_value(FieldType.DATETIME, value) == datetime.datetime(
        2024, 2, 29, 13, 14, 15, 16
    )
    assert decode_binary_value(FieldType.DATE, bytes(4)) == "0000-00-00"
    time = struct.pack("<BIBBB", 1, 1, 2, 3, 4)
    assert decode_binary_value(FieldType.TIME, time) == -datetime.timedelta(1, 7384)
    columns = [
        ColumnDefinition("s", "t", "t", "a", "a", 63, 20, FieldType.LONGLONG),
        ColumnDefinition("s", "t", "t", "b", "b", 255, 20, FieldType.VAR_STRING),
        ColumnDefinition("s", "t", "t", "c", "c", 63, 4, FieldType.TINY, flags=0x20),
    ]
    raw = b"\x00\x08" + (9).to_bytes(8, "little") + b"\xff"
    assert decode_binary_row(columns, raw) == [9, None, 255]


def test_generic_commands_and_replies() -> None:
    session = Session(Conversation(phase=Phase.COMMAND, capabilities=BASE_CAPS))
    session.c(pkt(0, b"\x09") + pkt(0, b"\x0e") + pkt(0, b"\x18\x01\x00\x00\x00\x00\x00data"))
    session.s(pkt(1, b"Uptime: 5  Threads: 1") + pkt(1, OK_AUTH))
    assert messages(session.client_events) == [
        Command(9, b""),
        Ping(),
        StmtSendLongData(1, 0, b"data"),
    ]
    assert messages(session.server_events) == [
        GenericResponse(b"Uptime: 5  Threads: 1"),
        EndOfResponse(Command(9, b"")),
        OkPacket(status=2),
        EndOfResponse(Ping()),
    ]


def test_err_packet_with_and_without_sql_state() -> None:
    session = Session()
    session.s(pkt(0, b"\xff\x69\x04Host 'x' is not allowed"))
    assert messages(session.server_events) == [
        ErrPacket(1129, "Host 'x' is not allowed", None),
        EndOfResponse(None),
    ]
    session = Session(Conversation(phase=Phase.COMMAND, capabilities=BASE_CAPS))
    session.c(pkt(0, b"\x03SELEC")).s(pkt(1, b"\xff\x28\x04#42000You have an error"))
    assert messages(session.server_events)[0] == ErrPacket(1064, "You have an error", "42000")


def test_a_packet_over_16_mib_spans_frames() -> None:
    sql = "SELECT '" + "x" * MAX_FRAME + "'"
    payload = b"\x03" + sql.encode()
    wire = pkt(0, payload[:MAX_FRAME]) + pkt(1, payload[MAX_FRAME:])
    assert encode_packet(Packet(0, Query(sql))) == wire
    session = Session(Conversation(phase=Phase.COMMAND, capabilities=BASE_CAPS))
    session.c(wire).s(pkt(2, OK_AUTH))
    assert messages(session.client_events) == [Query(sql)]
    assert messages(session.server_events)[0] == OkPacket(status=2)


def first_error(parser_is_client: bool, data: bytes, conv: Conversation) -> ProtocolError:
    parser = ClientParser(conv) if parser_is_client else ServerParser(conv)
    parser.feed(data)
    with pytest.raises(ProtocolError) as info:
        while parser.next_event() is not NEED_DATA:
            pass
    with pytest.raises(ProtocolError):
        parser.next_event()  # the parser stays failed
    return info.value


def command_conv() -> Conversation:
    conv = Conversation(phase=Phase.COMMAND, capabilities=BASE_CAPS)
    ClientParser(conv).feed(b"")
    return conv


@pytest.mark.parametrize(
    ("client", "data", "offset", "words"),
    [
        (False, pkt(1, greeting(BASE_CAPS)), 3, "sequence id 1"),
        (False, pkt(0, b"\x09" + greeting(BASE_CAPS)[1:]), 4, "protocol version 9"),
        (False, pkt(0, greeting(BASE_CAPS)[:30]), 33, "reserved bytes needs 10"),
        (True, pkt(0, b"\x19\x01\x00"), 5, "statement id"),
        (True, pkt(0, b"\x0e") + pkt(0, b"\x0e\x00"), 10, "unexpected bytes"),
        (True, pkt(0, b""), 0, "empty command"),
    ],
)
def test_errors_carry_stream_offsets(client: bool, data: bytes, offset: int, words: str) -> None:
    conv = Conversation() if not client else command_conv()
    error = first_error(client, data, conv)
    assert error.offset == offset
    assert words in error.message


def test_reply_with_wrong_sequence_id_and_non_minimal_lenenc() -> None:
    conv = command_conv()
    session = Session(conv)
    session.c(pkt(0, b"\x03SELECT 1"))
    with pytest.raises(ProtocolError, match="sequence id 2, expected 1"):
        session.s(pkt(2, b"\x01"))
    conv = command_conv()
    session = Session(conv)
    session.c(pkt(0, b"\x03SELECT 1"))
    with pytest.raises(ProtocolError, match="shortest form") as info:
        session.s(pkt(1, b"\x00\xfc\x01\x00\x00\x02\x00\x00\x00"))
    assert info.value.offset == 5


def test_eof_inside_a_packet_is_an_error_but_not_between_packets() -> None:
    parser = ServerParser(Conversation())
    parser.feed(pkt(0, greeting(BASE_CAPS)))
    assert isinstance(parser.next_event(), Packet)
    parser.feed_eof()
    assert parser.next_event() is NEED_DATA
    parser = ServerParser(Conversation())
    parser.feed(pkt(0, greeting(BASE_CAPS))[:-3])
    parser.feed_eof()
    with pytest.raises(ProtocolError, match="connection closed inside"):
        parser.next_event()


def test_take_buffered_returns_what_was_not_taken() -> None:
    parser = ServerParser(Conversation())
    parser.feed(b"\x05\x00\x00\x00\x0bjunk")
    with pytest.raises(ProtocolError):
        parser.next_event()
    assert parser.take_buffered() == b"\x05\x00\x00\x00\x0bjunk"


def test_oversized_packets_are_refused_before_they_arrive() -> None:
    parser = ClientParser(command_conv(), max_packet_size=100)
    parser.feed(b"\xff\xff\x00\x00\x03" + b"x" * 200)
    with pytest.raises(ProtocolError, match="max_packet_size=100"):
        parser.next_event()


def test_unsupported_compression_gives_up_after_login() -> None:
    caps = BASE_CAPS | C.COMPRESS
    session = Session().s(pkt(0, greeting(caps))).c(pkt(1, login(caps))).s(pkt(2, OK_AUTH))
    assert session.conv.phase is Phase.COMPRESSED
    with pytest.raises(ProtocolError, match="compression"):
        session.c(b"\x01\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0e")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT  *\n\tFROM t", "SELECT * FROM t"),
        ("SELECT 1 -- note\nFROM t", "SELECT 1 FROM t"),
        ("SELECT 1 # note\n", "SELECT 1"),
        ("SELECT/* c */1", "SELECT 1"),
        ("SELECT 'a  -- b /* c */'", "SELECT 'a  -- b /* c */'"),
        ('SELECT "x # y"  ,  `a  b`', 'SELECT "x # y" , `a  b`'),
        ("SELECT 'it''s  ok'", "SELECT 'it''s  ok'"),
        ("SELECT 'a\\'  b'", "SELECT 'a\\'  b'"),
        ("SELECT 5--3", "SELECT 5--3"),
        ("SELECT /*+ NO_ICP(t) */ a /*!80000 b */", "SELECT /*+ NO_ICP(t) */ a /*!80000 b */"),
        ("  ", ""),
    ],
)
def test_normalize_sql(text: str, expected: str) -> None:
    assert normalize_sql(text) == expected


def test_encoders_refuse_what_cannot_be_sent() -> None:
    with pytest.raises(ProtocolError, match="SESSION_TRACK"):
        encode_packet(Packet(1, OkPacket(info=None)), 0)
    with pytest.raises(ProtocolError, match="own message"):
        encode_packet(Packet(0, Command(0x03, b"SELECT 1")))
    with pytest.raises(ProtocolError, match="NUL"):
        encode_packet(Packet(1, AuthSwitchRequest("a\x00b", b"")))
    with pytest.raises(ProtocolError, match="8 bytes"):
        encode_packet(Packet(0, StmtExecute(1, params=(Param(8, b"\x01"),))))
