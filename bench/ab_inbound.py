"""Two revisions of the record proxy, side by side: req/s and CPU per request, interleaved.

    .venv/bin/python bench/ab_inbound.py REV_A REV_B [--rounds 4] [--config wiretape]
                                          [--target nginx] [--duration 4]

Each revision is checked out once into ``bench/.work/ab/<sha>`` (``git worktree``) and run as
``wiretape record`` exactly like the ``wiretape`` column of ``bench/run.py`` (same target, same
generated config), with its own ``src`` first on ``PYTHONPATH``. Rounds alternate the order
(A then B, B then A), so drift on a shared machine hits both alike. Each measurement is a warm-up
load then ``wrk -t1 -c8`` for ``--duration`` seconds; the CPU of the ``record`` process (user +
system, all threads) is divided by the requests wrk completed, and the time ``record`` takes to
stop (SIGINT to exit: the set's YAML files are written then) by the tests it wrote. Prints every
round and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

import inbound
from harness import REPO_ROOT, WORK, cpu_seconds, log, run_wrk

AB_DIR = WORK / "ab"


def checkout(rev: str) -> str:
    """The ``src`` folder of ``rev``, checked out once."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = AB_DIR / sha
    if not tree.exists():
        AB_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-f", str(tree), sha],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    return str(tree / "src")


def measure(
    src: str, target: str, config: str, duration: float
) -> tuple[float, float, float, float]:
    """req/s, user and system CPU µs per request of ``wiretape record`` from ``src``, and the
    ms per recorded test it took to stop."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = src
    try:
        with inbound.stack(inbound.TARGETS[target], config) as front:
            run_wrk(front.url, conns=8, duration=1.5)
            cpu0 = cpu_seconds(front.proc.pid)
            res = run_wrk(front.url, conns=8, duration=duration)
            cpu1 = cpu_seconds(front.proc.pid)
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
    n = max(res.requests, 1)
    stop = front.notes["stop_s"] / max(front.notes["tests_written"], 1) * 1e3
    return res.rps, (cpu1[0] - cpu0[0]) / n * 1e6, (cpu1[1] - cpu0[1]) / n * 1e6, stop


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev_a")
    p.add_argument("rev_b")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument(
        "--config",
        default="wiretape",
        choices=["wiretape", "wiretape-nopoll", "wiretape-concurrent"],
    )
    p.add_argument("--target", default="nginx", choices=sorted(inbound.TARGETS))
    p.add_argument("--duration", type=float, default=4.0)
    args = p.parse_args()
    revs = {args.rev_a: checkout(args.rev_a), args.rev_b: checkout(args.rev_b)}
    results: dict[str, list[tuple[float, float, float, float]]] = {rev: [] for rev in revs}
    for rnd in range(args.rounds):
        order = list(revs) if rnd % 2 == 0 else list(reversed(revs))
        for rev in order:
            rps, user, system, stop = measure(revs[rev], args.target, args.config, args.duration)
            results[rev].append((rps, user, system, stop))
            log(
                f"round {rnd + 1} {rev}: {rps:,.0f} req/s, "
                f"{user + system:.0f} µs CPU/request ({user:.0f} user + {system:.0f} sys), "
                f"stop {stop:.3f} ms/test"
            )
    print(f"\n{args.target}, `{args.config}`, wrk -t1 -c8, median of {args.rounds} rounds\n")
    print("| revision | req/s | CPU µs/request | user | sys | stop ms/test |")
    print("|---|---:|---:|---:|---:|---:|")
    for rev, rows in results.items():
        rps = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] + r[2] for r in rows)
        user = statistics.median(r[1] for r in rows)
        system = statistics.median(r[2] for r in rows)
        stop = statistics.median(r[3] for r in rows)
        print(f"| `{rev}` | {rps:,.0f} | {cpu:.0f} | {user:.0f} | {system:.0f} | {stop:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
