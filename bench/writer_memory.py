"""Memory and time of a recording's writer when it stops after a long uninterrupted load.

    .venv/bin/python bench/writer_memory.py [--tests 100000] [--horizon N]

Appends ``--tests`` inbound exchanges to a ``SetWriter`` as fast as it takes them (so the
writer, which writes YAML only in quiet moments, has all of them left when it closes), each a
``POST /login`` answered with a new token: a value every later request could chain to. Then
closes it, which writes every test's YAML and finds the chains, and prints the process's
resident memory before and after, its peak, and the time ``close`` took. ``--horizon`` runs the
chain detector with another horizon than ``wiretape.chains.HORIZON`` (a large one: unbounded).
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from wiretape import chains
from wiretape.model import SetInfo
from wiretape.store import writer as writer_module

REQUEST = (
    b"POST /login HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n"
    b'Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{"user": "alice"}'
)


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", type=int, default=100_000)
    ap.add_argument("--horizon", type=int, default=chains.HORIZON)
    args = ap.parse_args()
    writer_module.Detector = functools.partial(chains.Detector, horizon=args.horizon)  # type: ignore[misc]
    root = Path(tempfile.mkdtemp(prefix="wt-writer-memory-"))
    try:
        info = SetInfo(name="load", created=time.time(), app_command="app")
        writer = writer_module.SetWriter(root, info)
        before = rss_mib()
        for n in range(args.tests):
            body = json.dumps({"token": secrets.token_urlsafe(24)}).encode()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            response = head + b"content-length: %d\r\n\r\n%s" % (len(body), body)
            writer.add_wire_test(
                f"{n + 1:06d}-post-login", REQUEST, response, time.time(), 1e-3, []
            )
        t0 = time.perf_counter()
        writer.close()
        took = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"tests {args.tests:,}, horizon {args.horizon:,}: RSS {before:.0f} MiB before close, "
            f"{rss_mib():.0f} MiB after, peak {peak:.0f} MiB; close {took:.1f} s "
            f"({took / args.tests * 1e3:.2f} ms per test)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
