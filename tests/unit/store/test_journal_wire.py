"""Journal records that keep an inbound exchange as its wire bytes: they load as the exchange
the proxy builds from the same bytes, for every framing, and a broken one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from wiretape import model
from wiretape.model import HttpRequest, HttpResponse
from wiretape.store import journal, reader
from wiretape.store.writer import SetWriter

CHUNKED_REQUEST = (
    b"POST /up HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 7\r\n\r\n"
)
CASES = [
    pytest.param(
        b"GET /a?x=1 HTTP/1.1\r\nHost: app\r\nAccept: */*\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-V: caf\xe9\r\n\r\n{}",
        HttpRequest("GET", "/a?x=1", (("Host", "app"), ("Accept", "*/*"))),
        HttpResponse(200, "OK", (("Content-Length", "2"), ("X-V", "caf\xe9")), b"{}"),
        id="length",
    ),
    pytest.param(
        CHUNKED_REQUEST,
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Done: yes\r\n\r\n",
        HttpRequest(
            "POST",
            "/up",
            (("Host", "app"), ("Transfer-Encoding", "chunked")),
            b"hello world",
            trailers=(("X-Sum", "7"),),
        ),
        HttpResponse(
            201,
            "Created",
            (("Transfer-Encoding", "chunked"),),
            b"abc",
            trailers=(("X-Done", "yes"),),
        ),
        id="chunked-with-trailers",
    ),
    pytest.param(
        b"HEAD /h HTTP/1.0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\n",
        HttpRequest("HEAD", "/h", (), version="HTTP/1.0"),
        HttpResponse(200, "OK", (("Content-Length", "99"),), version="HTTP/1.0"),
        id="head",
    ),
    pytest.param(
        b"PUT /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        HttpRequest("PUT", "/e", (("Expect", "100-continue"), ("Content-Length", "1")), b"x"),
        HttpResponse(204, "No Content", ()),
        id="continue-then-204",
    ),
]


@pytest.mark.parametrize(
    ("request_bytes", "response_bytes", "want_request", "want_response"), CASES
)
def test_a_wire_record_loads_as_the_exchange_its_bytes_hold(
    tmp_path: Path,
    request_bytes: bytes,
    response_bytes: bytes,
    want_request: HttpRequest,
    want_response: HttpResponse,
) -> None:
    assert journal.wire_exchange(request_bytes, response_bytes) == (want_request, want_response)
    info = model.SetInfo(name="s", created=0.0, app_command="app")
    w = SetWriter(tmp_path, info)
    w.add_wire_test("0001-x", request_bytes, response_bytes, 12.5, 0.25, []).result()
    for stage in ("journal", "yaml"):
        if stage == "yaml":
            w.close()
        (test,) = reader.load_set(tmp_path / "s").tests
        assert (test.id, test.request, test.response) == ("0001-x", want_request, want_response), (
            stage
        )
        assert (test.started, test.duration, test.error) == (12.5, 0.25, None)


@pytest.mark.parametrize(
    ("request_bytes", "response_bytes"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),  # short
        (b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 204 No\r\n\r\n"),  # two
        (b"GET / HTTP/9\r\n\r\n", b"HTTP/1.1 204 No\r\n\r\n"),  # malformed
        (b"", b"HTTP/1.1 204 No\r\n\r\n"),  # nothing
    ],
)
def test_a_wire_record_that_is_not_one_whole_exchange_is_refused(
    tmp_path: Path, request_bytes: bytes, response_bytes: bytes
) -> None:
    with pytest.raises(ValueError):
        journal.wire_exchange(request_bytes, response_bytes)
    # In a journal such a record ends the readable part, like a torn line.
    info = model.SetInfo(name="s", created=0.0, app_command="app")
    w = SetWriter(tmp_path, info)
    good = (b"GET /ok HTTP/1.1\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n")
    w.add_wire_test("0001-ok", *good, 1.0, 0.1, []).result()
    w.add_wire_test("0002-bad", request_bytes, response_bytes, 1.0, 0.1, []).result()
    tests = reader.load_set(tmp_path / "s").tests
    assert [t.id for t in tests] == ["0001-ok"]
