"""Order storage behind a small async interface: in memory, or in PostgreSQL (shop/db.py)."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from shop.orders import Order, new_order_id


class OrderRepository(Protocol):
    async def new_id(self) -> str: ...

    async def add(self, order: Order) -> None: ...

    async def get(self, order_id: str) -> Order | None: ...

    async def update_status(self, order_id: str, status: str) -> Order | None: ...

    async def list_newest_first(self) -> list[Order]: ...

    async def close(self) -> None: ...


class InMemoryOrderRepository:
    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}

    async def new_id(self) -> str:
        return new_order_id()

    async def close(self) -> None:
        pass

    async def add(self, order: Order) -> None:
        self._orders[order.id] = order

    async def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    async def update_status(self, order_id: str, status: str) -> Order | None:
        order = self._orders.get(order_id)
        if order is None:
            return None
        updated = dataclasses.replace(order, status=status)
        self._orders[order_id] = updated
        return updated

    async def list_newest_first(self) -> list[Order]:
        # Insertion order is creation order; equal timestamps keep it stable.
        return list(reversed(self._orders.values()))
