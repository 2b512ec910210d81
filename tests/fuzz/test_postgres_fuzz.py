"""Property and fuzz tests for the PostgreSQL parsers.

Valid conversations are generated from the per-message strategies of the unit tests together with
the messages they must produce. Any input, valid or mutated, must give the same messages (and the
same error) whether fed whole, byte by byte or at random split points; only ProtocolError may
escape; and the messages parsed before any error re-encode to exactly the bytes they came from.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz import mutations
from tests.unit.protocols.test_postgres import (
    auth_responses,
    typed_backend,
    typed_frontend,
    untyped_frontend,
)

from wiretape.errors import ProtocolError
from wiretape.protocols.postgres import (
    NEED_DATA,
    BackendMessage,
    BackendParser,
    CancelRequest,
    FrontendMessage,
    FrontendParser,
    GSSENCRequest,
    Message,
    SSLAnswer,
    SSLRequest,
    StartupMessage,
    Terminate,
    encode,
)

# WIRETAPE_FUZZ_EXAMPLES raises the budget for longer local runs.
FAST = settings(
    max_examples=int(os.environ.get("WIRETAPE_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Outcome:
    events: list[Message] = field(default_factory=list)
    error: tuple[str, int | None] | None = None
    consumed: int = 0


@dataclass(frozen=True)
class Setup:
    """What the proxy would tell the parsers, decided before any byte is fed."""

    side: str  # "frontend" or "backend"
    accept: tuple[bool, ...] = ()  # answers to successive SSL/GSS requests
    auth: BackendMessage | None = None  # the authentication request in force for ``p``
    expect_answer: bool = False  # backend: the stream starts with the one-byte SSL answer
    max_message_size: int = 1 << 30


def run(setup: Setup, pieces: list[bytes], *, eof: bool = True) -> Outcome:
    out = Outcome()
    parser: FrontendParser | BackendParser
    if setup.side == "frontend":
        parser = front = FrontendParser(max_message_size=setup.max_message_size)
        if setup.auth is not None:
            front.expect_auth(setup.auth)
    else:
        parser = back = BackendParser(max_message_size=setup.max_message_size)
        if setup.expect_answer:
            back.expect_ssl_answer()
    answers = iter(setup.accept)

    def pump() -> None:
        while (event := parser.next_event()) is not NEED_DATA:
            assert not isinstance(event, type(NEED_DATA))
            out.events.append(event)
            if isinstance(event, SSLRequest | GSSENCRequest):
                assert isinstance(parser, FrontendParser)
                yes = next(answers, False)
                parser.ssl_answered(
                    (b"S" if isinstance(event, SSLRequest) else b"G") if yes else b"N"
                )

    try:
        for piece in pieces:
            parser.feed(piece)
            pump()
        if eof:
            parser.feed_eof()
            pump()
    except ProtocolError as exc:
        out.error = (exc.message, exc.offset)
    out.consumed = parser.consumed
    return out


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def check_consistent(setup: Setup, data: bytes, cuts: list[int]) -> Outcome:
    splits = [[data], [data[i : i + 1] for i in range(len(data))], split_at(data, cuts)]
    whole, *others = (run(setup, pieces) for pieces in splits)
    for other in others:
        assert other == whole
    assert b"".join(encode(e) for e in whole.events) == data[: whole.consumed]
    return whole


# -- generators of valid conversations ------------------------------------------------------------

cut_lists = st.lists(st.integers(0, 10_000), max_size=8)
ENCRYPTION_REQUESTS: list[FrontendMessage] = [SSLRequest(), GSSENCRequest()]


@st.composite
def frontend_stream(draw: st.DrawFn) -> tuple[Setup, bytes, list[FrontendMessage]]:
    messages: list[FrontendMessage] = []
    accept: list[bool] = []
    for _ in range(draw(st.integers(0, 2))):
        messages.append(draw(st.sampled_from(ENCRYPTION_REQUESTS)))
        accept.append(draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:
        messages.append(draw(untyped_frontend[CancelRequest]))
    else:
        messages.append(draw(untyped_frontend[StartupMessage]))
        kind = draw(st.sampled_from(sorted(auth_responses, key=lambda c: c.__name__)))
        request, p_strategy = auth_responses[kind]
        typed = [s for cls, s in typed_frontend.items() if cls is not Terminate] + [p_strategy]
        messages += draw(st.lists(st.one_of(typed), max_size=8))
        if draw(st.booleans()):
            messages.append(Terminate())
        setup = Setup("frontend", tuple(accept), request)
        return setup, b"".join(map(encode, messages)), messages
    return Setup("frontend", tuple(accept)), b"".join(map(encode, messages)), messages


@st.composite
def backend_stream(draw: st.DrawFn) -> tuple[Setup, bytes, list[BackendMessage]]:
    messages: list[BackendMessage] = []
    expect_answer = draw(st.booleans())
    if expect_answer:
        messages.append(SSLAnswer(draw(st.sampled_from([b"S", b"N", b"G"]))))
    messages += draw(st.lists(st.one_of(list(typed_backend.values())), max_size=10))
    setup = Setup("backend", expect_answer=expect_answer)
    return setup, b"".join(map(encode, messages)), messages


# -- properties of valid conversations ------------------------------------------------------------


@FAST
@given(frontend_stream(), cut_lists)
def test_valid_frontend_streams_parse_the_same_however_split(
    stream: tuple[Setup, bytes, list[FrontendMessage]], cuts: list[int]
) -> None:
    setup, data, expected = stream
    whole = check_consistent(setup, data, cuts)
    assert whole.error is None
    assert whole.events == expected
    assert whole.consumed == len(data)


@FAST
@given(backend_stream(), cut_lists)
def test_valid_backend_streams_parse_the_same_however_split(
    stream: tuple[Setup, bytes, list[BackendMessage]], cuts: list[int]
) -> None:
    setup, data, expected = stream
    whole = check_consistent(setup, data, cuts)
    assert whole.error is None
    assert whole.events == expected
    assert whole.consumed == len(data)


# -- fuzz -----------------------------------------------------------------------------------------

INTERESTING = [
    b"\x00",
    b"\xff",
    b"\x00\x00\x00\x04",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"p",
    b"R",
    b"E",
    b"S",
    b"D",
    b"\x04\xd2\x16\x2f",
]


def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    return mutations.mutated(base, INTERESTING, truncate=True)


small_limits = st.sampled_from([1 << 30, 64])
STARTED = encode(StartupMessage((("user", "u"),)))


@FAST
@given(st.binary(max_size=200), st.booleans(), st.sampled_from(["frontend", "backend"]), cut_lists)
def test_fuzz_arbitrary_bytes(data: bytes, prefixed: bool, side: str, cuts: list[int]) -> None:
    if side == "frontend" and prefixed:
        data = STARTED + data  # reach the typed state as well as the startup state
    check_consistent(Setup(side, accept=(True, False)), data, cuts)


@FAST
@given(st.data(), frontend_stream(), small_limits, cut_lists)
def test_fuzz_mutated_frontend_streams(
    data: st.DataObject,
    stream: tuple[Setup, bytes, list[FrontendMessage]],
    limit: int,
    cuts: list[int],
) -> None:
    setup = Setup("frontend", stream[0].accept, stream[0].auth, max_message_size=limit)
    check_consistent(setup, data.draw(mutated(stream[1])), cuts)


@FAST
@given(st.data(), backend_stream(), small_limits, cut_lists)
def test_fuzz_mutated_backend_streams(
    data: st.DataObject,
    stream: tuple[Setup, bytes, list[BackendMessage]],
    limit: int,
    cuts: list[int],
) -> None:
    setup = Setup("backend", expect_answer=stream[0].expect_answer, max_message_size=limit)
    check_consistent(setup, data.draw(mutated(stream[1])), cuts)
