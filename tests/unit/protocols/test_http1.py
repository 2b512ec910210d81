from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from wiretape.errors import ProtocolError
from wiretape.model import BlobRef, HttpRequest, HttpResponse
from wiretape.protocols.http1 import (
    NEED_DATA,
    BodyData,
    EndOfMessage,
    Event,
    Http1Parser,
    Informational,
    Kind,
    NeedData,
    Paused,
    RequestHead,
    ResponseHead,
    encode_chunk,
    encode_last_chunk,
    encode_request,
    encode_request_head,
    encode_response,
    encode_response_head,
    is_keep_alive,
)


def drain(parser: Http1Parser) -> list[Event]:
    """Events until NEED_DATA or Paused (Paused is included once)."""
    events: list[Event] = []
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return events
        assert not isinstance(event, NeedData)
        events.append(event)
        if isinstance(event, Paused):
            return events


def parse(
    kind: Kind, data: bytes, *, methods: tuple[str, ...] = (), eof: bool = False
) -> list[Event]:
    parser = Http1Parser(kind)
    for method in methods:
        parser.expect_response_to(method)
    parser.feed(data)
    events = drain(parser)
    if eof:
        parser.feed_eof()
        events += drain(parser)
    return events


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyData) and out and isinstance(out[-1], BodyData):
            out[-1] = BodyData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyData))


def parse_error(kind: Kind, data: bytes, *, methods: tuple[str, ...] = ()) -> ProtocolError:
    parser = Http1Parser(kind)
    for method in methods:
        parser.expect_response_to(method)
    parser.feed(data)
    with pytest.raises(ProtocolError) as info:
        drain(parser)
    return info.value


# -- requests --------------------------------------------------------------------------------


def test_simple_get_keeps_header_order_case_and_duplicates() -> None:
    data = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a:  2 \r\nAccept:\r\n\r\n"
    events = parse(Kind.REQUEST, data)
    assert events == [
        RequestHead(
            "GET", "/a?b=1", "HTTP/1.1", (("Host", "x"), ("X-A", "1"), ("x-a", "2"), ("Accept", ""))
        ),
        EndOfMessage(),
    ]


def test_header_values_are_latin1_decoded() -> None:
    events = parse(Kind.REQUEST, b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[0].headers == (("X", "caf\xe9"),)


def test_pipelined_requests_in_one_feed() -> None:
    one = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
    two = b"POST /2 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    three = b"GET /3 HTTP/1.0\r\n\r\n"
    events = parse(Kind.REQUEST, one + two + three)
    assert [type(e) for e in events] == [
        RequestHead,
        EndOfMessage,
        RequestHead,
        BodyData,
        EndOfMessage,
        RequestHead,
        EndOfMessage,
    ]
    assert [e.target for e in events if isinstance(e, RequestHead)] == ["/1", "/2", "/3"]
    assert body_of(events) == b"hello"


def test_body_events_come_as_bytes_arrive() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    assert drain(parser) == [
        RequestHead("POST", "/", "HTTP/1.1", (("Content-Length", "10"),)),
        BodyData(b"abc"),
    ]
    assert parser.in_message
    parser.feed(b"defghij")
    assert drain(parser) == [BodyData(b"defghij"), EndOfMessage()]
    assert not parser.in_message


def test_single_leading_crlf_is_tolerated_before_a_request() -> None:
    events = parse(Kind.REQUEST, b"\r\nGET / HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert [e.target for e in events if isinstance(e, RequestHead)] == ["/", "/b"]


def test_two_leading_crlfs_are_rejected() -> None:
    error = parse_error(Kind.REQUEST, b"\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert error.offset == 2


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/p?q=1"),
        ("GET", "http://example.test/p?q"),
        ("GET", "https://example.test:8443/"),
        ("OPTIONS", "*"),
        ("CONNECT", "example.test:443"),
        ("CONNECT", "[::1]:443"),
    ],
)
def test_request_target_forms(method: str, target: str) -> None:
    events = parse(Kind.REQUEST, f"{method} {target} HTTP/1.1\r\n\r\n".encode())
    assert isinstance(events[0], RequestHead)
    assert (events[0].method, events[0].target) == (method, target)


@pytest.mark.parametrize(
    "line",
    [
        b"GET example.test HTTP/1.1",  # no form
        b"CONNECT /path HTTP/1.1",  # CONNECT needs host:port
        b"GET / HTTP/2.0",
        b"GET / HTTP/1.1 extra",
        b"GET  / HTTP/1.1",
        b"GET /",
        b"G(T / HTTP/1.1",
        b"GET /a\x01 HTTP/1.1",
    ],
)
def test_bad_request_lines(line: bytes) -> None:
    error = parse_error(Kind.REQUEST, line + b"\r\nHost: x\r\n\r\n")
    assert error.offset is not None and error.offset <= len(line)


def test_http10_request_is_accepted() -> None:
    events = parse(Kind.REQUEST, b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(events[0], RequestHead)
    assert events[0].version == "HTTP/1.0"


# -- header syntax ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (b"X-A: 1\r\n  folded", "folding"),
        (b"X-A : 1", "whitespace between header name and colon"),
        (b"X(A): 1", "invalid character in header name"),
        (b"NoColon", "without a colon"),
        (b": empty-name", "invalid character in header name"),
        (b"X-A: a\x00b", "header value"),
        (b"X-A: a\nb", "header value"),
        (b"X-A: a\rb", "header value"),
    ],
)
def test_bad_header_lines_are_rejected_with_their_offset(header: bytes, words: str) -> None:
    prefix = b"GET / HTTP/1.1\r\nHost: x\r\n"
    error = parse_error(Kind.REQUEST, prefix + header + b"\r\n\r\n")
    assert words in error.message
    assert error.offset == len(prefix) + (header.index(b"\r\n") + 2 if b"folded" in header else 0)


def test_bare_lf_head_is_not_accepted() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"GET / HTTP/1.1\nHost: x\n\n")
    assert parser.next_event() is NEED_DATA
    parser.feed(b"\r\n\r\n")
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_head_over_limit_mentions_the_limit() -> None:
    parser = Http1Parser(Kind.REQUEST, max_head_size=64)
    parser.feed(b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 100)
    with pytest.raises(ProtocolError, match="max_head_size=64") as info:
        parser.next_event()
    assert info.value.offset == 64


def test_head_exactly_at_limit_is_accepted() -> None:
    head = b"GET / HTTP/1.1\r\nX: aaaa\r\n\r\n"
    assert parse(Kind.REQUEST, head)  # sanity
    parser = Http1Parser(Kind.REQUEST, max_head_size=len(head))
    parser.feed(head)
    assert isinstance(parser.next_event(), RequestHead)
    parser = Http1Parser(Kind.REQUEST, max_head_size=len(head) - 1)
    parser.feed(head)
    with pytest.raises(ProtocolError):
        parser.next_event()


# -- framing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"5", b"5, 5", b"05"])
def test_content_length_forms(value: bytes) -> None:
    data = (
        b"POST / HTTP/1.1\r\nContent-Length: "
        + value
        + b"\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"
    )
    events = parse(Kind.REQUEST, data)
    assert body_of(events) == b"hello"
    assert len([e for e in events if isinstance(e, RequestHead)]) == 2


@pytest.mark.parametrize(
    "value", [b"-1", b"abc", b"", b"5, 6", b"1" * 19, b"+5", b"0x5", b"5 5", b"\xb2", b"1\xb9"]
)
def test_bad_content_length(value: bytes) -> None:
    error = parse_error(Kind.REQUEST, b"POST / HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n")
    assert "Content-Length" in error.message
    assert error.offset == 0


def test_differing_duplicate_content_lengths() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    assert "conflicting" in parse_error(Kind.REQUEST, data).message


def test_transfer_encoding_wins_over_content_length() -> None:
    data = (
        b"POST / HTTP/1.1\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\n"
    )
    events = parse(Kind.REQUEST, data)
    assert body_of(events) == b"hi"
    assert events[-1] == EndOfMessage()


def test_request_with_non_chunked_final_coding_is_rejected() -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
    assert "chunked" in parse_error(Kind.REQUEST, data).message
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"
    assert "cannot be determined" in parse_error(Kind.REQUEST, data).message


def test_double_chunked_is_rejected() -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    parse_error(Kind.REQUEST, data)


def test_gzip_then_chunked_is_chunked() -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n"
    assert body_of(parse(Kind.REQUEST, data)) == b"z"


def test_chunked_body_with_extensions_and_trailers() -> None:
    body = (
        b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n"
        b"0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n"
    )
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    events = parse(Kind.RESPONSE, data, methods=("GET",))
    assert body_of(events) == b"Wikipedia in\r\n\r\nchunks."
    assert events[-1] == EndOfMessage((("Expires", "never"), ("X-Sum", "1")))


@pytest.mark.parametrize(
    ("chunks", "words"),
    [
        (b"zz\r\n", "chunk-size"),
        (b"-1\r\n", "chunk-size"),
        (b"\r\n", "chunk-size"),
        (b"1" * 17 + b"\r\n", "chunk-size"),
        (b"3\r\nabcd\r\n", "CRLF"),
        (b"3\nabc\r\n", "chunk-size"),
        (b"0\r\nbad trailer\r\n\r\n", "colon"),
    ],
)
def test_bad_chunked_bodies(chunks: bytes, words: str) -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    error = parse_error(Kind.REQUEST, head + chunks)
    assert words in error.message
    assert error.offset is not None and error.offset >= len(head)


def test_chunk_size_line_limit() -> None:
    parser = Http1Parser(Kind.REQUEST, max_chunk_line=10)
    parser.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    drain(parser)
    parser.feed(b"1;" + b"x" * 8 + b"\r\nz\r\n")  # exactly 10 bytes before CRLF
    assert drain(parser) == [BodyData(b"z")]
    parser.feed(b"1;" + b"x" * 10)
    with pytest.raises(ProtocolError, match="max_chunk_line=10"):
        drain(parser)


def test_chunked_data_is_reported_as_it_arrives() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01234")
    events = drain(parser)
    assert events[1:] == [BodyData(b"01234")]
    parser.feed(b"56789\r\n0\r\n\r\n")
    assert drain(parser) == [BodyData(b"56789"), EndOfMessage()]


# -- responses -------------------------------------------------------------------------------


def test_response_with_content_length_and_pipelined_methods() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    )
    events = parse(Kind.RESPONSE, data, methods=("GET", "GET"))
    assert events == [
        ResponseHead(200, "OK", "HTTP/1.1", (("Content-Length", "2"),)),
        BodyData(b"ok"),
        EndOfMessage(),
        ResponseHead(404, "Not Found", "HTTP/1.1", (("Content-Length", "0"),)),
        EndOfMessage(),
    ]


def test_response_to_head_has_no_body_even_with_length() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    )
    events = parse(Kind.RESPONSE, data, methods=("HEAD", "GET"))
    assert [type(e) for e in events] == [
        ResponseHead,
        EndOfMessage,
        ResponseHead,
        BodyData,
        EndOfMessage,
    ]


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses(status: int) -> None:
    data = f"HTTP/1.1 {status} X\r\nContent-Length: 9\r\n\r\n".encode()
    data += b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    events = parse(Kind.RESPONSE, data, methods=("GET", "GET"))
    assert [type(e) for e in events] == [ResponseHead, EndOfMessage, ResponseHead, EndOfMessage]


def test_100_continue_then_final_response() -> None:
    req = Http1Parser(Kind.REQUEST)
    req.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert [type(e) for e in drain(req)] == [RequestHead]
    resp = Http1Parser(Kind.RESPONSE)
    resp.expect_response_to("POST")
    resp.expect_response_to("GET")
    resp.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert drain(resp) == [Informational(100, "Continue", "HTTP/1.1", ())]
    assert not resp.in_message
    req.feed(b"abc")
    assert drain(req) == [BodyData(b"abc"), EndOfMessage()]
    resp.feed(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    resp.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    events = drain(resp)
    assert [type(e) for e in events] == [
        Informational,
        ResponseHead,
        EndOfMessage,
        ResponseHead,
        EndOfMessage,
    ]


def test_read_until_close_response() -> None:
    parser = Http1Parser(Kind.RESPONSE)
    parser.expect_response_to("GET")
    parser.feed(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nsome")
    assert [type(e) for e in drain(parser)] == [ResponseHead, BodyData]
    parser.feed(b" more")
    assert drain(parser) == [BodyData(b" more")]
    assert parser.in_message
    parser.feed_eof()
    assert drain(parser) == [EndOfMessage()]
    assert parser.next_event() is NEED_DATA
    assert not parser.in_message


def test_response_with_non_chunked_transfer_coding_reads_until_close() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef"
    events = parse(Kind.RESPONSE, data, methods=("GET",), eof=True)
    assert body_of(events) == b"abcdef"
    assert events[-1] == EndOfMessage()


def test_eof_before_feed_drained_still_delivers_everything() -> None:
    parser = Http1Parser(Kind.RESPONSE)
    parser.feed(b"HTTP/1.1 200 OK\r\n\r\nbody")
    parser.feed_eof()
    assert [type(e) for e in drain(parser)] == [ResponseHead, BodyData, EndOfMessage]


def test_response_without_expected_method_is_treated_like_get() -> None:
    events = parse(Kind.RESPONSE, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert body_of(events) == b"x"


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 099 X",
        b"HTTP/2 200 OK",
        b"HTTP/1.1",
        b"HTTP/1.1 200 O\x01K",
        b"HTTP/1.1 \xb2\xb2\xb2 X",
        b"ICY 200 OK",
    ],
)
def test_bad_status_lines(line: bytes) -> None:
    error = parse_error(Kind.RESPONSE, line + b"\r\n\r\n")
    assert error.offset == 0


def test_status_line_without_reason() -> None:
    events = parse(Kind.RESPONSE, b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n")
    assert events[0] == ResponseHead(200, "", "HTTP/1.1", (("Content-Length", "0"),))


# -- switching protocols ---------------------------------------------------------------------


def test_upgrade_request_pauses_until_resume() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(
        b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n"
        b"GET /next HTTP/1.1\r\n\r\n"
    )
    events = drain(parser)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage, Paused]
    assert events[-1] == Paused("Upgrade: websocket")
    assert parser.next_event() == Paused("Upgrade: websocket")
    parser.resume()
    assert [e.target for e in drain(parser) if isinstance(e, RequestHead)] == ["/next"]


def test_upgrade_header_without_connection_upgrade_does_not_pause() -> None:
    events = parse(Kind.REQUEST, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert not any(isinstance(e, Paused) for e in events)


def test_resume_before_pause_cancels_it() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(
        b"POST /u HTTP/1.1\r\nUpgrade: x\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\n"
    )
    drain(parser)
    parser.resume()
    parser.feed(b"hi")
    assert drain(parser) == [BodyData(b"hi"), EndOfMessage()]


def test_101_switches_and_leaves_tunnel_bytes() -> None:
    req = Http1Parser(Kind.REQUEST)
    req.feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello")
    assert isinstance(drain(req)[-1], Paused)
    resp = Http1Parser(Kind.RESPONSE)
    resp.expect_response_to("GET")
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    resp.feed(head + b"\x81\x02hi")
    events = drain(resp)
    assert [type(e) for e in events] == [ResponseHead]
    assert resp.switched and not resp.in_message
    assert resp.take_raw() == head
    assert resp.next_event() is NEED_DATA
    resp.feed(b"more")
    assert resp.next_event() is NEED_DATA
    assert resp.take_trailing() == b"\x81\x02himore"
    # the request side became a tunnel too
    assert req.take_trailing() == b"\x81\x05hello"
    assert req.switched


def test_connect_2xx_switches_and_non_2xx_does_not() -> None:
    req = Http1Parser(Kind.REQUEST)
    req.feed(b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
    assert drain(req)[-1] == Paused("CONNECT example.test:443")
    resp = Http1Parser(Kind.RESPONSE)
    resp.expect_response_to("CONNECT")
    resp.feed(b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 1\r\n\r\nx")
    assert [type(e) for e in drain(resp)] == [ResponseHead, BodyData, EndOfMessage]
    assert not resp.switched
    req.resume()
    req.feed(b"CONNECT example.test:443 HTTP/1.1\r\n\r\n")
    assert isinstance(drain(req)[-1], Paused)
    resp.expect_response_to("CONNECT")
    resp.feed(b"HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01")
    assert [type(e) for e in drain(resp)] == [ResponseHead]
    assert resp.switched
    assert resp.take_trailing() == b"\x16\x03\x01"


def test_take_trailing_when_not_switched_is_refused() -> None:
    parser = Http1Parser(Kind.RESPONSE)
    with pytest.raises(ProtocolError, match="take_trailing"):
        parser.take_trailing()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert len(drain(parser)) == 2  # the parser still works


def test_expect_response_to_only_on_response_parsers() -> None:
    with pytest.raises(ProtocolError):
        Http1Parser(Kind.REQUEST).expect_response_to("GET")


# -- raw bytes, offsets, eof, error state ----------------------------------------------------


def test_raw_bytes_reconstruct_the_stream_event_by_event() -> None:
    data = (
        b"\r\nPOST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"
        b"GET /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody"
    )
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(data)
    pieces: list[bytes] = []
    while parser.next_event() is not NEED_DATA:
        pieces.append(parser.take_raw())
    assert b"".join(pieces) == data
    assert pieces[0] == b"\r\nPOST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert pieces[1] == b"3;ext\r\nabc"
    assert pieces[2] == b"\r\n2\r\nde"
    assert pieces[3] == b"\r\n0\r\nT: v\r\n\r\n"
    assert parser.consumed == len(data)


def test_raw_bytes_byte_by_byte() -> None:
    data = (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        b"GET / HTTP/1.1\r\n\r\n"
    )
    parser = Http1Parser(Kind.REQUEST)
    raw = b""
    events: list[Event] = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        events += drain(parser)
        raw += parser.take_raw()
    assert raw == data
    assert merged(events) == parse(Kind.REQUEST, data)


def test_take_raw_without_events_is_empty() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"GET / HT")
    assert parser.next_event() is NEED_DATA
    assert parser.take_raw() == b""
    assert parser.consumed == 0


def test_take_buffered_returns_everything_not_yet_taken() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"GET / HTTP/1.1\r\n\r\nGET /\x00 HTTP/1.1\r\n\r\nrest")
    with pytest.raises(ProtocolError):
        drain(parser)
    assert parser.take_raw() == b"GET / HTTP/1.1\r\n\r\n"
    assert parser.take_buffered() == b"GET /\x00 HTTP/1.1\r\n\r\nrest"


def test_offsets_count_the_whole_stream() -> None:
    good = b"GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"
    parser = Http1Parser(Kind.REQUEST)
    for _ in range(3):
        parser.feed(good)
        drain(parser)
        parser.take_raw()
    parser.feed(b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n")
    with pytest.raises(ProtocolError) as info:
        drain(parser)
    assert info.value.offset == 3 * len(good) + len(b"GET / HTTP/1.1\r\n")
    assert f"at byte {info.value.offset}" in str(info.value)


def test_error_state_is_sticky() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"BAD\r\n\r\n")
    with pytest.raises(ProtocolError) as first:
        parser.next_event()
    for call in (
        parser.next_event,
        parser.feed_eof,
        parser.resume,
        lambda: parser.feed(b"GET / HTTP/1.1\r\n\r\n"),
    ):
        with pytest.raises(ProtocolError) as again:
            call()
        assert again.value.offset == first.value.offset
        assert again.value.message == first.value.message


def test_eof_at_message_boundary_is_fine() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"GET / HTTP/1.1\r\n\r\n")
    drain(parser)
    parser.feed_eof()
    assert parser.next_event() is NEED_DATA
    with pytest.raises(ProtocolError, match="after feed_eof"):
        parser.feed(b"x")


@pytest.mark.parametrize(
    ("kind", "data", "words"),
    [
        (Kind.REQUEST, b"GET / HTTP/1.1\r\nHost", "inside a request head (20 bytes"),
        (Kind.REQUEST, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", "3 bytes before the end"),
        (Kind.REQUEST, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "chunk"),
        (
            Kind.RESPONSE,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n",
            "trailer",
        ),
    ],
)
def test_eof_inside_a_message_raises_with_consumed_offset(
    kind: Kind, data: bytes, words: str
) -> None:
    parser = Http1Parser(kind)
    parser.feed(data)
    drain(parser)
    consumed = parser.consumed
    with pytest.raises(ProtocolError, match=re.escape(words)) as info:
        parser.feed_eof()
    assert info.value.offset == consumed
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_eof_before_draining_raises_from_next_event() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nab")
    parser.feed_eof()
    assert [type(e) for e in drain_until_error(parser)] == [
        RequestHead,
        EndOfMessage,
        RequestHead,
        BodyData,
    ]


def drain_until_error(parser: Http1Parser) -> list[Event]:
    events: list[Event] = []
    with pytest.raises(ProtocolError, match="7 bytes before the end"):
        while True:
            event = parser.next_event()
            assert event is not NEED_DATA
            assert not isinstance(event, NeedData)
            events.append(event)
    return events


def test_eof_while_paused_is_fine() -> None:
    parser = Http1Parser(Kind.REQUEST)
    parser.feed(b"CONNECT a:1 HTTP/1.1\r\n\r\n")
    drain(parser)
    parser.feed_eof()
    assert isinstance(parser.next_event(), Paused)


def test_buffer_is_compacted_on_long_connections() -> None:
    message = b"POST / HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    parser = Http1Parser(Kind.REQUEST)
    for _ in range(500):
        parser.feed(message)
        drain(parser)
        parser.take_raw()
    assert parser.consumed == 500 * len(message)
    assert len(parser._buf) <= 2 * len(message)


# -- encoders --------------------------------------------------------------------------------


def test_encode_request_head_round_trips() -> None:
    headers = (("Host", "x"), ("X-Dup", "1"), ("x-dup", "2"))
    data = encode_request_head("PUT", "/p?q", headers)
    assert data == b"PUT /p?q HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n"
    assert parse(Kind.REQUEST, data) == [
        RequestHead("PUT", "/p?q", "HTTP/1.1", headers),
        EndOfMessage(),
    ]


def test_encode_response_head_round_trips() -> None:
    data = encode_response_head(404, "Not Found", (("Content-Length", "0"),), "HTTP/1.0")
    assert data == b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    assert parse(Kind.RESPONSE, data)[0] == ResponseHead(
        404, "Not Found", "HTTP/1.0", (("Content-Length", "0"),)
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_request_head("G T", "/", ()),
        lambda: encode_request_head("GET", "/a b", ()),
        lambda: encode_request_head("GET", "/", (("X", "a\r\nInjected: 1"),)),
        lambda: encode_request_head("GET", "/", (("Bad Name", "1"),)),
        lambda: encode_request_head("GET", "/", (("X", "\u20ac"),)),
        lambda: encode_request_head("GET", "/", (), "HTTP/2"),
        lambda: encode_response_head(42, "X", ()),
        lambda: encode_response_head(200, "O\nK", ()),
    ],
)
def test_encoders_refuse_what_would_break_the_stream(call: Callable[[], bytes]) -> None:
    with pytest.raises(ProtocolError, match="cannot encode"):
        call()


def test_encode_chunks() -> None:
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert encode_chunk(b"") == b""
    assert encode_last_chunk() == b"0\r\n\r\n"
    assert encode_last_chunk((("A", "1"), ("B", "2"))) == b"0\r\nA: 1\r\nB: 2\r\n\r\n"


def test_encode_response_fixes_content_length_in_place() -> None:
    resp = HttpResponse(200, "OK", (("content-length", "3"), ("X", "1")), b"edited body")
    data = encode_response(resp)
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nX: 1\r\n\r\nedited body"
    events = parse(Kind.RESPONSE, data)
    assert body_of(events) == b"edited body" and events[-1] == EndOfMessage()


def test_encode_response_adds_content_length_when_unframed() -> None:
    data = encode_response(HttpResponse(200, "OK", (("X", "1"),), b"abc"))
    assert data == b"HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 3\r\n\r\nabc"
    assert encode_response(HttpResponse(200, "OK", (), b"")) == b"HTTP/1.1 200 OK\r\n\r\n"


def test_encode_response_chunked_with_trailers_round_trips() -> None:
    resp = HttpResponse(
        200, "OK", (("Transfer-Encoding", "chunked"),), b"payload", trailers=(("X-Sum", "9"),)
    )
    data = encode_response(resp)
    assert data.endswith(b"7\r\npayload\r\n0\r\nX-Sum: 9\r\n\r\n")
    events = parse(Kind.RESPONSE, data)
    assert body_of(events) == b"payload"
    assert events[-1] == EndOfMessage((("X-Sum", "9"),))
    empty = encode_response(HttpResponse(200, "OK", (("Transfer-Encoding", "chunked"),)))
    assert empty.endswith(b"\r\n\r\n0\r\n\r\n")


@pytest.mark.parametrize("status", [204, 304, 100])
def test_encode_bodiless_status_sends_head_only(status: int) -> None:
    resp = HttpResponse(status, "X", (("Content-Length", "10"),), b"ignored")
    assert encode_response(resp) == f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode()


def test_encode_response_head_only() -> None:
    recorded = HttpResponse(200, "OK", (("Content-Length", "1234"),), b"")
    assert (
        encode_response(recorded, head_only=True)
        == b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    )
    with_body = HttpResponse(200, "OK", (("Content-Length", "1"),), b"abc")
    assert (
        encode_response(with_body, head_only=True)
        == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    )
    data = encode_response(recorded, head_only=True)
    assert parse(Kind.RESPONSE, data, methods=("HEAD",)) == [
        ResponseHead(200, "OK", "HTTP/1.1", (("Content-Length", "1234"),)),
        EndOfMessage(),
    ]


def test_encode_response_reads_blob_bodies(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"from disk")
    resp = HttpResponse(200, "OK", (), BlobRef("0" * 64, 9, str(path)))
    assert encode_response(resp).endswith(b"Content-Length: 9\r\n\r\nfrom disk")


def test_encode_request_round_trips() -> None:
    req = HttpRequest("POST", "http://h.test/x", (("Host", "h.test"),), b'{"a":1}')
    data = encode_request(req)
    events = parse(Kind.REQUEST, data)
    assert events[0] == RequestHead(
        "POST", "http://h.test/x", "HTTP/1.1", (("Host", "h.test"), ("Content-Length", "7"))
    )
    assert body_of(events) == b'{"a":1}'
    get = encode_request(HttpRequest("GET", "/", (("Host", "h"),)))
    assert get == b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    chunked = HttpRequest(
        "POST", "/", (("Transfer-Encoding", "chunked"),), b"ab", trailers=(("T", "1"),)
    )
    assert parse(Kind.REQUEST, encode_request(chunked))[-2:] == [
        BodyData(b"ab"),
        EndOfMessage((("T", "1"),)),
    ]


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        ("HTTP/1.1", (), True),
        ("HTTP/1.1", (("Connection", "close"),), False),
        ("HTTP/1.1", (("connection", "Keep-Alive, Close"),), False),
        ("HTTP/1.0", (), False),
        ("HTTP/1.0", (("Connection", "keep-alive"),), True),
        ("HTTP/1.0", (("Connection", "Keep-Alive"), ("Connection", "close")), False),
        ("HTTP/0.9", (), False),
        ("HTTP/1.1", (("CONNECTION", " close "),), False),
        ("HTTP/1.1", (("Connections", "close"), ("X-Connection", "close")), True),
        ("HTTP/1.1", (("Connection", "keep-alive"), ("connection", "close")), False),
    ],
)
def test_is_keep_alive(version: str, headers: tuple[tuple[str, str], ...], expected: bool) -> None:
    assert is_keep_alive(version, headers) is expected


@pytest.mark.parametrize(
    ("status_line", "accepted"),
    [
        (b"HTTP/1.1 200 OK", True),
        (b"HTTP/1.1 404 ", True),
        (b"HTTP/1.1 200 \xe9t\xe9 ok", True),  # obs-text in a reason phrase
        (b"HTTP/1.1 200 tab\there", True),
        (b"HTTP/1.1 2\xb2\xb2 OK", False),  # digits, but not ASCII ones
        (b"HTTP/1.1 099 OK", False),
        (b"HTTP/1.1 20 OK", False),
        (b"HTTP/1.1 2000 OK", False),
        (b"HTTP/1.1 200 O\x01K", False),
        (b"HTTP/1.1 200 O\x7fK", False),
    ],
)
def test_status_line_checks(status_line: bytes, accepted: bool) -> None:
    data = status_line + b"\r\nContent-Length: 0\r\n\r\n"
    if accepted:
        assert isinstance(parse(Kind.RESPONSE, data, methods=("GET",))[0], ResponseHead)
    else:
        parse_error(Kind.RESPONSE, data, methods=("GET",))
