"""An HTTP service that talks to PostgreSQL through every mainstream Python driver.

``GET /<driver>/<scenario>`` runs one scenario with one driver and answers JSON describing what
the database said, so a replay that gets different database answers gives a different response.
Drivers: psycopg (3, sync), psycopg-async, psycopg2, asyncpg (a pool), sqlalchemy (ORM over
psycopg 3), psql (the command-line client). Connections are opened on first use and kept, so
prepared statements and type caches live across requests, as in a real service.

Environment: PG_DSN (libpq key=value string), PG_URL (postgresql://...), PORT.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psycopg
import psycopg2
import uvicorn
from sqlalchemy import String, create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DSN = os.environ["PG_DSN"]
URL = os.environ["PG_URL"]
VARIANT = os.environ.get("PGAPP_VARIANT", "")
LARGE = 100_000
STAMP = "2024-02-29 12:34:56.789+00"
STAMP_SQL = f"'{STAMP}'::timestamptz"


def text(value: Any) -> Any:
    """A JSON-able, exact rendering of a database value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, decimal.Decimal | float):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [text(v) for v in value]
    return str(value)


def rows(found: Any) -> list[list[Any]]:
    return [[text(v) for v in row] for row in found]


def digest(found: Any) -> dict[str, Any]:
    h = hashlib.sha256()
    count = 0
    for row in found:
        h.update(repr([text(v) for v in row]).encode())
        count += 1
    return {"rows": count, "sha256": h.hexdigest()}


def error_of(exc: BaseException) -> dict[str, Any]:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if code is None and getattr(exc, "orig", None) is not None:
        return error_of(exc.orig)  # type: ignore[attr-defined]
    return {"error": type(exc).__name__, "sqlstate": code}


# -- psycopg 3, sync ---------------------------------------------------------------------------

_pg3: psycopg.Connection[Any] | None = None


def pg3() -> psycopg.Connection[Any]:
    global _pg3
    if _pg3 is None or _pg3.closed:
        _pg3 = psycopg.connect(DSN, autocommit=True, application_name="pgapp-psycopg")
    return _pg3


def psycopg_scenario(name: str, arg: str) -> Any:
    conn = pg3()
    if name == "basic":
        sql = "SELECT id, name, score FROM items WHERE id = %s"
        if VARIANT == "changed":
            sql += " AND score IS NOT NULL"
        cur = conn.execute(sql, (int(arg or 1),))
        return rows(cur.fetchall())
    if name == "insert":
        cur = conn.execute(
            "INSERT INTO items (name, score) VALUES (%s, %s) RETURNING id, name", (arg, 1.5)
        )
        return rows(cur.fetchall())
    if name == "random_insert":
        note = f"note-{os.urandom(4).hex()}"  # different on every run
        cur = conn.execute("INSERT INTO log (msg) VALUES (%s) RETURNING id", (note,))
        return rows(cur.fetchall())
    if name == "prepared":
        out = []
        for i in range(7):  # psycopg prepares server-side after 5 executions
            out += rows(conn.execute("SELECT %s::int * 2, 'p'", (i,)).fetchall())
        return out
    if name == "pipeline":
        results = []
        with conn.pipeline():
            curs = [conn.execute("SELECT %s::int + 1", (i,)) for i in range(5)]
            conn.execute("INSERT INTO log (msg) VALUES (%s)", ("pipelined",))
        for cur in curs:
            results += rows(cur.fetchall())
        return results
    if name == "rollback":
        with conn.transaction(force_rollback=True):
            conn.execute("INSERT INTO log (msg) VALUES ('rolled back')")
            inside = conn.execute("SELECT count(*) FROM log WHERE msg = 'rolled back'").fetchone()
        after = conn.execute("SELECT count(*) FROM log WHERE msg = 'rolled back'").fetchone()
        return {"inside": text(inside), "after": text(after)}
    if name == "failed_tx":
        out = []
        conn.autocommit = False
        try:
            try:
                conn.execute("SELECT 1 / 0")
            except psycopg.Error as exc:
                out.append(error_of(exc))
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as exc:
                out.append(error_of(exc))
            out.append(str(conn.info.transaction_status))
            conn.rollback()
            out.append(str(conn.info.transaction_status))
        finally:
            conn.autocommit = True
        return out
    if name == "unique":
        try:
            conn.execute("INSERT INTO items (id, name, score) VALUES (1, 'dup', 0)")
        except psycopg.Error as exc:
            return error_of(exc)
        return "no error"
    if name == "nulls":
        return rows(conn.execute("SELECT NULL::int, 'x', NULL::text, %s", (None,)).fetchall())
    if name == "unicode":
        cur = conn.execute("SELECT %s || ' ✓', 'héllo 日本 🎉'", ("ünïcode",))
        return rows(cur.fetchall())
    if name == "bytea":
        cur = conn.execute("SELECT %s::bytea, '\\xdeadbeef'::bytea", (b"\x00\x01\xff binary",))
        return rows(cur.fetchall())
    if name == "large":
        with conn.cursor() as cur:
            cur.execute("SELECT g, md5(g::text) FROM generate_series(1, %s) g", (LARGE,))
            return digest(cur)
    if name == "types_text":
        cur = conn.execute(
            f"SELECT {STAMP_SQL}, 12345.678901::numeric, '2024-01-02'::date, 1.5::float8"
        )
        return rows(cur.fetchall())
    if name == "types_binary":
        with conn.cursor(binary=True) as cur:
            cur.execute(
                f"SELECT {STAMP_SQL}, 12345.678901::numeric, '2024-01-02'::date, %s::numeric",
                (decimal.Decimal("-0.000123"),),
            )
            return rows(cur.fetchall())
    if name == "copy":
        with conn.cursor() as cur:
            with cur.copy("COPY log (msg) FROM STDIN") as copy:
                for i in range(3):
                    copy.write_row((f"copied {i}",))
            out = []
            with cur.copy(
                "COPY (SELECT msg FROM log WHERE msg LIKE 'copied%' ORDER BY id) TO STDOUT"
            ) as copy:
                for row in copy.rows():
                    out.append(list(row))
            return out
    if name == "listen":
        conn.execute("LISTEN events")
        other = psycopg.connect(DSN, autocommit=True)
        try:
            other.execute("NOTIFY events, 'hello'")
        finally:
            other.close()
        got = []
        for note in conn.notifies(timeout=5, stop_after=1):
            got.append([note.channel, note.payload])
        conn.execute("UNLISTEN events")
        return got
    if name == "ssl":
        return {
            "ssl": conn.info.pgconn.ssl_in_use,
            "user": conn.execute("SELECT current_user").fetchone()[0],
        }
    if name == "cancel":
        import threading

        timer = threading.Timer(0.5, conn.cancel_safe)
        timer.start()
        try:
            conn.execute("SELECT pg_sleep(10)")
        except psycopg.errors.QueryCanceled as exc:
            return error_of(exc)
        finally:
            timer.cancel()
        return "not cancelled"
    raise KeyError(name)


def auth_scenario(user: str, arg: str) -> Any:
    """Connect as ``user`` (password from AUTH_PASSWORDS, a JSON map) and ask who we are."""
    passwords = json.loads(os.environ.get("AUTH_PASSWORDS", "{}"))
    dsn = f"{DSN} user={user} password={passwords.get(user, '')}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT current_user, 1 + 1").fetchone()


# -- psycopg 3, async ----------------------------------------------------------------------------

_pg3a: psycopg.AsyncConnection[Any] | None = None


async def psycopg_async_scenario(name: str, arg: str) -> Any:
    global _pg3a
    if _pg3a is None:
        _pg3a = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
    conn = _pg3a
    if name == "basic":
        cur = await conn.execute(
            "SELECT id, name, score FROM items WHERE id = %s", (int(arg or 1),)
        )
        return rows(await cur.fetchall())
    if name == "prepared":
        out = []
        for i in range(7):
            cur = await conn.execute("SELECT %s::int * 3", (i,))
            out += rows(await cur.fetchall())
        return out
    if name == "pipeline":
        async with conn.pipeline():
            curs = [await conn.execute("SELECT %s::text || '!'", (str(i),)) for i in range(4)]
        out = []
        for cur in curs:
            out += rows(await cur.fetchall())
        return out
    if name == "failed_tx":
        out = []
        await conn.set_autocommit(False)
        try:
            try:
                await conn.execute("SELECT missing_column FROM items")
            except psycopg.Error as exc:
                out.append(error_of(exc))
            try:
                await conn.execute("SELECT 1")
            except psycopg.Error as exc:
                out.append(error_of(exc))
            await conn.rollback()
        finally:
            await conn.set_autocommit(True)
        return out
    if name == "types_binary":
        cur = conn.cursor(binary=True)
        await cur.execute(f"SELECT {STAMP_SQL}, 98765.4321::numeric, NULL::int")
        return rows(await cur.fetchall())
    raise KeyError(name)


# -- psycopg2 ------------------------------------------------------------------------------------

_pg2: Any = None


def psycopg2_scenario(name: str, arg: str) -> Any:
    global _pg2
    if _pg2 is None:
        _pg2 = psycopg2.connect(DSN)
    conn = _pg2
    cur = conn.cursor()
    try:
        if name == "basic":
            cur.execute("SELECT id, name, score FROM items WHERE id = %s", (int(arg or 1),))
            result: Any = rows(cur.fetchall())
            conn.commit()
            return result
        if name == "rollback":
            cur.execute("INSERT INTO log (msg) VALUES ('pg2 rolled back')")
            conn.rollback()
            cur.execute("SELECT count(*) FROM log WHERE msg = 'pg2 rolled back'")
            result = rows(cur.fetchall())
            conn.commit()
            return result
        if name == "failed_tx":
            out = []
            try:
                cur.execute("SELECT 1 / 0")
            except psycopg2.Error as exc:
                out.append(error_of(exc))
            try:
                cur.execute("SELECT 1")
            except psycopg2.Error as exc:
                out.append(error_of(exc))
            conn.rollback()
            return out
        if name == "unique":
            try:
                cur.execute("INSERT INTO items (id, name, score) VALUES (1, 'dup', 0)")
            except psycopg2.Error as exc:
                conn.rollback()
                return error_of(exc)
            return "no error"
        if name == "nulls_unicode_bytea":
            cur.execute(
                "SELECT NULL, %s, %s, %s::bytea",
                (None, "ünïcode ✓ 日本", psycopg2.Binary(b"\x00\xffbin")),
            )
            result = rows(cur.fetchall())
            conn.commit()
            return result
        if name == "large":
            named = conn.cursor(name="stream")  # a server-side cursor: rows come in batches
            named.itersize = 5000
            named.execute("SELECT g, md5(g::text) FROM generate_series(1, %s) g", (LARGE,))
            result = digest(named)
            named.close()
            conn.commit()
            return result
        if name == "types":
            cur.execute(f"SELECT {STAMP_SQL}, 3.14159265358979::numeric, interval '1 day 2h'")
            result = rows(cur.fetchall())
            conn.commit()
            return result
        raise KeyError(name)
    finally:
        cur.close()


# -- asyncpg -------------------------------------------------------------------------------------

_pool: asyncpg.Pool | None = None


async def asyncpg_scenario(name: str, arg: str) -> Any:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(URL, min_size=2, max_size=2)
    pool = _pool
    async with pool.acquire() as conn:
        if name == "basic":
            found = await conn.fetch(
                "SELECT id, name, score FROM items WHERE id = $1", int(arg or 1)
            )
            return rows(found)
        if name == "rollback":
            try:
                async with conn.transaction():
                    await conn.execute("INSERT INTO log (msg) VALUES ('apg rolled back')")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            return await conn.fetchval("SELECT count(*) FROM log WHERE msg = 'apg rolled back'")
        if name == "failed_tx":
            out = []
            tx = conn.transaction()
            await tx.start()
            try:
                await conn.fetch("SELECT 1 / 0")
            except asyncpg.PostgresError as exc:
                out.append(error_of(exc))
            try:
                await conn.fetch("SELECT 2")
            except asyncpg.PostgresError as exc:
                out.append(error_of(exc))
            await tx.rollback()
            return out
        if name == "unique":
            try:
                await conn.execute("INSERT INTO items (id, name, score) VALUES (1, 'dup', 0)")
            except asyncpg.PostgresError as exc:
                return error_of(exc)
            return "no error"
        if name == "types":
            # asyncpg uses the binary format; jsonb and arrays make it introspect types.
            found = await conn.fetch(
                f"SELECT {STAMP_SQL}, 12.5::numeric, NULL::text, 'ü ✓'::text, "
                "'\\x00ff'::bytea, '{1,2}'::int[], '{\"a\": 1}'::jsonb"
            )
            return rows(found)
        if name == "large":
            h = hashlib.sha256()
            count = 0
            async with conn.transaction():
                async for row in conn.cursor(
                    "SELECT g, md5(g::text) FROM generate_series(1, $1) g", LARGE, prefetch=10000
                ):
                    h.update(repr([text(v) for v in row]).encode())
                    count += 1
            return {"rows": count, "sha256": h.hexdigest()}
        if name == "executemany":
            await conn.executemany(
                "INSERT INTO log (msg) VALUES ($1)", [(f"many {i}",) for i in range(3)]
            )
            return await conn.fetchval("SELECT count(*) FROM log WHERE msg LIKE 'many %'")
    raise KeyError(name)


# -- SQLAlchemy ORM over psycopg 3 ---------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    score: Mapped[decimal.Decimal | None]


_engine: Any = None


def sqlalchemy_scenario(name: str, arg: str) -> Any:
    global _engine
    if _engine is None:
        _engine = create_engine(URL.replace("postgresql://", "postgresql+psycopg://"), pool_size=2)
    with Session(_engine) as session:
        if name == "basic":
            item = session.get(Item, int(arg or 1))
            return None if item is None else [item.id, item.name, text(item.score)]
        if name == "orm_tx":
            with session.begin():
                session.add(Item(name=f"orm {arg}", score=decimal.Decimal("2.25")))
            found = session.scalars(select(Item).where(Item.name == f"orm {arg}")).one()
            return [found.name, text(found.score)]
        if name == "rollback":
            session.add(Item(name="orm rolled back", score=None))
            session.flush()
            session.rollback()
            return session.scalars(select(Item).where(Item.name == "orm rolled back")).all() == []
        if name == "unique":
            try:
                with session.begin():
                    session.add(Item(id=1, name="dup", score=None))
            except IntegrityError as exc:
                return error_of(exc)
            return "no error"
    raise KeyError(name)


# -- psql ----------------------------------------------------------------------------------------


def psql_scenario(name: str, arg: str) -> Any:
    sql = {
        "basic": "SELECT id, name FROM items ORDER BY id LIMIT 3",
        "multi": "BEGIN; SELECT 1 AS one; SELECT 'two' AS two; COMMIT",
        "error": "SELECT * FROM no_such_table",
    }[name]
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    done = subprocess.run(
        ["psql", DSN, "-X", "-A", "-F", "|", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    return {"code": done.returncode, "out": done.stdout, "err": done.stderr.strip()}


# -- HTTP ----------------------------------------------------------------------------------------

SYNC: dict[str, Callable[[str, str], Any]] = {
    "psycopg": psycopg_scenario,
    "psycopg2": psycopg2_scenario,
    "sqlalchemy": sqlalchemy_scenario,
    "psql": psql_scenario,
    "auth": auth_scenario,
}
ASYNC: dict[str, Callable[[str, str], Awaitable[Any]]] = {
    "psycopg-async": psycopg_async_scenario,
    "asyncpg": asyncpg_scenario,
}


async def run(request: Request) -> JSONResponse:
    driver = request.path_params["driver"]
    scenario = request.path_params["scenario"]
    arg = request.query_params.get("arg", "")
    try:
        if driver in ASYNC:
            result = await ASYNC[driver](scenario, arg)
        elif driver in SYNC:
            result = SYNC[driver](scenario, arg)
        else:
            return JSONResponse({"unknown driver": driver}, status_code=404)
    except KeyError as exc:
        return JSONResponse({"unknown scenario": str(exc)}, status_code=404)
    except Exception as exc:  # the report shows what the database said
        return JSONResponse({"failed": repr(exc)[:500]}, status_code=500)
    return JSONResponse({"result": json.loads(json.dumps(result, default=str))})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[Route("/health", health), Route("/{driver}/{scenario}", run)],
)

if __name__ == "__main__":
    print(f"PGAPP_DB={os.environ.get('PGAPP_DB', '')}", flush=True)
    port = int(os.environ.get("PORT", sys.argv[1] if len(sys.argv) > 1 else "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
