"""Redis exchanges: plain data, request keys, redaction, and the pairing of commands and frames.

The tracker tests read like transcripts: bytes the client sends, bytes the server sends, each
through the real RESP parsers, and the exchanges that come out.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretape.model import WireRequest
from wiretape.protocols.redis import (
    NEED_DATA,
    Array,
    Attributed,
    BigNumber,
    Boolean,
    BulkError,
    BulkString,
    Double,
    Integer,
    Kind,
    Map,
    Null,
    NullKind,
    PushData,
    RespParser,
    Set,
    SimpleError,
    SimpleString,
    Value,
    Verbatim,
    encode_command,
    encode_reply,
)
from wiretape.protocols.redis_exchange import (
    CODEC,
    PLACEHOLDER,
    CommandAssembler,
    Exchange,
    LargeArg,
    Requests,
    Tracker,
    answer_of,
    is_blocking,
    request_for,
    value_doc,
    value_of,
    with_request_noise,
)
from wiretape.protocols.wire import PlainError, codec_for

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EVERY_KIND: list[Value] = [
    BulkString(b"alice"),
    BulkString(b"\x00\xffbinary"),
    BulkString(b""),
    Integer(-42),
    Null(NullKind.BULK),
    Null(NullKind.ARRAY),
    Null(NullKind.RESP3),
    SimpleString(b"OK"),
    SimpleError(b"WRONGTYPE Operation against a key holding the wrong kind of value"),
    BulkError(b"SYNTAX invalid\r\nsyntax"),
    Boolean(True),
    Boolean(False),
    Double("1.5"),
    Double("-inf"),
    BigNumber("3492890328409238509324850943850943825024385"),
    Verbatim(b"txt", b"Some string"),
    Array((BulkString(b"a"), Integer(1), Array(()))),
    Map(((BulkString(b"server"), BulkString(b"redis")), (Integer(1), Null()))),
    Set((BulkString(b"x"), BulkString(b"y"))),
    PushData((BulkString(b"message"), BulkString(b"news"), BulkString(b"hi"))),
    Attributed(((SimpleString(b"ttl"), Integer(3600)),), BulkString(b"v")),
]


# -- plain data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", EVERY_KIND, ids=lambda v: type(v).__name__)
def test_every_value_kind_round_trips_through_plain_data(value: Value) -> None:
    doc = value_doc(value)
    back = value_of(doc)
    assert back == value
    assert encode_reply(back) == encode_reply(value)


def test_plain_data_is_readable() -> None:
    assert value_doc(BulkString(b"alice")) == "alice"
    assert value_doc(SimpleString(b"OK")) == {"simple": "OK"}
    assert value_doc(Null(NullKind.BULK)) is None
    assert value_doc(Null(NullKind.ARRAY)) == {"nil": "array"}
    assert value_doc(Integer(3)) == 3
    assert value_doc(Boolean(True)) is True
    assert value_doc(BulkString(b"\x00")) == {"base64": "AA=="}


_leaf = st.one_of(
    st.binary(max_size=20).map(BulkString),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1).map(Integer),
    st.sampled_from([Null(NullKind.BULK), Null(NullKind.ARRAY), Null(NullKind.RESP3)]),
    st.from_regex(rb"[a-zA-Z ]{0,12}", fullmatch=True).map(SimpleString),
    st.from_regex(rb"ERR [a-z]{0,12}", fullmatch=True).map(SimpleError),
    st.booleans().map(Boolean),
    st.sampled_from(["0", "1.25", "-3e+10", "inf", "nan"]).map(Double),
)
_values = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: Array(tuple(items))),
        st.lists(inner, max_size=4).map(lambda items: Set(tuple(items))),
        st.lists(st.tuples(inner, inner), max_size=3).map(lambda pairs: Map(tuple(pairs))),
    ),
    max_leaves=12,
)


@PROPS
@given(_values)
def test_plain_data_is_lossless(value: Value) -> None:
    assert encode_reply(value_of(value_doc(value))) == encode_reply(value)


@pytest.mark.parametrize(
    "doc",
    [{"nil": "maybe"}, {"unknown": 1}, {"map": [[1]]}, 1 << 64, {"double": 1.5}, object()],
    ids=repr,
)
def test_bad_plain_values_are_refused(doc: Any) -> None:
    with pytest.raises(PlainError):
        value_of(doc)


# -- requests -----------------------------------------------------------------------------------


def test_the_key_is_the_command_and_its_arguments() -> None:
    a = request_for(["GET", "user:1"])
    b = request_for(["get", "user:1"])
    c = request_for(["GET", "user:2"])
    assert a.key == b.key != c.key
    assert a.summary == "GET user:1"
    assert not a.reusable
    assert (
        request_for(["client", "setname", "x"]).key == request_for(["CLIENT", "SETNAME", "x"]).key
    )
    assert request_for(["SET", "k", "two words"]).summary == "SET k 'two words'"
    # The client library's version is not compared: upgrading it keeps recordings valid.
    old = request_for(["CLIENT", "SETINFO", "LIB-VER", "8.1.0"])
    assert old.key == request_for(["CLIENT", "SETINFO", "LIB-VER", "8.2.0"]).key
    assert old.key != request_for(["CLIENT", "SETINFO", "LIB-NAME", "8.1.0"]).key


@pytest.mark.parametrize(
    "args",
    [
        ["HELLO", "3"],
        ["AUTH", "wiretape:secret"],
        ["SELECT", "1"],
        ["CLIENT", "SETNAME", "app"],
        ["CLIENT", "SETINFO", "LIB-NAME", "redis-py"],
        ["PING"],
        ["COMMAND", "DOCS"],
    ],
)
def test_connection_set_up_is_reusable(args: list[str]) -> None:
    assert request_for(args).reusable
    assert not request_for({"command": args, "tx": True}).reusable


def test_queued_commands_match_only_inside_a_transaction() -> None:
    requests = Requests()
    keys = [requests.request([w.encode() for w in c.split()]) for c in ("MULTI", "SET a 1", "EXEC")]
    assert [r.data for r in keys] == [
        ["MULTI"],
        {"command": ["SET", "a", "1"], "tx": True},
        ["EXEC"],
    ]
    assert keys[1].key != request_for(["SET", "a", "1"]).key
    assert keys[1].summary.startswith("(queued in MULTI)")
    assert requests.request([b"SET", b"a", b"1"]).data == ["SET", "a", "1"]
    requests.request([b"MULTI"])
    requests.request([b"DISCARD"])
    assert not requests.tx


@pytest.mark.parametrize(
    ("args", "stored"),
    [
        (["AUTH", "hunter2"], ["AUTH", "wiretape:secret"]),
        (["AUTH", "app", "hunter2"], ["AUTH", "app", "wiretape:secret"]),
        (
            ["HELLO", "3", "AUTH", "default", "hunter2", "SETNAME", "x"],
            ["HELLO", "3", "AUTH", "default", "wiretape:secret", "SETNAME", "x"],
        ),
        (
            ["CONFIG", "SET", "requirepass", "hunter2"],
            ["CONFIG", "SET", "requirepass", "wiretape:secret"],
        ),
        (
            ["ACL", "SETUSER", "bob", "on", ">hunter2"],
            ["ACL", "SETUSER", "bob", "on", ">wiretape:secret"],
        ),
    ],
)
def test_passwords_are_stored_as_a_placeholder(args: list[str], stored: list[str]) -> None:
    request = Requests().request([a.encode() for a in args])
    assert request.data == stored
    assert "hunter2" not in repr(request)
    # Any password gives the same key: replay accepts any credentials.
    other = Requests().request([a.replace("hunter2", "other").encode() for a in args])
    assert other.key == request.key


def test_large_arguments_are_stored_and_matched_by_digest() -> None:
    big = b"x" * (2 << 20)
    digest = hashlib.sha256(big).hexdigest()
    request = Requests().request([b"SET", b"k", big])
    assert request.data == ["SET", "k", {"sha256": digest, "size": len(big)}]
    assert request_for(request.data).key == request.key
    streamed = Requests().request([b"SET", b"k", LargeArg(digest, len(big))])
    assert streamed.key == request.key
    assert "<2097152 bytes sha256:" in request.summary


def test_request_noise_rules_take_arguments_out_of_the_key() -> None:
    rules = [("SET", (1,)), ("*", (4,))]
    one = with_request_noise(Requests().request([b"SET", b"sess-1", b"alice", b"EX", b"60"]), rules)
    two = with_request_noise(Requests().request([b"SET", b"sess-2", b"alice", b"EX", b"90"]), rules)
    assert one.key == two.key
    assert one.data == ["SET", "sess-1", "alice", "EX", "60"]  # stored as it was
    assert one.summary == "SET sess-1 alice EX 60"
    assert one.key != with_request_noise(Requests().request([b"SET", b"s", b"bob"]), rules).key
    get = Requests().request([b"GET", b"sess-1"])
    assert with_request_noise(get, rules) is get  # no rule for GET
    queued = Requests()
    queued.request([b"MULTI"])
    inside = with_request_noise(queued.request([b"SET", b"sess-3", b"alice", b"EX", b"60"]), rules)
    assert inside.key != one.key  # still only inside a transaction


def test_app_generated_values_match_by_kind() -> None:
    def req(*args: str) -> WireRequest:
        return Requests().request([a.encode() for a in args])

    recorded = req("SET", "session:3f2a1b4c-1234-4abc-8def-0123456789ab", "alice")
    live = req("SET", "session:9c0d2e1f-5678-4def-9abc-ba9876543210", "alice")
    assert recorded.key != live.key
    assert recorded.loose_key == live.loose_key is not None
    # The kind and format must agree: another UUID version, another value, no match.
    assert req("SET", "session:9c0d2e1f-5678-1def-9abc-ba9876543210", "alice").loose_key != (
        recorded.loose_key
    )
    assert req("SET", "session:9c0d2e1f-5678-4def-9abc-ba9876543210", "bob").loose_key != (
        recorded.loose_key
    )
    stamp = req("ZADD", "events/2024-05-01T10:00:00Z", "1", "e1")
    assert stamp.loose_key == req("ZADD", "events/2031-12-24T23:59:59Z", "1", "e1").loose_key
    assert req("GET", "user:42").loose_key is None  # nothing generated: exact matching only
    assert req("GET", "cache:v1:/api/items:page:2").loose_key is None
    assert request_for(recorded.data).loose_key == recorded.loose_key


@pytest.mark.parametrize(
    "data",
    [
        [],
        "GET",
        ["SET", {"sha256": "zz", "size": 1}],
        {"command": ["GET"], "tx": "yes"},
        {"cmd": ["GET"]},
        {"command": ["GET"], "noise": [1]},
    ],
    ids=repr,
)
def test_bad_stored_requests_are_refused(data: Any) -> None:
    with pytest.raises(PlainError):
        request_for(data)


def test_the_codec_is_registered() -> None:
    assert codec_for("redis") is CODEC
    CODEC.check_response({"reply": {"simple": "OK"}})
    with pytest.raises(PlainError):
        CODEC.check_response({"reply": {"double": "not a number"}})
    with pytest.raises(PlainError):
        CODEC.check_response({"replies": [], "after": [{"delay_ms": -1, "frame": 1}]})


def test_blocking_commands() -> None:
    assert is_blocking([b"BLPOP", b"q", b"1"])
    assert is_blocking([b"xread", b"BLOCK", b"100", b"STREAMS", b"s", b"$"])
    assert not is_blocking([b"XREAD", b"STREAMS", b"s", b"0"])
    assert not is_blocking([b"LPOP", b"q"])


# -- the tracker --------------------------------------------------------------------------------


class Spool:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def finish(self) -> bytes:
        return bytes(self.data)


class Conversation:
    """Client and server bytes through the real parsers into one tracker, as the proxy does."""

    def __init__(self, *, spool: bool = False, byte_by_byte: bool = False) -> None:
        self.commands = RespParser(Kind.COMMAND)
        self.replies = RespParser(Kind.REPLY)
        self.assembler = CommandAssembler()
        self.tracker = Tracker(spool=Spool if spool else None)
        self.exchanges: list[Exchange] = []
        self.byte_by_byte = byte_by_byte
        self.now = 100.0

    def _pieces(self, data: bytes) -> list[bytes]:
        return [data[i : i + 1] for i in range(len(data))] if self.byte_by_byte else [data]

    def client(self, *commands: list[bytes | str] | bytes, at: float | None = None) -> None:
        if at is not None:
            self.now = at
        data = b"".join(
            c
            if isinstance(c, bytes)
            else encode_command(a.encode() if isinstance(a, str) else a for a in c)
            for c in commands
        )
        for piece in self._pieces(data):
            self.commands.feed(piece)
            while (event := self.commands.next_event()) is not NEED_DATA:
                args = self.assembler.feed(event)
                if args is not None:
                    self.exchanges += self.tracker.command(args, self.now)

    def server(self, data: bytes, at: float | None = None) -> None:
        if at is not None:
            self.now = at
        for piece in self._pieces(data):
            self.replies.feed(piece)
            while (event := self.replies.next_event()) is not NEED_DATA:
                self.exchanges += self.tracker.server(event, self.now)

    def docs(self) -> list[tuple[Any, Any]]:
        return [(e.request.data, e.response_data()) for e in self.exchanges]


@pytest.fixture(params=[False, True], ids=["whole", "byte-by-byte"])
def conv(request: pytest.FixtureRequest) -> Conversation:
    return Conversation(byte_by_byte=request.param)


def test_a_command_and_its_reply(conv: Conversation) -> None:
    conv.client(["SET", "k", "v"], at=1.0)
    assert conv.exchanges == []
    conv.server(b"+OK\r\n", at=1.5)
    [ex] = conv.exchanges
    assert ex.request.data == ["SET", "k", "v"]
    assert ex.response_data() == {"reply": {"simple": "OK"}}
    assert (ex.started, ex.ended) == (1.0, 1.5)


def test_a_deep_pipeline_is_paired_in_order(conv: Conversation) -> None:
    n = 200
    conv.client(*[["INCR", f"c:{i}"] for i in range(n)])
    conv.server(b"".join(b":%d\r\n" % (i * 7) for i in range(n)))
    assert [d for d in conv.docs()] == [(["INCR", f"c:{i}"], {"reply": i * 7}) for i in range(n)]


def test_replies_that_arrive_with_later_commands_still_pair_by_order(conv: Conversation) -> None:
    conv.client(["GET", "a"], ["GET", "b"])
    conv.server(b"$1\r\n1\r\n")
    conv.client(["GET", "c"])
    conv.server(b"$-1\r\n$1\r\n3\r\n")
    assert conv.docs() == [
        (["GET", "a"], {"reply": "1"}),
        (["GET", "b"], {"reply": None}),
        (["GET", "c"], {"reply": "3"}),
    ]


def test_error_replies_are_answers(conv: Conversation) -> None:
    conv.client(["LPUSH", "str", "x"], ["GET", "k"])
    conv.server(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
    conv.server(b"-NOAUTH Authentication required.\r\n")
    assert conv.docs() == [
        (
            ["LPUSH", "str", "x"],
            {
                "reply": {
                    "error": "WRONGTYPE Operation against a key holding the wrong kind of value"
                }
            },
        ),
        (["GET", "k"], {"reply": {"error": "NOAUTH Authentication required."}}),
    ]


def test_multi_exec_and_a_watch_aborted_exec(conv: Conversation) -> None:
    conv.client(["WATCH", "k"], ["MULTI"], ["SET", "k", "1"], ["INCR", "k"], ["EXEC"])
    conv.server(b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n")
    conv.client(["MULTI"], ["SET", "k", "1"], ["EXEC"])
    conv.server(b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
    conv.client(["MULTI"], ["SET", "k", "2"], ["DISCARD"], ["GET", "k"])
    conv.server(b"+OK\r\n+QUEUED\r\n+OK\r\n$1\r\n1\r\n")
    docs = conv.docs()
    assert docs[:5] == [
        (["WATCH", "k"], {"reply": {"simple": "OK"}}),
        (["MULTI"], {"reply": {"simple": "OK"}}),
        ({"command": ["SET", "k", "1"], "tx": True}, {"reply": {"simple": "QUEUED"}}),
        ({"command": ["INCR", "k"], "tx": True}, {"reply": {"simple": "QUEUED"}}),
        (["EXEC"], {"reply": {"nil": "array"}}),
    ]
    assert docs[7] == (["EXEC"], {"reply": [{"simple": "OK"}]})
    assert docs[10] == (["DISCARD"], {"reply": {"simple": "OK"}})
    assert docs[11] == (["GET", "k"], {"reply": "1"})


def test_resp2_subscribe_pairs_confirmations_and_keeps_messages_with_their_delay(
    conv: Conversation,
) -> None:
    conv.client(["SUBSCRIBE", "a", "b"], at=10.0)
    conv.server(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", at=10.001)
    # A message for "a" arrives between the two confirmations: it stays in wire order.
    conv.server(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm0\r\n", at=10.002)
    conv.server(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n", at=10.003)
    assert conv.exchanges == []  # held: messages may still come
    conv.server(b"*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nm1\r\n", at=10.053)
    conv.server(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nm2\r\n", at=10.503)
    conv.client(["UNSUBSCRIBE"], at=11.0)
    [sub] = conv.exchanges
    data = sub.response_data()
    assert data["replies"] == [
        ["subscribe", "a", 1],
        ["message", "a", "m0"],
        ["subscribe", "b", 2],
    ]
    assert [(a["delay_ms"], a["frame"]) for a in data["after"]] == [
        (pytest.approx(50.0), ["message", "b", "m1"]),
        (pytest.approx(500.0), ["message", "a", "m2"]),
    ]
    # UNSUBSCRIBE without channels is answered once per subscribed channel.
    conv.server(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n")
    assert len(conv.exchanges) == 1
    conv.server(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n")
    assert conv.docs()[1] == (
        ["UNSUBSCRIBE"],
        {"replies": [["unsubscribe", "a", 1], ["unsubscribe", "b", 0]]},
    )
    assert not conv.tracker.subscribed


def test_resp2_array_replies_are_not_messages_without_subscriptions(conv: Conversation) -> None:
    conv.client(["LRANGE", "l", "0", "-1"])
    conv.server(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nb\r\n")
    assert conv.docs() == [(["LRANGE", "l", "0", "-1"], {"reply": ["message", "a", "b"]})]


def test_resp3_pushes_confirm_subscriptions_and_carry_messages(conv: Conversation) -> None:
    conv.client(["HELLO", "3"])
    conv.server(b"%1\r\n$5\r\nproto\r\n:3\r\n")
    conv.client(["PSUBSCRIBE", "news.*"], ["GET", "k"], at=20.0)
    conv.server(b">3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n", at=20.001)
    # In RESP3 regular commands keep working, and pushes are never their answers.
    conv.server(b">4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$6\r\nnews.a\r\n$2\r\nhi\r\n", at=20.002)
    conv.server(b"*3\r\n$8\r\npmessage\r\n$1\r\nx\r\n$1\r\ny\r\n", at=20.003)
    conv.server(b">3\r\n$7\r\nmessage\r\n$1\r\nz\r\n$1\r\n!\r\n", at=20.010)
    conv.client(["PING"], at=20.5)
    docs = conv.docs()
    assert docs[0][1] == {"reply": {"map": [["proto", 3]]}}
    assert docs[1] == (
        ["PSUBSCRIBE", "news.*"],
        {"reply": {"push": ["psubscribe", "news.*", 1]}},
    )
    assert docs[2][0] == ["GET", "k"]
    assert docs[2][1]["replies"] == [
        {"push": ["pmessage", "news.*", "news.a", "hi"]},
        ["pmessage", "x", "y"],
    ]
    assert docs[2][1]["after"] == [
        {"delay_ms": pytest.approx(7.0), "frame": {"push": ["message", "z", "!"]}}
    ]


def test_blocking_commands_keep_their_delay(conv: Conversation) -> None:
    conv.client(["GET", "a"], ["BLPOP", "q", "1"], at=1.0)
    conv.server(b"$1\r\n1\r\n", at=1.2)
    conv.server(b"*-1\r\n", at=2.2)
    docs = conv.docs()
    assert "delay_ms" not in docs[0][1]
    assert docs[1][1] == {"reply": {"nil": "array"}, "delay_ms": pytest.approx(1000.0)}


def test_client_reply_off_and_skip_silence_commands(conv: Conversation) -> None:
    conv.client(
        ["CLIENT", "REPLY", "OFF"],
        ["SET", "a", "1"],
        ["CLIENT", "REPLY", "ON"],
        ["CLIENT", "REPLY", "SKIP"],
        ["SET", "b", "2"],
        ["GET", "a"],
    )
    conv.server(b"+OK\r\n$1\r\n1\r\n")
    assert conv.docs() == [
        (["CLIENT", "REPLY", "OFF"], {"replies": []}),
        (["SET", "a", "1"], {"replies": []}),
        (["CLIENT", "REPLY", "ON"], {"reply": {"simple": "OK"}}),
        (["CLIENT", "REPLY", "SKIP"], {"replies": []}),
        (["SET", "b", "2"], {"replies": []}),
        (["GET", "a"], {"reply": "1"}),
    ]


def test_config_get_answers_do_not_keep_passwords(conv: Conversation) -> None:
    conv.client(["CONFIG", "GET", "*pass*"])
    conv.server(b"*4\r\n$11\r\nrequirepass\r\n$7\r\nhunter2\r\n$10\r\nmasteruser\r\n$0\r\n\r\n")
    [(_, response)] = conv.docs()
    assert response == {"reply": ["requirepass", PLACEHOLDER.decode(), "masteruser", ""]}


def test_large_answers_are_spooled_as_the_exact_server_bytes() -> None:
    conv = Conversation(spool=True)
    value = bytes(range(256)) * 8192  # 2 MiB: streamed by the parser
    answer = b"$%d\r\n%b\r\n" % (len(value), value)
    conv.client(["GET", "big"], ["GET", "small"])
    for i in range(0, len(answer), 65536):
        conv.server(answer[i : i + 65536])
    conv.server(b"$2\r\nok\r\n")
    big, small = conv.exchanges
    assert big.raw == answer
    data = big.response_data()
    assert data["raw"] == {"bytes": len(answer), "frames": 1, "starts": f"${len(value)}"}
    assert small.raw is None and small.response_data() == {"reply": "ok"}
    # A large aggregate of small elements is kept raw too.
    many = [BulkString(b"x" * 1000)] * 1100
    conv.client(["LRANGE", "l", "0", "-1"])
    conv.server(encode_reply(Array(tuple(many))))
    assert conv.exchanges[-1].raw == encode_reply(Array(tuple(many)))
    assert answer_of(conv.exchanges[-1].response_data(), raw=True).frames == []


def test_without_a_spool_a_streamed_answer_is_kept_as_a_value() -> None:
    conv = Conversation()
    value = b"v" * (3 << 20)
    conv.client(["GET", "big"])
    conv.server(b"*2\r\n$%d\r\n%b\r\n:1\r\n" % (len(value), value))
    [ex] = conv.exchanges
    assert ex.frames == [Array((BulkString(value), Integer(1)))]


def test_a_streamed_command_argument_is_hashed() -> None:
    conv = Conversation()
    value = b"z" * (3 << 20)
    conv.client([b"SET", b"big", value])
    conv.server(b"+OK\r\n")
    [ex] = conv.exchanges
    assert ex.request.data == [
        "SET",
        "big",
        {"sha256": hashlib.sha256(value).hexdigest(), "size": len(value)},
    ]


def test_close_returns_the_held_exchange_and_unanswered_commands(conv: Conversation) -> None:
    conv.client(["SUBSCRIBE", "a"])
    conv.server(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
    conv.server(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n")
    conv.client(["PING"])
    rest = conv.tracker.close(200.0)
    assert [e.request.data for e in rest] == [["PING"]]
    assert not rest[0].answered
    assert conv.exchanges[0].after[0][1] == Array(
        (BulkString(b"message"), BulkString(b"a"), BulkString(b"x"))
    )


def test_frames_before_any_command_go_with_the_next_one(conv: Conversation) -> None:
    conv.server(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")
    conv.client(["GET", "k"])
    conv.server(b"$1\r\nv\r\n")
    assert conv.docs() == [
        (["GET", "k"], {"replies": [{"push": ["invalidate", ["k"]]}, "v"]}),
    ]


def test_empty_commands_get_no_exchange(conv: Conversation) -> None:
    conv.client(b"\r\n", b"*0\r\n", b"PING\r\n")
    conv.server(b"+PONG\r\n")
    assert conv.docs() == [(["PING"], {"reply": {"simple": "PONG"}})]


def test_response_data_round_trips_through_answer_of(conv: Conversation) -> None:
    conv.client(["BLPOP", "q", "0"], at=0.0)
    conv.server(b"*2\r\n$1\r\nq\r\n$1\r\nv\r\n", at=0.25)
    [ex] = conv.exchanges
    ex.after.append((0.5, PushData((BulkString(b"message"), BulkString(b"c"), BulkString(b"m")))))
    answer = answer_of(ex.response_data())
    assert answer.frames == ex.frames
    assert answer.delay == pytest.approx(0.25)
    assert answer.after == ex.after


_replies = _values.filter(lambda v: not isinstance(v, SimpleError))
_push = st.binary(max_size=8).map(
    lambda data: PushData((BulkString(b"message"), BulkString(b"c"), BulkString(data)))
)


@PROPS
@given(
    st.lists(st.tuples(_replies, st.lists(_push, max_size=2)), min_size=1, max_size=12),
    st.lists(st.integers(min_value=1, max_value=400), max_size=8),
)
def test_pairing_does_not_depend_on_how_the_bytes_arrive(
    answers: list[tuple[Value, list[Value]]], cuts: list[int]
) -> None:
    """Replies pair with commands by order, and pushes stay in wire order among them, whatever
    the read boundaries are."""
    client = b"".join(encode_command([b"GET", b"k%d" % i]) for i in range(len(answers)))
    frames = [f for reply, pushes in answers for f in (*pushes, reply)]
    server = b"".join(encode_reply(f) for f in frames)
    results = []
    for pieces in ([server], _split(server, cuts)):
        conv = Conversation()
        conv.client(client)
        for piece in pieces:
            conv.server(piece)
        results.append(conv.exchanges)
    whole, split = results
    assert [e.frames for e in whole] == [e.frames for e in split]
    assert [e.frames[-1] for e in whole] == [reply for reply, _ in answers]
    assert [f for e in whole for f in e.frames] == frames


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@PROPS
@given(
    st.lists(
        st.one_of(st.binary(max_size=70), st.sampled_from([b"SET", b"get", b"a b", b"'q'"])),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_a_live_request_equals_its_stored_form_reloaded(args: list[bytes], tx: bool) -> None:
    requests = Requests()
    if tx:
        requests.request([b"MULTI"])
    live = requests.request(args)
    reloaded = request_for(live.data)
    assert (reloaded.key, reloaded.loose_key) == (live.key, live.loose_key)
    assert (reloaded.summary, reloaded.reusable) == (live.summary, live.reusable)
    assert reloaded.data == live.data
