"""Tests for wiretape.proxy.tls. Handshakes are real TLS over ``socket.socketpair()``."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wiretape.errors import SetupError
from wiretape.proxy import tls
from wiretape.proxy.tls import (
    CertificateAuthority,
    app_env,
    client_context,
    data_dir,
    issue_server_cert,
    make_test_ca,
)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca")


@pytest.fixture(autouse=True)
def _no_real_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WIRETAPE_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def trusting(cafile: Path, *, strict: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    if strict:
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str) -> str | None:
    """Run a TLS handshake and one round trip; return the ALPN protocol the client sees."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    server_error: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(a, server_side=True) as conn:
                conn.sendall(conn.recv(4).upper())
        except (OSError, ssl.SSLError) as exc:
            server_error.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client.wrap_socket(b, server_hostname=server_hostname) as conn:
            conn.sendall(b"ping")
            assert conn.recv(4) == b"PING"
            return conn.selected_alpn_protocol()
    finally:
        b.close()
        thread.join(10)
        a.close()
        assert not thread.is_alive()


# --- data_dir ---------------------------------------------------------------------------------


def test_data_dir_prefers_wiretape_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("WIRETAPE_HOME", str(tmp_path / "wt"))
    assert data_dir() == tmp_path / "wt"


def test_data_dir_uses_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "wiretape"


def test_data_dir_falls_back_to_home(tmp_path: Path) -> None:
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "wiretape"


def test_default_directory_is_under_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WIRETAPE_HOME", str(tmp_path / "wt"))
    authority = CertificateAuthority.load_or_create()
    assert authority.cert_path == tmp_path / "wt" / "ca" / "ca.pem"
    assert authority.cert_path.is_file()


# --- the CA on disk ---------------------------------------------------------------------------


def test_files_and_permissions(ca: CertificateAuthority, tmp_path: Path) -> None:
    assert ca.cert_path == tmp_path / "ca" / "ca.pem"
    assert mode(tmp_path / "ca") == 0o700
    assert mode(ca.key_path) == 0o600
    assert mode(ca.cert_path) == 0o644
    leftovers = [p.name for p in (tmp_path / "ca").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_permissions_ignore_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        authority = CertificateAuthority.load_or_create(tmp_path / "ca")
    finally:
        os.umask(old)
    assert mode(tmp_path / "ca") == 0o700
    assert mode(authority.key_path) == 0o600


def test_ca_certificate_shape(ca: CertificateAuthority) -> None:
    cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == f"wiretape CA ({socket.gethostname()})"[:64]
    assert cert.issuer == cert.subject
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=3649) <= lifetime <= dt.timedelta(days=3651)


def test_second_load_returns_the_same_ca(ca: CertificateAuthority, tmp_path: Path) -> None:
    pem, key = ca.cert_path.read_bytes(), ca.key_path.read_bytes()
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert again.certificate == ca.certificate
    assert again.cert_path.read_bytes() == pem
    assert again.key_path.read_bytes() == key


def test_two_directories_make_two_cas(tmp_path: Path) -> None:
    one = CertificateAuthority.load_or_create(tmp_path / "one")
    two = CertificateAuthority.load_or_create(tmp_path / "two")
    assert one.certificate != two.certificate


def test_concurrent_first_use_from_threads_makes_one_ca(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    results: list[bytes] = []
    lock = threading.Lock()

    def load() -> None:
        barrier.wait()
        authority = CertificateAuthority.load_or_create(tmp_path / "ca")
        with lock:
            results.append(authority.certificate.fingerprint(hashes.SHA256()))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8
    assert len(set(results)) == 1


def test_concurrent_first_use_from_processes_makes_one_ca(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; "
        "from wiretape.proxy.tls import CertificateAuthority; "
        "ca = CertificateAuthority.load_or_create(Path(sys.argv[1])); "
        "print(ca.certificate.serial_number)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "ca")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    assert len(set(outputs)) == 1
    on_disk = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.pem").read_bytes())
    assert outputs[0] == str(on_disk.serial_number)


def test_loose_key_permissions_are_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    os.chmod(ca.key_path, 0o644)
    with pytest.raises(SetupError) as info:
        CertificateAuthority.load_or_create(tmp_path / "ca")
    assert str(ca.key_path) in str(info.value)
    assert "chmod 600" in str(info.value)


def test_group_readable_key_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    os.chmod(ca.key_path, 0o640)
    with pytest.raises(SetupError, match="chmod 600"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


def test_certificate_without_key_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.key_path.unlink()
    with pytest.raises(SetupError, match="is missing"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


def test_key_without_certificate_gets_a_certificate(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    key = ca.key_path.read_bytes()
    ca.cert_path.unlink()
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert again.key_path.read_bytes() == key
    assert again.certificate.public_key() == ca.certificate.public_key()


def test_mismatched_pair_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    ca.cert_path.write_bytes(other.cert_path.read_bytes())
    with pytest.raises(SetupError, match="does not belong"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


def test_corrupt_key_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    ca.key_path.write_bytes(b"not a key")
    with pytest.raises(SetupError, match="cannot load the CA key"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


def test_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca").write_text("")
    with pytest.raises(SetupError, match="not a directory"):
        CertificateAuthority.load_or_create(tmp_path / "ca")


# --- leaf certificates ------------------------------------------------------------------------


def test_leaf_verifies_with_hostname_checking(ca: CertificateAuthority) -> None:
    client = trusting(ca.cert_path)
    assert client.check_hostname
    alpn = handshake(ca.server_context("api.example.test"), client, "api.example.test")
    assert alpn == "http/1.1"


def test_leaf_passes_strict_x509_verification(ca: CertificateAuthority) -> None:
    client = trusting(ca.cert_path, strict=True)
    assert handshake(ca.server_context("strict.example"), client, "strict.example") == "http/1.1"


def test_leaf_for_another_host_is_rejected(ca: CertificateAuthority) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(ca.server_context("a.example"), trusting(ca.cert_path), "b.example")


def test_leaf_is_rejected_by_a_client_that_does_not_trust_the_ca(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other, _ = make_test_ca(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(ca.server_context("a.example"), trusting(other), "a.example")


def test_ip_literal_gets_an_ip_san(ca: CertificateAuthority) -> None:
    context = ca.server_context("127.0.0.1")
    assert handshake(context, trusting(ca.cert_path), "127.0.0.1") == "http/1.1"


def test_bracketed_ipv6_gets_an_ip_san(ca: CertificateAuthority) -> None:
    context = ca.server_context("[::1]")
    assert context is ca.server_context("::1")
    assert handshake(context, trusting(ca.cert_path), "::1") == "http/1.1"


def test_leaf_certificate_shape(ca: CertificateAuthority) -> None:
    before = dt.datetime.now(dt.UTC)
    key, _ = tls._shared_leaf_key()
    leaf = tls._build_leaf_cert(["shop.example", "10.0.0.1"], ca.certificate, ca._key, key)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["shop.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert leaf.issuer == ca.certificate.subject
    assert abs(leaf.not_valid_before_utc - (before - dt.timedelta(days=1))) < dt.timedelta(
        minutes=1
    )
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=397)
    leaf.verify_directly_issued_by(ca.certificate)


def test_context_is_cached_per_host(ca: CertificateAuthority) -> None:
    first = ca.server_context("cache.example")
    assert ca.server_context("cache.example") is first
    assert ca.server_context("CACHE.Example.") is first
    assert ca.server_context("other.example") is not first


def test_cache_is_bounded_lru(ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "LEAF_CACHE_SIZE", 2)
    a = ca.server_context("a.example")
    b = ca.server_context("b.example")
    assert ca.server_context("a.example") is a
    ca.server_context("c.example")
    assert ca.server_context("a.example") is a
    assert ca.server_context("b.example") is not b


def test_concurrent_callers_share_one_context(ca: CertificateAuthority) -> None:
    barrier = threading.Barrier(8)
    got: list[ssl.SSLContext] = []
    lock = threading.Lock()

    def mint() -> None:
        barrier.wait()
        context = ca.server_context("race.example")
        with lock:
            got.append(context)

    threads = [threading.Thread(target=mint) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 8
    assert all(context is got[0] for context in got)


def test_minting_leaves_no_key_files_behind(ca: CertificateAuthority) -> None:
    ca.server_context("tidy.example")
    names = sorted(p.name for p in ca.directory.iterdir())
    assert names == ["ca-key.pem", "ca.lock", "ca.pem"]


def test_empty_hostname_is_rejected(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="no host name"):
        ca.server_context(".")


def test_unicode_hostname_is_encoded(ca: CertificateAuthority) -> None:
    context = ca.server_context("bücher.example")
    assert handshake(context, trusting(ca.cert_path), "xn--bcher-kva.example") == "http/1.1"


# --- bundle and env ---------------------------------------------------------------------------


def test_bundle_contains_system_roots_and_the_ca(ca: CertificateAuthority) -> None:
    path = ca.bundle_path()
    assert path == ca.directory / "bundle.pem"
    content = path.read_bytes()
    assert ca.cert_path.read_bytes() in content
    system = next(p for p in tls._system_root_files() if p.is_file())
    assert content.startswith(system.read_bytes())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(path))
    subjects = [c["subject"] for c in context.get_ca_certs()]
    assert len(subjects) > 1
    assert ((("commonName", f"wiretape CA ({socket.gethostname()})"[:64]),),) in [
        s[:1] for s in subjects
    ]


def test_bundle_is_rewritten_only_when_content_changes(
    ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    roots = tmp_path / "roots.pem"
    one, _ = make_test_ca(tmp_path / "r", "root one")
    two, _ = make_test_ca(tmp_path / "r", "root two")
    roots.write_bytes(one.read_bytes().rstrip(b"\n"))
    monkeypatch.setattr(tls, "_system_root_files", lambda: iter([roots]))
    path = ca.bundle_path()
    assert path.read_bytes() == one.read_bytes() + ca.cert_path.read_bytes()
    inode = path.stat().st_ino
    assert ca.bundle_path().stat().st_ino == inode
    roots.write_bytes(one.read_bytes() + two.read_bytes())
    assert ca.bundle_path().stat().st_ino != inode
    assert path.read_bytes() == roots.read_bytes() + ca.cert_path.read_bytes()


def test_bundle_does_not_repeat_a_ca_already_in_the_roots(
    ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    roots = tmp_path / "roots.pem"
    roots.write_bytes(ca.cert_path.read_bytes())
    monkeypatch.setattr(tls, "_system_root_files", lambda: iter([roots]))
    assert ca.bundle_path().read_bytes() == ca.cert_path.read_bytes()


def test_bundle_without_system_roots_is_the_ca(
    ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tls, "_system_root_files", lambda: iter([tmp_path / "missing.pem"]))
    assert ca.bundle_path().read_bytes() == ca.cert_path.read_bytes()


def test_app_env(ca: CertificateAuthority) -> None:
    bundle = str(ca.directory / "bundle.pem")
    assert app_env(ca) == {
        "SSL_CERT_FILE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
        "NODE_EXTRA_CA_CERTS": str(ca.cert_path),
        "PGSSLROOTCERT": str(ca.cert_path),
    }
    assert Path(bundle).is_file()


# --- upstream side ----------------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[ssl.SSLContext, Path]]:
    """A server context for 'upstream.test' and 127.0.0.1 from a CA nobody trusts."""
    ca_cert, ca_key = make_test_ca(tmp_path / "upstream-ca", "upstream CA")
    cert, key = issue_server_cert(
        ca_cert, ca_key, ["upstream.test", "127.0.0.1"], tmp_path / "upstream"
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(cert), str(key))
    server.set_alpn_protocols(["h2", "http/1.1"])
    yield server, ca_cert


def test_client_context_rejects_an_unknown_ca(upstream: tuple[ssl.SSLContext, Path]) -> None:
    server, _ = upstream
    client = client_context()
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(server, client, "upstream.test")


def test_client_context_accepts_the_extra_ca(upstream: tuple[ssl.SSLContext, Path]) -> None:
    server, ca_cert = upstream
    client = client_context(extra_ca=ca_cert)
    assert handshake(server, client, "upstream.test") == "http/1.1"
    assert handshake(server, client, "127.0.0.1") == "http/1.1"


def test_client_context_still_checks_the_hostname(upstream: tuple[ssl.SSLContext, Path]) -> None:
    server, ca_cert = upstream
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(server, client_context(extra_ca=ca_cert), "elsewhere.test")


def test_client_context_without_verification(upstream: tuple[ssl.SSLContext, Path]) -> None:
    server, _ = upstream
    client = client_context(verify=False)
    assert client.verify_mode == ssl.CERT_NONE and not client.check_hostname
    assert handshake(server, client, "upstream.test") == "http/1.1"


def test_client_context_trusts_system_roots() -> None:
    assert len(client_context().get_ca_certs()) > 10


def test_client_context_is_cached(tmp_path: Path) -> None:
    ca_cert, _ = make_test_ca(tmp_path)
    assert client_context() is client_context(verify=True)
    assert client_context(verify=False) is client_context(verify=False)
    assert client_context(verify=False) is not client_context()
    assert client_context(extra_ca=ca_cert) is client_context(extra_ca=ca_cert)
    assert client_context(extra_ca=ca_cert) is not client_context()


def test_client_context_with_missing_extra_ca(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(SetupError, match=r"nope\.pem"):
        client_context(extra_ca=missing)


# --- test helpers -----------------------------------------------------------------------------


def test_make_test_ca_files(tmp_path: Path) -> None:
    cert_path, key_path = make_test_ca(tmp_path, "My Test CA")
    assert (cert_path.name, key_path.name) == ("my-test-ca.pem", "my-test-ca-key.pem")
    assert mode(key_path) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "My Test CA"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_issue_server_cert_sans(tmp_path: Path) -> None:
    ca_cert, ca_key = make_test_ca(tmp_path / "ca")
    cert_path, key_path = issue_server_cert(
        ca_cert, ca_key, ["Svc.Test", "::1", "10.1.2.3"], tmp_path / "out"
    )
    assert mode(key_path) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["svc.test"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["::1", "10.1.2.3"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_cert.read_bytes()))


def test_issue_server_cert_needs_a_name(tmp_path: Path) -> None:
    ca_cert, ca_key = make_test_ca(tmp_path / "ca")
    with pytest.raises(ValueError, match="at least one hostname"):
        issue_server_cert(ca_cert, ca_key, [], tmp_path / "out")
