"""Typed value comparison: volatile values of a recognised kind match any value of that kind.

A recorded value and a live one that differ are still equal when both are, in the same format:
- timestamps: ISO 8601 (any precision and offset, same layout) or RFC 1123 (HTTP dates);
- epoch seconds or milliseconds: integers of the same magnitude, the recorded one within a day of
  the recording and the live one within a day of now;
- UUIDs of the same version and letter case;
- JWTs with the same header and the same claims, ignoring ``iat``, ``exp``, ``nbf`` and ``jti``
  (signatures are not compared).
- Opaque tokens and cursors (``opaque_kind``): at least 16 characters of one token alphabet
  (hex, base64url, base64) mixing letters and digits match a live value of the same alphabet and
  length. Hashes qualify too, so a changed digest is not reported unless ``--strict-values``.
``wiretape test --strict-values`` turns this off.

Redacted credentials are compared by presence whatever the options: a recorded string holding
``wiretape:secret:N`` placeholders matches a live string that has some non-empty text where each
placeholder is and the same text around them (``matches_redacted``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import json
import re

from wiretape.model import SECRET_PREFIX

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-([0-9a-fA-F])[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?")
_RFC1123 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_DIGIT = re.compile(r"\d")
_PLACEHOLDER = re.compile(re.escape(SECRET_PREFIX) + r"[0-9]+")
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
    opaque = opaque_kind(expected)
    if opaque is not None:
        return opaque_kind(actual) == opaque
    return False


_OPAQUE = re.compile(r"[A-Za-z0-9_\-+/=~]{16,512}")
_HEX_LOWER = frozenset("0123456789abcdef")
_HEX_UPPER = frozenset("0123456789ABCDEF")
_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def opaque_kind(text: str) -> str | None:
    """``hex:32``, ``base64url:43``...: the alphabet and length of an opaque token or cursor.

    An opaque token is at least 16 characters of one token alphabet with at least 8 distinct
    characters: hex with at least 4 digits and 2 letters, or any other alphabet mixing upper
    case, lower case and digits. Random session tokens, cursors, API ids and hashes qualify;
    words, numbers and identifiers made of words (``utf8mb4_general_ci``) do not.
    """
    if not _OPAQUE.fullmatch(text):
        return None
    chars = set(text)
    digits = sum(c.isdigit() for c in text)
    if len(chars) < 8 or not digits:
        return None
    if chars <= _HEX_LOWER or chars <= _HEX_UPPER:
        # Hex: enough of both digits and letters that it is not a number or a word.
        if digits < 4 or len(text) - digits < 2:
            return None
        return f"{'hex' if chars <= _HEX_LOWER else 'HEX'}:{len(text)}"
    # Other alphabets: random tokens mix upper case, lower case and digits; identifiers made of
    # words (utf8mb4_general_ci, order_2024_total) do not.
    if not (any(c.isupper() for c in text) and any(c.islower() for c in text)):
        return None
    alphabet = "base64url" if chars <= _BASE64URL else "base64"
    return f"{alphabet}:{len(text)}"


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


def matches_redacted(expected: str, actual: str) -> bool:
    """Whether ``actual`` is ``expected`` with each placeholder standing for non-empty text."""
    pieces = _PLACEHOLDER.split(expected)
    if len(pieces) == 1:
        return False
    first, *middle, last = pieces
    if not actual.startswith(first) or not actual.endswith(last):
        return False
    pos, stop = len(first), len(actual) - len(last)
    for piece in middle:
        # The earliest fit leaves the most room for the pieces after it.
        found = actual.find(piece, pos + 1, stop)
        if found < 0:
            return False
        pos = found + len(piece)
    return stop > pos


def kind_token(text: str) -> str | None:
    """A token naming the kind and format of a typed value, or None for any other string.

    Two values have the same token exactly when ``same_string_kind`` would accept one for the
    other, so a matcher can use the token in place of the value (app-generated UUIDs and
    timestamps sent to a database, for example).
    """
    m = _UUID.fullmatch(text)
    if m:
        upper, lower = text != text.lower(), text != text.upper()
        case = "mixed" if upper and lower else "upper" if upper else "lower"
        return f"uuid-v{m.group(1)}-{case}"
    if _is_iso(text):
        return f"time:{_shape(text)}"
    if _is_rfc1123(text):
        return "time:rfc1123"
    jwt = _jwt_parts(text)
    if jwt is not None:
        return "jwt:" + json.dumps(jwt, sort_keys=True, default=str)
    opaque = opaque_kind(text)
    if opaque is not None:
        return "token:" + opaque
    return None
