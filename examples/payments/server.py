"""A fake card-payments gateway: the shop's HTTP dependency.

Run: python examples/payments/server.py --port 9101

Charges live in memory. A repeated Idempotency-Key returns the first charge instead of creating a
new one, as real gateways do.
"""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CURRENCIES = frozenset({"EUR", "USD", "GBP", "CHF", "JPY"})
PENDING_FROM_CENTS = 100_000
DECLINED_SOURCE = "tok_declined"
KEY_PREFIX = "sk_test_"


@dataclass(frozen=True)
class Charge:
    id: str
    status: str
    amount: int
    currency: str
    source: str
    created: int


class ChargeStore:
    def __init__(self) -> None:
        self._by_id: dict[str, Charge] = {}
        self._by_key: dict[str, str] = {}

    def get(self, charge_id: str) -> Charge | None:
        return self._by_id.get(charge_id)

    def by_idempotency_key(self, key: str) -> Charge | None:
        charge_id = self._by_key.get(key)
        return None if charge_id is None else self._by_id[charge_id]

    def add(self, charge: Charge, idempotency_key: str | None) -> None:
        self._by_id[charge.id] = charge
        if idempotency_key:
            self._by_key[idempotency_key] = charge.id


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    has_key = token.startswith(KEY_PREFIX) and len(token) > len(KEY_PREFIX)
    return scheme.lower() == "bearer" and has_key


def validate_charge(body: Any) -> tuple[int, str, str] | str:
    """Return (amount, currency, source), or a message naming the bad field."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return "amount must be a positive integer number of cents"
    currency = body.get("currency")
    if currency not in CURRENCIES:
        return f"currency must be one of {sorted(CURRENCIES)}"
    source = body.get("source")
    if not isinstance(source, str) or not source.startswith("tok_"):
        return "source must be a card token such as 'tok_visa'"
    return amount, str(currency), source


def new_status(amount: int, source: str) -> str:
    if source == DECLINED_SOURCE:
        return "declined"
    return "pending" if amount >= PENDING_FROM_CENTS else "succeeded"


def charge_json(charge: Charge) -> dict[str, Any]:
    return asdict(charge)


async def create_charge(request: Request) -> Response:
    store: ChargeStore = request.app.state.charges
    key = request.headers.get("idempotency-key")
    if key:
        earlier = store.by_idempotency_key(key)
        if earlier is not None:
            return JSONResponse(charge_json(earlier), status_code=200)
    try:
        body = await request.json()
    except ValueError:
        return error(400, "invalid_json", "the request body is not valid JSON")
    checked = validate_charge(body)
    if isinstance(checked, str):
        return error(400, "invalid_request", checked)
    amount, currency, source = checked
    charge = Charge(
        id=f"ch_{uuid.uuid4().hex[:24]}",
        status=new_status(amount, source),
        amount=amount,
        currency=currency,
        source=source,
        created=int(time.time()),
    )
    store.add(charge, key)
    status = 402 if charge.status == "declined" else 201
    return JSONResponse(charge_json(charge), status_code=status)


async def get_charge(request: Request) -> Response:
    store: ChargeStore = request.app.state.charges
    charge = store.get(request.path_params["charge_id"])
    if charge is None:
        return error(404, "not_found", f"no charge with id {request.path_params['charge_id']!r}")
    return JSONResponse(charge_json(charge))


class RequestIdAndAuth:
    """Adds X-Request-Id to every response and rejects requests without a test secret key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        if not authorized(Request(scope)):
            response = error(
                401, "unauthorized", f"send 'Authorization: Bearer {KEY_PREFIX}...' with a test key"
            )
            await response(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/charges", create_charge, methods=["POST"]),
            Route("/v1/charges/{charge_id}", get_charge, methods=["GET"]),
        ],
        middleware=[Middleware(RequestIdAndAuth)],
    )
    app.state.charges = ChargeStore()
    return app


app = create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake payments gateway for the wiretape examples.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9101)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
