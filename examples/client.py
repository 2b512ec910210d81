"""A scripted shopping session against the shop API: the traffic wiretape records.

Run: WIRETAPE_URL=http://127.0.0.1:8000 python examples/client.py   (or --url URL)

Prints one line per request and exits 1 at the first unexpected status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import httpx

LARGE_ORDER_QUANTITY = 2  # two espresso machines cost more than the gateway settles at once


class UnexpectedResponse(Exception):
    pass


class Session:
    def __init__(self, client: httpx.Client, *, sign_in: bool) -> None:
        self._client = client
        self.sign_in = sign_in
        self.headers: dict[str, str] = {}

    def call(self, method: str, path: str, expected: int, json: Any = None) -> Any:
        started = time.perf_counter()
        response = self._client.request(method, path, json=json, headers=self.headers)
        elapsed_ms = (time.perf_counter() - started) * 1000
        ok = response.status_code == expected
        mark = "ok  " if ok else "FAIL"
        line = f"{mark} {method:<4} {path:<48} {response.status_code} {elapsed_ms:7.1f} ms"
        print(line, flush=True)
        if not ok:
            raise UnexpectedResponse(
                f"{method} {path} answered {response.status_code}, expected {expected}: "
                f"{response.text[:500]}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise UnexpectedResponse(
                f"{method} {path} answered non-JSON: {response.text[:200]}"
            ) from exc


def order(product_id: str, quantity: int, source: str) -> dict[str, Any]:
    return {"product_id": product_id, "quantity": quantity, "source": source}


def run(session: Session) -> None:
    session.call("GET", "/healthz", 200)
    if session.sign_in:
        login = {"user": "demo", "password": "demo-password"}
        token = session.call("POST", "/api/login", 200, login)["token"]
        session.headers["Authorization"] = f"Bearer {token}"
    session.call("GET", "/api/products", 200)
    session.call("GET", "/api/products/prd_beans?currency=USD", 200)
    session.call("GET", "/api/products/prd_mug?currency=GBP", 200)  # rates from the cache
    session.call("GET", "/api/products/prd_unknown", 404)
    session.call("POST", "/api/orders", 201, order("prd_beans", 2, "tok_visa"))
    pending = session.call(
        "POST", "/api/orders", 201, order("prd_espresso", LARGE_ORDER_QUANTITY, "tok_visa")
    )
    session.call("GET", f"/api/orders/{pending['id']}", 200)
    session.call("POST", "/api/orders", 402, order("prd_mug", 1, "tok_declined"))
    session.call("POST", "/api/orders", 422, {"product_id": "prd_mug", "quantity": 0})
    session.call("GET", "/api/orders", 200)


def base_url(cli_url: str | None) -> str:
    url = os.environ.get("WIRETAPE_URL") or cli_url
    if not url:
        sys.exit("client: no shop URL; set WIRETAPE_URL or pass --url http://127.0.0.1:8000")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description="Drive a realistic session against the shop.")
    parser.add_argument("--url", help="shop base URL, used when WIRETAPE_URL is not set")
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument(
        "--sign-in",
        action="store_true",
        help="sign in first and send the token (for a shop started with SHOP_JWT_SECRET)",
    )
    args = parser.parse_args()
    url = base_url(args.url)
    print(f"client: shopping at {url}", flush=True)
    with httpx.Client(base_url=url, trust_env=False, timeout=args.timeout) as client:
        try:
            run(Session(client, sign_in=args.sign_in))
        except UnexpectedResponse as exc:
            sys.exit(f"client: {exc}")
        except httpx.HTTPError as exc:
            sys.exit(f"client: request to {url} failed: {exc!r}; is the shop running there?")
    print("client: session complete", flush=True)


if __name__ == "__main__":
    main()
