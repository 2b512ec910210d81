"""HTTP request noise: rules and typed values in the match keys of outgoing calls."""

from __future__ import annotations

import json

import pytest

from wiretape.match.index import MockIndex
from wiretape.match.request_noise import HttpRules, check_request_path, keys_of
from wiretape.model import HttpRequest, HttpResponse, Miss, Mock

JSON = (("Content-Type", "application/json"),)


def post(body: object, target: str = "/items") -> HttpRequest:
    return HttpRequest("POST", target, JSON, json.dumps(body).encode())


def mock(mock_id: str, req: HttpRequest) -> Mock:
    return Mock(mock_id, "up", "http", req, HttpResponse(200, "OK", ()), "t")


def test_rules_hide_body_paths_and_query_parameters() -> None:
    rules = HttpRules.of(("body.nonce", "body.items[*].n", "query.ts"))
    a = post({"nonce": 1, "items": [{"n": 1, "k": "x"}], "name": "w"}, "/items?ts=1&a=b")
    b = post({"nonce": 2, "items": [{"n": 9, "k": "x"}], "name": "w"}, "/items?ts=2&a=b")
    c = post({"nonce": 2, "items": [{"n": 9, "k": "y"}], "name": "w"}, "/items?ts=2&a=b")
    assert keys_of("up", a, rules)[0] == keys_of("up", b, rules)[0]
    assert keys_of("up", a, rules)[0] != keys_of("up", c, rules)[0]
    assert keys_of("up", a, None)[0] != keys_of("up", b, None)[0]


def test_typed_values_give_a_loose_key_only_when_present() -> None:
    plain = post({"name": "w"})
    assert keys_of("up", plain, None)[1] is None
    one = post({"id": "0b5f5c2e-8f0a-4e55-9d5e-1f6f1a2b3c4d", "at": "2025-01-01T10:00:00Z"})
    two = post({"id": "3f2a9d1e-6b7c-4e8f-a1b2-c3d4e5f6a7b8", "at": "2026-11-21T09:30:00Z"})
    assert keys_of("up", one, None)[0] != keys_of("up", two, None)[0]
    assert keys_of("up", one, None)[1] == keys_of("up", two, None)[1] is not None


def test_the_index_uses_rules_and_falls_back_to_typed_values() -> None:
    recorded = post({"id": "0b5f5c2e-8f0a-4e55-9d5e-1f6f1a2b3c4d", "nonce": 5}, "/items?ts=7")
    index = MockIndex([], {"t": [mock("m", recorded)]}, http_noise={"up": ("body.nonce",)})
    index.begin_test("t")
    live = post({"id": "3f2a9d1e-6b7c-4e8f-a1b2-c3d4e5f6a7b8", "nonce": 6}, "/items?ts=7")
    assert index.lookup("up", live).id == "m"  # type: ignore[union-attr]
    index.begin_test("t")
    other_query = post({"id": "3f2a9d1e-6b7c-4e8f-a1b2-c3d4e5f6a7b8", "nonce": 6}, "/items?ts=8")
    assert isinstance(index.lookup("up", other_query), Miss)


@pytest.mark.parametrize("text", ["header.X", "status", "query.", "body[", "items"])
def test_bad_request_noise_paths(text: str) -> None:
    with pytest.raises(ValueError):
        check_request_path(text)
