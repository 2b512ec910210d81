"""The data wiretape records, stores, matches and compares.

Everything here is a frozen dataclass with no behaviour beyond small derived views,
so it can be shared between the proxy loop, the writer thread and the replayer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# A recorded credential is replaced by this prefix and a number (see wiretape.secrets).
SECRET_PREFIX = "wiretape:secret:"

# Headers keep their order, their original spelling and their duplicates.
Headers = tuple[tuple[str, str], ...]


def header_get(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    lname = name.lower()
    size = len(lname)
    for key, value in headers:
        if len(key) == size and key.lower() == lname:  # most names differ in length: no lower()
            return value
    return None


def header_all(headers: Headers, name: str) -> list[str]:
    """Every value of header ``name`` in order (case-insensitive)."""
    lname = name.lower()
    size = len(lname)
    return [value for key, value in headers if len(key) == size and key.lower() == lname]


def header_tokens(headers: Headers, name: str) -> set[str]:
    """The lower-cased comma-separated tokens of every ``name`` header."""
    lname = name.lower()
    size = len(lname)
    tokens: set[str] = set()
    for key, value in headers:  # one pass, no generators: the proxy asks for every message
        if len(key) == size and key.lower() == lname:
            for token in value.lower().split(","):
                token = token.strip()
                if token:
                    tokens.add(token)
    return tokens


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A body kept in a file rather than in memory (large bodies, ``bodies/<sha256>``)."""

    sha256: str
    size: int
    path: str

    def read(self) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read()


Body = bytes | BlobRef


def body_bytes(body: Body) -> bytes:
    return body if isinstance(body, bytes) else body.read()


def body_size(body: Body) -> int:
    return len(body) if isinstance(body, bytes) else body.size


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # the request-target as sent: "/path?q" or an absolute URL through a proxy
    headers: Headers
    body: Body = b""
    version: str = "HTTP/1.1"
    scheme: str = "http"  # how the server was reached: http or https
    host: str = ""  # authority the request was for; empty means the dep's upstream
    trailers: Headers = ()

    @property
    def path(self) -> str:
        """Path of the target, without the query."""
        if self.target.startswith("/") or self.target == "*":
            return self.target.split("?", 1)[0]
        return urlsplit(self.target).path or "/"

    @property
    def query(self) -> str:
        if self.target.startswith("/"):
            return self.target.split("?", 1)[1] if "?" in self.target else ""
        return urlsplit(self.target).query


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: Headers
    body: Body = b""
    version: str = "HTTP/1.1"
    trailers: Headers = ()


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One request of a database or TCP protocol (PostgreSQL, Redis, MySQL, raw TCP).

    ``data`` is plain data (dicts, lists, strings, numbers, None) in the protocol's own readable,
    lossless form; it is what the store writes. ``key`` is computed from ``data`` by the
    protocol's codec and is what replay matches on; ``summary`` is one line for reports.
    ``reusable`` marks requests whose answers do not depend on the test that caused them (type
    introspection, ``SHOW``, ``SET``, pings): replay may answer them from any recording.
    When no recording has the exact key, one whose ``loose_key`` is equal answers: a UUID or a
    timestamp the app generated matches any value of the same kind and format, as in response
    comparison. ``loose_key`` is None when the request holds no such value.
    """

    summary: str
    data: object
    key: object = None
    reusable: bool = False
    loose_key: object = None  # ``key`` with typed values (UUIDs, timestamps) reduced to their kind


@dataclass(frozen=True, slots=True)
class WireResponse:
    """What a database or TCP server answered: ``data`` in the protocol's readable form, or, for
    large answers, the exact server bytes in a file (``raw``) with a short ``data`` preview."""

    data: object
    raw: Body | None = None


class LinkKind(enum.Enum):
    """How a mock was tied to its test."""

    LANE = "lane"  # exact: the only request in flight
    TRACEPARENT = "traceparent"  # exact: the W3C trace id matched
    WINDOW = "window"  # one test was in flight when the call started (concurrent mode)
    AMBIGUOUS = "ambiguous"  # several were; ``candidates`` lists them
    SESSION = "session"  # no test in flight: start-up, pools, health checks


@dataclass(frozen=True, slots=True)
class Mock:
    id: str
    dep: str  # dependency name from the config; "outbound" for the forward proxy
    protocol: str
    request: HttpRequest | WireRequest
    response: HttpResponse | WireResponse | None
    test: str | None  # owning test id; None for a session mock
    link: LinkKind = LinkKind.LANE
    candidates: tuple[str, ...] = ()
    error: str | None = None
    started: float = 0.0  # wall-clock epoch seconds
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Chain:
    """A value a test's request sends back that an earlier test's response handed out."""

    source: str  # the test whose response holds the value
    path: str  # where in that response: body.token, cookie.session, header.Location
    value: str  # the recorded value (as stored, so a secret placeholder stays one)
    targets: tuple[str, ...]  # where this request carries it: header.Authorization, target, body.x


@dataclass(frozen=True, slots=True)
class TestCase:
    __test__ = False  # not a pytest test class

    id: str  # "0001-post-api-users": index and slug, also the file stem
    request: HttpRequest
    response: HttpResponse | None
    error: str | None = None
    noise: tuple[str, ...] = ()
    started: float = 0.0
    duration: float = 0.0
    upgraded: bool = False  # 101 Switching Protocols: the tunnel itself is not replayed
    chains: tuple[Chain, ...] = ()

    @property
    def index(self) -> int:
        return int(self.id.split("-", 1)[0])


@dataclass(frozen=True, slots=True)
class DepInfo:
    name: str
    protocol: str
    upstream: str


@dataclass(frozen=True, slots=True)
class SetInfo:
    """What ``set.yaml`` holds."""

    name: str
    created: float
    app_command: str
    deps: tuple[DepInfo, ...] = ()
    wiretape_version: str = ""
    closed: bool = False
    ended: float | None = None
    noise: tuple[str, ...] = ()  # set-wide noise paths
    strict_values: bool = False  # compare typed values (timestamps, UUIDs...) by value
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recorded mock that came close to a live request that matched nothing."""

    mock_id: str
    score: float  # 0..1, higher is closer
    differences: tuple[str, ...]  # e.g. "query base: 'EUR' recorded, 'USD' live"


@dataclass(frozen=True, slots=True)
class Miss:
    """A live request during replay that no recorded mock answers."""

    dep: str
    request: str  # one-line summary, e.g. "GET /v1/rates?base=EUR"
    candidates: tuple[Candidate, ...] = ()
    reason: str = ""  # e.g. "all 2 recorded answers were already used"
