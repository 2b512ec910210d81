"""``wiretape secrets scan``: find credential-looking values left in a recorded set.

Every YAML document of the set is walked value by value, with the rules recording redacts by
(``wiretape.credentials``), so a freshly recorded set scans clean. Reported, with the file and
the path inside it: a credential header whose value is not a placeholder; a non-empty string
under a credential key (password, secret, token, api_key, ...) in a JSON body, a form body or a
query string; and any string in a known key format (cloud and provider API keys, private-key
blocks). Inline base64 bodies and the files under ``bodies/`` are searched for the key formats
too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard
from urllib.parse import parse_qsl

from wiretape.credentials import DEFAULT_HEADERS, DEFAULT_KEYS, MAX_BODY, KeyRule, format_kinds
from wiretape.model import SECRET_PREFIX
from wiretape.store.yamlio import load

__all__ = ["Finding", "scan_document", "scan_set"]

_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    path: str
    kind: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.kind}"


@dataclass(frozen=True, slots=True)
class _Rules:
    keys: KeyRule
    headers: frozenset[str]


def _walk(node: object, path: str) -> Iterator[tuple[str, str | None, object]]:
    """(path, key this value sits under, value) for every scalar below ``node``."""
    stack: list[tuple[str, str | None, object]] = [(path, None, node)]
    while stack:
        where, key, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                stack.append((f"{where}.{k}" if where else str(k), str(k), v))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                item = f"{where}[{i}]"
                if key in ("headers", "trailers") and _is_pair(v):
                    name, header_value = v
                    yield f"{item}[{name}]", f"header:{name}", header_value
                else:
                    stack.append((item, key, v))
        else:
            yield where, key, value


def _is_pair(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(x, str) for x in value)


def _real(value: str) -> bool:
    return bool(value) and SECRET_PREFIX not in value


def _pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True)
    except ValueError:
        return []


def _messages(node: object, path: str) -> Iterator[tuple[str, dict[str, object]]]:
    """(path, mapping) for every request or response (a mapping with ``headers``)."""
    stack: list[tuple[str, object]] = [(path, node)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            if isinstance(value.get("headers"), list):
                yield where, value
            for k, v in value.items():
                stack.append((f"{where}.{k}" if where else str(k), v))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def _content_type(message: dict[str, object]) -> str:
    headers = message.get("headers")
    for pair in headers if isinstance(headers, list) else ():
        if isinstance(pair, list) and len(pair) == 2 and str(pair[0]).lower() == "content-type":
            return str(pair[1]).split(";", 1)[0].strip().lower()
    return ""


def _in_messages(doc: object, file: str, rules: _Rules) -> Iterator[Finding]:
    """Credential query parameters in targets and credential fields in form bodies."""
    for where, message in _messages(doc, ""):
        target = message.get("target")
        if isinstance(target, str) and "?" in target:
            for name, value in _pairs(target.partition("?")[2]):
                if rules.keys.matches(name) and _real(value):
                    found = f"{where}.target" if where else "target"
                    yield Finding(file, found, f"value of a {name!r} query parameter")
        body = message.get("body")
        text = body.get("text") if isinstance(body, dict) else None
        if isinstance(text, str) and _content_type(message) == _FORM:
            for name, value in _pairs(text):
                if rules.keys.matches(name) and _real(value):
                    found = f"{where}.body.text" if where else "body.text"
                    yield Finding(file, found, f"value of a {name!r} form field")


def _scan(doc: object, file: str, rules: _Rules) -> list[Finding]:
    found: list[Finding] = []
    for where, key, value in _walk(doc, ""):
        if not isinstance(value, str) or not value:
            continue
        if key is not None and key.startswith("header:"):
            if key[7:].lower() in rules.headers and SECRET_PREFIX not in value:
                found.append(Finding(file, where, f"unredacted {key[7:]} header"))
        elif (
            key is not None
            and ".json." in f".{where}."
            and SECRET_PREFIX not in value
            and rules.keys.matches(key)
        ):
            found.append(Finding(file, where, f"value of a {key!r} field"))
        if key == "base64":
            try:
                value = base64.b64decode(value, validate=True).decode("latin-1")
            except (binascii.Error, ValueError):
                continue
        found.extend(Finding(file, where, kind) for kind in dict.fromkeys(format_kinds(value)))
    found.extend(_in_messages(doc, file, rules))
    return found


def _rules(keys: Iterable[str], headers: Iterable[str]) -> _Rules:
    return _Rules(KeyRule(keys), frozenset(h.lower() for h in headers))


def scan_document(
    doc: object,
    file: str,
    *,
    keys: Iterable[str] = DEFAULT_KEYS,
    headers: Iterable[str] = DEFAULT_HEADERS,
) -> list[Finding]:
    """Every credential-looking value in one loaded document; ``file`` names it."""
    return _scan(doc, file, _rules(keys, headers))


def scan_set(
    path: Path, *, keys: Iterable[str] = DEFAULT_KEYS, headers: Iterable[str] = DEFAULT_HEADERS
) -> list[Finding]:
    """Every credential-looking value in the set at ``path``, in file order."""
    rules = _rules(keys, headers)
    found: list[Finding] = []
    files = sorted(p for p in path.rglob("*.yaml") if not p.name.startswith("."))
    for file in files:
        rel = str(file.relative_to(path))
        found.extend(_scan(load(file.read_bytes(), source=str(file)), rel, rules))
    bodies = path / "bodies"
    if bodies.is_dir():
        for body in sorted(bodies.iterdir()):
            if body.is_file() and not body.name.startswith(".") and body.stat().st_size <= MAX_BODY:
                text = body.read_bytes().decode("latin-1")
                rel = str(body.relative_to(path))
                kinds = dict.fromkeys(format_kinds(text))
                found.extend(Finding(rel, "(body)", kind) for kind in kinds)
    return found
