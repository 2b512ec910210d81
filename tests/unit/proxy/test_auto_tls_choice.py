"""Which TLS connections an ``auto`` dependency terminates, and how each protocol found inside
reaches the server (``wiretape.proxy.auto``)."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from wiretape.config import DepConfig
from wiretape.protocols.sniff import Side, Sniffed, Sniffer
from wiretape.proxy.auto import as_protocol, terminates
from wiretape.proxy.streams import refused_certificate
from wiretape.proxy.tls import CertificateAuthority, make_test_ca

DEP = DepConfig(name="legacy", protocol="auto", upstream="10.0.0.7:7000")


def hello(alpn: tuple[str, ...] = (), sni: str | None = None) -> Sniffed:
    return Sniffed("tls", "ClientHello", sni=sni, alpn=alpn)


@pytest.mark.parametrize(
    ("alpn", "expected"),
    [
        ((), True),  # Redis, memcached, most TCP clients offer none
        (("http/1.1",), True),
        (("h2", "http/1.1"), True),  # curl, browsers: HTTP/1.1 is chosen
        (("h2",), False),  # HTTP/2 only: not read by wiretape, relayed untouched
        (("postgresql",), False),  # PostgreSQL's direct TLS
        (("mqtt",), False),
    ],
)
def test_a_client_hello_is_terminated_when_wiretape_reads_what_it_offers(
    alpn: tuple[str, ...], expected: bool
) -> None:
    assert terminates(DEP, hello(alpn)) is expected


def test_declined_or_not_tls_is_never_terminated() -> None:
    assert not terminates(dataclasses.replace(DEP, client_tls="decline"), hello())
    assert not terminates(DEP, Sniffed("redis", "RESP array"))
    assert not terminates(DEP, Sniffed("unknown"))


def test_terminates_what_the_sniffer_reads_from_a_real_client_hello() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    verdicts = []
    for alpn in ([], ["h2", "http/1.1"], ["h2"]):
        if alpn:
            context.set_alpn_protocols(alpn)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = context.wrap_bio(incoming, outgoing, server_hostname="db.internal")
        with pytest.raises(ssl.SSLWantReadError):
            client.do_handshake()
        verdict = Sniffer(Side.CLIENT).feed(outgoing.read())
        assert isinstance(verdict, Sniffed) and verdict.protocol == "tls"
        assert verdict.sni == "db.internal"
        verdicts.append(terminates(DEP, verdict))
    assert verdicts == [True, True, False]


def test_inside_tls_http_goes_to_an_https_upstream() -> None:
    assert as_protocol(DEP, "http").upstream == "http://10.0.0.7:7000"
    assert as_protocol(DEP, "http", tls=True).upstream == "https://10.0.0.7:7000"
    plain = dataclasses.replace(DEP, upstream_tls="disable")
    assert as_protocol(plain, "http", tls=True).upstream == "http://10.0.0.7:7000"


def test_inside_tls_redis_requires_tls_toward_the_server() -> None:
    assert as_protocol(DEP, "redis").upstream_tls == "prefer"
    assert as_protocol(DEP, "redis", tls=True).upstream_tls == "require"
    checked = dataclasses.replace(DEP, upstream_tls="verify-full")
    assert as_protocol(checked, "redis", tls=True).upstream_tls == "verify-full"
    plain = dataclasses.replace(DEP, upstream_tls="disable")
    assert as_protocol(plain, "redis", tls=True).upstream_tls == "disable"
    assert as_protocol(DEP, "redis", tls=True).protocol == "redis"


def test_an_app_that_does_not_trust_the_wiretape_ca_is_told_apart(tmp_path: Path) -> None:
    """The handshake error a server sees when the client refuses its certificate, from a real
    handshake (memory BIOs): the warning that names the CA variables depends on it."""
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = ca.loopback_context(alpn=("http/1.1",)).wrap_bio(
        to_server, from_server, server_side=True
    )
    untrusting = ssl.create_default_context(cafile=str(make_test_ca(tmp_path, "other CA")[0]))
    client = untrusting.wrap_bio(to_client, from_client, server_hostname="localhost")
    failure: ssl.SSLError | None = None
    for _ in range(5):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                if side is server and failure is None:
                    failure = exc
        to_server.write(from_client.read())
        to_client.write(from_server.read())
    assert failure is not None and refused_certificate(failure), failure
    assert not refused_certificate(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]"))
    assert not refused_certificate(ConnectionResetError())
