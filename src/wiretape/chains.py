"""Chained values: a value one response hands out that later requests send back.

Login tokens, CSRF tokens, created ids and pagination cursors come from the app's own responses
and travel in later requests. When the app makes a new one on every run, a replay that sends the
recorded value fails (401, 404). ``detect`` finds these chains in a recorded set; ``substitute``
puts the value of the live response into the later request before it is sent.

Detection, per test in recorded order:

- *Sources* are the values a response hands out: every string leaf of a JSON body at least
  ``MIN_LENGTH`` characters long, each cookie value of ``Set-Cookie``, and ``Location`` and
  ``X-*-Token``-like header values. A value is named by where it is: a path in the noise-path
  syntax (``body.token``, ``body.items[0].id``, ``header.Location``, ``cookie.session``).
- A later request *uses* a source value when the value appears in one of its headers, its
  target (path and query, also percent-encoded) or a string leaf of its JSON or form body.
- A value is not a chain when the client already sent it before the response that would be its
  source (it is the client's own constant), or when the source test's own request carried it
  (the response only echoes it). The most recent source before a use wins.
- Memory is bounded (``Detector``): a value is followed for at least ``HORIZON`` tests after a
  response last handed it out or a request last used it, then forgotten.

A recorded secret placeholder (``wiretape:secret:N``) is a value like any other, so a token the
recorder redacted in the login response and in every later ``Authorization`` header still
chains: on replay the live token replaces the placeholder before the secrets file is consulted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote

from wiretape.compare.paths import format_path, parse_path
from wiretape.model import (
    Chain,
    Headers,
    HttpRequest,
    HttpResponse,
    TestCase,
    body_bytes,
    header_all,
)

__all__ = ["HORIZON", "Detector", "detect", "substitute", "value_at"]

# Tests in each of the detector's two generations: values it remembers, and for how long.
HORIZON = 20_000

MIN_LENGTH = 6
MAX_BODY = 1 << 20  # bodies larger than this are not searched
_TOKEN_HEADER_WORDS = ("token", "csrf", "session", "auth", "cursor", "location", "etag")


def _json(data: bytes) -> object:
    if not data or len(data) > MAX_BODY or data.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _leaves(node: object, at: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*at, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*at, i))
    elif isinstance(node, str):
        yield at, node


def _cookies(values: list[str]) -> Iterator[tuple[str, str]]:
    for header in values:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        for name, morsel in jar.items():
            yield name, morsel.value


def sources(resp: HttpResponse) -> list[tuple[str, str]]:
    """(path, value) of every value ``resp`` hands out that could travel in later requests."""
    found: list[tuple[str, str]] = []
    if not isinstance(resp.body, bytes):
        return found
    body = _json(resp.body)
    for at, value in _leaves(body, ("body",)):
        if len(value) >= MIN_LENGTH:
            found.append((format_path(at), value))
    for name, value in _cookies(header_all(resp.headers, "set-cookie")):
        if len(value) >= MIN_LENGTH:
            found.append((f"cookie.{name}", value))
    for name, value in resp.headers:
        lname = name.lower()
        if lname == "set-cookie" or not any(w in lname for w in _TOKEN_HEADER_WORDS):
            continue
        if len(value) >= MIN_LENGTH:
            found.append((format_path(("header", name)), value))
    return found


def _forms(value: str) -> tuple[str, ...]:
    encoded = _quote(value)
    return (value,) if encoded == value else (value, encoded)


@dataclass(frozen=True, slots=True)
class _Searched:
    """The parts of a request that ``uses`` searches, worked out once per request."""

    headers: Headers
    target: str
    leaves: list[tuple[tuple[str | int, ...], str]] | None  # a JSON body's string leaves
    text: str  # any other body, as text ("" when none, too large, or JSON)

    @classmethod
    def of(cls, req: HttpRequest) -> _Searched:
        data = body_bytes(req.body) if isinstance(req.body, bytes) else b""
        leaves = None
        text = ""
        if data and len(data) <= MAX_BODY:
            body = _json(data)
            if body is not None:
                leaves = list(_leaves(body, ("body",)))
            else:
                text = data.decode("utf-8", "replace")
        return cls(req.headers, req.target, leaves, text)

    def strings(self) -> set[str]:
        """Every string a value could be found in: header values, the target, the body."""
        found = {value for _, value in self.headers}
        found.add(self.target)
        if self.leaves is not None:
            found.update(leaf for _, leaf in self.leaves)
        elif self.text:
            found.add(self.text)
        return found

    def where(self, value: str, forms: tuple[str, ...]) -> list[str]:
        where = [
            format_path(("header", name))
            for name, header in self.headers
            if value in header and name  # a nameless header (a hand edit) has no path
        ]
        if any(form in self.target for form in forms):
            where.append("target")
        if self.leaves is not None:
            where.extend(format_path(at) for at, leaf in self.leaves if value in leaf)
        elif any(form in self.text for form in forms):
            where.append("body")
        return where


def uses(req: HttpRequest, value: str) -> list[str]:
    """Where ``req`` carries ``value``: ``header.Name``, ``target`` or ``body`` paths."""
    return _Searched.of(req).where(value, _forms(value))


# Below this many values a request is searched for each value in turn (a C substring search per
# value). From it on, through an index of the values by a window of _KEY characters each, so the
# cost of a request follows its own length, not the number of values the set has handed out.
_DIRECT_SEARCH = 64
_KEY = MIN_LENGTH
# The window of a value is its least shared one when the value is first seen: ids with a common
# prefix ("ord-0000…") and timestamps of the same day spread over many windows, and a window is
# shared by few values.
_WINDOWS_TRIED = 64


class _Sources:
    """The values responses have handed out so far, each with its latest source."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[str, str]] = {}  # value -> (source test, path)
        self._forms: dict[str, tuple[str, ...]] = {}  # in the order values were first seen
        self._order: dict[str, int] = {}
        # window -> (form, offset of the window in the form, value)
        self._by_window: dict[str, list[tuple[str, int, str]]] = {}

    def add(self, value: str, source: str, path: str) -> None:
        if value not in self.latest:
            assert len(value) >= _KEY, "sources hands out no shorter value"
            forms = _forms(value)  # an encoded form is never shorter
            self._forms[value] = forms
            self._order[value] = len(self._order)
            for form in forms:
                self._index(form, value)
        self.latest[value] = (source, path)

    def _index(self, form: str, value: str) -> None:
        by_window = self._by_window
        best, load = 0, -1
        for offset in range(min(len(form) - _KEY, _WINDOWS_TRIED - 1), -1, -1):
            shared = len(by_window.get(form[offset : offset + _KEY], ()))
            if load < 0 or shared < load:
                best, load = offset, shared
                if not shared:
                    break
        by_window.setdefault(form[best : best + _KEY], []).append((form, best, value))

    def forms(self, value: str) -> tuple[str, ...]:
        return self._forms[value]

    def found_in(self, strings: set[str]) -> list[str]:
        """The values one of whose forms occurs in one of ``strings``, in first-seen order.

        Every value ``uses`` would find is among them (it searches a subset of these strings
        for a subset of these forms).
        """
        if len(self._forms) < _DIRECT_SEARCH:
            return [
                value
                for value, forms in self._forms.items()
                if any(form in s for s in strings for form in forms)
            ]
        found: set[str] = set()
        by_window = self._by_window
        for s in strings:
            for i in range(len(s) - _KEY + 1):
                bucket = by_window.get(s[i : i + _KEY])
                if bucket is not None:
                    for form, offset, value in bucket:
                        if i >= offset and s.startswith(form, i - offset):
                            found.add(value)
        return sorted(found, key=self._order.__getitem__)


class Detector:
    """``detect``, one test at a time, in recorded order: what ``SetWriter`` runs as it writes
    a recording's tests.

    Memory is bounded however long a recording runs: what the detector remembers (values handed
    out, values requests carried) lives in two generations of ``horizon`` tests each, and the
    older one is dropped when the younger one is full. A value is followed for at least
    ``horizon`` tests after a response last handed it out or a request last used it, since each
    use carries it into the young generation: a login token used throughout a session stays
    chained. Only a set longer than ``horizon`` tests can lose anything, and only values left
    unused that long.
    """

    def __init__(self, horizon: int = HORIZON) -> None:
        if horizon < 1:
            raise ValueError("the horizon is at least one test")
        self.horizon = horizon
        self._young = _Sources()
        self._old = _Sources()
        self._sent_young: set[str] = set()  # values some earlier request already carried
        self._sent_old: set[str] = set()
        self._tests = 0  # in the young generation

    def add(self, test: TestCase) -> tuple[Chain, ...]:
        """The chains of ``test``, the next test in recorded order."""
        young = self._young
        searched = _Searched.of(test.request)
        own = searched.strings()
        found: list[Chain] = []
        for value, where_seen in self._found_in(own):
            where = searched.where(value, where_seen.forms(value))
            if where:
                source, path = where_seen.latest[value]
                found.append(Chain(source=source, path=path, value=value, targets=tuple(where)))
                if where_seen is not young:
                    young.add(value, source, path)  # used: remembered for another horizon
        self._sent_young.update(own)
        if test.response is not None:
            for path, value in sources(test.response):
                if (
                    value in self._sent_young
                    or value in self._sent_old
                    or any(value in s for s in own)
                ):
                    continue
                young.add(value, test.id, path)
        self._tests += 1
        if self._tests >= self.horizon:
            self._old, self._young = young, _Sources()
            self._sent_old, self._sent_young = self._sent_young, set()
            self._tests = 0
        return tuple(found)

    def _found_in(self, strings: set[str]) -> list[tuple[str, _Sources]]:
        """``_Sources.found_in`` over both generations, older values first, each value with the
        generation that holds its latest source."""
        young = self._young.found_in(strings)
        if not self._old.latest:
            return [(value, self._young) for value in young]
        old = self._old.found_in(strings)
        in_young = set(young)
        in_old = set(old)
        found = [(value, self._young if value in in_young else self._old) for value in old]
        found += [(value, self._young) for value in young if value not in in_old]
        return found

    @property
    def remembered(self) -> int:
        """How many handed-out values the detector holds now (both generations)."""
        return len(self._young.latest) + len(self._old.latest)


def detect(tests: Sequence[TestCase]) -> dict[str, tuple[Chain, ...]]:
    """The chains of a recorded set: test id -> the chained values its request uses."""
    detector = Detector()
    return {test.id: found for test in tests if (found := detector.add(test))}


def value_at(resp: HttpResponse, path: str) -> str | None:
    """The value at ``path`` (as ``sources`` names it) in a live response, if it is there."""
    if path.startswith("cookie."):
        name = path.removeprefix("cookie.")
        for cookie, value in _cookies(header_all(resp.headers, "set-cookie")):
            if cookie == name:
                return value
        return None
    pattern = parse_path(path)
    if path.startswith("header"):
        for name, value in resp.headers:
            if pattern.matches(("header", name.lower())):
                return value
        return None
    if not isinstance(resp.body, bytes):
        return None
    for at, leaf in _leaves(_json(resp.body), ("body",)):
        if pattern.matches(at):
            return leaf
    return None


def substitute(
    req: HttpRequest, chains: Sequence[Chain], live: Mapping[str, HttpResponse | None]
) -> tuple[HttpRequest, list[str]]:
    """``req`` with each chained value replaced by the one the live source response gave.

    Returns the request and one note per chain that could not be followed (its source test
    failed or its answer no longer has the value), for the report.
    """
    notes: list[str] = []
    for chain in chains:
        source = live.get(chain.source)
        if source is None:
            notes.append(f"{chain.path} of {chain.source}: no live answer to take it from")
            continue
        new = value_at(source, chain.path)
        if new is None:
            notes.append(f"{chain.path} of {chain.source}: not in the live answer")
            continue
        if new != chain.value:
            req = _replace_value(req, chain.value, new)
    return req, notes


def _replace_value(req: HttpRequest, old: str, new: str) -> HttpRequest:
    headers = tuple((name, value.replace(old, new)) for name, value in req.headers)
    # In the target the new value is percent-encoded where it needs to be (a "/" or a space in
    # a token must not split the path).
    encoded_new = _quote(new, "-._~")
    target_forms = {_utf8(old): _utf8(encoded_new), _utf8(_quote(old)): _utf8(encoded_new)}
    target = _swap(_utf8(req.target), target_forms).decode("utf-8", "surrogatepass")
    body = req.body
    if isinstance(body, bytes) and body:
        body = _replace_in_body(body, old, new)
    return replace(req, headers=headers, target=target, body=body)


def _replace_in_body(data: bytes, old: str, new: str) -> bytes:
    if _json(data) is not None:
        # JSON escapes differ from the raw text only for quotes, backslashes and control
        # characters, and for the rest of Unicode when the client escapes it (``\u00e9``):
        # replacing the encoded forms keeps the body's own layout.
        pairs = [
            (json.dumps(old, ensure_ascii=False)[1:-1], json.dumps(new, ensure_ascii=False)[1:-1]),
            (json.dumps(old)[1:-1], json.dumps(new)[1:-1]),
        ]
    else:
        pairs = [(old, new), (_quote(old), _quote(new))]
    forms: dict[bytes, bytes] = {}
    for form, replacement in pairs:  # where two forms of the old value agree, the first wins
        forms.setdefault(_utf8(form), _utf8(replacement))
    return _swap(data, forms)


def _quote(value: str, safe: str = "") -> str:
    # A lone surrogate (JSON can escape one) has no UTF-8 form; its bytes are kept as they are.
    return quote(value, safe=safe, errors="surrogatepass")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _swap(data: bytes, forms: dict[bytes, bytes]) -> bytes:
    """``data`` with every occurrence of a key of ``forms`` replaced by its value, in one pass:
    a replacement is never replaced again, even when it holds a key."""
    keys = sorted((k for k in forms if k), key=len, reverse=True)
    if len(keys) <= 1:
        return data.replace(keys[0], forms[keys[0]]) if keys else data
    pattern = re.compile(b"|".join(re.escape(k) for k in keys))
    return pattern.sub(lambda m: forms[m.group()], data)
