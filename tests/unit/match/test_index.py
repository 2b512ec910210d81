from __future__ import annotations

from wiretape.match.index import MockIndex
from wiretape.model import Body, Headers, HttpRequest, HttpResponse, Miss, Mock, WireResponse
from wiretape.protocols.postgres.exchange import request_for as pg_request

JSON_CT: Headers = (("Content-Type", "application/json"),)


def req(
    target: str = "/", *, method: str = "GET", headers: Headers = (), body: Body = b""
) -> HttpRequest:
    return HttpRequest(method=method, target=target, headers=headers, body=body)


def mock(
    mock_id: str,
    r: HttpRequest,
    *,
    test: str | None = None,
    dep: str = "api",
    protocol: str = "http",
    status: int | None = 200,
) -> Mock:
    response = None if status is None else HttpResponse(status, "", ())
    return Mock(id=mock_id, dep=dep, protocol=protocol, request=r, response=response, test=test)


def answer(index: MockIndex, r: HttpRequest, dep: str = "api") -> str:
    found = index.lookup(dep, r)
    assert isinstance(found, Mock), found
    return found.id


def miss(index: MockIndex, r: HttpRequest, dep: str = "api") -> Miss:
    found = index.lookup(dep, r)
    assert isinstance(found, Miss), found
    return found


def test_identical_requests_in_a_test_answer_in_recorded_order() -> None:
    r = req("/v1/balance")
    index = MockIndex([], {"t1": [mock("a", r, test="t1"), mock("b", r, test="t1")]})
    index.begin_test("t1")
    assert [answer(index, r), answer(index, r)] == ["a", "b"]


def test_interleaved_keys_keep_their_own_order() -> None:
    x, y = req("/x"), req("/y")
    mocks = [mock("x1", x), mock("y1", y), mock("x2", x), mock("y2", y)]
    index = MockIndex([], {"t": mocks})
    index.begin_test("t")
    assert [answer(index, y), answer(index, x), answer(index, x), answer(index, y)] == [
        "y1",
        "x1",
        "x2",
        "y2",
    ]


def test_lookup_normalizes_the_live_request() -> None:
    recorded = req("/r?b=2&a=1", method="post", headers=JSON_CT, body=b'{"y": 1, "x": 2}')
    index = MockIndex([], {"t": [mock("m", recorded)]})
    index.begin_test("t")
    live = req("/r?a=1&b=2", method="POST", headers=JSON_CT, body=b'{"x":2,"y":1}')
    assert answer(index, live) == "m"


def test_exhausted_request_misses_with_a_reason() -> None:
    r = req("/v1/balance")
    index = MockIndex([], {"t1": [mock("a", r), mock("b", r)]})
    index.begin_test("t1")
    answer(index, r)
    answer(index, r)
    found = miss(index, r)
    assert "all 2 recorded answers for this request were already used" in found.reason
    assert found.request == "GET /v1/balance"
    assert found.dep == "api"
    assert [c.mock_id for c in found.candidates] == ["a", "b"]


def test_single_exhausted_answer_reason() -> None:
    r = req("/once")
    index = MockIndex([], {"t": [mock("a", r)]})
    index.begin_test("t")
    answer(index, r)
    assert "the only recorded answer for this request was already used" in miss(index, r).reason


def test_session_mocks_are_reused_and_the_last_repeats() -> None:
    r = req("/healthz")
    index = MockIndex([mock("s1", r, status=503), mock("s2", r)], {"t": []})
    assert [answer(index, r) for _ in range(4)] == ["s1", "s2", "s2", "s2"]
    index.begin_test("t")
    assert answer(index, r) == "s2"


def test_session_cursor_continues_across_tests() -> None:
    r = req("/token")
    index = MockIndex([mock("s1", r), mock("s2", r), mock("s3", r)], {"t1": [], "t2": []})
    index.begin_test("t1")
    assert answer(index, r) == "s1"
    index.begin_test("t2")
    assert [answer(index, r), answer(index, r), answer(index, r)] == ["s2", "s3", "s3"]


def test_test_mocks_come_before_session_mocks_then_fall_back() -> None:
    r = req("/config")
    index = MockIndex([mock("s", r)], {"t": [mock("own", r)]})
    index.begin_test("t")
    assert [answer(index, r), answer(index, r), answer(index, r)] == ["own", "s", "s"]


def test_a_mock_of_one_test_never_answers_in_another() -> None:
    r = req("/v1/charges/ch_1")
    index = MockIndex([], {"A": [mock("a", r)], "B": [mock("b", req("/other"))]})
    index.begin_test("B")
    found = miss(index, r)
    assert "recorded in test A, not in B" in found.reason
    index.begin_test("A")
    assert answer(index, r) == "a"


def test_between_tests_only_session_mocks_answer() -> None:
    r = req("/x")
    index = MockIndex([mock("s", req("/warmup"))], {"t": [mock("own", r)]})
    assert answer(index, req("/warmup")) == "s"
    found = miss(index, r)
    assert "between tests only session mocks answer" in found.reason
    index.begin_test("t")
    index.begin_test(None)
    miss(index, r)
    assert len(index.misses(None)) == 2


def test_begin_test_again_starts_afresh() -> None:
    r = req("/x")
    index = MockIndex([], {"t": [mock("m", r)]})
    index.begin_test("t")
    answer(index, r)
    miss(index, r)
    index.begin_test("t")
    assert index.served("t") == []
    assert index.misses("t") == []
    assert index.unused("t") == ["m"]
    assert answer(index, r) == "m"


def test_unknown_test_has_no_mocks() -> None:
    index = MockIndex([mock("s", req("/s"))], {})
    index.begin_test("nope")
    assert answer(index, req("/s")) == "s"
    assert miss(index, req("/x")).reason.startswith("no recorded request is equal")
    assert index.unused("nope") == []


def wire(mock_id: str, steps: list[object], *, test: str | None = "t") -> Mock:
    return Mock(
        id=mock_id,
        dep="db",
        protocol="postgres",
        request=pg_request(steps),
        response=WireResponse({"messages": []}),
        test=test,
    )


def test_database_and_http_mocks_share_the_index_without_crossing() -> None:
    select = [{"query": "SELECT * FROM t"}]
    index = MockIndex([], {"t": [wire("q", select), mock("h", req("/h"))]})
    index.begin_test("t")
    assert index.lookup("db", pg_request([{"query": "select *  from t"}])).id == "q"  # type: ignore[union-attr]
    found = index.lookup("db", pg_request([{"query": "SELECT * FROM u"}]))
    assert isinstance(found, Miss)
    assert found.request == "SELECT * FROM u"
    assert found.candidates[0].mock_id == "q"
    assert index.unused("t") == ["h"]


def test_reusable_database_requests_answer_from_any_test() -> None:
    ping = [{"query": "SELECT 1"}]
    write = [{"query": "INSERT INTO t VALUES (1)"}]
    index = MockIndex([], {"t1": [wire("p", ping, test="t1"), wire("w", write, test="t1")]})
    index.begin_test("t2")
    assert index.lookup("db", pg_request(ping)).id == "p"  # type: ignore[union-attr]
    assert isinstance(index.lookup("db", pg_request(write)), Miss)


def test_recorded_errors_still_match() -> None:
    r = req("/flaky")
    index = MockIndex([], {"t": [mock("err", r, status=None)]})
    index.begin_test("t")
    found = index.lookup("api", r)
    assert isinstance(found, Mock)
    assert found.response is None


def test_served_and_unused_bookkeeping() -> None:
    a, b, c = req("/a"), req("/b"), req("/c")
    index = MockIndex(
        [mock("s1", req("/s")), mock("s2", req("/never"))],
        {"t1": [mock("a", a), mock("b", b), mock("c", c)], "t2": [mock("z", req("/z"))]},
    )
    index.begin_test("t1")
    answer(index, c)
    answer(index, req("/s"))
    answer(index, a)
    assert index.served("t1") == ["c", "s1", "a"]
    assert index.unused("t1") == ["b"]
    assert index.unused("t2") == ["z"]
    assert index.served("t2") == []
    assert index.session_unused() == ["s2"]
    index.begin_test("t2")
    answer(index, req("/z"))
    assert index.unused("t2") == []
    assert index.served("t1") == ["c", "s1", "a"]


def test_misses_are_recorded_per_test() -> None:
    index = MockIndex([], {"t1": [mock("a", req("/a"))], "t2": []})
    index.begin_test("t1")
    first = miss(index, req("/nope"))
    index.begin_test("t2")
    second = miss(index, req("/nope2"))
    assert index.misses("t1") == [first]
    assert index.misses("t2") == [second]
    assert index.misses(None) == []


def test_miss_explains_the_differing_field() -> None:
    recorded = req("/v1/rates?base=EUR")
    index = MockIndex([], {"t": [mock("rates", recorded), mock("other", req("/v1/users"))]})
    index.begin_test("t")
    found = miss(index, req("/v1/rates?base=USD"))
    assert found.candidates[0].mock_id == "rates"
    assert found.candidates[0].differences == ("query base: recorded 'EUR', live 'USD'",)
    assert found.request == "GET /v1/rates?base=USD"


def test_miss_explains_a_json_body_difference() -> None:
    rec = req("/charge", method="POST", headers=JSON_CT, body=b'{"amount": 10}')
    index = MockIndex([], {"t": [mock("m", rec)]})
    index.begin_test("t")
    found = miss(index, req("/charge", method="POST", headers=JSON_CT, body=b'{"amount": 12}'))
    assert found.candidates[0].differences == ("body.amount: recorded 10, live 12",)


def test_miss_candidates_prefer_the_same_dep() -> None:
    r = req("/x")
    index = MockIndex(
        [mock("s-other", r, dep="billing")],
        {"t": [mock("same", req("/y")), mock("other", r, dep="billing")]},
    )
    index.begin_test("t")
    found = miss(index, r)
    assert [c.mock_id for c in found.candidates] == ["same"]


def test_miss_candidates_use_any_dep_when_that_dep_has_none() -> None:
    r = req("/x")
    index = MockIndex([mock("s", r, dep="billing")], {"t": [mock("t-other", r, dep="mail")]})
    index.begin_test("t")
    found = miss(index, r, dep="payments")
    assert {c.mock_id for c in found.candidates} == {"s", "t-other"}
    assert "no mocks were recorded for dependency 'payments'" in found.reason


def test_miss_candidates_exclude_other_tests() -> None:
    r = req("/x")
    index = MockIndex([], {"A": [mock("a", r)], "B": [mock("b", req("/y"))]})
    index.begin_test("B")
    assert [c.mock_id for c in miss(index, r).candidates] == ["b"]


def test_many_distinct_mocks_each_answer_their_own_request() -> None:
    mocks = [mock(f"m{i}", req(f"/items/{i}?v={i % 7}")) for i in range(500)]
    index = MockIndex([], {"t": mocks})
    index.begin_test("t")
    for i in reversed(range(500)):
        assert answer(index, req(f"/items/{i}?v={i % 7}")) == f"m{i}"
    assert index.unused("t") == []


def test_app_generated_uuids_and_timestamps_match_by_kind_in_recorded_order() -> None:
    def insert(uuid: str, stamp: str) -> list[object]:
        sql = "INSERT INTO t (id, at) VALUES ($1, $2)"
        return [{"bind": sql, "params": [uuid, stamp]}, {"execute": 0}, "sync"]

    recorded = [
        wire("a", insert("0b5f5c2e-8f0a-4e55-9d5e-1f6f1a2b3c4d", "2026-01-01T10:00:00.000Z")),
        wire("b", insert("7d1e3a9c-2b4f-4a6d-8c0e-5f7a9b1c3d5e", "2026-01-01T10:00:01.000Z")),
    ]
    index = MockIndex([], {"t": recorded})
    index.begin_test("t")
    live = insert("3f2a9d1e-6b7c-4e8f-a1b2-c3d4e5f6a7b8", "2026-11-21T09:00:00.123Z")
    assert index.lookup("db", pg_request(live)).id == "a"  # type: ignore[union-attr]
    assert index.lookup("db", pg_request(live)).id == "b"  # type: ignore[union-attr]
    assert isinstance(index.lookup("db", pg_request(live)), Miss)
    # Another kind or format is not the same value.
    index.begin_test("t")
    other = insert("not-a-uuid", "2026-11-21T09:00:00.123Z")
    assert isinstance(index.lookup("db", pg_request(other)), Miss)
    seconds = insert("3f2a9d1e-6b7c-4e8f-a1b2-c3d4e5f6a7b8", "2026-11-21T09:00:00Z")
    assert isinstance(index.lookup("db", pg_request(seconds)), Miss)


def test_an_exact_match_uses_up_the_same_recording_as_a_loose_one() -> None:
    sql = "INSERT INTO t (id) VALUES ($1)"
    u1, u2 = "0b5f5c2e-8f0a-4e55-9d5e-1f6f1a2b3c4d", "7d1e3a9c-2b4f-4a6d-8c0e-5f7a9b1c3d5e"
    index = MockIndex(
        [],
        {
            "t": [
                wire("a", [{"bind": sql, "params": [u1]}]),
                wire("b", [{"bind": sql, "params": [u2]}]),
            ]
        },
    )
    index.begin_test("t")
    assert index.lookup("db", pg_request([{"bind": sql, "params": [u2]}])).id == "b"  # type: ignore[union-attr]
    fresh = "3f2a9d1e-6b7c-4e8f-a1b2-c3d4e5f6a7b8"
    assert index.lookup("db", pg_request([{"bind": sql, "params": [fresh]}])).id == "a"  # type: ignore[union-attr]
    assert isinstance(index.lookup("db", pg_request([{"bind": sql, "params": [fresh]}])), Miss)
