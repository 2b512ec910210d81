"""The app under test in the end-to-end tests: a JSON API that calls tests/apps/upstream.py.

Run: python tests/apps/caller.py --port N [--pidfile PATH]

Environment:
- UPSTREAM_URL    base URL of the upstream as a named dependency (plain HTTP)
- SECURE_URL      base URL of an HTTPS upstream, reached through HTTPS_PROXY when it is set
                  (the client trusts SSL_CERT_FILE and honours HTTP(S)_PROXY and NO_PROXY)
- CALLER_VARIANT  a "code change" to replay against: ``rename`` renames /twice's ``total`` to
                  ``sum``; ``status`` answers /twice with 202; ``skipcheck`` drops the check call
                  that /create makes after creating an item (its response stays the same)

Routes:
- GET  /healthz  {"ok": true}, no upstream call
- GET  /twice    GET UPSTREAM_URL/counter twice: {"first": a, "second": b, "total": a + b}
- GET  /secure   GET SECURE_URL/item/7: {"item": ...}
- GET  /now      {"now": <this process's clock>, "upstream_time": GET UPSTREAM_URL/time}
- POST /create   POST UPSTREAM_URL/items with the request's JSON, then GET UPSTREAM_URL/item/<id>
                 to check it exists: 201 {"created": <the upstream's answer>}
When an upstream call fails or answers with an error status the route answers 502 with
{"error", "upstream_status", "upstream_body", "miss"}, where ``miss`` is the upstream's
X-Wiretape-Miss header (or null), so a replay miss shows up in the app's response.
The query string is ignored for routing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

VARIANT = os.environ.get("CALLER_VARIANT", "")
UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "").rstrip("/")
SECURE_URL = os.environ.get("SECURE_URL", "").rstrip("/")

# trust_env: proxies from HTTP(S)_PROXY/NO_PROXY and the CA bundle from SSL_CERT_FILE.
CLIENT = httpx.Client(trust_env=True, timeout=10.0)


class UpstreamFailed(Exception):
    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.response = response


def call(method: str, url: str, **kwargs: Any) -> Any:
    """The JSON answer of one call; UpstreamFailed on a transport error or a status >= 400."""
    try:
        response = CLIENT.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise UpstreamFailed(f"{method} {url} failed: {exc!r}") from exc
    if response.status_code >= 400:
        raise UpstreamFailed(f"{method} {url} answered {response.status_code}", response)
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamFailed(f"{method} {url} answered non-JSON", response) from exc


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body are separate writes
    server_version = "caller/1"

    def _send(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> str:
        return self.path.split("?", 1)[0]

    def _failed(self, exc: UpstreamFailed) -> None:
        response = exc.response
        self._send(
            502,
            {
                "error": exc.message,
                "upstream_status": None if response is None else response.status_code,
                "upstream_body": None if response is None else response.text[:500],
                "miss": None if response is None else response.headers.get("X-Wiretape-Miss"),
            },
        )

    def do_GET(self) -> None:
        route = self._route()
        try:
            if route == "/healthz":
                self._send(200, {"ok": True})
            elif route == "/twice":
                self._twice()
            elif route == "/secure":
                self._send(200, {"item": call("GET", f"{SECURE_URL}/item/7")})
            elif route == "/now":
                upstream = call("GET", f"{UPSTREAM_URL}/time")
                now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
                self._send(200, {"now": now, "upstream_time": upstream.get("time")})
            else:
                self._send(404, {"error": f"no route for GET {route}"})
        except UpstreamFailed as exc:
            self._failed(exc)

    def _twice(self) -> None:
        first = call("GET", f"{UPSTREAM_URL}/counter")["n"]
        second = call("GET", f"{UPSTREAM_URL}/counter")["n"]
        payload: dict[str, object] = {"first": first, "second": second}
        payload["sum" if VARIANT == "rename" else "total"] = first + second
        self._send(202 if VARIANT == "status" else 200, payload)

    def do_POST(self) -> None:
        route = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if route != "/create":
            self._send(404, {"error": f"no route for POST {route}"})
            return
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        try:
            created = call("POST", f"{UPSTREAM_URL}/items", json=data)
            if VARIANT != "skipcheck":
                call("GET", f"{UPSTREAM_URL}/item/{created['id']}")
        except UpstreamFailed as exc:
            self._failed(exc)
            return
        self._send(201, {"created": created})

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write("caller: " + (format % args) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", type=Path, help="write this process's id here once listening")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    if args.pidfile is not None:
        args.pidfile.write_text(str(os.getpid()))
    print(
        f"caller: serving http://{args.host}:{args.port} (variant {VARIANT or 'none'!r}, "
        f"upstream {UPSTREAM_URL or '-'}, secure {SECURE_URL or '-'})",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        CLIENT.close()


if __name__ == "__main__":
    main()
