"""Typed value comparison: volatile kinds match their own kind and format, nothing else."""

from __future__ import annotations

import base64
import json

import pytest

from wiretape.compare.diff import compare_responses
from wiretape.compare.values import opaque_kind, same_epoch, same_string_kind, typed_equal
from wiretape.model import HttpResponse

NOW = 1_800_000_000.0
RECORDED = 1_790_000_000.0


def jwt(header: dict[str, object], claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        raw = json.dumps(obj).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        ("2026-11-21T07:15:37.447Z", "2027-01-02T10:00:00.001Z", True),
        ("2026-11-21T07:15:37Z", "2027-01-02T10:00:00.001Z", False),  # another layout
        ("2026-11-21T07:15:37+01:00", "2026-11-21T07:15:37+00:00", True),
        ("2026-11-21", "2026-11-22", True),
        ("2026-11-21", "not a date", False),
        ("2026-13-45", "2026-11-22", False),  # not a real date: not a timestamp
        ("Sat, 21 Nov 2026 07:15:36 GMT", "Sun, 22 Nov 2026 08:00:00 GMT", True),
        ("3f0e6b8a-9f7c-4c8e-8f2a-1b2c3d4e5f60", "aa0e6b8a-0000-4000-8000-000000000000", True),
        ("3f0e6b8a-9f7c-4c8e-8f2a-1b2c3d4e5f60", "aa0e6b8a-0000-1000-8000-000000000000", False),
        ("3f0e6b8a-9f7c-4c8e-8f2a-1b2c3d4e5f60", "AA0E6B8A-0000-4000-8000-000000000000", False),
        ("paid", "pending", False),
        ("ord_000001", "ord_000002", False),
    ],
)
def test_string_kinds(expected: str, actual: str, equal: bool) -> None:
    assert same_string_kind(expected, actual) is equal


def test_jwts_compare_header_and_stable_claims_only() -> None:
    header = {"alg": "HS256", "typ": "JWT"}
    recorded = jwt(header, {"sub": "u1", "role": "admin", "iat": 1, "exp": 2, "jti": "a"})
    later = jwt(header, {"sub": "u1", "role": "admin", "iat": 9, "exp": 99, "jti": "b"})
    other_user = jwt(header, {"sub": "u2", "role": "admin", "iat": 9, "exp": 99})
    other_alg = jwt({"alg": "RS256", "typ": "JWT"}, {"sub": "u1", "role": "admin"})
    assert same_string_kind(recorded, later)
    assert not same_string_kind(recorded, other_user)
    assert not same_string_kind(recorded, other_alg)


def test_epoch_times_must_be_near_their_own_clock() -> None:
    assert same_epoch(int(RECORDED), int(NOW) + 5, RECORDED, NOW)
    assert same_epoch(int(RECORDED * 1000), int(NOW * 1000), RECORDED, NOW)
    assert not same_epoch(int(RECORDED), int(NOW * 1000), RECORDED, NOW)  # seconds vs ms
    assert not same_epoch(42, 43, RECORDED, NOW)
    assert not typed_equal(1, 2, None, NOW)
    assert not typed_equal(True, False, RECORDED, NOW)


def _resp(body: dict[str, object]) -> HttpResponse:
    return HttpResponse(
        200, "OK", (("Content-Type", "application/json"),), json.dumps(body).encode()
    )


def test_compare_responses_uses_typed_values_only_when_asked() -> None:
    expected = _resp({"at": "2026-11-21T07:15:37.447Z", "total": 10})
    actual = _resp({"at": "2027-01-01T00:00:00.000Z", "total": 10})
    assert compare_responses(expected, actual, typed_values=True, now=NOW) == []
    assert [d.path for d in compare_responses(expected, actual)] == ["body.at"]
    changed = _resp({"at": "2027-01-01T00:00:00.000Z", "total": 11})
    diffs = compare_responses(expected, changed, typed_values=True, now=NOW)
    assert [d.path for d in diffs] == ["body.total"]


@pytest.mark.parametrize(
    ("recorded", "live", "same"),
    [
        ("3709b415a0f6f52c312c", "214fe33d0b42c82a4464", True),  # hex cursors
        ("3709b415a0f6f52c312c", "214fe33d0b42c82a44641", False),  # another length
        ("3709b415a0f6f52c312c", "3709B415A0F6F52C312C", False),  # another alphabet
        ("kJ8_x2mQpL0-zR7tYb4wNc", "Qw3-Er5_Ty7Ui9Op1As2Df", True),  # base64url
        ("pending_payment_status", "completed_payment_done", False),  # words, no digits
        ("aaaaaaaa11111111", "bbbbbbbb22222222", False),  # too few distinct characters
        ("utf8mb4_general_ci", "utf8mb4_unicode_ci", False),  # an identifier made of words
    ],
)
def test_opaque_tokens_match_by_alphabet_and_length(recorded: str, live: str, same: bool) -> None:
    assert same_string_kind(recorded, live) is same


def test_opaque_kinds_name_alphabet_and_length() -> None:
    assert opaque_kind("3709b415a0f6f52c312c") == "hex:20"
    assert opaque_kind("short1a") is None
    assert opaque_kind("with spaces 1234567890") is None
