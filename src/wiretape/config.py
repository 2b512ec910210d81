"""Load and validate ``wiretape.yaml``; apply CLI overrides; render ``{deps.NAME}`` env templates.

How this works: the file is *composed* (not constructed) with PyYAML's safe loader, so we get the
node graph with a line number on every key and value, and no tag ever turns into a Python object.
A small walker checks each mapping against the keys it knows (unknown, duplicate and missing keys
are reported with file:line) and passes each value through a validator. The validators are plain
functions shared with ``apply_overrides``, so ``app.port: abc`` in the file and ``--port abc`` on
the command line are rejected by the same rule and differ only in where the error points.

Scalars that should be text (commands, paths, names, env values) are taken exactly as written,
so ``VERSION: 1.10`` stays ``"1.10"`` and ``set: 0123`` stays ``"0123"``. Booleans and empty
values are never silently turned into text.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from wiretape.compare.noise import split_rule
from wiretape.compare.paths import PathSyntaxError, parse_path
from wiretape.credentials import DEFAULT_HEADERS, DEFAULT_KEYS, split_words
from wiretape.errors import ConfigError
from wiretape.match.request_noise import check_request_path

__all__ = [
    "CONFIG_NAMES",
    "PROTOCOLS",
    "AppConfig",
    "Config",
    "DepConfig",
    "SecretsConfig",
    "TlsConfig",
    "apply_overrides",
    "config_from_flags",
    "find_config",
    "load_config",
    "render_env",
    "validate_templates",
]

CONFIG_NAMES = ("wiretape.yaml", "wiretape.yml")
PROTOCOLS = ("http", "postgres", "redis", "mysql", "tcp", "auto")
OUTBOUND_MODES = ("proxy", "off")
DEFAULT_STARTUP_TIMEOUT = 30.0
DEFAULT_LISTEN_HOST = "127.0.0.1"
# The record lane polls the app's socket this long for a fast answer before sleeping
# (``wiretape.proxy.lanepoll``).
DEFAULT_LANE_POLL_US = 150
MAX_LANE_POLL_US = 1000
DEFAULT_SETS_DIR = "wiretape"
# Mocks captured by the forward HTTP(S) proxy carry this dep name.
RESERVED_DEP_NAMES = ("outbound",)

T = TypeVar("T")


@dataclass(frozen=True)
class AppConfig:
    command: str
    port: int
    health: str | None
    env: dict[str, str]
    cwd: Path
    startup_timeout: float


@dataclass(frozen=True)
class DepConfig:
    """A named dependency. ``upstream`` is a URL for http, ``HOST:PORT`` for the others."""

    name: str
    protocol: str
    upstream: str
    # Databases: TLS toward the real server (disable | prefer | require | verify-full, as in
    # libpq: only verify-full checks the certificate), and whether the
    # proxy accepts a client's TLS request with the wiretape CA (accept | decline).
    upstream_tls: str = "prefer"
    client_tls: str = "accept"
    # Databases: parameters the app generates, ignored when matching: (statement prefix,
    # 1-based parameter numbers) for PostgreSQL and MySQL, (command, argument positions from 1)
    # for Redis.
    request_noise: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Databases: the largest protocol message parsed (bigger ones are a protocol error).
    max_message_size: int = 1 << 30
    # HTTP: request noise paths (body... or query.NAME) ignored when matching this dependency.
    http_request_noise: tuple[str, ...] = ()

    @property
    def upstream_scheme(self) -> str:
        """``http`` or ``https`` for an http dep; empty for the others."""
        return urlsplit(self.upstream).scheme.lower() if self.protocol == "http" else ""

    @property
    def upstream_host(self) -> str:
        if self.protocol == "http":
            return urlsplit(self.upstream).hostname or ""
        return _split_hostport(self.upstream)[0]

    @property
    def upstream_port(self) -> int:
        if self.protocol == "http":
            parts = urlsplit(self.upstream)
            return parts.port or (443 if parts.scheme.lower() == "https" else 80)
        return _split_hostport(self.upstream)[1]

    @property
    def upstream_prefix(self) -> str:
        """The URL path without its trailing slash ("" if none); always "" for non-http deps."""
        return urlsplit(self.upstream).path.rstrip("/") if self.protocol == "http" else ""

    @property
    def host(self) -> str:
        return self.upstream_host

    @property
    def port(self) -> int:
        return self.upstream_port


@dataclass(frozen=True)
class TlsConfig:
    extra_ca: Path | None
    verify_upstream: bool


@dataclass(frozen=True)
class SecretsConfig:
    """Credentials to redact besides the built-in ones (``wiretape.credentials``)."""

    keys: tuple[str, ...] = ()  # JSON, form and query key names
    headers: tuple[str, ...] = ()  # header names

    @property
    def all_keys(self) -> tuple[str, ...]:
        return (*DEFAULT_KEYS, *self.keys)

    @property
    def all_headers(self) -> frozenset[str]:
        return DEFAULT_HEADERS | {name.lower() for name in self.headers}


@dataclass(frozen=True)
class Config:
    path: Path | None  # None when built from flags alone
    app: AppConfig
    deps: dict[str, DepConfig]
    outbound_http: str
    listen_host: str
    listen_port: int
    set_name: str | None
    dir: Path
    tls: TlsConfig
    noise: tuple[str, ...]
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    # Request noise paths ignored when matching every HTTP dependency (and the forward proxy).
    request_noise: tuple[str, ...] = ()
    # How long the record lane polls the app's socket for a fast answer (0: never).
    lane_poll_us: int = DEFAULT_LANE_POLL_US
    # Line of every value in the file, keyed by dotted path ("app.env.DATABASE_URL").
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)


# --- finding and loading ---------------------------------------------------------------------


def find_config(start: Path) -> Path | None:
    """The nearest ``wiretape.yaml`` (or ``.yml``) in ``start`` or one of its parents."""
    here = start.absolute()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def load_config(path: Path) -> Config:
    """Read, validate and type ``path``. Raises ``ConfigError`` with file:line on any problem."""
    file = str(path)
    text = _read_text(path, file)
    root = _compose(text, file)
    if root is None:
        raise ConfigError(
            "the config file is empty",
            file=file,
            hint="it needs at least an 'app' section with 'command' and 'port'",
        )
    walker = _Walker(file)
    cfg = _build(walker, root, path.absolute().parent)
    validate_templates(cfg)
    return cfg


def _read_text(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "config file not found",
            file=file,
            hint="check the path, or run wiretape from the directory that holds wiretape.yaml",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", file=file) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the file is not UTF-8 text (bad byte at offset {exc.start})",
            file=file,
            line=raw[: exc.start].count(b"\n") + 1,
            hint="save the file as UTF-8",
        ) from None


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str, file: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        hint = "check the indentation and quoting on this line and the one before it"
        if "\t" in problem or "tab" in problem:
            hint = "YAML does not allow tabs for indentation; use spaces"
        elif "another document" in problem:
            hint = "the config is a single YAML document; remove the extra '---'"
        raise ConfigError(
            f"invalid YAML: {problem}{context}",
            file=file,
            line=mark.line + 1 if mark is not None else None,
            hint=hint,
        ) from None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", None)
        line = text[:position].count("\n") + 1 if isinstance(position, int) else None
        raise ConfigError(
            f"invalid YAML: {exc}", file=file, line=line, hint="remove the control character"
        ) from None


# --- the node walker -------------------------------------------------------------------------

_Y = "tag:yaml.org,2002:"
_NULL, _BOOL, _STR, _INT, _FLOAT = (_Y + t for t in ("null", "bool", "str", "int", "float"))
_TIMESTAMP, _MAP, _SEQ, _MERGE = (_Y + t for t in ("timestamp", "map", "seq", "merge"))


class _Bad(Exception):
    """A validator's verdict: what was expected, and optionally what to do."""

    def __init__(self, expected: str, hint: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.hint = hint


@dataclass(frozen=True)
class _Field:
    path: str
    key: Node | None
    value: Node

    @property
    def line(self) -> int:
        # An empty value has no position of its own worth showing; point at its key.
        node = self.value
        if self.key is not None and _is_empty(node):
            node = self.key
        return node.start_mark.line + 1

    @property
    def key_line(self) -> int:
        node = self.key if self.key is not None else self.value
        return node.start_mark.line + 1


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL and node.value in ("", "~", "null")


def _shape(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing" if node.value == "" else repr(node.value)
    return repr(node.value)


def _suggest(word: str, choices: Sequence[str], label: str) -> str:
    """``did you mean 'x'? <label>: a, b`` (the question only when a choice is close)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close and len(word) >= 3:
        close = [c for c in choices if c.startswith(word)][:1]
    listing = f"{label}: {', '.join(choices)}" if choices else f"{label}: none"
    return f"did you mean {close[0]!r}? {listing}" if close else listing


class _Walker:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[str, int] = {}
        self._constructor = SafeConstructor()

    def fail(self, line: int, message: str, hint: str | None = None) -> NoReturn:
        raise ConfigError(message, file=self.file, line=line, hint=hint)

    def mapping(
        self,
        where: _Field,
        known: Sequence[str] | None,
        required: Sequence[str] = (),
        hint: str | None = None,
    ) -> dict[str, _Field]:
        """The keys of a mapping node; ``known=None`` accepts any key. Empty value = {}."""
        node, label = where.value, where.path or "the config"
        if _is_empty(node):
            children: list[tuple[Node, Node]] = []
        elif isinstance(node, MappingNode) and node.tag == _MAP:
            children = node.value
        else:
            self._check_tag(node, where.path)
            self.fail(
                where.line, f"{label}: expected a mapping (key: value), got {_shape(node)}", hint
            )
        fields: dict[str, _Field] = {}
        for key_node, value_node in children:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE:
                self.fail(
                    key_line,
                    f"{label}: merge keys ('<<') are not supported",
                    "write the keys out in full",
                )
            if not isinstance(key_node, ScalarNode) or key_node.value == "":
                self.fail(key_line, f"{label}: keys must be plain names, got {_shape(key_node)}")
            key = key_node.value
            path = f"{where.path}.{key}" if where.path else key
            if key in fields:
                first = fields[key].key
                first_line = first.start_mark.line + 1 if first is not None else key_line
                self.fail(
                    key_line,
                    f"{path}: duplicate key (first defined on line {first_line})",
                    "remove one of them; YAML would silently keep only the last one",
                )
            if known is not None and key not in known:
                known_label = "known keys" if where.path else "known top-level keys"
                self.fail(
                    key_line, f"{label}: unknown key {key!r}", _suggest(key, known, known_label)
                )
            fields[key] = _Field(path, key_node, value_node)
            self.lines[path] = fields[key].line
        for key in required:
            if key not in fields:
                self.fail(
                    where.key_line,
                    f"{label}: missing required key {key!r}",
                    _REQUIRED_HINTS.get(f"{where.path}.{key}".lstrip(".")),
                )
        return fields

    def sequence(self, where: _Field) -> list[_Field]:
        node = where.value
        if _is_empty(node):
            return []
        if not isinstance(node, SequenceNode) or node.tag != _SEQ:
            self._check_tag(node, where.path)
            self.fail(
                where.line,
                f"{where.path}: expected a list, got {_shape(node)}",
                f"write one item per line, each starting with '- ' under '{where.path}:'",
            )
        items = [_Field(f"{where.path}[{i}]", None, item) for i, item in enumerate(node.value)]
        for item in items:
            self.lines[item.path] = item.line
        return items

    def value(self, where: _Field, validate: Callable[[object], T], *, text: bool = True) -> T:
        """Validate a scalar. ``text=True`` keeps numbers and dates as the text written."""
        node = where.value
        self._check_tag(node, where.path)
        raw: object
        if not isinstance(node, ScalarNode):
            raw = _Shape(_shape(node))
        elif node.tag == _NULL:
            raw = None
        elif node.tag == _BOOL:
            raw = self._constructor.construct_object(node)
        elif node.tag == _STR or text:
            raw = node.value
        else:
            raw = self._constructor.construct_object(node)
        try:
            return validate(raw)
        except _Bad as bad:
            self.fail(
                where.line, f"{where.path}: expected {bad.expected}, got {_shape(node)}", bad.hint
            )

    def _check_tag(self, node: Node, path: str) -> None:
        allowed = (_NULL, _BOOL, _STR, _INT, _FLOAT, _TIMESTAMP, _MAP, _SEQ)
        if node.tag not in allowed:
            self.fail(
                node.start_mark.line + 1,
                f"{path}: unsupported YAML tag {node.tag!r}",
                "remove the tag; the config only holds plain strings, numbers and booleans",
            )


@dataclass(frozen=True)
class _Shape:
    """Stands in for a mapping or list where a scalar was expected; no validator accepts it."""

    text: str


_REQUIRED_HINTS = {
    "app": "add an 'app' section with 'command' (how to start the app) and 'port'",
    "app.command": "add e.g. 'command: uvicorn shop.main:app --port 8000' under app",
    "app.port": "add the port the app listens on, e.g. 'port: 8000' under app",
}

_TOP_KEYS = (
    "app",
    "deps",
    "outbound_http",
    "listen",
    "set",
    "dir",
    "tls",
    "noise",
    "secrets",
    "request_noise",
    "lane_poll_us",
)
_SECRETS_KEYS = ("keys", "headers")
_APP_KEYS = ("command", "port", "health", "env", "cwd", "startup_timeout")
_DEP_KEYS = ("protocol", "upstream")
_DEP_OPTIONAL = ("upstream_tls", "client_tls", "request_noise", "max_message_size")
_REQUEST_NOISE_KEYS = ("sql", "params")
_REDIS_NOISE_KEYS = ("command", "args")
UPSTREAM_TLS = ("disable", "prefer", "require", "verify-full")
CLIENT_TLS = ("accept", "decline")
_TLS_PROTOCOLS = ("postgres", "mysql", "redis", "auto")
_TLS_KEYS = ("extra_ca", "verify_upstream")


def _build(w: _Walker, root: Node, base: Path) -> Config:
    top = w.mapping(_Field("", None, root), _TOP_KEYS, required=("app",))
    app = _build_app(w, top["app"], base)
    deps = _build_deps(w, top["deps"]) if "deps" in top else {}
    outbound = w.value(top["outbound_http"], _outbound) if "outbound_http" in top else "proxy"
    host, port = w.value(top["listen"], _listen) if "listen" in top else (DEFAULT_LISTEN_HOST, 0)
    set_name = w.value(top["set"], _set_name) if "set" in top else None
    sets_dir = base / DEFAULT_SETS_DIR
    if "dir" in top:
        sets_dir = _resolve(base, w.value(top["dir"], _path_text))
    tls = TlsConfig(extra_ca=None, verify_upstream=True)
    if "tls" in top:
        tls = _build_tls(w, top["tls"], base)
    noise: tuple[str, ...] = ()
    if "noise" in top:
        noise = tuple(w.value(item, _noise_path) for item in w.sequence(top["noise"]))
    secrets = _build_secrets(w, top["secrets"]) if "secrets" in top else SecretsConfig()
    request_noise: tuple[str, ...] = ()
    if "request_noise" in top:
        request_noise = tuple(
            w.value(item, _request_noise_path) for item in w.sequence(top["request_noise"])
        )
    lane_poll_us = DEFAULT_LANE_POLL_US
    if "lane_poll_us" in top:
        lane_poll_us = w.value(top["lane_poll_us"], _lane_poll_us, text=False)
    return Config(
        path=Path(w.file),
        app=app,
        deps=deps,
        outbound_http=outbound,
        listen_host=host,
        listen_port=port,
        set_name=set_name,
        dir=sets_dir,
        tls=tls,
        noise=noise,
        request_noise=request_noise,
        secrets=secrets,
        lane_poll_us=lane_poll_us,
        lines=dict(w.lines),
    )


def _build_app(w: _Walker, where: _Field, base: Path) -> AppConfig:
    f = w.mapping(where, _APP_KEYS, required=("command", "port"))
    env: dict[str, str] = {}
    if "env" in f:
        for name, value in w.mapping(f["env"], None).items():
            if not _env_name_ok(name):
                w.fail(
                    value.key_line,
                    f"{value.path}: invalid environment variable name {name!r}",
                    "names must be non-empty and contain no '=' or NUL character",
                )
            env[name] = w.value(value, _env_value)
    cwd = base
    if "cwd" in f:
        cwd = _resolve(base, w.value(f["cwd"], _path_text))
        if not cwd.is_dir():
            w.fail(
                f["cwd"].line,
                f"app.cwd: directory {str(cwd)!r} does not exist",
                f"paths in the config are relative to its directory ({base})",
            )
    return AppConfig(
        command=w.value(f["command"], _command),
        port=w.value(f["port"], _app_port, text=False),
        health=w.value(f["health"], _health) if "health" in f else None,
        env=env,
        cwd=cwd,
        startup_timeout=(
            w.value(f["startup_timeout"], _timeout, text=False)
            if "startup_timeout" in f
            else DEFAULT_STARTUP_TIMEOUT
        ),
    )


def _build_deps(w: _Walker, where: _Field) -> dict[str, DepConfig]:
    deps: dict[str, DepConfig] = {}
    for name, entry in w.mapping(where, None).items():
        if not _DEP_NAME.fullmatch(name):
            w.fail(
                entry.key_line,
                f"deps: invalid dependency name {name!r}",
                "a name starts with a letter or '_' and has only letters, digits, '_' and '-'",
            )
        if name in RESERVED_DEP_NAMES:
            w.fail(
                entry.key_line,
                f"deps: the name {name!r} is reserved",
                "wiretape uses it for calls captured by the forward HTTP(S) proxy; pick another",
            )
        f = w.mapping(
            entry,
            (*_DEP_KEYS, *_DEP_OPTIONAL),
            required=_DEP_KEYS,
            hint=f"write it as {name}: {{protocol: http, upstream: https://host/prefix}}",
        )
        protocol = w.value(f["protocol"], _protocol)
        upstream = w.value(f["upstream"], _upstream_validator(protocol))
        options: dict[str, str] = {}
        for key, choices in (("upstream_tls", UPSTREAM_TLS), ("client_tls", CLIENT_TLS)):
            if key not in f:
                continue
            if protocol not in _TLS_PROTOCOLS:
                w.fail(
                    f[key].key_line,
                    f"deps.{name}.{key}: only {', '.join(_TLS_PROTOCOLS[:-1])} and "
                    f"{_TLS_PROTOCOLS[-1]} dependencies have TLS options",
                    "for https use an https:// upstream URL",
                )
            options[key] = w.value(f[key], _choice(key, choices))
        request_noise: list[tuple[str, tuple[int, ...]]] = []
        http_noise: tuple[str, ...] = ()
        if "request_noise" in f and protocol == "http":
            http_noise = tuple(
                w.value(item, _request_noise_path) for item in w.sequence(f["request_noise"])
            )
        elif "request_noise" in f:
            if protocol not in ("postgres", "mysql", "redis"):
                w.fail(
                    f["request_noise"].key_line,
                    f"deps.{name}.request_noise: only http, postgres, mysql and redis "
                    "dependencies have request parts to ignore",
                )
            keys = _REDIS_NOISE_KEYS if protocol == "redis" else _REQUEST_NOISE_KEYS
            example = (
                "{command: SET, args: [1]}"
                if protocol == "redis"
                else "{sql: 'INSERT INTO orders', params: [7]}"
            )
            for item in w.sequence(f["request_noise"]):
                rule = w.mapping(item, keys, required=keys, hint=f"write it as {example}")
                what = w.value(rule[keys[0]], _statement_prefix)
                numbers = tuple(
                    w.value(n, _param_number, text=False) for n in w.sequence(rule[keys[1]])
                )
                if protocol == "redis":
                    what = what.upper()
                request_noise.append((what, numbers))
        limit = DepConfig.max_message_size
        if "max_message_size" in f:
            if protocol not in ("postgres", "mysql", "redis"):
                w.fail(
                    f["max_message_size"].key_line,
                    f"deps.{name}.max_message_size: only database protocols have messages to limit",
                )
            limit = w.value(f["max_message_size"], _message_size, text=False)
        deps[name] = DepConfig(
            name=name,
            protocol=protocol,
            upstream=upstream,
            request_noise=tuple(request_noise),
            max_message_size=limit,
            http_request_noise=http_noise,
            **options,
        )
    return deps


def _build_secrets(w: _Walker, where: _Field) -> SecretsConfig:
    f = w.mapping(where, _SECRETS_KEYS)
    keys: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    if "keys" in f:
        keys = tuple(w.value(item, _secret_key) for item in w.sequence(f["keys"]))
    if "headers" in f:
        headers = tuple(w.value(item, _header_name) for item in w.sequence(f["headers"]))
    return SecretsConfig(keys=keys, headers=headers)


def _build_tls(w: _Walker, where: _Field, base: Path) -> TlsConfig:
    f = w.mapping(where, _TLS_KEYS)
    extra_ca = None
    if "extra_ca" in f:
        extra_ca = _resolve(base, w.value(f["extra_ca"], _path_text))
        if not extra_ca.is_file():
            w.fail(
                f["extra_ca"].line,
                f"tls.extra_ca: file {str(extra_ca)!r} does not exist",
                f"paths in the config are relative to its directory ({base})",
            )
    verify = w.value(f["verify_upstream"], _bool, text=False) if "verify_upstream" in f else True
    return TlsConfig(extra_ca=extra_ca, verify_upstream=verify)


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


# --- validators: value -> typed value, or _Bad -----------------------------------------------

_DEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DIGITS = re.compile(r"[0-9]+")


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _port(value: object, *, allow_zero: bool) -> int:
    low = 0 if allow_zero else 1
    number = _as_int(value)
    if number is None or not low <= number <= 65535:
        raise _Bad(f"an integer {low}-65535")
    return number


def _app_port(value: object) -> int:
    return _port(value, allow_zero=False)


def _command(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Bad("a non-empty shell command, e.g. 'uvicorn shop.main:app --port 8000'")


def _timeout(value: object) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number <= 0:
        raise _Bad("a number of seconds greater than 0")
    return number


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise _Bad("true or false")


def _health(value: object) -> str:
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        if value.startswith("/"):
            return value
        if _http_url_ok(value):
            return value
    raise _Bad("a URL path starting with '/' (e.g. /healthz) or a full http:// or https:// URL")


def _http_url_ok(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _request_noise_path(value: object) -> str:
    expected = "a request noise path such as 'body.request_id' or 'query.ts'"
    if isinstance(value, str) and value.strip():
        try:
            check_request_path(value)
        except ValueError as exc:
            raise _Bad(expected, str(exc)) from None
        return value.strip()
    raise _Bad(expected)


def _lane_poll_us(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LANE_POLL_US:
        return value
    raise _Bad(
        f"a number of microseconds from 0 to {MAX_LANE_POLL_US} (default {DEFAULT_LANE_POLL_US})",
        "0 turns polling off",
    )


def _message_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1024 <= value <= 1 << 30:
        return value
    raise _Bad("a size in bytes from 1024 to 1073741824 (1 GiB, the default)")


def _statement_prefix(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Bad("the start of a SQL statement, e.g. 'INSERT INTO orders'")


def _param_number(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    raise _Bad("a parameter number from 1 (as in $1) to 65535")


def _choice(what: str, choices: tuple[str, ...]) -> Callable[[object], str]:
    def check(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        hint = _suggest(value, choices, what) if isinstance(value, str) else None
        raise _Bad(f"one of {', '.join(choices)}", hint)

    return check


_KEY_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _secret_key(value: object) -> str:
    if isinstance(value, str) and _KEY_NAME.fullmatch(value.strip()) and split_words(value):
        return value.strip()
    raise _Bad(
        "a key name of letters, digits, '_', '-' and '.', e.g. 'pin' or 'session_id'",
        "a name matches keys that contain its words in any spelling: 'session_id' also "
        "matches sessionId and X-Session-Id",
    )


def _header_name(value: object) -> str:
    if isinstance(value, str) and _HEADER_NAME.fullmatch(value.strip()):
        return value.strip()
    raise _Bad("an HTTP header name, e.g. 'X-Auth-Token'")


def _outbound(value: object) -> str:
    if value is False:  # YAML reads an unquoted `off` as false
        return "off"
    if isinstance(value, str) and value.strip().lower() in OUTBOUND_MODES:
        return value.strip().lower()
    raise _Bad("'proxy' or 'off'")


def _listen(value: object) -> tuple[str, int]:
    expected = "HOST:PORT with a port 0-65535 (0 picks a free port), e.g. 127.0.0.1:8080"
    if isinstance(value, str):
        parsed = _parse_hostport(value.strip(), allow_zero=True)
        if parsed is not None:
            return parsed
    if _as_int(value) is not None:
        raise _Bad(expected, f"add the host, e.g. '{DEFAULT_LISTEN_HOST}:{value}'")
    raise _Bad(expected)


def _set_name(value: object) -> str:
    if isinstance(value, str) and _SET_NAME.fullmatch(value):
        return value
    raise _Bad("a set name of letters, digits, '.', '_' and '-' (it becomes a directory name)")


def _path_text(value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Bad("a file system path")


def _noise_path(value: object) -> str:
    expected = (
        "a noise path such as 'body.items[*].id' or 'header.X-Request-Id', or an order rule "
        "such as 'unordered(body.items)'"
    )
    if isinstance(value, str) and value.strip():
        try:
            parse_path(split_rule(value)[0])
        except PathSyntaxError as exc:
            raise _Bad(expected, f"{exc.reason} at character {exc.position + 1}") from None
        return value.strip()
    raise _Bad(expected)


def _env_name_ok(name: str) -> bool:
    return bool(name) and "=" not in name and "\0" not in name


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        raise _Bad("a string", "YAML reads true/false/yes/no/on/off as booleans; quote the value")
    if value is None:
        raise _Bad("a string", 'write "" for an empty value')
    if isinstance(value, str) and "\0" not in value:
        return value
    raise _Bad("a string (a single line of text or a quoted value)")


def _protocol(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in PROTOCOLS:
        return value.strip().lower()
    hint = _suggest(value, PROTOCOLS, "protocols") if isinstance(value, str) else None
    raise _Bad(f"one of {', '.join(PROTOCOLS)}", hint)


def _upstream_validator(protocol: str) -> Callable[[object], str]:
    def validate(value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        if protocol == "http":
            problem = _http_upstream_problem(text)
            if problem is not None:
                raise _Bad(
                    "an absolute http:// or https:// URL, e.g. https://api.example.test/v1", problem
                )
            return text
        if _parse_hostport(text, allow_zero=False) is None:
            hint = None
            if "://" in text:
                hint = f"a {protocol} upstream is HOST:PORT without a scheme"
            raise _Bad("HOST:PORT with a port 1-65535, e.g. 127.0.0.1:5432", hint)
        return text

    return validate


def _http_upstream_problem(text: str) -> str | None:
    """Why ``text`` is not a usable http upstream URL, or None if it is."""
    if not text:
        return "the upstream is empty"
    if any(c.isspace() for c in text):
        return "remove the spaces from the URL"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return "the port in the URL is not a number 1-65535"
    if parts.scheme.lower() not in ("http", "https"):
        return "start it with http:// or https://"
    if not parts.hostname:
        return "the URL has no host"
    if port == 0:
        return "the port in the URL is not a number 1-65535"
    if parts.username is not None or parts.password is not None:
        return "remove the user:password@ part; the app sends its own credentials"
    if "?" in text or "#" in text:
        return "remove the query or fragment; only a path prefix is allowed"
    return None


def _parse_hostport(text: str, *, allow_zero: bool) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` split and checked, or None."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not _DIGITS.fullmatch(port_text):
        return None
    port = int(port_text)
    if not (0 if allow_zero else 1) <= port <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        return host[1:-1], port
    if not _HOSTNAME.fullmatch(host):
        return None
    return host, port


def _split_hostport(text: str) -> tuple[str, int]:
    parsed = _parse_hostport(text, allow_zero=True)
    if parsed is None:
        raise ValueError(f"not a HOST:PORT address: {text!r}")
    return parsed


# --- CLI overrides ---------------------------------------------------------------------------

_FLAGS = {
    "command": ("--command", "app.command"),
    "port": ("--port", "app.port"),
    "health": ("--health", "app.health"),
    "listen": ("--listen", "listen"),
    "set_name": ("--set", "set"),
    "dir": ("--dir", "dir"),
    "outbound_http": ("--outbound-http", "outbound_http"),
    "extra_ca": ("--extra-ca", "tls.extra_ca"),
    "verify_upstream": ("--verify-upstream", "tls.verify_upstream"),
    "startup_timeout": ("--startup-timeout", "app.startup_timeout"),
}


def apply_overrides(cfg: Config, **overrides: object) -> Config:
    """``cfg`` with CLI flag values applied. ``None`` means "flag not given".

    Keys: command, port, health, listen ("host:port"), set_name, dir, outbound_http, extra_ca,
    verify_upstream, startup_timeout. Relative paths are taken from the current directory.
    """
    unknown = sorted(set(overrides) - set(_FLAGS))
    if unknown:
        raise TypeError(f"apply_overrides() got unknown override(s): {', '.join(unknown)}")
    given = {key: value for key, value in overrides.items() if value is not None}

    def take(key: str, validate: Callable[[object], T], default: T) -> T:
        if key not in given:
            return default
        flag, _ = _FLAGS[key]
        value = given[key]
        try:
            return validate(value)
        except _Bad as bad:
            shown = repr(value) if isinstance(value, str) else str(value)
            hint = f"fix the value passed to {flag}" + (f"; {bad.hint}" if bad.hint else "")
            raise ConfigError(f"{flag}: expected {bad.expected}, got {shown}", hint=hint) from None

    here = Path.cwd()
    app = dataclasses.replace(
        cfg.app,
        command=take("command", _command, cfg.app.command),
        port=take("port", _app_port, cfg.app.port),
        health=take("health", _health, cfg.app.health),
        startup_timeout=take("startup_timeout", _timeout, cfg.app.startup_timeout),
    )
    listen_host, listen_port = take("listen", _listen, (cfg.listen_host, cfg.listen_port))
    sets_dir = cfg.dir
    if "dir" in given:
        sets_dir = _resolve(here, take("dir", _path_text, ""))
    extra_ca = cfg.tls.extra_ca
    if "extra_ca" in given:
        extra_ca = _resolve(here, take("extra_ca", _path_text, ""))
        if not extra_ca.is_file():
            raise ConfigError(
                f"--extra-ca: file {str(extra_ca)!r} does not exist",
                hint="fix the path passed to --extra-ca (relative to the current directory)",
            )
    tls = TlsConfig(
        extra_ca=extra_ca, verify_upstream=take("verify_upstream", _bool, cfg.tls.verify_upstream)
    )
    overridden = {_FLAGS[key][1] for key in given}
    return dataclasses.replace(
        cfg,
        app=app,
        outbound_http=take("outbound_http", _outbound, cfg.outbound_http),
        listen_host=listen_host,
        listen_port=listen_port,
        set_name=take("set_name", _set_name, cfg.set_name),
        dir=sets_dir,
        tls=tls,
        lines={path: line for path, line in cfg.lines.items() if path not in overridden},
    )


def config_from_flags(**overrides: object) -> Config:
    """A config with no file: defaults plus flags (``command`` and ``port`` are required).

    Takes the same keys as ``apply_overrides``; the current directory plays the config's role.
    """
    if overrides.get("command") is None or overrides.get("port") is None:
        raise ConfigError(
            "no wiretape.yaml was found and --command/--port were not both given",
            hint="create wiretape.yaml in the project directory, or pass --command and --port",
        )
    here = Path.cwd()
    blank = Config(
        path=None,
        app=AppConfig(
            command="",
            port=0,
            health=None,
            env={},
            cwd=here,
            startup_timeout=DEFAULT_STARTUP_TIMEOUT,
        ),
        deps={},
        outbound_http="proxy",
        listen_host=DEFAULT_LISTEN_HOST,
        listen_port=0,
        set_name=None,
        dir=here / DEFAULT_SETS_DIR,
        tls=TlsConfig(extra_ca=None, verify_upstream=True),
        noise=(),
    )
    return apply_overrides(blank, **overrides)


# --- env templates ---------------------------------------------------------------------------

# `{{` and `}}` are literal braces; `{...}` without braces inside is a placeholder.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_DEP_FIELDS = ("host", "port", "url")


def render_env(template: str, deps: Mapping[str, str], *, where: str) -> str:
    """Fill ``{deps.NAME}`` (and ``.host``, ``.port``, ``.url``) from ``deps`` (NAME -> host:port).

    Other ``{...}`` placeholders are left as they are; ``{{`` and ``}}`` are literal braces.
    ``where`` names the value in errors, e.g. ``app.env.DATABASE_URL``.
    """
    return _render(template, deps, where=where, file=None, line=None)


def validate_templates(cfg: Config) -> None:
    """Check that every ``{deps.NAME}`` in ``app.env`` names a declared dependency."""
    file = str(cfg.path) if cfg.path is not None else None
    stand_ins = dict.fromkeys(cfg.deps, "127.0.0.1:1")
    for name, template in cfg.app.env.items():
        where = f"app.env.{name}"
        line = cfg.lines.get(where) if file is not None else None
        _render(template, stand_ins, where=where, file=file, line=line)


def _render(
    template: str, deps: Mapping[str, str], *, where: str, file: str | None, line: int | None
) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        inner = match.group(1)
        if not inner.startswith("deps."):
            return token
        name, _, part = inner.removeprefix("deps.").partition(".")
        if name not in deps:
            raise ConfigError(
                f"{where}: {token} names an unknown dependency {name!r}",
                file=file,
                line=line,
                hint=_suggest(name, sorted(deps), "declared deps")
                + "; declare it under 'deps:' or fix the name",
            )
        address = deps[name]
        if part == "":
            return address
        if part not in _DEP_FIELDS:
            raise ConfigError(
                f"{where}: {token} asks for an unknown field {part!r}",
                file=file,
                line=line,
                hint=f"use {{deps.{name}}}, "
                + ", ".join(f"{{deps.{name}.{p}}}" for p in _DEP_FIELDS),
            )
        if part == "url":
            return f"http://{address}"
        host, port = _split_hostport(address)
        return host if part == "host" else str(port)

    return _PLACEHOLDER.sub(substitute, template)
