"""MySQL exchanges: pairing commands with replies, the stored plain form, match keys, and
re-encoding recorded replies for the live connection."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.protocols.mysql import (
    NEED_DATA,
    BinaryRow,
    Capability,
    ClientParser,
    ColumnCount,
    ColumnDefinition,
    Command,
    CommandCode,
    Conversation,
    EndOfResponse,
    EofPacket,
    ErrPacket,
    FieldType,
    OkPacket,
    Packet,
    Param,
    Phase,
    Ping,
    PrepareOk,
    Query,
    ServerParser,
    ServerStatus,
    StmtClose,
    StmtExecute,
    StmtPrepare,
    StmtReset,
    StmtSendLongData,
    TextRow,
    encode_packet,
)
from wiretape.protocols.mysql.exchange import (
    CODEC,
    LAST_PREPARED,
    Statements,
    Tracker,
    adapt_reply,
    connect_request,
    decode_messages,
    encode_reply,
    is_reusable_sql,
    messages_doc,
    request_for,
    step_for,
    value_bytes,
    value_doc,
    with_request_noise,
)
from wiretape.protocols.mysql.messages import AuthSwitchRequest, AuthSwitchResponse
from wiretape.protocols.wire import PlainError, codec_for

C = Capability
CAPS = C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.TRANSACTIONS | C.MULTI_RESULTS
AUTOCOMMIT = int(ServerStatus.AUTOCOMMIT)


def col(name: str, ftype: int, flags: int = 0, charset: int = 45) -> ColumnDefinition:
    return ColumnDefinition("app", "users", "users", name, name, charset, 80, ftype, flags)


def plain(data: Any) -> Any:
    """``data`` as the store gives it back (JSON round trip: the journal's form)."""
    return json.loads(json.dumps(data))


def result_set(*, deprecate: bool) -> list[Any]:
    """A text result set (two columns, two rows), framed with or without DEPRECATE_EOF."""
    out: list[Any] = [ColumnCount(2), col("id", FieldType.LONG), col("name", FieldType.VAR_STRING)]
    if not deprecate:
        out.append(EofPacket(0, AUTOCOMMIT))
    out += [TextRow((b"1", b"alice")), TextRow((b"2", None))]
    if deprecate:
        out.append(OkPacket(0, 0, AUTOCOMMIT, 0, "", None, 0xFE))
    else:
        out.append(EofPacket(0, AUTOCOMMIT))
    return out


def parse_reply(data: bytes, caps: int, request: Any) -> list[Any]:
    """What a real client parser reads from ``data`` after sending ``request``."""
    conv = Conversation(phase=Phase.COMMAND, capabilities=caps)
    client, server = ClientParser(conv), ServerParser(conv)
    client.feed(encode_packet(Packet(0, request), caps))
    assert isinstance(client.next_event(), Packet)
    server.feed(data)
    out = []
    while (event := server.next_event()) is not NEED_DATA:
        out.append(event)
    assert isinstance(out[-1], EndOfResponse), out
    return [e.message for e in out if isinstance(e, Packet)]


# -- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ftype", "raw", "unsigned", "doc"),
    [
        (FieldType.TINY, b"\xff", False, -1),
        (FieldType.TINY, b"\xff", True, 255),
        (FieldType.LONGLONG, struct.pack("<q", -(2**40)), False, -(2**40)),
        (FieldType.YEAR, struct.pack("<H", 2024), True, 2024),
        (FieldType.DOUBLE, struct.pack("<d", 3.25), False, 3.25),
        (FieldType.FLOAT, struct.pack("<f", 0.5), False, 0.5),
        (FieldType.DATE, struct.pack("<HBB", 2024, 2, 29), False, "2024-02-29"),
        (FieldType.DATETIME, struct.pack("<HBBBBB", 2024, 2, 29, 12, 3, 4), False,
         "2024-02-29 12:03:04"),
        (FieldType.TIMESTAMP, struct.pack("<HBBBBBI", 2024, 2, 29, 1, 2, 3, 789), False,
         "2024-02-29 01:02:03.000789"),
        (FieldType.DATETIME, b"", False, ""),
        (FieldType.TIME, struct.pack("<BIBBB", 1, 1, 2, 3, 4), False, "-26:03:04"),
        (FieldType.TIME, struct.pack("<BIBBBI", 0, 0, 0, 0, 1, 5), False, "00:00:01.000005"),
        (FieldType.NEWDECIMAL, b"-1.25", False, "-1.25"),
        (FieldType.VAR_STRING, "ünïcode ✓".encode(), False, "ünïcode ✓"),
        (FieldType.BLOB, b"\x00\xff", False, {"base64": "AP8="}),
        # Forms that would not come back as the same bytes stay raw.
        (FieldType.LONG, b"\x01\x02", False, {"base64": "AQI="}),
        (FieldType.DOUBLE, struct.pack("<d", math.nan), False, {"base64": "AAAAAAAA+H8="}),
        (FieldType.TIME, struct.pack("<BIBBB", 0, 0, 25, 0, 0), False, {"base64": "AAAAAAAZAAA="}),
        (FieldType.DATE, bytes(5), False, {"base64": "AAAAAAA="}),
    ],
)  # fmt: skip
def test_binary_values_are_readable_and_exact(
    ftype: int, raw: bytes, unsigned: bool, doc: Any
) -> None:
    assert value_doc(ftype, raw, unsigned) == doc
    assert value_bytes(ftype, plain(doc), unsigned) == raw


TYPES = [t for t in FieldType if t not in (FieldType.TYPED_ARRAY, FieldType.INVALID)]


@given(st.sampled_from(TYPES), st.binary(max_size=16), st.booleans())
def test_any_value_bytes_survive_the_stored_form(ftype: int, raw: bytes, unsigned: bool) -> None:
    assert value_bytes(ftype, plain(value_doc(ftype, raw, unsigned)), unsigned) == raw


def test_values_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(PlainError, match="an integer for field type VAR_STRING"):
        value_bytes(FieldType.VAR_STRING, 7)
    with pytest.raises(PlainError, match="does not fit a TINY"):
        value_bytes(FieldType.TINY, 300)
    with pytest.raises(PlainError, match="is not a DATE value"):
        value_bytes(FieldType.DATE, "29 Feb 2024")
    with pytest.raises(PlainError, match="text for field type LONG"):
        value_bytes(FieldType.LONG, "7")


# -- server packets <-> plain data ----------------------------------------------------------------


def test_a_reply_is_stored_readably_and_decodes_to_the_same_packets() -> None:
    binary = [
        ColumnCount(3),
        col("id", FieldType.LONGLONG, flags=0x20),
        col("at", FieldType.DATETIME),
        col("blob", FieldType.BLOB, charset=63),
        EofPacket(0, AUTOCOMMIT),
        BinaryRow(b"\x00\x10" + struct.pack("<Q", 2**63) + b"\x04\xe8\x07\x02\x1d"),
        BinaryRow(b"\x00\x00" + struct.pack("<Q", 1) + b"\x00" + b"\x02\x00\xff"),
        EofPacket(1, AUTOCOMMIT | ServerStatus.IN_TRANS),
    ]
    docs = messages_doc(binary)
    assert docs[0] == {"Columns": 3}
    assert docs[1]["Column"]["type"] == "LONGLONG"
    assert docs[5] == {"BinaryRow": [2**63, "2024-02-29", None]}
    assert docs[6] == {"BinaryRow": [1, "", {"base64": "AP8="}]}
    assert docs[7] == {"EOF": {"status": ["IN_TRANS", "AUTOCOMMIT"], "warnings": 1}}
    assert decode_messages(plain({"messages": docs})) == binary
    others = [
        OkPacket(1, 42, AUTOCOMMIT | ServerStatus.IN_TRANS, 2, "Rows matched: 1"),
        OkPacket(0, 0, 0x4002, 0, None, b"\x01\x04\x03app"),
        ErrPacket(1062, "Duplicate entry '\udcff' for key 'PRIMARY'", "23000"),
        ErrPacket(1040, "Too many connections", None),
        PrepareOk(7, 2, 1, 0),
        OkPacket(0, 0, 0x0004 | AUTOCOMMIT, 0, ""),  # a status bit without a name
    ]
    docs = messages_doc(others)
    assert docs[0] == {
        "OK": {
            "affected_rows": 1, "insert_id": 42, "status": ["IN_TRANS", "AUTOCOMMIT"],
            "warnings": 2, "info": "Rows matched: 1",
        }
    }  # fmt: skip
    assert docs[2]["ERR"]["message"] == {
        "base64": "RHVwbGljYXRlIGVudHJ5ICf/JyBmb3Iga2V5ICdQUklNQVJZJw=="
    }
    assert docs[5]["OK"]["status"] == ["AUTOCOMMIT", 4]
    assert decode_messages(plain({"messages": docs})) == others


def test_a_binary_row_without_its_column_types_is_kept_raw() -> None:
    docs = messages_doc([BinaryRow(b"\x00\x00\x01")])
    assert docs == [{"BinaryRow": {"base64": "AAAB"}}]
    assert decode_messages({"messages": docs}) == [BinaryRow(b"\x00\x00\x01")]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"messages": [{"Nope": 1}]}, "unknown message 'Nope'"),
        ({"messages": [{"OK": {"affected_rows": 0}}]}, "expected a mapping with"),
        ({"messages": [{"EOF": {"status": ["NOT_A_FLAG"]}}]}, "unknown flag 'NOT_A_FLAG'"),
        ({"messages": [{"BinaryRow": [1]}]}, "do not describe this row"),
        ({"messages": [{"Columns": 1}, {"Column": {"name": "x"}}]}, "expected a mapping"),
        ({"messages": [{"Row": {"base64": "!"}}]}, "expected a list"),
        ([], "expected a mapping with a messages list"),
    ],
)
def test_malformed_stored_replies_are_refused_with_where(data: Any, words: str) -> None:
    with pytest.raises(PlainError, match=words):
        CODEC.check_response(data)


# -- re-encoding for the live connection --------------------------------------------------------


@pytest.mark.parametrize("recorded", [False, True])
@pytest.mark.parametrize("live", [False, True])
def test_a_result_set_is_reframed_for_the_live_capabilities(recorded: bool, live: bool) -> None:
    messages = result_set(deprecate=recorded)
    caps = CAPS | (C.DEPRECATE_EOF if live else 0)
    data = encode_reply(messages, seq=1, capabilities=caps)
    got = parse_reply(data, caps, Query("SELECT id, name FROM users"))
    assert got == [
        m if not isinstance(m, OkPacket) else OkPacket(0, 0, AUTOCOMMIT, 0, "", None, 0xFE)
        for m in result_set(deprecate=live)
    ]
    if recorded == live:  # the same capabilities: the recorded bytes exactly
        assert data == b"".join(
            encode_packet(Packet(i + 1, m), caps) for i, m in enumerate(messages)
        )


def test_a_prepare_reply_gets_the_live_statement_id_and_framing() -> None:
    recorded = [
        PrepareOk(41, 1, 1),
        col("?", FieldType.LONGLONG),
        EofPacket(0, AUTOCOMMIT),
        col("name", FieldType.VAR_STRING),
        EofPacket(0, AUTOCOMMIT),
    ]
    data = encode_reply(recorded, seq=1, capabilities=CAPS, statement_id=3)
    assert parse_reply(data, CAPS, StmtPrepare("SELECT name FROM t WHERE id = ?")) == [
        PrepareOk(3, 1, 1),
        *recorded[1:],
    ]
    caps = CAPS | C.DEPRECATE_EOF
    data = encode_reply(recorded, seq=1, capabilities=caps, statement_id=3)
    got = parse_reply(data, caps, StmtPrepare("SELECT name FROM t WHERE id = ?"))
    assert got == [PrepareOk(3, 1, 1), recorded[1], recorded[3]]


def test_ok_packets_follow_session_tracking() -> None:
    tracked = OkPacket(0, 0, AUTOCOMMIT | ServerStatus.SESSION_STATE_CHANGED, 0, None, b"\x00")
    assert list(adapt_reply([tracked], CAPS)) == [OkPacket(0, 0, AUTOCOMMIT, 0, "")]
    assert list(adapt_reply([tracked], CAPS | C.SESSION_TRACK)) == [tracked]
    plain_ok = OkPacket(1, 2, AUTOCOMMIT, 0, "")
    data = encode_reply([plain_ok], seq=1, capabilities=CAPS | C.SESSION_TRACK)
    assert parse_reply(data, CAPS | C.SESSION_TRACK, Query("DELETE FROM t")) == [plain_ok]


def test_sequence_ids_continue_over_a_multi_frame_packet() -> None:
    big = TextRow((b"x" * 0x1000000,))
    data = encode_reply([ColumnCount(1), col("x", FieldType.BLOB), EofPacket(), big, EofPacket()],
                        seq=1, capabilities=CAPS)  # fmt: skip
    # The row takes two frames (sequence ids 4 and 5), so the final EOF has sequence id 6.
    assert data[-9:-5] == b"\x05\x00\x00\x06"


# -- requests and keys --------------------------------------------------------------------------


def test_steps_resolve_statement_ids_to_their_sql() -> None:
    statements = Statements()
    statements.prepared(5, "SELECT ?")
    param = Param(FieldType.TINY, b"\x07", 0x80)
    assert step_for(StmtExecute(5, 0, 1, (param,)), statements) == {
        "execute": "SELECT ?", "params": [7], "types": ["TINY UNSIGNED"],
    }  # fmt: skip
    assert step_for(StmtExecute(LAST_PREPARED, 0, 1, ()), statements)["execute"] == "SELECT ?"
    assert step_for(StmtReset(6), statements) == {
        "reset_statement": "<statement 6 prepared before the recording>"
    }
    assert step_for(Ping(), statements) == "ping"
    assert step_for(StmtClose(5), statements) is None
    change = Command(CommandCode.CHANGE_USER, b"bob\x00\x14" + b"s" * 20 + b"db\x00")
    assert step_for(change, statements) == {"change_user": "bob"}  # never the auth data
    assert step_for(Command(CommandCode.RESET_CONNECTION, b""), statements) == {
        "command": "RESET_CONNECTION"
    }


def test_keys_normalize_sql_and_match_parameters_by_value() -> None:
    a = request_for({"query": "SELECT  id -- the id\nFROM t WHERE x = 'a  b'"})
    b = request_for({"query": "SELECT id FROM t WHERE x = 'a  b'"})
    c = request_for({"query": "SELECT id FROM t WHERE x = 'a b'"})
    assert a.key == b.key != c.key
    sql = "SELECT * FROM t WHERE id = ?"
    tiny = request_for({"execute": sql, "params": [7], "types": ["TINY UNSIGNED"]})
    longlong = request_for({"execute": sql, "params": [7], "types": ["LONGLONG"]})
    text = request_for({"execute": sql, "params": ["7"], "types": ["VAR_STRING"]})
    assert tiny.key == longlong.key != text.key
    assert tiny.summary == "SELECT * FROM t WHERE id = ? [7]"
    cursor = request_for({"execute": sql, "params": [7], "types": ["LONG"], "flags": 1})
    assert cursor.key != tiny.key


def test_generated_uuids_and_timestamps_match_loosely() -> None:
    live = request_for({"query": "INSERT INTO t VALUES ('6f1c0e0a-3b1e-4c5e-9a7e-1d2c3b4a5f60')"})
    rec = request_for({"query": "INSERT INTO t VALUES ('0b7e4f3c-1a2b-4c3d-8e9f-a0b1c2d3e4f5')"})
    assert live.key != rec.key and live.loose_key == rec.loose_key is not None
    sql = "INSERT INTO t (at) VALUES (?)"
    one = request_for({"execute": sql, "params": ["2024-02-29 12:00:00"], "types": ["VAR_STRING"]})
    two = request_for({"execute": sql, "params": ["2025-01-01 08:30:00"], "types": ["VAR_STRING"]})
    assert one.loose_key == two.loose_key is not None
    names = request_for({"query": "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_general_ci'"})
    assert names.loose_key is None  # only UUIDs, timestamps and JWTs are loosened


def test_request_noise_masks_parameters_and_values_in_the_text() -> None:
    rules = (("insert  INTO orders", (2,)),)  # normalized and in any case, as the statements

    def masked(step: dict[str, Any]) -> Any:
        return with_request_noise(request_for(step), rules)

    sql = "INSERT INTO orders (id, nonce, at) VALUES (?, ?, ?)"

    def execute(nonce: str, id: int = 1) -> dict[str, Any]:
        return {"execute": sql, "params": [id, nonce, "x"], "types": ["LONG", "VAR_STRING"] * 1
                + ["VAR_STRING"]}  # fmt: skip

    one, two = masked(execute("n-1")), masked(execute("n-2"))
    assert one.key == two.key != masked(execute("n-1", id=2)).key
    assert one.data == execute("n-1") and one.summary == request_for(execute("n-1")).summary
    # As PyMySQL sends it: the values written into the text. A digit inside a name, a quoted
    # name and a word are not values; NULL is one.
    text = "insert into orders (`c1`, nonce, t2) VALUES ({id}, '{nonce}', NULL) /* x */"
    one = masked({"query": text.format(id=1, nonce="it\\'s 1")})  # escaped as PyMySQL does
    two = masked({"query": text.format(id=1, nonce="n-2")})
    assert one.key == two.key and "<noise>" in one.key[1]
    assert one.key != masked({"query": text.format(id=3, nonce="n-1")}).key
    null_first = (("INSERT INTO orders", (3,)),)
    a = with_request_noise(
        request_for({"query": "INSERT INTO orders VALUES (1, 2.5e3, NULL)"}), null_first
    )
    assert a.key[1] == "INSERT INTO orders VALUES (1, 2.5e3, <noise>)"
    # Other statements, and rules naming no value, leave the request as it was.
    other = request_for({"query": "INSERT INTO items VALUES (1, 'n-1')"})
    assert with_request_noise(other, rules) is other
    short = request_for({"query": "INSERT INTO orders VALUES (1)"})
    assert with_request_noise(short, rules) is short
    assert with_request_noise(other, ()) is other


def test_request_noise_masks_the_loose_key_too() -> None:
    rules = (("INSERT INTO t", (1,)),)
    uuid = "6f1c0e0a-3b1e-4c5e-9a7e-1d2c3b4a5f60"
    one = with_request_noise(
        request_for({"query": f"INSERT INTO t VALUES ('n-1', '{uuid}')"}), rules
    )
    other_uuid = "0b7e4f3c-1a2b-4c3d-8e9f-a0b1c2d3e4f5"
    two = with_request_noise(
        request_for({"query": f"INSERT INTO t VALUES ('n-2', '{other_uuid}')"}), rules
    )
    assert one.key != two.key and one.loose_key == two.loose_key is not None
    assert codec_for("mysql").with_noise is with_request_noise


@pytest.mark.parametrize(
    ("sql", "reusable"),
    [
        ("SET NAMES utf8mb4", True),
        ("SET autocommit=0", True),
        ("SET TRANSACTION ISOLATION LEVEL READ COMMITTED", False),
        ("SHOW VARIABLES LIKE 'sql_mode'", True),
        ("SELECT @@version, DATABASE()", True),
        ("select 1; select 2", True),
        (";", True),
        ("", True),
        ("SELECT * FROM information_schema.tables", True),
        ("SELECT LAST_INSERT_ID()", False),
        ("SELECT @counter", False),
        ("SELECT 1; DELETE FROM t", False),
        ("SELECT * FROM items", False),
        ("INSERT INTO t VALUES (1)", False),
        ("START TRANSACTION", False),
    ],
)
def test_reusable_statements(sql: str, reusable: bool) -> None:
    assert is_reusable_sql(sql) is reusable
    assert request_for({"query": sql}).reusable is reusable


def test_prepares_pings_and_start_ups_are_reusable() -> None:
    assert request_for({"prepare": "SELECT * FROM items WHERE id = ?"}).reusable
    assert request_for("ping").reusable
    start = connect_request("app", "shop")
    assert start.data == {"connect": {"user": "app", "database": "shop"}}
    assert start.key == connect_request("other", None).key and start.reusable


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("pong", "unknown step 'pong'"),
        ({"query": "x", "prepare": "y"}, "exactly one of"),
        ({"execute": "SELECT ?", "params": [1]}, "same length"),
        ({"execute": "SELECT ?", "params": [1], "types": ["NOPE"]}, "field type name"),
        ({"command": "NOPE"}, "command name or code"),
        ({"query": {"base64": "%%"}}, "not valid base64"),
        (7, "expected a step name or a mapping"),
    ],
)
def test_malformed_stored_requests_are_refused(data: Any, words: str) -> None:
    with pytest.raises(PlainError, match=words):
        codec_for("mysql").request(data)


def test_binary_sql_is_stored_as_base64_and_still_matches() -> None:
    sql = "SELECT _binary'\x00\udcff'"
    step = step_for(Query(sql), Statements())
    assert step == {"query": {"base64": "U0VMRUNUIF9iaW5hcnknAP8n"}}
    assert request_for(plain(step)).key == ("query", sql)


# -- tracking a connection ----------------------------------------------------------------------


def test_the_tracker_pairs_commands_with_replies() -> None:
    tags = iter(range(100))
    tracker = Tracker(new_tag=lambda: next(tags))
    events: list[tuple[bool, Any]] = [
        (True, Packet(0, StmtPrepare("SELECT name FROM t WHERE id = ?"))),
        (False, Packet(1, PrepareOk(9, 0, 1))),
        (False, Packet(2, col("?", FieldType.LONGLONG))),
        (False, Packet(3, EofPacket())),
        (True, Packet(0, StmtExecute(9, 0, 1, (Param(FieldType.LONGLONG, bytes(8)),)))),
        (True, Packet(0, StmtClose(9))),
        (True, Packet(0, Command(CommandCode.CHANGE_USER, b"bob\x00\x00"))),
        (False, Packet(1, ErrPacket(1146, "Table 'app.t' doesn't exist", "42S02"))),
        (False, Packet(1, AuthSwitchRequest("mysql_native_password", b"n" * 20))),
        (True, Packet(2, AuthSwitchResponse(b"secret proof"))),
        (False, Packet(3, OkPacket(0, 0, AUTOCOMMIT, 0, ""))),
    ]
    out = []
    requests = [e.message for side, e in events if side]
    ends = {3: requests[0], 7: requests[1], 10: requests[3]}
    for i, (client, event) in enumerate(events):
        if client:
            tracker.client(event, float(i))
        else:
            out += tracker.server(event, float(i))
        if i in ends:
            out += tracker.server(EndOfResponse(ends[i]), float(i))
    assert [e.request.data for e in out] == [
        {"prepare": "SELECT name FROM t WHERE id = ?"},
        {"execute": "SELECT name FROM t WHERE id = ?", "params": [0], "types": ["LONGLONG"]},
        {"change_user": "bob"},
    ]
    assert [e.tag for e in out] == [0, 1, 2]
    assert [type(m).__name__ for m in out[2].messages] == ["OkPacket"]  # no auth rounds
    assert out[1].messages == [ErrPacket(1146, "Table 'app.t' doesn't exist", "42S02")]
    assert b"secret proof" not in json.dumps([e.response_data() for e in out]).encode()


def test_long_data_takes_the_place_of_its_parameter() -> None:
    tracker = Tracker()
    prepare = StmtPrepare("INSERT INTO t VALUES (?, ?)")
    tracker.client(Packet(0, prepare), 0.0)
    tracker.server(Packet(1, PrepareOk(4, 0, 2)), 0.0)
    assert tracker.server(EndOfResponse(prepare), 0.0)
    for chunk in (b"\x00\x01", b"\x02"):
        tracker.client(Packet(0, StmtSendLongData(4, 1, chunk)), 0.0)
    params = (
        Param(FieldType.LONG, b"\x07\x00\x00\x00"),
        Param(FieldType.BLOB, None, 0, None, True),
    )
    execute = StmtExecute(4, 0, 1, params)
    tracker.client(Packet(0, execute), 0.0)
    tracker.server(Packet(1, OkPacket(1, 0, AUTOCOMMIT, 0, "")), 0.0)
    (done,) = tracker.server(EndOfResponse(execute), 0.0)
    assert done.request.data == {
        "execute": "INSERT INTO t VALUES (?, ?)",
        "params": [7, {"base64": "AAEC"}],
        "types": ["LONG", "BLOB"],
        "long_data": [1],
    }
    inline = request_for(
        {"execute": prepare.sql, "params": [7, {"base64": "AAEC"}], "types": ["LONG", "BLOB"]}
    )
    assert inline.key == done.request.key  # the same values, however they were sent
    # A reset drops long data sent before it.
    statements = Statements()
    statements.sent(StmtSendLongData(4, 0, b"x"))
    statements.sent(StmtReset(4))
    assert statements.take_long_data(4) == {}
