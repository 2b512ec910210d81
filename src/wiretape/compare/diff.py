"""Compare a recorded response with a live one, as a list of ``Difference`` data.

How this works
--------------
The status is compared exactly. The body is compared next, because ``Content-Length``
only counts as a difference when the bodies differ. Headers are compared as a multiset of
values per lower-cased name, in the order of the expected headers; volatile headers in
``ignore_headers`` are skipped.

Each body is first decoded from its ``Content-Encoding`` (gzip, deflate, br; if either
side fails, both raw bodies are compared as binary) and then classified:

* JSON: a JSON content type (``application/json``, ``*/*+json``), or no content type and
  a body that parses as JSON. Two JSON bodies are compared structurally: object keys in
  any order, arrays by position, ``1`` equal to ``1.0``. Each difference names the deepest
  differing location; an array of a different length reports the extra or missing indices.
* text: ``text/*``, XML, forms, JavaScript, YAML, ..., or no content type and a body that
  decodes as text. Two textual bodies (text or JSON) that are not both JSON are compared
  line by line; the difference holds the removed lines as ``expected`` and the added
  lines as ``actual``, about 20 lines each.
* binary: everything else, compared by size and sha256.

Noise paths drop every difference at or beneath the locations they name, and whole
subtrees are skipped without being walked.

Redacted credentials are compared by presence: a recorded JSON string, text body or header
holding ``wiretape:secret:N`` placeholders matches a live one with non-empty text in their
place (``values.matches_redacted``); a missing field or header is still a difference.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import json
import math
import time
import zlib
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from wiretape.compare.noise import Noise, compile_noise
from wiretape.compare.paths import Concrete, format_path
from wiretape.compare.values import matches_redacted, typed_equal
from wiretape.model import SECRET_PREFIX, Headers, HttpResponse, body_bytes, header_all, header_get

__all__ = ["DEFAULT_IGNORED_HEADERS", "Difference", "compare_json", "compare_responses"]

DEFAULT_IGNORED_HEADERS: frozenset[str] = frozenset(
    {
        "date",
        "server",
        "server-timing",
        "x-request-id",
        "x-correlation-id",
        "request-id",
        "x-trace-id",
        "traceparent",
        "tracestate",
        "x-amzn-trace-id",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "b3",
        "via",
        "age",
        "x-runtime",
        "x-response-time",
        # framing, not content
        "connection",
        "keep-alive",
        "transfer-encoding",
    }
)

TEXT_DIFF_LINES = 20
_LINE_CHARS = 300
_LINE_CONTEXT = 60

_TEXT_TYPES = frozenset(
    {
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/sql",
        "application/csv",
        "application/x-ndjson",
        "application/jsonl",
    }
)


@dataclass(frozen=True, slots=True)
class Difference:
    path: str  # canonical path string, e.g. "body.items[2].id", "status", "header.Content-Type"
    kind: str  # "changed" | "missing" (in actual) | "added" (only in actual) | "type" (JSON type)
    expected: object  # JSON-able value, or a short description for text and binary bodies
    actual: object


def compare_responses(
    expected: HttpResponse,
    actual: HttpResponse,
    *,
    noise: Sequence[str] = (),
    ignore_headers: Collection[str] = DEFAULT_IGNORED_HEADERS,
    typed_values: bool = False,
    recorded_at: float | None = None,
    now: float | None = None,
) -> list[Difference]:
    """Every difference between two responses that no noise path hides.

    With ``typed_values`` JSON values of a volatile kind (timestamps, UUIDs, JWTs, epoch times
    near ``recorded_at`` and ``now``) match any value of the same kind: see ``compare.values``.
    Raises ``PathSyntaxError`` (a ``ValueError``) when a noise path is malformed.
    """
    rules = compile_noise(noise)
    typed = _Typed(recorded_at, time.time() if now is None else now) if typed_values else None
    out: list[Difference] = []
    if expected.status != actual.status and not rules.hides(("status",)):
        out.append(Difference("status", "changed", expected.status, actual.status))
    body = [] if rules.hides(("body",)) else _compare_bodies(expected, actual, rules, typed)
    ignored = {name.lower() for name in ignore_headers}
    if not body:
        ignored.add("content-length")
    out.extend(_compare_headers(expected.headers, actual.headers, ignored, rules))
    out.extend(body)
    return out


def compare_json(
    expected: object, actual: object, *, noise: Sequence[str] = ()
) -> list[Difference]:
    """Structural differences between two parsed JSON values, rooted at ``body``."""
    return _json_differences(expected, actual, compile_noise(noise))


# --- headers ---------------------------------------------------------------------------


def _compare_headers(
    expected: Headers, actual: Headers, ignored: set[str], rules: Noise
) -> list[Difference]:
    out: list[Difference] = []
    expected_names = _names_in_order(expected)
    for lname, spelled in expected_names.items():
        if lname in ignored or rules.hides(("header", lname)):
            continue
        exp_values, act_values = header_all(expected, lname), header_all(actual, lname)
        if Counter(exp_values) == Counter(act_values):
            continue
        if len(exp_values) == len(act_values) and any(SECRET_PREFIX in v for v in exp_values):
            continue  # a redacted credential: compared by presence, not by value
        path = format_path(("header", spelled))
        if not act_values:
            out.append(Difference(path, "missing", _one_or_all(exp_values), None))
        elif len(exp_values) == 1 and len(act_values) == 1:
            out.append(Difference(path, "changed", exp_values[0], act_values[0]))
        else:
            out.append(Difference(path, "changed", exp_values, act_values))
    for lname, spelled in _names_in_order(actual).items():
        if lname in expected_names or lname in ignored or rules.hides(("header", lname)):
            continue
        values = header_all(actual, lname)
        out.append(Difference(format_path(("header", spelled)), "added", None, _one_or_all(values)))
    return out


def _names_in_order(headers: Headers) -> dict[str, str]:
    names: dict[str, str] = {}
    for name, _ in headers:
        names.setdefault(name.lower(), name)
    return names


def _one_or_all(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


# --- bodies ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Body:
    kind: str  # "json" | "text" | "binary"
    data: bytes
    text: str | None = None
    value: object = None


@dataclass(frozen=True, slots=True)
class _Typed:
    recorded_at: float | None
    now: float

    def equal(self, expected: object, actual: object) -> bool:
        return typed_equal(expected, actual, self.recorded_at, self.now)


def _compare_bodies(
    expected: HttpResponse, actual: HttpResponse, rules: Noise, typed: _Typed | None = None
) -> list[Difference]:
    exp_raw, act_raw = body_bytes(expected.body), body_bytes(actual.body)
    exp_data, act_data = _decode(exp_raw, expected.headers), _decode(act_raw, actual.headers)
    if exp_data is None or act_data is None:
        exp, act = _Body("binary", exp_raw), _Body("binary", act_raw)
    else:
        exp, act = _classify(exp_data, expected.headers), _classify(act_data, actual.headers)
    if exp.data == act.data:
        return []
    if exp.kind == "json" and act.kind == "json":
        return _json_differences(exp.value, act.value, rules, typed)
    if exp.text is not None and act.text is not None:
        if matches_redacted(exp.text, act.text):
            return []  # a redacted credential: compared by presence, not by value
        return [_text_difference(exp.text, act.text)]
    return [Difference("body", "changed", _describe_bytes(exp.data), _describe_bytes(act.data))]


def _decode(data: bytes, headers: Headers) -> bytes | None:
    """The body with its content codings undone, or None if one cannot be undone."""
    if not data:
        return data
    codings = [
        token.strip().lower()
        for value in header_all(headers, "content-encoding")
        for token in value.split(",")
        if token.strip()
    ]
    try:
        for coding in reversed(codings):
            if coding in ("gzip", "x-gzip"):
                data = _inflate(data, wbits=31)
            elif coding == "deflate":
                try:
                    data = _inflate(data, wbits=15)
                except zlib.error:
                    data = _inflate(data, wbits=-15)  # raw deflate, as some servers send
            elif coding == "br":
                import brotli

                data = brotli.decompress(data)
            elif coding != "identity":
                return None
    except Exception:  # zlib.error, brotli.error: both sides are then compared raw
        return None
    return data


def _inflate(data: bytes, *, wbits: int) -> bytes:
    out: list[bytes] = []
    while True:  # gzip bodies may hold several members
        inflater = zlib.decompressobj(wbits=wbits)
        out.append(inflater.decompress(data) + inflater.flush())
        if not inflater.eof:
            raise zlib.error("truncated compressed body")
        data = inflater.unused_data
        if wbits != 31 or not data:
            return b"".join(out)


def _classify(data: bytes, headers: Headers) -> _Body:
    media_type, charset = _content_type(header_get(headers, "content-type"))
    text = _decode_text(data, charset)
    if media_type is None:
        value = _parse_json(text)
        if value is not _NOT_JSON:
            return _Body("json", data, text, value)
        if text is not None and "\x00" not in text:
            return _Body("text", data, text)
        return _Body("binary", data)
    if _is_json_type(media_type):
        value = _parse_json(text)
        if value is not _NOT_JSON:
            return _Body("json", data, text, value)
        return _Body("text", data, text) if text is not None else _Body("binary", data)
    if _is_text_type(media_type) and text is not None:
        return _Body("text", data, text)
    return _Body("binary", data)


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    if value is None or not value.strip():
        return None, None
    media_type, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip('"') or None
    return media_type.strip().lower(), charset


def _is_json_type(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def _is_text_type(media_type: str) -> bool:
    return (
        media_type.startswith(("text/", "multipart/"))
        or media_type.endswith("+xml")
        or media_type in _TEXT_TYPES
    )


def _decode_text(data: bytes, charset: str | None) -> str | None:
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            encoding = "utf-8"
    if encoding == "utf-8":
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, ValueError):
        return None


_NOT_JSON = object()


def _parse_json(text: str | None) -> object:
    if text is None or not text.strip():
        return _NOT_JSON
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _describe_bytes(data: bytes) -> str:
    return f"{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()}"


# --- JSON ------------------------------------------------------------------------------


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _scalar_equal(expected: object, actual: object) -> bool:
    if isinstance(expected, float) and isinstance(actual, float):
        return expected == actual or (math.isnan(expected) and math.isnan(actual))
    return expected == actual


def _json_differences(
    expected: object, actual: object, rules: Noise, typed: _Typed | None = None
) -> list[Difference]:
    # Iterative depth-first walk: deeply nested documents must not exhaust the stack,
    # and "emit" entries keep the output in document order.
    out: list[Difference] = []
    stack: list[tuple[Concrete, object, object] | Difference] = [(("body",), expected, actual)]
    while stack:
        item = stack.pop()
        if isinstance(item, Difference):
            out.append(item)
            continue
        path, exp, act = item
        if rules and rules.hides(path):
            continue
        exp_type, act_type = _json_type(exp), _json_type(act)
        if exp_type != act_type:
            out.append(Difference(format_path(path), "type", exp, act))
        elif isinstance(exp, dict) and isinstance(act, dict):
            stack.extend(reversed(_object_steps(path, exp, act, rules)))
        elif isinstance(exp, list) and isinstance(act, list):
            if rules and rules.is_unordered(path) and len(exp) * len(act) <= _UNORDERED_MAX:
                stack.extend(reversed(_unordered_steps(path, exp, act, rules, typed)))
            else:
                stack.extend(reversed(_array_steps(path, exp, act, rules)))
        elif not (
            _scalar_equal(exp, act)
            or (typed is not None and typed.equal(exp, act))
            or (isinstance(exp, str) and isinstance(act, str) and matches_redacted(exp, act))
        ):
            out.append(Difference(format_path(path), "changed", exp, act))
    return out


def _object_steps(
    path: Concrete, exp: dict[str, object], act: dict[str, object], rules: Noise
) -> list[tuple[Concrete, object, object] | Difference]:
    steps: list[tuple[Concrete, object, object] | Difference] = []
    for key, value in exp.items():
        child = (*path, key)
        if key in act:
            steps.append((child, value, act[key]))
        elif not rules.hides(child):
            steps.append(Difference(format_path(child), "missing", value, None))
    for key, value in act.items():
        child = (*path, key)
        if key not in exp and not rules.hides(child):
            steps.append(Difference(format_path(child), "added", None, value))
    return steps


def _array_steps(
    path: Concrete, exp: list[object], act: list[object], rules: Noise
) -> list[tuple[Concrete, object, object] | Difference]:
    steps: list[tuple[Concrete, object, object] | Difference] = []
    common = min(len(exp), len(act))
    steps.extend(((*path, i), exp[i], act[i]) for i in range(common))
    for i in range(common, len(exp)):
        if not rules.hides((*path, i)):
            steps.append(Difference(format_path((*path, i)), "missing", exp[i], None))
    for i in range(common, len(act)):
        if not rules.hides((*path, i)):
            steps.append(Difference(format_path((*path, i)), "added", None, act[i]))
    return steps


_UNORDERED_MAX = 250_000  # element pairs; larger arrays are compared in order


def _unordered_steps(
    path: Concrete, exp: list[object], act: list[object], rules: Noise, typed: _Typed | None
) -> list[tuple[Concrete, object, object] | Difference]:
    """Pair each recorded element with the first unused live element equal to it."""
    used: set[int] = set()
    unmatched: list[int] = []
    pairs: list[tuple[Concrete, object, object] | Difference] = []
    for i, element in enumerate(exp):
        for j, candidate in enumerate(act):
            if j in used:
                continue
            if not _json_differences_at((*path, i), element, candidate, rules, typed):
                used.add(j)
                break
        else:
            unmatched.append(i)
    left = [j for j in range(len(act)) if j not in used]
    # Unmatched elements are compared with the unmatched live ones in order, so a changed
    # field inside an element is reported at its path; the rest are missing or added.
    for i, j in zip(unmatched, left, strict=False):
        pairs.append(((*path, i), exp[i], act[j]))
    for i in unmatched[len(left) :]:
        if not rules.hides((*path, i)):
            pairs.append(Difference(format_path((*path, i)), "missing", exp[i], None))
    for j in left[len(unmatched) :]:
        if not rules.hides((*path, j)):
            pairs.append(Difference(format_path((*path, j)), "added", None, act[j]))
    return pairs


def _json_differences_at(
    path: Concrete, expected: object, actual: object, rules: Noise, typed: _Typed | None
) -> list[Difference]:
    out: list[Difference] = []
    stack: list[tuple[Concrete, object, object] | Difference] = [(path, expected, actual)]
    while stack and not out:
        item = stack.pop()
        if isinstance(item, Difference):
            out.append(item)
            continue
        at, exp, act = item
        if rules and rules.hides(at):
            continue
        if _json_type(exp) != _json_type(act):
            out.append(Difference(format_path(at), "type", exp, act))
        elif isinstance(exp, dict) and isinstance(act, dict):
            stack.extend(_object_steps(at, exp, act, rules))
        elif isinstance(exp, list) and isinstance(act, list):
            if rules.is_unordered(at) and len(exp) * len(act) <= _UNORDERED_MAX:
                stack.extend(_unordered_steps(at, exp, act, rules, typed))
            else:
                stack.extend(_array_steps(at, exp, act, rules))
        elif not (
            _scalar_equal(exp, act)
            or (typed is not None and typed.equal(exp, act))
            or (isinstance(exp, str) and isinstance(act, str) and matches_redacted(exp, act))
        ):
            out.append(Difference(format_path(at), "changed", exp, act))
    return out


# --- text ------------------------------------------------------------------------------


def _text_difference(expected: str, actual: str) -> Difference:
    exp_lines, act_lines = expected.splitlines(), actual.splitlines()
    if exp_lines == act_lines:  # only line endings or the final newline differ
        return Difference("body", "changed", _clip(json.dumps(expected)), _clip(json.dumps(actual)))
    removed: list[str] = []
    added: list[str] = []
    matcher = difflib.SequenceMatcher(None, exp_lines, act_lines)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old, new = exp_lines[i1:i2], act_lines[j1:j2]
        for k in range(max(len(old), len(new))):
            if k < len(old) and k < len(new):
                a, b = _clip_pair(old[k], new[k])
                removed.append(a)
                added.append(b)
            elif k < len(old):
                removed.append(_clip(old[k]))
            else:
                added.append(_clip(new[k]))
    return Difference("body", "changed", _limit(removed), _limit(added))


def _limit(lines: list[str]) -> str:
    if len(lines) <= TEXT_DIFF_LINES:
        return "\n".join(lines)
    shown = lines[:TEXT_DIFF_LINES]
    return "\n".join([*shown, f"... ({len(lines) - TEXT_DIFF_LINES} more lines)"])


def _clip(line: str) -> str:
    return line if len(line) <= _LINE_CHARS else line[:_LINE_CHARS] + "..."


def _clip_pair(old: str, new: str) -> tuple[str, str]:
    """Both lines, cut to show where they start to differ when that is far along."""
    same = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        same += 1
    start = max(0, same - _LINE_CONTEXT)
    if start == 0:
        return _clip(old), _clip(new)
    return _clip("..." + old[start:]), _clip("..." + new[start:])
