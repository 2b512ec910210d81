"""Redis exchanges: which server frames answer which command, in plain data.

An *exchange* is one command and every frame the server sent for it. Redis answers commands in
the order they were sent, so a pipelined client is paired by order: the first frame answers the
oldest command still waiting. Most commands get exactly one frame; ``(P|S)SUBSCRIBE`` and
``(P|S)UNSUBSCRIBE`` get one confirmation per channel (one per subscribed channel when called
without arguments, or one when there was none); ``CLIENT REPLY OFF|SKIP`` and the commands they
silence get none.

How ``Tracker`` tells answers from out-of-band frames
-----------------------------------------------------
A RESP3 push (``>``) answers a command only when it is the confirmation the command waits for
(``subscribe`` for SUBSCRIBE, ...); other pushes (pub/sub messages, client-side caching
invalidations) are out-of-band. In RESP2 a connection with subscriptions receives its messages as
plain arrays, so there an array that starts with ``message``, ``pmessage`` or ``smessage`` is
out-of-band. An out-of-band frame that arrives while a command waits is stored with that command's
frames, in wire order. On a connection with subscriptions (or ``MONITOR``, or ``CLIENT
TRACKING``) frames also arrive while nothing waits: such a connection holds each completed
exchange until the client sends again, and the frames that arrived in between are kept with it as
``after`` frames with their delay, so replay can push them at the same pace.

A blocking command (``BLPOP``, ``XREAD ... BLOCK``, ``WAIT``...) also keeps ``delay_ms``: how long
the server took to answer once the commands before it were answered.

Stored form (plain data, see ``wiretape.protocols.wire``)
--------------------------------------------------------
A request is the list of arguments, ``[SET, user:1, alice]``; arguments longer than
``LARGE_ARG`` bytes become ``{sha256: ..., size: ...}`` and match by digest. A command queued
inside ``MULTI`` is ``{command: [...], tx: true}`` (it is answered ``QUEUED``, so it matches only
inside a transaction). The value of ``CLIENT SETINFO`` (the client library's name and version) is
never compared, so upgrading the client does not break a recording.

Matching values the app generates: when no recording has the exact key, one whose *loose key* is
equal answers. The loose key reduces every UUID, timestamp, JWT or opaque token to its kind and
format, as response comparison does, whether it is a whole argument or a part of one between
``:`` or ``/`` separators (``session:3f2a...`` matches ``session:9c0d...``). Request noise rules
(``with_request_noise``) remove chosen arguments of a command from the key altogether.
Passwords (``AUTH``, ``HELLO ... AUTH``, ``MIGRATE``, ``CONFIG SET requirepass``, ``ACL
SETUSER``, and the values of ``requirepass``/``masterauth`` in ``CONFIG GET`` answers) are
stored as ``wiretape:secret``.

A response is ``{reply: value}`` for one frame or ``{replies: [...]}`` otherwise, plus optional
``delay_ms`` and ``after: [{delay_ms: 12.5, frame: value}]`` (delays counted from the last
frame of the exchange). Values map to plain data losslessly:

=====================  =========================================
bulk string            ``alice`` or ``{base64: ...}``
integer, boolean       ``42``, ``true``
null bulk ``$-1``      ``null``; ``{nil: array}`` for ``*-1``, ``{nil: resp3}`` for ``_``
simple string, error   ``{simple: OK}``, ``{error: WRONGTYPE ...}``, ``{bulk_error: ...}``
double, big number     ``{double: '1.5'}``, ``{big: '1234567890123456789012'}``
verbatim string        ``{verbatim: text, format: txt}``
array, set, push       ``[...]``, ``{set: [...]}``, ``{push: [...]}``
map                    ``{map: [[key, value], ...]}``
attributes             ``{attributes: [[key, value], ...], value: ...}``
=====================  =========================================

An answer longer than ``LARGE_REPLY`` bytes (or holding a streamed bulk) is kept as the exact
server bytes (``Exchange.raw``, written to a spool the caller provides) with a short preview.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from wiretape.compare.values import kind_token
from wiretape.errors import ProtocolError
from wiretape.model import WireRequest
from wiretape.protocols.redis import (
    DEFAULT_STREAM_THRESHOLD,
    AggregateEnd,
    AggregateKind,
    AggregateStart,
    Array,
    Attributed,
    BigNumber,
    Boolean,
    BulkChunk,
    BulkEnd,
    BulkError,
    BulkKind,
    BulkStart,
    BulkString,
    Command,
    Double,
    Event,
    Integer,
    Item,
    Map,
    Null,
    NullKind,
    Push,
    PushData,
    Reply,
    Set,
    SimpleError,
    SimpleString,
    Value,
    Verbatim,
    encode_event,
    encode_reply,
    redact_auth,
)
from wiretape.protocols.wire import PlainError, WireCodec, bytes_of, plain_bytes

__all__ = [
    "CODEC",
    "LARGE_ARG",
    "LARGE_REPLY",
    "PLACEHOLDER",
    "Answer",
    "Arg",
    "CommandAssembler",
    "Exchange",
    "LargeArg",
    "RequestCache",
    "Requests",
    "Spool",
    "Tracker",
    "answer_of",
    "is_blocking",
    "name_of",
    "request_for",
    "value_doc",
    "value_of",
    "with_request_noise",
]

LARGE_ARG = DEFAULT_STREAM_THRESHOLD  # longer arguments are stored and matched by digest
LARGE_REPLY = DEFAULT_STREAM_THRESHOLD  # longer answers are stored as raw bytes
PLACEHOLDER = b"wiretape:secret"
SUMMARY_MAX = 300
_SHOW_ARG = 60
_PREVIEW = 80


# -- values <-> plain data ----------------------------------------------------------------------


def value_doc(v: Value) -> Any:
    """One RESP value as plain data (see the table in the module docstring)."""
    if isinstance(v, BulkString):
        return plain_bytes(v.data)
    if isinstance(v, Integer):
        return v.value
    if isinstance(v, Null):
        if v.kind is NullKind.BULK:
            return None
        return {"nil": "array" if v.kind is NullKind.ARRAY else "resp3"}
    if isinstance(v, Array):
        return [value_doc(item) for item in v.items]
    if isinstance(v, SimpleString):
        return {"simple": plain_bytes(v.data)}
    if isinstance(v, SimpleError):
        return {"error": plain_bytes(v.data)}
    if isinstance(v, Boolean):
        return v.value
    if isinstance(v, Map):
        return {"map": [[value_doc(k), value_doc(item)] for k, item in v.items]}
    if isinstance(v, Set):
        return {"set": [value_doc(item) for item in v.items]}
    if isinstance(v, PushData):
        return {"push": [value_doc(item) for item in v.items]}
    if isinstance(v, Double):
        return {"double": v.text}
    if isinstance(v, BigNumber):
        return {"big": v.text}
    if isinstance(v, BulkError):
        return {"bulk_error": plain_bytes(v.data)}
    if isinstance(v, Verbatim):
        return {"verbatim": plain_bytes(v.data), "format": v.format.decode("latin-1")}
    return {
        "attributes": [[value_doc(k), value_doc(item)] for k, item in v.attributes],
        "value": value_doc(v.value),
    }


_NULLS = {"array": NullKind.ARRAY, "resp3": NullKind.RESP3}


def _items(node: Any, where: str) -> tuple[Value, ...]:
    if not isinstance(node, list):
        raise PlainError(f"{where}: expected a list")
    return tuple(value_of(item, f"{where}[{i}]") for i, item in enumerate(node))


def _pairs(node: Any, where: str) -> tuple[tuple[Value, Value], ...]:
    if not isinstance(node, list):
        raise PlainError(f"{where}: expected a list of [key, value] pairs")
    out = []
    for i, pair in enumerate(node):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise PlainError(f"{where}[{i}]: expected a [key, value] pair")
        out.append((value_of(pair[0], f"{where}[{i}][0]"), value_of(pair[1], f"{where}[{i}][1]")))
    return tuple(out)


def _text(node: Any, where: str) -> str:
    if not isinstance(node, str):
        raise PlainError(f"{where}: expected a string, found {node!r:.60}")
    return node


def value_of(node: Any, where: str = "reply") -> Value:
    """The RESP value that ``value_doc`` turned into ``node``; raises ``PlainError``."""
    if isinstance(node, bool):
        return Boolean(node)
    if isinstance(node, int):
        if not -(1 << 63) <= node < 1 << 63:
            raise PlainError(f"{where}: {node} does not fit a RESP integer; use {{big: '...'}}")
        return Integer(node)
    if isinstance(node, str):
        return BulkString(bytes_of(node, where))
    if node is None:
        return Null(NullKind.BULK)
    if isinstance(node, list):
        return Array(_items(node, where))
    if not isinstance(node, dict) or not node:
        raise PlainError(f"{where}: expected a RESP value, found {node!r:.60}")
    keys = set(node)
    if keys == {"base64"}:
        return BulkString(bytes_of(node, where))
    if keys == {"simple"}:
        return SimpleString(bytes_of(node["simple"], f"{where}.simple"))
    if keys == {"error"}:
        return SimpleError(bytes_of(node["error"], f"{where}.error"))
    if keys == {"bulk_error"}:
        return BulkError(bytes_of(node["bulk_error"], f"{where}.bulk_error"))
    if keys == {"nil"}:
        kind = _NULLS.get(node["nil"])
        if kind is None:
            raise PlainError(f"{where}.nil: expected array or resp3")
        return Null(kind)
    if keys == {"double"}:
        return Double(_text(node["double"], f"{where}.double"))
    if keys == {"big"}:
        return BigNumber(_text(node["big"], f"{where}.big"))
    if keys == {"verbatim", "format"}:
        fmt = _text(node["format"], f"{where}.format").encode("latin-1", "replace")
        return Verbatim(fmt, bytes_of(node["verbatim"], f"{where}.verbatim"))
    if keys == {"map"}:
        return Map(_pairs(node["map"], f"{where}.map"))
    if keys == {"set"}:
        return Set(_items(node["set"], f"{where}.set"))
    if keys == {"push"}:
        return PushData(_items(node["push"], f"{where}.push"))
    if keys == {"attributes", "value"}:
        return Attributed(
            _pairs(node["attributes"], f"{where}.attributes"),
            value_of(node["value"], f"{where}.value"),
        )
    raise PlainError(f"{where}: unknown RESP value with keys {', '.join(sorted(map(str, keys)))}")


def _encodable(value: Value, where: str) -> Value:
    try:
        encode_reply(value)
    except ProtocolError as exc:
        raise PlainError(f"{where}: {exc.message}") from None
    return value


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LargeArg:
    """An argument longer than ``LARGE_ARG``: kept as its digest."""

    sha256: str
    size: int


Arg = bytes | LargeArg

# Commands whose first argument names a subcommand (as in ``protocols.redis.command_name``).
_CONTAINERS = frozenset(
    {
        "ACL",
        "CLIENT",
        "CLUSTER",
        "COMMAND",
        "CONFIG",
        "FUNCTION",
        "LATENCY",
        "MEMORY",
        "MODULE",
        "OBJECT",
        "PUBSUB",
        "SCRIPT",
        "SLOWLOG",
        "XGROUP",
        "XINFO",
    }
)
# Connection set-up and pings: their answers do not depend on the test that sent them.
_REUSABLE = frozenset(
    {
        "AUTH",
        "HELLO",
        "SELECT",
        "PING",
        "ECHO",
        "QUIT",
        "RESET",
        "READONLY",
        "READWRITE",
        "COMMAND",
        "CLIENT SETNAME",
        "CLIENT SETINFO",
        "CLIENT GETNAME",
        "CLIENT ID",
        "CLIENT TRACKING",
        "CLIENT NO-EVICT",
        "CLIENT NO-TOUCH",
        "CLIENT MAINT_NOTIFICATIONS",
    }
)
_BLOCKING = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "WAIT",
        "WAITAOF",
    }
)


def _word(arg: Arg) -> str:
    return arg.decode("latin-1").upper() if isinstance(arg, bytes) else ""


def name_of(args: Sequence[Arg]) -> str:
    """The upper-cased command name, with the subcommand of a container (``CONFIG GET``)."""
    if not args:
        return ""
    name = _word(args[0])
    if name in _CONTAINERS and len(args) > 1:
        return f"{name} {_word(args[1])}"
    return name


def is_blocking(args: Sequence[Arg]) -> bool:
    """Whether the server may hold the answer back (a blocking pop, ``XREAD BLOCK``, ``WAIT``)."""
    return _blocks(name_of(args), args)


def _blocks(name: str, args: Sequence[Arg]) -> bool:
    if name in _BLOCKING:
        return True
    if name in ("XREAD", "XREADGROUP"):
        return any(_word(a) == "BLOCK" for a in args[1:])
    return False


def _arg_doc(arg: Arg) -> Any:
    if isinstance(arg, LargeArg):
        return {"sha256": arg.sha256, "size": arg.size}
    if len(arg) > LARGE_ARG:
        return {"sha256": hashlib.sha256(arg).hexdigest(), "size": len(arg)}
    return plain_bytes(arg)


def command_doc(args: Sequence[Arg], *, tx: bool = False) -> Any:
    """A command's stored form."""
    listed = [_arg_doc(a) for a in args]
    return {"command": listed, "tx": True} if tx else listed


def _arg_of(node: Any, where: str) -> Arg:
    if isinstance(node, dict) and set(node) == {"sha256", "size"}:
        digest, size = node["sha256"], node["size"]
        if not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise PlainError(f"{where}.sha256: expected 64 lower-case hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise PlainError(f"{where}.size: expected a byte count")
        return LargeArg(digest, size)
    return bytes_of(node, where)


_PLAIN_ARG = re.compile(rb"[\x21\x23-\x26\x28-\x7e]{1,%d}" % _SHOW_ARG)  # no quotes, no spaces
_PLAIN_LINE = re.compile(rb"[\x20\x21\x23-\x26\x28-\x7e]+")
_FAST_ARGS = 64
_REDACTED_NAMES = frozenset({"AUTH", "HELLO", "MIGRATE", "CONFIG SET", "ACL SETUSER"})


def _show(arg: Arg) -> str:
    if isinstance(arg, LargeArg):
        return f"<{arg.size} bytes sha256:{arg.sha256[:12]}>"
    if _PLAIN_ARG.fullmatch(arg):
        return arg.decode("ascii")
    text = arg.decode("utf-8", "replace")
    if len(text) > _SHOW_ARG:
        text = text[: _SHOW_ARG - 3] + "..."
    return repr(text)


def request_for(data: Any) -> WireRequest:
    """The matchable request of a stored command (plain data); raises ``PlainError``."""
    tx = False
    listed = data
    if isinstance(data, dict):
        if "command" not in data or set(data) - {"command", "tx"}:
            raise PlainError("expected a list of arguments or {command: [...], tx: true}")
        listed = data["command"]
        tx = data.get("tx", False)
        if not isinstance(tx, bool):
            raise PlainError("tx: expected true or false")
    if not isinstance(listed, list) or not listed:
        raise PlainError("expected a non-empty list of command arguments")
    args = _sized([_arg_of(a, f"[{i}]") for i, a in enumerate(listed)])
    return _build(args, name_of(args), data, tx)


def _sized(args: Sequence[Arg]) -> list[Arg]:
    """``args`` with every argument longer than ``LARGE_ARG`` as its digest."""
    return [
        LargeArg(hashlib.sha256(a).hexdigest(), len(a))
        if isinstance(a, bytes) and len(a) > LARGE_ARG
        else a
        for a in args
    ]


def _plain_line(args: Sequence[Arg]) -> str | None:
    """The arguments joined by spaces when each is short printable ASCII without spaces or
    quotes (most commands): then the summary and the stored form are this text, split."""
    if len(args) > _FAST_ARGS:
        return None
    for a in args:
        if not isinstance(a, bytes) or not a or len(a) > _SHOW_ARG:
            return None
    joined = b" ".join(args)  # type: ignore[arg-type]
    if _PLAIN_LINE.fullmatch(joined) and joined.count(b" ") == len(args) - 1:
        return joined.decode("ascii")
    return None


def _build(
    args: Sequence[Arg],
    name: str,
    data: Any,
    tx: bool,
    noise: Collection[int] = (),
    shown: str | None = None,
) -> WireRequest:
    first = args[0]
    parts: list[object] = [name if isinstance(first, bytes) else ("sha256", first.sha256)]
    loose: list[object] | None = None
    skip = 2 if " " in name else 1
    for i in range(skip, len(args)):
        arg = args[i]
        if (noise and i in noise) or (i == 3 and name == "CLIENT SETINFO"):
            parts.append(None)
            continue
        if isinstance(arg, LargeArg):
            parts.append(("sha256", arg.sha256, arg.size))
            continue
        parts.append(arg)
        kind = _loose_arg(arg)
        if kind is not None:
            if loose is None:
                loose = list(parts[:-1])
            loose.append(kind)
        elif loose is not None:
            loose.append(arg)
    if shown is None:
        shown = " ".join(_show(a) for a in args)
    summary = ("(queued in MULTI) " if tx else "") + shown
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 3] + "..."
    return WireRequest(
        summary=summary,
        data=data,
        key=(tx, tuple(parts)),
        reusable=not tx and _reusable(name),
        loose_key=None if loose is None else (tx, tuple(loose)),
    )


_LOOSE_MIN = 10  # shorter values are never UUIDs, timestamps or opaque tokens
_LOOSE_MAX = 2048
_SEGMENTS = re.compile(r"([:/])")
_DIGIT = re.compile(rb"[0-9]")
_MAX_PIECES = 31


def _loose_arg(arg: bytes) -> object | None:
    """``arg`` with the typed values in it (UUIDs, timestamps, JWTs, opaque tokens) reduced to
    their kind, or None when it holds none. A value may be the whole argument or a run of its
    ``:``/``/``-separated parts (``session:<uuid>``, ``events/2024-05-01T10:00:00Z``)."""
    if not _LOOSE_MIN <= len(arg) <= _LOOSE_MAX or not _DIGIT.search(arg):
        return None  # every kind of generated value is long enough and holds a digit
    try:
        text = arg.decode("utf-8")
    except UnicodeDecodeError:
        return None
    token = kind_token(text)
    if token is not None:
        return ("kind", token)
    if ":" not in text and "/" not in text:
        return None
    pieces = _SEGMENTS.split(text)  # values at even positions, separators between them
    if len(pieces) > _MAX_PIECES:
        return None
    out: list[str] = []
    changed = False
    i = 0
    while i < len(pieces):
        found = None
        for j in range(len(pieces) - 1, i - 1, -2):  # the longest run of parts first
            run = "".join(pieces[i : j + 1])
            if len(run) >= _LOOSE_MIN:
                found = kind_token(run)
                if found is not None and j > i and not found.startswith("time:"):
                    found = None  # only a timestamp holds the separators itself
                if found is not None:
                    out.append("\0" + found)
                    changed = True
                    i = j + 1
                    break
        if found is None:
            out.append(pieces[i])
            i += 1
        if i < len(pieces):
            out.append(pieces[i])  # the separator
            i += 1
    return ("parts", tuple(out)) if changed else None


def with_request_noise(req: WireRequest, rules: Sequence[tuple[str, Sequence[int]]]) -> WireRequest:
    """``req`` matched without the arguments that ``rules`` name.

    A rule is (command name, argument positions): ``("SET", (1,))`` ignores the key of every
    ``SET`` (position 0 is the name; ``"*"`` names every command). The stored data and the
    summary are unchanged; only the keys differ.
    """
    if not rules:
        return req
    data = req.data
    listed = data["command"] if isinstance(data, dict) else data
    if not isinstance(listed, list) or not listed:
        return req
    word = listed[0].upper() if isinstance(listed[0], str) else ""
    positions = {
        p
        for command, numbers in rules
        if command == "*" or command.upper() == word
        for p in numbers
        if 0 < p < len(listed)
    }
    if not positions:
        return req
    tx = isinstance(data, dict) and data.get("tx") is True
    args = _sized([_arg_of(a, f"[{i}]") for i, a in enumerate(listed)])
    masked = _build(args, name_of(args), data, tx, positions)
    return replace(req, key=masked.key, loose_key=masked.loose_key)


def _reusable(name: str) -> bool:
    return name in _REUSABLE or name.startswith("COMMAND ")


class Requests:
    """Builds the ``WireRequest`` of each command of one connection, as record and replay both do.

    It keeps what the key depends on besides the arguments: whether the command is queued in a
    ``MULTI`` block. Passwords are replaced by ``PLACEHOLDER``.
    """

    def __init__(self) -> None:
        self.tx = False

    def queues(self, name: str) -> bool:
        """Whether the command ``name`` would be queued in a transaction rather than run."""
        return self.tx and name not in ("EXEC", "DISCARD", "MULTI", "RESET")

    def request(self, args: Sequence[Arg], name: str | None = None) -> WireRequest:
        if name is None:
            name = name_of(args)
        queued = self.queues(name)
        if name == "MULTI":
            self.tx = True
        elif name in ("EXEC", "DISCARD", "RESET"):
            self.tx = False
        if name in _REDACTED_NAMES and all(isinstance(a, bytes) for a in args):
            plain = tuple(a for a in args if isinstance(a, bytes))
            args = redact_auth(Command(plain), PLACEHOLDER).args
        line = _plain_line(args)
        if line is not None:
            data = line.split(" ")
            return _build(
                args, name, {"command": data, "tx": True} if queued else data, queued, (), line
            )
        args = _sized(args)
        return _build(args, name, command_doc(args, tx=queued), queued)


# Commands whose request is not kept by ``RequestCache``: they change what the key of the next
# command depends on (the MULTI state), or carry a password.
_UNCACHED = frozenset({"MULTI", "EXEC", "DISCARD", "RESET"}) | _REDACTED_NAMES
_Known = tuple[WireRequest, str, bool]


class RequestCache:
    """The requests of commands seen before, by their exact arguments and the ``MULTI`` state:
    what ``Requests.request`` (then ``with_request_noise`` with ``noise``) gives for them, built
    once. Shared by the connections of one dependency; holds at most ``entries`` commands of at
    most ``max_bytes`` bytes of arguments each, dropping the oldest first.

    Commands that change the ``MULTI`` state or carry a password always take the full path.
    """

    def __init__(
        self,
        noise: Sequence[tuple[str, Sequence[int]]] = (),
        *,
        entries: int = 2048,
        max_bytes: int = 1024,
        max_args: int = 32,
    ) -> None:
        self._noise = noise
        self._entries = entries
        self._max_bytes = max_bytes
        self._max_args = max_args
        self._known: tuple[dict[tuple[bytes, ...], _Known], dict[tuple[bytes, ...], _Known]] = (
            {},
            {},
        )

    def __len__(self) -> int:
        return len(self._known[0]) + len(self._known[1])

    def request(self, requests: Requests, args: tuple[bytes, ...]) -> _Known:
        """``(request, name, queued)`` of ``args`` on the connection ``requests`` builds for,
        as the full path computes them (``requests`` moves to the state after the command)."""
        small = len(args) <= self._max_args and sum(map(len, args)) <= self._max_bytes
        known = self._known[requests.tx]
        if small:
            found = known.get(args)
            if found is not None:
                return found
        name = name_of(args)
        queued = requests.queues(name)
        request = requests.request(args, name)
        if self._noise:
            request = with_request_noise(request, self._noise)
        found = (request, name, queued)
        if small and name not in _UNCACHED and self._entries > 0:
            if len(known) >= self._entries:
                del known[next(iter(known))]
            known[args] = found
        return found


class CommandAssembler:
    """Turns a ``Kind.COMMAND`` parser's events into argument lists. A streamed argument is kept
    while it is at most ``LARGE_ARG`` bytes and hashed from there on, never held whole; so the
    arguments do not depend on the parser's ``stream_threshold``."""

    def __init__(self) -> None:
        self._args: list[Arg] | None = None
        self._bulk: bytearray | None = None
        self._hash: Any = None
        self._size = 0

    def feed(self, event: Event) -> list[Arg] | None:
        """The complete command ``event`` ends, if any (an empty list for an empty command)."""
        if isinstance(event, Command):
            return list(event.args)
        if isinstance(event, AggregateStart):
            self._args = []
        elif isinstance(event, Item):
            if self._args is not None and isinstance(event.value, BulkString):
                self._args.append(event.value.data)
        elif isinstance(event, BulkStart):
            self._bulk = bytearray()
            self._hash = None
            self._size = 0
        elif isinstance(event, BulkChunk):
            self._size += len(event.data)
            if self._hash is not None:
                self._hash.update(event.data)
            elif self._bulk is not None:
                self._bulk += event.data
                if self._size > LARGE_ARG:
                    self._hash = hashlib.sha256(self._bulk)
                    self._bulk = None
        elif isinstance(event, BulkEnd):
            if self._args is not None:
                if self._hash is not None:
                    self._args.append(LargeArg(self._hash.hexdigest(), self._size))
                elif self._bulk is not None:
                    self._args.append(bytes(self._bulk))
            self._bulk = self._hash = None
        elif isinstance(event, AggregateEnd):
            args, self._args = self._args, None
            return args
        return None


# -- responses ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Answer:
    """A stored response ready to send: frames (unless raw), delay and later frames."""

    frames: list[Value]
    delay: float = 0.0
    after: list[tuple[float, Value]] = field(default_factory=list)


def _ms(node: Any, where: str) -> float:
    if not isinstance(node, int | float) or isinstance(node, bool) or not node >= 0:
        raise PlainError(f"{where}: expected a number of milliseconds")
    if not math.isfinite(node):
        raise PlainError(f"{where}: expected a finite number of milliseconds")
    return float(node) / 1000


def answer_of(data: Any, *, raw: bool = False, where: str = "response") -> Answer:
    """A stored response's frames and timing; with ``raw`` the frames are in a file and ``data``
    is its preview (only the timing is read)."""
    if not isinstance(data, dict):
        raise PlainError(f"{where}: expected a mapping with reply or replies")
    frames: list[Value] = []
    if not raw:
        if "reply" in data:
            frames = [_encodable(value_of(data["reply"], f"{where}.reply"), f"{where}.reply")]
        elif isinstance(data.get("replies"), list):
            frames = [
                _encodable(value_of(v, f"{where}.replies[{i}]"), f"{where}.replies[{i}]")
                for i, v in enumerate(data["replies"])
            ]
        else:
            raise PlainError(f"{where}: expected reply or a replies list")
    answer = Answer(frames)
    if "delay_ms" in data:
        answer.delay = _ms(data["delay_ms"], f"{where}.delay_ms")
    after = data.get("after")
    if after is not None:
        if not isinstance(after, list):
            raise PlainError(f"{where}.after: expected a list")
        for i, item in enumerate(after):
            at = f"{where}.after[{i}]"
            if not isinstance(item, dict) or set(item) != {"delay_ms", "frame"}:
                raise PlainError(f"{at}: expected {{delay_ms, frame}}")
            frame = _encodable(value_of(item["frame"], f"{at}.frame"), f"{at}.frame")
            answer.after.append((_ms(item["delay_ms"], f"{at}.delay_ms"), frame))
    return answer


def _check_response(data: Any) -> None:
    answer_of(data)


CODEC = WireCodec(
    name="redis",
    request=request_for,
    check_response=_check_response,
    with_noise=with_request_noise,
)


# -- tracking a connection ----------------------------------------------------------------------


class Spool(Protocol):
    """Where a large answer's bytes go (the store's body spool)."""

    def write(self, data: bytes) -> None: ...

    def finish(self) -> object: ...


@dataclass(slots=True)
class Exchange:
    """A completed command: its request and every frame that answered it."""

    request: WireRequest
    frames: list[Value]
    started: float
    ended: float
    delay: float | None = None  # blocking commands: how long the server held the answer
    after: list[tuple[float, Value]] = field(default_factory=list)
    raw: object = None  # the spool's result when the answer was kept as raw bytes
    raw_size: int = 0
    raw_frames: int = 0
    raw_head: bytes = b""
    answered: bool = True  # False: the connection closed before the answer was complete
    tag: object = None  # what the caller's ``new_tag`` gave when the command was sent

    def response_data(self) -> dict[str, Any]:
        data: dict[str, Any]
        if self.raw is not None:
            first = self.raw_head.split(b"\r\n", 1)[0]
            data = {
                "raw": {
                    "bytes": self.raw_size,
                    "frames": self.raw_frames,
                    "starts": plain_bytes(first),
                }
            }
        elif len(self.frames) == 1:
            data = {"reply": value_doc(self.frames[0])}
        else:
            data = {"replies": [value_doc(f) for f in self.frames]}
        if self.delay is not None:
            data["delay_ms"] = round(self.delay * 1000, 3)
        if self.after:
            data["after"] = [
                {"delay_ms": round(delay * 1000, 3), "frame": value_doc(frame)}
                for delay, frame in self.after
            ]
        return data


_SUBSCRIBE = {"SUBSCRIBE": "subscribe", "PSUBSCRIBE": "psubscribe", "SSUBSCRIBE": "ssubscribe"}
_UNSUBSCRIBE = {
    "UNSUBSCRIBE": "unsubscribe",
    "PUNSUBSCRIBE": "punsubscribe",
    "SUNSUBSCRIBE": "sunsubscribe",
}
_CONFIRMATIONS = frozenset((*_SUBSCRIBE.values(), *_UNSUBSCRIBE.values()))
# Which set of names a confirmation kind changes: channels, patterns or shard channels.
_FAMILY_SET = {
    "": "",
    "subscribe": "",
    "unsubscribe": "",
    "psubscribe": "p",
    "punsubscribe": "p",
    "ssubscribe": "s",
    "sunsubscribe": "s",
}
_MESSAGES = frozenset({"message", "pmessage", "smessage"})
# Frames that answer the oldest waiting command whatever the connection's state.
_SCALARS = frozenset({SimpleString, SimpleError, Integer, BulkString, Null})
_STATE_CHANGES = frozenset({"HELLO", "RESET", "MONITOR", "CLIENT TRACKING"})
_SECRET_CONFIGS = frozenset({b"requirepass", b"masterauth"})


def _kind_of(items: tuple[Value, ...]) -> str:
    if items and isinstance(items[0], BulkString | SimpleString):
        return items[0].data.decode("latin-1").lower()
    return ""


def _unwrap(value: Value) -> Value:
    while isinstance(value, Attributed):
        value = value.value
    return value


def _is_error(value: Value) -> bool:
    return isinstance(_unwrap(value), SimpleError | BulkError)


def _size_over(value: Value, limit: int) -> bool:
    """Whether ``value`` encodes to more than ``limit`` bytes (counted roughly from below)."""
    total = 0
    todo = [value]
    while todo:
        v = todo.pop()
        total += 8
        if isinstance(v, BulkString | SimpleString | SimpleError | BulkError | Verbatim):
            total += len(v.data)
        elif isinstance(v, Array | Set | PushData):
            todo.extend(v.items)
        elif isinstance(v, Map):
            todo.extend(x for pair in v.items for x in pair)
        elif isinstance(v, Attributed):
            todo.extend(x for pair in v.attributes for x in pair)
            todo.append(v.value)
        if total > limit:
            return True
    return False


def _redact_config(value: Value) -> Value:
    """A ``CONFIG GET`` answer with the values of password settings replaced."""

    def masked(key: Value, item: Value) -> Value:
        if isinstance(key, BulkString) and key.data.lower() in _SECRET_CONFIGS:
            return BulkString(PLACEHOLDER)
        return item

    if isinstance(value, Map):
        return Map(tuple((k, masked(k, v)) for k, v in value.items))
    if isinstance(value, Array):
        items = list(value.items)
        for i in range(0, len(items) - 1, 2):
            items[i + 1] = masked(items[i], items[i + 1])
        return Array(tuple(items))
    return value


@dataclass(slots=True)
class _Pending:
    request: WireRequest
    name: str
    started: float
    expect: int | None  # None: counted when it reaches the head (UNSUBSCRIBE without channels)
    family: str | None  # the confirmation kind a (un)subscribe command waits for
    blocking: bool
    tag: object
    switch_on: bool = False  # CLIENT TRACKING ON
    frames: list[Value] = field(default_factory=list)
    got: int = 0
    ready_at: float = 0.0
    first_at: float | None = None
    spool: Spool | None = None
    raw_size: int = 0
    raw_frames: int = 0
    raw_head: bytes = b""

    def write_raw(self, data: bytes) -> None:
        assert self.spool is not None
        self.spool.write(data)
        self.raw_size += len(data)
        if len(self.raw_head) < _PREVIEW:
            self.raw_head += data[: _PREVIEW - len(self.raw_head)]


class _Builder:
    """Rebuilds a value from the events of a streamed frame (for frames that are not spooled)."""

    def __init__(self) -> None:
        self._stack: list[tuple[AggregateKind, list[Value]]] = []
        self._bulk: tuple[BulkKind, bytes, bytearray] | None = None
        self.value: Value | None = None

    def feed(self, event: Event) -> None:
        if isinstance(event, AggregateStart):
            self._stack.append((event.kind, []))
        elif isinstance(event, Item):
            self._add(event.value)
        elif isinstance(event, BulkStart):
            self._bulk = (event.kind, event.format, bytearray())
        elif isinstance(event, BulkChunk):
            if self._bulk is not None:
                self._bulk[2].extend(event.data)
        elif isinstance(event, BulkEnd):
            if self._bulk is not None:
                bulk, fmt, data = self._bulk
                self._bulk = None
                if bulk is BulkKind.STRING:
                    self._add(BulkString(bytes(data)))
                elif bulk is BulkKind.ERROR:
                    self._add(BulkError(bytes(data)))
                else:
                    self._add(Verbatim(fmt, bytes(data)))
        elif isinstance(event, AggregateEnd) and self._stack:
            kind, items = self._stack.pop()
            built: Value
            if kind is AggregateKind.ARRAY:
                built = Array(tuple(items))
            elif kind is AggregateKind.SET:
                built = Set(tuple(items))
            elif kind is AggregateKind.PUSH:
                built = PushData(tuple(items))
            elif kind is AggregateKind.MAP:
                built = Map(tuple(zip(items[::2], items[1::2], strict=True)))
            else:
                pairs = items[:-1]
                built = Attributed(tuple(zip(pairs[::2], pairs[1::2], strict=True)), items[-1])
            self._add(built)

    def _add(self, value: Value) -> None:
        if self._stack:
            self._stack[-1][1].append(value)
        else:
            self.value = value


@dataclass(slots=True)
class _Stream:
    """A top-level frame that arrives as several events (it holds a streamed bulk)."""

    depth: int = 0
    held: list[Event] = field(default_factory=list)  # events kept until the frame is classified
    target: _Pending | None = None
    builder: _Builder | None = None
    classified: bool = False


class Tracker:
    """Pairs one connection's commands and server frames into exchanges (sans-I/O).

    Feed each command's arguments (``command``) and each event of a ``Kind.REPLY`` parser
    (``server``) in the order each side sent them, with the time it was seen; each call returns
    the exchanges it completed, in command order. ``close()`` returns the rest. ``new_tag`` is
    called when a command is sent (the proxy uses it to link the exchange to the test in flight);
    ``spool`` makes the sink that a large answer is written to (without one, large answers are
    kept as values). With ``cache`` (a ``RequestCache`` without noise, which the connections of
    a dependency share), commands given as a tuple of arguments take their request from it.
    """

    def __init__(
        self,
        new_tag: Callable[[], object] | None = None,
        *,
        spool: Callable[[], Spool] | None = None,
        large_reply: int = LARGE_REPLY,
        cache: RequestCache | None = None,
    ) -> None:
        self._new_tag = new_tag
        self._spool = spool
        self._large = large_reply
        self._cache = cache
        self.requests = Requests()
        self._pending: deque[_Pending] = deque()
        self._held: Exchange | None = None
        self._prefix: list[Value] = []
        self._stream: _Stream | None = None
        self.resp3 = False
        self.channels: dict[str, set[bytes]] = {"": set(), "p": set(), "s": set()}
        self.monitoring = False
        self.tracking = False
        self._reply_off = False
        self._skip_next = False

    @property
    def subscribed(self) -> bool:
        return any(self.channels.values())

    @property
    def awaiting(self) -> bool:
        """Whether a command sent has not had its whole answer yet."""
        return bool(self._pending) or self._stream is not None

    # client side

    def command(self, args: Sequence[Arg], now: float) -> list[Exchange]:
        out: list[Exchange] = []
        if not args:
            return out  # an empty command gets no answer
        if self._held is not None:
            out.append(self._held)
            self._held = None
        if self._cache is not None and type(args) is tuple:
            request, name, queued = self._cache.request(self.requests, args)
        else:
            name = name_of(args)
            queued = self.requests.queues(name)
            request = self.requests.request(args, name)
        expect, family = self._expect(name, args, queued)
        entry = _Pending(
            request,
            name,
            now,
            expect,
            family,
            not queued and _blocks(name, args),
            self._new_tag() if self._new_tag is not None else None,
            switch_on=name == "CLIENT TRACKING" and len(args) > 2 and _word(args[2]) == "ON",
        )
        if not self._pending:
            entry.ready_at = now
            if self._prefix:
                entry.frames.extend(self._prefix)
                self._prefix = []
        self._pending.append(entry)
        self._pop_done(now, out)
        return out

    def _expect(
        self, name: str, args: Sequence[Arg], queued: bool
    ) -> tuple[int | None, str | None]:
        if name == "CLIENT REPLY" and len(args) > 2:
            mode = _word(args[2])
            if mode == "ON":
                self._reply_off = self._skip_next = False
                return 1, None
            if mode in ("OFF", "SKIP"):
                self._reply_off = self._reply_off or mode == "OFF"
                self._skip_next = mode == "SKIP"
                return 0, None
        if self._reply_off:
            return 0, None
        if self._skip_next:
            self._skip_next = False
            return 0, None
        if queued:
            return 1, None
        count = len(args) - 1
        if name in _SUBSCRIBE:
            return (count, _SUBSCRIBE[name]) if count else (1, None)
        if name in _UNSUBSCRIBE:
            return (count if count else None), _UNSUBSCRIBE[name]
        return 1, None

    # server side

    def server(self, event: Event, now: float) -> list[Exchange]:
        out: list[Exchange] = []
        if type(event) is Reply:
            value = event.value
            kind = type(value)
            if kind in _SCALARS and self._pending:
                head = self._head()
                if head is not None and head.spool is None and not self._over(value):
                    self._answer(head, value, kind is SimpleError, now, out)
                    return out
            self._frame(value, now, out, push=False)
            return out
        if isinstance(event, Reply | Push):
            self._frame(event.value, now, out, push=isinstance(event, Push))
            return out
        if isinstance(event, Command):
            return out
        stream = self._stream
        if stream is None:
            stream = self._stream = _Stream()
        if isinstance(event, AggregateStart | BulkStart):
            stream.depth += 1
        elif isinstance(event, AggregateEnd | BulkEnd):
            stream.depth -= 1
        if not stream.classified:
            stream.held.append(event)
            if not self._classify(stream, now):
                return out
            held, stream.held = stream.held, []
            for e in held:
                self._stream_event(stream, e)
        else:
            self._stream_event(stream, event)
        if stream.depth == 0:
            self._stream = None
            self._stream_done(stream, now, out)
        return out

    def _head(self) -> _Pending | None:
        """The command the next answering frame belongs to, its frame count resolved."""
        if not self._pending:
            return None
        head = self._pending[0]
        if head.expect is None:
            head.expect = max(1, len(self.channels[_FAMILY_SET[head.family or ""]]))
        return head

    def _classify(self, stream: _Stream, now: float) -> bool:
        """Decide where a streamed frame goes; False while its first child is still unknown."""
        first = stream.held[0]
        head = self._head()
        if isinstance(first, AggregateStart) and (
            first.kind is AggregateKind.PUSH
            or (first.kind is AggregateKind.ARRAY and self.subscribed and not self.resp3)
        ):
            if len(stream.held) < 2:
                return False
            second = stream.held[1]
            kind = ""
            if isinstance(second, Item) and isinstance(second.value, BulkString | SimpleString):
                kind = second.value.data.decode("latin-1").lower()
            answers = self._answers(head, kind, push=first.kind is AggregateKind.PUSH)
        else:
            answers = head is not None
        stream.classified = True
        if answers and head is not None and self._spool is not None:
            stream.target = head
            if head.first_at is None:
                head.first_at = now
            if head.spool is None:
                self._start_raw(head)
        else:
            stream.builder = _Builder()
        return True

    def _stream_event(self, stream: _Stream, event: Event) -> None:
        if stream.target is not None:
            stream.target.write_raw(encode_event(event))
        elif stream.builder is not None:
            stream.builder.feed(event)

    def _stream_done(self, stream: _Stream, now: float, out: list[Exchange]) -> None:
        if stream.builder is not None:
            value = stream.builder.value
            if value is not None:
                self._frame(value, now, out, push=isinstance(_unwrap(value), PushData))
            return
        head = stream.target
        if head is None or not self._pending or self._pending[0] is not head:
            return
        head.raw_frames += 1
        head.got += 1
        self._check_done(head, now, out, error=False)

    def _start_raw(self, head: _Pending) -> None:
        assert self._spool is not None
        head.spool = self._spool()
        for frame in head.frames:
            head.write_raw(encode_reply(frame))
            head.raw_frames += 1
        head.frames = []

    def _answers(self, head: _Pending | None, kind: str, *, push: bool) -> bool:
        """Whether a frame answers ``head`` (else it is out-of-band)."""
        if head is None:
            return False
        if push:
            return head.family is not None and kind == head.family
        return not (self.subscribed and not self.resp3 and kind in _MESSAGES)

    def _frame(self, value: Value, now: float, out: list[Exchange], *, push: bool) -> None:
        inner = _unwrap(value)
        items = inner.items if isinstance(inner, PushData | Array) else ()
        kind = _kind_of(items)
        if push:
            self.resp3 = True
        head = self._head()
        error = _is_error(value)
        answers = (error and head is not None) or self._answers(head, kind, push=push)
        if kind in _CONFIRMATIONS and (
            push or (answers and head is not None and head.family is not None)
        ):
            self._confirmed(kind, items)
        if head is None or not answers:
            if head is not None:
                if head.spool is not None:
                    head.write_raw(encode_reply(value))
                    head.raw_frames += 1
                else:
                    head.frames.append(value)
            elif self._held is not None:
                self._held.after.append((max(0.0, now - self._held.ended), value))
            else:
                self._prefix.append(value)
            return
        if head.first_at is None:
            head.first_at = now
        if head.spool is None and self._spool is not None and _size_over(value, self._large):
            self._start_raw(head)
        if head.spool is not None:
            head.write_raw(encode_reply(value))
            head.raw_frames += 1
        else:
            head.frames.append(value)
        head.got += 1
        self._state_after(head, value)
        self._check_done(head, now, out, error=error)

    def _over(self, value: Value) -> bool:
        """Whether the scalar ``value`` sends its exchange's answer to a spool (``_size_over``
        for one scalar)."""
        if self._spool is None:
            return False
        size = len(value.data) if isinstance(value, BulkString | SimpleString | SimpleError) else 0
        return size + 8 > self._large

    def _answer(
        self, head: _Pending, value: Value, error: bool, now: float, out: list[Exchange]
    ) -> None:
        """A scalar frame that answers ``head`` (what ``_frame`` does for one)."""
        if head.first_at is None:
            head.first_at = now
        head.frames.append(value)
        head.got += 1
        if head.name in _STATE_CHANGES:
            self._state_after(head, value)
        self._check_done(head, now, out, error=error)

    def _confirmed(self, kind: str, items: tuple[Value, ...]) -> None:
        channel = items[1] if len(items) > 1 else None
        if not isinstance(channel, BulkString):
            return
        names = self.channels[_FAMILY_SET[kind]]
        if kind.endswith("unsubscribe"):
            names.discard(channel.data)
        else:
            names.add(channel.data)

    def _state_after(self, head: _Pending, value: Value) -> None:
        if _is_error(value):
            return
        name = head.name
        if name == "HELLO":
            self.resp3 = isinstance(_unwrap(value), Map)
        elif name == "RESET":
            self.resp3 = self.monitoring = self.tracking = False
            self._reply_off = self._skip_next = False
            for names in self.channels.values():
                names.clear()
        elif name == "MONITOR":
            self.monitoring = True
        elif name == "CLIENT TRACKING":
            self.tracking = head.switch_on

    def _check_done(self, head: _Pending, now: float, out: list[Exchange], *, error: bool) -> None:
        if head.expect is not None and (error or head.got >= head.expect):
            self._complete(now, out)
            self._pop_done(now, out)

    def _pop_done(self, now: float, out: list[Exchange]) -> None:
        while self._pending and self._pending[0].expect == 0:
            self._complete(now, out)

    def _complete(self, now: float, out: list[Exchange]) -> None:
        entry = self._pending.popleft()
        if self._pending:
            self._pending[0].ready_at = now
        delay = None
        if entry.blocking:
            delay = max(0.0, (entry.first_at or now) - entry.ready_at)
        frames = entry.frames
        if entry.name == "CONFIG GET":
            frames = [_redact_config(f) for f in frames]
        exchange = Exchange(entry.request, frames, entry.started, now, delay=delay, tag=entry.tag)
        if entry.spool is not None:
            exchange.raw = entry.spool.finish()
            exchange.raw_size = entry.raw_size
            exchange.raw_frames = entry.raw_frames
            exchange.raw_head = bytes(entry.raw_head)
        if self.subscribed or self.monitoring or self.tracking:
            held, self._held = self._held, exchange
            if held is not None:
                out.append(held)
            return
        out.append(exchange)

    def close(self, now: float) -> list[Exchange]:
        """The exchange held back and the commands still waiting (``answered=False``, with the
        frames that did arrive)."""
        out: list[Exchange] = []
        if self._held is not None:
            out.append(self._held)
            self._held = None
        while self._pending:
            entry = self._pending.popleft()
            exchange = Exchange(
                entry.request, entry.frames, entry.started, now, answered=False, tag=entry.tag
            )
            if entry.spool is not None:
                exchange.raw = entry.spool.finish()
                exchange.raw_size = entry.raw_size
                exchange.raw_frames = entry.raw_frames
                exchange.raw_head = bytes(entry.raw_head)
            out.append(exchange)
        return out
