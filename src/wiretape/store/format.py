"""Format v1: how tests, mocks and set info become YAML documents, and back.

Bodies are stored in the most readable form that still gives back the exact bytes:

- ``{json: value}`` when re-serialising ``value`` in one of a few known styles (``json_style``,
  ``ascii``) reproduces the body byte for byte, and the value survives YAML unchanged;
- ``{text: "..."}`` for UTF-8 text without NUL that survives YAML unchanged;
- ``{base64: "..."}`` for small binary bodies, ``{file: bodies/<sha256>, size, sha256}`` for
  large ones, stored once per content;
- a body with a ``Content-Encoding`` keeps its raw bytes as binary next to ``encoding:``, plus a
  ``decoded:`` view for people to read. The view is never used to rebuild the body.

Readers validate every field and raise StoreError naming the file and the field path.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import brotli

from wiretape.errors import StoreError
from wiretape.model import (
    BlobRef,
    Body,
    Chain,
    DepInfo,
    Headers,
    HttpRequest,
    HttpResponse,
    LinkKind,
    Mock,
    SetInfo,
    TestCase,
    WireRequest,
    WireResponse,
    header_all,
    header_get,
)
from wiretape.protocols.wire import PlainError, codec_for, wire_protocols
from wiretape.store import migrate as _migrate
from wiretape.store.yamlio import TMP_PREFIX, FlowList, atomic_write, round_trip, store_error

FORMAT = _migrate.CURRENT

INLINE_TEXT_MAX = 64 * 1024
INLINE_BINARY_MAX = 256
DECODED_VIEW_MAX = 256 * 1024

_HINT = "fix the field by hand or record the set again"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEST_ID = re.compile(r"[0-9]+-[A-Za-z0-9._-]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (name, indent, separators); None is the default style and is not written.
_JSON_STYLES: tuple[tuple[str | None, int | None, tuple[str, str]], ...] = (
    (None, None, (",", ":")),
    ("spaced", None, (", ", ": ")),
    ("indent2", 2, (",", ": ")),
)
_STYLE_NAMES = {name or "compact": (indent, seps) for name, indent, seps in _JSON_STYLES}

T = TypeVar("T")


# --- test ids --------------------------------------------------------------------------------


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def test_id_for(index: int, method: str, target: str) -> str:
    """``0001-post-api-orders``: the index, the method and a slug of the path."""
    if index < 0:
        raise ValueError(f"test index must not be negative, got {index}")
    return f"{index:04d}-{_id_suffix(method, target)}"


@functools.lru_cache(maxsize=4096)
def _id_suffix(method: str, target: str) -> str:
    if target.startswith("/") or target == "*":
        path = target.split("?", 1)[0].split("#", 1)[0]
    else:
        path = urlsplit(target).path
    return f"{_slug(method, 20) or 'req'}-{_slug(path, 60) or 'root'}"


def check_test_id(test_id: str, where: str) -> None:
    """Test ids are file stems: an index, a dash, then letters, digits, ``.``, ``_``, ``-``."""
    if not _TEST_ID.fullmatch(test_id) or ".." in test_id:
        raise store_error(
            where,
            f"test id {test_id!r} is not valid",
            "a test id is its index, a dash and a slug, like 0001-get-api-users",
        )


# --- field validation ------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return f"{type(value).__name__} {value!r}"[:80]


def _field_error(source: str, path: str, problem: str) -> StoreError:
    return store_error(f"{source}: {path}" if path else source, problem, _HINT)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Fields:
    """A mapping from a document, read with type checks that name the file and field path."""

    __slots__ = ("data", "path", "source")

    def __init__(self, data: object, source: str, path: str) -> None:
        if not isinstance(data, Mapping):
            raise _field_error(source, path, f"expected a mapping, found {_kind(data)}")
        self.data: Mapping[str, Any] = data
        self.source = source
        self.path = path

    def has(self, key: str) -> bool:
        return key in self.data

    def check(self, key: str, value: object, kinds: tuple[type, ...], what: str) -> Any:
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not ok:
            raise _field_error(
                self.source, _join(self.path, key), f"expected {what}, found {_kind(value)}"
            )
        return value

    def get(self, key: str, kinds: tuple[type, ...], what: str) -> Any:
        if key not in self.data:
            raise _field_error(self.source, _join(self.path, key), "this required field is missing")
        return self.check(key, self.data[key], kinds, what)

    def opt(self, key: str, kinds: tuple[type, ...], what: str, default: T) -> Any | T:
        value = self.data.get(key)
        if value is None:
            return default
        return self.check(key, value, kinds, what)

    def string(self, key: str) -> str:
        value: str = self.get(key, (str,), "a string")
        return value

    def number(self, key: str) -> float:
        return float(self.get(key, (int, float), "a number"))

    def strings(self, key: str) -> tuple[str, ...]:
        items: list[Any] = self.opt(key, (list,), "a list of strings", [])
        for i, item in enumerate(items):
            self.check(f"{key}[{i}]", item, (str,), "a string")
        return tuple(items)

    def child(self, key: str) -> _Fields:
        if key not in self.data:
            raise _field_error(self.source, _join(self.path, key), "this required field is missing")
        return _Fields(self.data[key], self.source, _join(self.path, key))

    def time(self, key: str) -> float:
        value = self.get(key, (str, datetime), "an ISO 8601 UTC time like 2026-01-31T12:00:00Z")
        return _parse_time(value, lambda p: _field_error(self.source, _join(self.path, key), p))


# --- scalars ---------------------------------------------------------------------------------


def _iso(t: float) -> str:
    moment = datetime.fromtimestamp(t, UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def _parse_time(value: str | datetime, fail: Callable[[str], StoreError]) -> float:
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise fail(
                f"{value!r} is not an ISO 8601 time like 2026-01-31T12:00:00.000000Z"
            ) from None
    assert isinstance(moment, datetime)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH).total_seconds()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _headers_doc(headers: Headers) -> list[FlowList]:
    return [FlowList((name, value)) for name, value in headers]


def _headers(fields: _Fields, key: str, *, required: bool) -> Headers:
    if not required and not fields.has(key):
        return ()
    items = fields.get(key, (list,), "a list of [name, value] pairs")
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(items):
        ok = (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], str)
        )
        if not ok:
            raise _field_error(
                fields.source,
                f"{_join(fields.path, key)}[{i}]",
                f"expected a [name, value] pair of strings, found {_kind(pair)}",
            )
        out.append((pair[0], pair[1]))
    return tuple(out)


# --- bodies ----------------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKey("duplicate key")
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_json_type(headers: Headers) -> bool:
    ctype = (header_get(headers, "content-type") or "").split(";", 1)[0].strip().lower()
    return ctype.endswith("/json") or ctype.endswith("+json")


# Strings made only of these characters are known to survive a YAML dump and load unchanged
# (a property test keeps this honest), so the costly round trip is skipped for them.
_YAML_SAFE_TEXT = re.compile(
    "[\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)


def plainly_yaml_safe(value: object) -> bool:
    """True when ``value`` (a JSON value) certainly survives YAML unchanged without trying it."""
    if isinstance(value, str):
        return _YAML_SAFE_TEXT.fullmatch(value) is not None
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(plainly_yaml_safe(item) for item in value)
    if isinstance(value, dict):
        return all(plainly_yaml_safe(k) and plainly_yaml_safe(v) for k, v in value.items())
    return False


def _exact_json(data: bytes) -> dict[str, Any] | None:
    """``{json: value, ...}`` when the bytes can be rebuilt exactly from ``value``, else None."""
    try:
        text = data.decode("utf-8")
        if not text or text[0].isspace() or text[-1].isspace():
            return None  # json.dumps writes no white space around a document, in any style
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None
    ascii_options = (False, True) if text.isascii() else (False,)
    for style, indent, separators in _JSON_STYLES:
        for ensure_ascii in ascii_options:
            try:
                again = json.dumps(
                    value, ensure_ascii=ensure_ascii, indent=indent, separators=separators
                )
            except (ValueError, RecursionError):
                return None
            if again != text:
                continue
            try:
                if not plainly_yaml_safe(value):
                    back = round_trip(value)
                    again = json.dumps(
                        back, ensure_ascii=ensure_ascii, indent=indent, separators=separators
                    )
            except (ValueError, TypeError, RecursionError):
                return None
            if again != text:
                return None
            node: dict[str, Any] = {"json": value}
            if style is not None:
                node["json_style"] = style
            if ensure_ascii:
                node["ascii"] = True
            return node
    return None


def _exact_text(data: bytes) -> dict[str, Any] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    if not plainly_yaml_safe(text):
        try:
            if round_trip(text) != text:
                return None
        except ValueError:
            return None
    return {"text": text}


def _readable(data: bytes, headers: Headers, limit: int) -> dict[str, Any] | None:
    if len(data) > limit:
        return None
    if _is_json_type(headers) or data.lstrip()[:1] in (b"{", b"["):
        node = _exact_json(data)
        if node is not None:
            return node
    return _exact_text(data)


def _blob_node(sha256: str, size: int) -> dict[str, Any]:
    return {"file": f"bodies/{sha256}", "size": size, "sha256": sha256}


def _binary(data: bytes, bodies_dir: Path, fsync: bool) -> dict[str, Any]:
    if len(data) <= INLINE_BINARY_MAX:
        return {"base64": base64.b64encode(data).decode("ascii")}
    digest = hashlib.sha256(data).hexdigest()
    target = bodies_dir / digest
    if not target.exists():
        atomic_write(target, data, fsync=fsync)
    return _blob_node(digest, len(data))


def _stored_blob(blob: BlobRef, bodies_dir: Path, fsync: bool) -> dict[str, Any]:
    target = bodies_dir / blob.sha256
    if not target.exists():
        tmp = bodies_dir / f"{TMP_PREFIX}{secrets.token_hex(6)}-{blob.sha256}"
        try:
            shutil.copyfile(blob.path, tmp)
            if fsync:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return _blob_node(blob.sha256, blob.size)


def _codings(headers: Headers) -> list[str]:
    codings: list[str] = []
    for value in header_all(headers, "content-encoding"):
        codings.extend(c.strip().lower() for c in value.split(","))
    return [c for c in codings if c and c != "identity"]


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)
    if not inflater.eof:
        raise ValueError("truncated or too large")
    return out


def _unbrotli(data: bytes, limit: int) -> bytes:
    decoder = brotli.Decompressor()
    out = bytes(decoder.process(data, output_buffer_limit=limit + 1))
    if len(out) > limit or not decoder.is_finished():
        raise ValueError("truncated or too large")
    return out


def _decode_coding(data: bytes, coding: str, limit: int) -> bytes:
    if coding in ("gzip", "x-gzip"):
        return _inflate(data, 16 + zlib.MAX_WBITS, limit)
    if coding == "deflate":
        try:
            return _inflate(data, zlib.MAX_WBITS, limit)
        except zlib.error:
            return _inflate(data, -zlib.MAX_WBITS, limit)
    if coding == "br":
        return _unbrotli(data, limit)
    raise ValueError(f"unknown coding {coding}")


def _decoded_view(data: bytes, codings: list[str], headers: Headers) -> dict[str, Any] | None:
    try:
        for coding in reversed(codings):
            data = _decode_coding(data, coding, DECODED_VIEW_MAX)
    except (ValueError, zlib.error, brotli.error):
        return None
    node = _readable(data, headers, DECODED_VIEW_MAX)
    if node is None:
        return None
    return {"json": node["json"]} if "json" in node else {"text": node["text"]}


def encode_body(
    body: Body, headers: Headers, bodies_dir: Path, *, fsync: bool = False
) -> dict[str, Any]:
    """The stored form of ``body``; an empty dict for an empty body (the key is then omitted).

    Large bodies are written to ``bodies_dir/<sha256>`` unless that file already exists.
    """
    if isinstance(body, BlobRef):
        node = _stored_blob(body, bodies_dir, fsync)
        codings = _codings(headers)
        return {"encoding": ", ".join(codings), **node} if codings else node
    if not body:
        return {}
    codings = _codings(headers)
    if codings:
        node = {"encoding": ", ".join(codings), **_binary(body, bodies_dir, fsync)}
        view = _decoded_view(body, codings, headers) if len(body) <= DECODED_VIEW_MAX else None
        if view is not None:
            node["decoded"] = view
        return node
    return _readable(body, headers, INLINE_TEXT_MAX) or _binary(body, bodies_dir, fsync)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_body(node: _Fields, set_dir: Path) -> BlobRef:
    name = node.string("file")
    size: int = node.get("size", (int,), "a byte count")
    sha = node.string("sha256")
    if not _SHA256.fullmatch(sha) or name != f"bodies/{sha}":
        raise _field_error(
            node.source,
            _join(node.path, "file"),
            f"expected bodies/<sha256> with the sha256 field's value, found {name!r}",
        )
    path = Path(os.path.abspath(set_dir / name))
    hint = "restore the file from version control, or record the set again"
    try:
        actual = path.stat().st_size
        ok = actual == size and _sha256_of(path) == sha
    except FileNotFoundError:
        raise store_error(
            f"{node.source}: {node.path}", f"body file {path} is missing", hint
        ) from None
    except OSError as exc:
        raise store_error(
            f"{node.source}: {node.path}", f"cannot read {path}: {exc}", hint
        ) from exc
    if not ok:
        raise store_error(
            f"{node.source}: {node.path}",
            f"body file {path} does not match its size ({size}) and sha256; it was changed",
            hint,
        )
    return BlobRef(sha256=sha, size=size, path=str(path))


def _json_body(node: _Fields) -> bytes:
    style = node.opt("json_style", (str,), "compact, spaced or indent2", "compact")
    if style not in _STYLE_NAMES:
        raise _field_error(
            node.source,
            _join(node.path, "json_style"),
            f"expected compact, spaced or indent2, found {style!r}",
        )
    ensure_ascii: bool = node.opt("ascii", (bool,), "true or false", False)
    indent, separators = _STYLE_NAMES[style]
    try:
        text = json.dumps(
            node.data["json"], ensure_ascii=ensure_ascii, indent=indent, separators=separators
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise _field_error(
            node.source, _join(node.path, "json"), f"this value is not JSON: {exc}"
        ) from exc


def decode_body(node: Any, set_dir: Path, where: str) -> Body:
    """The body stored as ``node`` (None when the key was omitted).

    ``where`` names the file and field for errors. File bodies come back as a BlobRef after their
    size and sha256 are checked.
    """
    return _decode(node, set_dir, where, "")


def _decode(node: Any, set_dir: Path, source: str, path: str) -> Body:
    if node is None:
        return b""
    fields = _Fields(node, source, path)
    kinds = [k for k in ("json", "text", "base64", "file") if fields.has(k)]
    if len(kinds) != 1:
        raise _field_error(
            source,
            path,
            "expected exactly one of the keys json, text, base64 or file, "
            f"found {sorted(fields.data) or 'none'}",
        )
    kind = kinds[0]
    if fields.has("encoding"):
        fields.string("encoding")
        if kind not in ("base64", "file"):
            raise _field_error(source, path, "an encoded body must be stored as base64 or file")
    if kind == "json":
        return _json_body(fields)
    if kind == "text":
        try:
            return fields.string("text").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _field_error(source, _join(path, "text"), f"not valid text: {exc}") from exc
    if kind == "base64":
        try:
            return base64.b64decode(fields.string("base64"), validate=True)
        except binascii.Error as exc:
            raise _field_error(source, _join(path, "base64"), f"not valid base64: {exc}") from exc
    return _file_body(fields, set_dir)


# --- http messages ---------------------------------------------------------------------------


def _body_into(
    doc: dict[str, Any], body: Body, headers: Headers, bodies_dir: Path, fsync: bool
) -> None:
    node = encode_body(body, headers, bodies_dir, fsync=fsync)
    if node:
        doc["body"] = node


def _request_doc(r: HttpRequest, bodies_dir: Path, fsync: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"method": r.method, "target": r.target}
    if r.scheme != "http":
        doc["scheme"] = r.scheme
    if r.host:
        doc["host"] = r.host
    doc["version"] = r.version
    doc["headers"] = _headers_doc(r.headers)
    _body_into(doc, r.body, r.headers, bodies_dir, fsync)
    if r.trailers:
        doc["trailers"] = _headers_doc(r.trailers)
    return doc


def _response_doc(r: HttpResponse | None, bodies_dir: Path, fsync: bool) -> dict[str, Any] | None:
    if r is None:
        return None
    doc: dict[str, Any] = {
        "status": r.status,
        "reason": r.reason,
        "version": r.version,
        "headers": _headers_doc(r.headers),
    }
    _body_into(doc, r.body, r.headers, bodies_dir, fsync)
    if r.trailers:
        doc["trailers"] = _headers_doc(r.trailers)
    return doc


def _body_of(fields: _Fields, set_dir: Path) -> Body:
    return _decode(fields.data.get("body"), set_dir, fields.source, _join(fields.path, "body"))


def _request(fields: _Fields, set_dir: Path) -> HttpRequest:
    headers = _headers(fields, "headers", required=True)
    return HttpRequest(
        method=fields.string("method"),
        target=fields.string("target"),
        headers=headers,
        body=_body_of(fields, set_dir),
        version=fields.string("version"),
        scheme=fields.opt("scheme", (str,), "a string", "http"),
        host=fields.opt("host", (str,), "a string", ""),
        trailers=_headers(fields, "trailers", required=False),
    )


def _response(fields: _Fields, set_dir: Path) -> HttpResponse | None:
    if not fields.has("response"):
        raise _field_error(fields.source, _join(fields.path, "response"), "this field is missing")
    if fields.data["response"] is None:
        return None
    r = fields.child("response")
    headers = _headers(r, "headers", required=True)
    return HttpResponse(
        status=r.get("status", (int,), "an HTTP status code"),
        reason=r.string("reason"),
        headers=headers,
        body=_body_of(r, set_dir),
        version=r.string("version"),
        trailers=_headers(r, "trailers", required=False),
    )


# --- tests -----------------------------------------------------------------------------------


def test_to_doc(t: TestCase, bodies_dir: Path, *, fsync: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "id": t.id,
        "started": _iso(t.started),
        "duration_ms": _ms(t.duration),
        "request": _request_doc(t.request, bodies_dir, fsync),
        "response": _response_doc(t.response, bodies_dir, fsync),
    }
    if t.error is not None:
        doc["error"] = t.error
    if t.noise:
        doc["noise"] = list(t.noise)
    if t.upgraded:
        doc["upgraded"] = True
    if t.chains:
        doc["chains"] = [
            {"from": c.source, "path": c.path, "value": c.value, "in": FlowList(c.targets)}
            for c in t.chains
        ]
    return doc


def _chains(fields: _Fields) -> tuple[Chain, ...]:
    items: list[Any] = fields.opt("chains", (list,), "a list of chained values", [])
    out = []
    for i, item in enumerate(items):
        c = _Fields(item, fields.source, f"chains[{i}]")
        out.append(
            Chain(
                source=c.string("from"),
                path=c.string("path"),
                value=c.string("value"),
                targets=c.strings("in"),
            )
        )
    return tuple(out)


def doc_to_test(doc: Mapping[str, Any], set_dir: Path, *, source: str) -> TestCase:
    fields = _Fields(_migrate.migrate(dict(doc), source=source), source, "")
    test_id = fields.string("id")
    check_test_id(test_id, f"{source}: id")
    return TestCase(
        id=test_id,
        request=_request(fields.child("request"), set_dir),
        response=_response(fields, set_dir),
        error=fields.opt("error", (str,), "a string", None),
        noise=fields.strings("noise"),
        started=fields.time("started"),
        duration=fields.number("duration_ms") / 1000,
        upgraded=fields.opt("upgraded", (bool,), "true or false", False),
        chains=_chains(fields),
    )


# --- mocks -----------------------------------------------------------------------------------


def mock_to_doc(m: Mock, bodies_dir: Path, *, fsync: bool = False) -> dict[str, Any]:
    """One entry of a mocks file's ``mocks`` list."""
    doc: dict[str, Any] = {
        "id": m.id,
        "dep": m.dep,
        "protocol": m.protocol,
        "link": m.link.value,
    }
    if m.candidates:
        doc["candidates"] = list(m.candidates)
    doc["started"] = _iso(m.started)
    doc["duration_ms"] = _ms(m.duration)
    if m.error is not None:
        doc["error"] = m.error
    if isinstance(m.request, WireRequest):
        doc["request"] = m.request.data
        doc["response"] = _wire_response_doc(m.response, bodies_dir, fsync)
        return doc
    assert not isinstance(m.response, WireResponse)
    doc["request"] = _request_doc(m.request, bodies_dir, fsync)
    doc["response"] = _response_doc(m.response, bodies_dir, fsync)
    return doc


def _wire_response_doc(r: HttpResponse | WireResponse | None, bodies_dir: Path, fsync: bool) -> Any:
    if r is None:
        return None
    assert isinstance(r, WireResponse)
    if r.raw is None:
        return r.data
    if isinstance(r.raw, BlobRef):
        node = _stored_blob(r.raw, bodies_dir, fsync)
    else:
        digest = hashlib.sha256(r.raw).hexdigest()
        target = bodies_dir / digest
        if not target.exists():
            atomic_write(target, r.raw, fsync=fsync)
        node = _blob_node(digest, len(r.raw))
    return {"raw_file": node, "preview": r.data}


def _wire_request(fields: _Fields, protocol: str) -> WireRequest:
    where = _join(fields.path, "request")
    if not fields.has("request"):
        raise _field_error(fields.source, where, "this field is missing")
    try:
        return codec_for(protocol).request(fields.data["request"])
    except PlainError as exc:
        raise _field_error(fields.source, where, str(exc)) from None


def _wire_response(fields: _Fields, protocol: str, set_dir: Path) -> WireResponse | None:
    where = _join(fields.path, "response")
    if not fields.has("response"):
        raise _field_error(fields.source, where, "this field is missing")
    data = fields.data["response"]
    if data is None:
        return None
    if isinstance(data, dict) and "raw_file" in data:
        node = _Fields(data["raw_file"], fields.source, _join(where, "raw_file"))
        raw = _file_body(node, set_dir)
        return WireResponse(data.get("preview"), raw)
    try:
        codec_for(protocol).check_response(data)
    except PlainError as exc:
        raise _field_error(fields.source, where, str(exc)) from None
    return WireResponse(data)


def mocks_to_doc(
    test_id: str | None, mocks: Sequence[Mock], bodies_dir: Path, *, fsync: bool = False
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "test": test_id,
        "mocks": [mock_to_doc(m, bodies_dir, fsync=fsync) for m in mocks],
    }


def _link(fields: _Fields) -> LinkKind:
    value = fields.string("link")
    try:
        return LinkKind(value)
    except ValueError:
        choices = ", ".join(k.value for k in LinkKind)
        raise _field_error(
            fields.source, _join(fields.path, "link"), f"expected one of {choices}, found {value!r}"
        ) from None


def _mock(fields: _Fields, test_id: str | None, set_dir: Path) -> Mock:
    protocol = fields.string("protocol")
    request: HttpRequest | WireRequest
    response: HttpResponse | WireResponse | None
    if protocol == "http":
        request = _request(fields.child("request"), set_dir)
        response = _response(fields, set_dir)
    elif protocol in wire_protocols():
        request = _wire_request(fields, protocol)
        response = _wire_response(fields, protocol, set_dir)
    else:
        choices = ", ".join(("http", *wire_protocols()))
        raise _field_error(
            fields.source,
            _join(fields.path, "protocol"),
            f"expected one of {choices}, found {protocol!r}",
        )
    return Mock(
        id=fields.string("id"),
        dep=fields.string("dep"),
        protocol=protocol,
        request=request,
        response=response,
        test=test_id,
        link=_link(fields),
        candidates=fields.strings("candidates"),
        error=fields.opt("error", (str,), "a string", None),
        started=fields.time("started"),
        duration=fields.number("duration_ms") / 1000,
    )


def doc_to_mocks(
    doc: Mapping[str, Any], set_dir: Path, *, source: str
) -> tuple[str | None, list[Mock]]:
    fields = _Fields(_migrate.migrate(dict(doc), source=source), source, "")
    if not fields.has("test"):
        raise _field_error(
            source, "test", "this required field is missing (null for session mocks)"
        )
    test_id: str | None = fields.opt("test", (str,), "a test id or null", None)
    items = fields.get("mocks", (list,), "a list of mocks")
    mocks = [
        _mock(_Fields(item, source, f"mocks[{i}]"), test_id, set_dir)
        for i, item in enumerate(items)
    ]
    return test_id, mocks


# --- set info --------------------------------------------------------------------------------

_SET_KEYS = (
    "format",
    "name",
    "created",
    "wiretape_version",
    "app",
    "deps",
    "closed",
    "ended",
    "noise",
    "strict_values",
)


def setinfo_to_doc(info: SetInfo) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "name": info.name,
        "created": _iso(info.created),
        "wiretape_version": info.wiretape_version,
        "app": {"command": info.app_command},
        "deps": [
            {"name": d.name, "protocol": d.protocol, "upstream": d.upstream} for d in info.deps
        ],
        "closed": info.closed,
    }
    if info.ended is not None:
        doc["ended"] = _iso(info.ended)
    if info.noise:
        doc["noise"] = list(info.noise)
    if info.strict_values:
        doc["strict_values"] = True
    for key, value in info.extra.items():
        if key not in _SET_KEYS:
            doc[key] = value
    return doc


def doc_to_setinfo(doc: Mapping[str, Any], *, source: str) -> SetInfo:
    fields = _Fields(_migrate.migrate(dict(doc), source=source), source, "")
    deps: list[DepInfo] = []
    for i, item in enumerate(fields.opt("deps", (list,), "a list of dependencies", [])):
        dep = _Fields(item, source, f"deps[{i}]")
        deps.append(DepInfo(dep.string("name"), dep.string("protocol"), dep.string("upstream")))
    ended = fields.time("ended") if fields.opt("ended", (str, datetime), "a time", None) else None
    return SetInfo(
        name=fields.string("name"),
        created=fields.time("created"),
        app_command=fields.child("app").string("command"),
        deps=tuple(deps),
        wiretape_version=fields.opt("wiretape_version", (str,), "a string", ""),
        closed=fields.get("closed", (bool,), "true or false"),
        ended=ended,
        noise=fields.strings("noise"),
        strict_values=fields.opt("strict_values", (bool,), "true or false", False),
        extra={k: v for k, v in fields.data.items() if k not in _SET_KEYS},
    )
