"""PostgreSQL: pgbench direct, through the record proxy, and against the replay mock server.

    .venv/bin/python bench/postgres.py [--transactions N] [--clients C] [--rounds R]

A throwaway PostgreSQL 15 (initdb in a temporary directory, as the test suite does) is
initialized with ``pgbench -i -s 1``. Two workloads run four ways each, in alternating rounds:
``-S`` (select only) and a small read/write script (SELECT + UPDATE of one account). Every run
uses a fixed ``--random-seed`` and a fixed transaction count per client, so the replay sees the
same statements as the recording; the recording made in each round is the one replayed in it.
All runs use ``sslmode=disable`` so the ways compare the same plain-TCP protocol (the direct
server has no TLS). Results: median tps per way and the ratios to direct (the median of the
per-round ratios), as a Markdown table.

The ways: ``direct`` (the server itself); ``haproxy``, HAProxy in ``mode tcp`` with
``nbthread 1`` (one thread, like wiretape's one event loop) forwarding to the same server and
doing nothing else (``bench/ceiling.py``), the ceiling of any user-space proxy on this machine,
skipped with a message when haproxy is not installed; ``record`` (wiretape's record proxy) and
``replay`` (its mock server), both served by ``bench/pg_serve.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ceiling import haproxy, skip_message  # noqa: E402
from tests.helpers.procs import Proc, free_port, wait_for_port  # noqa: E402
from tests.helpers.servers import postgres_server  # noqa: E402

READ_WRITE = """\
\\set aid random(1, 100000 * :scale)
\\set delta random(-5000, 5000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
"""


def pgbench(bin_dir: Path, port: int, args: list[str], password: str) -> float:
    env = dict(os.environ, PGPASSWORD=password, PGSSLMODE="disable")
    done = subprocess.run(
        [
            str(bin_dir / "pgbench"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "wiretape",
            "-n",
            *args,
            "app",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
    found = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if found is None:
        raise RuntimeError(f"no tps in pgbench output:\n{done.stdout}")
    return float(found.group(1))


def serve(mode: str, set_dir: Path, upstream: str | None) -> Proc:
    port = free_port()
    args = [
        sys.executable,
        str(ROOT / "bench" / "pg_serve.py"),
        mode,
        "--set",
        str(set_dir),
        "--port",
        str(port),
    ]
    if upstream:
        args += ["--upstream", upstream]
    proc = Proc(args, name=f"pg-{mode}", port=port, env={"PYTHONPATH": str(ROOT / "src")})
    wait_for_port(port, timeout=30, proc=proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=2000, help="per client")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wt-bench-pg-"))
    script = work / "rw.sql"
    script.write_text(READ_WRITE)
    workloads = {
        "select-only (-S)": ["-S", "-M", "extended"],
        "read/write script": ["-f", str(script), "-M", "extended"],
    }
    results: dict[tuple[str, str], list[float]] = {}
    ways = ["direct", "haproxy", "record", "replay"]
    no_haproxy = skip_message()
    if no_haproxy is not None:
        print(no_haproxy, flush=True)
        ways.remove("haproxy")
    try:
        with postgres_server() as pg:
            env = dict(os.environ, PGPASSWORD=pg.password, PGSSLMODE="disable")
            subprocess.run(
                [
                    str(pg.bin_dir / "pgbench"),
                    "-i",
                    "-q",
                    "-s",
                    "1",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(pg.port),
                    "-U",
                    pg.user,
                    pg.database,
                ],
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )
            common = [
                "-c",
                str(opts.clients),
                "-j",
                "2",
                "-t",
                str(opts.transactions),
                "--random-seed=7",
            ]
            for rnd in range(opts.rounds):
                for name, args in workloads.items():
                    run = [*args, *common]
                    direct = pgbench(pg.bin_dir, pg.port, run, pg.password)
                    ceiling = None
                    if "haproxy" in ways:
                        with haproxy(pg.address) as front:
                            ceiling = pgbench(pg.bin_dir, front.port or 0, run, pg.password)
                    set_dir = work / f"set-{rnd}-{len(results)}"
                    rec = serve("record", set_dir, pg.address)
                    try:
                        recorded = pgbench(pg.bin_dir, rec.port or 0, run, pg.password)
                    finally:
                        rec.stop(timeout=60)
                    rep = serve("replay", set_dir, None)
                    try:
                        replayed = pgbench(pg.bin_dir, rep.port or 0, run, pg.password)
                    finally:
                        rep.stop()
                        misses = re.search(r"(\d+) misses", rep.output())
                        if misses is None or misses.group(1) != "0":
                            print(f"warning: replay misses: {rep.output()[-500:]}", flush=True)
                    measured = {
                        "direct": direct,
                        "haproxy": ceiling,
                        "record": recorded,
                        "replay": replayed,
                    }
                    for way in ways:
                        tps = measured[way]
                        assert tps is not None
                        results.setdefault((name, way), []).append(tps)
                    shown = ", ".join(f"{way} {results[(name, way)][-1]:.0f}" for way in ways)
                    print(f"round {rnd + 1} {name}: {shown} tps", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"pgbench, {opts.clients} clients, {opts.transactions} transactions each, "
        f"{opts.rounds} rounds, medians ({time.strftime('%Y-%m-%d')})"
    )
    print()
    others = ways[1:]
    print(
        "| workload | "
        + " | ".join(f"{way} tps" for way in ways)
        + " | "
        + " | ".join(f"{way} / direct" for way in others)
        + " |"
    )
    print("|---|" + "---:|" * (len(ways) + len(others)))
    for name in workloads:
        direct_tps = results[(name, "direct")]
        medians = [f"{statistics.median(results[(name, way)]):.0f}" for way in ways]
        ratios = [
            statistics.median(t / d for t, d in zip(results[(name, way)], direct_tps, strict=True))
            for way in others
        ]
        print(
            f"| {name} | "
            + " | ".join(medians)
            + " | "
            + " | ".join(f"{r:.2f}x" for r in ratios)
            + " |"
        )


if __name__ == "__main__":
    main()
