"""An HTTP service that talks to memcached (text protocol, through pymemcache) and to a paced
line server over raw sockets: dependencies that wiretape records as generic TCP.

``GET /kv/<scenario>`` runs one memcached scenario and answers JSON describing what memcached
said, so a replay that gets different answers gives a different response:

- ``basic``: set, get, a missing key, delete, get after delete
- ``noreply``: a ``noreply`` set (no answer: its bytes run into the next command's), then get
- ``counter``: set, incr, decr, incr of a missing key
- ``multi``: set_many, then one multi-get of three keys (one missing)
- ``cas``: gets, cas with the token (stored), cas with the stale token (refused)
- ``large``: set and get a value of about 100 KB (its length and sha256 are answered)
- ``secret``, ``large-secret``: set and get an API key, alone and inside a 200 KB value

``GET /paced`` opens a connection to the paced server (which speaks first), sends ``WAIT`` and
answers the lines it got; ``GET /paced/echo`` sends ``ECHO`` with a word.

The memcached client is created on first use and keeps its connection, as in a real service.
Environment: MEMCACHED (host:port), MEMCACHED_TLS (``1``: memcached over TLS, verified against the
default trust store), PACED (host:port, optional), TCPAPP_VARIANT (``changed`` uses other keys),
PORT (argv[1]).
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from pymemcache.client.base import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MEMCACHED = os.environ.get("MEMCACHED", "")
PACED = os.environ.get("PACED", "")
VARIANT = os.environ.get("TCPAPP_VARIANT", "")
LARGE = 100 * 1024
API_KEY = "AKIA" + "TCPAPPEXAMPLE123"

_client: Client | None = None


def key(name: str) -> str:
    return f"tcpapp:{'changed:' if VARIANT == 'changed' else ''}{name}"


def client() -> Client:
    global _client
    if _client is None:
        host, port = MEMCACHED.rsplit(":", 1)
        # MEMCACHED_TLS=1: TLS, verified against the default trust store (SSL_CERT_FILE).
        tls = ssl.create_default_context() if os.environ.get("MEMCACHED_TLS") == "1" else None
        _client = Client(
            (host, int(port)),
            connect_timeout=10,
            timeout=30,
            default_noreply=False,
            tls_context=tls,
        )
    return _client


def text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [text(v) for v in value]
    return value


def large_value() -> bytes:
    block = hashlib.sha256(b"wiretape tcp").hexdigest().encode()  # 64 bytes of text
    return block * (LARGE // len(block))


def basic(c: Client) -> Any:
    return [
        c.set(key("user:1"), b"alice"),
        c.get(key("user:1")),
        c.get(key("nobody")),
        c.delete(key("user:1")),
        c.get(key("user:1")),
    ]


def noreply(c: Client) -> Any:
    c.set(key("quiet"), b"shh", noreply=True)
    return [c.get(key("quiet"))]


def counter(c: Client) -> Any:
    return [
        c.set(key("counter"), b"10"),
        c.incr(key("counter"), 5),
        c.decr(key("counter"), 2),
        c.incr(key("no-counter"), 1),
    ]


def multi(c: Client) -> Any:
    failed = c.set_many({key("a"): b"1", key("b"): b"2"})
    return [failed, c.get_many([key("a"), key("b"), key("c")])]


def cas(c: Client) -> Any:
    c.set(key("cas"), b"v1")
    value, token = c.gets(key("cas"))
    stored = c.cas(key("cas"), b"v2", token)
    stale = c.cas(key("cas"), b"v3", token)
    return [value, stored, stale, c.get(key("cas"))]


def large(c: Client) -> Any:
    value = large_value()
    stored = c.set(key("large"), value)
    back = c.get(key("large")) or b""
    return [
        stored,
        len(back),
        hashlib.sha256(back).hexdigest() == hashlib.sha256(value).hexdigest(),
    ]


def secret(c: Client) -> Any:
    """An API key (a made-up one in AWS's format) stored and read back: memcached's text
    protocol gives its length, so the recording must keep the length of the bytes."""
    stored = c.set(key("apikey"), API_KEY.encode())
    back = c.get(key("apikey")) or b""
    return [stored, len(back), back == API_KEY.encode()]


def large_secret(c: Client) -> Any:
    """The key in the middle of a value large enough to be kept aside as raw bytes."""
    value = large_value() + b" " + API_KEY.encode() + b" " + large_value()
    stored = c.set(key("large-secret"), value)
    back = c.get(key("large-secret")) or b""
    return [stored, len(back), back == value]


SCENARIOS: dict[str, Callable[[Client], Any]] = {
    "basic": basic,
    "noreply": noreply,
    "counter": counter,
    "multi": multi,
    "cas": cas,
    "large": large,
    "secret": secret,
    "large-secret": large_secret,
}


async def kv(request: Request) -> JSONResponse:
    scenario = SCENARIOS.get(request.path_params["scenario"])
    if scenario is None:
        return JSONResponse({"unknown scenario": request.path_params["scenario"]}, 404)
    try:
        result = scenario(client())
    except Exception as exc:  # the report shows what went wrong
        global _client
        if _client is not None:
            _client.close()
            _client = None
        return JSONResponse({"failed": type(exc).__name__, "message": str(exc)[:300]}, 500)
    return JSONResponse({"result": text(result)})


def _lines(sock: socket.socket, until: bytes, timeout: float = 30) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(until) and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").splitlines()


async def paced(request: Request) -> JSONResponse:
    host, port = PACED.rsplit(":", 1)
    word = request.path_params.get("word")
    try:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            greeting = _lines(sock, b"\r\n")
            if word is None:
                sock.sendall(b"WAIT\r\n")
                answer = _lines(sock, b"END\r\n")
            else:
                sock.sendall(b"ECHO " + word.encode() + b"\r\n")
                answer = _lines(sock, b"\r\n")
            sock.sendall(b"QUIT\r\n")
            bye = _lines(sock, b"\r\n")
    except OSError as exc:
        return JSONResponse({"failed": type(exc).__name__, "message": str(exc)[:300]}, 500)
    return JSONResponse({"greeting": greeting, "answer": answer, "bye": bye})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def deps(request: Request) -> JSONResponse:
    """Where this app reaches its dependencies (for tests that call the app directly)."""
    return JSONResponse({"memcached": MEMCACHED, "paced": PACED})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/deps", deps),
        Route("/kv/{scenario}", kv),
        Route("/paced", paced),
        Route("/paced/echo/{word}", paced),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
