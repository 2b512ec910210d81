"""Which protocol a connection speaks, told from its first bytes (sans-I/O).

How this works: each detector looks at the bytes seen so far and answers *yes* (with what it
found), *no*, or *maybe* (the bytes are a prefix of something it recognizes). Detectors are
monotone: once one says yes or no, more bytes never change its answer. The verdict is the first
detector in priority order that says yes while every detector before it says no; while a
detector before it still says maybe, the verdict is ``NEED_DATA``. When every detector says no
the verdict is ``unknown``. So every prefix of an opening gives ``NEED_DATA`` or the final
verdict, and feeding bytes one at a time gives the same verdict as feeding them at once.

Client openings, in priority order:

- ``h2``: the HTTP/2 prior-knowledge preface (``PRI * HTTP/2.0``...).
- ``http``: an HTTP/1.x request line, ``METHOD SP target SP HTTP/``. The whole request line up
  to ``HTTP/`` is required, because ``GET key`` is also a Redis inline command.
- ``tls``: a TLS handshake record (type 0x16, version 0x03xx) holding a ClientHello. The verdict
  waits for the complete ClientHello and reports its server name (SNI) and offered ALPN
  protocols; ``Sniffed.hint`` is the client's first ALPN choice (``h2``, ``http/1.1``,
  ``postgresql``...).
- ``postgres``: a length and a protocol code: StartupMessage (3.x), SSLRequest, GSSENCRequest or
  CancelRequest.
- ``redis``: a RESP array or bulk string header (``*2\\r\\n``, ``$4\\r\\n``), or an inline command
  line whose first word is a Redis command. memcached's text commands are lower-case words, some
  of which Redis shares (``get``, ``set``, ``incr``...): those are not taken for Redis.

Server openings (used when the client says nothing at first): ``mysql``, a MySQL/MariaDB
handshake (3-byte length, sequence 0, protocol version 10, a NUL-terminated server version).

Nothing is recognized beyond ``MAX_SNIFF`` bytes: a longer undecided opening is ``unknown``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "MAX_SNIFF",
    "NEED_DATA",
    "NeedData",
    "Side",
    "Sniffed",
    "Sniffer",
    "parse_client_hello",
    "sniff",
    "sniff_client",
    "sniff_server",
]

MAX_SNIFF = 64 * 1024


class NeedData(enum.Enum):
    NEED_DATA = "need data"


NEED_DATA = NeedData.NEED_DATA


class Side(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class Sniffed:
    """A verdict: ``protocol`` is http, h2, tls, postgres, redis, mysql or unknown."""

    protocol: str
    detail: str = ""
    sni: str | None = None
    alpn: tuple[str, ...] = ()

    @property
    def hint(self) -> str | None:
        """The protocol inside TLS, from the client's first ALPN choice."""
        return self.alpn[0] if self.alpn else None


UNKNOWN = Sniffed("unknown")


class _No(enum.Enum):
    NO = "no"


_NO = _No.NO
_Answer = Sniffed | NeedData | _No
_Detector = Callable[[bytes], _Answer]

# -- HTTP ---------------------------------------------------------------------------------------

_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MAX_METHOD = 32
_HTTP_VERSION = b"HTTP/"
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _h2(data: bytes) -> _Answer:
    if data.startswith(_H2_PREFACE):
        return Sniffed("h2", "prior-knowledge preface")
    return NEED_DATA if _H2_PREFACE.startswith(data) else _NO


def _http(data: bytes) -> _Answer:
    space = data.find(b" ")
    method = data if space < 0 else data[:space]
    if not method and space == 0:
        return _NO
    if len(method) > _MAX_METHOD or any(b not in _TOKEN for b in method):
        return _NO
    if space < 0:
        return NEED_DATA
    rest = data[space + 1 :]
    end = rest.find(b" ")
    target = rest if end < 0 else rest[:end]
    if any(b <= 0x20 or b == 0x7F for b in target) or (end == 0):
        return _NO
    if end < 0:
        return NEED_DATA
    version = rest[end + 1 :]
    if version.startswith(_HTTP_VERSION):
        return Sniffed("http", method.decode("ascii"))
    return NEED_DATA if _HTTP_VERSION.startswith(version) else _NO


# -- TLS ----------------------------------------------------------------------------------------

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_MAX_RECORD = (1 << 14) + 2048
_MAX_HELLO = MAX_SNIFF - 64
_EXT_SNI = 0
_EXT_ALPN = 16


def _tls(data: bytes) -> _Answer:
    head = (_HANDSHAKE, 0x03)
    for i, want in enumerate(head[: len(data)]):
        if data[i] != want:
            return _NO
    if len(data) >= 3 and data[2] > 0x04:
        return _NO
    if len(data) >= 5:
        length = int.from_bytes(data[3:5], "big")
        if length == 0 or length > _MAX_RECORD:
            return _NO
    if len(data) < 6:
        return NEED_DATA
    if data[5] != _CLIENT_HELLO:
        return _NO
    hello = _handshake_message(data)
    if isinstance(hello, NeedData):
        return NEED_DATA
    if hello is None:
        return Sniffed("tls", "ClientHello")
    sni, alpn = parse_client_hello(hello)
    return Sniffed("tls", "ClientHello", sni, alpn)


def _handshake_message(data: bytes) -> bytes | NeedData | None:
    """The first handshake message's body, reassembled across records; None when the records
    do not hold a well-formed one (the verdict is then TLS without details)."""
    payload = bytearray()
    at = 0
    need: int | None = None
    while True:
        if len(data) < at + 5:
            return NEED_DATA
        if data[at] != _HANDSHAKE or data[at + 1] != 0x03:
            return None
        length = int.from_bytes(data[at + 3 : at + 5], "big")
        if length == 0 or length > _MAX_RECORD:
            return None
        body = data[at + 5 : at + 5 + length]
        payload += body
        if need is None and len(payload) >= 4:
            need = int.from_bytes(payload[1:4], "big")
            if need > _MAX_HELLO:
                return None
        if need is not None and len(payload) >= 4 + need:
            return bytes(payload[4 : 4 + need])
        if len(body) < length:
            return NEED_DATA
        at += 5 + length


class _Reader:
    __slots__ = ("at", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("short")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, n: int) -> bytes:
        return self.take(self.number(n))

    @property
    def left(self) -> int:
        return len(self.data) - self.at


def parse_client_hello(body: bytes) -> tuple[str | None, tuple[str, ...]]:
    """The server name and ALPN protocols of a ClientHello body (without its 4-byte header);
    what cannot be read is left out."""
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    try:
        r = _Reader(body)
        r.take(2 + 32)  # legacy version, random
        r.vector(1)  # session id
        r.vector(2)  # cipher suites
        r.vector(1)  # compression methods
        if r.left == 0:
            return None, ()
        extensions = _Reader(r.vector(2))
        while extensions.left:
            kind = extensions.number(2)
            ext = _Reader(extensions.vector(2))
            if kind == _EXT_SNI:
                names = _Reader(ext.vector(2))
                while names.left:
                    name_type = names.number(1)
                    name = names.vector(2)
                    if name_type == 0 and sni is None:
                        sni = name.decode("ascii", "replace")
            elif kind == _EXT_ALPN:
                protocols = _Reader(ext.vector(2))
                found = []
                while protocols.left:
                    found.append(protocols.vector(1).decode("ascii", "replace"))
                alpn = tuple(found)
    except ValueError:
        pass
    return sni, alpn


# -- PostgreSQL ---------------------------------------------------------------------------------

_PG_MAX_STARTUP = 10000
_PG_CODES = {
    80877103: ("SSLRequest", 8),
    80877104: ("GSSENCRequest", 8),
    80877102: ("CancelRequest", 16),
}


def _postgres(data: bytes) -> _Answer:
    if any(b != 0 for b in data[:2]):
        return _NO
    if len(data) < 4:
        return NEED_DATA
    length = int.from_bytes(data[:4], "big")
    if length < 8 or length > _PG_MAX_STARTUP:
        return _NO
    code = data[4:8]
    fixed = [c.to_bytes(4, "big") for c, (_, size) in _PG_CODES.items() if size == length]
    startup = b"\x00\x03\x00" if length > 8 else None
    possible = [f for f in fixed if f.startswith(code)]
    if startup is not None and (startup.startswith(code) or code.startswith(startup)):
        possible.append(startup)
    if not possible:
        return _NO
    if len(code) < 4:
        return NEED_DATA
    number = int.from_bytes(code, "big")
    if number in _PG_CODES:
        return Sniffed("postgres", _PG_CODES[number][0])
    return Sniffed("postgres", f"StartupMessage 3.{code[3]}")


# -- Redis --------------------------------------------------------------------------------------

_MAX_DIGITS = 10


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MAX_INLINE = MAX_SNIFF
# Commands Redis clients commonly send first or inline; the first word of an inline line.
_REDIS_COMMANDS = _words(
    """
    ACL APPEND AUTH BGSAVE BITCOUNT BLPOP BRPOP CLIENT CLUSTER COMMAND CONFIG DBSIZE DECR DECRBY
    DEL DISCARD DUMP ECHO EVAL EVALSHA EXEC EXISTS EXPIRE EXPIREAT FLUSHALL FLUSHDB FUNCTION GEOADD
    GET GETDEL GETEX GETSET HDEL HELLO HEXISTS HGET HGETALL HINCRBY HKEYS HLEN HMGET HMSET HSET
    HVALS INCR INCRBY INFO KEYS LASTSAVE LINDEX LLEN LPOP LPUSH LRANGE LREM LSET LTRIM MEMORY MGET
    MONITOR MSET MULTI OBJECT PERSIST PEXPIRE PFADD PING PSUBSCRIBE PTTL PUBLISH PUNSUBSCRIBE QUIT
    RANDOMKEY READONLY RENAME RESET ROLE RPOP RPUSH SADD SAVE SCAN SCARD SCRIPT SELECT SET SETEX
    SETNX SINTER SISMEMBER SLOWLOG SMEMBERS SPOP SREM SSUBSCRIBE STRLEN SUBSCRIBE SUNSUBSCRIBE
    SWAPDB TIME TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH WAIT WATCH XADD XLEN XRANGE XREAD
    XREADGROUP ZADD ZCARD ZINCRBY ZRANGE ZRANK ZREM ZSCORE
    """
)
# memcached's text commands (case-sensitive, lower case): never taken for Redis inline commands.
_MEMCACHED_COMMANDS = _words(
    """
    get gets gat gats set add replace append prepend cas delete incr decr touch stats flush_all
    version verbosity quit shutdown mg ms md ma mn me lru_crawler slabs watch cache_memlimit
    """
)


def _resp(data: bytes) -> _Answer:
    if not data:
        return NEED_DATA
    if data[0] in b"*$":
        digits = data[1:]
        end = digits.find(b"\r")
        number = digits if end < 0 else digits[:end]
        if len(number) > _MAX_DIGITS or (number and not number.isdigit()):
            return _NO
        if end < 0:
            return NEED_DATA
        if not number:
            return _NO
        tail = digits[end:]
        if len(tail) < 2:
            return NEED_DATA
        if tail[1] != 0x0A:
            return _NO
        return Sniffed("redis", "array" if data[0] == ord("*") else "bulk string")
    return _inline(data)


def _inline(data: bytes) -> _Answer:
    end = data.find(b"\n")
    line = data if end < 0 else data[:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    if any((b < 0x20 and b != 0x09) or b >= 0x7F for b in line) or len(line) > _MAX_INLINE:
        return _NO
    parts = line.split(maxsplit=1)
    word = parts[0] if parts else b""
    if not word:  # blanks so far: Redis skips leading blanks, so a command may still follow
        return NEED_DATA if end < 0 else _NO
    word_done = end >= 0 or len(parts) > 1 or line[-1:] in (b" ", b"\t")
    text = word.decode("ascii")
    if word_done:
        if text.upper() not in _REDIS_COMMANDS or text in _MEMCACHED_COMMANDS:
            return _NO
    elif not any(c.startswith(text.upper()) for c in _REDIS_COMMANDS):
        return _NO
    if end < 0:
        return NEED_DATA
    return Sniffed("redis", f"inline {text.upper()}")


# -- MySQL (server first) -----------------------------------------------------------------------

_MYSQL_MIN = 10
_MYSQL_MAX = 4096
_MYSQL_VERSION_MAX = 100


def _mysql(data: bytes) -> _Answer:
    if len(data) >= 3:
        length = int.from_bytes(data[:3], "little")
        if length < _MYSQL_MIN or length > _MYSQL_MAX:
            return _NO
    if len(data) >= 4 and data[3] != 0:
        return _NO
    if len(data) >= 5 and data[4] != 10:
        return _NO
    version = data[5 : 5 + _MYSQL_VERSION_MAX + 1]
    nul = version.find(b"\x00")
    text = version if nul < 0 else version[:nul]
    if any(b < 0x20 or b >= 0x7F for b in text) or nul == 0:
        return _NO
    if nul < 0:
        return NEED_DATA if len(text) <= _MYSQL_VERSION_MAX else _NO
    return Sniffed("mysql", f"server {text.decode('ascii')}")


# -- verdicts -----------------------------------------------------------------------------------

_CLIENT: tuple[_Detector, ...] = (_h2, _http, _tls, _postgres, _resp)
_SERVER: tuple[_Detector, ...] = (_mysql,)


def sniff(data: bytes, side: Side = Side.CLIENT) -> Sniffed | NeedData:
    """The verdict on the first bytes one side sent, or ``NEED_DATA``."""
    data = data[:MAX_SNIFF]
    for detector in _CLIENT if side is Side.CLIENT else _SERVER:
        answer = detector(data)
        if isinstance(answer, Sniffed):
            return answer
        if answer is NEED_DATA:
            return UNKNOWN if len(data) >= MAX_SNIFF else NEED_DATA
    return UNKNOWN


def sniff_client(data: bytes) -> Sniffed | NeedData:
    return sniff(data, Side.CLIENT)


def sniff_server(data: bytes) -> Sniffed | NeedData:
    return sniff(data, Side.SERVER)


class Sniffer:
    """Bytes in as they arrive, a verdict out once one is certain.

    ``feed`` returns ``NEED_DATA`` until the verdict is known and the verdict from then on;
    ``finish`` is for when no more bytes will come soon (a pause, or the end of the stream):
    an undecided opening is then ``unknown``. ``buffered`` is every byte fed so far.
    """

    __slots__ = ("_data", "_side", "_verdict")

    def __init__(self, side: Side = Side.CLIENT) -> None:
        self._side = side
        self._data = bytearray()
        self._verdict: Sniffed | None = None

    @property
    def buffered(self) -> bytes:
        return bytes(self._data)

    @property
    def verdict(self) -> Sniffed | None:
        return self._verdict

    def feed(self, data: bytes) -> Sniffed | NeedData:
        self._data += data
        if self._verdict is None and data:
            found = sniff(bytes(self._data), self._side)
            if isinstance(found, Sniffed):
                self._verdict = found
        return NEED_DATA if self._verdict is None else self._verdict

    def finish(self) -> Sniffed:
        if self._verdict is None:
            self._verdict = UNKNOWN
        return self._verdict
