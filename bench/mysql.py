"""MySQL/MariaDB: mysqlslap direct, through the record proxy, and against the replay mock server.

    .venv/bin/python bench/mysql.py [--queries N] [--clients C] [--rounds R]
    .venv/bin/python bench/mysql.py serve record --upstream HOST:PORT --set DIR --port PORT
    .venv/bin/python bench/mysql.py serve replay --set DIR --port PORT

A throwaway MariaDB (mariadb-install-db in a temporary directory, as the test suite does) gets a
table of 10,000 rows. Two workloads run four ways each, in alternating rounds, with
``mysqlslap`` (``mariadb-slap``): point reads by primary key, and a read/write mix (a point
read, an UPDATE of the same row, a short range scan). The statements are a fixed list, so the
replay sees the same statements as the recording; the recording made in each round is the one
replayed in it. Results: median queries/s per way and the ratios to direct (the median of the
per-round ratios), as Markdown.

The ways: ``direct`` (the server itself); ``haproxy``, HAProxy in ``mode tcp`` with
``nbthread 1`` (one thread, like wiretape's one event loop) forwarding to the same server and
doing nothing else (``bench/ceiling.py``), the ceiling of any user-space proxy on this machine,
skipped with a message when haproxy is not installed; ``record`` and ``replay`` (below).

``serve`` runs one dependency the way ``wiretape record`` / ``wiretape test`` build it:
``record`` is ``SetWriter`` + ``Recorder`` + ``MysqlRecordHooks`` (no test in flight, so every
exchange is a session mock); ``replay`` is ``MockIndex`` + ``MysqlMockServer`` between tests.
Both run on uvloop when it is installed and serve until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from wiretape.config import DepConfig  # noqa: E402
from wiretape.match.index import MockIndex  # noqa: E402
from wiretape.model import DepInfo, SetInfo  # noqa: E402
from wiretape.proxy.mysql import MysqlMockServer, MysqlRecordHooks  # noqa: E402
from wiretape.proxy.server import Handler, Listener, install_fast_loop  # noqa: E402
from wiretape.proxy.tls import client_context  # noqa: E402
from wiretape.runner.recorder import Recorder  # noqa: E402
from wiretape.store.reader import load_set, pinned  # noqa: E402
from wiretape.store.writer import SetWriter  # noqa: E402

ROWS = 10_000


# -- serve ---------------------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    dep = DepConfig("db", "mysql", args.upstream or "127.0.0.1:1", upstream_tls="disable")
    writer: SetWriter | None = None
    index: MockIndex | None = None
    handler: Handler
    if args.mode == "record":
        info = SetInfo(
            args.set_dir.name, time.time(), "bench", (DepInfo("db", "mysql", dep.upstream),)
        )
        writer = SetWriter(args.set_dir.parent, info, overwrite=True)
        handler = MysqlRecordHooks(
            Recorder(writer), dep, ca=None, upstream_tls=client_context()
        ).serve
    else:
        test_set = load_set(args.set_dir)
        index = MockIndex(test_set.session, test_set.mocks)
        index.begin_test(None)
        handler = MysqlMockServer(dep, index, ca=None).serve
    listener = Listener("bench db", handler, "127.0.0.1", args.port)
    await listener.start()
    print(f"mysql serve: {args.mode} listening on {listener.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with pinned() if index is not None else contextlib.nullcontext():  # as ``wiretape test``
        await stop.wait()
    await listener.stop(grace=0.5)
    if writer is not None:
        writer.close()
    if index is not None:
        print(f"mysql serve: {len(index.misses(None))} misses", flush=True)


# -- the benchmark -------------------------------------------------------------------------------


def workloads(seed: int, count: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    reads = [f"SELECT id, name, balance FROM accounts WHERE id = {rng.randint(1, ROWS)}"]
    reads += [
        f"SELECT id, name, balance FROM accounts WHERE id = {rng.randint(1, ROWS)}"
        for _ in range(count - 1)
    ]
    mixed = []
    for _ in range(count // 3):
        key = rng.randint(1, ROWS)
        mixed.append(f"SELECT id, name, balance FROM accounts WHERE id = {key}")
        mixed.append(
            f"UPDATE accounts SET balance = balance + {rng.randint(-50, 50)} WHERE id = {key}"
        )
        mixed.append(f"SELECT id, balance FROM accounts WHERE id BETWEEN {key} AND {key + 9}")
    return {"point reads": reads, "read/write mix": mixed}


def slap(port: int, user: str, password: str, query_file: Path, clients: int, count: int) -> float:
    """Queries per second of one mysqlslap run (every client runs the whole file)."""
    tool = shutil.which("mariadb-slap") or shutil.which("mysqlslap")
    assert tool is not None, "mysqlslap (mariadb-client) is not installed"
    done = subprocess.run(
        [tool, "--no-defaults", "-h", "127.0.0.1", "-P", str(port), "-u", user,
         f"--password={password}", "--create-schema=app", f"--query={query_file}",
         "--delimiter=;", f"--concurrency={clients}", "--iterations=1",
         f"--number-of-queries={count * clients}"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"mysqlslap failed: {done.stderr[-2000:]}")
    found = re.search(r"Average number of seconds to run all queries: ([0-9.]+)", done.stdout)
    if found is None:
        raise RuntimeError(f"no timing in mysqlslap output:\n{done.stdout}")
    return count * clients / float(found.group(1))


def start_serve(mode: str, set_dir: Path, upstream: str | None) -> object:
    from tests.helpers.procs import Proc, free_port, wait_for_port

    port = free_port()
    args = [sys.executable, str(Path(__file__).resolve()), "serve", mode, "--set", str(set_dir),
            "--port", str(port)]  # fmt: skip
    if upstream:
        args += ["--upstream", upstream]
    proc = Proc(args, name=f"mysql-{mode}", port=port, env={"PYTHONPATH": str(ROOT / "src")})
    wait_for_port(port, timeout=30, proc=proc)
    return proc


def bench(opts: argparse.Namespace) -> None:
    from ceiling import haproxy, skip_message
    from tests.helpers.mariadb_server import mariadb_server
    from tests.helpers.procs import Proc

    work = Path(tempfile.mkdtemp(prefix="wt-bench-mysql-"))
    loads = workloads(7, opts.queries)
    files: dict[str, tuple[Path, int]] = {}
    for name, statements in loads.items():
        path = work / f"{len(files)}.sql"
        path.write_text(";\n".join(statements) + ";\n")
        files[name] = (path, len(statements))
    results: dict[tuple[str, str], list[float]] = {}
    ways = ["direct", "haproxy", "record", "replay"]
    no_haproxy = skip_message()
    if no_haproxy is not None:
        print(no_haproxy, flush=True)
        ways.remove("haproxy")
    try:
        with mariadb_server() as db:
            values = ",".join(f"({i}, 'account {i}', {i % 997})" for i in range(1, ROWS + 1))
            db.sql(
                "CREATE TABLE accounts (id INT PRIMARY KEY, name VARCHAR(40), balance INT);\n"
                f"INSERT INTO accounts VALUES {values};\n",
                database="app",
            )
            for rnd in range(opts.rounds):
                for name, (path, count) in files.items():
                    run = (db.user, db.password, path, opts.clients, count)
                    direct = slap(db.port, *run)
                    ceiling = None
                    if "haproxy" in ways:
                        with haproxy(db.address) as front:
                            ceiling = slap(front.port or 0, *run)
                    set_dir = work / f"set-{rnd}-{len(results)}"
                    rec = start_serve("record", set_dir, db.address)
                    assert isinstance(rec, Proc)
                    try:
                        recorded = slap(rec.port or 0, *run)
                    finally:
                        rec.stop(timeout=60)
                    rep = start_serve("replay", set_dir, None)
                    assert isinstance(rep, Proc)
                    try:
                        replayed = slap(rep.port or 0, *run)
                    finally:
                        rep.stop()
                        misses = re.search(r"(\d+) misses", rep.output())
                        if misses is None or misses.group(1) != "0":
                            print(f"warning: replay misses: {rep.output()[-500:]}", flush=True)
                    measured = {"direct": direct, "haproxy": ceiling, "record": recorded,
                                "replay": replayed}  # fmt: skip
                    for way in ways:
                        qps = measured[way]
                        assert qps is not None
                        results.setdefault((name, way), []).append(qps)
                    shown = ", ".join(f"{way} {results[(name, way)][-1]:.0f}" for way in ways)
                    print(f"round {rnd + 1} {name}: {shown} queries/s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"mysqlslap, {opts.clients} clients, each running the whole statement list once, "
        f"{opts.rounds} rounds, medians ({time.strftime('%Y-%m-%d')})"
    )
    print()
    others = ways[1:]
    print("| workload | statements per client | " + " | ".join(f"{way} q/s" for way in ways)
          + " | " + " | ".join(f"{way} / direct" for way in others) + " |")  # fmt: skip
    print("|---|---:|" + "---:|" * (len(ways) + len(others)))
    for name, (_, count) in files.items():
        direct_qps = results[(name, "direct")]
        medians = [f"{statistics.median(results[(name, way)]):.0f}" for way in ways]
        ratios = [
            statistics.median(q / d for q, d in zip(results[(name, way)], direct_qps, strict=True))
            for way in others
        ]
        print(f"| {name} | {count} | " + " | ".join(medians) + " | "
              + " | ".join(f"{r:.2f}x" for r in ratios) + " |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve")
    serve_cmd.add_argument("mode", choices=["record", "replay"])
    serve_cmd.add_argument("--upstream")
    serve_cmd.add_argument("--set", dest="set_dir", type=Path, required=True)
    serve_cmd.add_argument("--port", type=int, required=True)
    parser.add_argument("--queries", type=int, default=3000, help="statements per client")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    if opts.command == "serve":
        install_fast_loop()
        asyncio.run(serve(opts))
    else:
        bench(opts)


if __name__ == "__main__":
    main()
