"""A fast YAML emitter for the store's documents.

The store's documents are made of dicts, lists (and tuples), ``FlowList`` header pairs, str, int,
float, bool and None. This module writes them in the same layout as the PyYAML dumper in
``yamlio`` (block mappings and sequences, header pairs as ``[Name, value]``, multi-line strings as
``|`` literal blocks, insertion order, no aliases) about six times faster, because it skips
PyYAML's node graph and event machinery.

Every scalar style is chosen by a conservative rule that proves the text loads back as the same
value with the safe loader; anything the rules cannot handle raises :class:`CannotEmit`, and the
caller falls back to PyYAML for the whole document. The rules:

- **plain** (``value``): a non-empty str made only of printable characters other than tab, line
  breaks (``\\x85``, ``\\u2028``, ``\\u2029`` included) and ``\\ufeff``; not starting with a
  space or an indicator (``-?:,[]{}#&*!|>'"%@```) or with ``...``; not ending with a space or
  ``:``; holding neither ``": "`` nor ``" #"``; in a flow sequence also none of ``,?[]{}:``; and
  matched by none of the loader's implicit resolvers (so ``yes``, ``1.0``, ``null``, ``~``,
  ``0x1F``, ``2026-11-21``, ``<<``, ``=`` are quoted). The resolver table is PyYAML's own, the
  one the safe loader uses.
- **single-quoted** (``'it''s'``): one line of the same printable characters, any content.
- **literal block** (``|``, ``|-``, ``|+``, with an indentation indicator when the text starts
  with a space or a line break): a mapping value or sequence item with a line break, made only
  of printable characters (no tab, no ``\\r``, no special line breaks, no BOM), and no line
  ending in a space.
- **double-quoted** otherwise, with YAML escapes (``\\n``, ``\\t``, ``\\x..``, ``\\u....``; no
  surrogate pairs, non-BMP characters are written raw). A long multi-line value is broken after
  each ``\\n`` with an escaped line break, so it reads line by line. A lone surrogate cannot be
  written at all: CannotEmit.

Floats are written as PyYAML writes them (``repr`` with ``.0`` put before an exponent,
``.inf``, ``-.inf``, ``.nan``), ints in decimal, bools as ``true``/``false``, None as ``null``.
Mapping keys are scalars on one line (at most 128 characters, like PyYAML's simple keys).
"""

from __future__ import annotations

import re
from typing import Any

from yaml.resolver import Resolver

__all__ = ["CannotEmit", "emit"]


class CannotEmit(Exception):
    """The value is outside what this emitter writes with certainty; use PyYAML instead."""


# Printable characters that need no escape and are not white space or line breaks to YAML:
# YAML's printable set without tab, CR, LF, NEL (\x85), LS/PS (\u2028, \u2029) and BOM (\ufeff).
_PRINTABLE = "\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff"
_ONE_LINE = re.compile(f"[{_PRINTABLE}]*")
_LITERAL_TEXT = re.compile(f"[\n{_PRINTABLE}]+")
_NEEDS_ESCAPE = re.compile(f'[^{_PRINTABLE}]|["\\\\]')
_FLOW_INDICATOR = re.compile(r"[,?\[\]{}:]")
_BAD_FIRST = frozenset("-?:,[]{}#&*!|>'\"%@` ")
_BAD_LAST = frozenset(" :")

# The same table the safe loader resolves plain scalars with (first character -> resolvers).
_IMPLICIT = Resolver.yaml_implicit_resolvers

_ESCAPES = {
    "\x00": "\\0",
    "\x07": "\\a",
    "\x08": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\x0b": "\\v",
    "\x0c": "\\f",
    "\r": "\\r",
    "\x1b": "\\e",
    '"': '\\"',
    "\\": "\\\\",
    "\x85": "\\N",
    "\u2028": "\\L",
    "\u2029": "\\P",
}

_KEY_MAX = 128
_ONE_LINE_MAX = 80  # a longer double-quoted multi-line string is broken after each \n
_CACHE_MAX = 8192
_CACHED_LEN = 64


def _plain_ok(s: str, flow: bool) -> bool:
    """True when ``s`` written plain loads back as the same str (in a flow sequence if ``flow``)."""
    if not s or s[0] in _BAD_FIRST or s[-1] in _BAD_LAST or _ONE_LINE.fullmatch(s) is None:
        return False
    if ": " in s or " #" in s or s.startswith("..."):
        return False
    if flow and _FLOW_INDICATOR.search(s) is not None:
        return False
    for _tag, regexp in _IMPLICIT.get(s[0], []) + _IMPLICIT.get(None, []):
        if regexp.match(s):
            return False
    return True


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    known = _ESCAPES.get(ch)
    if known is not None:
        return known
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        raise CannotEmit("lone surrogate")
    if code < 0x100:
        return f"\\x{code:02X}"
    if code < 0x10000:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"  # pragma: no cover - every non-BMP character is printable


def _double_quoted(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'


def _one_line(s: str, flow: bool) -> str:
    """``s`` as a scalar on one line: plain, single-quoted or double-quoted."""
    if _plain_ok(s, flow):
        return s
    if _ONE_LINE.fullmatch(s) is not None:
        return "'" + s.replace("'", "''") + "'"
    return _double_quoted(s)


# Renderings of short strings, which repeat a lot (keys, header names and values). Values in
# block context never hold a line break here: those are written by _multiline.
_block_cache: dict[str, str] = {}
_flow_cache: dict[str, str] = {}
_key_cache: dict[str, str] = {}


def _cached(cache: dict[str, str], s: str, flow: bool) -> str:
    text = _one_line(s, flow)
    if len(s) <= _CACHED_LEN:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[s] = text
    return text


def _key(key: Any) -> str:
    """A mapping key: a scalar on one line, short enough for a simple key."""
    if type(key) is not str:
        return _scalar(key, False)
    text = _one_line(key, False)
    if len(text) > _KEY_MAX:
        raise CannotEmit("key too long for a simple key")
    if len(key) <= _CACHED_LEN:
        if len(_key_cache) >= _CACHE_MAX:
            _key_cache.clear()
        _key_cache[key] = text
    return text


def _float(value: float) -> str:
    if value != value:
        return ".nan"
    if value == float("inf"):
        return ".inf"
    if value == float("-inf"):
        return "-.inf"
    text = repr(value).lower()
    if "." not in text and "e" in text:
        text = text.replace("e", ".0e", 1)
    return text


def _scalar(value: Any, flow: bool) -> str:
    """A scalar on one line (a str is never written as a block here)."""
    kind = type(value)
    if kind is str:
        cache = _flow_cache if flow else _block_cache
        text = cache.get(value)
        return _cached(cache, value, flow) if text is None else text
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float:
        return _float(value)
    raise CannotEmit(f"cannot emit {kind.__name__}")


def _literal_ok(s: str) -> bool:
    return _LITERAL_TEXT.fullmatch(s) is not None and " \n" not in s and s[-1] != " "


def _multiline(s: str, col: int) -> str:
    """`` |...`` and the lines of ``s``, or a double-quoted scalar (broken into lines when it is
    long), ending with a newline.

    ``col`` is the column of the collection holding the value; the text goes two further in.
    """
    pad = " " * (col + 2)
    if _literal_ok(s):
        hints = "2" if s[0] in " \n" else ""
        if s[-1] != "\n":
            hints += "-"
            body = s
        else:
            if len(s) == 1 or s[-2] == "\n":
                hints += "+"
            body = s[:-1]
        lines = [pad + line if line else "" for line in body.split("\n")]
        return " |" + hints + "\n" + "\n".join(lines) + "\n"
    single = _double_quoted(s)
    if len(single) <= _ONE_LINE_MAX:
        return " " + single + "\n"
    parts = []
    for i, segment in enumerate(s.split("\n")):
        text = _NEEDS_ESCAPE.sub(_escape, segment)
        if i and text[:1] == " ":
            text = "\\" + text  # leading white space of a continuation line would be dropped
        parts.append(text)
    return ' "' + ("\\n\\\n" + pad).join(parts) + '"\n'


def _flow(items: list[Any]) -> str:
    cache = _flow_cache
    if len(items) == 2:  # a header pair, the common case
        first, second = items
        one = cache.get(first) if type(first) is str else None
        two = cache.get(second) if type(second) is str else None
        if one is None:
            one = _scalar(first, True)
        if two is None:
            two = _scalar(second, True)
        return f"[{one}, {two}]"
    parts = []
    for item in items:
        text = cache.get(item) if type(item) is str else None
        parts.append(_scalar(item, True) if text is None else text)
    return "[" + ", ".join(parts) + "]"


class _Writer:
    __slots__ = ("flow_type", "out")

    def __init__(self, flow_type: type | None) -> None:
        self.flow_type = flow_type
        self.out: list[str] = []

    def value(self, head: str, value: Any, col: int) -> str:
        """``head`` (``key:`` or ``-`` with what comes before them on the line) and ``value``
        (not a non-empty block collection) through the final newline."""
        kind = type(value)
        if kind is str and "\n" in value:
            return head + _multiline(value, col)
        if kind is self.flow_type:
            return f"{head} {_flow(value)}\n"
        if kind is dict:
            return head + " {}\n"
        if kind is list or kind is tuple:
            return head + " []\n"
        return f"{head} {_scalar(value, False)}\n"

    def mapping(self, data: dict[Any, Any], col: int, lead: str) -> None:
        """Keys at ``col``; the first one goes after ``lead`` (its line's start so far)."""
        append = self.out.append
        keys = _key_cache
        values = _block_cache
        pad = " " * col
        flow_type = self.flow_type
        for key, value in data.items():
            text = keys.get(key) if type(key) is str else None
            if text is None:
                text = _key(key)
            kind = type(value)
            if kind is str:
                scalar = values.get(value)
                if scalar is not None:
                    append(f"{lead}{text}: {scalar}\n")
                elif "\n" in value:
                    append(f"{lead}{text}:{_multiline(value, col)}")
                else:
                    append(f"{lead}{text}: {_cached(values, value, False)}\n")
            elif kind is flow_type:
                append(f"{lead}{text}: {_flow(value)}\n")
            elif kind is dict and value:
                append(f"{lead}{text}:\n")
                self.mapping(value, col + 2, pad + "  ")
            elif (kind is list or kind is tuple) and value:
                append(f"{lead}{text}:\n")
                self.sequence(value, col, pad)
            elif kind is int:
                append(f"{lead}{text}: {value}\n")
            elif kind is float:
                append(f"{lead}{text}: {_float(value)}\n")
            else:
                append(self.value(f"{lead}{text}:", value, col))
            lead = pad

    def sequence(self, items: list[Any] | tuple[Any, ...], col: int, lead: str) -> None:
        """Dashes at ``col``; the first one goes after ``lead``."""
        append = self.out.append
        pad = " " * col
        flow_type = self.flow_type
        for value in items:
            kind = type(value)
            if kind is flow_type:
                append(f"{lead}- {_flow(value)}\n")
            elif kind is dict and value:
                self.mapping(value, col + 2, lead + "- ")
            elif (kind is list or kind is tuple) and value:
                self.sequence(value, col + 2, lead + "- ")
            else:
                append(self.value(lead + "-", value, col))
            lead = pad


def emit(doc: Any, flow_type: type | None = None) -> str:
    """``doc`` (a dict or a list) as a YAML document.

    Lists of type ``flow_type`` are written on one line, ``[a, b]``; they may hold only scalars.
    Raises CannotEmit for anything outside the rules in the module docstring.
    """
    writer = _Writer(flow_type)
    kind = type(doc)
    try:
        if kind is flow_type:
            return _flow(doc) + "\n"
        if kind is dict:
            if not doc:
                return "{}\n"
            writer.mapping(doc, 0, "")
        elif kind is list or kind is tuple:
            if not doc:
                return "[]\n"
            writer.sequence(doc, 0, "")
        else:
            raise CannotEmit(f"cannot emit a {kind.__name__} document")
    except RecursionError as exc:
        raise CannotEmit("nested too deeply") from exc
    except ValueError as exc:  # an int with more digits than int -> str allows
        raise CannotEmit(str(exc)) from exc
    return "".join(writer.out)
