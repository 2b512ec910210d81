from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from wiretape.match.explain import closest
from wiretape.model import Body, Headers, HttpRequest, HttpResponse, Mock

JSON_CT: Headers = (("Content-Type", "application/json"),)
FORM_CT: Headers = (("Content-Type", "application/x-www-form-urlencoded"),)
OK = HttpResponse(200, "OK", ())


def req(
    target: str = "/", *, method: str = "GET", headers: Headers = (), body: Body = b""
) -> HttpRequest:
    return HttpRequest(method=method, target=target, headers=headers, body=body)


def mock(mock_id: str, r: HttpRequest, dep: str = "api") -> Mock:
    return Mock(id=mock_id, dep=dep, protocol="http", request=r, response=OK, test="t")


def only(live: HttpRequest, recorded: HttpRequest, dep: str = "api") -> tuple[str, ...]:
    (cand,) = closest(live, "api", [mock("m", recorded, dep)])
    return cand.differences


def test_method_difference() -> None:
    diffs = only(req("/v1/charges"), req("/v1/charges", method="POST"))
    assert diffs == ("method: recorded POST, live GET",)


def test_path_difference() -> None:
    diffs = only(req("/v1/charges/ch_2"), req("/v1/charges/ch_1"))
    assert diffs == ("path: recorded /v1/charges/ch_1, live /v1/charges/ch_2",)


def test_query_differences() -> None:
    diffs = only(req("/r?base=USD&limit=5"), req("/r?base=EUR&page=2"))
    assert diffs == (
        "query base: recorded 'EUR', live 'USD'",
        "query limit: only live",
        "query page: only recorded",
    )


def test_query_repeated_values_are_listed() -> None:
    diffs = only(req("/r?t=1"), req("/r?t=1&t=2"))
    assert diffs == ("query t: recorded ['1', '2'], live '1'",)


def test_json_body_differences_name_the_paths() -> None:
    recorded = req(
        method="POST",
        headers=JSON_CT,
        body=json.dumps({"amount": 10, "meta": {"tags": ["a", "b"]}, "x y": 1}).encode(),
    )
    live = req(
        method="POST",
        headers=JSON_CT,
        body=json.dumps({"amount": 12, "meta": {"tags": ["a", "c", "d"]}, "note": "hi"}).encode(),
    )
    assert only(live, recorded) == (
        "body.amount: recorded 10, live 12",
        'body.meta.tags[1]: recorded "b", live "c"',
        "body.meta.tags: recorded 2 items, live 3 items",
        "body.note: only live",
        'body["x y"]: only recorded',
    )


def test_json_body_differences_are_capped_at_five_lines() -> None:
    recorded = req(headers=JSON_CT, body=json.dumps({f"k{i}": i for i in range(9)}).encode())
    live = req(headers=JSON_CT, body=json.dumps({f"k{i}": -i - 1 for i in range(9)}).encode())
    diffs = only(live, recorded)
    assert len(diffs) == 5
    assert diffs[0] == "body.k0: recorded 0, live -1"
    assert diffs[-1] == "body: 5 more differences"


def test_json_type_changes_are_shown() -> None:
    diffs = only(req(headers=JSON_CT, body=b'{"a": 1}'), req(headers=JSON_CT, body=b'{"a": "1"}'))
    assert diffs == ('body.a: recorded "1", live 1',)


def test_non_json_body_difference_shows_sizes_and_digests() -> None:
    rec_body, live_body = b"\x00" * 120, b"\x01" * 98
    diffs = only(req(body=live_body), req(body=rec_body))
    rec_sha = hashlib.sha256(rec_body).hexdigest()[:8]
    live_sha = hashlib.sha256(live_body).hexdigest()[:8]
    assert diffs == (
        f"body: recorded 120 bytes (sha256 {rec_sha}…), live 98 bytes (sha256 {live_sha}…)",
    )


def test_body_kind_change_is_summarized() -> None:
    diffs = only(req(body=b""), req(headers=JSON_CT, body=b'{"a":1}'))
    assert len(diffs) == 1
    assert diffs[0].startswith("body: recorded JSON, 7 bytes (sha256 ")
    assert diffs[0].endswith(", live empty")


def test_form_body_differences() -> None:
    diffs = only(req(headers=FORM_CT, body=b"a=1&b=2"), req(headers=FORM_CT, body=b"b=3&a=1"))
    assert diffs == ("form b: recorded '3', live '2'",)


def test_other_dep_is_named_and_scores_lower() -> None:
    live = req("/x")
    same = closest(live, "api", [mock("m", req("/x"), "api")])
    other = closest(live, "api", [mock("m", req("/x"), "billing")])
    assert other[0].differences == ("dep: recorded billing, live api",)
    assert other[0].score < same[0].score


def test_identical_request_scores_one_with_no_differences() -> None:
    (cand,) = closest(req("/x?a=1"), "api", [mock("m", req("/x?a=1"))])
    assert cand.score == 1.0
    assert cand.differences == ()


def test_candidates_are_ranked_best_first_and_limited() -> None:
    live = req("/v1/charges/ch_2?expand=1", method="GET")
    candidates = [
        mock("far", req("/v2/refunds", method="POST")),
        mock("path-only", req("/v1/charges/ch_1?expand=1", method="GET")),
        mock("method-only", req("/v1/charges/ch_2?expand=1", method="DELETE")),
        mock("query-only", req("/v1/charges/ch_2", method="GET")),
    ]
    result = closest(live, "api", candidates)
    assert [c.mock_id for c in result] == ["path-only", "query-only", "method-only"]
    assert all(0.0 <= c.score <= 1.0 for c in result)
    assert [c.score for c in result] == sorted((c.score for c in result), reverse=True)


def test_method_and_path_dominate_query_and_body() -> None:
    live = req("/a?x=1", method="POST", headers=JSON_CT, body=b'{"n": 1}')
    wrong_query_and_body = mock("qb", req("/a?x=2", method="POST", headers=JSON_CT, body=b"[]"))
    wrong_method = mock("m", req("/a?x=1", method="PUT", headers=JSON_CT, body=b'{"n": 1}'))
    result = closest(live, "api", [wrong_method, wrong_query_and_body])
    assert result[0].mock_id == "qb"


def test_ties_keep_recorded_order() -> None:
    candidates = [mock(f"m{i}", req(f"/other{i}")) for i in range(5)]
    assert [c.mock_id for c in closest(req("/x"), "api", candidates)] == ["m0", "m1", "m2"]


def test_empty_candidates_and_zero_limit() -> None:
    assert closest(req(), "api", []) == ()
    assert closest(req(), "api", [mock("m", req())], limit=0) == ()


def test_body_breaks_ties_between_equal_paths() -> None:
    live = req("/graphql", method="POST", headers=JSON_CT, body=b'{"q": "b", "v": {"id": 2}}')
    candidates = [
        mock(f"m{i}", req("/graphql", method="POST", headers=JSON_CT, body=body))
        for i, body in enumerate([b'{"q": "a"}', b'{"q": "b", "v": {"id": 3}}', b'{"q": "c"}'])
    ]
    assert closest(live, "api", candidates, limit=1)[0].mock_id == "m1"


_paths = st.sampled_from(["/a", "/a/b", "/a/c", "/b", "/a/b/c"])
_methods = st.sampled_from(["GET", "POST"])
_bodies = st.sampled_from([b"", b'{"a":1}', b'{"a":2}', b'{"a":1,"b":2}', b"raw"])
_requests = st.builds(
    lambda m, p, b: req(p, method=m, headers=JSON_CT, body=b), _methods, _paths, _bodies
)


@given(_requests, st.lists(_requests, min_size=1, max_size=12), st.integers(1, 4))
def test_pruned_ranking_equals_full_ranking(
    live: HttpRequest, recorded: list[HttpRequest], limit: int
) -> None:
    candidates = [mock(f"m{i}", r, "api" if i % 3 else "other") for i, r in enumerate(recorded)]
    full = closest(live, "api", candidates, limit=len(candidates))
    assert closest(live, "api", candidates, limit=limit) == full[:limit]
