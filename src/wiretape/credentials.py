"""What counts as a credential: key names and value formats, for redaction and for the scan.

``wiretape.secrets`` redacts what these rules find while recording (and in live requests while
replaying), and ``wiretape.scan`` reports what they find in a set, so a freshly recorded set
scans clean.

Key names. A JSON key, form field or query parameter names a credential when its words contain
the words of one of the configured names (by default ``DEFAULT_KEYS``). A name is split into
lower-case words at anything that is not a letter or digit, at lower-to-upper case changes, at
the end of an acronym and between letters and digits: ``access_token``, ``refreshToken``,
``client-secret``, ``X-API-Key``, ``aws_secret_access_key`` and ``private_key`` all contain a
default name. A name's words may also be written as one word (``apikey``, ``APIKEY``), and a word
that ends with a name counts too (``accesstoken``). Two kinds of neighbour words turn a match off:

- a word right after the name that describes the credential rather than being it
  (``QUALIFIERS``): ``token_type``, ``secret_name``, ``password_policy``, ``private_key_id``,
  ``token_expires_in``;
- a word right before it that makes it a pagination cursor (``CURSORS``): ``next_token``,
  ``nextPageToken``, ``continuation_token``.

Plurals do not match (``tokens_used``, ``max_tokens``). Only a non-empty string value under such a
key is a credential (a number, boolean, null or object never is); the strings of a list under it
are credentials one by one.

Value formats. ``FORMATS`` lists credentials recognisable by their shape alone: cloud and
provider keys and PEM private-key blocks. They are found anywhere: in header values, in the
strings of a JSON body, in form fields and query parameters, and in any other body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = [
    "CURSORS",
    "DEFAULT_HEADERS",
    "DEFAULT_KEYS",
    "FORMATS",
    "FORMATS_RE",
    "MAX_BODY",
    "QUALIFIERS",
    "KeyRule",
    "format_kinds",
    "may_hold_format",
    "may_hold_format_bytes",
    "split_words",
]

# Headers whose whole value is a credential.
DEFAULT_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)

DEFAULT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "private_key",
    "credential",
)

QUALIFIERS = frozenset(
    {
        "type", "types", "kind", "name", "names", "label", "description", "hint",
        "id", "ids", "ref", "arn", "url", "uri", "urls", "endpoint", "path", "file", "location",
        "expires", "expiry", "expiration", "expired", "exp", "ttl", "lifetime", "age",
        "issued", "created", "updated", "changed", "rotated", "reset", "sent",
        "count", "length", "len", "size", "used", "usage", "limit", "limits", "remaining",
        "policy", "required", "enabled", "present", "set", "status", "mode", "method",
        "format", "version", "prefix", "suffix", "scope", "scopes", "field", "header",
        "algorithm", "alg", "strength",
    }
)  # fmt: skip

CURSORS = frozenset(
    {"next", "page", "prev", "previous", "continuation", "cursor", "pagination", "sync", "resume"}
)

# Bodies (decoded) larger than this are neither redacted nor scanned.
MAX_BODY = 64 * 1024 * 1024

_B = r"(?<![A-Za-z0-9_])"  # not glued to a preceding word
_E = r"(?![A-Za-z0-9])"  # not followed by more of the same alphabet

FORMATS: tuple[tuple[str, str], ...] = (
    ("AWS access key id", _B + r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}" + _E),
    (
        "GitHub token",
        _B + r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})" + _E,
    ),
    ("Slack token", _B + r"xox[abeoprs]-[A-Za-z0-9-]{10,}"),
    ("Stripe key", _B + r"(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9]{24,})"),
    ("Anthropic API key", _B + r"sk-ant-[a-z]+[0-9]*-[A-Za-z0-9_-]{20,}"),
    (
        "OpenAI API key",
        _B
        + r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"
        + r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})"
        + _E,
    ),
    ("Google API key", _B + r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    ("Google OAuth client secret", _B + r"GOCSPX-[A-Za-z0-9_-]{28}(?![0-9A-Za-z_-])"),
    ("Google OAuth token", _B + r"ya29\.[0-9A-Za-z_-]{20,}"),
    (
        "private key block",
        r"-----BEGIN (?P<pem>(?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?P=pem)PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
    ),
)

# One pattern for all formats: group ``f<i>`` is ``FORMATS[i]``.
FORMATS_RE = re.compile(
    "|".join(f"(?P<f{i}>{pattern})" for i, (_, pattern) in enumerate(FORMATS)), re.ASCII
)


# Every match of FORMATS_RE contains one of these; looking for them is much faster than the regex.
FORMAT_MARKERS = (
    "AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
    "xox", "_live_", "_test_", "whsec_", "sk-", "AIza", "GOCSPX-", "ya29.", "PRIVATE KEY",
)  # fmt: skip


_Trie = dict[str, "_Trie"]


def _trie_pattern(words: Iterable[str]) -> str:
    """A regular expression matching exactly ``words``, factored by common prefixes
    (``A(?:KIA|SIA)`` for ``AKIA|ASIA``): the regex engine then tries one branch per first
    character rather than every word at every position where some word could start."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def emit(node: _Trie) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in node.items() if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


_MARKERS_PATTERN = _trie_pattern(FORMAT_MARKERS)
_MARKERS_RE = re.compile(_MARKERS_PATTERN)
_MARKERS_BYTES_RE = re.compile(_MARKERS_PATTERN.encode("ascii"))


def may_hold_format(text: str) -> bool:
    """False when ``text`` certainly holds no credential format."""
    return _MARKERS_RE.search(text) is not None


def may_hold_format_bytes(data: bytes) -> bool:
    """``may_hold_format`` for ASCII bytes."""
    return _MARKERS_BYTES_RE.search(data) is not None


def format_kinds(text: str) -> Iterator[str]:
    """The kind of every credential format found in ``text``, in order of appearance."""
    if not may_hold_format(text):
        return
    for match in FORMATS_RE.finditer(text):
        group = match.lastgroup
        if group is not None:
            yield FORMATS[int(group[1:])][0]


_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def split_words(name: str) -> list[str]:
    """``"X-APIKey_2"`` -> ``["x", "api", "key", "2"]``."""
    return [w.lower() for w in _WORD.findall(name)]


class KeyRule:
    """Decides which key names hold credentials (see the module docstring)."""

    def __init__(self, names: Iterable[str] = DEFAULT_KEYS) -> None:
        self.names = tuple(dict.fromkeys(names))
        self._patterns = [words for words in map(split_words, self.names) if words]
        self._word_sets = [frozenset(words) for words in self._patterns]
        self._all_ascii = all(w.isascii() for words in self._patterns for w in words)
        self._ascii_words = [tuple(w.encode() for w in words) for words in self._patterns]
        words = sorted({w for ws in self._patterns for w in ws if w.isascii()})
        self._any_word = re.compile(_trie_pattern(words).encode("ascii")) if words else None
        self._cache: dict[str, bool] = {}

    def may_occur(self, text: str) -> bool:
        """False when no key in ``text`` (JSON or form text, unescaped) can match."""
        return self.complete(self.occurring(text))

    def occurring(self, text: str) -> set[str]:
        """The words of the names that occur in ``text`` (to gather over pieces of a text)."""
        lowered = text.lower()
        return {word for words in self._patterns for word in words if word in lowered}

    def may_occur_ascii(self, lowered: bytes) -> bool:
        """``may_occur`` for lower-cased ASCII bytes (True whenever in doubt)."""
        if not self._all_ascii:
            return True
        if self._any_word is None or self._any_word.search(lowered) is None:
            return False
        for words in self._ascii_words:  # loops, not generators: this runs for every exchange
            for word in words:
                if word not in lowered:
                    break
            else:
                return True
        return False

    def complete(self, seen: set[str]) -> bool:
        """Whether ``seen`` holds every word of some name."""
        return bool(seen) and any(words <= seen for words in self._word_sets)

    def matches(self, key: str) -> bool:
        found = self._cache.get(key)
        if found is None:
            found = self._matches(split_words(key))
            if len(self._cache) < 4096:
                self._cache[key] = found
        return found

    def _matches(self, words: list[str]) -> bool:
        for pattern in self._patterns:
            joined = "".join(pattern)
            size = len(pattern)
            for i, word in enumerate(words):
                before = words[i - 1] if i else ""
                if words[i : i + size] == pattern:
                    end = i + size
                elif word.endswith(joined):
                    end = i + 1
                    before = word[: -len(joined)] or before
                else:
                    continue
                if end < len(words) and words[end] in QUALIFIERS:
                    continue
                if before in CURSORS:
                    continue
                return True
        return False
