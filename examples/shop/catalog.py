"""The product catalogue: static data, priced in euro cents."""

from __future__ import annotations

from dataclasses import dataclass

BASE_CURRENCY = "EUR"


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    price_cents: int
    currency: str = BASE_CURRENCY


PRODUCTS: tuple[Product, ...] = (
    Product("prd_mug", "Enamel mug", 1_200),
    Product("prd_beans", "Single-origin coffee beans, 1 kg", 2_850),
    Product("prd_grinder", "Burr grinder", 14_900),
    Product("prd_espresso", "Dual-boiler espresso machine", 64_900),
)

_BY_ID = {product.id: product for product in PRODUCTS}


def find_product(product_id: str) -> Product | None:
    return _BY_ID.get(product_id)
