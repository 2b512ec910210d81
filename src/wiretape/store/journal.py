"""The recording journal: an append-only log that makes each finished test durable at once.

How this works: while recording, every finished test (with its mocks), every session mock and
every late mock is appended to ``<set>/journal.jsonl`` as one JSON line, written with a single
``write`` on an ``O_APPEND`` descriptor. Once ``append`` returns, a kill of the process cannot
lose the record. Turning records into the readable YAML files is slower, so the writer does it
in the background when recording is idle, and completely when the set is closed; the journal is
deleted only after ``set.yaml`` says ``closed: true``. A reader that finds a journal (a recording
that was killed, or is still running) merges it over the YAML files; a torn last line (a kill in
the middle of a write) is ignored.

Bodies are stored base64-encoded, or by reference to ``bodies/<sha256>`` when they were spooled.
An inbound exchange that redaction leaves as it is (``Secrets.wire_is_clean``) is stored as the
bytes that crossed the wire, base64-encoded (``wq`` and ``ws``): the request as the client sent
it and the response as the app sent it, parsed again with the proxy's own parser when the record
is read. That is the cheapest form to write, and the recording proxy writes it before the next
request goes to the app.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TypeVar

from wiretape.errors import ProtocolError
from wiretape.model import (
    BlobRef,
    Body,
    Headers,
    HttpRequest,
    HttpResponse,
    LinkKind,
    Mock,
    TestCase,
    WireRequest,
    WireResponse,
)
from wiretape.protocols.http1 import (
    BodyData,
    EndOfMessage,
    Http1Parser,
    Informational,
    Kind,
    RequestHead,
    ResponseHead,
)
from wiretape.protocols.wire import codec_for

JOURNAL_FILE = "journal.jsonl"
_Head = TypeVar("_Head", RequestHead, ResponseHead)
_quote = encode_basestring
_b64 = binascii.b2a_base64
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _body(body: Body) -> Any:
    if isinstance(body, BlobRef):
        return {"blob": body.sha256, "size": body.size}
    if not body:
        return None
    return base64.b64encode(body).decode("ascii")


def _request(req: HttpRequest) -> dict[str, Any]:
    return {
        "m": req.method,
        "t": req.target,
        "v": req.version,
        "s": req.scheme,
        "h": req.host,
        "hd": req.headers,
        "b": _body(req.body),
        "tr": req.trailers,
    }


def _response(resp: HttpResponse | None) -> dict[str, Any] | None:
    if resp is None:
        return None
    return {
        "st": resp.status,
        "r": resp.reason,
        "v": resp.version,
        "hd": resp.headers,
        "b": _body(resp.body),
        "tr": resp.trailers,
    }


def _wire_response(resp: HttpResponse | WireResponse | None) -> dict[str, Any] | None:
    if resp is None:
        return None
    assert isinstance(resp, WireResponse)
    return {"wd": resp.data, "raw": None if resp.raw is None else _body(resp.raw)}


def _mock(m: Mock) -> dict[str, Any]:
    if isinstance(m.request, WireRequest):
        rq: Any = {"wd": m.request.data}
        rs = _wire_response(m.response)
    else:
        assert not isinstance(m.response, WireResponse)
        rq = _request(m.request)
        rs = _response(m.response)
    return {
        "id": m.id,
        "dep": m.dep,
        "p": m.protocol,
        "rq": rq,
        "rs": rs,
        "test": m.test,
        "l": m.link.value,
        "c": m.candidates,
        "e": m.error,
        "sa": m.started,
        "d": m.duration,
    }


def test_record(test: TestCase, mocks: tuple[Mock, ...] | list[Mock]) -> bytes:
    doc = {
        "k": "test",
        "id": test.id,
        "rq": _request(test.request),
        "rs": _response(test.response),
        "e": test.error,
        "n": test.noise,
        "sa": test.started,
        "d": test.duration,
        "u": test.upgraded,
        "mocks": [_mock(m) for m in mocks],
    }
    return (_dumps(doc) + "\n").encode("utf-8", "surrogateescape")


def test_wire_record(
    test_id: str,
    request: bytes,
    response: bytes,
    started: float,
    duration: float,
    mocks: tuple[Mock, ...] | list[Mock],
) -> bytes:
    """A finished inbound test as its raw bytes (see the module docstring).

    Written without the generic encoder, which costs several times more for so few fields:
    every value is a JSON string, a finite float (``repr`` spells it as JSON does) or a list.
    """
    # Put together as bytes: the two base64 fields, most of the line, are never decoded.
    return b"".join(
        (
            b'{"k":"test","id":',
            _quote(test_id).encode("utf-8", "surrogateescape"),
            b',"wq":"',
            _b64(request, newline=False),
            b'","ws":"',
            _b64(response, newline=False),
            f'","sa":{float(started)!r},"d":{float(duration)!r},"mocks":'.encode("ascii"),
            _dumps([_mock(m) for m in mocks]).encode("utf-8", "surrogateescape")
            if mocks
            else b"[]",
            b"}\n",
        )
    )


def session_record(mock: Mock) -> bytes:
    return (_dumps({"k": "session", "mock": _mock(mock)}) + "\n").encode("utf-8", "surrogateescape")


def late_record(test_id: str, mocks: tuple[Mock, ...] | list[Mock]) -> bytes:
    doc = {"k": "late", "test": test_id, "mocks": [_mock(m) for m in mocks]}
    return (_dumps(doc) + "\n").encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Record:
    kind: str  # "test" | "session" | "late"
    test: TestCase | None = None
    test_id: str | None = None
    mocks: tuple[Mock, ...] = ()


def _headers(value: Any) -> Headers:
    return tuple((str(k), str(v)) for k, v in value)


def _decode_body(value: Any, bodies: Path) -> Body:
    if value is None:
        return b""
    if isinstance(value, dict):
        sha = str(value["blob"])
        return BlobRef(sha256=sha, size=int(value["size"]), path=str(bodies / sha))
    return base64.b64decode(value)


def _decode_request(d: dict[str, Any], bodies: Path) -> HttpRequest:
    return HttpRequest(
        method=d["m"],
        target=d["t"],
        headers=_headers(d["hd"]),
        body=_decode_body(d["b"], bodies),
        version=d["v"],
        scheme=d["s"],
        host=d["h"],
        trailers=_headers(d["tr"]),
    )


def _decode_response(d: dict[str, Any] | None, bodies: Path) -> HttpResponse | None:
    if d is None:
        return None
    return HttpResponse(
        status=int(d["st"]),
        reason=d["r"],
        headers=_headers(d["hd"]),
        body=_decode_body(d["b"], bodies),
        version=d["v"],
        trailers=_headers(d["tr"]),
    )


def _decode_wire_response(d: dict[str, Any] | None, bodies: Path) -> WireResponse | None:
    if d is None:
        return None
    raw = d["raw"]
    return WireResponse(d["wd"], _decode_body(raw, bodies) if raw is not None else None)


def _decode_mock(d: dict[str, Any], bodies: Path) -> Mock:
    request: HttpRequest | WireRequest
    response: HttpResponse | WireResponse | None
    if "wd" in d["rq"]:
        request = codec_for(d["p"]).request(d["rq"]["wd"])
        response = _decode_wire_response(d["rs"], bodies)
    else:
        request = _decode_request(d["rq"], bodies)
        response = _decode_response(d["rs"], bodies)
    return Mock(
        id=d["id"],
        dep=d["dep"],
        protocol=d["p"],
        request=request,
        response=response,
        test=d["test"],
        link=LinkKind(d["l"]),
        candidates=tuple(d["c"]),
        error=d["e"],
        started=float(d["sa"]),
        duration=float(d["d"]),
    )


def _message(parser: Http1Parser, data: bytes, kind: type[_Head]) -> tuple[_Head, bytes, Headers]:
    """The head, body and trailers of the one whole message in ``data`` (1xx heads skipped)."""
    parser.feed(data)
    parser.feed_eof()
    head: _Head | None = None
    body: list[bytes] = []
    while True:
        ev = parser.next_event()
        if isinstance(ev, kind):
            head = ev
        elif isinstance(ev, BodyData):
            body.append(ev.data)
        elif isinstance(ev, EndOfMessage):
            break
        elif not isinstance(ev, Informational):
            raise ValueError(f"unexpected {type(ev).__name__} in a recorded exchange")
    if head is None or parser.buffered:
        raise ValueError("a recorded exchange is not one whole message each way")
    return head, b"".join(body), ev.trailers


def wire_exchange(request: bytes, response: bytes) -> tuple[HttpRequest, HttpResponse]:
    """The request and response of a wire record, as the inbound proxy built them live."""
    try:
        head, body, trailers = _message(Http1Parser(Kind.REQUEST), request, RequestHead)
        parser = Http1Parser(Kind.RESPONSE)
        parser.expect_response_to(head.method)
        rhead, rbody, rtrailers = _message(parser, response, ResponseHead)
    except ProtocolError as exc:
        raise ValueError(f"a recorded exchange does not parse: {exc}") from exc
    req = HttpRequest(head.method, head.target, head.headers, body, head.version, trailers=trailers)
    resp = HttpResponse(rhead.status, rhead.reason, rhead.headers, rbody, rhead.version, rtrailers)
    return req, resp


def decode(line: bytes, bodies: Path) -> Record:
    d = json.loads(line.decode("utf-8", "surrogateescape"))
    kind = d["k"]
    if kind == "test":
        if "wq" in d:  # kept as its wire bytes
            req, resp = wire_exchange(base64.b64decode(d["wq"]), base64.b64decode(d["ws"]))
            test = TestCase(d["id"], req, resp, started=float(d["sa"]), duration=float(d["d"]))
        else:
            test = TestCase(
                id=d["id"],
                request=_decode_request(d["rq"], bodies),
                response=_decode_response(d["rs"], bodies),
                error=d["e"],
                noise=tuple(d["n"]),
                started=float(d["sa"]),
                duration=float(d["d"]),
                upgraded=bool(d["u"]),
            )
        return Record(
            "test",
            test=test,
            test_id=test.id,
            mocks=tuple(_decode_mock(m, bodies) for m in d["mocks"]),
        )
    if kind == "session":
        return Record("session", mocks=(_decode_mock(d["mock"], bodies),))
    if kind == "late":
        return Record(
            "late", test_id=d["test"], mocks=tuple(_decode_mock(m, bodies) for m in d["mocks"])
        )
    raise ValueError(f"unknown journal record kind {kind!r}")


_SESSION_PREFIX = b'{"k":"session"'


def session_mocks(path: Path, bodies: Path, end: int) -> Iterator[Mock]:
    """The mocks of the session records before offset ``end`` (where ``read`` stopped), in
    order; the other records are skipped without being decoded."""
    with open(path, "rb") as fh:
        pos = 0
        for line in fh:
            if pos >= end:
                return
            pos += len(line)
            if line.startswith(_SESSION_PREFIX):
                yield from decode(line, bodies).mocks


def read(path: Path, bodies: Path, offset: int = 0) -> Iterator[tuple[Record, int]]:
    """Records from ``offset`` on, each with the offset just past it.

    Reading stops at the first line that is incomplete or does not decode: a kill can tear only
    the last write, and nothing after a torn line was acknowledged.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        fh.seek(offset)
        pos = offset
        for line in fh:
            if not line.endswith(b"\n"):
                return
            try:
                record = decode(line, bodies)
            except (ValueError, KeyError, TypeError):
                return
            pos += len(line)
            yield record, pos


class JournalWriter:
    """Appends records with one ``write`` each; ``fsync`` also flushes them to the disk."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._fsync = fsync

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
