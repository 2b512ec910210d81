"""An HTTP service that talks to Redis through redis-py, sync and asyncio, in every parser mode.

``GET /<client>/<scenario>`` runs one scenario with one client and answers JSON describing what
Redis said, so a replay that gets different answers gives a different response. Clients are
``sync`` or ``async``, RESP ``2`` or ``3``, with hiredis (when installed, redis-py's default) or
with redis-py's own Python parser (``-py``): ``sync2``, ``sync3-py``, ``async2-py``, ``async3``...
``raw/malformed`` sends bytes that are not RESP on a socket of its own.
Each client is created on first use and keeps its connection pool, as in a real service; every
connection authenticates (``REDIS_PASSWORD``), names itself and selects database 1.

Environment: REDIS_HOST, REDIS_PORT, REDIS_PASSWORD (optional), REDISAPP_VARIANT (``changed``
uses other keys), REDIS_TLS (``1``: every client connects over TLS, as with ``rediss://``, and
verifies the server), PORT (argv[1]).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aredis
import uvicorn
from redis.asyncio.connection import _AsyncRESP2Parser, _AsyncRESP3Parser
from redis.backoff import NoBackoff
from redis.connection import _RESP2Parser, _RESP3Parser
from redis.retry import Retry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOST = os.environ["REDIS_HOST"]
PORT = int(os.environ["REDIS_PORT"])
PASSWORD = os.environ.get("REDIS_PASSWORD") or None
VARIANT = os.environ.get("REDISAPP_VARIANT", "")
TLS = os.environ.get("REDIS_TLS") == "1"
LARGE = 50 * 1024 * 1024
BLOCK_S = 0.3


def key(client: str, name: str) -> str:
    return f"{client}:{'changed:' if VARIANT == 'changed' else ''}{name}"


def plain(value: Any) -> Any:
    """A JSON-able, exact rendering of what redis-py returned."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return sorted(plain(v) for v in value)
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value)}
    return value


def large_value() -> bytes:
    block = hashlib.sha256(b"wiretape").digest() * 32  # 1 KiB
    return block * (LARGE // len(block))


def options(client: str) -> dict[str, Any]:
    protocol = 3 if "3" in client else 2
    opts: dict[str, Any] = {
        "host": HOST,
        "port": PORT,
        "password": PASSWORD,
        "protocol": protocol,
        "db": 1,
        "client_name": f"app-{client}",
        "socket_timeout": 30,
    }
    if TLS:  # verified against the default trust store: SSL_CERT_FILE, set by wiretape
        opts["connection_class"] = (
            aredis.SSLConnection if client.startswith("async") else redis.SSLConnection
        )
    if client.endswith("-py"):
        if client.startswith("async"):
            opts["parser_class"] = _AsyncRESP3Parser if protocol == 3 else _AsyncRESP2Parser
        else:
            opts["parser_class"] = _RESP3Parser if protocol == 3 else _RESP2Parser
    return opts


# -- sync ----------------------------------------------------------------------------------------

_sync: dict[str, redis.Redis] = {}


def sync_client(client: str) -> redis.Redis:
    if client not in _sync:
        _sync[client] = redis.Redis(connection_pool=redis.ConnectionPool(**options(client)))
    return _sync[client]


def sync_parser(r: redis.Redis) -> str:
    conn = r.connection_pool.get_connection()
    try:
        conn.connect()
        return type(conn._parser).__name__
    finally:
        r.connection_pool.release(conn)


def sync_scenario(client: str, name: str) -> Any:
    r = sync_client(client)
    k = lambda n: key(client, n)  # noqa: E731
    if name == "parser":
        return sync_parser(r)
    if name == "basic":
        return [
            r.set(k("user:1"), "alice"),
            r.get(k("user:1")),
            r.get(k("missing")),
            r.incr(k("counter")),
            r.hset(k("hash"), mapping={"a": "1", "b": "two"}),
            r.hgetall(k("hash")),
            r.exists(k("user:1"), k("missing")),
            r.zadd(k("scores"), {"x": 1.5, "y": 2.25}),
            r.zrange(k("scores"), 0, -1, withscores=True),
            r.set(k("unicode"), "grüße ☃"),
            r.get(k("unicode")),
            r.set(k("binary"), bytes(range(256))),
            r.get(k("binary")) == bytes(range(256)),
            r.ping(),
        ]
    if name == "pipeline":
        pipe = r.pipeline(transaction=False)
        for i in range(100):
            pipe.set(k(f"p:{i}"), i)
            pipe.incr(k(f"p:{i}"))
            pipe.get(k(f"p:{i}"))
        return pipe.execute()
    if name == "generated":
        # A key and values the app makes up on every run: a session id and timestamps.
        session = k(f"session:{uuid.uuid4()}")
        stamp = datetime.datetime.now(datetime.UTC).isoformat()
        return [
            r.set(session, "alice", ex=60),
            r.get(session),
            r.set(k("last-seen"), stamp),
            r.zadd(k(f"logins/{stamp}"), {"alice": 1}),
        ]
    if name == "multi":
        pipe = r.pipeline(transaction=True)
        pipe.set(k("tx"), 1).incr(k("tx")).get(k("tx")).lpush(k("tx"), "x")
        return pipe.execute(raise_on_error=False)
    if name == "watch":
        r.set(k("watched"), "before")
        with r.pipeline() as pipe:
            pipe.watch(k("watched"))
            seen = pipe.get(k("watched"))
            r.set(k("watched"), "changed by another client")
            pipe.multi()
            pipe.set(k("watched"), "from the transaction")
            try:
                pipe.execute()
                outcome = "committed"
            except redis.WatchError:
                outcome = "aborted"
        return [seen, outcome, r.get(k("watched"))]
    if name == "discard":
        one = redis.Redis(
            connection_pool=redis.ConnectionPool(**options(client)), single_connection_client=True
        )
        try:
            return [
                one.execute_command("MULTI"),
                one.execute_command("SET", k("discarded"), "x"),
                one.execute_command("DISCARD"),
                one.execute_command("EXISTS", k("discarded")),
            ]
        finally:
            one.close()
    if name == "blocking":
        r.delete(k("queue"))
        t0 = time.monotonic()
        empty = r.blpop([k("queue")], timeout=BLOCK_S)
        waited = time.monotonic() - t0
        pusher = threading.Timer(0.2, lambda: sync_client(client).rpush(k("queue"), "job-1"))
        pusher.start()
        t0 = time.monotonic()
        got = r.blpop([k("queue")], timeout=5)
        waited_for_push = time.monotonic() - t0
        pusher.join()
        return [empty, waited >= BLOCK_S * 0.8, got, waited_for_push >= 0.15]
    if name == "pubsub":
        p = r.pubsub()
        p.subscribe(k("news"))
        p.psubscribe(k("events:*"))
        got: list[Any] = []
        deadline = time.monotonic() + 5
        while len([m for m in got if m["type"] in ("subscribe", "psubscribe")]) < 2:
            if time.monotonic() > deadline:
                break
            m = p.get_message(timeout=1)
            if m is not None:
                got.append(m)
        for i in range(3):
            r.publish(k("news"), f"hello {i}")
        r.publish(k("events:login"), "bob")
        while len([m for m in got if m["type"] in ("message", "pmessage")]) < 4:
            if time.monotonic() > deadline:
                break
            m = p.get_message(timeout=1)
            if m is not None:
                got.append(m)
        p.unsubscribe()
        p.punsubscribe()
        p.close()
        return [[m["type"], m["channel"], m["data"]] for m in got]
    if name == "errors":
        r.set(k("str"), "text")
        out = []
        for call in (
            lambda: r.lpush(k("str"), "x"),
            lambda: r.execute_command("NO-SUCH-COMMAND"),
            lambda: r.incr(k("str")),
        ):
            try:
                out.append(call())
            except redis.RedisError as exc:
                out.append(exc)
        return out
    if name == "noauth":
        anon = redis.Redis(
            host=HOST,
            port=PORT,
            protocol=2,
            single_connection_client=True,
            socket_timeout=10,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return anon.get(k("user:1"))
        except redis.RedisError as exc:
            return exc
        finally:
            anon.close()
    if name == "large":
        value = large_value()
        r.set(k("large"), value)
        back = r.get(k("large"))
        assert isinstance(back, bytes)
        return [len(back), hashlib.sha256(back).hexdigest(), back == value]
    raise KeyError(name)


# -- asyncio -------------------------------------------------------------------------------------

_async: dict[str, aredis.Redis] = {}


def async_client(client: str) -> aredis.Redis:
    if client not in _async:
        _async[client] = aredis.Redis(connection_pool=aredis.ConnectionPool(**options(client)))
    return _async[client]


async def async_scenario(client: str, name: str) -> Any:
    r = async_client(client)
    k = lambda n: key(client, n)  # noqa: E731
    if name == "parser":
        conn = await r.connection_pool.get_connection()
        try:
            await conn.connect()
            return type(conn._parser).__name__
        finally:
            await r.connection_pool.release(conn)
    if name == "basic":
        return [
            await r.set(k("user:1"), "alice"),
            await r.get(k("user:1")),
            await r.get(k("missing")),
            await r.incr(k("counter")),
            await r.hset(k("hash"), mapping={"a": "1", "b": "two"}),
            await r.hgetall(k("hash")),
            await r.zadd(k("scores"), {"x": 1.5, "y": 2.25}),
            await r.zrange(k("scores"), 0, -1, withscores=True),
            await r.ping(),
        ]
    if name == "pipeline":
        pipe = r.pipeline(transaction=False)
        for i in range(100):
            pipe.set(k(f"p:{i}"), i)
            pipe.incr(k(f"p:{i}"))
            pipe.get(k(f"p:{i}"))
        return await pipe.execute()
    if name == "concurrent":
        # Several pooled connections at once: each gets its own recorded answers.
        return await asyncio.gather(*(r.incr(k(f"c:{i}")) for i in range(8)))
    if name == "multi":
        pipe = r.pipeline(transaction=True)
        pipe.set(k("tx"), 1).incr(k("tx")).get(k("tx")).lpush(k("tx"), "x")
        return await pipe.execute(raise_on_error=False)
    if name == "watch":
        await r.set(k("watched"), "before")
        async with r.pipeline() as pipe:
            await pipe.watch(k("watched"))
            seen = await pipe.get(k("watched"))
            await r.set(k("watched"), "changed by another client")
            pipe.multi()
            pipe.set(k("watched"), "from the transaction")
            try:
                await pipe.execute()
                outcome = "committed"
            except redis.WatchError:
                outcome = "aborted"
        return [seen, outcome, await r.get(k("watched"))]
    if name == "blocking":
        await r.delete(k("queue"))
        t0 = time.monotonic()
        empty = await r.blpop([k("queue")], timeout=BLOCK_S)
        waited = time.monotonic() - t0

        async def push_later() -> None:
            await asyncio.sleep(0.2)
            await r.rpush(k("queue"), "job-1")

        pusher = asyncio.create_task(push_later())
        t0 = time.monotonic()
        got = await r.blpop([k("queue")], timeout=5)
        waited_for_push = time.monotonic() - t0
        await pusher
        return [empty, waited >= BLOCK_S * 0.8, got, waited_for_push >= 0.15]
    if name == "pubsub":
        p = r.pubsub()
        await p.subscribe(k("news"))
        got: list[Any] = []
        deadline = time.monotonic() + 5
        while not any(m["type"] == "subscribe" for m in got) and time.monotonic() < deadline:
            m = await p.get_message(timeout=1)
            if m is not None:
                got.append(m)
        for i in range(3):
            await r.publish(k("news"), f"hello {i}")
        while len([m for m in got if m["type"] == "message"]) < 3:
            if time.monotonic() > deadline:
                break
            m = await p.get_message(timeout=1)
            if m is not None:
                got.append(m)
        await p.unsubscribe()
        await p.aclose()
        return [[m["type"], m["channel"], m["data"]] for m in got]
    if name == "errors":
        await r.set(k("str"), "text")
        out = []
        try:
            out.append(await r.lpush(k("str"), "x"))
        except redis.RedisError as exc:
            out.append(exc)
        return out
    if name == "large":
        value = large_value()
        await r.set(k("large"), value)
        back = await r.get(k("large"))
        assert isinstance(back, bytes)
        return [len(back), hashlib.sha256(back).hexdigest(), back == value]
    raise KeyError(name)


# -- raw bytes -----------------------------------------------------------------------------------


def raw_scenario(name: str) -> Any:
    """Bytes that are not RESP, on a connection of their own: what comes back, and whether the
    connection was closed after it."""
    if name != "malformed":
        raise KeyError(name)
    with socket.create_connection((HOST, PORT), timeout=10) as sock:
        sock.sendall(b"*2\r\n$3\r\nGET\r\nxx\r\n")
        data = b""
        closed = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
        return {"reply": data.decode("utf-8", "replace"), "closed": closed}


# -- HTTP ----------------------------------------------------------------------------------------


async def run(request: Request) -> JSONResponse:
    client = request.path_params["client"]
    scenario = request.path_params["scenario"]
    runner: Callable[[], Awaitable[Any]]
    if client.startswith("async"):

        async def runner() -> Any:
            return await async_scenario(client, scenario)

    elif client == "raw":

        async def runner() -> Any:
            return await asyncio.to_thread(raw_scenario, scenario)

    elif client.startswith("sync"):

        async def runner() -> Any:
            return await asyncio.to_thread(sync_scenario, client, scenario)

    else:
        return JSONResponse({"unknown client": client}, status_code=404)
    try:
        result = await runner()
    except KeyError as exc:
        return JSONResponse({"unknown scenario": str(exc)}, status_code=404)
    except Exception as exc:  # the report shows what Redis said
        return JSONResponse({"failed": repr(exc)[:500]}, status_code=500)
    return JSONResponse({"result": plain(result)})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/health", health), Route("/{client}/{scenario}", run)])

if __name__ == "__main__":
    print(f"REDISAPP_DEP={HOST}:{PORT}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
