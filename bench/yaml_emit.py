"""Micro benchmark: test documents dumped and loaded, PyYAML's way and the store's.

    python bench/yaml_emit.py [--docs 5000] [--rounds 5]

Builds ``--docs`` documents with ``format.test_to_doc`` from a small, realistic JSON request and
response (a few dozen headers and fields, a multi-line text error on some), checks that both
paths load back equal, and prints the best-of-rounds µs per document for each: dumping with
PyYAML's dumper and with the store's emitter, then loading the emitted text with libyaml's safe
loader as it comes and with the store's loader (``yamlio.Loader``: cached scalar resolution and a
lean builder for plain documents).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wiretape import model
from wiretape.store import format as fmt
from wiretape.store import yamlio


def old_dump(doc: dict[str, Any]) -> str:
    """``yamlio.dump`` as it was before the fast emitter: PyYAML with the lean dumper."""
    return yaml.dump(
        doc,
        Dumper=yamlio.Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )


def make_test(i: int) -> model.TestCase:
    request_body = {
        "customer": {"id": 1000 + i, "email": f"user{i}@example.com", "name": "Ada Lovelace"},
        "items": [
            {"sku": "SKU-0042", "qty": 2, "price": 19.99},
            {"sku": "SKU-1337", "qty": 1, "price": 5.0},
        ],
        "coupon": None,
        "gift": False,
        "note": "leave at the door, ring twice",
    }
    response_body = {
        "id": f"ord_{i:08d}",
        "status": "created",
        "total": 44.98,
        "currency": "EUR",
        "created_at": "2026-01-31T12:00:00Z",
        "links": {"self": f"/api/orders/ord_{i:08d}", "pay": "https://pay.example.com/x"},
    }
    req = json.dumps(request_body, separators=(",", ":")).encode()
    resp = json.dumps(response_body, separators=(",", ":")).encode()
    request = model.HttpRequest(
        method="POST",
        target=f"/api/orders?trace={i}",
        headers=(
            ("Host", "shop.internal:8080"),
            ("User-Agent", "python-httpx/0.27.0"),
            ("Accept", "application/json"),
            ("Accept-Encoding", "gzip, deflate"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(req))),
            ("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
            ("X-Request-Id", f"3f2a9c1e-{i:04d}-4b7d-9a8e-1c2d3e4f5a6b"),
        ),
        body=req,
    )
    response = model.HttpResponse(
        status=201,
        reason="Created",
        headers=(
            ("Date", "Sat, 31 Jan 2026 12:00:00 GMT"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(resp))),
            ("Location", f"/api/orders/ord_{i:08d}"),
            ("Cache-Control", "no-store"),
        ),
        body=resp,
    )
    return model.TestCase(
        id=fmt.test_id_for(i, "POST", "/api/orders"),
        request=request,
        response=response,
        error="upstream said:\n  retry later\n" if i % 10 == 0 else None,
        noise=("response.body.id", "response.headers.Date"),
        started=1_769_860_800.0 + i * 0.25,
        duration=0.0123,
    )


def best_us(fn: Callable[[Any], object], docs: list[Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for doc in docs:
            fn(doc)
        best = min(best, time.perf_counter() - start)
    return best / len(docs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        docs = [fmt.test_to_doc(make_test(i), Path(tmp)) for i in range(args.docs)]
    for doc in docs[:50]:
        text = yamlio.dump(doc)
        assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.load(
            old_dump(doc), Loader=yaml.CSafeLoader
        )
    old = best_us(old_dump, docs, args.rounds)
    new = best_us(yamlio.dump, docs, args.rounds)
    print(f"{args.docs} test documents, best of {args.rounds} rounds")
    print(f"  dump, PyYAML (CSafeDumper)   : {old:8.1f} µs/doc")
    print(f"  dump, wiretape.store.emit    : {new:8.1f} µs/doc")
    print(f"  speed-up                     : {old / new:8.1f}x")
    texts = [yamlio.dump(doc) for doc in docs]
    for text in texts[:200]:
        assert yaml.load(text, Loader=yamlio.Loader) == yaml.load(text, Loader=yaml.CSafeLoader)
    old_load = best_us(lambda text: yaml.load(text, Loader=yaml.CSafeLoader), texts, args.rounds)
    new_load = best_us(lambda text: yaml.load(text, Loader=yamlio.Loader), texts, args.rounds)
    print(f"  load, PyYAML (CSafeLoader)   : {old_load:8.1f} µs/doc")
    print(f"  load, wiretape yamlio.Loader : {new_load:8.1f} µs/doc")
    print(f"  speed-up                     : {old_load / new_load:8.1f}x")
    print("\nsample document:\n")
    print(yamlio.dump(docs[10]))


if __name__ == "__main__":
    main()
