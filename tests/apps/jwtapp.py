"""An app whose answers depend on its clock: it issues short-lived JWTs and checks them.

Run: python tests/apps/jwtapp.py --port N

Routes (Starlette on uvicorn, so an asyncio event loop serves every request):
- GET  /healthz  {"ok": true}
- POST /login    {"user": NAME} -> {"jwt": <HS256 JWT>, "expires_in": 300}; the token's ``iat``
                 is this process's clock (``time.time()``) and its ``exp`` is 5 minutes later
- GET  /me       ``Authorization: Bearer <token>`` -> {"user": <the token's sub>}; 401 with
                 {"error": ...} when the token is missing, badly signed, expired (``exp`` is not
                 after the clock) or issued in the future (``iat`` more than 30 s after the clock)

Every request prints one line to stdout, ``jwtapp: <METHOD> <path> clock=<epoch> status=<N>``,
where ``clock`` is what ``time.time()`` said while the request was handled, so a test can read
the clock the app ran with from its log. Environment: JWT_SECRET (the signing key).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

SECRET = os.environ.get("JWT_SECRET", "jwtapp-signing-key").encode()
LIFETIME = 300
LEEWAY = 30


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str) -> str:
    return _b64(hmac.new(SECRET, signing_input.encode("ascii"), hashlib.sha256).digest())


def issue(user: str, now: float) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"sub": user, "iat": int(now), "exp": int(now) + LIFETIME}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{header}.{payload}.{_sign(f'{header}.{payload}')}"


def check(token: str, now: float) -> tuple[dict[str, Any] | None, str]:
    """The token's claims, or None and why it is refused."""
    try:
        header, payload, signature = token.split(".")
    except ValueError:
        return None, "malformed token"
    if not hmac.compare_digest(signature, _sign(f"{header}.{payload}")):
        return None, "bad signature"
    try:
        claims = json.loads(_unb64(payload))
        exp, iat = float(claims["exp"]), float(claims["iat"])
    except (ValueError, KeyError, TypeError):
        return None, "malformed claims"
    if exp <= now:
        return None, "token expired"
    if iat > now + LEEWAY:
        return None, "token issued in the future"
    return claims, ""


def _answer(request: Request, status: int, body: dict[str, Any], now: float) -> JSONResponse:
    print(
        f"jwtapp: {request.method} {request.url.path} clock={now:.6f} status={status}", flush=True
    )
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def login(request: Request) -> JSONResponse:
    data = await request.json()
    now = time.time()
    user = str(data.get("user", ""))
    if not user:
        return _answer(request, 400, {"error": "user missing"}, now)
    body = {"jwt": issue(user, now), "expires_in": LIFETIME}
    return _answer(request, 200, body, now)


async def me(request: Request) -> JSONResponse:
    # A short timer on the event loop: a replay whose clock broke the loop's timers hangs here.
    await asyncio.sleep(0.01)
    now = time.time()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _answer(request, 401, {"error": "bearer token missing"}, now)
    claims, problem = check(token.strip(), now)
    if claims is None:
        return _answer(request, 401, {"error": problem}, now)
    return _answer(request, 200, {"user": claims["sub"]}, now)


app = Starlette(
    routes=[
        Route("/healthz", healthz),
        Route("/login", login, methods=["POST"]),
        Route("/me", me),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
