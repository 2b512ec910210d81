"""``wiretape secrets scan``: find credential-looking values left in a recorded set.

Every YAML document of the set is walked value by value: a credential header whose value is not
a placeholder, a JSON key named like a credential (password, secret, token, api_key) holding a
real value, and any string that looks like a known key format (cloud and provider API keys,
private-key blocks) are reported with the file and the path inside it. Inline base64 bodies and
the files under ``bodies/`` are searched for the key formats too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from wiretape.model import SECRET_PREFIX
from wiretape.secrets import DEFAULT_HEADERS
from wiretape.store.yamlio import load

KEY_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", re.ASCII)),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", re.ASCII)),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}", re.ASCII)),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}", re.ASCII)),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b", re.ASCII)),
    ("private key block", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", re.ASCII)),
)
SECRET_KEYS = re.compile(r"(?i)(pass(word|wd)?|secret|token|api[_-]?key|credential)")
MAX_BODY_FILE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    path: str
    kind: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.kind}"


def _formats(text: str) -> Iterator[str]:
    for kind, pattern in KEY_FORMATS:
        if pattern.search(text):
            yield kind


def _walk(node: object, path: str) -> Iterator[tuple[str, str | None, object]]:
    """(path, key this value sits under, value) for every scalar below ``node``."""
    stack: list[tuple[str, str | None, object]] = [(path, None, node)]
    while stack:
        where, key, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                stack.append((f"{where}.{k}" if where else str(k), str(k), v))
        elif isinstance(value, list):
            if len(value) == 2 and all(isinstance(x, str) for x in value):
                yield f"{where}[{value[0]}]", "header:" + value[0], value[1]
                continue
            for i, v in enumerate(value):
                stack.append((f"{where}[{i}]", key, v))
        else:
            yield where, key, value


def scan_document(doc: object, file: str) -> list[Finding]:
    found: list[Finding] = []
    for where, key, value in _walk(doc, ""):
        if not isinstance(value, str) or not value:
            continue
        if key is not None and key.startswith("header:"):
            if key[7:].lower() in DEFAULT_HEADERS and SECRET_PREFIX not in value:
                found.append(Finding(file, where, f"unredacted {key[7:]} header"))
        elif (
            key is not None
            and SECRET_KEYS.search(key)
            and ".json." in f".{where}."
            and SECRET_PREFIX not in value
        ):
            found.append(Finding(file, where, f"value of a {key!r} field"))
        if key == "base64":
            try:
                value = base64.b64decode(value, validate=True).decode("latin-1")
            except (binascii.Error, ValueError):
                continue
        found.extend(Finding(file, where, kind) for kind in _formats(value))
    return found


def scan_set(path: Path) -> list[Finding]:
    """Every credential-looking value in the set at ``path``, in file order."""
    found: list[Finding] = []
    files = sorted(p for p in path.rglob("*.yaml") if not p.name.startswith("."))
    for file in files:
        rel = str(file.relative_to(path))
        found.extend(scan_document(load(file.read_bytes(), source=str(file)), rel))
    bodies = path / "bodies"
    if bodies.is_dir():
        for body in sorted(bodies.iterdir()):
            if (
                body.is_file()
                and not body.name.startswith(".")
                and (body.stat().st_size <= MAX_BODY_FILE)
            ):
                text = body.read_bytes().decode("latin-1")
                rel = str(body.relative_to(path))
                found.extend(Finding(rel, "(body)", kind) for kind in _formats(text))
    return found
