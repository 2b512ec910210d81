"""A dependency that deals in credentials, for the secret-redaction tests.

Run: python tests/apps/secret_upstream.py --port N --client-secret S --stripe-key K --password P

Routes (HTTP/1.1, keep-alive, every response has a Content-Length):
- POST /users/verify  JSON {"username", "password"}: {"ok": password == P, "username": ...}
- POST /oauth/token   form grant_type=client_credentials&client_id=..&client_secret=S: a new
                      {"access_token", "token_type": "Bearer", "expires_in", "refresh_token"};
                      401 with another secret
- POST /v1/charges    Authorization: Bearer <an issued access token>, JSON {"amount", "api_key": K}:
                      201 {"id", "amount", "client_secret", "livemode": false}; 401 otherwise
- GET  /v1/account    ?api_key=K: text/plain naming the key it was called with; 401 otherwise
- GET  /healthz       {"ok": true}
Each request is logged on one line to stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ARGS = argparse.Namespace()
_issued: set[str] = set()
_lock = threading.Lock()
_charges = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "secret-upstream/1"

    def _send(self, status: int, payload: object, ctype: str = "application/json") -> None:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._send(200, {"ok": True})
        elif url.path == "/v1/account":
            key = parse_qs(url.query).get("api_key", [""])[0]
            if key != ARGS.stripe_key:
                self._send(401, {"error": "bad api key"})
                return
            self._send(200, f"account acct_1 is reached with key {key}\n", "text/plain")
        else:
            self._send(404, {"error": f"no route {url.path}"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        data = self._body()
        if path == "/users/verify":
            doc = json.loads(data)
            ok = doc.get("password") == ARGS.password
            self._send(200, {"ok": ok, "username": doc.get("username")})
        elif path == "/oauth/token":
            form = parse_qs(data.decode())
            if form.get("client_secret", [""])[0] != ARGS.client_secret:
                self._send(401, {"error": "invalid_client"})
                return
            token = "at-" + secrets.token_hex(12)
            with _lock:
                _issued.add(token)
            self._send(
                200,
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": "rt-" + secrets.token_hex(12),
                },
            )
        elif path == "/v1/charges":
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            doc = json.loads(data)
            with _lock:
                known = token in _issued
            if scheme != "Bearer" or not known or doc.get("api_key") != ARGS.stripe_key:
                self._send(401, {"error": "unauthorized"})
                return
            charge = next(_charges)
            self._send(
                201,
                {
                    "id": f"ch_{charge}",
                    "amount": doc.get("amount"),
                    "client_secret": f"pi_{charge}_secret_{secrets.token_hex(8)}",
                    "livemode": False,
                },
            )
        else:
            self._send(404, {"error": f"no route {path}"})

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--stripe-key", required=True)
    parser.add_argument("--password", required=True)
    parser.parse_args(namespace=ARGS)
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
