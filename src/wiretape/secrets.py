"""Credentials in headers are replaced by placeholders before anything is written.

How this works: while recording, the values of credential headers (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-Api-Key``) are replaced by
``wiretape:secret:N`` placeholders, keeping an auth scheme such as ``Bearer`` readable. The same
value always gets the same placeholder within a set. The real values go to a local secrets file,
``<dir>/.secrets/<set>.yaml`` (mode 0600; ``<dir>/.gitignore`` keeps it out of git), so a replay
can send an inbound test request with its real credential again and serve mocked responses as the
app first saw them. A recorded response header that holds a placeholder matches any live value.
Headers are not part of request matching, so redaction never changes which mock answers.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import yaml

from wiretape.model import SECRET_PREFIX as PREFIX
from wiretape.model import Headers, HttpRequest, HttpResponse

DEFAULT_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_SCHEMED = frozenset({"authorization", "proxy-authorization"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S.*)$")
_PLACEHOLDER = re.compile(re.escape(PREFIX) + r"[0-9]+")


def is_placeholder(value: str) -> bool:
    """Whether a recorded header value is, or carries, a placeholder."""
    return PREFIX in value


class Secrets:
    """The placeholder ↔ value table of one set, optionally kept in a file."""

    def __init__(self, path: Path | None = None, headers: frozenset[str] = DEFAULT_HEADERS) -> None:
        self.path = path
        self.headers = headers
        self.values: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        if path is not None and path.is_file():
            data = yaml.safe_load(path.read_text("utf-8")) or {}
            for placeholder, value in (data.get("secrets") or {}).items():
                self.values[str(placeholder)] = str(value)
                self._by_value[str(value)] = str(placeholder)

    def _placeholder(self, value: str) -> str:
        found = self._by_value.get(value)
        if found is None:
            found = f"{PREFIX}{len(self.values) + 1}"
            self.values[found] = value
            self._by_value[value] = found
            self.save()
        return found

    def redact_headers(self, headers: Headers) -> Headers:
        if not any(name.lower() in self.headers for name, _ in headers):
            return headers
        out: list[tuple[str, str]] = []
        for name, value in headers:
            lname = name.lower()
            if lname in self.headers and value and not is_placeholder(value):
                match = _SCHEME.match(value) if lname in _SCHEMED else None
                if match:
                    value = f"{match.group(1)} {self._placeholder(match.group(2))}"
                else:
                    value = self._placeholder(value)
            out.append((name, value))
        return tuple(out)

    def reveal_headers(self, headers: Headers) -> Headers:
        """Placeholders replaced by their real values where this table knows them."""
        if not any(is_placeholder(v) for _, v in headers):
            return headers
        return tuple(
            (name, _PLACEHOLDER.sub(lambda m: self.values.get(m.group(0), m.group(0)), value))
            for name, value in headers
        )

    def missing(self, headers: Headers) -> list[str]:
        """Names of headers whose placeholder has no known value."""
        return [
            name
            for name, value in headers
            if any(p not in self.values for p in _PLACEHOLDER.findall(value))
        ]

    def redact_request(self, req: HttpRequest) -> HttpRequest:
        headers = self.redact_headers(req.headers)
        return req if headers is req.headers else dataclasses.replace(req, headers=headers)

    def redact_response(self, resp: HttpResponse | None) -> HttpResponse | None:
        if resp is None:
            return None
        headers = self.redact_headers(resp.headers)
        return resp if headers is resp.headers else dataclasses.replace(resp, headers=headers)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = yaml.safe_dump({"secrets": self.values}, sort_keys=False, allow_unicode=True)
        tmp = self.path.with_name(f".tmp-{self.path.name}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)


def secrets_path(sets_dir: Path, set_name: str) -> Path:
    return sets_dir / ".secrets" / f"{set_name}.yaml"


def ensure_gitignore(sets_dir: Path) -> None:
    """Keep run reports and secrets files of ``sets_dir`` out of git."""
    path = sets_dir / ".gitignore"
    wanted = [".runs/", ".secrets/"]
    lines = path.read_text("utf-8").splitlines() if path.is_file() else []
    missing = [w for w in wanted if w not in lines]
    if missing:
        sets_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([*lines, *missing]) + "\n", encoding="utf-8")
