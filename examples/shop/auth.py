"""Sign-in with short-lived JWTs (HS256), made and checked with the standard library.

``POST /api/login`` with a known user and password answers a token valid for ``TOKEN_SECONDS``;
order endpoints need ``Authorization: Bearer <token>`` when the shop runs with a JWT secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

TOKEN_SECONDS = 15 * 60
USERS = {"demo": "demo-password"}  # the example's one account


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: str, user: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": user,
        "iss": "example-shop",
        "iat": issued,
        "exp": issued + TOKEN_SECONDS,
        "jti": str(uuid.uuid4()),
    }
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64(mac)}"


class InvalidToken(Exception):
    pass


def verify(secret: str, token: str, now: float | None = None) -> dict[str, Any]:
    try:
        head, body, sig = token.split(".")
        expected = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(sig)):
            raise InvalidToken("bad signature")
        claims: dict[str, Any] = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError) as exc:
        raise InvalidToken("malformed token") from exc
    if claims.get("exp", 0) < (time.time() if now is None else now):
        raise InvalidToken("token expired")
    return claims


def check_password(user: str, password: str) -> bool:
    known = USERS.get(user)
    return known is not None and hmac.compare_digest(known, password)
