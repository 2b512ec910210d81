"""Serve one dependency of a recorded test set with wiretape's mock server, as `wiretape test` does.

    python bench/wt_mockserver.py --set DIR --dep NAME --port PORT [--cprofile OUT]

Loads the set with ``load_set``, builds ``MockIndex`` + ``MockHttpServer`` + ``Listener`` exactly
as ``wiretape.runner.replay`` does (between tests, so session mocks answer), on uvloop when it is
installed, and serves until SIGTERM/SIGINT. Prints one line with the load and index-build times.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from wiretape.match.index import MockIndex
from wiretape.proxy.mockserver import MockHttpServer
from wiretape.proxy.server import Listener, install_fast_loop
from wiretape.store.reader import load_set, pinned


async def serve(set_dir: Path, dep: str, port: int) -> None:
    t0 = time.perf_counter()
    test_set = load_set(set_dir)
    t1 = time.perf_counter()
    index = MockIndex(test_set.session, test_set.mocks)
    index.begin_test(None)
    t2 = time.perf_counter()
    listener = Listener(f"mock {dep}", MockHttpServer(dep, index).serve, "127.0.0.1", port)
    await listener.start()
    mocks = len(test_set.session) + sum(len(m) for m in test_set.mocks.values())
    print(
        f"wt_mockserver: {mocks} mocks; load_set {t1 - t0:.3f} s; index {t2 - t1:.3f} s; "
        f"listening on {listener.address}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with pinned():  # as ``wiretape test`` serves its tests
        await stop.wait()
    await listener.stop(grace=0.5)
    misses = len(index.misses(None))
    print(f"wt_mockserver: stopped; {misses} misses", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="set_dir", type=Path, required=True)
    parser.add_argument("--dep", default="api")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cprofile", type=Path, help="write a cProfile of the serving process")
    args = parser.parse_args()
    install_fast_loop()
    if args.cprofile is None:
        asyncio.run(serve(args.set_dir, args.dep, args.port))
        return
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        asyncio.run(serve(args.set_dir, args.dep, args.port))
    finally:
        prof.disable()
        prof.dump_stats(str(args.cprofile))
        print(f"wt_mockserver: profile in {args.cprofile}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
