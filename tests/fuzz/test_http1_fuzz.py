"""Property and fuzz tests for the HTTP/1 parser.

Valid streams are generated together with the events they must produce; any input, valid or
mutated, must give the same events (and the same error) whether fed whole, byte by byte or at
random split points, and only ProtocolError may escape.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import mutations

from wiretape.errors import ProtocolError
from wiretape.protocols.http1 import (
    NEED_DATA,
    BodyData,
    EndOfMessage,
    Event,
    Http1Parser,
    Informational,
    Kind,
    Paused,
    RequestHead,
    ResponseHead,
)

Headers = tuple[tuple[str, str], ...]
# WIRETAPE_FUZZ_EXAMPLES raises the budget for longer local runs.
FAST = settings(
    max_examples=int(os.environ.get("WIRETAPE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    raw: bytes = b""
    trailing: bytes = b""
    error: tuple[str, int | None] | None = None


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyData) and out and isinstance(out[-1], BodyData):
            out[-1] = BodyData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def run(
    kind: Kind,
    pieces: list[bytes],
    methods: tuple[str, ...] = (),
    *,
    eof: bool = True,
    max_head_size: int = 65536,
    max_chunk_line: int = 4096,
) -> Outcome:
    """Feed ``pieces`` one by one, draining events after each; Paused is resumed at once."""
    parser = Http1Parser(kind, max_head_size=max_head_size, max_chunk_line=max_chunk_line)
    for method in methods:
        parser.expect_response_to(method)
    out = Outcome()
    raw: list[bytes] = []

    def pump() -> None:
        while True:
            event = parser.next_event()
            raw.append(parser.take_raw())
            if event is NEED_DATA:
                break
            assert isinstance(event, Event)
            out.events.append(event)
            if isinstance(event, Paused):
                parser.resume()
        if parser.switched:
            out.trailing += parser.take_trailing()

    try:
        for piece in pieces:
            parser.feed(piece)
            pump()
        if eof:
            parser.feed_eof()
            pump()
    except ProtocolError as exc:
        out.error = (exc.message, exc.offset)
    raw.append(parser.take_raw())
    out.raw = b"".join(raw)
    out.events = merged(out.events)
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def assert_same(a: Outcome, b: Outcome) -> None:
    assert a.events == b.events
    assert a.error == b.error
    assert a.raw == b.raw
    assert a.trailing == b.trailing


# -- generators of valid streams -------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12)
header_names = st.one_of(
    st.sampled_from(["Host", "Accept", "X-Request-Id", "Cookie", "content-type", "ETag"]),
    tokens.filter(
        lambda n: n.lower() not in {"content-length", "transfer-encoding", "connection", "upgrade"}
    ),
)
value_chars = st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f")
header_values = st.builds(
    lambda words, sep: sep.join(words),
    st.lists(st.text(value_chars, min_size=1, max_size=8), max_size=4),
    st.sampled_from([" ", "\t", " \t "]),
)
plain_headers = st.lists(st.tuples(header_names, header_values), max_size=6).map(tuple)
bodies = st.binary(max_size=300)
path_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
targets = st.one_of(
    st.text(path_chars, max_size=20).map(lambda p: "/" + p),
    st.text("abcxyz/", max_size=10).map(lambda p: "http://h.test/" + p),
    st.just("*"),
)


def head_bytes(start: str, headers: Headers) -> bytes:
    return "".join([start, "\r\n", *(f"{n}: {v}\r\n" for n, v in headers), "\r\n"]).encode(
        "latin-1"
    )


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> tuple[bytes, Headers]:
    cuts = draw(st.lists(st.integers(0, len(body)), max_size=5))
    pieces = [p for p in split_at(body, cuts) if p]
    out = b""
    for piece in pieces:
        size = f"{len(piece):x}"
        if draw(st.booleans()):
            size = size.upper()
        ext = draw(st.sampled_from(["", ";a=b", " ;x", ';q="v"']))
        out += f"{size}{ext}\r\n".encode() + piece + b"\r\n"
    trailers: Headers = draw(
        st.lists(st.tuples(header_names, header_values), max_size=2).map(tuple)
    )
    out += b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n"
    out += b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers) + b"\r\n"
    return out, trailers


@st.composite
def framed(
    draw: st.DrawFn, headers: Headers, body: bytes, *, allow_none: bool
) -> tuple[Headers, bytes, Headers]:
    """Headers with framing added, the body as sent, and the trailers."""
    options = ["length", "chunked"] + (["none"] if allow_none else [])
    how = draw(st.sampled_from(options))
    if how == "none":
        return headers, b"", ()
    if how == "length":
        name = draw(st.sampled_from(["Content-Length", "content-length"]))
        value = str(len(body))
        if draw(st.booleans()):
            value = f"{value}, {value}"
        return (*headers, (name, value)), body, ()
    wire, trailers = draw(chunked_body(body))
    te = draw(st.sampled_from(["chunked", "gzip, chunked", "Chunked"]))
    return (*headers, ("Transfer-Encoding", te)), wire, trailers


@st.composite
def request_stream(draw: st.DrawFn) -> tuple[bytes, list[Event]]:
    data = b""
    expected: list[Event] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            data += b"\r\n"
        headers: Headers = draw(plain_headers)
        version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
        pause = ""
        if draw(st.integers(0, 9)) == 0:
            method, target = "CONNECT", "h.test:443"
            pause = f"CONNECT {target}"
        else:
            method = draw(st.one_of(st.sampled_from(["GET", "POST", "PUT"]), tokens))
            target = draw(targets)
            if method == "CONNECT":
                method = "GET"
            if draw(st.integers(0, 9)) == 0:
                headers = (*headers, ("Upgrade", "websocket"), ("Connection", "Upgrade"))
                pause = "Upgrade: websocket"
        body = draw(bodies)
        headers, wire, trailers = draw(framed(headers, body, allow_none=True))
        if not wire:
            body = b""
        data += head_bytes(f"{method} {target} {version}", headers) + wire
        expected.append(RequestHead(method, target, version, headers))
        if body:
            expected.append(BodyData(body))
        expected.append(EndOfMessage(trailers))
        if pause:
            expected.append(Paused(pause))
    return data, expected


@st.composite
def response_stream(draw: st.DrawFn) -> tuple[bytes, tuple[str, ...], list[Event], bytes]:
    """Bytes, the request methods, the events, and the bytes after a protocol switch."""
    data = b""
    methods: list[str] = []
    expected: list[Event] = []
    count = draw(st.integers(1, 4))
    for i in range(count):
        last = i == count - 1
        for _ in range(draw(st.integers(0, 2)) if draw(st.booleans()) else 0):
            status = draw(st.sampled_from([100, 102, 103]))
            info_headers: Headers = draw(plain_headers)
            data += head_bytes(f"HTTP/1.1 {status} Info", info_headers)
            expected.append(Informational(status, "Info", "HTTP/1.1", info_headers))
        method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
        status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]))
        reason = draw(st.sampled_from(["OK", "", "Some Reason"]))
        version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
        headers: Headers = draw(plain_headers)
        start = (
            f"{version} {status} {reason}"
            if reason or draw(st.booleans())
            else (f"{version} {status}")
        )
        if last and draw(st.integers(0, 5)) == 0:
            status, method = draw(st.sampled_from([(101, "GET"), (200, "CONNECT")]))
            start = f"{version} {status} {reason}"
            tunnel = draw(st.binary(max_size=40))
            methods.append(method)
            data += head_bytes(start, headers) + tunnel
            expected.append(ResponseHead(status, reason, version, headers))
            return data, tuple(methods), expected, tunnel
        methods.append(method)
        body = draw(bodies)
        if method == "HEAD" or status in (204, 304):
            if draw(st.booleans()):
                headers = (*headers, ("Content-Length", str(len(body))))
            data += head_bytes(start, headers)
            expected += [ResponseHead(status, reason, version, headers), EndOfMessage()]
            continue
        if last and draw(st.booleans()):
            data += head_bytes(start, headers) + body  # read until close
            trailers: Headers = ()
        else:
            headers, wire, trailers = draw(framed(headers, body, allow_none=False))
            data += head_bytes(start, headers) + wire
        expected.append(ResponseHead(status, reason, version, headers))
        if body:
            expected.append(BodyData(body))
        expected.append(EndOfMessage(trailers))
    return data, tuple(methods), expected, b""


# -- properties of valid streams -------------------------------------------------------------


@FAST
@given(request_stream(), st.lists(st.integers(0, 10_000), max_size=8))
def test_valid_requests_parse_the_same_however_split(
    stream: tuple[bytes, list[Event]], cuts: list[int]
) -> None:
    data, expected = stream
    whole = run(Kind.REQUEST, [data])
    assert whole.error is None
    assert whole.events == expected
    assert whole.raw == data
    assert_same(whole, run(Kind.REQUEST, [data[i : i + 1] for i in range(len(data))]))
    assert_same(whole, run(Kind.REQUEST, split_at(data, cuts)))


ows = st.text(" \t", max_size=3)


@FAST
@given(plain_headers, st.data())
def test_field_values_lose_the_whitespace_around_them_and_nothing_else(
    headers: Headers, data: st.DataObject
) -> None:
    lines = [f"{n}:{data.draw(ows)}{v}{data.draw(ows)}\r\n" for n, v in headers]
    raw = "".join(["GET / HTTP/1.1\r\n", *lines, "\r\n"]).encode("latin-1")
    assert run(Kind.REQUEST, [raw]).events == [
        RequestHead("GET", "/", "HTTP/1.1", headers),
        EndOfMessage(),
    ]


@FAST
@given(response_stream(), st.lists(st.integers(0, 10_000), max_size=8))
def test_valid_responses_parse_the_same_however_split(
    stream: tuple[bytes, tuple[str, ...], list[Event], bytes], cuts: list[int]
) -> None:
    data, methods, expected, tunnel = stream
    whole = run(Kind.RESPONSE, [data], methods)
    assert whole.error is None
    assert whole.events == expected
    assert whole.raw + whole.trailing == data
    assert whole.trailing == tunnel
    bytewise = run(Kind.RESPONSE, [data[i : i + 1] for i in range(len(data))], methods)
    assert_same(whole, bytewise)
    assert_same(whole, run(Kind.RESPONSE, split_at(data, cuts), methods))


# -- fuzz ------------------------------------------------------------------------------------

INTERESTING = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b";", b"0", b"f", b"-", b"\x00", b"\xff"]


def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    return mutations.mutated(base, INTERESTING)


def check_consistent(kind: Kind, data: bytes, methods: tuple[str, ...], cuts: list[int]) -> None:
    for head, line in ((65536, 4096), (120, 12)):
        splits = [[data], [data[i : i + 1] for i in range(len(data))], split_at(data, cuts)]
        whole, *others = (
            run(kind, pieces, methods, max_head_size=head, max_chunk_line=line) for pieces in splits
        )
        for other in others:
            assert_same(whole, other)
        assert data.startswith(whole.raw)
        if whole.error is None:
            assert whole.raw + whole.trailing == data


cut_lists = st.lists(st.integers(0, 10_000), max_size=6)
some_methods = st.lists(st.sampled_from(["GET", "HEAD", "CONNECT", "POST"]), max_size=4).map(tuple)


@FAST
@given(st.sampled_from(Kind), st.binary(max_size=200), some_methods, cut_lists)
def test_fuzz_arbitrary_bytes(
    kind: Kind, data: bytes, methods: tuple[str, ...], cuts: list[int]
) -> None:
    check_consistent(kind, data, methods if kind is Kind.RESPONSE else (), cuts)


@FAST
@given(st.data(), request_stream(), cut_lists)
def test_fuzz_mutated_requests(
    data: st.DataObject, stream: tuple[bytes, list[Event]], cuts: list[int]
) -> None:
    check_consistent(Kind.REQUEST, data.draw(mutated(stream[0])), (), cuts)


@FAST
@given(st.data(), response_stream(), cut_lists)
def test_fuzz_mutated_responses(
    data: st.DataObject,
    stream: tuple[bytes, tuple[str, ...], list[Event], bytes],
    cuts: list[int],
) -> None:
    check_consistent(Kind.RESPONSE, data.draw(mutated(stream[0])), stream[1], cuts)
