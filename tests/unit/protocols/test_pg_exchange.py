"""PostgreSQL exchanges: pairing client batches with server answers, and the stored plain form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.protocols.postgres.codec import encode
from wiretape.protocols.postgres.exchange import (
    Tracker,
    decode_after,
    decode_messages,
    is_reusable_sql,
    message_doc,
    request_for,
    with_request_noise,
)
from wiretape.protocols.postgres.messages import (
    BackendKeyData,
    BackendMessage,
    Bind,
    BindComplete,
    CommandComplete,
    CopyData,
    CopyDone,
    CopyInResponse,
    CopyOutResponse,
    DataRow,
    Describe,
    ErrorResponse,
    Execute,
    FieldDescription,
    Flush,
    NoData,
    NoticeResponse,
    NotificationResponse,
    ObjectKind,
    ParameterDescription,
    ParameterStatus,
    Parse,
    ParseComplete,
    PortalSuspended,
    Query,
    ReadyForQuery,
    RowDescription,
    Sync,
    TransactionStatus,
)
from wiretape.protocols.wire import PlainError

IDLE = ReadyForQuery(TransactionStatus.IDLE)
ERROR = ErrorResponse((("S", "ERROR"), ("C", "22012"), ("M", "division by zero")))
ROWS = RowDescription((FieldDescription("x", 0, 0, 23, 4, -1, 0),))


def names(messages: list[BackendMessage]) -> list[str]:
    return [type(m).__name__ for m in messages]


def extended(sql: str, params: tuple[bytes | None, ...], name: str = "") -> list[Any]:
    return [
        Parse(name, sql, ()),
        Bind("", name, (), params, ()),
        Describe(ObjectKind.PORTAL, ""),
        Execute("", 0),
        Sync(),
    ]


def answer(*rows: bytes) -> list[BackendMessage]:
    return [
        ParseComplete(),
        BindComplete(),
        ROWS,
        *[DataRow((r,)) for r in rows],
        CommandComplete(f"SELECT {len(rows)}"),
        IDLE,
    ]


def test_a_simple_query_is_one_exchange_up_to_ready_for_query() -> None:
    t = Tracker()
    assert t.client(Query("SELECT 1; SELECT 2"), 1.0) == []
    out = []
    for m in [ROWS, DataRow((b"1",)), CommandComplete("SELECT 1"), ROWS, DataRow((b"2",))]:
        out += t.server(m, 1.1)
    assert out == []
    out += t.server(CommandComplete("SELECT 1"), 1.2)
    out += t.server(IDLE, 1.3)
    assert len(out) == 1
    assert out[0].request.data == [{"query": "SELECT 1; SELECT 2"}]
    assert names(out[0].messages)[-1] == "ReadyForQuery"
    assert (out[0].started, out[0].ended) == (1.0, 1.3)


def test_pipelined_batches_are_answered_in_order() -> None:
    t = Tracker()
    for m in extended("SELECT $1", (b"1",)) + extended("SELECT $1", (b"2",)):
        assert t.client(m, 1.0) == []
    out = []
    for m in answer(b"1") + answer(b"2"):
        out += t.server(m, 2.0)
    assert [e.request.data[1]["params"] for e in out] == [["1"], ["2"]]
    assert [e.messages[3] for e in out] == [DataRow((b"1",)), DataRow((b"2",))]


def test_an_error_skips_the_rest_of_the_batch_up_to_sync() -> None:
    t = Tracker()
    for m in extended("SELECT 1/0", ()):
        t.client(m, 1.0)
    out = t.server(ParseComplete(), 1.1) + t.server(BindComplete(), 1.1)
    out += t.server(ERROR, 1.2)
    assert out == []
    out += t.server(ReadyForQuery(TransactionStatus.FAILED), 1.3)
    assert len(out) == 1
    assert names(out[0].messages) == [
        "ParseComplete",
        "BindComplete",
        "ErrorResponse",
        "ReadyForQuery",
    ]


def test_after_an_error_in_a_flush_batch_messages_until_sync_are_unanswered() -> None:
    t = Tracker()
    out = []
    for m in [Parse("", "SELECT x", ()), Bind("", "", (), (), ()), Execute("", 0), Flush()]:
        out += t.client(m, 1.0)
    out += t.server(ERROR, 1.1)  # the Parse failed: Bind and Execute are skipped
    assert len(out) == 1 and names(out[0].messages) == ["ErrorResponse"]
    # Messages sent before the Sync get no answer; the Sync gets ReadyForQuery.
    for m in [Bind("", "", (), (), ()), Execute("", 0), Sync()]:
        out += t.client(m, 2.0)
    out += t.server(ReadyForQuery(TransactionStatus.IDLE), 2.1)
    assert len(out) == 2
    assert out[1].request.data[-1] == "sync"
    assert names(out[1].messages) == ["ReadyForQuery"]


def test_flush_answers_complete_without_sync() -> None:
    t = Tracker()
    for m in [Parse("s1", "SELECT $1", (23,)), Describe(ObjectKind.STATEMENT, "s1"), Flush()]:
        t.client(m, 1.0)
    out = t.server(ParseComplete(), 1.1) + t.server(ParameterDescription((23,)), 1.1)
    out += t.server(NoData(), 1.2)
    assert len(out) == 1
    assert out[0].request.data[1] == {"describe_statement": "SELECT $1"}


def test_portal_suspension_ends_an_execute() -> None:
    t = Tracker()
    for m in [Bind("", "", (), (), ()), Execute("", 1), Flush()]:
        t.client(m, 1.0)
    out = t.server(BindComplete(), 1.1) + t.server(DataRow((b"1",)), 1.1)
    out += t.server(PortalSuspended(), 1.2)
    assert len(out) == 1


def test_copy_in_splits_into_the_query_and_the_data() -> None:
    t = Tracker()
    t.client(Query("COPY t FROM STDIN"), 1.0)
    out = t.server(CopyInResponse(0, (0,)), 1.1)
    assert len(out) == 1 and names(out[0].messages) == ["CopyInResponse"]
    for m in [CopyData(b"a\n"), CopyData(b"b\n"), CopyDone()]:
        out += t.client(m, 1.2)
    out += t.server(CommandComplete("COPY 2"), 1.3) + t.server(IDLE, 1.3)
    assert len(out) == 2
    assert out[1].request.data == [{"copy_data": "a\n"}, {"copy_data": "b\n"}, "copy_done"]
    assert names(out[1].messages) == ["CommandComplete", "ReadyForQuery"]


def test_copy_out_stays_with_its_query() -> None:
    t = Tracker()
    t.client(Query("COPY t TO STDOUT"), 1.0)
    out: list[Any] = []
    for m in [CopyOutResponse(0, (0,)), CopyData(b"a\n"), CopyDone(), CommandComplete("COPY 1")]:
        out += t.server(m, 1.1)
    out += t.server(IDLE, 1.2)
    assert len(out) == 1 and len(out[0].messages) == 5


def test_notifications_on_a_listening_connection_follow_the_previous_exchange() -> None:
    t = Tracker()
    t.client(Query("LISTEN events"), 1.0)
    held = t.server(CommandComplete("LISTEN"), 1.1) + t.server(IDLE, 1.1)
    assert held == []  # held until the client speaks again
    note = NotificationResponse(42, "events", "hello")
    assert t.server(note, 1.6) == []
    out = t.client(Query("SELECT 1"), 2.0)
    assert len(out) == 1
    assert out[0].after == [(pytest.approx(0.5), note)]
    data = out[0].response_data()
    assert decode_after(data) == [(pytest.approx(0.5), note)]


def test_idle_messages_on_other_connections_lead_the_next_answer() -> None:
    t = Tracker()
    notice = NoticeResponse((("S", "NOTICE"), ("M", "hi")))
    assert t.server(notice, 0.5) == []
    t.client(Query("SELECT 1"), 1.0)
    out = t.server(IDLE, 1.1)
    assert out[0].messages == [notice, IDLE]


def test_statement_names_resolve_to_their_sql_and_generated_names_do_not_count() -> None:
    def run(name: str) -> Any:
        t = Tracker()
        for m in [Parse(name, "SELECT $1", ()), Sync()]:
            t.client(m, 1.0)
        t.server(ParseComplete(), 1.0)
        t.server(IDLE, 1.0)
        out = []
        for m in [Bind("", name, (), (b"5",), ()), Execute("", 0), Sync()]:
            out += t.client(m, 2.0)
        for m in [BindComplete(), CommandComplete("SELECT 1"), IDLE]:
            out += t.server(m, 2.1)
        return out[-1].request

    a, b = run("_pg3_0"), run("_pg3_17")
    assert a.data[0]["bind"] == "SELECT $1"
    assert a.key == b.key
    assert run("my_stmt").key != a.key  # a name the user chose is kept


def test_keys_ignore_whitespace_and_comments_but_not_parameters() -> None:
    one = request_for([{"query": "SELECT  *\nFROM t -- all\n WHERE id = 1"}])
    two = request_for([{"query": "SELECT * FROM t WHERE id = 1"}])
    three = request_for([{"query": "SELECT * FROM t WHERE id = 2"}])
    assert one.key == two.key != three.key
    p1 = request_for([{"bind": "SELECT $1", "params": ["1"]}, "sync"])
    p2 = request_for([{"bind": "SELECT $1", "params": ["2"]}, "sync"])
    p3 = request_for([{"bind": "SELECT $1", "params": [None]}, "sync"])
    assert len({p1.key, p2.key, p3.key}) == 3


@pytest.mark.parametrize(
    ("sql", "reusable"),
    [
        ("SELECT 1", True),
        ("select version()", True),
        ("SHOW server_version", True),
        ("SET search_path TO app", True),
        ("SELECT t.oid, t.typname FROM pg_catalog.pg_type t WHERE t.oid = $1", True),
        ("SELECT * FROM users", False),
        ("INSERT INTO log VALUES (1)", False),
        ("SELECT nextval('seq')", False),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", False),
        ("BEGIN", False),
    ],
)
def test_reusable_statements(sql: str, reusable: bool) -> None:
    assert is_reusable_sql(sql) is reusable


ALL_MESSAGES: list[BackendMessage] = [
    ParseComplete(),
    BindComplete(),
    NoData(),
    PortalSuspended(),
    CopyDone(),
    ROWS,
    DataRow((b"1", None, b"\x00\xff", "ü".encode())),
    CommandComplete("INSERT 0 1"),
    ReadyForQuery(TransactionStatus.IN_TRANSACTION),
    ERROR,
    NoticeResponse((("S", "WARNING"), ("M", "careful"))),
    ParameterStatus("TimeZone", "UTC"),
    ParameterDescription((23, 25)),
    BackendKeyData(1234, b"\x01\x02\x03\x04"),
    NotificationResponse(7, "ch", "payload"),
    CopyInResponse(0, (0, 0)),
    CopyOutResponse(1, (1,)),
    CopyData(b"\x00binary\n"),
]


def test_every_stored_message_re_encodes_to_the_same_bytes() -> None:
    data = {"messages": [message_doc(m) for m in ALL_MESSAGES]}
    back = decode_messages(data)
    assert [encode(m) for m in back] == [encode(m) for m in ALL_MESSAGES]


@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=8))
def test_data_rows_round_trip(values: list[bytes | None]) -> None:
    row = DataRow(tuple(values))
    assert decode_messages({"messages": [message_doc(row)]}) == [row]


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"messages": "x"},
        {"messages": [{"DataRow": "x"}]},
        {"messages": ["NoSuchMessage"]},
        {"messages": [{"ReadyForQuery": "Q"}]},
        {"messages": [{"DataRow": [{"base64": "!!"}]}]},
    ],
)
def test_broken_stored_responses_are_rejected(data: Any) -> None:
    with pytest.raises(PlainError):
        decode_messages(data)


@pytest.mark.parametrize("steps", [None, [], [{"query": 1}], ["jump"], [{"a": 1, "b": 2}]])
def test_broken_stored_requests_are_rejected(steps: Any) -> None:
    with pytest.raises(PlainError):
        request_for(steps)


def test_request_noise_masks_the_named_parameters_of_matching_statements() -> None:
    def bind(sql: str, *params: str) -> Any:
        return request_for([{"bind": sql, "params": list(params)}, "sync"])

    rules = (("INSERT INTO log", (2,)),)
    a = with_request_noise(bind("insert into log values ($1, $2)", "x", "r1"), rules)
    b = with_request_noise(bind("INSERT INTO log VALUES ($1, $2)", "x", "r2"), rules)
    c = with_request_noise(bind("INSERT INTO log VALUES ($1, $2)", "y", "r2"), rules)
    other = bind("SELECT $1, $2", "x", "r1")
    assert a.key == b.key != c.key
    assert with_request_noise(other, rules) is other
    assert a.data[0]["params"] == ["x", "r1"]  # the stored form keeps the value


CLIENT_POOL = [
    Query("SELECT 1"),
    Query("COPY t FROM STDIN"),
    Parse("", "SELECT $1", ()),
    Parse("_pg3_1", "SELECT 2", ()),
    Bind("", "", (), (b"1",), ()),
    Bind("", "_pg3_1", (), (), ()),
    Describe(ObjectKind.PORTAL, ""),
    Describe(ObjectKind.STATEMENT, "_pg3_1"),
    Execute("", 0),
    Execute("", 5),
    Sync(),
    Flush(),
    CopyData(b"x\n"),
    CopyDone(),
]
SERVER_POOL: list[BackendMessage] = [*ALL_MESSAGES, IDLE]


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(min_value=0, max_value=len(SERVER_POOL) - 1)),
        max_size=60,
    )
)
def test_any_interleaving_of_messages_is_tracked_without_errors(
    events: list[tuple[bool, int]],
) -> None:
    t = Tracker()
    out = []
    for i, (from_client, n) in enumerate(events):
        if from_client:
            out += t.client(CLIENT_POOL[n % len(CLIENT_POOL)], float(i))
        else:
            out += t.server(SERVER_POOL[n], float(i))
    out += t.close()
    for exchange in out:
        # Every exchange stores and loads back to the same request and response.
        again = request_for(exchange.request.data)
        assert again.key == exchange.request.key
        data = exchange.response_data()
        assert [encode(m) for m in decode_messages(data)] == [encode(m) for m in exchange.messages]
