"""The quick paths of the Redis parser, request cache and tracker, by example.

The fuzz tests (tests/fuzz/test_redis_fast_fuzz.py) check that each quick path gives what the full
path gives for any input; these pin down what each one is for.
"""

from __future__ import annotations

from wiretape.protocols.redis import (
    NEED_DATA,
    Array,
    BulkString,
    Command,
    Event,
    Integer,
    Kind,
    Null,
    NullKind,
    Reply,
    RespParser,
    SimpleError,
    SimpleString,
    encode_command,
)
from wiretape.protocols.redis_exchange import (
    PLACEHOLDER,
    Exchange,
    RequestCache,
    Requests,
    Tracker,
)

SET = encode_command([b"SET", b"key:1", b"xxx"])


def events(parser: RespParser, data: bytes) -> list[Event]:
    parser.feed(data)
    out = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def test_a_pipeline_of_commands_is_read_in_one_pass() -> None:
    parser = RespParser(Kind.COMMAND)
    parser.feed(SET * 16)
    assert parser.next_event() == Command((b"SET", b"key:1", b"xxx"))
    assert parser.consumed == len(SET) * 16  # the other 15 are parsed and queued
    assert len(events(parser, b"")) == 15


def test_scalar_and_flat_array_replies_are_read_quickly() -> None:
    wire = b"+OK\r\n-ERR no\r\n:-42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*3\r\n$1\r\na\r\n:1\r\n$-1\r\n"
    parser = RespParser(Kind.REPLY)
    assert events(parser, wire) == [
        Reply(SimpleString(b"OK")),
        Reply(SimpleError(b"ERR no")),
        Reply(Integer(-42)),
        Reply(BulkString(b"abc")),
        Reply(Null(NullKind.BULK)),
        Reply(Null(NullKind.ARRAY)),
        Reply(Array((BulkString(b"a"), Integer(1), Null(NullKind.BULK)))),
    ]


def test_a_bulk_string_holding_crlf_goes_to_the_full_parser() -> None:
    wire = encode_command([b"SET", b"k", b"a\r\nb"]) + SET
    parser = RespParser(Kind.COMMAND)
    assert events(parser, wire) == [
        Command((b"SET", b"k", b"a\r\nb")),
        Command((b"SET", b"key:1", b"xxx")),
    ]


def test_an_incomplete_command_is_finished_by_the_full_parser() -> None:
    parser = RespParser(Kind.COMMAND)
    assert events(parser, SET + SET[:-3]) == [Command((b"SET", b"key:1", b"xxx"))]
    assert events(parser, SET[-3:]) == [Command((b"SET", b"key:1", b"xxx"))]
    assert not parser.in_message


def test_known_chunks_are_not_parsed_again() -> None:
    known: dict[bytes, tuple[Event, ...]] = {}
    first = events(RespParser(Kind.COMMAND, known=known), SET * 2)
    assert known == {SET * 2: tuple(first)}
    again = events(RespParser(Kind.COMMAND, known=known), SET * 2)
    assert again == first and again[0] is first[0]
    events(RespParser(Kind.COMMAND, known=known), SET + SET[:5])  # not read whole: not kept
    assert list(known) == [SET * 2]


def test_the_request_cache_builds_each_request_once() -> None:
    cache = RequestCache()
    requests = Requests()
    args = (b"SET", b"key:1", b"xxx")
    first, name, queued = cache.request(requests, args)
    assert (name, queued) == ("SET", False)
    assert cache.request(requests, args)[0] is first
    assert first == Requests().request(list(args))
    assert len(cache) == 1


def test_the_request_cache_keys_on_the_multi_state() -> None:
    cache = RequestCache()
    requests = Requests()
    plain = cache.request(requests, (b"GET", b"k"))[0]
    cache.request(requests, (b"MULTI",))
    queued, _, is_queued = cache.request(requests, (b"GET", b"k"))
    assert is_queued and queued.data == {"command": ["GET", "k"], "tx": True}
    assert queued.key != plain.key
    cache.request(requests, (b"EXEC",))
    assert cache.request(requests, (b"GET", b"k"))[0] is plain
    assert len(cache) == 2  # MULTI and EXEC are never kept


def test_the_request_cache_never_keeps_passwords_and_stays_bounded() -> None:
    cache = RequestCache(entries=2, max_bytes=16)
    requests = Requests()
    request = cache.request(requests, (b"AUTH", b"hunter2"))[0]
    assert request.data == ["AUTH", PLACEHOLDER.decode()]
    assert len(cache) == 0
    for key in (b"a", b"b", b"c"):
        cache.request(requests, (b"GET", key))
    assert len(cache) == 2
    cache.request(requests, (b"SET", b"k", b"x" * 20))  # longer than max_bytes
    assert len(cache) == 2


def test_a_tracker_with_a_cache_pairs_a_transaction_as_without() -> None:
    commands = [(b"MULTI",), (b"SET", b"k", b"v"), (b"GET", b"k"), (b"EXEC",), (b"GET", b"k")]
    replies = [
        SimpleString(b"OK"),
        SimpleString(b"QUEUED"),
        SimpleString(b"QUEUED"),
        Array((SimpleString(b"OK"), BulkString(b"v"))),
        BulkString(b"v"),
    ]

    def run(cache: RequestCache | None) -> list[Exchange]:
        tracker = Tracker(cache=cache)
        out = []
        for i, args in enumerate(commands):
            out += tracker.command(args, float(i))
        for i, value in enumerate(replies):
            out += tracker.server(Reply(value), 10.0 + i)
        return out

    cache = RequestCache()
    assert run(cache) == run(None) == run(cache)
    assert len(run(cache)) == 5
