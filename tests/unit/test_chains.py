"""Chained values: detection in a recorded set, and substitution from live answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretape import chains as chains_module
from wiretape.chains import Detector, detect, sources, substitute, uses, value_at
from wiretape.model import Chain, HttpRequest, HttpResponse, TestCase

JSON = (("Content-Type", "application/json"),)


def recorded(
    n: int,
    method: str,
    target: str,
    body: object = None,
    headers: tuple[tuple[str, str], ...] = (),
    answer: object = None,
    answer_headers: tuple[tuple[str, str], ...] = JSON,
) -> TestCase:
    data = b"" if body is None else json.dumps(body).encode()
    req = HttpRequest(method, target, (*headers, *(JSON if data else ())), data)
    resp = HttpResponse(200, "OK", answer_headers, json.dumps(answer or {}).encode())
    return TestCase(id=f"{n:04d}-t", request=req, response=resp)


TOKEN = "tok-abc123xyz"


def login_flow() -> list[TestCase]:
    return [
        recorded(1, "POST", "/login", {"user": "alice"}, answer={"token": TOKEN}),
        recorded(2, "GET", "/me", headers=(("Authorization", f"Bearer {TOKEN}"),)),
        recorded(3, "POST", "/notes", {"text": "hi"}, answer={"id": "note-7f3a9c"}),
        recorded(4, "GET", "/notes/note-7f3a9c?x=1"),
        recorded(5, "PUT", "/notes", {"ref": {"id": "note-7f3a9c"}}),
    ]


def test_tokens_ids_in_paths_and_json_bodies_are_chained() -> None:
    found = detect(login_flow())
    assert found["0002-t"] == (Chain("0001-t", "body.token", TOKEN, ("header.Authorization",)),)
    assert found["0004-t"] == (Chain("0003-t", "body.id", "note-7f3a9c", ("target",)),)
    assert found["0005-t"] == (Chain("0003-t", "body.id", "note-7f3a9c", ("body.ref.id",)),)
    assert "0001-t" not in found and "0003-t" not in found


def test_values_the_client_sent_first_or_echoed_are_not_chains() -> None:
    tests = [
        recorded(1, "GET", "/a?q=constant-value", answer={"echo": "constant-value"}),
        recorded(2, "POST", "/b", {"name": "widget-9"}, answer={"name": "widget-9"}),
        recorded(3, "GET", "/c?q=constant-value&n=widget-9"),
    ]
    assert detect(tests) == {}


def test_short_values_are_not_chained() -> None:
    tests = [recorded(1, "GET", "/a", answer={"status": "ok"}), recorded(2, "GET", "/x/ok")]
    assert detect(tests) == {}


def test_cookies_and_headers_are_sources() -> None:
    tests = [
        recorded(1, "POST", "/login", answer_headers=(("Set-Cookie", "sid=s3cr3tsess; Path=/"),)),
        recorded(2, "GET", "/me", headers=(("Cookie", "sid=s3cr3tsess"),)),
    ]
    found = detect(tests)
    assert found["0002-t"] == (Chain("0001-t", "cookie.sid", "s3cr3tsess", ("header.Cookie",)),)


def test_substitute_takes_the_live_value() -> None:
    tests = login_flow()
    found = detect(tests)
    live_login = HttpResponse(200, "OK", JSON, json.dumps({"token": "NEW-token-999"}).encode())
    live_note = HttpResponse(201, "OK", JSON, json.dumps({"id": "note/ü 1"}).encode())
    live = {"0001-t": live_login, "0003-t": live_note}
    req, notes = substitute(tests[1].request, found["0002-t"], live)
    assert notes == []
    assert dict(req.headers)["Authorization"] == "Bearer NEW-token-999"
    req, _ = substitute(tests[3].request, found["0004-t"], live)
    assert req.target == "/notes/note%2F%C3%BC%201?x=1"
    req, _ = substitute(tests[4].request, found["0005-t"], live)
    assert json.loads(req.body) == {"ref": {"id": "note/ü 1"}}  # type: ignore[arg-type]


def test_unfollowable_chains_are_reported() -> None:
    tests = login_flow()
    chains = detect(tests)["0002-t"]
    req, notes = substitute(tests[1].request, chains, {"0001-t": None})
    assert req == tests[1].request
    assert notes and "no live answer" in notes[0]
    empty = HttpResponse(200, "OK", JSON, b"{}")
    _, notes = substitute(tests[1].request, chains, {"0001-t": empty})
    assert "not in the live answer" in notes[0]


def test_value_at_reads_paths_cookies_and_headers() -> None:
    resp = HttpResponse(
        200,
        "OK",
        (("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "sid=xyz"), ("Location", "/next")),
        json.dumps({"items": [{"id": "i1"}, {"id": "i2"}]}).encode(),
    )
    assert value_at(resp, "body.items[1].id") == "i2"
    assert value_at(resp, "cookie.sid") == "xyz"
    assert value_at(resp, "header.Location") == "/next"
    assert value_at(resp, "body.missing") is None


# -- detection at scale: the index finds exactly what a search of every value finds ------------


def detect_by_every_value(tests: Sequence[TestCase]) -> dict[str, tuple[Chain, ...]]:
    """The definition of ``detect``, written the slow way: every value handed out so far is
    searched for in every later request."""
    latest: dict[str, tuple[str, str]] = {}
    sent_before: set[str] = set()
    found_chains: dict[str, tuple[Chain, ...]] = {}
    for test in tests:
        found = [
            Chain(source=source, path=path, value=value, targets=tuple(where))
            for value, (source, path) in latest.items()
            if (where := uses(test.request, value))
        ]
        if found:
            found_chains[test.id] = tuple(found)
        own = chains_module._Searched.of(test.request).strings()
        sent_before.update(own)
        if test.response is None:
            continue
        for path, value in sources(test.response):
            if value in sent_before or any(value in s for s in own):
                continue
            latest[value] = (test.id, path)
    return found_chains


# Few letters, so that values often contain, extend or repeat one another; "/", " " and "%" make
# percent-encoded forms differ from the values.
_piece = st.text(alphabet="ab/ %9", min_size=1, max_size=4)
_value = st.lists(_piece, min_size=1, max_size=4).map("".join)


@st.composite
def _sets(draw: st.DrawFn) -> list[TestCase]:
    tests = []
    handed_out: list[str] = []
    for n in range(draw(st.integers(1, 14))):
        # A request carries values some response handed out (whole, or as part of a longer
        # string), and new ones.
        earlier = st.sampled_from(handed_out) if handed_out else _value
        carried = draw(
            st.lists(
                st.one_of(_value, earlier, st.tuples(_piece, earlier, _piece).map("".join)),
                max_size=4,
            )
        )
        where = draw(st.sampled_from(["target", "header", "json", "text"]))
        target = "/r"
        if where == "target":
            target += "/" + "/".join(quote_part(v, draw(st.booleans())) for v in carried)
        headers: tuple[tuple[str, str], ...] = ()
        body: bytes = b""
        if where == "header":
            headers = (("X-Ref", "Bearer " + " ".join(carried)),)
        elif where == "json":
            body = json.dumps({"refs": carried}).encode()
            headers = JSON
        elif where == "text":
            body = "&".join(f"v={quote_part(v, draw(st.booleans()))}" for v in carried).encode()
        handed = draw(st.lists(st.one_of(_value, earlier), max_size=12))
        handed_out.extend(handed)
        answer = json.dumps({"items": handed}).encode()
        cookie = draw(st.one_of(st.none(), st.from_regex(r"[a-z0-9]{6,9}", fullmatch=True)))
        answer_headers = JSON + ((("Set-Cookie", f"sid={cookie}"),) if cookie else ())
        req = HttpRequest("POST" if body else "GET", target, headers, body)
        resp = HttpResponse(200, "OK", answer_headers, answer)
        tests.append(TestCase(id=f"{n:04d}-t", request=req, response=resp))
    return tests


def quote_part(value: str, encode: bool) -> str:
    return quote(value, safe="") if encode else value


@pytest.mark.parametrize("direct_below", [0, 10**9], ids=["index", "direct"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tests=_sets())
def test_detect_finds_what_searching_every_value_finds(
    tests: list[TestCase], direct_below: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chains_module, "_DIRECT_SEARCH", direct_below)
        assert detect(tests) == detect_by_every_value(tests)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tests=_sets(), horizon=st.integers(1, 6))
def test_a_bounded_detector_finds_every_chain_within_its_horizon(
    tests: list[TestCase], horizon: int
) -> None:
    """What a detector remembers lives in two generations of ``horizon`` tests: every chain
    whose source is at most ``horizon`` tests before its use is still found, as is."""
    at = {test.id: n for n, test in enumerate(tests)}
    unbounded = detect(tests)
    detector = Detector(horizon=horizon)
    for test in tests:
        bounded = set(detector.add(test))
        near = {c for c in unbounded.get(test.id, ()) if at[test.id] - at[c.source] <= horizon}
        assert near <= bounded, (test.id, near - bounded)


def orders(count: int, start: int = 0) -> list[TestCase]:
    """``count`` orders, each answered with a new id that nothing uses."""
    return [
        recorded(n, "POST", "/orders", {"sku": "sku-1"}, answer={"id": f"ord-{n:08d}"})
        for n in range(start, start + count)
    ]


def test_a_token_in_use_is_remembered_past_any_horizon() -> None:
    detector = Detector(horizon=10)
    assert detector.add(recorded(0, "POST", "/login", answer={"token": TOKEN})) == ()
    auth = (("Authorization", f"Bearer {TOKEN}"),)
    for n in range(1, 200):  # twenty horizons, each test using the token and making an order
        test = recorded(n, "POST", "/orders", {"n": n}, headers=auth, answer={"id": f"o-{n:06d}"})
        assert detector.add(test) == (
            Chain("0000-t", "body.token", TOKEN, ("header.Authorization",)),
        ), n


def test_a_value_left_unused_past_two_horizons_is_forgotten() -> None:
    horizon = 50
    source = recorded(0, "POST", "/orders", answer={"id": "ord-first-one"})
    use = recorded(10_000, "GET", "/orders/ord-first-one")
    chain = (Chain("0000-t", "body.id", "ord-first-one", ("target",)),)
    # Used after one horizon: still there (it moved to the older generation).
    detector = Detector(horizon=horizon)
    for test in [source, *orders(horizon + 10, start=1)]:
        detector.add(test)
    assert detector.add(use) == chain
    # Used after two: forgotten, and so is everything else of that time.
    detector = Detector(horizon=horizon)
    for test in [source, *orders(2 * horizon, start=1)]:
        detector.add(test)
    assert detector.add(use) == ()
    # An unbounded detection still finds it.
    assert detect([source, *orders(2 * horizon, start=1), use])["10000-t"] == chain


def test_a_detector_holds_at_most_two_horizons_of_values() -> None:
    detector = Detector(horizon=100)
    for n, test in enumerate(orders(1_000)):
        detector.add(test)
        count = n + 1
        assert detector.remembered == (count if count <= 100 else 100 + count % 100)
    with pytest.raises(ValueError):
        Detector(horizon=0)


def test_a_request_is_searched_only_for_values_it_contains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3,000 orders, each answered with a new id that no later request uses: no value is ever
    searched for in a request. (Searching every value handed out so far in every request took
    time in the square of the set's size: minutes at a few thousand tests.)"""
    searched: list[str] = []
    where = chains_module._Searched.where

    def counting(self: chains_module._Searched, value: str, forms: tuple[str, ...]) -> list[str]:
        searched.append(value)
        return where(self, value, forms)

    monkeypatch.setattr(chains_module._Searched, "where", counting)
    tests = [
        recorded(n, "POST", "/orders", {"sku": f"sku-{n % 7}"}, answer={"id": f"ord-{n:08d}"})
        for n in range(3000)
    ]
    tests.append(recorded(3000, "GET", "/orders/ord-00002999"))
    found = detect(tests)
    assert found == {"3000-t": (Chain("2999-t", "body.id", "ord-00002999", ("target",)),)}
    assert searched == ["ord-00002999"]


def test_values_with_a_common_prefix_spread_over_the_index() -> None:
    """Ids share their prefix and timestamps their date: each value is indexed by a window few
    others share, so finding one costs a few checks, not one per id handed out so far."""
    seen = chains_module._Sources()
    for n in range(3000):
        seen.add(f"ord-{n:08d}", "t", "body.id")
        seen.add(f"2026-11-21T10:{n // 60 % 60:02d}:{n % 60:02d}Z", "t", "body.created")
    assert max(len(bucket) for bucket in seen._by_window.values()) <= 8
    assert seen.found_in({"/api/orders/ord-00002999?x=1"}) == ["ord-00002999"]


# -- hostile input: detection takes whatever a recording holds -----------------------------------

_any_text = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates too
_json_text = st.recursive(
    st.one_of(_any_text, st.integers(), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_any_text, inner, max_size=3)
    ),
    max_leaves=8,
).map(lambda v: json.dumps(v, ensure_ascii=True))  # lone surrogates travel as \ud800 escapes


@st.composite
def _hostile(draw: st.DrawFn) -> TestCase:
    def body() -> bytes:
        return draw(st.one_of(st.binary(max_size=40), _json_text.map(str.encode)))

    def headers() -> tuple[tuple[str, str], ...]:
        names = st.one_of(_any_text, st.sampled_from(["Set-Cookie", "X-Auth-Token", "Location"]))
        return tuple(draw(st.lists(st.tuples(names, _any_text), max_size=3)))

    req = HttpRequest("POST", draw(_any_text), headers(), body())
    resp = HttpResponse(200, "OK", headers(), body())
    return TestCase(id=f"{draw(st.integers(1, 9999)):04d}-t", request=req, response=resp)


@settings(max_examples=300, deadline=None)
@given(tests=st.lists(_hostile(), max_size=6), repeat=st.booleans())
def test_detection_and_substitution_take_any_recording(tests: list[TestCase], repeat: bool) -> None:
    if repeat and tests:  # values handed out come back in later requests
        tests = tests + [
            TestCase(
                id="9999-again",
                request=HttpRequest("GET", "/x/" + t.response.body.decode("utf-8", "replace"), ()),
                response=None,
            )
            for t in tests
            if t.response is not None and isinstance(t.response.body, bytes)
        ]
    found = detect(tests)
    live = {t.id: t.response for t in tests}
    for test in tests:
        substitute(test.request, found.get(test.id, ()), live)


def test_a_value_no_url_can_carry_is_still_chained_where_it_travels() -> None:
    """JSON may escape a lone surrogate, which has no UTF-8 form to percent-encode."""
    odd = "\ud800abcdef"
    tests = [
        TestCase(
            id="0001-t",
            request=HttpRequest("GET", "/a", ()),
            response=HttpResponse(200, "OK", JSON, b'{"id": "\\ud800abcdef"}'),
        ),
        recorded(2, "POST", "/b", {"ref": odd}),
    ]
    found = detect(tests)
    assert found["0002-t"] == (Chain("0001-t", "body.id", odd, ("body.ref",)),)
    live = HttpResponse(200, "OK", JSON, b'{"id": "\\udfffxyz123"}')
    req, notes = substitute(tests[1].request, found["0002-t"], {"0001-t": live})
    assert notes == [] and json.loads(req.body) == {"ref": "\udfffxyz123"}  # type: ignore[arg-type]


def test_a_new_value_that_holds_the_old_one_is_put_in_once() -> None:
    old, new = "ab cd12", "xab cd12y"  # the new value contains the old one, raw and encoded
    chains = (Chain("0001-t", "body.id", old, ("target", "body")),)
    live = {"0001-t": HttpResponse(200, "OK", JSON, json.dumps({"id": new}).encode())}
    req = HttpRequest("POST", "/o/ab%20cd12?q=ab cd12", (), b"ref=ab%20cd12&raw=ab cd12")
    got, _ = substitute(req, chains, live)
    assert got.target == "/o/xab%20cd12y?q=xab%20cd12y"
    assert got.body == b"ref=xab%20cd12y&raw=xab cd12y"


def test_a_json_body_that_escapes_unicode_gets_the_new_value_escaped_too() -> None:
    chains = (Chain("0001-t", "body.token", "tök-123456", ("body.t",)),)
    live = {"0001-t": HttpResponse(200, "OK", JSON, json.dumps({"token": "neü-654321"}).encode())}
    req = HttpRequest("POST", "/p", JSON, json.dumps({"t": "tök-123456", "n": 1}).encode())
    assert b"\\u00f6" in req.body  # type: ignore[operator]
    got, _ = substitute(req, chains, live)
    assert got.body == json.dumps({"t": "neü-654321", "n": 1}).encode()
