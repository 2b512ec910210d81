"""``protocol: auto`` in front of TLS servers: the app's TLS is terminated with the wiretape CA,
what runs inside is sniffed, and the recording holds it in clear, so it replays.

Three real TLS servers, each with a test CA of its own that the app does not know: memcached
(``-Z``: generic TCP inside TLS), a TLS-only redis-server (handed to the Redis proxy) and an
HTTPS service (handed to the HTTP proxy). The apps verify the server they talk to against the
default trust store, which wiretape points at its CA (SSL_CERT_FILE); wiretape verifies the real
servers against their test CAs (``tls.extra_ca``). Each recording is replayed with its server
stopped, the app again on TLS, and must pass.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.memcached_server import memcached_server
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.redis_server import REDIS_PASSWORD, configure_redisapp, redis_server
from tests.helpers.wt import Recording, get_json, write_config
from tests.integration.test_auto import all_mocks, record_twice, replay_passes, twice_replays
from tests.integration.test_e2e import start_upstream, tls_material

from wiretape.model import WireRequest
from wiretape.proxy.tls import make_test_ca

pytestmark = pytest.mark.integration

APPS = REPO_ROOT / "tests" / "apps"


def test_memcached_over_tls_is_generic_tcp_in_clear(tmp_path: Path) -> None:
    scenarios = ["kv/basic", "kv/cas", "kv/large", "kv/basic"]
    answers: list[tuple[int, Any]] = []
    with memcached_server(tls=True) as memcached:
        assert memcached.ca is not None
        ca = shutil.copy(memcached.ca, tmp_path / "memcached-ca.pem")  # outlives the server
        port = free_port()
        write_config(
            tmp_path,
            command=f"{sys.executable} {APPS / 'tcpapp.py'} {port}",
            port=port,
            health="/health",
            deps={
                "cache": {
                    "protocol": "auto",
                    "upstream": memcached.address,
                    "upstream_tls": "verify-full",
                }
            },
            env={"MEMCACHED": "{deps.cache}", "MEMCACHED_TLS": "1"},
            extra={"app": {"startup_timeout": 60}, "tls": {"extra_ca": str(ca)}},
        )
        with Recording(tmp_path) as rec:
            # Asked of the app itself, not through wiretape: where its memcached is.
            listener = get_json(f"http://127.0.0.1:{port}/deps")[1]["memcached"]
            broken_tls_openings(listener, tmp_path)
            answers = [get_json(f"{rec.url}/{path}") for path in scenarios]
            assert rec.stop() == 0, rec.output()
            output = rec.output()
    # memcached is stopped from here on.
    # The client that did not trust wiretape's certificate was named, with what to do about it.
    assert "refused wiretape's certificate" in output and "SSL_CERT_FILE" in output, output
    for path, (status, body) in zip(scenarios, answers, strict=True):
        assert status == 200, (path, body)
    assert answers[0][1]["result"] == [True, "alice", None, True, None]
    assert answers[1][1]["result"] == ["v1", True, False, "v2"]
    mocks = all_mocks(tmp_path)
    assert {m.protocol for m in mocks} == {"tcp"}
    sends = []
    for m in mocks:
        assert isinstance(m.request, WireRequest)
        sends.append(m.request.data["send"])
    # The commands inside TLS, not a handshake.
    assert "get tcpapp:user:1\r\n" in sends
    assert not any(isinstance(s, str) and s.startswith("\x16") for s in sends)
    replay_passes(tmp_path, len(scenarios))


def client_hello() -> bytes:
    """A real TLS client's first flight (a ClientHello), from memory BIOs."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def broken_tls_openings(address: str, tmp_path: Path) -> None:
    """Hostile or failing TLS at an ``auto`` listener while it records: each connection ends,
    and the listener goes on serving the app (its answers are checked afterwards)."""
    host, port = address.rsplit(":", 1)
    hello = client_hello()
    openings = [
        hello + b"\x15\x03\x03\x00\x02garbage" * 8,  # a ClientHello, then junk records
        hello[: len(hello) // 2],  # half a ClientHello, then the end
        b"\x16\x03\x01\x00\x05hello",  # a handshake record that is no ClientHello
    ]
    for opening in openings:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(opening)
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 10
            while sock.recv(65536) and time.monotonic() < deadline:
                pass  # whatever comes back, up to the end
    # A client that does not trust the wiretape CA refuses the certificate it is shown.
    untrusting = ssl.create_default_context(cafile=str(make_test_ca(tmp_path, "other CA")[0]))
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        untrusting.wrap_socket(sock, server_hostname="127.0.0.1")


def test_redis_over_tls_is_handed_to_the_redis_proxy(tmp_path: Path) -> None:
    scenarios = ["sync2/basic", "async3/basic", "sync3-py/pipeline"]
    with redis_server(password=REDIS_PASSWORD, tls=True) as server:
        assert server.ca is not None
        ca = shutil.copy(server.ca, tmp_path / "redis-ca.pem")
        configure_redisapp(
            tmp_path,
            server,
            dep={"protocol": "auto", "upstream_tls": "verify-full"},
            env={"REDIS_TLS": "1"},
            extra={"tls": {"extra_ca": str(ca)}},
        )
        with Recording(tmp_path) as rec:
            answers = [get_json(f"{rec.url}/{path}") for path in scenarios]
            assert rec.stop() == 0, rec.output()
    # redis-server is stopped from here on.
    for status, body in answers:
        assert status == 200, body
    assert answers[0][1]["result"][:3] == [True, "alice", None]
    assert len(answers[2][1]["result"]) == 300
    mocks = all_mocks(tmp_path)
    assert {m.protocol for m in mocks} == {"redis"}
    assert any("SET" in m.request.summary.upper() for m in mocks)
    replay_passes(tmp_path, len(scenarios))


def test_https_is_handed_to_the_http_proxy(tmp_path: Path) -> None:
    ca_cert, server_cert = tls_material(tmp_path / "tls")
    upstream = start_upstream(tmp_path / "logs", server_cert)
    try:
        # A host name, so the app sends it as its server name (SNI) and checks it.
        url = "https://localhost:{deps.up.port}"
        extra = {"tls": {"extra_ca": str(ca_cert)}}
        answer = record_twice(tmp_path, upstream.port or 0, url, extra)
    finally:
        upstream.stop()
    twice_replays(tmp_path, answer)
