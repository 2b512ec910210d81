"""Orders: parsing a request, the order record, and its JSON form."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

from shop.catalog import Product

MAX_QUANTITY = 100

CHARGE_TO_ORDER_STATUS = {
    "succeeded": "paid",
    "pending": "pending_payment",
    "declined": "payment_failed",
}


@dataclass(frozen=True)
class OrderItem:
    product_id: str
    name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class Order:
    id: str
    status: str
    total_cents: int
    currency: str
    charge_id: str
    created_at: str
    items: tuple[OrderItem, ...]
    reference: str = ""  # a UUID for the receipt, made with the order


@dataclass(frozen=True)
class OrderRequest:
    product_id: str
    quantity: int
    source: str


def parse_order_request(body: Any) -> OrderRequest | list[str]:
    """Return the request, or one message per bad field."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object with product_id, quantity and source"]
    problems = []
    product_id = body.get("product_id")
    if not isinstance(product_id, str) or not product_id:
        problems.append("product_id must be a non-empty string")
    quantity = body.get("quantity")
    if (
        not isinstance(quantity, int)
        or isinstance(quantity, bool)
        or not 1 <= quantity <= MAX_QUANTITY
    ):
        problems.append(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    source = body.get("source")
    if not isinstance(source, str) or not source:
        problems.append("source must be a card token such as 'tok_visa'")
    if problems:
        return problems
    assert isinstance(product_id, str) and isinstance(quantity, int) and isinstance(source, str)
    return OrderRequest(product_id=product_id, quantity=quantity, source=source)


_sequence = itertools.count(1)


def new_order_id() -> str:
    """The next order id, from a sequence as a database would hand it out."""
    return f"ord_{next(_sequence):06d}"


def idempotency_key(order_id: str) -> str:
    """A key unique to this order's charge attempt (order ids restart with the process)."""
    return f"order-{order_id}-{uuid.uuid4().hex[:12]}"


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_order(
    order_id: str, product: Product, quantity: int, charge_id: str, charge_status: str
) -> Order:
    return Order(
        id=order_id,
        status=CHARGE_TO_ORDER_STATUS[charge_status],
        total_cents=product.price_cents * quantity,
        currency=product.currency,
        charge_id=charge_id,
        created_at=utc_now_iso(),
        items=(OrderItem(product.id, product.name, quantity, product.price_cents),),
        reference=str(uuid.uuid4()),
    )


def order_json(order: Order, *, variant: str = "") -> dict[str, Any]:
    total_field = "total" if variant == "rename" else "total_cents"
    return {
        "id": order.id,
        "status": order.status,
        total_field: order.total_cents,
        "currency": order.currency,
        "charge_id": order.charge_id,
        "created_at": order.created_at,
        "reference": order.reference,
        "items": [
            {
                "product_id": item.product_id,
                "name": item.name,
                "quantity": item.quantity,
                "unit_price_cents": item.unit_price_cents,
            }
            for item in order.items
        ],
    }
