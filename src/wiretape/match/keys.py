"""Normalized match keys for HTTP requests.

How this works: a live request and a recorded one are the same call when their ``HttpKey`` values
are equal. The key keeps what decides the answer (dependency, method, scheme, host, path, query,
body) in a canonical spelling, so that harmless differences vanish: letter case where HTTP ignores
it, default ports, query order, percent-encoding of unreserved characters, JSON key order and
whitespace, form field order, and compression of the body. Headers are not part of the key.

The body is canonicalized by ``body_view``, which ``explain`` also uses to describe differences.
A ``BlobRef`` body is read only when its canonical form depends on its content; a body whose
content type is clearly binary keys on the sha256 the ref already carries.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

from wiretape.model import BlobRef, Headers, HttpRequest, body_bytes, header_get

__all__ = ["BodyView", "HttpKey", "body_view", "describe", "http_key", "normalize_path"]

# Decoding stops past this size; the body is then keyed on its encoded bytes.
MAX_DECODED_BODY = 64 * 1024 * 1024

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_FORM = "application/x-www-form-urlencoded"
# Content types whose bodies are never sniffed for JSON (so a stored blob of one needs no read).
_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/", "multipart/")
_BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "application/protobuf",
        "application/x-protobuf",
        "application/grpc",
    }
)
_DESCRIBE_MAX = 200


class HttpKey(NamedTuple):
    dep: str
    method: str
    scheme: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: str


class BodyView(NamedTuple):
    """A request body after content decoding, in the form matching and explanations use.

    ``kind`` is "empty", "json", "form" or "bytes". ``value`` is the parsed JSON value for
    "json", the sorted ``(name, value)`` byte pairs for "form", and None otherwise.
    ``size`` is the decoded length in bytes and ``sha256`` its hex digest (empty for "empty").
    """

    kind: str
    canonical: str
    value: object
    size: int
    sha256: str


def http_key(dep: str, req: HttpRequest, view: BodyView | None = None) -> HttpKey:
    """``view``: the request's ``body_view``, when the caller has it already."""
    scheme = req.scheme.lower()
    return HttpKey(
        dep=dep,
        method=req.method.upper(),
        scheme=scheme,
        host=normalize_host(scheme, req.host),
        path=normalize_path(req.path),
        query=normalize_query(req.query),
        body=(view if view is not None else body_view(req)).canonical,
    )


def normalize_host(scheme: str, host: str) -> str:
    host = host.lower()
    port = _DEFAULT_PORTS.get(scheme)
    if port is not None and host.endswith(port):
        host = host[: -len(port)]
    return host


def normalize_path(path: str) -> str:
    """Decode percent-escapes of unreserved characters and upper-case the hex of the rest."""
    if not path:
        return "/"
    if "%" not in path:
        return path
    return _PERCENT.sub(_normalize_escape, path)


def _normalize_escape(match: re.Match[str]) -> str:
    octet = int(match.group(1), 16)
    if octet in _UNRESERVED:
        return chr(octet)
    return "%" + match.group(1).upper()


def normalize_query(query: str) -> tuple[tuple[str, str], ...]:
    if not query:
        return ()
    return tuple(sorted(parse_qsl(query, keep_blank_values=True)))


def media_type(headers: Headers) -> str:
    value = header_get(headers, "content-type") or ""
    return value.split(";", 1)[0].strip().lower()


def is_json_type(mtype: str) -> bool:
    subtype = mtype.partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def _is_binary_type(mtype: str) -> bool:
    return mtype in _BINARY_TYPES or mtype.startswith(_BINARY_PREFIXES)


def body_view(req: HttpRequest) -> BodyView:
    body = req.body
    mtype = media_type(req.headers)
    codings = _ordered_codings(req.headers)
    if isinstance(body, BlobRef):
        if body.size == 0:
            return BodyView("empty", "", None, 0, "")
        if not codings and _is_binary_type(mtype):
            return BodyView("bytes", "sha256:" + body.sha256, None, body.size, body.sha256)
    data = body_bytes(body)
    if not data:
        return BodyView("empty", "", None, 0, "")
    if codings:
        data = _decode(data, codings)
    return _view_of(data, mtype)


def _ordered_codings(headers: Headers) -> list[str]:
    """Content codings in the order they were applied (the header lists them that way)."""
    values = ",".join(v for k, v in headers if k.lower() == "content-encoding")
    return [
        c.strip().lower() for c in values.split(",") if c.strip().lower() not in ("", "identity")
    ]


def _view_of(data: bytes, mtype: str) -> BodyView:
    digest = hashlib.sha256(data).hexdigest()
    parsed = None
    if is_json_type(mtype):
        parsed = _parse_json(data, containers_only=False)
    elif mtype == _FORM:
        # Latin-1 maps every byte to one character, so any percent-escape decodes losslessly.
        text = data.decode("latin-1")
        pairs = tuple(sorted(parse_qsl(text, keep_blank_values=True, encoding="latin-1")))
        canonical = urlencode(pairs, encoding="latin-1")
        return BodyView("form", "form:" + canonical, pairs, len(data), digest)
    elif not _is_binary_type(mtype) and _looks_like_json(data):
        parsed = _parse_json(data, containers_only=True)
    if parsed is not None:
        canonical, value = parsed
        return BodyView("json", "json:" + canonical, value, len(data), digest)
    return BodyView("bytes", "sha256:" + digest, None, len(data), digest)


def _looks_like_json(data: bytes) -> bool:
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] in (b"{", b"[")


def _parse_json(data: bytes, *, containers_only: bool) -> tuple[str, object] | None:
    try:
        value: object = json.loads(data)
        if containers_only and not isinstance(value, dict | list):
            return None
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return None
    return text, value


def _decode(data: bytes, codings: list[str]) -> bytes:
    """Undo the content codings, last applied first; on any failure keep the bytes as sent."""
    out = data
    for coding in reversed(codings):
        decoder = _DECODERS.get(coding)
        decoded = decoder(out) if decoder is not None else None
        if decoded is None:
            return data
        out = decoded
    return out


def _zlib(data: bytes, wbits: int) -> bytes | None:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, MAX_DECODED_BODY + 1)
    except zlib.error:
        return None
    if len(out) > MAX_DECODED_BODY or not d.eof:
        return None
    return out


def _gzip(data: bytes) -> bytes | None:
    return _zlib(data, 16 + zlib.MAX_WBITS)


def _deflate(data: bytes) -> bytes | None:
    # "deflate" is zlib-wrapped by the spec, but some clients send a raw deflate stream.
    out = _zlib(data, zlib.MAX_WBITS)
    return out if out is not None else _zlib(data, -zlib.MAX_WBITS)


def _brotli(data: bytes) -> bytes | None:
    try:
        import brotli
    except ImportError:
        return None
    d = brotli.Decompressor()
    try:
        out: bytes = d.process(data, output_buffer_limit=MAX_DECODED_BODY + 1)
    except brotli.error:
        return None
    if len(out) > MAX_DECODED_BODY or not d.is_finished():
        return None
    return out


_DECODERS: dict[str, Callable[[bytes], bytes | None]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
}


def describe(req: HttpRequest) -> str:
    """One line naming the request, e.g. "POST /v1/charges?dry=1"."""
    target = req.path or "/"
    if req.query:
        target += "?" + req.query
    if req.host:
        target = f"{req.scheme.lower()}://{req.host.lower()}{target}"
    line = f"{req.method.upper()} {target}"
    line = line.encode("unicode_escape").decode("ascii") if not line.isprintable() else line
    if len(line) > _DESCRIBE_MAX:
        line = line[: _DESCRIBE_MAX - 1] + "…"
    return line
