from __future__ import annotations

import struct
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wiretape.errors import ProtocolError
from wiretape.protocols import postgres as pg
from wiretape.protocols.postgres import (
    BACKEND_TYPES,
    FRONTEND_TYPES,
    NEED_DATA,
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationOther,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    BackendMessage,
    BackendParser,
    Bind,
    BindComplete,
    CancelRequest,
    Close,
    CloseComplete,
    CommandComplete,
    CopyBothResponse,
    CopyData,
    CopyDone,
    CopyFail,
    CopyInResponse,
    CopyOutResponse,
    DataRow,
    Describe,
    EmptyQueryResponse,
    ErrorResponse,
    Execute,
    FieldDescription,
    Flush,
    FrontendMessage,
    FrontendParser,
    FunctionCall,
    FunctionCallResponse,
    GSSENCRequest,
    GSSResponse,
    Message,
    NegotiateProtocolVersion,
    NoData,
    NoticeResponse,
    NotificationResponse,
    ObjectKind,
    ParameterDescription,
    ParameterStatus,
    Parse,
    ParseComplete,
    PasswordMessage,
    PortalSuspended,
    Query,
    ReadyForQuery,
    RowDescription,
    SASLInitialResponse,
    SASLResponse,
    SSLAnswer,
    SSLRequest,
    StartupMessage,
    Sync,
    Terminate,
    TransactionStatus,
    encode,
    normalize_sql,
    statement_kind,
)

STARTUP = StartupMessage((("user", "app"),))


@typing.overload
def drain(parser: FrontendParser) -> list[FrontendMessage]: ...
@typing.overload
def drain(parser: BackendParser) -> list[BackendMessage]: ...
def drain(parser: FrontendParser | BackendParser) -> list[typing.Any]:
    events: list[Message] = []
    while (event := parser.next_event()) is not NEED_DATA:
        assert not isinstance(event, pg.NeedData)
        events.append(event)
    return events


def frontend(data: bytes, *, started: bool = True) -> list[FrontendMessage]:
    """Client messages in ``data``; ``started`` puts a StartupMessage first (and drops it)."""
    parser = FrontendParser()
    if started:
        parser.feed(encode(STARTUP))
        assert drain(parser) == [STARTUP]
    parser.feed(data)
    return drain(parser)


def backend(data: bytes) -> list[BackendMessage]:
    parser = BackendParser()
    parser.feed(data)
    return drain(parser)


def frontend_error(data: bytes, *, started: bool = True) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        frontend(data, started=started)
    return info.value


def backend_error(data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        backend(data)
    return info.value


STARTUP_LEN = len(encode(STARTUP))


# -- strategies, one per message type (the fuzz tests build streams from them) -------------------

# Text as decoded from the wire: any characters but NUL and surrogates, or arbitrary bytes that are
# not UTF-8 (decoded with surrogateescape).
texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"), max_size=20),
    st.binary(max_size=12).map(lambda b: b.replace(b"\0", b"").decode("utf-8", "surrogateescape")),
)
names = texts.filter(bool)
blobs = st.binary(max_size=40)
nullable = st.one_of(st.none(), blobs)
i16 = st.integers(-(2**15), 2**15 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)
formats = st.lists(st.sampled_from([0, 1]), max_size=5).map(tuple)
keys = st.binary(min_size=4, max_size=256)
kinds = st.sampled_from(ObjectKind)
error_fields = st.lists(
    st.tuples(st.characters(min_codepoint=1, max_codepoint=255), texts), max_size=6
).map(tuple)

untyped_frontend: dict[type, st.SearchStrategy[FrontendMessage]] = {
    StartupMessage: st.builds(
        StartupMessage,
        st.lists(st.tuples(names, texts), max_size=5).map(tuple),
        st.just(3),
        st.integers(0, 65535),
    ),
    SSLRequest: st.just(SSLRequest()),
    GSSENCRequest: st.just(GSSENCRequest()),
    CancelRequest: st.builds(CancelRequest, i32, keys),
}

typed_frontend: dict[type, st.SearchStrategy[FrontendMessage]] = {
    Query: st.builds(Query, texts),
    Parse: st.builds(Parse, texts, texts, st.lists(u32, max_size=5).map(tuple)),
    Bind: st.builds(
        Bind, texts, texts, formats, st.lists(nullable, max_size=5).map(tuple), formats
    ),
    Describe: st.builds(Describe, kinds, texts),
    Execute: st.builds(Execute, texts, i32),
    Sync: st.just(Sync()),
    Flush: st.just(Flush()),
    Close: st.builds(Close, kinds, texts),
    CopyData: st.builds(CopyData, blobs),
    CopyDone: st.just(CopyDone()),
    CopyFail: st.builds(CopyFail, texts),
    FunctionCall: st.builds(
        FunctionCall, u32, formats, st.lists(nullable, max_size=5).map(tuple), i16
    ),
    Terminate: st.just(Terminate()),
}

# ``p`` messages, keyed by the authentication request that makes them decode that way.
auth_responses: dict[type, tuple[BackendMessage, st.SearchStrategy[FrontendMessage]]] = {
    PasswordMessage: (AuthenticationMD5Password(b"salt"), st.builds(PasswordMessage, texts)),
    SASLInitialResponse: (
        AuthenticationSASL(("SCRAM-SHA-256",)),
        st.builds(SASLInitialResponse, texts, nullable),
    ),
    SASLResponse: (AuthenticationSASLContinue(b"r=abc"), st.builds(SASLResponse, blobs)),
    GSSResponse: (AuthenticationOther(7), st.builds(GSSResponse, blobs)),
}

other_auth_codes = st.integers(-(2**31), 2**31 - 1).filter(lambda c: c not in (0, 3, 5, 10, 11, 12))

typed_backend: dict[type, st.SearchStrategy[BackendMessage]] = {
    AuthenticationOk: st.just(AuthenticationOk()),
    AuthenticationCleartextPassword: st.just(AuthenticationCleartextPassword()),
    AuthenticationMD5Password: st.builds(
        AuthenticationMD5Password, st.binary(min_size=4, max_size=4)
    ),
    AuthenticationSASL: st.builds(AuthenticationSASL, st.lists(names, max_size=5).map(tuple)),
    AuthenticationSASLContinue: st.builds(AuthenticationSASLContinue, blobs),
    AuthenticationSASLFinal: st.builds(AuthenticationSASLFinal, blobs),
    AuthenticationOther: st.builds(AuthenticationOther, other_auth_codes, blobs),
    ParameterStatus: st.builds(ParameterStatus, texts, texts),
    BackendKeyData: st.builds(BackendKeyData, i32, keys),
    ReadyForQuery: st.builds(ReadyForQuery, st.sampled_from(TransactionStatus)),
    NegotiateProtocolVersion: st.builds(
        NegotiateProtocolVersion, i32, st.lists(texts, max_size=5).map(tuple)
    ),
    RowDescription: st.builds(
        RowDescription,
        st.lists(st.builds(FieldDescription, texts, u32, i16, u32, i16, i32, i16), max_size=5).map(
            tuple
        ),
    ),
    DataRow: st.builds(DataRow, st.lists(nullable, max_size=8).map(tuple)),
    CommandComplete: st.builds(CommandComplete, texts),
    EmptyQueryResponse: st.just(EmptyQueryResponse()),
    ErrorResponse: st.builds(ErrorResponse, error_fields),
    NoticeResponse: st.builds(NoticeResponse, error_fields),
    NotificationResponse: st.builds(NotificationResponse, i32, texts, texts),
    ParseComplete: st.just(ParseComplete()),
    BindComplete: st.just(BindComplete()),
    CloseComplete: st.just(CloseComplete()),
    NoData: st.just(NoData()),
    ParameterDescription: st.builds(ParameterDescription, st.lists(u32, max_size=5).map(tuple)),
    PortalSuspended: st.just(PortalSuspended()),
    CopyInResponse: st.builds(CopyInResponse, st.sampled_from([0, 1]), formats),
    CopyOutResponse: st.builds(CopyOutResponse, st.sampled_from([0, 1]), formats),
    CopyBothResponse: st.builds(CopyBothResponse, st.sampled_from([0, 1]), formats),
    CopyData: st.builds(CopyData, blobs),
    CopyDone: st.just(CopyDone()),
    FunctionCallResponse: st.builds(FunctionCallResponse, nullable),
}


def test_every_message_class_has_a_strategy() -> None:
    classes = {
        *typing.get_args(FrontendMessage),
        *typing.get_args(BackendMessage),
    } - {SSLAnswer}
    covered = {*untyped_frontend, *typed_frontend, *auth_responses, *typed_backend}
    assert classes == covered


def test_type_tables_agree_with_the_classes() -> None:
    for tables in (FRONTEND_TYPES, BACKEND_TYPES):
        for tag, classes in tables.items():
            assert all(vars(cls)["tag"] == tag for cls in classes), tag
    assert {c for cs in FRONTEND_TYPES.values() for c in cs} == {*typed_frontend, *auth_responses}
    assert {c for cs in BACKEND_TYPES.values() for c in cs} == set(typed_backend)


# -- round trips ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_untyped_frontend_messages_round_trip(data: st.DataObject) -> None:
    for strategy in untyped_frontend.values():
        message = data.draw(strategy)
        wire = encode(message)
        assert frontend(wire, started=False) == [message]
        assert encode(frontend(wire, started=False)[0]) == wire


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_typed_frontend_messages_round_trip(data: st.DataObject) -> None:
    for strategy in typed_frontend.values():
        message = data.draw(strategy)
        wire = encode(message)
        assert frontend(wire) == [message]
        assert encode(message) == wire


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_auth_responses_round_trip_in_their_auth_state(data: st.DataObject) -> None:
    for request, strategy in auth_responses.values():
        message = data.draw(strategy)
        parser = FrontendParser()
        parser.feed(encode(STARTUP))
        parser.expect_auth(request)
        parser.feed(encode(message))
        assert drain(parser) == [STARTUP, message]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_backend_messages_round_trip(data: st.DataObject) -> None:
    for strategy in typed_backend.values():
        message = data.draw(strategy)
        wire = encode(message)
        (decoded,) = backend(wire)
        assert decoded == message
        assert encode(decoded) == wire


# -- captures written from the protocol documentation --------------------------------------------

PSQL_CLIENT = (
    # StartupMessage: length 37, version 3.0, user=postgres, database=shop, terminator
    b"\x00\x00\x00\x25\x00\x03\x00\x00"
    b"user\x00postgres\x00database\x00shop\x00\x00"
    # PasswordMessage with an MD5 hash: "md5" + 32 hex digits
    b"p\x00\x00\x00\x28md5a3556571e93b0d20722ba62be61e8c2d\x00"
    b"Q\x00\x00\x00\x0eselect 1;\x00"
    b"X\x00\x00\x00\x04"
)
PSQL_SERVER = (
    b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"  # AuthenticationMD5Password
    b"R\x00\x00\x00\x08\x00\x00\x00\x00"  # AuthenticationOk
    b"S\x00\x00\x00\x19client_encoding\x00UTF8\x00"
    b"K\x00\x00\x00\x0c\x00\x00\x30\x39\xde\xad\xbe\xef"
    b"Z\x00\x00\x00\x05I"
    # RowDescription: one field "?column?", int4 (oid 23), size 4, modifier -1, text
    b"T\x00\x00\x00\x21\x00\x01?column?\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"
    b"D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011"
    b"C\x00\x00\x00\x0dSELECT 1\x00"
    b"Z\x00\x00\x00\x05I"
)


def test_psql_simple_query_session() -> None:
    client = FrontendParser()
    server = BackendParser()
    startup_end = PSQL_CLIENT.index(b"p")
    client.feed(PSQL_CLIENT[:startup_end])
    client_events = drain(client)
    server.feed(PSQL_SERVER)
    server_events = drain(server)
    client.expect_auth(server_events[0])  # the proxy reports what the server asked
    client.feed(PSQL_CLIENT[startup_end:])
    client_events += drain(client)
    assert client_events == [
        StartupMessage((("user", "postgres"), ("database", "shop"))),
        PasswordMessage("md5a3556571e93b0d20722ba62be61e8c2d"),
        Query("select 1;"),
        Terminate(),
    ]
    assert server_events == [
        AuthenticationMD5Password(b"\x01\x02\x03\x04"),
        AuthenticationOk(),
        ParameterStatus("client_encoding", "UTF8"),
        BackendKeyData(12345, b"\xde\xad\xbe\xef"),
        ReadyForQuery(TransactionStatus.IDLE),
        RowDescription((FieldDescription("?column?", 0, 0, 23, 4, -1, 0),)),
        DataRow((b"1",)),
        CommandComplete("SELECT 1"),
        ReadyForQuery(TransactionStatus.IDLE),
    ]
    assert b"".join(map(encode, client_events)) == PSQL_CLIENT
    assert b"".join(map(encode, server_events)) == PSQL_SERVER


PIPELINE_CLIENT = (
    # Parse "s1": select $1::int4 + $2, parameter types int4 (23) and unspecified (0)
    b"P\x00\x00\x00\x26s1\x00select $1::int4 + $2\x00\x00\x02\x00\x00\x00\x17\x00\x00\x00\x00"
    b"D\x00\x00\x00\x08Ss1\x00"
    b"H\x00\x00\x00\x04"
    # Bind: unnamed portal, statement s1, one format code (binary) for all, params 7 and NULL,
    # one result format code (text)
    b"B\x00\x00\x00\x1e\x00s1\x00\x00\x01\x00\x01\x00\x02\x00\x00\x00\x04\x00\x00\x00\x07"
    b"\xff\xff\xff\xff\x00\x01\x00\x00"
    b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"
    b"C\x00\x00\x00\x08Ss1\x00"
    b"S\x00\x00\x00\x04"
)
PIPELINE_SERVER = (
    b"1\x00\x00\x00\x04"
    b"t\x00\x00\x00\x0e\x00\x02\x00\x00\x00\x17\x00\x00\x00\x17"
    b"T\x00\x00\x00\x21\x00\x01?column?\x00"
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00"
    b"2\x00\x00\x00\x04"
    b"D\x00\x00\x00\x0a\x00\x01\xff\xff\xff\xff"
    b"C\x00\x00\x00\x0dSELECT 1\x00"
    b"3\x00\x00\x00\x04"
    b"Z\x00\x00\x00\x05I"
)


def test_extended_query_pipeline() -> None:
    assert frontend(PIPELINE_CLIENT) == [
        Parse("s1", "select $1::int4 + $2", (23, 0)),
        Describe(ObjectKind.STATEMENT, "s1"),
        Flush(),
        Bind("", "s1", (1,), (b"\x00\x00\x00\x07", None), (0,)),
        Execute("", 0),
        Close(ObjectKind.STATEMENT, "s1"),
        Sync(),
    ]
    events = backend(PIPELINE_SERVER)
    assert events == [
        ParseComplete(),
        ParameterDescription((23, 23)),
        RowDescription((FieldDescription("?column?", 0, 0, 23, 4, -1, 0),)),
        BindComplete(),
        DataRow((None,)),
        CommandComplete("SELECT 1"),
        CloseComplete(),
        ReadyForQuery(TransactionStatus.IDLE),
    ]
    assert b"".join(map(encode, events)) == PIPELINE_SERVER


def test_copy_in_and_out() -> None:
    client = b"Q\x00\x00\x00\x16copy t from stdin\x00d\x00\x00\x00\x081\tx\nc\x00\x00\x00\x04"
    assert frontend(client) == [Query("copy t from stdin"), CopyData(b"1\tx\n"), CopyDone()]
    server = (
        b"G\x00\x00\x00\x0b\x00\x00\x02\x00\x00\x00\x00"
        b"H\x00\x00\x00\x07\x01\x00\x00"
        b"W\x00\x00\x00\x07\x00\x00\x00"
        b"d\x00\x00\x00\x05z"
        b"c\x00\x00\x00\x04"
    )
    assert backend(server) == [
        CopyInResponse(0, (0, 0)),
        CopyOutResponse(1, ()),
        CopyBothResponse(0, ()),
        CopyData(b"z"),
        CopyDone(),
    ]
    assert frontend(b"f\x00\x00\x00\x0aboom!\x00") == [CopyFail("boom!")]


def test_error_and_notice_fields_keep_order_and_have_helpers() -> None:
    wire = b"E\x00\x00\x00\x24SERROR\x00VERROR\x00C42P01\x00Mno table\x00\x00"
    (error,) = backend(wire)
    assert isinstance(error, ErrorResponse)
    assert error.fields == (("S", "ERROR"), ("V", "ERROR"), ("C", "42P01"), ("M", "no table"))
    assert (error.severity, error.sqlstate, error.message) == ("ERROR", "42P01", "no table")
    assert error.get("D") is None
    notice = NoticeResponse((("S", "NOTICE"), ("M", "hi")))
    assert backend(encode(notice)) == [notice]
    assert not equal(notice, ErrorResponse(notice.fields))


def equal(a: object, b: object) -> bool:
    return a == b


def test_notification_negotiation_and_function_call() -> None:
    server = (
        b"A\x00\x00\x00\x10\x00\x00\x00\x2ajobs\x00go\x00"
        b"v\x00\x00\x00\x1a\x00\x03\x00\x00\x00\x00\x00\x01_pq_.compress\x00"
        b"V\x00\x00\x00\x0a\x00\x00\x00\x02ok"
    )
    assert backend(server) == [
        NotificationResponse(42, "jobs", "go"),
        NegotiateProtocolVersion(3 << 16, ("_pq_.compress",)),
        FunctionCallResponse(b"ok"),
    ]
    call = b"F\x00\x00\x00\x12\x00\x00\x04\xd2\x00\x00\x00\x01\xff\xff\xff\xff\x00\x01"
    assert frontend(call) == [FunctionCall(1234, (), (None,), 1)]


def test_non_utf8_text_round_trips_through_surrogates() -> None:
    wire = b"Q\x00\x00\x00\x0bcaf\xe9 \xff\x00"
    (query,) = frontend(wire)
    assert query == Query("caf\udce9 \udcff")
    assert encode(query) == wire


def test_startup_parameters_keep_order_and_get() -> None:
    message = StartupMessage(
        (("user", "u"), ("database", "d"), ("options", "-c x=1"), ("_pq_.x", "")), 3, 2
    )
    (parsed,) = frontend(encode(message), started=False)
    assert parsed == message
    assert message.get("database") == "d" and message.get("nope") is None


# -- startup phase: SSL and GSS negotiation, cancel ----------------------------------------------

SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
GSS_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x30"


def test_ssl_request_waits_for_the_answer() -> None:
    parser = FrontendParser()
    parser.feed(SSL_REQUEST + encode(STARTUP))
    assert parser.next_event() == SSLRequest()
    assert parser.awaiting_ssl_answer
    assert parser.next_event() is NEED_DATA  # the startup bytes wait for the answer
    parser.ssl_answered(b"N")
    assert not parser.awaiting_ssl_answer and not parser.encrypted
    assert drain(parser) == [STARTUP]


def test_ssl_accepted_marks_the_stream_encrypted_and_expects_a_startup_inside() -> None:
    parser = FrontendParser()
    parser.feed(SSL_REQUEST)
    assert drain(parser) == [SSLRequest()]
    parser.ssl_answered(b"S")
    assert parser.encrypted
    parser.feed(encode(STARTUP) + encode(Query("x")))
    assert drain(parser) == [STARTUP, Query("x")]


def test_gss_refused_then_ssl() -> None:
    parser = FrontendParser()
    parser.feed(GSS_REQUEST)
    assert drain(parser) == [GSSENCRequest()]
    with pytest.raises(ProtocolError, match="answered b'S' to GSSENCRequest"):
        parsed_up_to(GSS_REQUEST).ssl_answered(b"S")
    parser.ssl_answered(b"N")
    parser.feed(SSL_REQUEST)
    assert drain(parser) == [SSLRequest()]
    parser.ssl_answered(b"S")
    assert parser.encrypted


def parsed_up_to(data: bytes) -> FrontendParser:
    parser = FrontendParser()
    parser.feed(data)
    drain(parser)
    return parser


def test_ssl_answered_without_a_request_is_an_error() -> None:
    parser = FrontendParser()
    with pytest.raises(ProtocolError, match="no SSLRequest"):
        parser.ssl_answered(b"N")
    parser.feed(encode(STARTUP))
    assert drain(parser) == [STARTUP]  # a misuse does not break the parser


def test_backend_reads_the_one_byte_answer() -> None:
    for answer in (b"S", b"N", b"G"):
        parser = BackendParser()
        parser.expect_ssl_answer()
        parser.feed(answer + (b"Z\x00\x00\x00\x05I" if answer == b"N" else b""))
        expected: list[Message] = [SSLAnswer(answer)]
        if answer == b"N":
            expected.append(ReadyForQuery(TransactionStatus.IDLE))
        assert drain(parser) == expected
        assert encode(SSLAnswer(answer)) == answer


def test_backend_answer_may_be_an_error_from_an_old_server() -> None:
    parser = BackendParser()
    parser.expect_ssl_answer()
    error = ErrorResponse((("S", "FATAL"), ("M", "unsupported frontend protocol")))
    parser.feed(encode(error))
    assert drain(parser) == [error]


def test_backend_rejects_another_answer() -> None:
    parser = BackendParser()
    parser.feed(encode(ParseComplete()))
    assert drain(parser) == [ParseComplete()]
    parser.expect_ssl_answer()
    parser.feed(b"x")
    with pytest.raises(ProtocolError, match="answered b'x'") as info:
        parser.next_event()
    assert info.value.offset == 5


def test_cancel_request_ends_the_stream() -> None:
    wire = b"\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x30\x39\x01\x02\x03\x04"
    assert frontend(wire, started=False) == [CancelRequest(12345, b"\x01\x02\x03\x04")]
    long_key = CancelRequest(1, bytes(range(32)))  # protocol 3.2 keys are longer
    assert frontend(encode(long_key), started=False) == [long_key]
    error = frontend_error(wire + b"\x00", started=False)
    assert error.offset == 16 and "after Terminate or CancelRequest" in error.message


def test_bytes_after_terminate_are_an_error() -> None:
    error = frontend_error(encode(Terminate()) + encode(Sync()))
    assert error.offset == STARTUP_LEN + 5


# -- authentication: how ``p`` decodes ------------------------------------------------------------


def test_scram_exchange_decodes_each_p_by_the_last_request() -> None:
    client_first = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"
    client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF,p=dHzbZ"
    server: list[BackendMessage] = [
        AuthenticationSASL(("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")),
        AuthenticationSASLContinue(
            b"r=rOprNGfwEbeRWgbNEkqO%hvYD,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        ),
        AuthenticationSASLFinal(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjRo4="),
        AuthenticationOk(),
    ]
    wire = b"".join(map(encode, server))
    assert wire.startswith(
        b"R\x00\x00\x00\x2a\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"
    )
    assert backend(wire) == server
    parser = FrontendParser()
    parser.feed(encode(STARTUP))
    drain(parser)
    parser.expect_auth(server[0])
    parser.feed(b"p\x00\x00\x00\x32SCRAM-SHA-256\x00\x00\x00\x00\x1c" + client_first)
    assert drain(parser) == [SASLInitialResponse("SCRAM-SHA-256", client_first)]
    parser.expect_auth(server[1])
    parser.feed(encode(SASLResponse(client_final)))
    assert drain(parser) == [SASLResponse(client_final)]


def test_p_before_any_request_or_after_gss_is_kept_as_a_token() -> None:
    assert frontend(b"p\x00\x00\x00\x07ab\x00") == [GSSResponse(b"ab\x00")]
    parser = FrontendParser()
    parser.feed(encode(STARTUP))
    drain(parser)
    parser.expect_auth(AuthenticationOther(7))
    parser.expect_auth(ParameterStatus("ignored", "because not an auth request"))
    parser.feed(b"p\x00\x00\x00\x07ab\x00")
    assert drain(parser) == [GSSResponse(b"ab\x00")]


def test_cleartext_password_and_a_malformed_one() -> None:
    parser = FrontendParser()
    parser.feed(encode(STARTUP))
    drain(parser)
    parser.expect_auth(AuthenticationCleartextPassword())
    parser.feed(b"p\x00\x00\x00\x08pw\x00x")
    with pytest.raises(ProtocolError, match="1 unexpected bytes") as info:
        drain(parser)
    assert info.value.offset == STARTUP_LEN + 8


def test_sasl_initial_response_without_data() -> None:
    message = SASLInitialResponse("SCRAM-SHA-256", None)
    assert encode(message) == b"p\x00\x00\x00\x16SCRAM-SHA-256\x00\xff\xff\xff\xff"
    parser = FrontendParser()
    parser.feed(encode(STARTUP))
    parser.expect_auth(AuthenticationSASL(("SCRAM-SHA-256",)))
    parser.feed(encode(message))
    assert drain(parser) == [STARTUP, message]


# -- malformed input: errors with offsets ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (b"Y\x00\x00\x00\x04", 0, "unknown frontend message type b'Y'"),
        (b"Q\x00\x00\x00\x03", 1, "at least 4"),
        (b"Q\xff\xff\xff\xff", 1, "at least 4"),
        (b"S\x00\x00\x00\x05x", 1, "expected exactly 0"),
        (b"Q\x00\x00\x00\x06ab", 5, "not NUL-terminated"),
        (b"Q\x00\x00\x00\x07a\x00b", 7, "1 unexpected bytes"),
        (b"D\x00\x00\x00\x06X\x00", 5, "object kind b'X'"),
        (b"C\x00\x00\x00\x06\x00\x00", 5, "object kind b'\\x00'"),
        (b"E\x00\x00\x00\x09ab\x00\x00\x00", 8, "ends inside the row limit"),
        (b"B\x00\x00\x00\x0e\x00\x00\x00\x00\x00\x01\xff\xff\xff\xfe\x00\x00", 11, "length -2"),
        (b"B\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x01\x00\x00", 11, "ends inside the length"),
        (b"P\x00\x00\x00\x0aa\x00b\x00\x00\x01", 11, "ends inside parameter types"),
    ],
)
def test_frontend_errors_have_offsets(data: bytes, offset: int, words: str) -> None:
    error = frontend_error(data)
    assert words in error.message
    assert error.offset == STARTUP_LEN + offset


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (b"Q\x00\x00\x00\x04", 0, "unknown backend message type b'Q'"),
        (b"P", 0, "unknown backend message type b'P'"),
        (b"Z\x00\x00\x00\x05X", 5, "status b'X'"),
        (b"Z\x00\x00\x00\x06II", 1, "expected exactly 1"),
        (b"R\x00\x00\x00\x07\x00\x00\x00", 1, "at least 4"),
        (b"R\x00\x00\x00\x09\x00\x00\x00\x00x", 9, "1 unexpected bytes"),
        (b"R\x00\x00\x00\x0b\x00\x00\x00\x05abc", 9, "ends inside the MD5 salt"),
        (b"R\x00\x00\x00\x0c\x00\x00\x00\x0aabc\x00", 13, "SASL mechanism name"),
        (b"K\x00\x00\x00\x0a\x00\x00\x00\x01\x02\x03", 1, "expected 8 to 260"),
        (b"E\x00\x00\x00\x07Sx\x00", 8, "field code"),
        (b"G\x00\x00\x00\x07\x02\x00\x00", 5, "overall COPY format 2"),
        (b"D\x00\x00\x00\x0a\x00\x02\x00\x00\x00\x00", 11, "ends inside"),
        (b"v\x00\x00\x00\x0c\x00\x03\x00\x00\xff\xff\xff\xff", 9, "-1 unrecognized options"),
        (b"1\x00\x00\x00\x05\x00", 1, "expected exactly 0"),
    ],
)
def test_backend_errors_have_offsets(data: bytes, offset: int, words: str) -> None:
    error = backend_error(data)
    assert words in error.message, error.message
    assert error.offset == offset


@pytest.mark.parametrize(
    ("data", "offset", "words"),
    [
        (b"\x00\x00\x00\x07", 0, "at least 8"),
        (b"\x00\x00\x00\x10\x00\x02\x00\x00", 4, "unsupported protocol version 2.0"),
        (b"\x00\x00\x00\x08\x04\xd2\x16\x31", 4, "unsupported request code 1234.5681"),
        (b"\x00\x00\x00\x09\x04\xd2\x16\x2f\x00", 0, "SSLRequest has length 9; expected exactly 8"),
        (b"\x00\x00\x00\x0c\x04\xd2\x16\x2e\x00\x00\x00\x01", 0, "CancelRequest has length 12"),
        (b"\x00\x00\x00\x08\x00\x03\x00\x00", 0, "StartupMessage has length 8; expected 9"),
        (b"\x00\x00\x00\x0e\x00\x03\x00\x00u\x00v\x00\x00x", 13, "1 unexpected bytes"),
        (b"\x00\x00\x00\x0c\x00\x03\x00\x00u\x00v\x00", 12, "parameter name"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01", 0, "look like a TLS handshake"),
        (b"GET / HTTP/1.1\r\n\r\n", 0, "larger than max_startup_size=10000"),
    ],
)
def test_startup_errors_have_offsets(data: bytes, offset: int, words: str) -> None:
    error = frontend_error(data, started=False)
    assert words in error.message, error.message
    assert error.offset == offset


def test_max_message_size_is_configurable_and_checked_before_the_body_arrives() -> None:
    parser = BackendParser(max_message_size=100)
    parser.feed(encode(DataRow((b"x" * 90,))))
    assert drain(parser) == [DataRow((b"x" * 90,))]
    parser.feed(b"D\x00\x00\x01\x00")  # 256 bytes announced; none of the body sent
    with pytest.raises(ProtocolError, match="larger than max_message_size=100") as info:
        parser.next_event()
    assert info.value.offset == 102
    with pytest.raises(ValueError, match="at least 4"):
        BackendParser(max_message_size=3)


def test_max_message_size_boundary() -> None:
    exactly = encode(DataRow((b"x" * 90,)))  # the length field says 100
    assert struct.unpack("!i", exactly[1:5]) == (100,)
    assert backend_with_limit(exactly, 100) == [DataRow((b"x" * 90,))]
    with pytest.raises(ProtocolError, match="max_message_size=99"):
        backend_with_limit(exactly, 99)


def backend_with_limit(data: bytes, limit: int) -> list[BackendMessage]:
    parser = BackendParser(max_message_size=limit)
    parser.feed(data)
    return drain(parser)


def test_large_message_arrives_in_pieces() -> None:
    value = bytes(range(256)) * 4096  # 1 MiB
    wire = encode(DataRow((value, None, b"")))
    parser = BackendParser()
    for at in range(0, len(wire), 65536):
        parser.feed(wire[at : at + 65536])
        if at + 65536 < len(wire):
            assert parser.next_event() is NEED_DATA
            assert parser.buffered == at + len(wire[at : at + 65536])
    assert drain(parser) == [DataRow((value, None, b""))]
    assert parser.buffered == 0 and parser.consumed == len(wire)


def test_errors_are_sticky_and_eof_inside_a_message_is_an_error() -> None:
    parser = BackendParser()
    parser.feed(b"Z\x00\x00\x00\x05")
    assert parser.next_event() is NEED_DATA
    parser.feed_eof()
    with pytest.raises(ProtocolError, match="closed inside a message") as info:
        parser.next_event()
    assert info.value.offset == 0
    with pytest.raises(ProtocolError, match="closed inside a message"):
        parser.feed(b"I")
    clean = BackendParser()
    clean.feed(encode(NoData()))
    clean.feed_eof()
    assert drain(clean) == [NoData()]
    with pytest.raises(ProtocolError, match="after feed_eof"):
        clean.feed(b"x")


# -- encoding errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (Query("a\0b"), "cannot contain NUL"),
        (Query("\ud800"), "surrogate"),
        (Execute("", 2**31), "out of range"),
        (Parse("", "", (-1,)), "out of range"),
        (DataRow((None,) * 65536), "out of range"),
        (AuthenticationOther(0), "its own message class"),
        (AuthenticationMD5Password(b"abc"), "4 bytes"),
        (AuthenticationSASL(("",)), "empty SASL mechanism"),
        (BackendKeyData(1, b"abc"), "secret key is 3 bytes"),
        (CancelRequest(1, b"x" * 257), "secret key is 257 bytes"),
        (StartupMessage((("", "x"),)), "empty startup parameter name"),
        (StartupMessage((), 2), "protocol version 2.0"),
        (ErrorResponse((("SS", "x"),)), "one character"),
        (Describe("X", ""), "object kind"),  # type: ignore[arg-type]
        (ReadyForQuery("X"), "transaction status"),  # type: ignore[arg-type]
        (CopyInResponse(2, ()), "COPY format 2"),
        (SSLAnswer(b"x"), "SSL answer"),
    ],
)
def test_encoding_rejects_what_the_wire_cannot_carry(message: Message, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        encode(message)


def test_encoding_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not str"):
        encode("Q")  # type: ignore[arg-type]


def test_length_prefix_counts_itself() -> None:
    wire = encode(CommandComplete("INSERT 0 1"))
    assert wire[:1] == b"C"
    assert struct.unpack("!i", wire[1:5])[0] == len(wire) - 1


# -- helpers for matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "normalized"),
    [
        ("SELECT  *\n\tFROM Users  WHERE id = $1 ", "select * from users where id = $1"),
        ("select 1 -- trailing comment", "select 1"),
        ("select/* a */1", "select 1"),
        ("select /* outer /* inner */ still */ 1", "select 1"),
        (
            "SELECT 'Keep  -- This /* */' AS \"Mixed  Case\"",
            "select 'Keep  -- This /* */' as \"Mixed  Case\"",
        ),
        ("SELECT 'it''s -- no comment'", "select 'it''s -- no comment'"),
        ("SELECT E'a\\'  B' --x", "select e'a\\'  B'"),
        ("SELECT $$ A  --b $$, $Tag$ X $$ y $Tag$", "select $$ A  --b $$, $Tag$ X $$ y $Tag$"),
        ("SELECT a$b$ FROM T", "select a$b$ from t"),
        ("  ", ""),
        ("SELECT 'unterminated  X", "select 'unterminated  X"),
        ("select 1 /* unterminated", "select 1"),
        ('SELECT "a""B"', 'select "a""B"'),
    ],
)
def test_normalize_sql(sql: str, normalized: str) -> None:
    assert normalize_sql(sql) == normalized


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("", ""),
        ("__asyncpg_stmt_1a__", ""),
        ("_pg3_3", ""),
        ("_p1", ""),
        ("S_12", ""),
        ("stmtcache_9f86d081884c7d65", ""),
        ("lrupsc_1_0", ""),
        ("sqlx_s_4", ""),
        ("s0", ""),
        ("a12", ""),
        ("pdo_stmt_0000000a", ""),
        ("get_user_by_id", "get_user_by_id"),
        ("__asyncpg_stmt_1a__x", "__asyncpg_stmt_1a__x"),
        ("S_", "S_"),
    ],
)
def test_statement_kind(name: str, kind: str) -> None:
    assert statement_kind(name) == kind


def test_package_exports() -> None:
    assert set(pg.__all__) >= {"FrontendParser", "BackendParser", "encode", "Query", "DataRow"}
    assert all(hasattr(pg, name) for name in pg.__all__)
