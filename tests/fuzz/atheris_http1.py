"""Long-running coverage-guided fuzzing of the HTTP/1 parser (not collected by pytest).

Run: pip install atheris && python tests/fuzz/atheris_http1.py [libFuzzer options]
The first input byte picks the parser kind, limits and a split step; the rest is the stream.
Whole and split feeding must agree, and only ProtocolError may escape.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from wiretape.errors import ProtocolError
    from wiretape.protocols.http1 import NEED_DATA, BodyData, Event, Http1Parser, Kind, Paused


def run(kind: Kind, pieces: list[bytes], small: bool) -> tuple[list[Event], object, bytes]:
    limits = {"max_head_size": 120, "max_chunk_line": 12} if small else {}
    parser = Http1Parser(kind, **limits)
    if kind is Kind.RESPONSE:
        for method in ("GET", "HEAD", "CONNECT", "POST"):
            parser.expect_response_to(method)
    events: list[Event] = []
    raw: list[bytes] = []
    error: object = None

    def pump() -> None:
        while (event := parser.next_event()) is not NEED_DATA:
            assert not isinstance(event, type(NEED_DATA))
            if isinstance(event, BodyData) and events and isinstance(events[-1], BodyData):
                events[-1] = BodyData(events[-1].data + event.data)
            else:
                events.append(event)
            if isinstance(event, Paused):
                parser.resume()
        raw.append(parser.take_raw())

    try:
        for piece in pieces:
            parser.feed(piece)
            pump()
        parser.feed_eof()
        pump()
    except ProtocolError as exc:
        error = (exc.message, exc.offset)
    raw.append(parser.take_raw())
    return events, error, b"".join(raw)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    control, stream = data[0], data[1:]
    kind = Kind.RESPONSE if control & 1 else Kind.REQUEST
    small = bool(control & 2)
    step = (control >> 2) + 1
    whole = run(kind, [stream], small)
    split = run(kind, [stream[i : i + step] for i in range(0, len(stream), step)], small)
    assert whole == split, (whole, split)
    assert stream.startswith(whole[2])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
