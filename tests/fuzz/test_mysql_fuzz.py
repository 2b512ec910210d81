"""Property and fuzz tests for the MySQL codec.

Whole sessions are generated as messages, encoded, and parsed back by a ClientParser and a
ServerParser sharing a Conversation: the messages must come back equal and re-encode to the
same bytes. Any input, valid or mutated, must give the same events and errors whether fed
whole, byte by byte or at random split points (in any interleaving of the two directions), and
only ProtocolError may escape.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import mutations

from wiretape.errors import ProtocolError
from wiretape.protocols.mysql import (
    NEED_DATA,
    AuthMoreData,
    AuthSwitchRequest,
    AuthSwitchResponse,
    BinaryRow,
    Capability,
    ClientAuthData,
    ClientMessage,
    ClientParser,
    ColumnCount,
    ColumnDefinition,
    Conversation,
    EndOfResponse,
    EofPacket,
    ErrPacket,
    Event,
    FieldType,
    HandshakeResponse41,
    HandshakeV10,
    LocalInfileData,
    LocalInfileRequest,
    Message,
    OkPacket,
    Packet,
    Param,
    Ping,
    PrepareOk,
    Query,
    QueryAttributes,
    Quit,
    ServerParser,
    StmtClose,
    StmtExecute,
    StmtPrepare,
    StmtSendLongData,
    TextRow,
    encode_packet,
    split_binary_row,
)
from wiretape.protocols.mysql.exchange import CODEC, Tracker, decode_messages, encode_reply
from wiretape.protocols.wire import PlainError

FAST = settings(
    max_examples=int(os.environ.get("WIRETAPE_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
C = Capability
BASE = (
    C.LONG_PASSWORD | C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.CONNECT_WITH_DB
    | C.TRANSACTIONS | C.MULTI_RESULTS | C.LOCAL_FILES
)  # fmt: skip
OPTIONAL = [
    C.DEPRECATE_EOF,
    C.SESSION_TRACK,
    C.QUERY_ATTRIBUTES,
    C.PLUGIN_AUTH_LENENC_CLIENT_DATA,
    C.CONNECT_ATTRS,
]
TYPES = [
    FieldType.TINY, FieldType.SHORT, FieldType.LONG, FieldType.LONGLONG, FieldType.DOUBLE,
    FieldType.VAR_STRING, FieldType.BLOB, FieldType.NEWDECIMAL, FieldType.DATETIME,
    FieldType.DATE, FieldType.TIME, FieldType.NULL,
]  # fmt: skip
WIDTH: dict[int, int] = {
    FieldType.TINY: 1, FieldType.SHORT: 2, FieldType.LONG: 4, FieldType.LONGLONG: 8,
    FieldType.DOUBLE: 8, FieldType.NULL: 0,
}  # fmt: skip

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
blobs = st.binary(max_size=24)


@st.composite
def value_for(draw: st.DrawFn, ftype: int) -> bytes:
    if ftype in WIDTH:
        return draw(st.binary(min_size=WIDTH[ftype], max_size=WIDTH[ftype]))
    if ftype in (FieldType.DATETIME, FieldType.DATE, FieldType.TIME):
        return draw(st.sampled_from([b"", bytes(4), bytes(7), bytes(8), bytes(11)]))
    return draw(st.binary(max_size=300 if draw(st.integers(0, 9)) == 0 else 20))


@st.composite
def column(draw: st.DrawFn, ftype: int | None = None) -> ColumnDefinition:
    return ColumnDefinition(
        draw(texts), draw(texts), draw(texts), draw(texts), draw(texts),
        draw(st.sampled_from([63, 255, 33])), draw(st.integers(0, 2**32 - 1)),
        draw(st.sampled_from(TYPES)) if ftype is None else ftype,
        draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 255)), draw(st.just("def") | texts),
    )  # fmt: skip


@st.composite
def ok_packet(draw: st.DrawFn, caps: int, header: int = 0, more: bool = False) -> OkPacket:
    status = draw(st.integers(0, 0xFFFF)) & ~0x0008 | (0x0008 if more else 0)
    info: str | None = draw(texts)
    state = None
    if caps & C.SESSION_TRACK:
        if draw(st.booleans()):
            info, status = None, status & ~0x4000
        elif status & 0x4000:
            state = draw(blobs)
    else:
        status &= ~0x4000 if draw(st.booleans()) else 0xFFFF
    big = st.integers(0, 2**64 - 1) | st.integers(0, 300)
    return OkPacket(draw(big), draw(big), status, draw(st.integers(0, 0xFFFF)), info, state, header)


errs = st.builds(
    ErrPacket,
    st.integers(0, 0xFFFE),
    texts.filter(lambda t: not t.startswith("#")),
    st.sampled_from(["HY000", "42000", "23000"]),
)


@dataclass
class Script:
    caps: int
    client: list[Packet] = field(default_factory=list)
    server: list[Packet] = field(default_factory=list)

    def wire(self) -> tuple[bytes, bytes]:
        return (
            b"".join(encode_packet(p, self.caps) for p in self.client),
            b"".join(encode_packet(p, self.caps) for p in self.server),
        )


def end_of_results(draw: st.DrawFn, s: Script, seq: int, more: bool) -> int:
    if s.caps & C.DEPRECATE_EOF:
        s.server.append(Packet(seq, draw(ok_packet(s.caps, 0xFE, more))))
    else:
        status = draw(st.integers(0, 0xFFFF)) & ~0x0048 | (0x0008 if more else 0)
        s.server.append(Packet(seq, EofPacket(draw(st.integers(0, 9)), status)))
    return seq + 1


def result_set(draw: st.DrawFn, s: Script, seq: int, binary: bool, more: bool) -> int:
    n = draw(st.integers(1, 4))
    cols = [draw(column()) for _ in range(n)]
    s.server.append(Packet(seq, ColumnCount(n)))
    seq += 1
    for col in cols:
        s.server.append(Packet(seq, col))
        seq += 1
    if not s.caps & C.DEPRECATE_EOF:
        s.server.append(Packet(seq, EofPacket(0, 2)))
        seq += 1
    for _ in range(draw(st.integers(0, 3))):
        if binary:
            values = [None if draw(st.booleans()) else draw(value_for(c.type)) for c in cols]
            bits = sum(1 << (i + 2) for i, v in enumerate(values) if v is None)
            raw = b"\x00" + bits.to_bytes((n + 9) // 8, "little")
            raw += b"".join(
                b"" if v is None else encode_value(c.type, v)
                for c, v in zip(cols, values, strict=True)
            )
            assert split_binary_row([c.type for c in cols], raw) == values
            s.server.append(Packet(seq, BinaryRow(raw)))
        else:
            row = tuple(draw(st.none() | blobs) for _ in cols)
            s.server.append(Packet(seq, TextRow(row)))
        seq += 1
    return end_of_results(draw, s, seq, more)


def encode_value(ftype: int, value: bytes) -> bytes:
    if ftype in WIDTH:
        return value
    if ftype in (FieldType.DATETIME, FieldType.DATE, FieldType.TIME):
        return bytes([len(value)]) + value
    prefix = bytes([len(value)]) if len(value) < 251 else b"\xfc" + len(value).to_bytes(2, "little")
    return prefix + value


@st.composite
def session(draw: st.DrawFn) -> Script:
    caps = BASE
    for flag in OPTIONAL:
        if draw(st.booleans()):
            caps |= flag
    s = Script(caps)
    s.server.append(
        Packet(
            0,
            HandshakeV10(
                draw(texts), draw(st.integers(0, 2**32 - 1)), draw(st.binary(min_size=8,
                                                                            max_size=8)),
                caps, 255, 2, 21, draw(st.binary(min_size=12, max_size=12)) + b"\x00",
                draw(st.sampled_from(["caching_sha2_password", "mysql_native_password"])),
            ),
        )
    )  # fmt: skip
    attrs = draw(blobs) if caps & C.CONNECT_ATTRS else None
    s.client.append(
        Packet(
            1,
            HandshakeResponse41(
                caps, 1 << 24, 255, draw(texts), draw(st.binary(max_size=32)), draw(texts),
                "caching_sha2_password", attrs,
            ),
        )
    )  # fmt: skip
    how = draw(st.sampled_from(["ok", "fast", "switch", "full"]))
    if how == "fast":
        s.server += [Packet(2, AuthMoreData(b"\x03")), Packet(3, draw(ok_packet(caps)))]
    elif how == "switch":
        s.server.append(Packet(2, AuthSwitchRequest("mysql_native_password", draw(blobs))))
        s.client.append(Packet(3, AuthSwitchResponse(draw(blobs))))
        s.server.append(Packet(4, draw(ok_packet(caps))))
    elif how == "full":
        s.server.append(Packet(2, AuthMoreData(b"\x04")))
        s.client.append(Packet(3, ClientAuthData(draw(blobs))))
        s.server.append(Packet(4, draw(ok_packet(caps))))
    else:
        s.server.append(Packet(2, draw(ok_packet(caps))))
    stmt_id = 0
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["query", "prepare", "ping", "infile"]))
        if kind == "ping":
            s.client.append(Packet(0, Ping()))
            s.server.append(Packet(1, draw(ok_packet(caps) | errs)))
        elif kind == "infile":
            s.client.append(
                Packet(0, Query("LOAD DATA LOCAL INFILE 'f' INTO TABLE t", attrs_of(caps)))
            )
            s.server.append(Packet(1, LocalInfileRequest("f")))
            chunks = draw(st.lists(st.binary(min_size=1, max_size=30), max_size=3))
            for i, chunk in enumerate([*chunks, b""]):
                s.client.append(Packet(2 + i, LocalInfileData(chunk)))
            s.server.append(Packet(3 + len(chunks), draw(ok_packet(caps) | errs)))
        elif kind == "query":
            sql = draw(texts)
            attrs_q = attrs_of(caps)
            if attrs_q is not None and draw(st.booleans()):
                attrs_q = QueryAttributes(
                    (Param(FieldType.VAR_STRING, draw(blobs), 0, draw(texts)),)
                )
            s.client.append(Packet(0, Query(sql, attrs_q)))
            seq = 1
            for i in range(draw(st.integers(1, 2))):
                more = i == 0 and draw(st.booleans())
                if draw(st.booleans()):
                    seq = result_set(draw, s, seq, False, more)
                else:
                    s.server.append(Packet(seq, draw(ok_packet(caps, 0, more))))
                    seq += 1
                if not more:
                    break
            else:
                s.server.append(Packet(seq, draw(errs)))
        else:
            stmt_id += 1
            n_params = draw(st.integers(0, 3))
            types = [draw(st.sampled_from(TYPES)) for _ in range(n_params)]
            s.client.append(Packet(0, StmtPrepare(draw(texts))))
            s.server.append(Packet(1, PrepareOk(stmt_id, 1, n_params, 0)))
            seq = 2
            for block in (n_params, 1):
                for _ in range(block):
                    s.server.append(Packet(seq, draw(column())))
                    seq += 1
                if block and not caps & C.DEPRECATE_EOF:
                    s.server.append(Packet(seq, EofPacket(0, 2)))
                    seq += 1
            for execution in range(draw(st.integers(1, 2))):
                params = tuple(
                    Param(t, None if draw(st.booleans()) else draw(value_for(t)), 0,
                          "" if caps & C.QUERY_ATTRIBUTES else None)
                    for t in types
                )  # fmt: skip
                bound = execution == 0 or not params or draw(st.booleans())
                if not bound:
                    params = tuple(Param(p.type, p.value, 0, None) for p in params)
                if params and draw(st.integers(0, 3)) == 0:  # one parameter sent as long data
                    i = draw(st.integers(0, len(params) - 1))
                    for chunk in draw(st.lists(blobs, min_size=1, max_size=2)):
                        s.client.append(Packet(0, StmtSendLongData(stmt_id, i, chunk)))
                    p = params[i]
                    params = (*params[:i], Param(p.type, None, 0, p.name, True), *params[i + 1 :])
                s.client.append(
                    Packet(0, StmtExecute(stmt_id, 0, 1, params, bound,
                                          bool(caps & C.QUERY_ATTRIBUTES and n_params)))
                )  # fmt: skip
                if draw(st.booleans()):
                    result_set(draw, s, 1, True, False)
                else:
                    s.server.append(Packet(1, draw(ok_packet(caps) | errs)))
            if draw(st.booleans()):
                s.client.append(Packet(0, StmtClose(stmt_id)))
    return s


def attrs_of(caps: int) -> QueryAttributes | None:
    return QueryAttributes() if caps & C.QUERY_ATTRIBUTES else None


# -- the harness -------------------------------------------------------------------------------


@dataclass
class Outcome:
    client: list[Event] = field(default_factory=list)
    server: list[Event] = field(default_factory=list)
    client_raw: bytes = b""
    server_raw: bytes = b""
    client_error: tuple[str, int | None] | None = None
    server_error: tuple[str, int | None] | None = None


def run(client: list[bytes], server: list[bytes], order: list[bool]) -> Outcome:
    """Feed the pieces of both directions in ``order`` (True: next client piece)."""
    conv = Conversation()
    parsers = {True: ClientParser(conv), False: ServerParser(conv)}
    out = Outcome()
    failed = {True: False, False: False}

    def pump() -> None:
        progress = True
        while progress:
            progress = False
            for side, parser in parsers.items():
                if failed[side]:
                    continue
                try:
                    event = parser.next_event()
                except ProtocolError as exc:
                    failed[side] = True
                    error = (exc.message, exc.offset)
                    if side:
                        out.client_error = error
                    else:
                        out.server_error = error
                    continue
                if side:
                    out.client_raw += parser.take_raw()
                else:
                    out.server_raw += parser.take_raw()
                if event is NEED_DATA:
                    continue
                assert isinstance(event, Event)
                (out.client if side else out.server).append(event)
                progress = True

    queues = {True: list(client), False: list(server)}
    for side in [*order, *([True] * len(client)), *([False] * len(server))]:
        if queues[side]:
            piece = queues[side].pop(0)
            if not failed[side]:
                with contextlib.suppress(ProtocolError):  # next_event() reports it
                    parsers[side].feed(piece)
            pump()
    for side, parser in parsers.items():
        if not failed[side]:
            with contextlib.suppress(ProtocolError):
                parser.feed_eof()
    pump()
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def check_consistent(client: bytes, server: bytes, cuts: list[int], order: list[bool]) -> Outcome:
    whole = run([client], [server], [False, True])
    bytewise = run(
        [client[i : i + 1] for i in range(len(client))],
        [server[i : i + 1] for i in range(len(server))],
        [i % 2 == 0 for i in range(len(client) + len(server))],
    )
    split = run(split_at(client, cuts), split_at(server, cuts[::-1]), order)
    for other in (bytewise, split):
        assert other == whole
    caps = 0
    for event in whole.server:
        if isinstance(event, Packet) and isinstance(event.message, HandshakeV10):
            caps = event.message.capabilities
    for events, raw in ((whole.client, whole.client_raw), (whole.server, whole.server_raw)):
        packets = [e for e in events if isinstance(e, Packet)]
        assert b"".join(encode_packet(p, caps) for p in packets) == raw
    assert client.startswith(whole.client_raw) and server.startswith(whole.server_raw)
    return whole


cut_lists = st.lists(st.integers(0, 10_000), max_size=8)
orders = st.lists(st.booleans(), max_size=16)


@FAST
@given(session(), cut_lists, orders)
def test_valid_sessions_round_trip_however_split(
    script: Script, cuts: list[int], order: list[bool]
) -> None:
    client, server = script.wire()
    whole = check_consistent(client, server, cuts, order)
    assert whole.client_error is None and whole.server_error is None
    assert [e for e in whole.client if isinstance(e, Packet)] == script.client
    assert [e for e in whole.server if isinstance(e, Packet)] == script.server
    assert whole.client_raw == client and whole.server_raw == server


INTERESTING = [b"\x00", b"\xfe", b"\xff", b"\xfb", b"\xfc", b"\x01", b"\x03", b"\x17"]


def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    return mutations.mutated(base, INTERESTING, rounds=3, max_delete=6, max_duplicate=12)


@FAST
@given(st.data(), session(), cut_lists, orders, st.booleans())
def test_fuzz_mutated_sessions(
    data: st.DataObject, script: Script, cuts: list[int], order: list[bool], client_side: bool
) -> None:
    client, server = script.wire()
    if client_side:
        client = data.draw(mutated(client))
    else:
        server = data.draw(mutated(server))
    check_consistent(client, server, cuts, order)


@FAST
@given(st.binary(max_size=300), st.binary(max_size=300), cut_lists, orders)
def test_fuzz_arbitrary_bytes(
    client: bytes, server: bytes, cuts: list[int], order: list[bool]
) -> None:
    check_consistent(client, server, cuts, order)


@FAST
@given(session(), st.binary(max_size=200), cut_lists, orders)
def test_fuzz_garbage_after_a_valid_login(
    script: Script, garbage: bytes, cuts: list[int], order: list[bool]
) -> None:
    client, server = script.wire()
    check_consistent(client + garbage, server, cuts, order)
    check_consistent(client, server + garbage, cuts, order)


def test_messages_cover_every_kind() -> None:
    kinds: set[type[Message]] = {HandshakeV10, OkPacket, ErrPacket, TextRow, BinaryRow}
    assert kinds <= set(Message.__args__)


# -- the stored form of exchanges ------------------------------------------------------------


@FAST
@given(session())
def test_stored_exchanges_encode_back_to_the_recorded_bytes(script: Script) -> None:
    """Every exchange of a session, stored as plain data (JSON, the journal's form) and
    encoded again for the same capabilities, gives back exactly the bytes the server sent; its
    stored request gives back the same match key."""
    client, server = script.wire()
    whole = run([client], [server], [False, True])
    caps = script.caps
    tracker = Tracker()
    exchanges = []
    logged_in = False
    for event in _by_command(whole):
        if not logged_in:
            logged_in = isinstance(event, EndOfResponse)
            continue
        if isinstance(event, Packet) and isinstance(event.message, ClientMessage):
            tracker.client(event, 0.0)
        else:
            exchanges += tracker.server(event, 0.0)
    for exchange in exchanges:
        if any(isinstance(m, LocalInfileRequest) for m in exchange.messages):
            continue  # the reply resumes after the client's file: LOCAL INFILE is declined
        data = json.loads(json.dumps(exchange.response_data()))
        recorded = b"".join(encode_packet(p, caps) for p in exchange.packets)
        seq = exchange.packets[0].seq
        assert encode_reply(decode_messages(data), seq=seq, capabilities=caps) == recorded
        again = CODEC.request(json.loads(json.dumps(exchange.request.data)))
        assert again.key == exchange.request.key


def _by_command(outcome: Outcome) -> list[Event]:
    """Each command followed by the server events of its reply (and the login first)."""
    server = list(outcome.server)
    out: list[Event] = []

    def reply() -> None:
        while server:
            event = server.pop(0)
            out.append(event)
            if isinstance(event, EndOfResponse):
                return

    for event in outcome.client:
        out.append(event)
        message = event.message if isinstance(event, Packet) else None
        if isinstance(message, HandshakeResponse41):
            while server and not isinstance(server[0], EndOfResponse):
                out.append(server.pop(0))
            if server:
                out.append(server.pop(0))
        elif message is not None and not isinstance(
            message,
            StmtClose
            | StmtSendLongData
            | LocalInfileData
            | AuthSwitchResponse
            | ClientAuthData
            | Quit,
        ):
            reply()
    out.extend(server)
    return out


plain_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["messages", "OK", "ERR", "EOF", "Columns", "Column", "Row", "BinaryRow",
             "PrepareOk", "Handshake", "status", "affected_rows", "insert_id", "name", "type",
             "table", "schema", "charset", "length", "flags", "count", "metadata", "base64",
             "query", "execute", "params", "types", "capabilities", "server_version", "code",
             "message", "statement_id", "columns"]
        ),
        inner,
        max_size=4,
    ),
    max_leaves=20,
)  # fmt: skip


@FAST
@given(plain_data)
def test_arbitrary_stored_data_is_refused_with_plain_errors_only(data: object) -> None:
    for check in (CODEC.request, CODEC.check_response):
        with contextlib.suppress(PlainError):
            check(data)
