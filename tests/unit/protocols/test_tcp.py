"""Generic TCP: how a connection is cut into turns, the stored form, and replay matching.

The tracker tests read like transcripts: what each side sent, when, and the turns that come out.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretape.protocols.tcp import (
    CODEC,
    LARGE_ANSWER,
    LARGE_SEND,
    MERGE_GAP,
    Digest,
    Exchange,
    Sends,
    Tracker,
    answer_of,
    preview,
    request_for,
    rewrite_stream,
    send_of,
)
from wiretape.protocols.wire import PlainError, codec_for
from wiretape.secrets import Secrets

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class MemorySpool:
    def __init__(self) -> None:
        self.data = bytearray()
        self.finished = False

    def write(self, data: bytes) -> None:
        assert not self.finished
        self.data += data

    def finish(self) -> object:
        self.finished = True
        return bytes(self.data)


class Transcript:
    """Drives a Tracker; tags count the turns as they begin."""

    def __init__(self, *, spool: bool = False, secrets: Secrets | None = None) -> None:
        self.tags = itertools.count(1)
        self.spools: list[MemorySpool] = []
        self.tracker = Tracker(
            opened=100.0,
            new_tag=lambda: next(self.tags),
            opening_tag="opening",
            spool=self._spool if spool else None,
            redact=secrets.redact_bytes if secrets is not None else None,
        )
        self.turns: list[Exchange] = []

    def _spool(self) -> MemorySpool:
        self.spools.append(MemorySpool())
        return self.spools[-1]

    def client(self, data: bytes, at: float) -> Transcript:
        self.turns += self.tracker.client(data, at)
        return self

    def server(self, data: bytes, at: float) -> Transcript:
        self.tracker.server(data, at)
        return self

    def close(self) -> list[Exchange]:
        self.turns += self.tracker.close()
        return self.turns


def sends(turns: list[Exchange]) -> list[Any]:
    return [t.request.data["send"] for t in turns]  # type: ignore[index]


def test_client_bytes_are_reassembled_and_turns_end_when_the_client_sends_again() -> None:
    t = Transcript()
    t.client(b"get ", 1.0).client(b"user:1\r\n", 1.001)
    t.server(b"VALUE user:1 0 5\r\nalice\r\nEND\r\n", 1.005)
    assert t.turns == []  # the server may say more
    t.client(b"set k 0 0 1\r\nx\r\n", 2.0)
    assert sends(t.turns) == ["get user:1\r\n"]
    t.server(b"STORED\r\n", 2.0004)
    turns = t.close()
    assert sends(turns) == ["get user:1\r\n", "set k 0 0 1\r\nx\r\n"]
    first, second = turns
    assert first.tag == 1 and second.tag == 2
    assert first.response_data() == {
        "chunks": [{"delay_ms": 4.0, "data": "VALUE user:1 0 5\r\nalice\r\nEND\r\n"}]
    }
    assert second.response_data() == {"chunks": [{"delay_ms": 0.4, "data": "STORED\r\n"}]}
    assert (first.started, first.ended) == (1.0, 1.005)


def test_server_pauses_are_kept_per_chunk_and_short_ones_join_chunks() -> None:
    t = Transcript()
    t.client(b"WAIT\r\n", 10.0)
    t.server(b"one", 10.3)
    t.server(b"\r\n", 10.3 + MERGE_GAP / 2)  # read boundary, no real pause
    t.server(b"two\r\n", 10.8)
    [turn] = t.close()
    assert turn.response_data() == {
        "chunks": [
            {"delay_ms": 300.0, "data": "one\r\n"},
            {"delay_ms": 499.5, "data": "two\r\n"},
        ]
    }
    answer = answer_of(turn.response_data())
    assert answer.chunks == ((0.3, b"one\r\n"), (0.4995, b"two\r\n"))
    assert not answer.close


def test_a_server_that_speaks_first_gives_a_greeting_turn() -> None:
    t = Transcript()
    t.server(b"220 ready\r\n", 100.25)
    t.client(b"HELO x\r\n", 101.0)
    t.server(b"250 ok\r\n", 101.01)
    turns = t.close()
    assert sends(turns) == ["", "HELO x\r\n"]
    greeting = turns[0]
    assert greeting.tag == "opening"
    assert greeting.response_data()["chunks"] == [{"delay_ms": 250.0, "data": "220 ready\r\n"}]
    assert greeting.request.reusable
    assert not turns[1].request.reusable


def test_the_server_closing_marks_the_turn() -> None:
    t = Transcript()
    t.client(b"quit\r\n", 1.0)
    t.tracker.server_closed(1.002)
    [turn] = t.close()
    assert turn.response_data() == {"chunks": [], "close": True}
    assert answer_of(turn.response_data()).close
    refused = Transcript()
    refused.tracker.server_closed(100.01)
    [opening] = refused.close()
    assert opening.request.data == {"send": ""}
    assert opening.response_data() == {"chunks": [], "close": True}


def test_a_turn_without_an_answer_keeps_the_client_bytes() -> None:
    t = Transcript()
    t.client(b"set k 0 0 1 noreply\r\nx\r\n", 1.0)
    t.client(b"get k\r\n", 1.5)  # no server bytes between: still the same turn
    [turn] = t.close()
    assert turn.request.data == {"send": "set k 0 0 1 noreply\r\nx\r\nget k\r\n"}
    assert turn.response_data() == {"chunks": []}


def test_binary_bytes_are_base64_and_round_trip() -> None:
    t = Transcript()
    t.client(b"\x80\x00\x00\x05\xff", 1.0)
    t.server(b"\x81\x00\x00\x00", 1.1)
    [turn] = t.close()
    assert turn.request.data == {"send": {"base64": "gAAABf8="}}
    again = CODEC.request(turn.request.data)
    assert again.key == turn.request.key == request_for(b"\x80\x00\x00\x05\xff").key
    assert answer_of(turn.response_data()).chunks == ((pytest.approx(0.1), b"\x81\x00\x00\x00"),)


def test_a_large_answer_goes_to_the_spool_with_its_chunk_sizes() -> None:
    t = Transcript(spool=True)
    t.client(b"get big\r\n", 1.0)
    block = b"x" * 40_000
    t.server(block, 1.01)
    t.server(block, 1.01 + MERGE_GAP / 4)
    t.server(block, 1.5)
    [turn] = t.close()
    [spool] = t.spools
    assert spool.finished and bytes(spool.data) == block * 3
    assert turn.raw == block * 3
    data = turn.response_data()
    assert data == {
        "chunks": [{"delay_ms": 10.0, "size": 80_000}, {"delay_ms": 489.75, "size": 40_000}],
        "size": 120_000,
        "head": "x" * 64,
    }
    assert answer_of(data, raw=True).chunks == ((0.01, 80_000), (0.48975, 40_000))
    assert 3 * len(block) > LARGE_ANSWER


def test_a_large_send_is_kept_as_a_digest() -> None:
    t = Transcript()
    big = bytes(range(256)) * (LARGE_SEND // 256 + 10)
    for at in range(0, len(big), 70_000):
        t.client(big[at : at + 70_000], 1.0)
    t.server(b"OK\r\n", 1.2)
    [turn] = t.close()
    send = send_of(turn.request.data)
    assert isinstance(send, Digest)
    assert send == Digest(hashlib.sha256(big).hexdigest(), len(big), big[:64])
    assert turn.request.key == request_for(send).key == CODEC.request(turn.request.data).key
    assert "sha256" in turn.request.summary


AWS = "AKIA" + "IOSFODNN7" + "EXAMPLE"


def test_keys_leave_a_turn_as_placeholders_of_the_same_length() -> None:
    secrets = Secrets()
    t = Transcript(secrets=secrets)
    t.client(f"set k 0 0 20\r\n{AWS}\r\n".encode(), 1.0)
    t.server(b"STORED\r\nVALUE k 0 20\r\n" + AWS[:9].encode(), 1.1)
    t.server(AWS[9:].encode() + b"\r\nEND\r\n", 1.3)  # the key split between two reads
    [turn] = t.close()
    assert send_of(turn.request.data) == b"set k 0 0 20\r\nwiretape:secret:1___\r\n"
    data = turn.response_data()
    assert [c["data"] for c in data["chunks"]] == [
        "STORED\r\nVALUE k 0 20\r\nwiretape:",
        "secret:1___\r\nEND\r\n",
    ]
    assert [c["delay_ms"] for c in data["chunks"]] == [100.0, 200.0]
    assert secrets.values == {"wiretape:secret:1": AWS}


def test_a_large_send_keeps_a_redacted_head_and_the_digest_of_the_real_bytes() -> None:
    t = Transcript(secrets=Secrets())
    big = b"P" * 50 + b" " + AWS.encode() + b" " + b"q" * LARGE_SEND  # the key crosses byte 64
    t.client(big, 1.0)
    t.server(b"OK\r\n", 1.2)
    [turn] = t.close()
    send = send_of(turn.request.data)
    assert isinstance(send, Digest)
    assert send.head == b"P" * 50 + b" wiretape:secr"
    assert send.sha256 == hashlib.sha256(big).hexdigest() and send.size == len(big)


def test_a_large_answer_is_left_to_the_caller_and_raw_replaced_resizes_it() -> None:
    t = Transcript(spool=True, secrets=Secrets())
    t.client(b"get big\r\n", 1.0)
    t.server(AWS.encode() + b" " + b"x" * LARGE_ANSWER, 1.1)
    t.server(b"tail", 1.5)
    [turn] = t.close()
    assert turn.raw == AWS.encode() + b" " + b"x" * LARGE_ANSWER + b"tail"  # the caller's part
    turn.raw_replaced(b"new", turn.size + 3, b"h" * 100)
    data = turn.response_data()
    assert [c["size"] for c in data["chunks"]] == [LARGE_ANSWER + 21, 7]
    assert data["size"] == LARGE_ANSWER + 28 and data["head"] == "h" * 64


@PROPS
@given(
    st.lists(st.binary(max_size=20), min_size=1, max_size=6),
    st.binary(max_size=4),
    st.booleans(),
)
def test_rewrite_stream_keeps_the_offsets_of_the_pieces(
    pieces: list[bytes], extra: bytes, grow: bool
) -> None:
    whole = b"".join(pieces)
    same = bytes(b ^ 1 for b in whole)
    out = rewrite_stream(pieces, lambda data: same + (extra if grow else b""))
    if same + (extra if grow else b"") == whole:
        assert out is None
        return
    assert out is not None and b"".join(out) == same + (extra if grow else b"")
    assert [len(p) for p in out[:-1]] == [len(p) for p in pieces[:-1]]
    assert rewrite_stream(pieces, lambda data: data) is None


def test_codec_is_found_by_name_and_rejects_bad_data() -> None:
    assert codec_for("tcp") is CODEC
    for bad in ([], {"sent": "x"}, {"send": 3}, {"send": {"sha256": "ab", "size": 1}}):
        with pytest.raises(PlainError):
            CODEC.request(bad)
    for bad_response in (
        {},
        {"chunks": "x"},
        {"chunks": [{"delay_ms": -1, "data": "x"}]},
        {"chunks": [{"delay_ms": True, "data": "x"}]},
        {"chunks": [{"delay_ms": 1}]},
        {"chunks": [], "close": "yes"},
    ):
        with pytest.raises(PlainError):
            CODEC.check_response(bad_response)
    CODEC.check_response({"chunks": [{"delay_ms": 0, "data": {"base64": "AA=="}}], "close": True})


def test_preview_shows_text_escaped_and_binary_as_hex() -> None:
    assert preview(b"get k\r\n") == "get k\\r\\n"
    assert preview(b"") == "(nothing: the server speaks first)"
    assert preview(b"\x00\x01\xff").startswith("hex 0001ff")
    long = preview(b"a" * 500)
    assert long.endswith("… (500 bytes)") and len(long) < 130


def test_sends_match_by_prefix() -> None:
    recorded = Sends([b"get a\r\n", b"get a\r\nget b\r\n", b"set a 0 0 1\r\nx\r\n", b""])
    assert recorded.has_opening
    m = recorded.match(b"get")
    assert m.partial and not m.complete
    m = recorded.match(b"get a\r\n")
    assert m.complete == (b"get a\r\n",) and m.partial
    m = recorded.match(b"get a\r\nget b\r\n")
    assert m.complete == (b"get a\r\nget b\r\n", b"get a\r\n") and not m.partial
    m = recorded.match(b"get a\r\nset a 0 0 1\r\nx\r\n")  # pipelined: the first turn answers
    assert m.complete == (b"get a\r\n",) and not m.partial
    assert recorded.match(b"get c\r\n").miss
    assert recorded.match(b"gex").miss
    assert not Sends([]).match(b"x").partial


def test_sends_match_digests_by_hash() -> None:
    big = b"y" * 5000
    digest = Digest(hashlib.sha256(big).hexdigest(), len(big), big[:64])
    recorded = Sends([digest, b"ping\r\n"])
    assert recorded.match(b"yyy").partial
    assert recorded.match(big + b"ping\r\n").complete == (digest,)
    assert recorded.match(b"y" * 4999 + b"z").miss
    assert recorded.match(b"yx").miss


# -- properties ---------------------------------------------------------------------------------

conversations = st.lists(
    st.tuples(st.binary(min_size=1, max_size=40), st.binary(max_size=60)), min_size=1, max_size=6
)


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for point in [*points, len(data)]:
        if point > last:
            out.append(data[last:point])
        last = point
    return out


@PROPS
@given(conversations, st.lists(st.integers(0, 1000), max_size=8), st.booleans())
def test_read_boundaries_do_not_change_the_turns(
    talk: list[tuple[bytes, bytes]], cuts: list[int], greeting: bool
) -> None:
    """However TCP splits the same bytes into reads, the turns are the same."""
    results = []
    for split in (lambda d: [d], lambda d: _pieces(d, cuts)):
        t = Transcript()
        now = 1.0
        if greeting:
            t.server(b"hello\r\n", now)
        for sent, answered in talk:
            for piece in split(sent):
                now += 0.0001
                t.client(piece, now)
            for piece in split(answered):
                now += 0.0001
                t.server(piece, now)
        turns = t.close()
        results.append(
            [
                (bytes(t.send) if isinstance(t.send, bytearray) else t.send, _answer(t))
                for t in turns
            ]
        )
    assert results[0] == results[1]
    expected_turns = []
    if greeting:
        expected_turns.append((b"", b"hello\r\n"))
    for sent, answered in talk:
        if expected_turns and expected_turns[-1][1] == b"" and expected_turns[-1][0]:
            expected_turns[-1] = (expected_turns[-1][0] + sent, answered)
        else:
            expected_turns.append((sent, answered))
    assert results[0] == expected_turns


def _answer(turn: Exchange) -> bytes:
    return b"".join(d for _, d in answer_of(turn.response_data()).chunks if isinstance(d, bytes))


@PROPS
@given(st.lists(st.binary(max_size=30), max_size=8), st.binary(max_size=40))
def test_match_agrees_with_a_plain_search(recorded: list[bytes], buffer: bytes) -> None:
    sends = Sends(recorded)
    found = sends.match(buffer)
    plain = {r for r in recorded if r}
    if buffer:
        assert set(found.complete) == {r for r in plain if buffer.startswith(r)}
        assert found.partial == any(r.startswith(buffer) and r != buffer for r in plain)
    lengths = [len(s) for s in found.complete if isinstance(s, bytes)]
    assert lengths == sorted(lengths, reverse=True)
