"""Property and fuzz tests for the RESP parser and the exchange tracker on top of it.

Any input, valid or mutated, must give the same events (bulk chunks merged) and the same error
whether fed whole, byte by byte or at random split points; only ProtocolError may escape; and
the encoded events of whatever parsed are exactly the bytes consumed. The tracker, fed whatever
the parsers produce, never fails, and every exchange it makes is stored and reloaded losslessly.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import mutations

from wiretape.errors import ProtocolError
from wiretape.protocols.redis import (
    NEED_DATA,
    Array,
    Attributed,
    BigNumber,
    Boolean,
    BulkChunk,
    BulkError,
    BulkString,
    Double,
    Event,
    Integer,
    Kind,
    Map,
    Null,
    NullKind,
    PushData,
    RespParser,
    Set,
    SimpleError,
    SimpleString,
    Value,
    Verbatim,
    encode_command,
    encode_event,
    encode_inline,
    encode_reply,
)
from wiretape.protocols.redis_exchange import CommandAssembler, Tracker, answer_of, request_for

FAST = settings(
    max_examples=int(os.environ.get("WIRETAPE_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    error: tuple[str, int | None] | None = None


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, BulkChunk) and out and isinstance(out[-1], BulkChunk):
            out[-1] = BulkChunk(out[-1].data + event.data)
        else:
            out.append(event)
    return out


@dataclass(frozen=True)
class Options:
    stream_threshold: int = 1 << 20
    max_depth: int = 64
    max_aggregate_length: int = 1 << 32
    max_bulk_length: int = 512 << 20
    max_line: int = 1 << 20


TIGHT = Options(
    stream_threshold=3, max_depth=3, max_aggregate_length=4, max_bulk_length=20, max_line=12
)


def run(kind: Kind, pieces: list[bytes], options: Options, *, eof: bool = True) -> Outcome:
    parser = RespParser(
        kind,
        stream_threshold=options.stream_threshold,
        max_depth=options.max_depth,
        max_aggregate_length=options.max_aggregate_length,
        max_bulk_length=options.max_bulk_length,
        max_line=options.max_line,
    )
    out = Outcome()

    def pump() -> None:
        while (event := parser.next_event()) is not NEED_DATA:
            assert not isinstance(event, type(NEED_DATA))
            out.events.append(event)

    try:
        for piece in pieces:
            parser.feed(piece)
            pump()
        if eof:
            parser.feed_eof()
            pump()
    except ProtocolError as exc:
        out.error = (exc.message, exc.offset)
    encoded = b"".join(encode_event(e) for e in out.events)
    data = b"".join(pieces)
    assert data.startswith(encoded)
    if out.error is None:
        assert encoded == data
    else:
        assert out.error[1] is not None and len(encoded) <= out.error[1] <= len(data)
    out.events = merged(out.events)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def check_consistent(kind: Kind, data: bytes, cuts: list[int]) -> Outcome:
    result = Outcome()
    for options in (Options(), TIGHT):
        splits = [[data], [data[i : i + 1] for i in range(len(data))], split_at(data, cuts)]
        whole, *others = (run(kind, pieces, options) for pieces in splits)
        for other in others:
            assert other.events == whole.events
            assert other.error == whole.error
        if options == Options():
            result = whole
    return result


# -- generators of valid streams -------------------------------------------------------------

line_bytes = st.binary(max_size=10).filter(lambda b: b"\r" not in b and b"\n" not in b)
scalars: st.SearchStrategy[Value] = st.one_of(
    st.builds(SimpleString, line_bytes),
    st.builds(SimpleError, line_bytes),
    st.builds(Integer, st.integers(-(2**63), 2**63 - 1)),
    st.builds(BulkString, st.binary(max_size=30)),
    st.builds(Null, st.sampled_from(NullKind)),
    st.builds(Boolean, st.booleans()),
    st.builds(Double, st.sampled_from(["1.5", "-0.25", "10", "1e+300", "inf", "-inf", "nan"])),
    st.builds(BigNumber, st.integers(-(10**30), 10**30).map(str)),
    st.builds(BulkError, st.binary(max_size=20)),
    st.builds(Verbatim, st.sampled_from([b"txt", b"mkd"]), st.binary(max_size=20)),
)


def _nested(children: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    items = st.lists(children, max_size=4).map(tuple)
    pairs = st.lists(st.tuples(children, children), max_size=2).map(tuple)
    return st.one_of(
        st.builds(Array, items),
        st.builds(Set, items),
        st.builds(Map, pairs),
        st.builds(Attributed, pairs, children),
    )


values = st.recursive(scalars, _nested, max_leaves=12)
top_values = st.one_of(values, st.builds(PushData, st.lists(values, max_size=3).map(tuple)))
reply_streams = st.lists(top_values, min_size=1, max_size=4).map(
    lambda vs: b"".join(encode_reply(v) for v in vs)
)
args = st.lists(st.binary(max_size=12), min_size=1, max_size=4)
command_streams = st.lists(
    st.one_of(args.map(encode_command), args.map(encode_inline)), min_size=1, max_size=4
).map(b"".join)
cut_lists = st.lists(st.integers(0, 10_000), max_size=6)


@FAST
@given(reply_streams, cut_lists)
def test_valid_replies_parse_the_same_however_split(data: bytes, cuts: list[int]) -> None:
    assert check_consistent(Kind.REPLY, data, cuts).error is None


@FAST
@given(command_streams, cut_lists)
def test_valid_commands_parse_the_same_however_split(data: bytes, cuts: list[int]) -> None:
    assert check_consistent(Kind.COMMAND, data, cuts).error is None


# -- fuzz ------------------------------------------------------------------------------------

INTERESTING = [b"\r", b"\n", b"\r\n", b"$", b"*", b"%", b"|", b">", b"-1", b"0", b"9", b'"', b"'"]


def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    return mutations.mutated(base, INTERESTING)


@FAST
@given(st.sampled_from(Kind), st.binary(max_size=120), cut_lists)
def test_fuzz_arbitrary_bytes(kind: Kind, data: bytes, cuts: list[int]) -> None:
    check_consistent(kind, data, cuts)


resp_alphabet = st.lists(
    st.sampled_from([*INTERESTING, b"+OK", b":1", b"#t", b"_", b",1.5", b"=5\r\ntxt:a", b"x"]),
    max_size=30,
).map(b"".join)


@FAST
@given(st.sampled_from(Kind), resp_alphabet, cut_lists)
def test_fuzz_resp_shaped_bytes(kind: Kind, data: bytes, cuts: list[int]) -> None:
    check_consistent(kind, data, cuts)


@FAST
@given(st.data(), reply_streams, cut_lists)
def test_fuzz_mutated_replies(data: st.DataObject, stream: bytes, cuts: list[int]) -> None:
    check_consistent(Kind.REPLY, data.draw(mutated(stream)), cuts)


@FAST
@given(st.data(), command_streams, cut_lists)
def test_fuzz_mutated_commands(data: st.DataObject, stream: bytes, cuts: list[int]) -> None:
    check_consistent(Kind.COMMAND, data.draw(mutated(stream)), cuts)


# -- the exchange tracker on top of the parsers -------------------------------------------------

tracked_args = st.lists(
    st.one_of(
        st.sampled_from(
            [b"GET", b"SUBSCRIBE", b"UNSUBSCRIBE", b"PSUBSCRIBE", b"MULTI", b"EXEC", b"HELLO"]
        ),
        st.sampled_from([b"CLIENT", b"REPLY", b"OFF", b"ON", b"SKIP", b"BLPOP", b"RESET"]),
        st.binary(max_size=8),
    ),
    min_size=1,
    max_size=4,
)
tracked_commands = st.lists(tracked_args.map(encode_command), min_size=1, max_size=5).map(b"".join)


class _Spool:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def finish(self) -> bytes:
        return bytes(self.data)


def track(client: bytes, server: bytes, cuts: list[int], mutate: bytes | None) -> None:
    """Both sides through tight parsers into a tracker: only the parsers may fail."""
    commands = RespParser(Kind.COMMAND, stream_threshold=3)
    replies = RespParser(Kind.REPLY, stream_threshold=3)
    assembler = CommandAssembler()
    tracker = Tracker(spool=_Spool, large_reply=40)
    exchanges = []
    now = 0.0
    stream = mutate if mutate is not None else server
    pieces = [(True, p) for p in split_at(client, cuts)] + [
        (False, p) for p in split_at(stream, cuts)
    ]
    try:
        for is_client, piece in pieces:
            now += 0.001
            parser = commands if is_client else replies
            parser.feed(piece)
            while (event := parser.next_event()) is not NEED_DATA:
                if is_client:
                    args = assembler.feed(event)
                    if args is not None:
                        exchanges += tracker.command(args, now)
                else:
                    exchanges += tracker.server(event, now)
    except ProtocolError:
        pass
    exchanges += tracker.close(now)
    for exchange in exchanges:
        data = exchange.response_data()
        if exchange.raw is None:
            answer = answer_of(data)
            assert answer.frames == exchange.frames
        else:
            assert isinstance(exchange.raw, bytes) and len(exchange.raw) == data["raw"]["bytes"]
        assert request_for(exchange.request.data).key == exchange.request.key


@FAST
@given(tracked_commands, reply_streams, cut_lists)
def test_tracker_pairs_any_valid_streams(client: bytes, server: bytes, cuts: list[int]) -> None:
    track(client, server, cuts, None)


@FAST
@given(st.data(), tracked_commands, reply_streams, cut_lists)
def test_tracker_survives_mutated_replies(
    data: st.DataObject, client: bytes, server: bytes, cuts: list[int]
) -> None:
    track(client, server, cuts, data.draw(mutated(server)))
