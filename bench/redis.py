"""Benchmark: redis-benchmark direct, through the Redis record proxy, and against the mock server.

    .venv/bin/python bench/redis.py [--runs 3] [--requests 20000]

Starts a redis-server (no persistence, a temporary directory under bench/.work), then runs
``redis-benchmark -t get,set -n N -q -P 1`` and the same with ``-P 16`` against these targets,
interleaved, ``--runs`` times:

- ``direct``: redis-server itself;
- ``haproxy``: HAProxy in ``mode tcp`` with ``nbthread 1`` (one thread, like wiretape's one
  event loop) forwarding to the same redis-server and doing nothing else (``bench/ceiling.py``):
  the ceiling of any user-space proxy on this machine. Skipped with a message when haproxy is
  not installed;
- ``record``: wiretape's Redis record proxy in front of it, exactly as ``wiretape record`` serves
  a ``protocol: redis`` dependency (``RedisRecordHooks`` on a ``Listener``, uvloop when
  installed, a ``Recorder`` writing a real set). No inbound test is in flight, so every exchange is
  a session mock, written to the set's journal before the next one is kept;
- ``forward``: the same record proxy with parsing switched off from the first byte (what the
  connection falls back to after a parse failure): the cost of forwarding alone;
- ``replay``: wiretape's Redis mock server answering from the set the first record run wrote
  (``load_set``, ``MockIndex``, ``RedisMockServer``), as ``wiretape test`` serves it between
  tests;
- ``floor``: the least a Python server can do to answer this load, on the same event loop: an
  asyncio ``Protocol`` that splits each read into commands and answers ``SET`` with ``+OK`` and
  ``GET`` with a fixed value from a table, matching and recording nothing. It is the ceiling of
  any mock server written in Python on this machine, as HAProxy is of any proxy.

The proxy and the servers run in their own process (this file with ``serve-record``,
``serve-forward``, ``serve-mock`` or ``serve-floor``). Prints the median requests/s of the runs
and the ratio to ``direct`` (the median of the per-run ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work" / "redis"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ceiling import haproxy, skip_message  # noqa: E402
from tests.helpers.procs import Proc, free_port, wait_for_port  # noqa: E402

TESTS = ("SET", "GET")
_LINE = re.compile(r"([A-Z]+): ([0-9.]+) requests per second")


# -- the servers, in their own process ----------------------------------------------------------


async def serve_record(upstream: str, port: int, sets: Path, *, parse: bool = True) -> None:
    import wiretape
    from wiretape.config import DepConfig
    from wiretape.model import DepInfo, SetInfo
    from wiretape.proxy import redis as redis_proxy
    from wiretape.proxy.redis import RedisRecordHooks

    if not parse:
        plain_init = redis_proxy._RecordConnection.__init__

        def forward_only(self: Any, hooks: Any, client: Any) -> None:
            plain_init(self, hooks, client)
            self.parsing = False

        redis_proxy._RecordConnection.__init__ = forward_only  # type: ignore[method-assign]

    from wiretape.proxy.server import Listener
    from wiretape.runner.recorder import Recorder
    from wiretape.store.writer import SetWriter

    dep = DepConfig("cache", "redis", upstream)
    info = SetInfo(
        name="bench",
        created=time.time(),
        app_command="redis-benchmark",
        deps=(DepInfo("cache", "redis", upstream),),
        wiretape_version=wiretape.__version__,
    )
    writer = SetWriter(sets, info, overwrite=True)
    recorder = Recorder(writer)
    listener = Listener("dep cache", RedisRecordHooks(recorder, dep).serve, "127.0.0.1", port)
    await listener.start()
    await _until_signalled()
    await listener.stop(grace=1.0)
    writer.close()
    print(f"serve-record: {recorder.mocks} mocks", flush=True)


async def serve_mock(set_dir: Path, port: int) -> None:
    from wiretape.config import DepConfig
    from wiretape.match.index import MockIndex
    from wiretape.proxy.redis import RedisMockServer
    from wiretape.proxy.server import Listener
    from wiretape.store.reader import load_set, pinned

    test_set = load_set(set_dir)
    index = MockIndex(test_set.session, test_set.mocks)
    index.begin_test(None)
    dep = DepConfig("cache", "redis", "127.0.0.1:1")
    listener = Listener("mock cache", RedisMockServer(dep, index).serve, "127.0.0.1", port)
    await listener.start()
    with pinned():  # as ``wiretape test`` serves its tests
        await _until_signalled()
    await listener.stop(grace=1.0)
    print(f"serve-mock: {len(index.misses(None))} misses", flush=True)


_FLOOR_ANSWERS = {b"SET": b"+OK\r\n", b"GET": b"$3\r\nxxx\r\n", b"CONFIG": b"*0\r\n"}


class _Floor(asyncio.Protocol):
    """See ``floor`` above: RESP arrays of bulk strings in, a fixed answer per command out."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        answers = []
        pos, end = 0, len(buf)
        while pos < end:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            count, at, name = int(buf[pos + 1 : eol]), eol + 2, b""
            for i in range(count):
                head = buf.find(b"\r\n", at)
                if head < 0:
                    break
                stop = head + 2 + int(buf[at + 1 : head])
                if stop + 2 > end:
                    break
                if i == 0:
                    name = buf[head + 2 : stop].upper()
                at = stop + 2
            else:
                answers.append(_FLOOR_ANSWERS.get(name, b"+OK\r\n"))
                pos = at
                continue
            break
        self.buffer = buf[pos:]
        if answers and self.transport is not None:
            self.transport.write(b"".join(answers))


async def serve_floor(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Floor, "127.0.0.1", port)
    await _until_signalled()
    server.close()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# -- the driver ---------------------------------------------------------------------------------


def benchmark(port: int, pipeline: int, requests: int) -> dict[str, float]:
    """Requests/s per test of one ``redis-benchmark -t get,set -q`` run."""
    out = subprocess.run(
        [
            "redis-benchmark",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "get,set",
            "-n",
            str(requests),
            "-q",
            "-P",
            str(pipeline),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    found: dict[str, float] = {}
    for line in out.stdout.replace("\r", "\n").splitlines():
        m = _LINE.search(line)
        if m:
            found[m.group(1)] = float(m.group(2))
    missing = [t for t in TESTS if t not in found]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no result for {missing}:\n{out.stdout}")
    return found


def start(args: list[str], name: str, port: int) -> Proc:
    proc = Proc(args, name=name, port=port, log_dir=WORK / "logs")
    wait_for_port(port, timeout=60, proc=proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None:
        sys.exit("redis-server and redis-benchmark are needed (apt-get install redis-server)")
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "data").mkdir(parents=True)
    redis_port = free_port()
    server = start(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(WORK / "data"),
        ],
        "redis-server",
        redis_port,
    )
    me = [sys.executable, str(Path(__file__).resolve())]
    results: dict[tuple[str, int, str], list[float]] = {}
    replay_set: Path | None = None
    targets = ["direct", "haproxy", "forward", "record", "replay", "floor"]
    no_haproxy = skip_message()
    if no_haproxy is not None:
        print(no_haproxy, flush=True)
        targets.remove("haproxy")
    try:
        for run in range(args.runs):
            order = list(targets)
            if run % 2:
                order.reverse()
            if replay_set is None:  # the replay needs a recording first
                order = list(targets)
            for target in order:
                proc: Proc | None = None
                port = redis_port
                if target == "haproxy":
                    with haproxy(f"127.0.0.1:{redis_port}") as ceiling:
                        measure(results, run, target, ceiling.port or 0, args.requests)
                    continue
                if target in ("record", "forward"):
                    port = free_port()
                    sets = WORK / f"sets-{run}-{target}"
                    argv = [f"serve-{target}", f"127.0.0.1:{redis_port}", str(port), str(sets)]
                    proc = start([*me, *argv], f"serve-{target}", port)
                elif target == "floor":
                    port = free_port()
                    proc = start([*me, "serve-floor", str(port)], "serve-floor", port)
                elif target == "replay":
                    assert replay_set is not None
                    port = free_port()
                    argv = ["serve-mock", str(replay_set), str(port)]
                    proc = start([*me, *argv], "serve-mock", port)
                try:
                    measure(results, run, target, port, args.requests)
                finally:
                    if proc is not None:
                        proc.popen.send_signal(signal.SIGTERM)
                        proc.popen.wait(60)
                        print(proc.output().strip(), flush=True)
                        proc.stop()
                if target == "record" and replay_set is None:
                    replay_set = WORK / f"sets-{run}-record" / "bench"
    finally:
        server.stop()
    report(results, args.runs, args.requests)


def measure(
    results: dict[tuple[str, int, str], list[float]],
    run: int,
    target: str,
    port: int,
    requests: int,
) -> None:
    """Run ``-P 1`` and ``-P 16`` against `port` and add the rates to `results`."""
    for pipeline in (1, 16):
        found = benchmark(port, pipeline, requests)
        for test, rate in found.items():
            if test in TESTS:
                results.setdefault((target, pipeline, test), []).append(rate)
        print(f"run {run + 1} {target:>7} -P {pipeline:<2} {found}", flush=True)


def report(results: dict[tuple[str, int, str], list[float]], runs: int, requests: int) -> None:
    columns = [("haproxy", "haproxy (ceiling)"), ("forward", "forward only"),
               ("record", "record"), ("replay", "replay"), ("floor", "Python floor")]  # fmt: skip
    columns = [(t, title) for t, title in columns if (t, 1, TESTS[0]) in results]
    print(f"\nmedian of {runs} runs, {requests} requests each (requests/s; ratio to direct)")
    print("| test | -P | direct | " + " | ".join(f"{title} | ratio" for _, title in columns) + " |")
    print("|---|---:|---:|" + "---:|---:|" * len(columns))
    for pipeline in (1, 16):
        for test in TESTS:
            direct = results[("direct", pipeline, test)]
            row = [test, str(pipeline), f"{statistics.median(direct):,.0f}"]
            for target, _ in columns:
                rates = results[(target, pipeline, test)]
                ratios = [r / d for r, d in zip(rates, direct, strict=True)]
                row += [f"{statistics.median(rates):,.0f}", f"{statistics.median(ratios):.2f}×"]
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-floor":
        from wiretape.proxy.server import install_fast_loop

        install_fast_loop()
        asyncio.run(serve_floor(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] in ("serve-record", "serve-forward", "serve-mock"):
        from wiretape.proxy.server import install_fast_loop

        install_fast_loop()
        if sys.argv[1] in ("serve-record", "serve-forward"):
            parse = sys.argv[1] == "serve-record"
            target = serve_record(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), parse=parse)
            asyncio.run(target)
        else:
            asyncio.run(serve_mock(Path(sys.argv[2]), int(sys.argv[3])))
    else:
        main()
