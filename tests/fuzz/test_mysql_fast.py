"""The MySQL fast paths give what the general code gives.

``reply_bytes`` (a stored reply straight to bytes) against ``encode_reply(decode_messages())``
for every capability set, on valid and damaged stored data; ``ClientParser.take_query``
against ``feed`` + ``next_event``; the parsers' decode caches, the column-definition cache of
``messages_doc`` and the request cache of ``request_for`` against the same work done afresh.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.test_mysql_fuzz import (
    FAST,
    Outcome,
    Script,
    _by_command,
    check_consistent,
    cut_lists,
    mutated,
    orders,
    plain_data,
    run,
    session,
)

from wiretape.errors import ProtocolError
from wiretape.protocols.mysql import (
    NEED_DATA,
    Capability,
    ClientMessage,
    ClientParser,
    ColumnDefinition,
    Conversation,
    EndOfResponse,
    EofPacket,
    FieldType,
    LocalInfileRequest,
    MariaDbCapability,
    OkPacket,
    Packet,
    Phase,
    Query,
    ServerStatus,
    codec,
)
from wiretape.protocols.mysql import exchange as exchange_module
from wiretape.protocols.mysql.exchange import (
    Exchange,
    Tracker,
    decode_messages,
    encode_reply,
    messages_doc,
    request_for,
)
from wiretape.protocols.mysql.messages import decode_text_row
from wiretape.protocols.mysql.packets import Reader, encode_frames
from wiretape.protocols.mysql.replies import reply_bytes
from wiretape.protocols.wire import PlainError

C = Capability
EXTENDED = int(MariaDbCapability.EXTENDED_METADATA)
FRAMINGS = [
    0,
    int(C.DEPRECATE_EOF),
    int(C.SESSION_TRACK),
    int(C.DEPRECATE_EOF | C.SESSION_TRACK),
    int(C.OPTIONAL_RESULTSET_METADATA),
]


def exchanges_of(script: Script) -> list[Exchange]:
    client, server = script.wire()
    whole = run([client], [server], [False, True])
    tracker = Tracker()
    found: list[Exchange] = []
    logged_in = False
    for event in _by_command(whole):
        if not logged_in:
            logged_in = isinstance(event, EndOfResponse)
            continue
        if isinstance(event, Packet) and isinstance(event.message, ClientMessage):
            tracker.client(event, 0.0)
        else:
            found += tracker.server(event, 0.0)
    return found


def general(data: Any, seq: int, caps: int, maria: int) -> bytes | None:
    """What the replay server writes without the fast path (None: it refuses the data)."""
    try:
        messages = decode_messages(data)
    except PlainError:
        return None
    if any(isinstance(m, LocalInfileRequest) for m in messages):
        return None
    try:
        return encode_reply(messages, seq=seq, capabilities=caps, mariadb_capabilities=maria)
    except ProtocolError:
        return None


def last_status(data: Any) -> int:
    status = -1
    for m in decode_messages(data):
        if isinstance(m, OkPacket | EofPacket):
            status = m.status
    return status


def check_reply(data: Any, seq: int, caps: int, maria: int) -> bool:
    """The fast path agrees with the general one; True when it took the reply."""
    fast = reply_bytes(data, seq=seq, capabilities=caps, mariadb_capabilities=maria)
    if fast is None:
        return False
    assert fast[0] == general(data, seq, caps, maria)
    assert fast[1] == last_status(data)
    return True


@FAST
@given(session(), st.integers(0, 255), st.booleans())
def test_stored_replies_encode_as_the_general_path_does(
    script: Script, seq: int, extended: bool
) -> None:
    maria = EXTENDED if extended else 0
    for exchange in exchanges_of(script):
        data = json.loads(json.dumps(exchange.response_data()))
        for framing in FRAMINGS:
            caps = script.caps & ~(C.DEPRECATE_EOF | C.SESSION_TRACK) | framing
            check_reply(data, seq, caps, maria)


@FAST
@given(session())
def test_recorded_framing_takes_the_fast_path(script: Script) -> None:
    """Replayed to a connection like the recorded one, a result set or OK needs no adapting."""
    caps = script.caps
    for exchange in exchanges_of(script):
        data = json.loads(json.dumps(exchange.response_data()))
        kinds = {next(iter(node)) for node in data["messages"]}
        plain = kinds <= {"OK", "ERR", "EOF", "Columns", "Column", "Row", "BinaryRow"}
        taken = check_reply(data, exchange.packets[0].seq, caps, 0)
        assert taken or not plain


def damaged(data: Any, draw: st.DrawFn) -> Any:
    """``data`` with one value somewhere replaced by something else plain."""
    data = copy.deepcopy(data)
    nodes: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                nodes.append((node, key))
                walk(value)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                nodes.append((node, i))
                walk(value)

    walk(data)
    if not nodes:
        return data
    parent, key = draw(st.sampled_from(nodes))
    replacement = draw(
        st.none() | st.booleans() | st.integers(-2, 70000) | st.floats(allow_nan=False)
        | st.sampled_from(["", "#", "x" * 300, "LONG", "AUTOCOMMIT", "\udcff", "\ud800", "def"])
        | st.just({"base64": "AAE="}) | st.just({"base64": "!"}) | st.just([]) | st.just({})
    )  # fmt: skip
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = replacement
    return data


@FAST
@given(st.data(), session())
def test_damaged_stored_replies_fall_back_or_agree(data: st.DataObject, script: Script) -> None:
    for exchange in exchanges_of(script)[:3]:
        stored = json.loads(json.dumps(exchange.response_data()))
        broken = damaged(stored, data.draw)
        for caps in (script.caps, script.caps ^ C.DEPRECATE_EOF):
            check_reply(broken, 1, caps, data.draw(st.sampled_from([0, EXTENDED])))


@FAST
@given(plain_data, st.sampled_from(FRAMINGS))
def test_arbitrary_stored_data_falls_back_or_agrees(data: object, caps: int) -> None:
    check_reply(data, 0, caps, 0)
    check_reply({"messages": [data]}, 0, caps, 0)


def test_equal_values_of_other_types_are_not_the_stored_form() -> None:
    column = {
        "name": "id", "type": "LONG", "table": "t", "schema": "app", "charset": 63,
        "length": 11, "flags": 1, "decimals": 0,
    }  # fmt: skip
    reply = {"messages": [{"Columns": 1}, {"Column": column}, {"EOF": {"status": [2]}}]}
    assert check_reply(reply, 1, 0, 0)
    for key, value in (("flags", True), ("length", 11.0), ("decimals", False)):
        odd = copy.deepcopy(reply)
        odd["messages"][1]["Column"][key] = value
        assert reply_bytes(odd, seq=1, capabilities=0) is None
        assert general(odd, 1, 0, 0) is None


def test_status_left_by_a_reply() -> None:
    more = int(ServerStatus.MORE_RESULTS_EXISTS | ServerStatus.AUTOCOMMIT)
    reply = {
        "messages": [
            {"OK": {"affected_rows": 0, "insert_id": 0, "status": more}},
            {"OK": {"affected_rows": 1, "insert_id": 0, "status": ["IN_TRANS", 0x8000]}},
        ]
    }
    found = reply_bytes(reply, seq=1, capabilities=0)
    assert found is not None and found[1] == 0x8001
    assert reply_bytes({"messages": [{"ERR": {"code": 1, "message": "x"}}]}, seq=1, capabilities=0)
    assert reply_bytes({"messages": []}, seq=1, capabilities=0) == (b"", -1, True)


# -- take_query ----------------------------------------------------------------------------------


def command_parser(caps: int) -> ClientParser:
    return ClientParser(Conversation(phase=Phase.COMMAND, capabilities=caps))


def state(parser: ClientParser) -> tuple[Any, ...]:
    conv = parser.conversation
    return (parser.consumed, conv.pending, parser.take_raw() == b"", conv.phase)


@FAST
@given(
    st.binary(max_size=40)
    | st.text(max_size=30).map(lambda t: encode_frames(0, b"\x03" + t.encode())),
    st.booleans(),
    st.binary(max_size=12),
)
def test_take_query_is_feed_and_next_event(data: bytes, attributes: bool, before: bytes) -> None:
    caps = int(C.QUERY_ATTRIBUTES) if attributes else 0
    fast, slow = command_parser(caps), command_parser(caps)
    for parser in (fast, slow):
        with contextlib.suppress(ProtocolError):
            parser.feed(before)
            while parser.next_event() is not NEED_DATA:
                parser.discard_raw()
        parser.discard_raw()
    if fast.conversation.pending != slow.conversation.pending:
        return
    try:
        taken = fast.take_query(data)
    except ProtocolError:  # pragma: no cover - it raises nothing
        raise AssertionError("take_query raised") from None
    if taken is None:
        assert fast.consumed == slow.consumed
        return
    assert isinstance(taken, Query)
    slow.feed(data)
    event = slow.next_event()
    assert event == Packet(0, taken)
    assert slow.next_event() is NEED_DATA
    slow.discard_raw()
    assert state(fast) == state(slow)
    # Both go on the same way.
    for parser in (fast, slow):
        parser.conversation.reply_sent()
        parser.feed(encode_frames(0, b"\x0e"))
    assert fast.next_event() == slow.next_event()


def test_take_query_leaves_what_it_does_not_own() -> None:
    query = encode_frames(0, b"\x03SELECT 1")
    parser = command_parser(0)
    assert parser.take_query(query + query) is None  # two packets: fed as usual
    assert parser.take_query(query[:-1]) is None
    assert parser.take_query(encode_frames(1, b"\x03SELECT 1")) is None
    assert parser.take_query(encode_frames(0, b"\x16SELECT 1")) is None
    parser.feed(query[:3])
    assert parser.take_query(query) is None  # bytes are buffered
    login = ClientParser(Conversation(phase=Phase.LOGIN))
    assert login.take_query(query) is None
    taken = command_parser(0).take_query(query)
    assert taken == Query("SELECT 1")


# -- caches --------------------------------------------------------------------------------------


def clear_caches() -> None:
    for cache in (
        codec._columns, codec._eofs, exchange_module._column_docs,
        exchange_module._query_requests,
    ):  # fmt: skip
        cache.clear()


@FAST
@given(session(), cut_lists, orders)
def test_decode_caches_change_no_event(script: Script, cuts: list[int], order: list[bool]) -> None:
    client, server = script.wire()
    clear_caches()
    cold = check_consistent(client, server, cuts, order)
    warm = run([client], [server], [False, True])
    assert warm == cold
    clear_caches()


@FAST
@given(st.data(), session(), cut_lists, orders)
def test_decode_caches_with_damaged_sessions(
    data: st.DataObject, script: Script, cuts: list[int], order: list[bool]
) -> None:
    client, server = script.wire()
    server = data.draw(mutated(server))
    clear_caches()
    cold: Outcome = check_consistent(client, server, cuts, order)
    assert run([client], [server], [False, True]) == cold


@FAST
@given(session())
def test_stored_form_is_the_same_with_warm_caches(script: Script) -> None:
    clear_caches()
    cold = [(e.request.data, repr(e.request), e.response_data()) for e in exchanges_of(script)]
    warm = [(e.request.data, repr(e.request), e.response_data()) for e in exchanges_of(script)]
    assert json.dumps(cold) == json.dumps(warm)
    for e in exchanges_of(script):
        fresh = exchange_module._request_for(e.request.data, exact_only=False)
        assert repr(request_for(e.request.data)) == repr(fresh)


def test_column_documents_are_copies() -> None:
    column = ColumnDefinition(
        "app", "t", "t", "id", "id", 63, 11, FieldType.LONG, 0, 0, "def", None
    )
    first = messages_doc([column])
    first[0]["Column"]["name"] = "changed"
    assert messages_doc([column])[0]["Column"]["name"] == "id"
    odd = ColumnDefinition("app", "t", "t", "\udcff", "id", 63, 11, 3, 0, 0, "def", b"\xff")
    doc = messages_doc([odd])
    doc[0]["Column"]["name"]["base64"] = "changed"
    assert messages_doc([odd]) == messages_doc([copy.copy(odd)]) != doc


rows = st.lists(st.none() | st.binary(max_size=260), max_size=6)


@FAST
@given(rows, st.integers(0, 7), st.binary(max_size=3), st.booleans())
def test_text_rows_split_as_the_reader_does(
    values: list[bytes | None], columns: int, extra: bytes, cut: bool
) -> None:
    payload = b"".join(
        b"\xfb" if v is None else (b"\xfc" + len(v).to_bytes(2, "little") if len(v) > 250
                                   else bytes((len(v),))) + v
        for v in values
    )  # fmt: skip
    payload = payload[:-1] if cut and payload else payload + extra
    fast = codec._text_values(payload, columns)
    try:
        slow = decode_text_row(Reader(payload, 0, "text row"), columns).values
    except ProtocolError:
        assert fast is None
        return
    assert fast is None or fast == slow
    if all(v is None or len(v) < 251 for v in values) and columns == len(values) and not cut:
        assert (fast is None) == bool(extra)
