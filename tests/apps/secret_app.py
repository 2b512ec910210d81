"""The app under test in the secret-redaction tests: it passes credentials around.

Run: python tests/apps/secret_app.py --port N

Environment:
- UPSTREAM_URL   base URL of tests/apps/secret_upstream.py (a named dependency)
- CLIENT_SECRET  sent in the form body of POST /oauth/token
- STRIPE_KEY     sent in the JSON body of POST /v1/charges and as ?api_key= of GET /v1/account
- DB_PASSWORD    shown by GET /config
- USER_PASSWORD  the password POST /login accepts

Routes:
- GET  /healthz  {"ok": true}
- POST /login    JSON {"username", "password"}: 401 unless the password is USER_PASSWORD; then
                 POST /users/verify with both, and when the upstream says ok, POST /oauth/token
                 and answer {"user", "session_token": the access token, "token_type": "Bearer"}
                 (the token is kept for /charge)
- POST /charge   JSON {"amount"}: POST /v1/charges with the kept token and STRIPE_KEY; answers
                 201 {"charge": the upstream's answer}
- GET  /account  GET /v1/account?api_key=STRIPE_KEY; answers the upstream's text
- GET  /config   {"stripe_key": STRIPE_KEY, "db": {"host", "password": DB_PASSWORD},
                 "token_type": "static"}
An upstream failure answers 502 {"error", "upstream_status", "upstream_body"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx

UPSTREAM = os.environ.get("UPSTREAM_URL", "").rstrip("/")
CLIENT = httpx.Client(trust_env=False, timeout=10.0)
STATE: dict[str, str] = {}


class UpstreamFailed(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"upstream answered {response.status_code}")
        self.response = response


def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = CLIENT.request(method, UPSTREAM + path, **kwargs)
    if response.status_code >= 400:
        raise UpstreamFailed(response)
    return response


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "secret-app/1"

    def _send(self, status: int, payload: object, ctype: str = "application/json") -> None:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def do_GET(self) -> None:
        try:
            if self.path == "/healthz":
                self._send(200, {"ok": True})
            elif self.path == "/account":
                key = quote(os.environ["STRIPE_KEY"], safe="")
                self._send(200, call("GET", f"/v1/account?api_key={key}").text, "text/plain")
            elif self.path == "/config":
                self._send(
                    200,
                    {
                        "stripe_key": os.environ["STRIPE_KEY"],
                        "db": {"host": "db.internal", "password": os.environ["DB_PASSWORD"]},
                        "token_type": "static",
                    },
                )
            else:
                self._send(404, {"error": "not found"})
        except UpstreamFailed as exc:
            self._failed(exc)

    def do_POST(self) -> None:
        try:
            doc = self._json()
            if self.path == "/login":
                self._login(doc)
            elif self.path == "/charge":
                token = STATE.get("token", "")
                answer = call(
                    "POST",
                    "/v1/charges",
                    headers={"Authorization": f"Bearer {token}"} if token else {},
                    json={"amount": doc.get("amount"), "api_key": os.environ["STRIPE_KEY"]},
                ).json()
                self._send(201, {"charge": answer})
            else:
                self._send(404, {"error": "not found"})
        except UpstreamFailed as exc:
            self._failed(exc)

    def _login(self, doc: dict[str, Any]) -> None:
        user = doc.get("username")
        if doc.get("password") != os.environ["USER_PASSWORD"]:
            self._send(401, {"error": "bad credentials", "user": user})
            return
        verified = call(
            "POST", "/users/verify", json={"username": user, "password": doc.get("password")}
        ).json()
        if not verified.get("ok"):
            self._send(401, {"error": "bad credentials", "user": user})
            return
        grant = call(
            "POST",
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "shop",
                "client_secret": os.environ["CLIENT_SECRET"],
            },
        ).json()
        STATE["token"] = grant["access_token"]
        self._send(
            200, {"user": user, "session_token": grant["access_token"], "token_type": "Bearer"}
        )

    def _failed(self, exc: UpstreamFailed) -> None:
        self._send(
            502,
            {
                "error": str(exc),
                "upstream_status": exc.response.status_code,
                "upstream_body": exc.response.text,
            },
        )

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
