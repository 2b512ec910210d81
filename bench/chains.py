"""Chain detection (``wiretape templatize``, also run when ``record`` stops) against set size.

    .venv/bin/python bench/chains.py [--sizes 1000,2000,4000,8000,16000,32000]
                                     [--every-value-up-to 2000] [--rounds 3]

Builds an order-taking set: each test posts an order and is answered with a new order id; every
tenth test reads back the order made five tests before, so the set has real chains. Times
``chains.detect`` on it, and the definition written the slow way (every value handed out so far
searched for in every later request, as ``detect`` worked before it indexed the values) up to
``--every-value-up-to`` tests. Prints the best of ``--rounds`` as ms and µs per test; checks that
both find the same chains.

    .venv/bin/python bench/chains.py --memory [--sizes 20000,100000,200000]

prints instead what a ``Detector`` holds after each size (tracemalloc), with its default horizon
and with none: the memory a recording's writer spends on chains.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections.abc import Callable, Sequence

from wiretape import chains
from wiretape.model import Chain, HttpRequest, HttpResponse, TestCase

JSON = (("Content-Type", "application/json"),)
CLIENT = (("Host", "shop.internal"), ("User-Agent", "shop-client/2.1"), ("Accept", "*/*"))


def order_set(n: int) -> list[TestCase]:
    tests = []
    for i in range(n):
        if i % 10 == 9:
            req = HttpRequest("GET", f"/api/orders/ord-{i - 5:08d}", CLIENT)
        else:
            body = {"sku": f"sku-{i % 17}", "quantity": 1 + i % 3, "note": "leave at the door"}
            req = HttpRequest("POST", "/api/orders", (*CLIENT, *JSON), json.dumps(body).encode())
        answer = {
            "id": f"ord-{i:08d}",
            "status": "pending",
            "created": f"2026-11-21T10:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z",
            "payment": {"intent": f"pi_{i:012x}", "state": "requires_capture"},
        }
        resp = HttpResponse(201, "Created", JSON, json.dumps(answer).encode())
        tests.append(TestCase(id=f"{i + 1:06d}-order", request=req, response=resp))
    return tests


def detect_by_every_value(tests: Sequence[TestCase]) -> dict[str, tuple[Chain, ...]]:
    latest: dict[str, tuple[str, str]] = {}
    sent_before: set[str] = set()
    found_chains: dict[str, tuple[Chain, ...]] = {}
    for test in tests:
        found = [
            Chain(source=source, path=path, value=value, targets=tuple(where))
            for value, (source, path) in latest.items()
            if (where := chains.uses(test.request, value))
        ]
        if found:
            found_chains[test.id] = tuple(found)
        own = chains._Searched.of(test.request).strings()
        sent_before.update(own)
        if test.response is None:
            continue
        for path, value in chains.sources(test.response):
            if value in sent_before or any(value in s for s in own):
                continue
            latest[value] = (test.id, path)
    return found_chains


def best(
    run: Callable[[Sequence[TestCase]], object], tests: Sequence[TestCase], rounds: int
) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = run(tests)
        times.append(time.perf_counter() - t0)
    return min(times), result


def held(tests: Sequence[TestCase], horizon: int) -> float:
    """MiB a ``Detector`` with ``horizon`` holds once it has taken ``tests`` (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        detector = chains.Detector(horizon=horizon)
        for test in tests:
            detector.add(test)
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size / (1 << 20)


def memory(sizes: Sequence[int]) -> None:
    print(f"| tests | held, horizon {chains.HORIZON:,} (MiB) | held, unbounded (MiB) |")
    print("|---:|---:|---:|")
    for n in sizes:
        tests = order_set(n)
        bounded, unbounded = held(tests, chains.HORIZON), held(tests, n + 1)
        print(f"| {n:,} | {bounded:.1f} | {unbounded:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,2000,4000,8000,16000,32000")
    ap.add_argument("--every-value-up-to", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--memory", action="store_true", help="the detector's memory against set size instead"
    )
    args = ap.parse_args()
    if args.memory:
        memory([int(s) for s in args.sizes.split(",")])
        return
    print("| tests | chains | `detect` ms | µs/test | every value searched, ms | µs/test |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        tests = order_set(n)
        took, found = best(chains.detect, tests, args.rounds)
        assert isinstance(found, dict)
        slow = "| |"
        if n <= args.every_value_up_to:
            slow_took, slow_found = best(detect_by_every_value, tests, 1)
            assert slow_found == found, "the two ways found different chains"
            slow = f"| {slow_took * 1e3:,.0f} | {slow_took / n * 1e6:,.0f} |"
        chained = sum(len(c) for c in found.values())
        print(f"| {n:,} | {chained:,} | {took * 1e3:,.1f} | {took / n * 1e6:.1f} {slow}")


if __name__ == "__main__":
    main()
