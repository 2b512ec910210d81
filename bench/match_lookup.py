"""Time MockIndex.lookup against indexes of 1k and 10k distinct HTTP mocks.

Run: python bench/match_lookup.py
Prints the time to build each index and the mean µs per hit (a mock answers) and per miss
(explained with the closest candidates). Session mocks are used so that every hit can repeat.
"""

from __future__ import annotations

import json
import random
import time

from wiretape.match.index import MockIndex
from wiretape.model import HttpRequest, HttpResponse, Mock

JSON_CT = (("Content-Type", "application/json"), ("Accept", "application/json"))
OK = HttpResponse(200, "OK", (("Content-Type", "application/json"),), b'{"ok":true}')
LOOKUPS = 20_000
MISSES = 20


def request(i: int) -> HttpRequest:
    if i % 2:
        return HttpRequest("GET", f"/v1/items/{i}?limit={i % 50}&expand=owner", JSON_CT)
    body = json.dumps({"item": i, "amount": i * 3, "tags": ["a", "b"], "meta": {"n": i}})
    return HttpRequest("POST", f"/v1/orders/{i % 97}", JSON_CT, body.encode())


def bench(size: int) -> None:
    mocks = [
        Mock(id=f"m{i}", dep="api", protocol="http", request=request(i), response=OK, test=None)
        for i in range(size)
    ]
    started = time.perf_counter()
    index = MockIndex(mocks, {})
    built = time.perf_counter() - started

    rng = random.Random(0)
    live = [request(rng.randrange(size)) for _ in range(LOOKUPS)]
    started = time.perf_counter()
    for r in live:
        index.lookup("api", r)
    hit_us = (time.perf_counter() - started) / LOOKUPS * 1e6

    absent = [request(size + i) for i in range(MISSES)]
    started = time.perf_counter()
    for r in absent:
        index.lookup("api", r)
    miss_us = (time.perf_counter() - started) / MISSES * 1e6

    print(
        f"{size:>6} mocks: build {built * 1e3:8.1f} ms   "
        f"hit {hit_us:7.1f} µs/lookup   miss {miss_us:10.1f} µs/lookup"
    )


def main() -> None:
    for size in (1_000, 10_000):
        bench(size)


if __name__ == "__main__":
    main()
