"""Protocol sniffing: verdicts on real openings, and the properties the proxy relies on.

Every prefix of a valid opening must give ``NEED_DATA`` or the final verdict; random bytes never
raise; a ``Sniffer`` fed in pieces agrees with ``sniff`` on the whole input.
"""

from __future__ import annotations

import ssl
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fuzz.mutations import mutated

from wiretape.protocols.sniff import (
    MAX_SNIFF,
    NEED_DATA,
    Side,
    Sniffed,
    Sniffer,
    parse_client_hello,
    sniff,
    sniff_client,
    sniff_server,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def client_hello(server_name: str | None, alpn: list[str] | None) -> bytes:
    """The ClientHello Python's TLS client sends first."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if server_name is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def pg_message(code: int, params: dict[str, str] | None = None) -> bytes:
    body = struct.pack("!I", code)
    if params is not None:
        for key, value in params.items():
            body += key.encode() + b"\0" + value.encode() + b"\0"
        body += b"\0"
    elif code == 80877102:
        body += struct.pack("!II", 4242, 0xDEADBEEF)
    return struct.pack("!I", len(body) + 4) + body


def mysql_greeting(version: str = "8.0.36") -> bytes:
    payload = (
        b"\x0a"
        + version.encode()
        + b"\0"
        + struct.pack("<I", 17)
        + b"abcdefgh\0"
        + struct.pack("<HBHH", 0xFFFF, 0x21, 2, 0xDFFF)
        + bytes([21])
        + b"\0" * 10
        + b"ijklmnopqrst\0mysql_native_password\0"
    )
    return len(payload).to_bytes(3, "little") + b"\0" + payload


STARTUP = pg_message(196608, {"user": "app", "database": "app", "client_encoding": "UTF8"})
HELLO_H2 = client_hello("api.example.test", ["h2", "http/1.1"])
HELLO_PG = client_hello("db.example.test", ["postgresql"])
HELLO_PLAIN = client_hello(None, None)

CLIENT_OPENINGS: list[tuple[bytes, str, str]] = [
    (b"GET /v1/rates?base=EUR HTTP/1.1\r\nHost: x\r\n\r\n", "http", "GET"),
    (b"POST /api HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}", "http", "POST"),
    (b"PROPFIND /dav/ HTTP/1.1\r\n\r\n", "http", "PROPFIND"),
    (b"CONNECT db.example.test:443 HTTP/1.1\r\n\r\n", "http", "CONNECT"),
    (b"OPTIONS * HTTP/1.1\r\n\r\n", "http", "OPTIONS"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04", "h2", "prior-knowledge preface"),
    (STARTUP, "postgres", "StartupMessage 3.0"),
    (pg_message(196610, {"user": "u"}), "postgres", "StartupMessage 3.2"),
    (pg_message(80877103), "postgres", "SSLRequest"),
    (pg_message(80877104), "postgres", "GSSENCRequest"),
    (pg_message(80877102), "postgres", "CancelRequest"),
    (b"*1\r\n$4\r\nPING\r\n", "redis", "array"),
    (b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "redis", "array"),
    (b"$4\r\nPING\r\n", "redis", "bulk string"),
    (b"PING\r\n", "redis", "inline PING"),
    (b"ping\n", "redis", "inline PING"),
    (b"GET user:1\r\n", "redis", "inline GET"),
    (b"AUTH default secret\r\n", "redis", "inline AUTH"),
    (HELLO_H2, "tls", "ClientHello"),
    (HELLO_PG, "tls", "ClientHello"),
    (HELLO_PLAIN, "tls", "ClientHello"),
]

UNKNOWN_OPENINGS = [
    b"get user:1\r\n",  # memcached text: shares the word with Redis, but lower case
    b"set k 0 0 5\r\nhello\r\n",
    b"gets a b c\r\n",
    b"incr counter 1\r\n",
    b"version\r\n",
    b"stats\r\n",
    b"\x80\x00\x00\x05",  # memcached binary protocol magic
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"HELO mail.example.test\r\n",
    b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # a handshake record that is no ClientHello
    b"\x00\x00\x00\x08\x00\x00\x00\x00",  # a length and an unknown code
]


def test_client_openings_are_recognized() -> None:
    for data, protocol, detail in CLIENT_OPENINGS:
        verdict = sniff_client(data)
        assert isinstance(verdict, Sniffed), data[:40]
        assert (verdict.protocol, verdict.detail) == (protocol, detail), data[:40]


def test_unknown_openings_are_unknown() -> None:
    for data in UNKNOWN_OPENINGS:
        assert sniff_client(data) == Sniffed("unknown"), data


def test_tls_reports_server_name_and_alpn() -> None:
    h2 = sniff_client(HELLO_H2)
    assert isinstance(h2, Sniffed)
    assert h2.sni == "api.example.test"
    assert h2.alpn == ("h2", "http/1.1")
    assert h2.hint == "h2"
    pg = sniff_client(HELLO_PG)
    assert isinstance(pg, Sniffed) and pg.hint == "postgresql" and pg.sni == "db.example.test"
    plain = sniff_client(HELLO_PLAIN)
    assert isinstance(plain, Sniffed) and plain.sni is None and plain.hint is None


def test_a_client_hello_split_over_records_is_reassembled() -> None:
    record = HELLO_H2
    assert record[0] == 0x16
    body = record[5 : 5 + int.from_bytes(record[3:5], "big")]
    half = len(body) // 2
    split = b"".join(
        b"\x16" + record[1:3] + len(part).to_bytes(2, "big") + part
        for part in (body[:half], body[half:])
    )
    verdict = sniff_client(split)
    assert isinstance(verdict, Sniffed) and verdict.sni == "api.example.test"
    assert sniff_client(split[: len(split) - 1]) is NEED_DATA


def test_parse_client_hello_survives_truncation() -> None:
    body = HELLO_H2[9:]
    for cut in range(0, len(body), 7):
        sni, alpn = parse_client_hello(body[:cut])
        assert sni in (None, "api.example.test")
        assert all(isinstance(p, str) for p in alpn)


def test_mysql_greeting_is_told_from_the_server_side() -> None:
    for version in ("8.0.36", "5.5.5-10.11.6-MariaDB-0+deb12u1"):
        verdict = sniff_server(mysql_greeting(version))
        assert verdict == Sniffed("mysql", f"server {version}")
    assert sniff_server(b"220 smtp.example.test ESMTP\r\n") == Sniffed("unknown")
    assert sniff_server(b"+OK\r\n") == Sniffed("unknown")
    # A greeting is not a client opening.
    assert sniff_client(mysql_greeting()) == Sniffed("unknown")


def test_need_data_until_certain() -> None:
    assert sniff_client(b"") is NEED_DATA
    assert sniff_client(b"GET") is NEED_DATA
    assert sniff_client(b"GET /") is NEED_DATA
    assert sniff_client(b"GET /a HTTP") is NEED_DATA
    assert sniff_client(b"GET /a HTTP/") == Sniffed("http", "GET")  # the rest cannot change it
    assert sniff_client(b"PING") is NEED_DATA
    assert sniff_client(b"PING\r") is NEED_DATA
    assert sniff_client(b"\x00\x00\x00") is NEED_DATA
    assert sniff_client(b"*12") is NEED_DATA
    assert sniff_client(HELLO_H2[:100]) is NEED_DATA
    assert sniff_server(mysql_greeting()[:7]) is NEED_DATA


def test_undecided_openings_end_at_the_limit() -> None:
    long_target = b"GET /" + b"a" * MAX_SNIFF
    assert sniff_client(long_target[: MAX_SNIFF - 1]) is NEED_DATA
    assert sniff_client(long_target) == Sniffed("unknown")
    assert sniff_client(long_target + b" HTTP/1.1\r\n") == Sniffed("unknown")


def test_sniffer_keeps_bytes_and_finishes_undecided() -> None:
    sniffer = Sniffer()
    assert sniffer.feed(b"GE") is NEED_DATA
    assert sniffer.feed(b"T / HT") is NEED_DATA
    assert sniffer.buffered == b"GET / HT"
    assert sniffer.verdict is None
    assert sniffer.finish() == Sniffed("unknown")
    assert sniffer.feed(b"TP/1.1\r\n") == Sniffed("unknown")  # a verdict is final
    decided = Sniffer()
    assert decided.feed(b"GET / HTTP/1.1\r\n") == Sniffed("http", "GET")
    assert decided.finish() == Sniffed("http", "GET")


# -- properties ---------------------------------------------------------------------------------


@PROPS
@given(st.binary(max_size=300), st.sampled_from(Side))
def test_random_bytes_never_raise(data: bytes, side: Side) -> None:
    verdict = sniff(data, side)
    assert verdict is NEED_DATA or isinstance(verdict, Sniffed)


def _prefix_property(data: bytes, side: Side) -> None:
    final = sniff(data, side)
    for end in range(len(data)):
        early = sniff(data[:end], side)
        assert early is NEED_DATA or early == final, (data[:end], early, final)


@pytest.mark.parametrize(
    ("data", "protocol"), [(d, p) for d, p, _ in CLIENT_OPENINGS], ids=lambda v: str(v)[:20]
)
def test_every_prefix_of_an_opening_needs_data_or_is_right(data: bytes, protocol: str) -> None:
    final = sniff_client(data)
    assert isinstance(final, Sniffed) and final.protocol == protocol
    _prefix_property(data, Side.CLIENT)


def test_every_prefix_of_a_greeting_needs_data_or_is_right() -> None:
    _prefix_property(mysql_greeting(), Side.SERVER)
    _prefix_property(mysql_greeting("5.5.5-10.11.6-MariaDB"), Side.SERVER)


INTERESTING = [b"\r\n", b" ", b"\x00", b"HTTP/", b"*", b"$", b"\x16\x03\x01", b"\n", b"PING"]
openings = st.sampled_from(
    [d for d, _, _ in CLIENT_OPENINGS] + UNKNOWN_OPENINGS + [mysql_greeting()]
)


@PROPS
@given(st.data())
def test_mutated_openings_keep_the_prefix_property(data: st.DataObject) -> None:
    base = data.draw(openings)
    mutant = data.draw(mutated(base, INTERESTING, truncate=True))
    side = data.draw(st.sampled_from(Side))
    _prefix_property(mutant[:600], side)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


@PROPS
@given(st.data(), st.lists(st.integers(0, 10_000), max_size=12))
def test_feeding_in_pieces_equals_feeding_whole(data: st.DataObject, cuts: list[int]) -> None:
    base = data.draw(openings)
    whole = data.draw(st.one_of(st.just(base), mutated(base, INTERESTING, truncate=True)))
    side = data.draw(st.sampled_from(Side))
    sniffer = Sniffer(side)
    verdict = NEED_DATA
    for piece in _split(whole, cuts):
        verdict = sniffer.feed(piece)
    assert verdict == sniff(whole, side)
    assert sniffer.buffered == whole


@PROPS
@given(st.binary(max_size=200), st.sampled_from(Side))
def test_feeding_random_bytes_one_at_a_time_equals_whole(data: bytes, side: Side) -> None:
    sniffer = Sniffer(side)
    verdict = NEED_DATA
    for i in range(len(data)):
        verdict = sniffer.feed(data[i : i + 1])
    assert verdict == sniff(data, side)


@pytest.mark.parametrize("data", [b"\t", b" ", b" \t", b"\ta", b"  GE"])
def test_leading_blanks_wait_for_the_inline_command(data: bytes) -> None:
    # Redis skips blanks before an inline command, so a verdict waits for the word after them.
    assert sniff(data) is NEED_DATA


def test_a_blank_line_is_not_redis() -> None:
    assert sniff(b" \r\n") == Sniffed("unknown")
