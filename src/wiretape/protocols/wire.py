"""What the store and the matcher need from a database or TCP protocol, and plain-data helpers.

A *wire protocol* (everything but HTTP) stores its requests and responses as plain data: dicts,
lists, strings, numbers, booleans and None, readable in YAML and lossless. Each protocol module
provides a ``WireCodec`` that rebuilds a ``WireRequest`` (with its match key) from stored data and
checks stored responses; ``codec_for`` finds it by protocol name.

Bytes become plain data with ``plain_bytes``: readable text stays a string, anything else becomes
``{base64: ...}``. ``bytes_of`` reverses it exactly.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wiretape.compare.values import kind_token
from wiretape.model import WireRequest

__all__ = [
    "PlainError",
    "WireCodec",
    "bytes_of",
    "codec_for",
    "loose_bytes",
    "plain_bytes",
    "wire_protocols",
]

# Protocol name -> module that defines ``CODEC``; imported on first use.
_MODULES = {
    "postgres": "wiretape.protocols.postgres.exchange",
    "redis": "wiretape.protocols.redis_exchange",
    "mysql": "wiretape.protocols.mysql.exchange",
    "tcp": "wiretape.protocols.tcp",
}

# Control characters other than tab, newline and carriage return make text unreadable in YAML.
_UNREADABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


# ``deps.NAME.request_noise`` of a database: (statement or command, positions) pairs.
NoiseRules = tuple[tuple[str, tuple[int, ...]], ...]


class PlainError(ValueError):
    """Stored plain data does not have the shape its protocol expects."""


@dataclass(frozen=True, slots=True)
class WireCodec:
    """How one protocol turns stored plain data back into matchable requests."""

    name: str
    request: Callable[[Any], WireRequest]  # plain data -> WireRequest (key, summary); PlainError
    check_response: Callable[[Any], None]  # raises PlainError when the data cannot be replayed
    # The request keyed without what a dependency's ``request_noise`` rules name (None: the
    # protocol has no such rules).
    with_noise: Callable[[WireRequest, NoiseRules], WireRequest] | None = None


def wire_protocols() -> tuple[str, ...]:
    return tuple(_MODULES)


def codec_for(protocol: str) -> WireCodec:
    module = _MODULES.get(protocol)
    if module is None:
        raise PlainError(f"unknown protocol {protocol!r}")
    codec = importlib.import_module(module).CODEC
    assert isinstance(codec, WireCodec)
    return codec


def plain_bytes(data: bytes) -> str | dict[str, str]:
    """``data`` as a readable string when it is clean UTF-8 text, else ``{base64: ...}``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
    if _UNREADABLE.search(text):
        return {"base64": base64.b64encode(data).decode("ascii")}
    return text


def bytes_of(node: object, where: str = "value") -> bytes:
    """The bytes that ``plain_bytes`` turned into ``node``."""
    if isinstance(node, str):
        return node.encode("utf-8", "surrogateescape")
    if isinstance(node, dict) and set(node) == {"base64"} and isinstance(node["base64"], str):
        try:
            return base64.b64decode(node["base64"], validate=True)
        except binascii.Error as exc:
            raise PlainError(f"{where}: not valid base64: {exc}") from None
    raise PlainError(f"{where}: expected a string or {{base64: ...}}, found {node!r:.80}")


LOOSE_MAX = 2048  # longer values are never reduced to a kind


def loose_bytes(value: object, kinds: tuple[str, ...] | None = None) -> object:
    """A parameter that decodes to a typed value (``kind_token``: UUID, timestamp, JWT, opaque
    token; only those whose token starts with one of ``kinds`` when given) as ``("~", kind)``,
    for loose match keys; any other value unchanged."""
    if not isinstance(value, bytes) or len(value) > LOOSE_MAX:
        return value
    try:
        token = kind_token(value.decode("utf-8"))
    except UnicodeDecodeError:
        return value
    if token is None or (kinds is not None and not token.startswith(kinds)):
        return value
    return ("~", token)
