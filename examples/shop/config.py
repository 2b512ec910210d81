"""Settings read from the environment at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

VARIANTS = ("", "rename", "status")


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    payments_url: str
    payments_key: str
    rates_url: str
    variant: str = ""
    database_url: str = ""  # orders go to PostgreSQL when set, else stay in memory
    redis_url: str = ""  # exchange rates are cached in Redis when set
    jwt_secret: str = ""  # order endpoints need a signed-in user when set


def _required(env: Mapping[str, str], name: str, example: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set (example: {name}={example})")
    return value


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    variant = env.get("SHOP_VARIANT", "").strip()
    if variant not in VARIANTS:
        raise SettingsError(
            f"SHOP_VARIANT={variant!r} is not known; unset it or use one of {list(VARIANTS[1:])}"
        )
    return Settings(
        payments_url=_required(env, "PAYMENTS_URL", "http://127.0.0.1:9101"),
        payments_key=_required(env, "PAYMENTS_KEY", "sk_test_demo"),
        rates_url=_required(env, "RATES_URL", "https://localhost:9443"),
        variant=variant,
        database_url=env.get("DATABASE_URL", "").strip(),
        redis_url=env.get("REDIS_URL", "").strip(),
        jwt_secret=env.get("SHOP_JWT_SECRET", "").strip(),
    )
