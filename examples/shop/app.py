"""The shop API: products priced through the rates service, orders paid through payments.

Run from examples/:  python shop/app.py --port 8000   (or: python -m uvicorn shop.app:app)
Configuration comes from the environment; see shop/config.py and examples/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Started as a script: import the `shop` package from examples/ instead of this directory.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import redis.asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shop import auth
from shop.catalog import BASE_CURRENCY, PRODUCTS, Product, find_product
from shop.config import Settings, SettingsError, load_settings
from shop.db import PgOrderRepository
from shop.orders import (
    CHARGE_TO_ORDER_STATUS,
    Order,
    build_order,
    idempotency_key,
    order_json,
    parse_order_request,
    utc_now_iso,
)
from shop.repository import InMemoryOrderRepository, OrderRepository
from shop.upstreams import PaymentsClient, RatesClient, UpstreamError

log = logging.getLogger("shop")


@dataclass(frozen=True)
class Services:
    settings: Settings
    payments: PaymentsClient
    rates: RatesClient
    orders: OrderRepository
    cache: RatesCache | None = None


RATES_TTL = 300  # seconds a cached set of exchange rates stays fresh


class RatesCache:
    """Exchange rates in Redis, so a burst of price quotes costs one call to the rates API."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.client = client

    async def get(self, base: str) -> dict[str, float] | None:
        cached = await self.client.get(f"rates:{base}")
        return None if cached is None else dict(json.loads(cached))

    async def put(self, base: str, rates: dict[str, float]) -> None:
        await self.client.set(f"rates:{base}", json.dumps(rates), ex=RATES_TTL)


async def latest_rates(svc: Services, base: str) -> dict[str, float]:
    if svc.cache is not None:
        cached = await svc.cache.get(base)
        if cached is not None:
            return cached
    rates = await svc.rates.latest(base)
    if svc.cache is not None:
        await svc.cache.put(base, rates)
    return rates


def signed_in(request: Request) -> str | JSONResponse:
    """The user of a valid bearer token, or the 401 to answer (when sign-in is on)."""
    secret = services(request).settings.jwt_secret
    if not secret:
        return "anonymous"
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        return error(401, "unauthorized", "sign in with POST /api/login first")
    try:
        claims = auth.verify(secret, header.removeprefix("Bearer "))
    except auth.InvalidToken as exc:
        return error(401, "unauthorized", str(exc))
    return str(claims["sub"])


async def login(request: Request) -> Response:
    svc = services(request)
    if not svc.settings.jwt_secret:
        return error(404, "not_found", "sign-in is off (no SHOP_JWT_SECRET)")
    try:
        body = await request.json()
    except ValueError:
        body = None
    user = body.get("user") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(user, str) or not isinstance(password, str):
        return error(422, "invalid_login", 'send {"user": ..., "password": ...}')
    if not auth.check_password(user, password):
        return error(401, "unauthorized", "unknown user or wrong password")
    token = auth.issue(svc.settings.jwt_secret, user)
    return JSONResponse({"token": token, "expires_in": auth.TOKEN_SECONDS, "user": user})


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def upstream_failed(exc: UpstreamError) -> JSONResponse:
    log.warning("upstream failure: %s", exc)
    return error(502, "upstream_failed", str(exc), service=exc.service)


def product_json(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "price_cents": product.price_cents,
        "currency": product.currency,
    }


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def list_products(request: Request) -> Response:
    return JSONResponse([product_json(product) for product in PRODUCTS])


async def get_product(request: Request) -> Response:
    product_id = request.path_params["product_id"]
    product = find_product(product_id)
    if product is None:
        return error(404, "product_not_found", f"no product with id {product_id!r}")
    currency = request.query_params.get("currency", BASE_CURRENCY).upper()
    rate = 1.0
    if currency != product.currency:
        try:
            rates = await latest_rates(services(request), product.currency)
        except UpstreamError as exc:
            return upstream_failed(exc)
        if currency not in rates:
            known = sorted([*rates, product.currency])
            message = f"currency {currency!r} is not quoted; use one of {known}"
            return error(400, "unsupported_currency", message)
        rate = rates[currency]
    return JSONResponse(
        {
            "id": product.id,
            "name": product.name,
            "price_cents": round(product.price_cents * rate),
            "currency": currency,
            "rate": rate,
            "quoted_at": utc_now_iso(),
        }
    )


async def create_order(request: Request) -> Response:
    user = signed_in(request)
    if isinstance(user, JSONResponse):
        return user
    svc = services(request)
    try:
        body = await request.json()
    except ValueError:
        return error(422, "invalid_order", "the request body is not valid JSON")
    parsed = parse_order_request(body)
    if isinstance(parsed, list):
        return error(422, "invalid_order", "; ".join(parsed), fields=parsed)
    product = find_product(parsed.product_id)
    if product is None:
        return error(404, "product_not_found", f"no product with id {parsed.product_id!r}")
    order_id = await svc.orders.new_id()
    try:
        charge = await svc.payments.create_charge(
            amount=product.price_cents * parsed.quantity,
            currency=product.currency,
            source=parsed.source,
            idempotency_key=idempotency_key(order_id),
        )
    except UpstreamError as exc:
        return upstream_failed(exc)
    order = build_order(order_id, product, parsed.quantity, charge.id, charge.status)
    await svc.orders.add(order)
    if order.status == "payment_failed":
        status = 402
    else:
        status = 200 if svc.settings.variant == "status" else 201
    return JSONResponse(order_json(order, variant=svc.settings.variant), status_code=status)


async def refreshed(svc: Services, order: Order) -> Order:
    if order.status != "pending_payment":
        return order
    charge = await svc.payments.get_charge(order.charge_id)
    status = CHARGE_TO_ORDER_STATUS[charge.status]
    if status == order.status:
        return order
    return await svc.orders.update_status(order.id, status) or order


async def get_order(request: Request) -> Response:
    user = signed_in(request)
    if isinstance(user, JSONResponse):
        return user
    svc = services(request)
    order_id = request.path_params["order_id"]
    order = await svc.orders.get(order_id)
    if order is None:
        return error(404, "order_not_found", f"no order with id {order_id!r}")
    try:
        order = await refreshed(svc, order)
    except UpstreamError as exc:
        return upstream_failed(exc)
    return JSONResponse(order_json(order, variant=svc.settings.variant))


async def list_orders(request: Request) -> Response:
    user = signed_in(request)
    if isinstance(user, JSONResponse):
        return user
    svc = services(request)
    orders = await svc.orders.list_newest_first()
    return JSONResponse([order_json(order, variant=svc.settings.variant) for order in orders])


def create_app(settings: Settings | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config = settings or load_settings()
        # trust_env (the default) makes the clients honour HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE.
        async with (
            httpx.AsyncClient(
                base_url=config.payments_url,
                headers={"Authorization": f"Bearer {config.payments_key}"},
                timeout=10.0,
            ) as payments,
            httpx.AsyncClient(base_url=config.rates_url, timeout=10.0) as rates,
        ):
            cache = None
            if config.redis_url:
                cache = RatesCache(redis.asyncio.from_url(config.redis_url))
            orders: OrderRepository
            if config.database_url:
                orders = await PgOrderRepository.connect(config.database_url)
            else:
                orders = InMemoryOrderRepository()
            app.state.services = Services(
                settings=config,
                payments=PaymentsClient(payments),
                rates=RatesClient(rates),
                orders=orders,
                cache=cache,
            )
            try:
                yield
            finally:
                await orders.close()
                if cache is not None:
                    await cache.client.aclose()

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/login", login, methods=["POST"]),
            Route("/api/products", list_products, methods=["GET"]),
            Route("/api/products/{product_id}", get_product, methods=["GET"]),
            Route("/api/orders", create_order, methods=["POST"]),
            Route("/api/orders", list_orders, methods=["GET"]),
            Route("/api/orders/{order_id}", get_order, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


app = create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description="The wiretape example shop API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.exit(f"shop: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
