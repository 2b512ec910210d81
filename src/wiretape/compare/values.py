"""Typed value comparison: volatile values of a recognised kind match any value of that kind.

A recorded value and a live one that differ are still equal when both are, in the same format:
- timestamps: ISO 8601 (any precision and offset, same layout) or RFC 1123 (HTTP dates);
- epoch seconds or milliseconds: integers of the same magnitude, the recorded one within a day of
  the recording and the live one within a day of now;
- UUIDs of the same version and letter case;
- JWTs with the same header and the same claims, ignoring ``iat``, ``exp``, ``nbf`` and ``jti``
  (signatures are not compared).
``wiretape test --strict-values`` turns this off.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import json
import re

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-([0-9a-fA-F])[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?")
_RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_DIGIT = re.compile(r"\d")
_VOLATILE_CLAIMS = frozenset({"iat", "exp", "nbf", "jti"})
DAY = 86400.0


def _shape(text: str) -> str:
    return _DIGIT.sub("d", text)


def _is_iso(text: str) -> bool:
    if not _ISO.fullmatch(text):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_rfc1123(text: str) -> bool:
    if not _RFC1123.fullmatch(text):
        return False
    try:
        email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return False
    return True


def _jwt_parts(text: str) -> tuple[object, object] | None:
    if not _JWT.fullmatch(text):
        return None
    try:
        header, payload = (
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in text.split(".")[:2]
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return header, payload
    return header, {k: v for k, v in payload.items() if k not in _VOLATILE_CLAIMS}


def same_string_kind(expected: str, actual: str) -> bool:
    m_exp = _UUID.fullmatch(expected)
    if m_exp:
        m_act = _UUID.fullmatch(actual)
        return bool(
            m_act
            and m_act.group(1) == m_exp.group(1)
            and (expected.islower() == actual.islower())
            and (expected.isupper() == actual.isupper())
        )
    if _is_iso(expected):
        return _shape(expected) == _shape(actual) and _is_iso(actual)
    if _is_rfc1123(expected):
        return _is_rfc1123(actual)
    jwt = _jwt_parts(expected)
    if jwt is not None:
        return _jwt_parts(actual) == jwt
    return False


def _epoch_scale(value: int, around: float) -> float | None:
    for scale in (1.0, 1000.0):
        if abs(value / scale - around) <= DAY:
            return scale
    return None


def same_epoch(expected: int, actual: int, recorded_at: float, now: float) -> bool:
    scale = _epoch_scale(expected, recorded_at)
    return scale is not None and scale == _epoch_scale(actual, now)


def typed_equal(expected: object, actual: object, recorded_at: float | None, now: float) -> bool:
    """Whether two differing JSON scalars are the same kind of volatile value."""
    if isinstance(expected, str) and isinstance(actual, str):
        return same_string_kind(expected, actual)
    if recorded_at is not None and type(expected) is int and type(actual) is int:
        return same_epoch(expected, actual, recorded_at, now)
    return False
