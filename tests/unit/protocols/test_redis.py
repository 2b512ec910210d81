from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretape.errors import ProtocolError
from wiretape.protocols.redis import (
    NEED_DATA,
    AggregateEnd,
    AggregateKind,
    AggregateStart,
    Array,
    Attributed,
    BigNumber,
    Boolean,
    BulkChunk,
    BulkEnd,
    BulkError,
    BulkKind,
    BulkStart,
    BulkString,
    Command,
    Double,
    Event,
    Integer,
    Item,
    Kind,
    Map,
    NeedData,
    Null,
    NullKind,
    Push,
    PushData,
    Reply,
    RespParser,
    Set,
    SimpleError,
    SimpleString,
    Value,
    Verbatim,
    command_name,
    encode_command,
    encode_event,
    encode_inline,
    encode_reply,
    redact_auth,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def drain(parser: RespParser) -> list[Event]:
    events: list[Event] = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return events
        assert not isinstance(event, NeedData)
        events.append(event)


def parse(kind: Kind, data: bytes, **options: int) -> list[Event]:
    parser = RespParser(kind, **options)
    parser.feed(data)
    events = drain(parser)
    parser.feed_eof()
    return events + drain(parser)


def parse_error(kind: Kind, data: bytes, **options: int) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        parse(kind, data, **options)
    return info.value


def assemble(events: list[Event], *, command: bool = False) -> list[Event]:
    """Rebuild streamed nodes into the Reply/Push/Command events a large threshold gives."""
    out: list[Event] = []
    stack: list[tuple[AggregateKind, int, list[Value]]] = []
    bulk: tuple[BulkKind, bytes, list[bytes]] | None = None

    def done(value: Value) -> None:
        if stack:
            stack[-1][2].append(value)
            return
        if command:
            assert isinstance(value, Array)
            out.append(Command(tuple(v.data for v in value.items if isinstance(v, BulkString))))
        else:
            out.append(expected_event(value))

    for event in events:
        if isinstance(event, AggregateStart):
            stack.append((event.kind, event.length, []))
        elif isinstance(event, Item):
            done(event.value)
        elif isinstance(event, BulkStart):
            bulk = (event.kind, event.format, [])
        elif isinstance(event, BulkChunk):
            assert bulk is not None
            bulk[2].append(event.data)
        elif isinstance(event, BulkEnd):
            assert bulk is not None
            data = b"".join(bulk[2])
            kind = bulk[0]
            if kind is BulkKind.STRING:
                done(BulkString(data))
            elif kind is BulkKind.ERROR:
                done(BulkError(data))
            else:
                done(Verbatim(bulk[1], data))
            bulk = None
        elif isinstance(event, AggregateEnd):
            akind, _, items = stack.pop()
            pairs = tuple(zip(items[::2], items[1::2], strict=False))
            value: Value
            if akind is AggregateKind.ARRAY:
                value = Array(tuple(items))
            elif akind is AggregateKind.SET:
                value = Set(tuple(items))
            elif akind is AggregateKind.PUSH:
                value = PushData(tuple(items))
            elif akind is AggregateKind.MAP:
                value = Map(pairs)
            else:
                value = Attributed(tuple(zip(items[:-1:2], items[1:-1:2], strict=True)), items[-1])
            done(value)
        else:
            out.append(event)
    assert not stack and bulk is None
    return out


# -- every type, exactly ------------------------------------------------------------------------

CASES: list[tuple[bytes, Value]] = [
    (b"+OK\r\n", SimpleString(b"OK")),
    (b"+\r\n", SimpleString(b"")),
    (b"-ERR unknown command\r\n", SimpleError(b"ERR unknown command")),
    (b":0\r\n", Integer(0)),
    (b":-42\r\n", Integer(-42)),
    (b":9223372036854775807\r\n", Integer(2**63 - 1)),
    (b":-9223372036854775808\r\n", Integer(-(2**63))),
    (b"$5\r\nhe\r\no\r\n", BulkString(b"he\r\no")),
    (b"$0\r\n\r\n", BulkString(b"")),
    (b"$-1\r\n", Null(NullKind.BULK)),
    (b"*-1\r\n", Null(NullKind.ARRAY)),
    (b"_\r\n", Null()),
    (b"#t\r\n", Boolean(True)),
    (b"#f\r\n", Boolean(False)),
    (b",1.23\r\n", Double("1.23")),
    (b",10\r\n", Double("10")),
    (b",1.5e-07\r\n", Double("1.5e-07")),
    (b",1E+300\r\n", Double("1E+300")),
    (b",inf\r\n", Double("inf")),
    (b",-inf\r\n", Double("-inf")),
    (b",nan\r\n", Double("nan")),
    (b",-nan\r\n", Double("-nan")),
    (b",NAN\r\n", Double("NAN")),
    (
        b"(3492890328409238509324850943850943825024385\r\n",
        BigNumber("3492890328409238509324850943850943825024385"),
    ),
    (b"(-12\r\n", BigNumber("-12")),
    (b"!21\r\nSYNTAX invalid syntax\r\n", BulkError(b"SYNTAX invalid syntax")),
    (b"=15\r\ntxt:Some string\r\n", Verbatim(b"txt", b"Some string")),
    (b"=4\r\nmkd:\r\n", Verbatim(b"mkd", b"")),
    (b"*0\r\n", Array(())),
    (
        b"*2\r\n*3\r\n:1\r\n$5\r\nhello\r\n:2\r\n#f\r\n",
        Array((Array((Integer(1), BulkString(b"hello"), Integer(2))), Boolean(False))),
    ),
    (
        b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
        Map(((SimpleString(b"first"), Integer(1)), (SimpleString(b"second"), Integer(2)))),
    ),
    (b"%0\r\n", Map(())),
    (b"~2\r\n+orange\r\n#t\r\n", Set((SimpleString(b"orange"), Boolean(True)))),
    (b"~0\r\n", Set(())),
    (
        b"|1\r\n+ttl\r\n:3600\r\n:3\r\n",
        Attributed(((SimpleString(b"ttl"), Integer(3600)),), Integer(3)),
    ),
    (b"|0\r\n+x\r\n", Attributed((), SimpleString(b"x"))),
    (
        b"*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n",
        Array(
            (
                Integer(1),
                Integer(2),
                Attributed(((SimpleString(b"ttl"), Integer(3600)),), Integer(3)),
            )
        ),
    ),
    (
        b"|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n_\r\n",
        Attributed(
            ((SimpleString(b"a"), SimpleString(b"b")),),
            Attributed(((SimpleString(b"c"), SimpleString(b"d")),), Null()),
        ),
    ),
]


@pytest.mark.parametrize(("wire", "value"), CASES, ids=[repr(c[0][:24]) for c in CASES])
def test_every_type_parses_and_encodes_exactly(wire: bytes, value: Value) -> None:
    assert parse(Kind.REPLY, wire) == [Reply(value)]
    assert encode_reply(value) == wire
    assert encode_event(Reply(value)) == wire


def test_null_kinds_stay_distinct() -> None:
    events = parse(Kind.REPLY, b"$-1\r\n*-1\r\n_\r\n")
    assert [e.value for e in events if isinstance(e, Reply)] == [
        Null(NullKind.BULK),
        Null(NullKind.ARRAY),
        Null(NullKind.RESP3),
    ]
    assert len({encode_event(e) for e in events}) == 3


def test_simple_and_bulk_strings_stay_distinct() -> None:
    assert parse(Kind.REPLY, b"+OK\r\n$2\r\nOK\r\n") == [
        Reply(SimpleString(b"OK")),
        Reply(BulkString(b"OK")),
    ]


def test_double_and_big_number_values() -> None:
    assert Double("1.5e-07").value == 1.5e-07
    assert Double("-inf").value == -math.inf
    assert math.isnan(Double("-nan").value)
    assert math.isnan(Double("nan(123)").value)
    assert BigNumber("-12345678901234567890123").value == -12345678901234567890123


def test_push_frames_are_told_apart_from_replies() -> None:
    wire = (
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        b"$9\r\nGet-Reply\r\n"
        b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
    )
    events = parse(Kind.REPLY, wire)
    assert events == [
        Push(PushData((BulkString(b"message"), BulkString(b"ch"), BulkString(b"hi")))),
        Reply(BulkString(b"Get-Reply")),
        Push(PushData((BulkString(b"invalidate"), Array((BulkString(b"k"),))))),
    ]
    first = events[0]
    assert isinstance(first, Push)
    assert first.items[0] == BulkString(b"message")
    assert b"".join(encode_event(e) for e in events) == wire


def test_an_attribute_before_a_push_keeps_it_a_push() -> None:
    wire = b"|1\r\n+k\r\n+v\r\n>1\r\n+pong\r\n"
    (event,) = parse(Kind.REPLY, wire)
    assert isinstance(event, Push)
    assert event.items == (SimpleString(b"pong"),)
    assert encode_event(event) == wire


def test_push_inside_an_aggregate_is_refused() -> None:
    error = parse_error(Kind.REPLY, b"*2\r\n:1\r\n>1\r\n+x\r\n")
    assert error.offset == 8
    assert "top level" in error.message
    error = parse_error(Kind.REPLY, b"|1\r\n>1\r\n+x\r\n+v\r\n:1\r\n")
    assert error.offset == 4
    with pytest.raises(ProtocolError):
        encode_reply(Array((PushData(()),)))


# -- round trips ---------------------------------------------------------------------------------

line_bytes = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)
doubles = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.17g}"),
    st.sampled_from(["inf", "-inf", "nan", "-nan", "10", "1.5", "1e+300", "0.0001", "3E-5"]),
).filter(
    lambda t: (
        "." in t or t.lstrip("-").isalpha() or t.replace("-", "").isdigit() or "e" in t.lower()
    )
)
scalars: st.SearchStrategy[Value] = st.one_of(
    st.builds(SimpleString, line_bytes),
    st.builds(SimpleError, line_bytes),
    st.builds(Integer, st.integers(-(2**63), 2**63 - 1)),
    st.builds(BulkString, st.binary(max_size=40)),
    st.builds(Null, st.sampled_from(NullKind)),
    st.builds(Boolean, st.booleans()),
    st.builds(Double, doubles),
    st.builds(BigNumber, st.integers(-(10**40), 10**40).map(str)),
    st.builds(BulkError, st.binary(max_size=30)),
    st.builds(Verbatim, st.binary(min_size=3, max_size=3), st.binary(max_size=30)),
)


def _pairs(
    children: st.SearchStrategy[Value],
) -> st.SearchStrategy[tuple[tuple[Value, Value], ...]]:
    return st.lists(st.tuples(children, children), max_size=3).map(tuple)


def _nested(children: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    items = st.lists(children, max_size=4).map(tuple)
    return st.one_of(
        st.builds(Array, items),
        st.builds(Set, items),
        st.builds(Map, _pairs(children)),
        st.builds(Attributed, _pairs(children), children),
    )


values: st.SearchStrategy[Value] = st.recursive(scalars, _nested, max_leaves=20)
top_values: st.SearchStrategy[Value] = st.one_of(
    values,
    st.builds(PushData, st.lists(values, max_size=4).map(tuple)),
    st.builds(
        Attributed, _pairs(values), st.builds(PushData, st.lists(values, max_size=3).map(tuple))
    ),
)


def expected_event(value: Value) -> Event:
    inner = value
    while isinstance(inner, Attributed):
        inner = inner.value
    return Push(value) if isinstance(inner, PushData) else Reply(value)


@PROPS
@given(st.lists(top_values, min_size=1, max_size=5))
def test_values_round_trip_through_bytes(stream: list[Value]) -> None:
    wire = b"".join(encode_reply(v) for v in stream)
    events = parse(Kind.REPLY, wire)
    assert events == [expected_event(v) for v in stream]
    assert b"".join(encode_event(e) for e in events) == wire


@PROPS
@given(st.lists(top_values, min_size=1, max_size=4), st.integers(0, 8))
def test_streamed_values_reassemble_and_re_encode_exactly(
    stream: list[Value], threshold: int
) -> None:
    wire = b"".join(encode_reply(v) for v in stream)
    events = parse(Kind.REPLY, wire, stream_threshold=threshold)
    assert b"".join(encode_event(e) for e in events) == wire
    assert assemble(events) == [expected_event(v) for v in stream]


args_lists = st.lists(st.binary(max_size=20), min_size=1, max_size=6).map(tuple)


@PROPS
@given(st.lists(args_lists, min_size=1, max_size=5))
def test_pipelined_commands_round_trip(commands: list[tuple[bytes, ...]]) -> None:
    wire = b"".join(encode_command(c) for c in commands)
    events = parse(Kind.COMMAND, wire)
    assert events == [Command(c) for c in commands]
    assert b"".join(encode_event(e) for e in events) == wire


@PROPS
@given(args_lists)
def test_encode_inline_is_split_back_into_the_same_args(args: tuple[bytes, ...]) -> None:
    line = encode_inline(args)
    assert parse(Kind.COMMAND, line) == [Command(args, True, line)]


@PROPS
@given(st.lists(args_lists, min_size=1, max_size=3), st.integers(0, 6))
def test_streamed_command_arguments_reassemble(
    commands: list[tuple[bytes, ...]], threshold: int
) -> None:
    wire = b"".join(encode_command(c) for c in commands)
    events = parse(Kind.COMMAND, wire, stream_threshold=threshold)
    assert b"".join(encode_event(e) for e in events) == wire
    assert assemble(events, command=True) == [Command(c) for c in commands]


# -- commands -----------------------------------------------------------------------------------


def test_pipelined_commands_in_one_feed() -> None:
    wire = (
        b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
        b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$3\r\n\x00\r\n\r\n"
        b"PING\r\n"
        b"*1\r\n$4\r\nEXEC\r\n"
    )
    assert parse(Kind.COMMAND, wire) == [
        Command((b"GET", b"a")),
        Command((b"SET", b"b", b"\x00\r\n")),
        Command((b"PING",), True, b"PING\r\n"),
        Command((b"EXEC",)),
    ]


INLINE = [
    (b"PING\r\n", (b"PING",)),
    (b"PING\n", (b"PING",)),
    (b"  set  k   v \t\r\n", (b"set", b"k", b"v")),
    (b'set "a b" c\r\n', (b"set", b"a b", b"c")),
    (b'set k "\\x41\\n\\r\\t\\b\\a\\"\\\\\\q"\r\n', (b"set", b"k", b'A\n\r\t\x08\x07"\\q')),
    (b"set k 'it\\'s \"x\"'\r\n", (b"set", b"k", b'it\'s "x"')),
    (b"set k 'a\\nb'\r\n", (b"set", b"k", b"a\\nb")),
    (b'set ab"c d"e\r\n', None),  # closing quote followed by a non-space
    (b'set ab"c d" e\r\n', (b"set", b"abc d", b"e")),
    (b'get ""\r\n', (b"get", b"")),
    (b"get a\x0bb\r\n", (b"get", b"a\x0bb")),
    (b"\x0b get\r\n", (b"get",)),
    (b"a\rb\r\n", (b"a", b"b")),
    (b"\r\n", ()),
    (b"\n", ()),
    (b'get "abc\r\n', None),
    (b"get 'abc\r\n", None),
    (b"get a\x00b\r\n", None),
]


@pytest.mark.parametrize(("line", "args"), INLINE, ids=[repr(c[0]) for c in INLINE])
def test_inline_commands_split_like_redis_server(
    line: bytes, args: tuple[bytes, ...] | None
) -> None:
    if args is None:
        error = parse_error(Kind.COMMAND, line)
        assert error.offset is not None
        return
    events = parse(Kind.COMMAND, line)
    assert events == [Command(args, True, line)]
    assert encode_event(events[0]) == line


def test_inline_line_too_long() -> None:
    error = parse_error(Kind.COMMAND, b"x" * 100, max_line=50)
    assert error.offset == 0
    assert "max_line=50" in error.message
    assert parse(Kind.COMMAND, b"x" * 50 + b"\r\n", max_line=50)[0] == Command(
        (b"x" * 50,), True, b"x" * 50 + b"\r\n"
    )


@pytest.mark.parametrize(
    ("wire", "offset", "fragment"),
    [
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", 13, "expected '$'"),
        (b"*1\r\n$-1\r\n", 4, "invalid bulk string length"),
        (b"*-1\r\n", 0, "invalid array length"),
        (b"*1\r\n$3\r\nGETX\r\n", 11, "not followed by CRLF"),
        (b"*01\r\n$3\r\nGET\r\n", 0, "leading zeros"),
    ],
)
def test_malformed_commands(wire: bytes, offset: int, fragment: str) -> None:
    error = parse_error(Kind.COMMAND, wire)
    assert error.offset == offset
    assert fragment in error.message


def test_empty_multibulk_is_an_empty_command() -> None:
    assert parse(Kind.COMMAND, b"*0\r\n") == [Command(())]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((b"get", b"k"), "GET"),
        ((b"client", b"setname", b"x"), "CLIENT SETNAME"),
        ((b"CONFIG", b"get", b"maxmemory"), "CONFIG GET"),
        ((b"script", b"load", b"return 1"), "SCRIPT LOAD"),
        ((b"xinfo", b"stream", b"s"), "XINFO STREAM"),
        ((b"client",), "CLIENT"),
        ((b"set", b"client", b"v"), "SET"),
        ((), ""),
    ],
)
def test_command_name(args: tuple[bytes, ...], name: str) -> None:
    assert command_name(Command(args)) == name


R = b"[redacted]"


@pytest.mark.parametrize(
    ("args", "redacted"),
    [
        ((b"AUTH", b"pw"), (b"AUTH", R)),
        ((b"auth", b"user", b"pw"), (b"auth", b"user", R)),
        ((b"HELLO", b"3", b"AUTH", b"u", b"pw"), (b"HELLO", b"3", b"AUTH", b"u", R)),
        (
            (b"hello", b"3", b"setname", b"auth", b"auth", b"u", b"pw"),
            (b"hello", b"3", b"setname", b"auth", b"auth", b"u", R),
        ),
        ((b"HELLO", b"AUTH", b"u", b"pw"), (b"HELLO", b"AUTH", b"u", R)),
        ((b"HELLO", b"3"), (b"HELLO", b"3")),
        (
            (
                b"MIGRATE",
                b"h",
                b"1",
                b"",
                b"0",
                b"5",
                b"COPY",
                b"AUTH2",
                b"u",
                b"pw",
                b"KEYS",
                b"AUTH",
            ),
            (b"MIGRATE", b"h", b"1", b"", b"0", b"5", b"COPY", b"AUTH2", b"u", R, b"KEYS", b"AUTH"),
        ),
        (
            (b"CONFIG", b"SET", b"maxmemory", b"1", b"requirepass", b"pw"),
            (b"CONFIG", b"SET", b"maxmemory", b"1", b"requirepass", R),
        ),
        (
            (b"ACL", b"SETUSER", b"bob", b"on", b">pw"),
            (b"ACL", b"SETUSER", b"bob", b"on", b">" + R),
        ),
        ((b"GET", b"AUTH"), (b"GET", b"AUTH")),
    ],
)
def test_redact_auth(args: tuple[bytes, ...], redacted: tuple[bytes, ...]) -> None:
    assert redact_auth(Command(args)).args == redacted


def test_redact_auth_rewrites_an_inline_line_and_maps_passwords() -> None:
    (cmd,) = parse(Kind.COMMAND, b'AUTH "s3cret pw"\r\n')
    assert isinstance(cmd, Command)
    out = redact_auth(cmd, lambda pw: b"<pw-%d>" % len(pw))
    assert out == Command((b"AUTH", b"<pw-9>"), True, b"AUTH <pw-9>\r\n")
    assert b"s3cret" not in encode_event(out)
    same = Command((b"GET", b"k"))
    assert redact_auth(same) is same


# -- streaming large bulks ---------------------------------------------------------------------


def test_small_values_come_whole_and_large_ones_stream() -> None:
    wire = b"*3\r\n:1\r\n$10\r\n0123456789\r\n$2\r\nab\r\n"
    assert parse(Kind.REPLY, wire, stream_threshold=10) == [
        Reply(Array((Integer(1), BulkString(b"0123456789"), BulkString(b"ab"))))
    ]
    assert parse(Kind.REPLY, wire, stream_threshold=9) == [
        AggregateStart(AggregateKind.ARRAY, 3),
        Item(Integer(1)),
        BulkStart(BulkKind.STRING, 10),
        BulkChunk(b"0123456789"),
        BulkEnd(),
        Item(BulkString(b"ab")),
        AggregateEnd(),
    ]


def test_streaming_inside_nested_aggregates_announces_every_open_level() -> None:
    wire = b"%2\r\n+a\r\n*2\r\n:1\r\n=9\r\ntxt:hello\r\n+b\r\n*1\r\n:2\r\n"
    events = parse(Kind.REPLY, wire, stream_threshold=4)
    assert events == [
        AggregateStart(AggregateKind.MAP, 2),
        Item(SimpleString(b"a")),
        AggregateStart(AggregateKind.ARRAY, 2),
        Item(Integer(1)),
        BulkStart(BulkKind.VERBATIM, 5, b"txt"),
        BulkChunk(b"hello"),
        BulkEnd(),
        AggregateEnd(),
        Item(SimpleString(b"b")),
        Item(Array((Integer(2),))),
        AggregateEnd(),
    ]
    assert b"".join(encode_event(e) for e in events) == wire


def test_streamed_attribute_brackets_its_value() -> None:
    wire = b"|1\r\n+k\r\n!6\r\nERR xy\r\n:7\r\n"
    events = parse(Kind.REPLY, wire, stream_threshold=3)
    assert events == [
        AggregateStart(AggregateKind.ATTRIBUTE, 1),
        Item(SimpleString(b"k")),
        BulkStart(BulkKind.ERROR, 6),
        BulkChunk(b"ERR xy"),
        BulkEnd(),
        Item(Integer(7)),
        AggregateEnd(),
    ]
    assert assemble(events) == [
        Reply(Attributed(((SimpleString(b"k"), BulkError(b"ERR xy")),), Integer(7)))
    ]


def huge_pieces(head: bytes, size: int, tail: bytes, piece: int) -> Iterator[bytes]:
    yield head
    block = b"x" * piece
    for _ in range(size // piece):
        yield block
    yield b"x" * (size % piece) + tail


@pytest.mark.parametrize("kind", [Kind.REPLY, Kind.COMMAND])
def test_a_60_mb_bulk_streams_without_buffering(kind: Kind) -> None:
    size, piece = 60 * 1024 * 1024 + 7, 64 * 1024
    if kind is Kind.REPLY:
        head, tail = b"*2\r\n:1\r\n$%d\r\n" % size, b"\r\n+OK\r\n"
    else:
        head, tail = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % size, b"\r\nPING\r\n"
    parser = RespParser(kind)
    kinds: list[type] = []
    received = largest_chunk = peak = 0
    for data in huge_pieces(head, size, tail, piece):
        parser.feed(data)
        peak = max(peak, parser.buffer_size)
        for event in drain(parser):
            if isinstance(event, BulkChunk):
                received += len(event.data)
                largest_chunk = max(largest_chunk, len(event.data))
            if not kinds or kinds[-1] is not type(event):
                kinds.append(type(event))
    assert received == size
    assert largest_chunk <= piece
    assert peak <= 2 * piece
    tail_event = Reply if kind is Kind.REPLY else Command
    assert kinds == [AggregateStart, Item, BulkStart, BulkChunk, BulkEnd, AggregateEnd, tail_event]
    assert not parser.in_message


def test_bulk_at_the_threshold_comes_whole() -> None:
    data = b"y" * 1024
    wire = b"$1024\r\n" + data + b"\r\n"
    assert parse(Kind.REPLY, wire, stream_threshold=1024) == [Reply(BulkString(data))]
    assert parse(Kind.REPLY, wire, stream_threshold=1023)[0] == BulkStart(BulkKind.STRING, 1024)


# -- errors and limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "offset", "fragment"),
    [
        (b"+OK\r\n?x\r\n", 5, "unknown RESP type byte"),
        (b"+OK\r\n$3\r\nabcd\r\n", 12, "not followed by CRLF"),
        (b"$+3\r\nabc\r\n", 0, "invalid bulk string length"),
        (b"$03\r\nabc\r\n", 0, "leading zeros"),
        (b"$?\r\n;4\r\nHell\r\n;0\r\n", 0, "streamed"),
        (b"*?\r\n:1\r\n.\r\n", 0, "streamed"),
        (b"!-1\r\n", 0, "invalid bulk error length"),
        (b":+5\r\n", 0, "invalid integer"),
        (b":05\r\n", 0, "invalid integer"),
        (b":-0\r\n", 0, "invalid integer"),
        (b":9223372036854775808\r\n", 0, "invalid integer"),
        (b"#x\r\n", 0, "invalid boolean"),
        (b"_x\r\n", 0, "null with a payload"),
        (b",.5\r\n", 0, "invalid double"),
        (b",1.\r\n", 0, "invalid double"),
        (b"(1.5\r\n", 0, "invalid big number"),
        (b"=3\r\ntxt\r\n", 0, "fmt:"),
        (b"=5\r\ntxt-x\r\n", 0, "3-byte format"),
        (b"+a\rb\r\n", 1, "CR or LF"),
        (b"-a\nb\r\n", 1, "CR or LF"),
        (b"%2\r\n+a\r\n+b\r\n+c\r\n", 16, "unknown RESP type byte"),
    ],
)
def test_errors_carry_the_offset_of_the_bad_element(
    wire: bytes, offset: int, fragment: str
) -> None:
    error = parse_error(Kind.REPLY, wire + b"?\r\n")
    assert error.offset == offset, error
    assert fragment in error.message


def test_the_error_state_is_sticky() -> None:
    parser = RespParser(Kind.REPLY)
    parser.feed(b"+OK\r\n@\r\n")
    assert parser.next_event() == Reply(SimpleString(b"OK"))
    with pytest.raises(ProtocolError) as first:
        parser.next_event()
    for call in (parser.next_event, lambda: parser.feed(b"+x\r\n"), parser.feed_eof):
        with pytest.raises(ProtocolError) as again:
            call()
        assert (again.value.message, again.value.offset) == (first.value.message, 5)


@pytest.mark.parametrize("depth", [1, 3, 64])
def test_depth_limit(depth: int) -> None:
    ok = b"*1\r\n" * depth + b":1\r\n"
    (event,) = parse(Kind.REPLY, ok, max_depth=depth)
    assert encode_event(event) == ok
    error = parse_error(Kind.REPLY, b"*1\r\n" * (depth + 1) + b":1\r\n", max_depth=depth)
    assert error.offset == 4 * depth
    assert f"max_depth={depth}" in error.message


def test_default_depth_limit_is_64() -> None:
    assert parse(Kind.REPLY, b"*1\r\n" * 64 + b"_\r\n")
    assert parse_error(Kind.REPLY, b"%1\r\n" * 65).offset == 256


def test_attributes_count_toward_depth() -> None:
    error = parse_error(Kind.REPLY, b"|1\r\n+k\r\n+v\r\n" * 5 + b":1\r\n", max_depth=4)
    assert error.offset == 48


def test_aggregate_and_bulk_length_limits() -> None:
    assert parse_error(Kind.REPLY, b"*11\r\n", max_aggregate_length=10).offset == 0
    assert parse_error(Kind.REPLY, b"%11\r\n", max_aggregate_length=10).offset == 0
    assert parse(Kind.REPLY, b"*1\r\n*10\r\n" + b":1\r\n" * 10, max_aggregate_length=10)
    error = parse_error(Kind.REPLY, b":1\r\n$101\r\n", max_bulk_length=100)
    assert (error.offset, "max_bulk_length=100" in error.message) == (4, True)
    error = parse_error(Kind.COMMAND, b"*1\r\n$101\r\n", max_bulk_length=100, stream_threshold=10)
    assert error.offset == 4
    error = parse_error(Kind.REPLY, b"$99999999999999999999\r\n")
    assert "18 digits" in error.message


def test_line_limit() -> None:
    assert parse(Kind.REPLY, b"+" + b"a" * 20 + b"\r\n", max_line=20)
    error = parse_error(Kind.REPLY, b"+" + b"a" * 21 + b"\r\n", max_line=20)
    assert (error.offset, "max_line=20" in error.message) == (0, True)


def test_eof_inside_a_reply_is_an_error_but_not_between_replies() -> None:
    assert parse(Kind.REPLY, b"+OK\r\n") == [Reply(SimpleString(b"OK"))]
    for partial in (b"+OK\r\n*2\r\n:1\r\n", b"+OK\r\n$5\r\nab", b"+OK\r\n+O"):
        error = parse_error(Kind.REPLY, partial)
        assert "connection closed" in error.message
    parser = RespParser(Kind.REPLY, stream_threshold=1)
    parser.feed(b"$5\r\nab")
    assert drain(parser) == [BulkStart(BulkKind.STRING, 5), BulkChunk(b"ab")]
    parser.feed_eof()
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_feed_after_eof_is_an_error() -> None:
    parser = RespParser(Kind.REPLY)
    parser.feed_eof()
    with pytest.raises(ProtocolError):
        parser.feed(b"+OK\r\n")


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError):
        RespParser(Kind.REPLY, max_depth=0)


# -- encoders ------------------------------------------------------------------------------------


def test_encode_command() -> None:
    assert encode_command([b"SET", b"k", b""]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"


def test_encode_inline_quotes_only_what_needs_it() -> None:
    assert encode_inline([b"SET", b"k", b"a b", b"", b"\x00\"'"]) == (
        b'SET k "a b" "" "\\x00\\"\'"\r\n'
    )
    assert encode_inline([b"*", b"*"]) == b'"*" *\r\n'
    with pytest.raises(ProtocolError):
        encode_inline([])


@pytest.mark.parametrize(
    "value",
    [
        SimpleString(b"a\r\nb"),
        SimpleError(b"a\nb"),
        Double("1,5"),
        BigNumber("1.5"),
        Verbatim(b"text", b"x"),
    ],
)
def test_values_that_cannot_be_encoded(value: Value) -> None:
    with pytest.raises(ProtocolError):
        encode_reply(value)


def test_streaming_events_encode_one_by_one() -> None:
    assert encode_event(AggregateStart(AggregateKind.MAP, 2)) == b"%2\r\n"
    assert encode_event(BulkStart(BulkKind.VERBATIM, 3, b"txt")) == b"=7\r\ntxt:"
    assert encode_event(BulkStart(BulkKind.ERROR, 3)) == b"!3\r\n"
    assert encode_event(BulkChunk(b"abc")) == b"abc"
    assert encode_event(BulkEnd()) == b"\r\n"
    assert encode_event(AggregateEnd()) == b""
    assert encode_event(Item(Null(NullKind.ARRAY))) == b"*-1\r\n"
