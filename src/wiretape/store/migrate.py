"""Bring documents written by older wiretape versions up to the current format.

``CONVERTERS`` maps a format version to the next one and a ``convert_N_M`` function that rewrites
a document from version N to version M. ``migrate`` applies them step by step until the document
is current, so each converter only ever knows about two adjacent versions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from wiretape.store.yamlio import store_error

CURRENT = "wiretape/v2"

Doc = dict[str, Any]
Converter = Callable[[Doc], Doc]


def convert_1_2(doc: Doc) -> Doc:
    """Version 2 only adds: mocks of database and TCP protocols (plain-data requests and
    responses), a test's ``chains``, a set's ``strict_values`` and ``unordered(...)`` entries in
    noise lists. Every version 1 document is a version 2 document as it is."""
    return doc


CONVERTERS: dict[str, tuple[str, Converter]] = {
    "wiretape/v1": ("wiretape/v2", convert_1_2),
}

_VERSION = re.compile(r"wiretape/v([0-9]+)")
_CURRENT_NUMBER = 2


def migrate(doc: Any, *, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        kind = "an empty file" if doc is None else f"a {type(doc).__name__}"
        raise store_error(
            source,
            f"expected a mapping with a `format: {CURRENT}` key, found {kind}",
            "this file is not a wiretape document; remove it or record the set again",
        )
    if "format" not in doc:
        raise store_error(
            source,
            "the `format` key is missing",
            f"add `format: {CURRENT}` as the first line if the file was written by hand",
        )
    current: dict[str, Any] = doc
    version = current["format"]
    steps = 0
    while version != CURRENT:
        step = CONVERTERS.get(version) if isinstance(version, str) else None
        if step is None or steps > len(CONVERTERS):
            raise _unknown(version, source)
        target, convert = step
        converted = convert(dict(current))
        converted.pop("format", None)
        current = {"format": target, **converted}
        version = target
        steps += 1
    return current


def _unknown(version: object, source: str) -> Exception:
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    if match is not None and int(match.group(1)) > _CURRENT_NUMBER:
        return store_error(
            source,
            f"written by a newer wiretape (format {version}); this wiretape reads {CURRENT}",
            "upgrade wiretape (pip install -U wiretape) to read this test set",
        )
    return store_error(
        source,
        f"unknown format {version!r}; this wiretape reads {CURRENT}",
        "this file is not a wiretape document, or its `format` line was edited",
    )
