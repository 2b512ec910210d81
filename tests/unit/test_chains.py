"""Chained values: detection in a recorded set, and substitution from live answers."""

from __future__ import annotations

import json

from wiretape.chains import detect, substitute, value_at
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
