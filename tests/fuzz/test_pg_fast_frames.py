"""Property and fuzz tests for the PostgreSQL frame splitter and the fast field readers.

A stream read as frames (``frames()`` or ``next_frame()``, then ``decode_frame()``) must give the
messages and the first error that ``next_event()`` gives, fed whole, byte by byte or at random
split points; only ProtocolError may escape. ``bind_fields`` and ``data_row_values`` accept only
what the full decoder reads, and read the same fields from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.test_postgres_fuzz import (
    FAST,
    STARTED,
    Setup,
    backend_stream,
    cut_lists,
    mutated,
    run,
    small_limits,
    split_at,
)
from tests.unit.protocols.test_postgres import typed_backend, typed_frontend

from wiretape.errors import ProtocolError
from wiretape.protocols.postgres import (
    NEED_DATA,
    BackendParser,
    Bind,
    DataRow,
    FrontendMessage,
    FrontendParser,
    GSSENCRequest,
    Message,
    SSLRequest,
    StartupMessage,
    Terminate,
    encode,
)
from wiretape.protocols.postgres.codec import bind_fields, data_row_values


@dataclass
class Read:
    events: list[Message] = field(default_factory=list)
    error: tuple[str, int | None] | None = None


Splitter = Callable[[FrontendParser | BackendParser], tuple[int, list[bytes]]]


def by_frames(parser: FrontendParser | BackendParser) -> tuple[int, list[bytes]]:
    return parser.frames()


def by_next_frame(parser: FrontendParser | BackendParser) -> tuple[int, list[bytes]]:
    frame = parser.next_frame()
    if frame is NEED_DATA:
        return parser.consumed, []
    assert isinstance(frame, bytes)
    return parser.consumed - len(frame), [frame]


def read_framed(setup: Setup, pieces: list[bytes], split: Splitter) -> Read:
    """Like ``run``, but typed messages are split into frames and then decoded."""
    out = Read()
    parser: FrontendParser | BackendParser
    if setup.side == "frontend":
        parser = front = FrontendParser(max_message_size=setup.max_message_size)
        if setup.auth is not None:
            front.expect_auth(setup.auth)
        typed = False
    else:
        parser = back = BackendParser(max_message_size=setup.max_message_size)
        if setup.expect_answer:
            back.expect_ssl_answer()
        typed = not setup.expect_answer
    answers = iter(setup.accept)

    def pump() -> None:
        nonlocal typed
        while True:
            if typed:
                at, frames = split(parser)
                if not frames:
                    return
                for frame in frames:
                    assert frame[:1] and len(frame) >= 5
                    out.events.append(parser.decode_frame(frame, at))
                    at += len(frame)
                continue
            event = parser.next_event()
            if event is NEED_DATA:
                return
            assert not isinstance(event, type(NEED_DATA))
            out.events.append(event)
            if isinstance(event, SSLRequest | GSSENCRequest):
                assert isinstance(parser, FrontendParser)
                yes = next(answers, False)
                parser.ssl_answered(
                    (b"S" if isinstance(event, SSLRequest) else b"G") if yes else b"N"
                )
            # Typed messages start after the StartupMessage, or after the server's SSL answer.
            typed = isinstance(event, StartupMessage) or isinstance(parser, BackendParser)

    try:
        for piece in pieces:
            parser.feed(piece)
            pump()
        parser.feed_eof()
        pump()
    except ProtocolError as exc:
        out.error = (exc.message, exc.offset)
    return out


def check_same(setup: Setup, data: bytes, cuts: list[int]) -> None:
    expected = run(setup, [data])
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))], split_at(data, cuts)):
        for split in (by_frames, by_next_frame):
            got = read_framed(setup, pieces, split)
            assert got.events == expected.events
            assert got.error == expected.error


@st.composite
def typed_frontend_stream(draw: st.DrawFn) -> bytes:
    """A started connection's client side: a StartupMessage, then typed messages."""
    typed = [s for cls, s in typed_frontend.items() if cls is not Terminate]
    messages: list[FrontendMessage] = draw(st.lists(st.one_of(typed), max_size=10))
    if draw(st.booleans()):  # Terminate, at the end or with messages after it
        messages.insert(draw(st.integers(0, len(messages))), Terminate())
    return STARTED + b"".join(map(encode, messages))


@FAST
@given(typed_frontend_stream(), cut_lists)
def test_valid_client_streams_split_into_the_messages(data: bytes, cuts: list[int]) -> None:
    check_same(Setup("frontend"), data, cuts)


@FAST
@given(backend_stream(), cut_lists)
def test_valid_server_streams_split_into_the_messages(
    stream: tuple[Setup, bytes, list[Message]], cuts: list[int]
) -> None:
    check_same(stream[0], stream[1], cuts)


@FAST
@given(st.data(), typed_frontend_stream(), small_limits, cut_lists)
def test_fuzz_mutated_client_streams(
    data: st.DataObject, stream: bytes, limit: int, cuts: list[int]
) -> None:
    mutant = data.draw(mutated(stream))
    check_same(Setup("frontend", max_message_size=limit), mutant, cuts)


@FAST
@given(st.data(), backend_stream(), small_limits, cut_lists)
def test_fuzz_mutated_server_streams(
    data: st.DataObject, stream: tuple[Setup, bytes, list[Message]], limit: int, cuts: list[int]
) -> None:
    setup = Setup("backend", expect_answer=stream[0].expect_answer, max_message_size=limit)
    check_same(setup, data.draw(mutated(stream[1])), cuts)


@FAST
@given(st.binary(max_size=200), st.sampled_from(["frontend", "backend"]), cut_lists)
def test_fuzz_arbitrary_bytes(data: bytes, side: str, cuts: list[int]) -> None:
    if side == "frontend":
        data = STARTED + data
    check_same(Setup(side), data, cuts)


def test_frames_come_out_before_a_broken_one_and_the_error_after() -> None:
    good = encode(Bind("", "", (), (b"1",), ()))
    parser = BackendParser()
    parser.feed(encode(DataRow((b"x",))) + b"\x00\x00\x00\x00\x05")
    at, frames = parser.frames()
    assert (at, frames) == (0, [encode(DataRow((b"x",)))])
    try:
        parser.frames()
    except ProtocolError as exc:
        assert "unknown backend message type" in exc.message and exc.offset == 12
    else:
        raise AssertionError("the broken frame was not reported")
    client = FrontendParser()
    client.feed(STARTED)
    client.next_event()
    client.feed(good + encode(Terminate()) + b"X")
    assert client.frames()[1] == [good, encode(Terminate())]
    try:
        client.frames()
    except ProtocolError as exc:
        assert "after Terminate" in exc.message
    else:
        raise AssertionError("bytes after Terminate were not reported")


def test_frames_are_for_typed_messages_only() -> None:
    parser = FrontendParser()
    parser.feed(STARTED)
    try:
        parser.frames()
    except RuntimeError:
        pass
    else:
        raise AssertionError("a startup packet was split as a frame")


# -- fast field readers ---------------------------------------------------------------------------


def decoded(frame: bytes, side: str) -> Message | None:
    parser: FrontendParser | BackendParser
    if side == "frontend":
        parser = FrontendParser()
        parser.feed(STARTED)
        parser.next_event()
    else:
        parser = BackendParser()
    parser.feed(frame)
    try:
        at, frames = parser.frames()
        if frames != [frame]:
            return None
        message: Message = parser.decode_frame(frame, at)
        return message
    except ProtocolError:
        return None


def check_bind(frame: bytes) -> None:
    fields = bind_fields(frame)
    message = decoded(frame, "frontend")
    if isinstance(message, Bind):
        fields_of_message = (
            message.portal,
            message.statement,
            message.param_formats,
            message.params,
            message.result_formats,
        )
        assert fields == fields_of_message
    else:
        assert fields is None


def check_data_row(frame: bytes) -> None:
    values = data_row_values(frame)
    message = decoded(frame, "backend")
    if isinstance(message, DataRow):
        assert values == list(message.values)
    else:
        assert values is None


def reframed(frame: bytes, payload: bytes) -> bytes:
    """``frame``'s type byte with another payload, its length field right."""
    return frame[:1] + (len(payload) + 4).to_bytes(4, "big") + payload


@FAST
@given(st.data())
def test_bind_fields_are_those_the_decoder_reads(data: st.DataObject) -> None:
    frame = encode(data.draw(typed_frontend[Bind]))
    check_bind(frame)
    check_bind(data.draw(mutated(frame)))
    check_bind(reframed(frame, data.draw(mutated(frame[5:]))))
    check_bind(reframed(frame, frame[5:] + data.draw(st.binary(min_size=1, max_size=3))))


@FAST
@given(st.data())
def test_data_row_values_are_those_the_decoder_reads(data: st.DataObject) -> None:
    frame = encode(data.draw(typed_backend[DataRow]))
    check_data_row(frame)
    check_data_row(data.draw(mutated(frame)))
    check_data_row(reframed(frame, data.draw(mutated(frame[5:]))))
    check_data_row(reframed(frame, frame[5:] + data.draw(st.binary(min_size=1, max_size=3))))


@FAST
@given(st.binary(max_size=120))
def test_fast_readers_on_arbitrary_bytes(data: bytes) -> None:
    check_bind(reframed(b"B", data))
    check_data_row(reframed(b"D", data))
    assert bind_fields(data) is None or data[:1] == b"B"
    assert data_row_values(data) is None or data[:1] == b"D"
