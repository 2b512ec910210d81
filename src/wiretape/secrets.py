"""Credentials are replaced by placeholders before anything is written.

How this works: while recording, every credential in a request or a response becomes a
``wiretape:secret:N`` placeholder (``wiretape.credentials`` says what counts as one):

- the value of a credential header (``Authorization``, ``Cookie``, ... and ``secrets.headers``),
  keeping an auth scheme such as ``Bearer`` readable;
- a non-empty string under a credential key (password, secret, token, api_key, ... and
  ``secrets.keys``) in a JSON body, a form body or the query string;
- any text in a known credential format (cloud and provider keys, PEM private-key blocks) in a
  header value, the request target or any body;
- the same formats in bytes that are not parsed (generic TCP turns), as placeholders padded to
  the length of the value so that the bytes around them keep their offsets (``redact_bytes``).

Bodies stay valid and keep their shape. A JSON body is rewritten token by token, so everything
except the redacted strings keeps its bytes (a body stored as ``json:`` stays ``json:``); form
fields and query parameters keep their order; a compressed body is decoded, redacted and encoded
again; ``Content-Length`` follows the new size. A body spooled to a file (a large one) is read
whole only when a streaming look finds a credential in it, and never when its content type is
binary. The same value always gets the same placeholder within a set. The real values go to a
local secrets file, ``<dir>/.secrets/<set>.yaml`` (mode 0600; ``<dir>/.gitignore`` keeps it out
of git), appended to as new values turn up.

While replaying, the same table works the other way round:

- an inbound test request is sent with its real values again (``reveal_request``);
  ``missing_fields`` names every field whose value the file does not hold;
- a mocked response is served as the app first saw it (``reveal_response``);
- a live outgoing request is redacted before it is matched (``redact_live``): a value the table
  knows becomes its placeholder, so the request matches its recording; a value it does not know
  becomes ``wiretape:secret:unknown-N`` (the same N for the same value during one run, never
  saved), which matches no recording, so the call misses with an explanation instead of being
  answered by a recording made with another credential;
- a recorded placeholder in a response matches any non-empty live value (``compare.values``).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus

import brotli
import yaml

from wiretape.compare.paths import format_path
from wiretape.credentials import (
    DEFAULT_HEADERS,
    DEFAULT_KEYS,
    FORMATS_RE,
    MAX_BODY,
    KeyRule,
    may_hold_format,
    may_hold_format_bytes,
)
from wiretape.model import SECRET_PREFIX as PREFIX
from wiretape.model import BlobRef, Body, Headers, HttpRequest, HttpResponse, header_all
from wiretape.store.yamlio import TMP_PREFIX

__all__ = [
    "DEFAULT_HEADERS",
    "DEFAULT_KEYS",
    "UNKNOWN_PREFIX",
    "Secrets",
    "ensure_gitignore",
    "is_placeholder",
    "secrets_path",
]

UNKNOWN_PREFIX = PREFIX + "unknown-"
_SCHEMED = frozenset({"authorization", "proxy-authorization"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S.*)$")
_PLACEHOLDER = re.compile(re.escape(PREFIX) + r"[0-9]+")
_PREFIX_BYTES = PREFIX.encode("ascii")
_PLACEHOLDER_BYTES = re.compile(re.escape(_PREFIX_BYTES) + rb"[0-9]+(_*)")
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')
_FORM = "application/x-www-form-urlencoded"
_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/")
_BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/x-tar",
        "application/wasm",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
    }
)
_PIECE = 1 << 20
_OVERLAP = 64  # longer than any format marker or key word, so none is split unseen
_NOT_JSON = "\x00not json"

Assign = Callable[[str], str]
Encode = Callable[[str], str]


def is_placeholder(value: str) -> bool:
    """Whether a recorded value is, or carries, a placeholder."""
    return PREFIX in value


class Secrets:
    """The placeholder ↔ value table of one set, optionally kept in a file.

    ``headers`` are the credential header names (any case); ``keys`` the credential key names
    for JSON, form and query fields (see ``wiretape.credentials``).
    """

    def __init__(
        self,
        path: Path | None = None,
        headers: Iterable[str] = DEFAULT_HEADERS,
        keys: Iterable[str] = DEFAULT_KEYS,
    ) -> None:
        self.path = path
        self.headers = frozenset(h.lower() for h in headers)
        self.keys = KeyRule(keys)
        self._clean_names: dict[str, bool] = {}  # header name -> no credential, no coding
        self.values: dict[str, str] = {}
        self._by_value: dict[str, str] = {}
        self._unknown: dict[str, str] = {}
        self._blobs: dict[str, Body] = {}
        self._appending = False
        if path is not None and path.is_file():
            data = yaml.safe_load(path.read_text("utf-8")) or {}
            for placeholder, value in (data.get("secrets") or {}).items():
                self.values[str(placeholder)] = str(value)
                self._by_value[str(value)] = str(placeholder)

    # --- the table -------------------------------------------------------------------------

    def placeholder(self, value: str) -> str:
        """The placeholder of ``value``, created (and saved) on first sight."""
        found = self._by_value.get(value)
        if found is None:
            found = f"{PREFIX}{len(self.values) + 1}"
            self.values[found] = value
            self._by_value[value] = found
            self._saved(found, value)
        return found

    def _live(self, value: str) -> str:
        """The placeholder of a value seen while replaying; never saved."""
        found = self._by_value.get(value)
        if found is None:
            found = self._unknown.get(value)
            if found is None:
                found = f"{UNKNOWN_PREFIX}{len(self._unknown) + 1}"
                self._unknown[value] = found
        return found

    def _value_of(self, match: re.Match[str], encode: Encode) -> str:
        value = self.values.get(match.group(0))
        return match.group(0) if value is None else encode(value)

    def _unknown_in(self, text: str) -> bool:
        return any(p not in self.values for p in _PLACEHOLDER.findall(text))

    # --- raw exchanges ----------------------------------------------------------------------

    def wire_is_clean(
        self,
        raw: tuple[bytes, bytes],
        headers: tuple[Headers, Headers],
        target: str,
        bodies: tuple[bytes, bytes],
    ) -> bool:
        """True when redaction would change nothing in an exchange, checked on its raw bytes.

        ``raw`` is the request and the response as they crossed the wire (one message each, no
        trailers), ``headers`` their parsed header sections, ``target`` the request target,
        ``bodies`` the two bodies without their transfer framing. The check is conservative:
        False means only that the exchange must go through ``redact_request`` and
        ``redact_response``. It is False for a credential header name or ``Content-Encoding``,
        a key format anywhere in the bytes, a target that ``redact_target`` changes, and a body
        that is not ASCII, or holds a backslash (a JSON escape can spell a key name), a ``%``
        (a form field can), or every word of a credential key name.
        """
        # Loops, not generators: this runs for every recorded exchange.
        known = self._clean_names
        for section in headers:
            for name, _ in section:
                clean = known.get(name)
                if clean is None:
                    lname = name.lower()
                    clean = lname not in self.headers and lname != "content-encoding"
                    if len(known) < 1024:
                        known[name] = clean
                if not clean:
                    return False
        for data in raw:
            if may_hold_format_bytes(data):
                return False
        if "?" in target and self.redact_target(target) is not target:
            return False
        for body, data in zip(bodies, raw, strict=True):
            if not body:
                continue
            if not body.isascii() or b"\\" in body or b"%" in body:
                return False
            plus = b"+" in body  # a form body reads "+" as a space
            if (plus or not data.endswith(body)) and may_hold_format_bytes(
                body.replace(b"+", b" ") if plus else body  # else the pass over ``raw`` saw it
            ):
                return False
            if self.keys.may_occur_ascii(body.lower()):
                return False
        return True

    # --- bytes that are not parsed (generic TCP) ------------------------------------------

    def redact_bytes(self, data: bytes) -> bytes:
        """``data`` with every known key format replaced by its placeholder, while recording.

        For bytes wiretape does not parse: the generic TCP turns. A placeholder shorter than the
        value it stands for is padded with ``_`` to the value's length (``_pad``), so offsets,
        length prefixes and read sizes stay as they were. Only a value shorter than its
        placeholder (a short Slack token) makes the bytes longer.
        """
        return _redact_raw(data, self.placeholder)

    def redact_live_bytes(self, data: bytes) -> bytes:
        """``redact_bytes`` for bytes seen while replaying: a value the table does not hold
        becomes ``wiretape:secret:unknown-N``, and nothing is saved (for reports)."""
        return _redact_raw(data, self._live)

    def reveal_bytes(self, data: bytes) -> bytes:
        """``redact_bytes`` undone for every placeholder whose value the table holds."""
        if not self.values or _PREFIX_BYTES not in data:
            return data

        def one(match: re.Match[bytes]) -> bytes:
            padding = match.group(1)
            placeholder = match.group(0)[: len(match.group(0)) - len(padding)].decode("ascii")
            value = self.values.get(placeholder)
            if value is None:
                return match.group(0)
            # Underscores past the padding this value got were in the bytes already.
            return _raw_value(value) + padding[max(0, len(value) - len(placeholder)) :]

        return _PLACEHOLDER_BYTES.sub(one, data)

    def redact_blob(self, blob: BlobRef) -> BlobRef:
        """``redact_bytes`` for bytes spooled to a file: read whole only when a streaming look
        finds a key format in them; the redacted bytes replace the file."""
        if blob.size == 0 or blob.size > MAX_BODY:
            return blob
        for text in _text_pieces(blob, ()):
            if may_hold_format(text):
                data = _body_data(blob)
                if data is None:
                    return blob
                new = self.redact_bytes(data)
                return blob if new == data else _replace_blob(blob, new)
        return blob

    def reveal_raw(self, raw: bytes | BlobRef) -> bytes | BlobRef:
        """``reveal_bytes`` for bytes kept whole or spooled to a file (read whole only when a
        streaming look finds a placeholder in them)."""
        if not self.values:
            return raw
        if isinstance(raw, bytes):
            return self.reveal_bytes(raw)
        if raw.size > MAX_BODY or not any(PREFIX in text for text in _text_pieces(raw, ())):
            return raw
        data = _body_data(raw)
        return raw if data is None else self.reveal_bytes(data)

    # --- headers ---------------------------------------------------------------------------

    def redact_headers(self, headers: Headers, assign: Assign | None = None) -> Headers:
        if not any(name.lower() in self.headers for name, _ in headers) and not may_hold_format(
            "\n".join(value for _, value in headers)  # no marker holds a line break
        ):
            return headers  # the usual case, in one pass
        assign = assign or self.placeholder
        out: list[tuple[str, str]] | None = None
        for i, (name, value) in enumerate(headers):
            new = self._redact_header(name.lower(), value, assign)
            if new is not value:
                if out is None:
                    out = list(headers)
                out[i] = (name, new)
        return headers if out is None else tuple(out)

    def _redact_header(self, lname: str, value: str, assign: Assign) -> str:
        if lname in _COOKIE_HEADERS and lname in self.headers:
            # Each cookie's value gets its own placeholder and the names and attributes stay
            # readable, so a cookie a response sets and a later request sends back maps to one
            # placeholder in both (and chains, see wiretape.chains).
            pattern = _SET_COOKIE_VALUE if lname == "set-cookie" else _COOKIE_VALUE

            def one(m: re.Match[str]) -> str:
                cookie = m.group(2)
                if not cookie or is_placeholder(cookie):
                    return m.group(0)
                return m.group(1) + assign(cookie)

            return pattern.sub(one, value)
        if lname in self.headers:
            if not value or is_placeholder(value):
                return value
            match = _SCHEME.match(value) if lname in _SCHEMED else None
            if match:
                return f"{match.group(1)} {assign(match.group(2))}"
            return assign(value)
        return _formats(value, assign) or value

    def reveal_headers(self, headers: Headers) -> Headers:
        """Placeholders replaced by their real values where this table knows them."""
        if not any(is_placeholder(v) for _, v in headers):
            return headers
        return tuple(
            (name, _PLACEHOLDER.sub(lambda m: self._value_of(m, str), value))
            for name, value in headers
        )

    def missing(self, headers: Headers) -> list[str]:
        """Names of headers whose placeholder has no known value."""
        return [name for name, value in headers if self._unknown_in(value)]

    # --- whole messages --------------------------------------------------------------------

    def redact_target(self, target: str, assign: Assign | None = None) -> str:
        """A request target with credential query parameters and key formats redacted."""
        assign = assign or self.placeholder
        path, sep, query = target.partition("?")
        new_path = _formats(path, assign) or path
        new_query = self._redact_pairs(query, assign) if query else None
        if new_path is path and new_query is None:
            return target
        return new_path + sep + (query if new_query is None else new_query)

    def redact_request(self, req: HttpRequest) -> HttpRequest:
        """``req`` as it is recorded: every credential replaced by its placeholder."""
        return self._redact_request(req, self.placeholder, record=True)

    def redact_response(self, resp: HttpResponse | None) -> HttpResponse | None:
        if resp is None:
            return None
        headers = self.redact_headers(resp.headers)
        body = self._redact_body(resp.body, resp.headers, self.placeholder, record=True)
        if headers is resp.headers and body is resp.body:
            return resp
        return dataclasses.replace(resp, headers=_resized(headers, resp.body, body), body=body)

    def redact_live(self, req: HttpRequest) -> HttpRequest:
        """A live request seen while replaying, redacted like its recording before matching.

        Values this table does not know get ``wiretape:secret:unknown-N``; nothing is saved.
        Headers are left alone: they are not part of matching.
        """
        target = self.redact_target(req.target, self._live)
        body = self._redact_body(req.body, req.headers, self._live, record=False)
        if target is req.target and body is req.body:
            return req
        return dataclasses.replace(req, target=target, body=body)

    def _redact_request(self, req: HttpRequest, assign: Assign, *, record: bool) -> HttpRequest:
        headers = self.redact_headers(req.headers, assign)
        target = self.redact_target(req.target, assign)
        body = self._redact_body(req.body, req.headers, assign, record=record)
        if headers is req.headers and target is req.target and body is req.body:
            return req
        return dataclasses.replace(
            req, headers=_resized(headers, req.body, body), target=target, body=body
        )

    def reveal_request(self, req: HttpRequest) -> HttpRequest:
        """``req`` with every placeholder this table knows replaced by its real value."""
        headers = self.reveal_headers(req.headers)
        target = req.target
        if is_placeholder(target):
            path, sep, query = target.partition("?")
            path = _PLACEHOLDER.sub(lambda m: self._value_of(m, _quote_path), path)
            query = _PLACEHOLDER.sub(lambda m: self._value_of(m, _quote_form), query)
            target = path + sep + query
        body = self._reveal_body(req.body, req.headers)
        if headers is req.headers and target == req.target and body is req.body:
            return req
        return dataclasses.replace(
            req, headers=_resized(headers, req.body, body), target=target, body=body
        )

    def reveal_response(self, resp: HttpResponse) -> HttpResponse:
        """``resp`` as the app first saw it, as far as this table knows the values."""
        headers = self.reveal_headers(resp.headers)
        body = self._reveal_body(resp.body, resp.headers)
        if headers is resp.headers and body is resp.body:
            return resp
        return dataclasses.replace(resp, headers=_resized(headers, resp.body, body), body=body)

    def missing_fields(self, req: HttpRequest) -> list[str]:
        """Every field of ``req`` holding a placeholder whose value this table does not know.

        e.g. ``header Authorization``, ``query api_key``, ``body.user.password``,
        ``form field client_secret``, ``path``, ``body``.
        """
        out = [f"header {name}" for name in self.missing(req.headers)]
        path, _, query = req.target.partition("?")
        if self._unknown_in(path):
            out.append("path")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if self._unknown_in(value):
                out.append(f"query {name}")
        out.extend(self._missing_in_body(req.body, req.headers))
        return out

    # --- bodies ----------------------------------------------------------------------------

    def _redact_body(self, body: Body, headers: Headers, assign: Assign, *, record: bool) -> Body:
        if isinstance(body, BlobRef):
            done = self._blobs.get(body.sha256)
            if done is not None:
                return done
            data = self._blob_worth_reading(body, headers)
            if data is None:
                self._blobs[body.sha256] = body
                return body
        elif not body:
            return body
        else:
            data = body
        new = _rewrite(data, headers, lambda text, kind: self._redact_text(text, kind, assign))
        result: Body = body if new is None else new
        if isinstance(body, BlobRef) and record:
            if new is not None:
                result = _replace_blob(body, new)
            self._blobs[body.sha256] = result
        return result

    def _blob_worth_reading(self, body: BlobRef, headers: Headers) -> bytes | None:
        """The bytes of a spooled body that may hold a credential, else None.

        A spooled body is large: it is read whole only when a streaming look finds a key format
        or every word of a credential key name in it (keys spelled with ``\\u`` escapes are not
        looked for). Bodies of a binary content type are never read.
        """
        if body.size == 0 or body.size > MAX_BODY or _is_binary_type(_media_type(headers)):
            return None
        seen: set[str] = set()
        for text in _text_pieces(body, headers):
            if may_hold_format(text):
                return _body_data(body)
            seen |= self.keys.occurring(text)
            if self.keys.complete(seen):
                return _body_data(body)
        return None

    def _redact_text(self, text: str, kind: str, assign: Assign) -> str | None:
        if kind == "form":
            return self._redact_pairs(text, assign)
        if kind == "json":
            # Escapes can spell a key in any way, so a body with them is always read.
            formats = may_hold_format(text)
            if not (formats or "\\" in text or self.keys.may_occur(text)):
                return None
            out = self._redact_json(text, assign, formats)
            if out != _NOT_JSON:
                return out
        return _formats(text, assign)

    def _redact_pairs(self, text: str, assign: Assign) -> str | None:
        """Form fields or query parameters: credential keys and key formats redacted."""
        plain = unquote_plus(text)
        if not (self.keys.may_occur(plain) or may_hold_format(plain)):
            return None
        parts = text.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if eq and value and self.keys.matches(unquote_plus(name)):
                plain = unquote_plus(value)
                if plain and not is_placeholder(plain):
                    parts[i] = f"{name}={assign(plain)}"
                    changed = True
                continue
            plain = unquote_plus(value if eq else name)
            new = _formats(plain, assign)
            if new is not None:
                encoded = quote_plus(new, safe=":")
                parts[i] = f"{name}={encoded}" if eq else encoded
                changed = True
        return "&".join(parts) if changed else None

    def _redact_json(self, text: str, assign: Assign, formats: bool) -> str | None:
        """The JSON document ``text`` with credential strings replaced, token by token.

        None when nothing changed; ``_NOT_JSON`` when ``text`` is not JSON. ``formats``: whether
        ``text`` may hold a key format (else only credential keys can change it).
        """
        keyed = False

        def look(pairs: list[tuple[str, object]]) -> None:
            nonlocal keyed
            keyed = keyed or any(
                isinstance(v, str | list) and v and self.keys.matches(k) for k, v in pairs
            )

        try:
            json.loads(text, object_pairs_hook=look)
        except (ValueError, RecursionError):
            return _NOT_JSON
        if not (keyed or formats):
            return None
        ascii_only = _escapes_all(text)
        pieces: list[str] = []
        last = 0
        # One entry per open container: [is an object, the key its next value sits under].
        stack: list[tuple[bool, list[str | None]]] = []
        expect_key = False
        for match in _JSON_TOKEN.finditer(text):
            token = match.group()
            first = token[0]
            if first == '"':
                if expect_key:
                    stack[-1][1][0] = token[1:-1] if "\\" not in token else json.loads(token)
                    continue
                key = stack[-1][1][0] if stack else None
                new = self._redact_json_string(token, key, assign, ascii_only)
                if new is not None:
                    pieces.append(text[last : match.start()])
                    pieces.append(new)
                    last = match.end()
            elif first == "{":
                stack.append((True, [None]))
                expect_key = True
            elif first == "[":
                stack.append((False, [stack[-1][1][0] if stack else None]))
                expect_key = False
            elif first in "}]":
                stack.pop()
                expect_key = False
            elif first == ":":
                expect_key = False
            elif first == ",":
                expect_key = bool(stack) and stack[-1][0]
        if not pieces:
            return None
        pieces.append(text[last:])
        return "".join(pieces)

    def _redact_json_string(
        self, token: str, key: str | None, assign: Assign, ascii_only: bool
    ) -> str | None:
        if key is not None and self.keys.matches(key):
            value = json.loads(token)
            if value and not is_placeholder(value):
                return json.dumps(assign(value))
            return None
        value = json.loads(token) if "\\" in token else token[1:-1]
        new = _formats(value, assign)
        return None if new is None else json.dumps(new, ensure_ascii=ascii_only)

    def _reveal_body(self, body: Body, headers: Headers) -> Body:
        if not _may_hold_placeholder(body, headers):
            return body
        data = _body_data(body)
        if data is None:
            return body
        new = _rewrite(data, headers, self._reveal_text)
        return body if new is None else new

    def _reveal_text(self, text: str, kind: str) -> str | None:
        if PREFIX not in text:
            return None
        encode: Encode = str
        if kind == "form":
            encode = _quote_form
        elif kind == "json" and _is_json(text):
            ascii_only = _escapes_all(text)

            def encode(value: str) -> str:
                return json.dumps(value, ensure_ascii=ascii_only)[1:-1]

        new = _PLACEHOLDER.sub(lambda m: self._value_of(m, encode), text)
        return None if new == text else new

    def _missing_in_body(self, body: Body, headers: Headers) -> list[str]:
        found: list[str] = []

        def look(text: str, kind: str) -> None:
            if not self._unknown_in(text):
                return
            if kind == "form":
                pairs = parse_qsl(text, keep_blank_values=True)
                found.extend(f"form field {k}" for k, v in pairs if self._unknown_in(v))
            elif kind == "json" and _is_json(text):
                for where, value in _json_strings(json.loads(text), ("body",)):
                    if self._unknown_in(value):
                        found.append(format_path(where))
            else:
                found.append("body")

        if _may_hold_placeholder(body, headers):
            data = _body_data(body)
            if data is not None:
                _rewrite(data, headers, lambda text, kind: look(text, kind))
        return found

    # --- the file --------------------------------------------------------------------------

    def _saved(self, placeholder: str, value: str) -> None:
        if self.path is None:
            return
        if not self._appending:
            self.save()
            self._appending = True
            return
        entry = yaml.safe_dump({placeholder: value}, allow_unicode=True, default_flow_style=False)
        text = "".join(f"  {line}\n" for line in entry.splitlines())
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)

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


_COOKIE_HEADERS = frozenset({"cookie", "set-cookie"})
# A cookie's value: after "name=" at the start or after a ";" (Cookie), or only the first pair
# (Set-Cookie, whose other pairs are attributes such as Path and Expires).
_COOKIE_VALUE = re.compile(r"((?:^|;)\s*[^=;\s]+=)([^;]*)")
_SET_COOKIE_VALUE = re.compile(r"^(\s*[^=;\s]+=)([^;]*)")


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


# --- helpers -------------------------------------------------------------------------------


def _formats(text: str, assign: Assign) -> str | None:
    """``text`` with every known key format replaced, or None when it holds none."""
    if not may_hold_format(text):
        return None
    new, count = FORMATS_RE.subn(lambda m: assign(m.group(0)), text)
    return new if count else None


def _pad(placeholder: str, value: str) -> str:
    """``placeholder`` padded with ``_`` to the length of ``value`` (when that is longer).

    A key format is never followed by a digit, so an unpadded placeholder's number cannot run
    on into the bytes after it (``reveal_bytes`` reads the digits greedily)."""
    return placeholder + "_" * (len(value) - len(placeholder))


def _redact_raw(data: bytes, assign: Assign) -> bytes:
    """``data`` with every known key format replaced by ``_pad(assign(value), value)``.

    The bytes are read as latin-1, one character per byte, so any bytes go through and every
    offset outside a replaced value stays what it was.
    """
    if not may_hold_format_bytes(data):
        return data
    text = data.decode("latin-1")
    new, count = FORMATS_RE.subn(lambda m: _pad(assign(m.group(0)), m.group(0)), text)
    return new.encode("latin-1") if count else data


def _raw_value(value: str) -> bytes:
    """The bytes of a value from the table: latin-1 as ``_redact_raw`` read them, else UTF-8
    (a value first seen in an HTTP exchange)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _quote_path(value: str) -> str:
    return quote(value, safe="")


def _quote_form(value: str) -> str:
    return quote_plus(value, safe="")


def _escapes_all(text: str) -> bool:
    """Whether a JSON text looks written with every non-ASCII character escaped.

    Strings put back into it are escaped the same way (as ``json.dumps`` does by default);
    a text with raw non-ASCII characters gets them raw.
    """
    return text.isascii() and "\x7f" not in text


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


_Where = tuple[str | int, ...]


def _json_strings(value: object, path: _Where) -> Iterator[tuple[_Where, str]]:
    """(path, string) for every string in a parsed JSON value, in document order."""
    stack: list[tuple[_Where, object]] = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            yield where, node
        elif isinstance(node, dict):
            stack.extend(((*where, k), v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(node))))


def _body_data(body: Body) -> bytes | None:
    """The bytes of ``body``, or None when it is a file too large (or gone) to read."""
    if isinstance(body, bytes):
        return body
    if body.size > MAX_BODY:
        return None
    try:
        return body.read()
    except OSError:
        return None


def _resized(headers: Headers, old: Body, new: Body) -> Headers:
    """``headers`` with Content-Length following a body that changed size."""
    if new is old or not any(k.lower() == "content-length" for k, _ in headers):
        return headers
    size = str(len(new) if isinstance(new, bytes) else new.size)
    return tuple((k, size if k.lower() == "content-length" else v) for k, v in headers)


def _may_hold_placeholder(body: Body, headers: Headers) -> bool:
    if isinstance(body, bytes) and not _codings(headers):
        return PREFIX.encode() in body
    return any(PREFIX in text for text in _text_pieces(body, headers))


def _text_pieces(body: Body, headers: Headers) -> Iterator[str]:
    """The body after its content codings, as overlapping latin-1 pieces of about 1 MiB.

    Reads a file body piece by piece, so memory stays flat; stops quietly on a coding it cannot
    undo.
    """
    tail = ""
    try:
        for piece in _decoded_pieces(_raw_pieces(body), _codings(headers)):
            text = tail + piece.decode("latin-1")
            yield text
            tail = text[-_OVERLAP:]
    except (OSError, ValueError, zlib.error, brotli.error):
        return


def _raw_pieces(body: Body) -> Iterator[bytes]:
    if isinstance(body, bytes):
        yield body
        return
    with open(body.path, "rb") as fh:
        while piece := fh.read(_PIECE):
            yield piece


def _decoded_pieces(pieces: Iterator[bytes], codings: list[str]) -> Iterator[bytes]:
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip", "deflate"):
            pieces = _inflate_pieces(pieces, coding)
        elif coding == "br":
            pieces = _unbrotli_pieces(pieces)
        else:
            raise ValueError(f"unknown coding {coding}")
    return pieces


def _inflate_pieces(pieces: Iterator[bytes], coding: str) -> Iterator[bytes]:
    inflater = None
    for piece in pieces:
        if inflater is None:
            wbits = 16 + zlib.MAX_WBITS
            if coding == "deflate":  # zlib-wrapped by the spec, raw from some servers
                zlib_header = len(piece) > 1 and piece[0] & 0x0F == 8
                zlib_header = zlib_header and (piece[0] << 8 | piece[1]) % 31 == 0
                wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
            inflater = zlib.decompressobj(wbits)
        data = piece
        while data:
            out = inflater.decompress(data, _PIECE)
            if out:
                yield out
            data = inflater.unconsumed_tail
    if inflater is not None and (rest := inflater.flush()):
        yield rest


def _unbrotli_pieces(pieces: Iterator[bytes]) -> Iterator[bytes]:
    decoder = brotli.Decompressor()
    for piece in pieces:
        out = decoder.process(piece, output_buffer_limit=_PIECE)
        while out:
            yield out
            if decoder.is_finished():
                break
            out = decoder.process(b"", output_buffer_limit=_PIECE)


def _is_binary_type(mtype: str) -> bool:
    return mtype in _BINARY_TYPES or mtype.startswith(_BINARY_PREFIXES)


def _media_type(headers: Headers) -> str:
    values = header_all(headers, "content-type")
    return values[0].split(";", 1)[0].strip().lower() if values else ""


def _kind(text: str, mtype: str) -> str:
    if mtype == _FORM:
        return "form"
    subtype = mtype.partition("/")[2]
    if subtype == "json" or subtype.endswith("+json"):
        return "json"
    head = text[:64].lstrip("\ufeff \t\r\n")[:1]
    if head and head in "{[" and not mtype.startswith(_BINARY_PREFIXES):
        return "json"
    return "text"


def _codings(headers: Headers) -> list[str]:
    codings: list[str] = []
    for value in header_all(headers, "content-encoding"):
        codings.extend(c.strip().lower() for c in value.split(","))
    return [c for c in codings if c and c != "identity"]


def _rewrite(
    data: bytes, headers: Headers, change: Callable[[str, str], str | None]
) -> bytes | None:
    """``data`` decoded and passed to ``change(text, kind)``, then encoded again.

    ``kind`` is "json", "form", "text" or "bytes" (not UTF-8: latin-1 text). Content codings
    are undone first and applied again after. None when nothing changed or a coding is unknown.
    """
    codings = _codings(headers)
    if codings:
        decoded = _decode(data, codings)
        if decoded is None:
            return None
        out = _rewrite_plain(decoded, _media_type(headers), change)
        return None if out is None else _encode(out, codings)
    return _rewrite_plain(data, _media_type(headers), change)


def _rewrite_plain(
    data: bytes, mtype: str, change: Callable[[str, str], str | None]
) -> bytes | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        latin = data.decode("latin-1")
        new = change(latin, "bytes")
        return None if new is None else new.encode("latin-1")
    new = change(text, _kind(text, mtype))
    return None if new is None else new.encode("utf-8")


def _decode(data: bytes, codings: list[str]) -> bytes | None:
    try:
        for coding in reversed(codings):
            if coding in ("gzip", "x-gzip"):
                data = _inflate(data, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                try:
                    data = _inflate(data, zlib.MAX_WBITS)
                except zlib.error:
                    data = _inflate(data, -zlib.MAX_WBITS)
            elif coding == "br":
                decoder = brotli.Decompressor()
                out = bytes(decoder.process(data, output_buffer_limit=MAX_BODY + 1))
                if len(out) > MAX_BODY or not decoder.is_finished():
                    return None
                data = out
            else:
                return None
    except (zlib.error, brotli.error, ValueError):
        return None
    return data


def _inflate(data: bytes, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, MAX_BODY + 1)
    if len(out) > MAX_BODY or not inflater.eof:
        raise ValueError("truncated or too large")
    return out


def _encode(data: bytes, codings: list[str]) -> bytes | None:
    for coding in codings:
        if coding in ("gzip", "x-gzip"):
            data = gzip.compress(data, mtime=0)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "br":
            data = brotli.compress(data)
        else:
            return None
    return data


def _replace_blob(old: BlobRef, data: bytes) -> BlobRef:
    """Store the redacted ``data`` next to the spooled body ``old``, which is then removed."""
    directory = Path(old.path).parent
    digest = hashlib.sha256(data).hexdigest()
    target = directory / digest
    if not target.exists():
        tmp = directory / f"{TMP_PREFIX}{os.urandom(6).hex()}-{digest}"
        tmp.write_bytes(data)
        os.replace(tmp, target)
    if Path(old.path) != target:
        Path(old.path).unlink(missing_ok=True)
    return BlobRef(sha256=digest, size=len(data), path=str(target))
