"""The mutation table: every kind of real change to a recorded response is caught, with a diff
that names the path, under the default (typed) comparison that replays use; and order rules."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from wiretape.compare.diff import compare_responses
from wiretape.model import HttpResponse

RECORDED_AT = 1_763_700_000.0
BODY: dict[str, Any] = {
    "id": "ord_000002",
    "status": "pending_payment",
    "total_cents": 3800,
    "currency": "EUR",
    "charge_id": "ch_3NkQ2mKxLp9Rt7Vb",
    "created_at": "2025-11-21T09:20:00.123Z",
    "items": [
        {"product_id": "prd_espresso", "quantity": 2, "unit_price_cents": 1900},
        {"product_id": "prd_mug", "quantity": 1, "unit_price_cents": 0},
    ],
}
HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))


def response(
    body: object, headers: tuple[tuple[str, str], ...] = HEADERS, status: int = 201
) -> HttpResponse:
    return HttpResponse(status, "Created", headers, json.dumps(body).encode())


def rename_field(b: dict[str, Any]) -> None:
    b["total"] = b.pop("total_cents")


def change_status_field(b: dict[str, Any]) -> None:
    b["status"] = "paid"


def reorder_list(b: dict[str, Any]) -> None:
    b["items"].reverse()


def change_computed_value(b: dict[str, Any]) -> None:
    b["items"][0]["unit_price_cents"] = 1899


def add_field(b: dict[str, Any]) -> None:
    b["discount_cents"] = 0


def drop_nested_field(b: dict[str, Any]) -> None:
    del b["items"][1]["quantity"]


def change_type(b: dict[str, Any]) -> None:
    b["total_cents"] = "3800"


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None] | None, dict[str, Any], set[str]]] = [
    ("rename a field", rename_field, {}, {"body.total_cents", "body.total"}),
    ("change a status field", change_status_field, {}, {"body.status"}),
    ("reorder a list", reorder_list, {}, {"body.items[0].product_id"}),
    ("change a computed value", change_computed_value, {}, {"body.items[0].unit_price_cents"}),
    ("add a field", add_field, {}, {"body.discount_cents"}),
    ("drop a nested field", drop_nested_field, {}, {"body.items[1].quantity"}),
    ("change a type", change_type, {}, {"body.total_cents"}),
    ("change the HTTP status", None, {"status": 200}, {"status"}),
    ("drop a header", None, {"headers": (HEADERS[0],)}, {"header.Cache-Control"}),
]


@pytest.mark.parametrize(
    ("name", "mutate", "other", "paths"), MUTATIONS, ids=[m[0] for m in MUTATIONS]
)
def test_every_mutation_is_caught_with_its_path(
    name: str,
    mutate: Callable[[dict[str, Any]], None] | None,
    other: dict[str, Any],
    paths: set[str],
) -> None:
    body = copy.deepcopy(BODY)
    if mutate is not None:
        mutate(body)
    live = response(body, other.get("headers", HEADERS), other.get("status", 201))
    diffs = compare_responses(response(BODY), live, typed_values=True, recorded_at=RECORDED_AT)
    found = {d.path for d in diffs}
    assert paths <= found, (name, found)


def test_the_unmutated_response_with_new_volatile_values_passes() -> None:
    body = copy.deepcopy(BODY)
    body["created_at"] = "2026-11-21T10:00:00.456Z"  # same kind and format
    body["charge_id"] = "ch_9ZyX8wVu7TsR6qPo"  # an opaque token of the same shape
    diffs = compare_responses(response(BODY), response(body), typed_values=True)
    assert diffs == []


def test_unordered_rule_accepts_any_order_but_not_a_changed_element() -> None:
    reordered = copy.deepcopy(BODY)
    reordered["items"].reverse()
    rules = ["unordered(body.items)"]
    assert compare_responses(response(BODY), response(reordered), noise=rules) == []
    changed = copy.deepcopy(reordered)
    changed["items"][1]["quantity"] = 3  # the espresso line, now second
    diffs = compare_responses(response(BODY), response(changed), noise=rules)
    assert [d.path for d in diffs] == ["body.items[0].quantity"]
    shorter = copy.deepcopy(BODY)
    shorter["items"].pop(0)
    diffs = compare_responses(response(BODY), response(shorter), noise=rules)
    assert [(d.path, d.kind) for d in diffs] == [("body.items[0]", "missing")]


def test_unordered_rules_reach_nested_arrays_with_wildcards() -> None:
    recorded = {"groups": [{"tags": ["a", "b", "c"]}, {"tags": ["x", "y"]}]}
    live = {"groups": [{"tags": ["c", "a", "b"]}, {"tags": ["y", "x"]}]}
    assert compare_responses(response(recorded), response(live)) != []
    rules = ["unordered(body.groups[*].tags)"]
    assert compare_responses(response(recorded), response(live), noise=rules) == []
