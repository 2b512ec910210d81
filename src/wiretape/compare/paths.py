"""Noise paths: name the parts of a response that a comparison should ignore.

Syntax
------
``status``
    The status code.
``header.<Name>``
    One header, matched case-insensitively: ``header.X-Request-Id``.
    ``header.*`` matches every header. A name that is not a plain HTTP token is
    quoted: ``header["odd name"]``.
``body``
    The whole body, whatever its type.
``body.<key>``, ``body.a.b``
    A key of a JSON object, and nested keys. Plain keys are made of letters, digits
    and ``_ - $ @``; ``body.0`` is the key ``"0"``, not an array index.
``body["a.b"]``
    A quoted key, for keys with dots, spaces or other characters. The quotes follow
    JSON string rules, so ``body["say \\"hi\\""]`` works.
``body.items[0]``, ``body[0]``
    An array element by index (counted from 0).
``body.items[*]``
    Any element of an array.
``body.*``
    Any key of an object.
``body..id``
    Any key named ``id`` at any depth below ``body``, through objects and arrays.
    ``..`` may precede any selector: ``body..[0]``, ``body..*``, ``body..["a.b"]``.

Selectors chain: ``body.items[*].created_at``, ``body..meta.etag``. Paths below ``body``
reach into JSON bodies only; text and binary bodies are ignored only as a whole
(``body``). A noise path also ignores everything beneath what it names.

How this works
--------------
A concrete location in a response is a tuple: ``("status",)``, ``("header", "x-request-id")``,
``("body", "items", 2, "id")``, where strings are object keys and ints are array indices.
``parse_path`` turns the text into a list of segments, and ``Path.matches`` runs the
segments over a concrete location as a small NFA: ``..`` is a state that may consume any
number of steps before its selector.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

Concrete = tuple[str | int, ...]

ROOTS = ("status", "header", "body")
_KEY_PUNCTUATION = frozenset("_-$@")
# RFC 9110 token characters, which is what a header name is made of.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DECODER = json.JSONDecoder()


class PathSyntaxError(ValueError):
    """A noise path that cannot be parsed; ``position`` is the 0-based character offset."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        self.text = text
        self.position = position
        self.reason = reason
        pointer = " " * (position + 2) + "^"
        super().__init__(
            f"invalid noise path {text!r} at position {position}: {reason}\n  {text}\n{pointer}"
        )


class Step(enum.Enum):
    KEY = "key"
    ANY_KEY = "any_key"
    INDEX = "index"
    ANY_INDEX = "any_index"
    DESCEND = "descend"  # ``..``: skip any number of steps, then match the next segment


@dataclass(frozen=True, slots=True)
class Segment:
    step: Step
    value: str | int | None = None

    def accepts(self, element: str | int) -> bool:
        if self.step is Step.KEY:
            return isinstance(element, str) and element == self.value
        if self.step is Step.ANY_KEY:
            return isinstance(element, str)
        is_index = isinstance(element, int) and not isinstance(element, bool)
        if self.step is Step.INDEX:
            return is_index and element == self.value
        return is_index  # ANY_INDEX


@dataclass(frozen=True, slots=True)
class Path:
    """A parsed noise path. For ``header`` paths the single segment holds the lower-cased name."""

    root: str
    segments: tuple[Segment, ...]
    text: str

    def __str__(self) -> str:
        return self.text

    def matches(self, concrete: Concrete) -> bool:
        """Whether this path names exactly the location ``concrete``."""
        return self._run(concrete, prefix=False)

    def covers(self, concrete: Concrete) -> bool:
        """Whether ``concrete`` is the location this path names or lies beneath it."""
        return self._run(concrete, prefix=True)

    def _run(self, concrete: Concrete, *, prefix: bool) -> bool:
        if not concrete or concrete[0] != self.root:
            return False
        rest = concrete[1:]
        if self.root == "header":
            if not rest or not isinstance(rest[0], str):
                return False
            if len(rest) > 1 and not prefix:
                return False
            seg = self.segments[0]
            return seg.step is Step.ANY_KEY or rest[0].lower() == seg.value
        return self._run_segments(rest, prefix=prefix)

    def _run_segments(self, rest: Concrete, *, prefix: bool) -> bool:
        end = len(self.segments)
        states = self._closure({0})
        if prefix and end in states:
            return True
        for element in rest:
            advanced: set[int] = set()
            for i in states:
                if i == end:
                    continue
                seg = self.segments[i]
                if seg.step is Step.DESCEND:
                    advanced.add(i)
                elif seg.accepts(element):
                    advanced.add(i + 1)
            states = self._closure(advanced)
            if not states:
                return False
            if prefix and end in states:
                return True
        return end in states

    def _closure(self, states: set[int]) -> set[int]:
        # A DESCEND is always followed by a selector, so one extra step suffices.
        out = set(states)
        for i in states:
            if i < len(self.segments) and self.segments[i].step is Step.DESCEND:
                out.add(i + 1)
        return out


def parse_path(text: str) -> Path:
    """Parse a noise path; raise ``PathSyntaxError`` (a ``ValueError``) on bad syntax."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, reason: str, position: int | None = None) -> PathSyntaxError:
        return PathSyntaxError(self.text, self.pos if position is None else position, reason)

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def parse(self) -> Path:
        start = self.pos
        while self.peek().isalpha():
            self.pos += 1
        root = self.text[start : self.pos]
        if root not in ROOTS:
            shown = repr(root) if root else "nothing"
            raise self.fail(
                f"found {shown} where a path starts; a noise path starts with "
                "status, header.<Name> or body",
                start,
            )
        if root == "status":
            segments: tuple[Segment, ...] = ()
        elif root == "header":
            segments = (self.header_name(),)
        else:
            segments = self.body_segments()
        if self.pos != len(self.text):
            raise self.fail(f"unexpected {self.peek()!r} after the end of the path")
        return Path(root, segments, self.text)

    def header_name(self) -> Segment:
        if self.peek() == "[":
            self.pos += 1
            name = self.quoted()
            self.expect("]")
            return Segment(Step.KEY, name.lower())
        if self.peek() != ".":
            raise self.fail("'header' needs a name: header.<Name>, or header.* for all headers")
        self.pos += 1
        start = self.pos
        while self.peek() and self.peek() in _TCHAR:
            self.pos += 1
        name = self.text[start : self.pos]
        if not name:
            raise self.fail("expected a header name after 'header.'")
        if name == "*":
            return Segment(Step.ANY_KEY)
        return Segment(Step.KEY, name.lower())

    def body_segments(self) -> tuple[Segment, ...]:
        segments: list[Segment] = []
        while self.pos < len(self.text):
            ch = self.peek()
            if ch == "." and self.peek(1) == ".":
                self.pos += 2
                segments.append(Segment(Step.DESCEND))
                if self.peek() == "[":
                    segments.append(self.bracket())
                else:
                    segments.append(self.dotted("after '..'"))
            elif ch == ".":
                self.pos += 1
                segments.append(self.dotted("after '.'"))
            elif ch == "[":
                segments.append(self.bracket())
            else:
                raise self.fail(f"unexpected {ch!r}; expected '.', '..' or '['")
        return tuple(segments)

    def dotted(self, where: str) -> Segment:
        if self.peek() == "*":
            self.pos += 1
            return Segment(Step.ANY_KEY)
        start = self.pos
        while self.peek() and _is_key_char(self.peek()):
            self.pos += 1
        if self.pos == start:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(
                f"expected a key or '*' {where}, found {found}; "
                'quote keys with special characters: ["a.b"]'
            )
        return Segment(Step.KEY, self.text[start : self.pos])

    def bracket(self) -> Segment:
        self.pos += 1  # "["
        ch = self.peek()
        if ch == "*":
            self.pos += 1
            seg = Segment(Step.ANY_INDEX)
        elif ch.isdigit() and ch.isascii():
            start = self.pos
            while self.peek().isdigit() and self.peek().isascii():
                self.pos += 1
            seg = Segment(Step.INDEX, int(self.text[start : self.pos]))
        elif ch == '"':
            seg = Segment(Step.KEY, self.quoted())
        else:
            found = repr(ch) if ch else "the end"
            note = " (negative indices are not supported)" if ch == "-" else ""
            raise self.fail(
                f'expected an index, "*" or a quoted key after "[", found {found}{note}'
            )
        self.expect("]")
        return seg

    def quoted(self) -> str:
        if self.peek() != '"':
            raise self.fail('expected a double-quoted name: ["..."]')
        try:
            value, end = _DECODER.raw_decode(self.text, self.pos)
        except ValueError:
            raise self.fail("unterminated or invalid quoted name (JSON string rules)") from None
        if not isinstance(value, str):  # pragma: no cover - raw_decode at '"' yields a str
            raise self.fail("expected a quoted name")
        self.pos = end
        return value

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.fail(f"expected {ch!r}, found {found}")
        self.pos += 1


def _is_key_char(ch: str) -> bool:
    return ch.isalnum() or ch in _KEY_PUNCTUATION


def _is_plain_key(key: str) -> bool:
    return bool(key) and all(_is_key_char(ch) for ch in key)


def format_path(concrete: Concrete) -> str:
    """The canonical text of a concrete location, e.g. ``body.items[2].id``.

    Header names keep the spelling given. The result parses back to a ``Path`` that
    matches ``concrete``.
    """
    if not concrete or concrete[0] not in ROOTS:
        raise ValueError(f"a concrete path starts with one of {ROOTS}, got {concrete!r}")
    root = concrete[0]
    if root == "status":
        if len(concrete) != 1:
            raise ValueError(f"a status path has no parts below it, got {concrete!r}")
        return "status"
    if root == "header":
        if len(concrete) != 2 or not isinstance(concrete[1], str) or not concrete[1]:
            raise ValueError(f"a header path is ('header', name), got {concrete!r}")
        name = concrete[1]
        if name != "*" and all(ch in _TCHAR for ch in name):
            return f"header.{name}"
        return f"header[{_quote(name)}]"
    parts = ["body"]
    for element in concrete[1:]:
        if isinstance(element, bool) or not isinstance(element, int | str):
            raise ValueError(f"path parts are str keys or int indices, got {element!r}")
        if isinstance(element, int):
            if element < 0:
                raise ValueError(f"array indices are not negative, got {element}")
            parts.append(f"[{element}]")
        elif _is_plain_key(element):
            parts.append(f".{element}")
        else:
            parts.append(f"[{_quote(element)}]")
    return "".join(parts)


def _quote(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)
