"""An HTTP service that talks to MySQL/MariaDB through the mainstream Python drivers.

``GET /<driver>/<scenario>`` runs one scenario with one driver and answers JSON describing what
the database said, so a replay that gets different database answers gives a different response.
Drivers: pymysql, mysqlclient (libmariadb/libmysqlclient), connector (mysql-connector-python,
pure Python), connector-c (its C extension, when installed), sqlalchemy (ORM over PyMySQL).
Connections are opened on first use and kept, so prepared statements live across requests, as
in a real service.

Environment: MYSQL_HOST, MYSQL_PORT (the address wiretape gives the dependency), MYSQL_USER,
MYSQL_PASSWORD, MYSQL_DB, MYSQLAPP_SSL=verify (connect with TLS, verifying the server),
MYSQLAPP_VARIANT=changed (one query changes, for miss tests), AUTH_USERS (JSON: user -> password).
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import io
import json
import os
import random
import ssl
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import mysql.connector
import MySQLdb
import pymysql
import uvicorn
from pymysql.constants import CLIENT, SERVER_STATUS
from sqlalchemy import String, create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOST = os.environ["MYSQL_HOST"]
PORT = int(os.environ["MYSQL_PORT"])
USER = os.environ["MYSQL_USER"]
PASSWORD = os.environ["MYSQL_PASSWORD"]
DB = os.environ["MYSQL_DB"]
# MYSQLAPP_SSL=verify: TLS to the database, verified against SSL_CERT_FILE (which wiretape sets
# to the system roots plus its own CA).
SSL_CA = os.environ.get("SSL_CERT_FILE", "") if os.environ.get("MYSQLAPP_SSL") == "verify" else ""
VARIANT = os.environ.get("MYSQLAPP_VARIANT", "")
LARGE = 20_000
TYPES_SQL = (
    "SELECT NULL AS n, 'héllo 日本 🎉' AS u, X'00ff10' AS b, CAST(12.5 AS DECIMAL(6,2)) AS d, "
    "DATE '2024-02-29' AS dt, TIMESTAMP '2024-02-29 12:34:56.789' AS ts, 3.25e0 AS f, "
    "CAST(-7 AS SIGNED) AS i, TIME '-26:03:04' AS tm"
)


# A statement with a value the app makes up on every run (neither a UUID nor a timestamp, so
# only a request_noise rule lets the replay match it); its answer does not depend on it.
NONCE_SQL = "SELECT COUNT(*) FROM items WHERE name <> %s"


def nonce() -> str:
    return f"nonce-{random.randrange(10**12)}"


def text(value: Any) -> Any:
    """A JSON-able, exact rendering of a database value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, decimal.Decimal | float):
        return repr(value)
    if isinstance(value, datetime.timedelta):
        return f"timedelta({value.total_seconds()})"
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
    orig = getattr(exc, "orig", None)
    if orig is not None:
        return error_of(orig)
    errno = getattr(exc, "errno", None)
    sqlstate = getattr(exc, "sqlstate", None)
    if errno is None and exc.args and isinstance(exc.args[0], int):
        errno = exc.args[0]
    return {"error": type(exc).__name__, "errno": errno, "sqlstate": sqlstate}


def basic_sql() -> str:
    sql = "SELECT id, name, score FROM items WHERE id = %s"
    if VARIANT == "changed":
        sql += " AND score IS NOT NULL"
    return sql


# -- PyMySQL ---------------------------------------------------------------------------------------

_pymysql: pymysql.connections.Connection[Any] | None = None


def pymysql_conn() -> pymysql.connections.Connection[Any]:
    global _pymysql
    if _pymysql is None or not _pymysql.open:
        _pymysql = pymysql.connect(
            host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, autocommit=True,
            charset="utf8mb4", client_flag=CLIENT.MULTI_STATEMENTS, local_infile=True,
            ssl={"ca": SSL_CA} if SSL_CA else None,
        )  # fmt: skip
    return _pymysql


def pymysql_scenario(name: str, arg: str) -> Any:
    conn = pymysql_conn()
    with conn.cursor() as cur:
        if name == "basic":
            cur.execute(basic_sql(), (int(arg or 1),))
            return rows(cur.fetchall())
        if name == "types":
            cur.execute(TYPES_SQL)
            return rows(cur.fetchall())
        if name == "params":
            cur.execute("SELECT %s, %s, %s, %s", (None, "ünïcode ✓", b"\x00\xffbin", 2.5))
            return rows(cur.fetchall())
        if name == "nonce":  # a value generated on every run (see NONCE_SQL)
            cur.execute(NONCE_SQL % "%s", (nonce(),))
            return rows(cur.fetchall())
        if name == "insert":
            cur.execute("INSERT INTO items (name, score) VALUES (%s, %s)", (arg, 1.5))
            return {"insert_id": cur.lastrowid, "rowcount": cur.rowcount}
        if name == "rollback":
            conn.begin()
            cur.execute("INSERT INTO log (msg) VALUES ('pymysql rolled back')")
            in_tx = bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)
            cur.execute("SELECT COUNT(*) FROM log WHERE msg = 'pymysql rolled back'")
            inside = cur.fetchone()
            conn.rollback()
            after_tx = bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)
            cur.execute("SELECT COUNT(*) FROM log WHERE msg = 'pymysql rolled back'")
            return {
                "in_tx": in_tx, "inside": text(inside), "after_tx": after_tx,
                "after": text(cur.fetchone()),
            }  # fmt: skip
        if name == "unique":
            try:
                cur.execute("INSERT INTO items (id, name) VALUES (1, 'dup')")
            except pymysql.Error as exc:
                return error_of(exc)
            return "no error"
        if name == "multi":
            cur.execute("SELECT 1 AS one; SELECT 'two' AS two, 2.5 AS x; UPDATE log SET msg = msg")
            out = [rows(cur.fetchall())]
            while cur.nextset():
                out.append(rows(cur.fetchall()) if cur.description else cur.rowcount)
            return out
        if name == "prepared":
            # PyMySQL has no binary protocol: SQL-level PREPARE/EXECUTE over COM_QUERY.
            cur.execute("PREPARE twice FROM 'SELECT ? * 2, ?'")
            cur.execute("SET @a = 21, @b = 'x'")
            cur.execute("EXECUTE twice USING @a, @b")
            found = rows(cur.fetchall())
            cur.execute("DEALLOCATE PREPARE twice")
            return found
        if name == "large":
            cur.execute(f"SELECT seq, MD5(seq) FROM seq_1_to_{LARGE}")
            return digest(cur.fetchall())
        if name == "session":
            conn.ping()
            conn.select_db(DB)
            cur.execute("SELECT DATABASE(), @@session.autocommit")
            return rows(cur.fetchall())
        if name == "infile":
            path = os.path.join(tempfile.gettempdir(), "mysqlapp-infile.csv")  # the same SQL
            with open(path, "w") as fh:
                fh.write("from a file\n")
            try:
                cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE log (msg)")
            except pymysql.Error as exc:
                return error_of(exc)
            return "loaded"
    raise KeyError(name)


# -- mysqlclient -----------------------------------------------------------------------------------

_mysqldb: Any = None


def mysqldb_conn() -> Any:
    global _mysqldb
    if _mysqldb is None:
        _mysqldb = MySQLdb.connect(
            host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, charset="utf8mb4",
            autocommit=True, **({"ssl": {"ca": SSL_CA}} if SSL_CA else {}),
        )  # fmt: skip
    return _mysqldb


def mysqlclient_scenario(name: str, arg: str) -> Any:
    conn = mysqldb_conn()
    cur = conn.cursor()
    try:
        if name == "basic":
            cur.execute(basic_sql(), (int(arg or 1),))
            return rows(cur.fetchall())
        if name == "types":
            cur.execute(TYPES_SQL)
            return rows(cur.fetchall())
        if name == "params":
            cur.execute("SELECT %s, %s, CAST(%s AS BINARY)", (None, "ünïcode ✓", b"\x00\xffbin"))
            return rows(cur.fetchall())
        if name == "insert":
            cur.execute("INSERT INTO items (name, score) VALUES (%s, %s)", (arg, 2.5))
            return {"insert_id": cur.lastrowid, "rowcount": cur.rowcount}
        if name == "rollback":
            conn.begin()
            cur.execute("INSERT INTO log (msg) VALUES ('mysqlclient rolled back')")
            conn.rollback()
            cur.execute("SELECT COUNT(*) FROM log WHERE msg = 'mysqlclient rolled back'")
            return rows(cur.fetchall())
        if name == "unique":
            try:
                cur.execute("INSERT INTO items (id, name) VALUES (1, 'dup')")
            except MySQLdb.Error as exc:
                return error_of(exc)
            return "no error"
        if name == "multi":
            cur.execute("SELECT 1 AS one; SELECT 'two' AS two")
            out = [rows(cur.fetchall())]
            while cur.nextset():
                out.append(rows(cur.fetchall()))
            return out
        if name == "call":
            cur.execute("CALL two_results(%s)", (3,))
            out = [rows(cur.fetchall())]
            while cur.nextset():
                out.append(rows(cur.fetchall()) if cur.description else None)
            return out
        if name == "options":
            conn.ping()
            conn.set_server_option(1)  # MYSQL_OPTION_MULTI_STATEMENTS_OFF
            conn.set_server_option(0)  # ..._ON
            conn.select_db(DB)
            cur.execute("SELECT DATABASE()")
            return rows(cur.fetchall())
    finally:
        cur.close()
    raise KeyError(name)


# -- mysql-connector-python ------------------------------------------------------------------------

_connector: dict[bool, Any] = {}


def connector_conn(pure: bool) -> Any:
    conn = _connector.get(pure)
    if conn is None:
        kwargs: dict[str, Any] = {}
        if SSL_CA:
            kwargs.update(ssl_ca=SSL_CA, ssl_verify_cert=True)
        else:
            kwargs.update(ssl_disabled=True)
        conn = _connector[pure] = mysql.connector.connect(
            host=HOST, port=PORT, user=USER, password=PASSWORD, database=DB, use_pure=pure,
            autocommit=True, charset="utf8mb4", collation="utf8mb4_general_ci", **kwargs,
        )  # fmt: skip
    return conn


def connector_scenario(name: str, arg: str, pure: bool = True) -> Any:
    conn = connector_conn(pure)
    if name == "basic":
        cur = conn.cursor()
        cur.execute(basic_sql(), (int(arg or 1),))
        return rows(cur.fetchall())
    if name == "nonce":
        cur = conn.cursor(prepared=True)
        cur.execute(NONCE_SQL % "?", (nonce(),))
        found = rows(cur.fetchall())
        cur.close()
        return found
    if name == "prepared":
        cur = conn.cursor(prepared=True)
        out = []
        for i in (1, 2):
            cur.execute("SELECT id, name, score FROM items WHERE id = ?", (i,))
            out.append(rows(cur.fetchall()))
        cur.execute(
            "SELECT ?, ?, ?, ?, ?, ?",
            (None, "ünïcode ✓", b"\x00\xffbin", decimal.Decimal("-1.25"),
             datetime.datetime(2024, 2, 29, 12, 34, 56, 789000), 2**40),
        )  # fmt: skip
        out.append(rows(cur.fetchall()))
        cur.close()
        return out
    if name == "prepared_types":
        cur = conn.cursor(prepared=True)
        cur.execute(TYPES_SQL + " FROM DUAL WHERE ? = 1", (1,))
        found = rows(cur.fetchall())
        cur.close()
        return found
    if name == "prepared_insert":
        cur = conn.cursor(prepared=True)
        cur.execute("INSERT INTO items (name, score) VALUES (?, ?)", (arg, decimal.Decimal("3.5")))
        found = {"insert_id": cur.lastrowid, "rowcount": cur.rowcount}
        cur.close()
        return found
    if name == "long_data":
        # A file-like parameter is sent with COM_STMT_SEND_LONG_DATA before the execute.
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT LENGTH(?), MD5(?), ?", (io.BytesIO(b"\x00" * 5000), "x", 7))
        found = rows(cur.fetchall())
        cur.close()
        return found
    if name == "rollback":
        conn.start_transaction()
        cur = conn.cursor(prepared=True)
        cur.execute("INSERT INTO log (msg) VALUES (?)", ("connector rolled back",))
        in_tx = conn.in_transaction
        conn.rollback()
        cur.execute("SELECT COUNT(*) FROM log WHERE msg = ?", ("connector rolled back",))
        found = {"in_tx": in_tx, "after_tx": conn.in_transaction, "after": rows(cur.fetchall())}
        cur.close()
        return found
    if name == "unique":
        cur = conn.cursor(prepared=True)
        try:
            cur.execute("INSERT INTO items (id, name) VALUES (?, ?)", (1, "dup"))
        except mysql.connector.Error as exc:
            return error_of(exc)
        finally:
            cur.close()
        return "no error"
    if name == "multi":
        cur = conn.cursor()
        cur.execute("SELECT 1 AS one; SELECT 'two' AS two")
        out = [rows(cur.fetchall())]
        while cur.nextset():
            out.append(rows(cur.fetchall()))
        return out
    if name == "call":
        cur = conn.cursor()
        cur.callproc("two_results", (4,))
        return [rows(result.fetchall()) for result in cur.stored_results()]
    raise KeyError(name)


# -- SQLAlchemy 2 ORM over PyMySQL -----------------------------------------------------------------


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
        args = {"ssl": {"ca": SSL_CA}} if SSL_CA else {}
        _engine = create_engine(
            f"mysql+pymysql://{USER}:{PASSWORD}@{HOST}:{PORT}/{DB}?charset=utf8mb4",
            pool_size=2, connect_args=args,
        )  # fmt: skip
    with Session(_engine) as session:
        if name == "basic":
            item = session.get(Item, int(arg or 1))
            return None if item is None else [item.id, item.name, text(item.score)]
        if name == "orm_tx":
            with session.begin():
                session.add(Item(name=f"orm {arg}", score=decimal.Decimal("2.25")))
            found = session.scalars(select(Item).where(Item.name == f"orm {arg}")).one()
            return [found.id, found.name, text(found.score)]
        if name == "rollback":
            session.add(Item(name="orm rolled back", score=None))
            session.flush()
            session.rollback()
            return session.scalars(select(Item).where(Item.name == "orm rolled back")).all() == []
        if name == "types":
            return rows(session.connection().exec_driver_sql(TYPES_SQL).all())
        if name == "multi":
            # Several result sets come through the DBAPI cursor under SQLAlchemy's connection.
            cursor = session.connection().connection.cursor()
            cursor.execute("CALL two_results(5)")
            out = [rows(cursor.fetchall())]
            while cursor.nextset():
                out.append(rows(cursor.fetchall()) if cursor.description else None)
            cursor.close()
            return out
        if name == "unique":
            try:
                with session.begin():
                    session.add(Item(id=1, name="dup", score=None))
            except IntegrityError as exc:
                return error_of(exc)
            return "no error"
    raise KeyError(name)


# -- authentication ------------------------------------------------------------------------------


def auth_scenario(user: str, driver: str) -> Any:
    """Connect as ``user`` (password from AUTH_USERS) with a fresh connection; who are we?"""
    password = json.loads(os.environ.get("AUTH_USERS", "{}")).get(user, "")
    if driver == "mysqlclient":
        conn = MySQLdb.connect(host=HOST, port=PORT, user=user, password=password, database=DB)
    elif driver == "connector":
        conn = mysql.connector.connect(
            host=HOST, port=PORT, user=user, password=password, database=DB, use_pure=True,
            ssl_disabled=True, auth_plugin="caching_sha2_password",
        )  # fmt: skip
    else:
        conn = pymysql.connect(host=HOST, port=PORT, user=user, password=password, database=DB)
    try:
        cur = conn.cursor()
        cur.execute("SELECT CURRENT_USER(), 1 + 1")
        return rows(cur.fetchall())
    finally:
        conn.close()


def ssl_scenario(name: str, arg: str) -> Any:
    conn = pymysql_conn()
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    cipher = cur.fetchone()
    cur.execute("SELECT CURRENT_USER()")
    return {
        "app_tls": isinstance(conn._sock, ssl.SSLSocket),
        "tls_to_server": bool(cipher and cipher[1]),
        "user": cur.fetchone()[0],
    }


# -- HTTP ------------------------------------------------------------------------------------------

DRIVERS: dict[str, Callable[[str, str], Any]] = {
    "pymysql": pymysql_scenario,
    "mysqlclient": mysqlclient_scenario,
    "connector": connector_scenario,
    "connector-c": lambda name, arg: connector_scenario(name, arg, pure=False),
    "sqlalchemy": sqlalchemy_scenario,
    "auth": auth_scenario,
    "ssl": ssl_scenario,
}


async def run(request: Request) -> JSONResponse:
    driver = request.path_params["driver"]
    scenario = request.path_params["scenario"]
    arg = request.query_params.get("arg", "")
    handler = DRIVERS.get(driver)
    if handler is None:
        return JSONResponse({"unknown driver": driver}, status_code=404)
    try:
        result = handler(scenario, arg)
    except KeyError as exc:
        return JSONResponse({"unknown scenario": str(exc)}, status_code=404)
    except Exception as exc:  # the report shows what the database said
        return JSONResponse({"failed": repr(exc)[:500]}, status_code=500)
    return JSONResponse({"result": json.loads(json.dumps(result, default=str))})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/health", health), Route("/{driver}/{scenario}", run)])

if __name__ == "__main__":
    print(f"MYSQLAPP_DB={HOST}:{PORT}", flush=True)
    port = int(os.environ.get("PORT", sys.argv[1] if len(sys.argv) > 1 else "8000"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
