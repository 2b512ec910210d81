"""Orders in PostgreSQL (asyncpg): the shop's database-backed resource.

The schema is created at startup if it is missing. Order ids come from a database sequence, so a
fresh database hands out ord_000001, ord_000002, ... like the in-memory store does.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from shop.orders import Order, OrderItem

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS order_numbers;
CREATE TABLE IF NOT EXISTS orders (
    id          text PRIMARY KEY,
    number      bigint NOT NULL,
    status      text NOT NULL,
    total_cents integer NOT NULL,
    currency    text NOT NULL,
    charge_id   text NOT NULL,
    created_at  text NOT NULL,
    reference   text NOT NULL,
    items       jsonb NOT NULL
);
"""

_COLUMNS = "id, status, total_cents, currency, charge_id, created_at, reference, items"


def _order(row: asyncpg.Record) -> Order:
    items = json.loads(row["items"])
    return Order(
        id=row["id"],
        status=row["status"],
        total_cents=row["total_cents"],
        currency=row["currency"],
        charge_id=row["charge_id"],
        created_at=row["created_at"],
        items=tuple(OrderItem(**item) for item in items),
        reference=row["reference"],
    )


def _items(order: Order) -> str:
    return json.dumps(
        [
            {
                "product_id": i.product_id,
                "name": i.name,
                "quantity": i.quantity,
                "unit_price_cents": i.unit_price_cents,
            }
            for i in order.items
        ]
    )


class PgOrderRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> PgOrderRepository:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        async with pool.acquire() as conn:
            await conn.execute(SCHEMA)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def new_id(self) -> str:
        number = await self._pool.fetchval("SELECT nextval('order_numbers')")
        return f"ord_{number:06d}"

    async def add(self, order: Order) -> None:
        await self._pool.execute(
            "INSERT INTO orders (id, number, status, total_cents, currency, charge_id, "
            "created_at, reference, items) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
            order.id,
            int(order.id.removeprefix("ord_")),
            order.status,
            order.total_cents,
            order.currency,
            order.charge_id,
            order.created_at,
            order.reference,
            _items(order),
        )

    async def get(self, order_id: str) -> Order | None:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM orders WHERE id = $1", order_id)
        return None if row is None else _order(row)

    async def update_status(self, order_id: str, status: str) -> Order | None:
        row = await self._pool.fetchrow(
            f"UPDATE orders SET status = $2 WHERE id = $1 RETURNING {_COLUMNS}", order_id, status
        )
        return None if row is None else _order(row)

    async def list_newest_first(self) -> list[Order]:
        rows: list[Any] = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM orders ORDER BY number DESC"
        )
        return [_order(row) for row in rows]
