"""The quick paths of the Redis codec and proxy give exactly what the full paths give.

``RespParser`` reads common top-level shapes (commands that are arrays of short bulk strings;
replies that are scalars or flat arrays of scalars) from one split of its buffer and leaves
anything else to the full parser. For any bytes, valid or not, and any split into pieces, a
parser with the quick path gives the same events, the same error and stops at the same offset as
one without it, and only ``ProtocolError`` escapes. ``RequestCache`` gives the requests that
``Requests`` builds, and a ``Tracker`` with one pairs the same exchanges as one without. The
mock server answers a pipelined script with the same bytes and misses with its caches as
without them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import mutations

from wiretape.config import DepConfig
from wiretape.errors import ProtocolError
from wiretape.match.index import MockIndex
from wiretape.model import Mock, WireRequest, WireResponse
from wiretape.protocols.redis import (
    NEED_DATA,
    Array,
    BulkString,
    Event,
    Integer,
    Kind,
    Map,
    Null,
    NullKind,
    RespParser,
    SimpleError,
    SimpleString,
    Value,
    encode_command,
    encode_inline,
    encode_reply,
)
from wiretape.protocols.redis_exchange import (
    CommandAssembler,
    Exchange,
    RequestCache,
    Requests,
    Tracker,
    with_request_noise,
)
from wiretape.proxy import redis as redis_proxy
from wiretape.proxy.redis import RedisMockServer
from wiretape.proxy.streams import memory_pair

FAST = settings(
    max_examples=int(os.environ.get("WIRETAPE_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Options:
    stream_threshold: int = 1 << 20
    max_depth: int = 64
    max_aggregate_length: int = 1 << 32
    max_bulk_length: int = 512 << 20
    max_line: int = 1 << 20


OPTIONS = (
    Options(),
    Options(
        stream_threshold=3, max_depth=3, max_aggregate_length=4, max_bulk_length=20, max_line=12
    ),
    Options(stream_threshold=8, max_bulk_length=6, max_line=3),  # the shortest line it reads
    Options(max_line=2),  # too short for the quick path: the full parser alone
)


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    error: tuple[str, int | None] | None = None
    consumed: int = 0


def parse(
    kind: Kind,
    pieces: list[bytes],
    options: Options,
    *,
    quick: bool,
    known: dict[bytes, tuple[Event, ...]] | None = None,
) -> Outcome:
    parser = RespParser(
        kind,
        stream_threshold=options.stream_threshold,
        max_depth=options.max_depth,
        max_aggregate_length=options.max_aggregate_length,
        max_bulk_length=options.max_bulk_length,
        max_line=options.max_line,
        known=known,
    )
    if not quick:
        parser._quick_ok = False
    out = Outcome()

    def drain() -> None:
        while (event := parser.next_event()) is not NEED_DATA:
            out.events.append(event)

    try:
        for piece in pieces:
            parser.feed(piece)
            drain()
        parser.feed_eof()
        drain()
    except ProtocolError as exc:
        out.error = (exc.message, exc.offset)
    out.consumed = parser.consumed
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def check_same(kind: Kind, data: bytes, cuts: list[int]) -> None:
    """With and without the quick path, fed whole, byte by byte and at ``cuts``: the same; and
    the same again when the chunks' events come from ``known``."""
    for options in OPTIONS:
        known: dict[bytes, tuple[Event, ...]] = {}
        for pieces in ([data], [data[i : i + 1] for i in range(len(data))], split_at(data, cuts)):
            full = parse(kind, pieces, options, quick=False)
            assert parse(kind, pieces, options, quick=True) == full, (options, pieces)
            for _ in range(2):
                assert parse(kind, pieces, options, quick=True, known=known) == full


# -- streams the quick path reads, and streams it must leave alone ------------------------------

tricky = st.sampled_from([b"\r\n", b"\r", b"\n", b"$", b"*", b"+", b":", b"-1", b"0", b"9", b" "])
arg = st.one_of(
    st.binary(max_size=10),
    st.lists(st.one_of(tricky, st.binary(max_size=3)), max_size=4).map(b"".join),
)
commands = st.lists(arg, min_size=1, max_size=5)
command_streams = st.lists(
    st.one_of(
        commands.map(encode_command),
        commands.map(encode_command),
        commands.map(encode_inline),
        st.just(b"*0\r\n"),
    ),
    min_size=1,
    max_size=12,
).map(b"".join)

line = st.binary(max_size=8).filter(lambda b: b"\r" not in b and b"\n" not in b)
scalar: st.SearchStrategy[Value] = st.one_of(
    st.builds(SimpleString, line),
    st.builds(SimpleError, line),
    st.builds(Integer, st.integers(-(2**63), 2**63 - 1)),
    st.builds(Integer, st.sampled_from([0, -1, 2**63 - 1, -(2**63)])),
    st.builds(BulkString, arg),
    st.just(Null(NullKind.BULK)),
    st.just(Null(NullKind.ARRAY)),
)
flat = st.builds(Array, st.lists(scalar, max_size=5).map(tuple))
other: st.SearchStrategy[Value] = st.one_of(
    st.just(Null()),
    st.just(Array(())),
    st.builds(Array, st.lists(flat, max_size=2).map(tuple)),
    st.builds(Map, st.lists(st.tuples(scalar, scalar), max_size=2).map(tuple)),
)
reply_streams = st.lists(st.one_of(scalar, scalar, flat, other), min_size=1, max_size=12).map(
    lambda vs: b"".join(encode_reply(v) for v in vs)
)
cut_lists = st.lists(st.integers(0, 100_000), max_size=8)
INTERESTING = [b"\r", b"\n", b"\r\n", b"$", b"*", b"+", b"-", b":", b"-1", b"0", b"9", b"999"]


@FAST
@given(command_streams, cut_lists)
def test_commands_parse_the_same_with_the_quick_path(data: bytes, cuts: list[int]) -> None:
    check_same(Kind.COMMAND, data, cuts)


@FAST
@given(reply_streams, cut_lists)
def test_replies_parse_the_same_with_the_quick_path(data: bytes, cuts: list[int]) -> None:
    check_same(Kind.REPLY, data, cuts)


@FAST
@given(st.data(), st.sampled_from(Kind), cut_lists)
def test_mutated_streams_parse_the_same_with_the_quick_path(
    data: st.DataObject, kind: Kind, cuts: list[int]
) -> None:
    base = data.draw(command_streams if kind is Kind.COMMAND else reply_streams)
    check_same(kind, data.draw(mutations.mutated(base, INTERESTING)), cuts)


@FAST
@given(st.sampled_from(Kind), st.binary(max_size=80), cut_lists)
def test_arbitrary_bytes_parse_the_same_with_the_quick_path(
    kind: Kind, data: bytes, cuts: list[int]
) -> None:
    check_same(kind, data, cuts)


@settings(FAST, max_examples=max(10, FAST.max_examples // 10))
@given(st.sampled_from(Kind), st.data(), cut_lists)
def test_pipelines_longer_than_the_quick_window(
    kind: Kind, data: st.DataObject, cuts: list[int]
) -> None:
    """Thousands of bytes of small elements: the window cuts one, and reading goes on after it."""
    if kind is Kind.COMMAND:
        one = data.draw(st.lists(commands.map(encode_command), min_size=1, max_size=4))
    else:
        one = data.draw(st.lists(st.one_of(scalar, flat).map(encode_reply), min_size=1, max_size=4))
    stream = b"".join(one) * (9000 // len(b"".join(one)) + 1)
    if data.draw(st.booleans()):
        stream = data.draw(mutations.mutated(stream, INTERESTING))
    for options in OPTIONS[:2]:
        known: dict[bytes, tuple[Event, ...]] = {}
        for pieces in ([stream], split_at(stream, cuts)):
            full = parse(kind, pieces, options, quick=False)
            assert parse(kind, pieces, options, quick=True) == full
            assert parse(kind, pieces, options, quick=True, known=known) == full


# -- the tracker with a request cache -----------------------------------------------------------

words = st.sampled_from(
    [
        [b"GET", b"k"],
        [b"SET", b"k", b"v"],
        [b"get", b"k"],
        [b"MULTI"],
        [b"EXEC"],
        [b"DISCARD"],
        [b"RESET"],
        [b"AUTH", b"secret"],
        [b"HELLO", b"3", b"AUTH", b"u", b"pw"],
        [b"CLIENT", b"REPLY", b"OFF"],
        [b"CLIENT", b"REPLY", b"ON"],
        [b"CLIENT", b"REPLY", b"SKIP"],
        [b"CLIENT", b"TRACKING", b"ON"],
        [b"SUBSCRIBE", b"a", b"b"],
        [b"UNSUBSCRIBE"],
        [b"BLPOP", b"q", b"0"],
        [b"SET", b"session:3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b", b"1"],
        [b"QUIT"],
    ]
)
script = st.lists(st.one_of(words, commands), min_size=1, max_size=12)
frames = st.lists(st.one_of(scalar, scalar, flat), min_size=1, max_size=14)


def track(
    commands: list[list[bytes]], replies: list[Value], cache: RequestCache | None
) -> list[Exchange]:
    tracker = Tracker(cache=cache, large_reply=40)
    parser = RespParser(Kind.COMMAND)
    assembler = CommandAssembler()
    out: list[Exchange] = []
    now = 0.0
    parser.feed(b"".join(encode_command(c) for c in commands))
    while (event := parser.next_event()) is not NEED_DATA:
        args = assembler.feed(event)
        if args is not None:
            now += 0.001
            out += tracker.command(tuple(args), now)
    for value in replies:
        now += 0.001
        out += tracker.server(parser_event(value), now)
    out += tracker.close(now)
    return out


def parser_event(value: Value) -> Event:
    parser = RespParser(Kind.REPLY)
    parser.feed(encode_reply(value))
    event = parser.next_event()
    assert event is not NEED_DATA
    return event


@FAST
@given(st.lists(st.tuples(script, frames), min_size=1, max_size=3))
def test_a_tracker_with_a_request_cache_pairs_the_same_exchanges(
    connections: list[tuple[list[list[bytes]], list[Value]]],
) -> None:
    cache = RequestCache(entries=3)  # small: entries are dropped and built again
    for commands, replies in connections:
        assert track(commands, replies, cache) == track(commands, replies, None)


@FAST
@given(script, st.sampled_from([(), (("SET", (2,)),), (("*", (1,)),), (("get", (1, 5)),)]))
def test_the_request_cache_gives_what_requests_and_noise_give(
    commands: list[list[bytes]], noise: tuple[tuple[str, tuple[int, ...]], ...]
) -> None:
    cache = RequestCache(noise)
    cached, plain = Requests(), Requests()
    for _ in range(2):
        for args in commands:
            request, name, queued = cache.request(cached, tuple(args))
            assert queued == plain.queues(name)
            assert request == with_request_noise(plain.request(args), noise)
            assert cached.tx == plain.tx


# -- the mock server with and without its caches ------------------------------------------------

ANSWERS: list[Any] = [
    {"reply": {"simple": "OK"}},
    {"reply": "alice"},
    {"reply": 42},
    {"reply": True},
    {"reply": None},
    {"reply": {"nil": "array"}},
    {"reply": {"error": "ERR wrong"}},
    {"reply": ["a", 1, None]},
    {"replies": [{"simple": "OK"}, 2]},
    {"reply": {"bogus": "x"}},  # invalid: answered with an error naming the mock
    None,  # recorded without an answer
]


def mocks_for(recorded: list[tuple[list[bytes], int]]) -> list[Mock]:
    requests = Requests()
    out = []
    for i, (args, answer) in enumerate(recorded):
        data = ANSWERS[answer]
        response = None if data is None else WireResponse(data)
        out.append(Mock(f"cache-{i:04d}", "cache", "redis", requests.request(args), response, None))
    return out


def replay(server: RedisMockServer, stream: bytes, cuts: list[int]) -> bytes:
    async def run() -> bytes:
        client, ours = memory_pair("client", "mock")
        for piece in split_at(stream, cuts):
            client.write(piece)
        client.write_eof()
        await server.serve(ours)
        ours.close()
        received = bytearray()
        while data := await client.read():
            received += data
        return bytes(received)

    return asyncio.run(run())


@FAST
@given(
    st.data(),
    st.lists(st.tuples(st.one_of(words, commands), st.integers(0, len(ANSWERS) - 1)), max_size=8),
    st.sampled_from([(), (("SET", (2,)),)]),
    cut_lists,
)
def test_the_mock_server_answers_the_same_with_its_caches(
    data: st.DataObject,
    recorded: list[tuple[list[bytes], int]],
    noise: tuple[tuple[str, tuple[int, ...]], ...],
    cuts: list[int],
) -> None:
    choices = [args for args, _ in recorded]
    sent = data.draw(
        st.lists(st.one_of(words, commands, *([st.sampled_from(choices)] * 3 if choices else [])))
    )
    dep = DepConfig("cache", "redis", "127.0.0.1:1", request_noise=noise)
    stream = b"".join(encode_command(c) for c in sent)
    outputs = []
    for cached in (True, False):
        index = MockIndex([with_noise(m, noise) for m in mocks_for(recorded)], {})
        index.begin_test(None)
        with pytest.MonkeyPatch.context() as monkeypatch:
            server = RedisMockServer(dep, index)
            if not cached:
                server.requests = RequestCache(noise, entries=0)
                monkeypatch.setattr(redis_proxy, "_plain_key", lambda response: None)
            output = replay(server, stream, cuts) + replay(server, stream, cuts)
        outputs.append((output, [m.request for m in index.misses(None)]))
    assert outputs[0] == outputs[1]


def with_noise(mock: Mock, noise: tuple[tuple[str, tuple[int, ...]], ...]) -> Mock:
    assert isinstance(mock.request, WireRequest)
    return replace(mock, request=with_request_noise(mock.request, noise))
