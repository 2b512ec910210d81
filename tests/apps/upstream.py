"""A dependency for the end-to-end tests: a small JSON API over HTTP, or HTTPS with a given cert.

Run: python tests/apps/upstream.py --port N [--tls-cert CERT --tls-key KEY]

Routes (HTTP/1.1, keep-alive, every response has a Content-Length):
- GET  /counter    {"n": 1}, then {"n": 2}, ... (one counter per process)
- GET  /time       {"time": <current UTC time, ISO 8601 with microseconds>}
- GET  /item/{id}  {"id": <id>, "name": "item-<id>"}
- POST /items      the request's JSON object plus {"id": <a new random hex id>}, status 201
- GET  /healthz    {"ok": true}
Anything else is a 404 with a JSON error. Each request is logged on one line to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import secrets
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def next_count() -> int:
    with _counter_lock:
        return next(_counter)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body are separate writes
    server_version = "upstream/1"

    def _send(self, status: int, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/counter":
            self._send(200, {"n": next_count()})
        elif path == "/time":
            now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
            self._send(200, {"time": now})
        elif path.startswith("/item/") and path.count("/") == 2 and path[len("/item/") :]:
            item = path[len("/item/") :]
            self._send(200, {"id": item, "name": f"item-{item}"})
        elif path == "/healthz":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": f"no route for GET {path}"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        if path != "/items":
            self._send(404, {"error": f"no route for POST {path}"})
            return
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        if not isinstance(data, dict):
            self._send(400, {"error": "the body is not a JSON object"})
            return
        self._send(201, {**data, "id": secrets.token_hex(8)})

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write("upstream: " + (format % args) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    scheme = "http"
    if args.tls_cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        # The handshake runs on the first read, in the request's thread, so a client that
        # connects and never speaks TLS (a port probe) cannot stall the accept loop.
        server.socket = context.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        scheme = "https"
    print(f"upstream: serving {scheme}://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
