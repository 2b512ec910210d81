"""TLS interception: a per-installation CA, leaf certificates minted on demand, upstream contexts.

How this works:

- ``CertificateAuthority.load_or_create`` keeps ``ca.pem`` and ``ca-key.pem`` in a 0700
  directory. The key is created 0600 with ``O_EXCL``; both files are written to a temporary name
  and renamed, so a reader sees a whole file or none. The key is written before the certificate.
  First use happens under an exclusive ``flock`` on ``ca.lock``, so processes racing to create the
  CA end up sharing one. Later loads read without the lock, because renamed files never change.
- ``server_context(host)`` signs a leaf certificate for ``host`` with the CA and wraps it in a
  server ``SSLContext``. Every leaf of the process shares one EC P-256 key, generated on first
  use and serialized once, so minting costs one signature. A key per host would add no safety:
  whoever can read this process's leaf key can read the CA key too.
  ``ssl`` only loads certificates from files, so the leaf and its key are written to a 0600
  temporary file inside the CA directory, loaded and unlinked at once. Contexts are kept in an LRU
  cache by host.
- ``bundle_path`` writes the system roots plus the CA to one PEM file for clients that read a
  single bundle (``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``).
- ``client_context`` is what wiretape itself uses to reach the real upstream, verified by default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import re
import secrets
import socket
import ssl
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wiretape.errors import SetupError

__all__ = [
    "CertificateAuthority",
    "app_env",
    "client_context",
    "data_dir",
    "issue_server_cert",
    "make_test_ca",
]

CA_CERT_NAME = "ca.pem"
CA_KEY_NAME = "ca-key.pem"
BUNDLE_NAME = "bundle.pem"
LOCK_NAME = "ca.lock"
DEBIAN_CA_FILE = Path("/etc/ssl/certs/ca-certificates.crt")

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=397)
BACKDATE = dt.timedelta(days=1)
LEAF_CACHE_SIZE = 1024
ALPN = ["http/1.1"]
LOOPBACK = " loopback"  # cache key of the leaf for wiretape's own listeners

SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def data_dir() -> Path:
    """Where wiretape keeps per-installation state such as the CA."""
    home = os.environ.get("WIRETAPE_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "wiretape"
    return Path.home() / ".local" / "share" / "wiretape"


class CertificateAuthority:
    """The per-installation CA that signs the certificates wiretape shows to the app."""

    def __init__(self, directory: Path, certificate: x509.Certificate, key: SigningKey) -> None:
        self.directory = directory
        self.cert_path = directory / CA_CERT_NAME
        self.key_path = directory / CA_KEY_NAME
        self.certificate = certificate
        self._key = key
        self._cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        self._contexts: OrderedDict[str, tuple[ssl.SSLContext, dt.datetime]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def load_or_create(cls, directory: Path | None = None) -> CertificateAuthority:
        """Load the CA from ``directory`` (default ``data_dir()/"ca"``); create it on first use."""
        directory = directory if directory is not None else data_dir() / "ca"
        _make_private_dir(directory)
        cert_path, key_path = directory / CA_CERT_NAME, directory / CA_KEY_NAME
        if cert_path.exists() and key_path.exists():
            return cls._load(directory)
        with _exclusive_lock(directory / LOCK_NAME):
            if not key_path.exists():
                if cert_path.exists():
                    raise SetupError(
                        f"{cert_path} exists but its key {key_path} is missing. Delete {cert_path} "
                        "so wiretape can create a new CA, then trust the new certificate."
                    )
                _write_atomic(
                    key_path, _private_pem(ec.generate_private_key(ec.SECP256R1())), 0o600
                )
            if not cert_path.exists():
                key = _read_key(key_path)
                cert = _build_ca_cert(key, f"wiretape CA ({socket.gethostname()})")
                _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
            return cls._load(directory)

    @classmethod
    def _load(cls, directory: Path) -> CertificateAuthority:
        cert_path, key_path = directory / CA_CERT_NAME, directory / CA_KEY_NAME
        key = _read_key(key_path)
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SetupError(
                f"cannot read the wiretape CA certificate {cert_path}: {exc}. Delete {directory} "
                "so wiretape can create a new CA, then trust the new certificate."
            ) from exc
        if _public_der(cert.public_key()) != _public_der(key.public_key()):
            raise SetupError(
                f"{cert_path} does not belong to the key {key_path}. Restore the matching pair, or "
                f"delete {directory} so wiretape can create a new CA."
            )
        if cert.not_valid_after_utc <= _now():
            raise SetupError(
                f"the wiretape CA {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}. "
                f"Delete {directory} so wiretape can create a new CA, then trust the new one."
            )
        return cls(directory, cert, key)

    def server_context(self, hostname: str) -> ssl.SSLContext:
        """A server context presenting a certificate for ``hostname`` signed by this CA."""
        host = _normalize_host(hostname)
        now = _now()
        with self._lock:
            hit = self._contexts.get(host)
            if hit is not None and hit[1] > now:
                self._contexts.move_to_end(host)
                return hit[0]
        leaf_key, leaf_key_pem = _shared_leaf_key()
        leaf = _build_leaf_cert([host], self.certificate, self._key, leaf_key)
        context = self._load_server_context(leaf, leaf_key_pem)
        with self._lock:
            hit = self._contexts.get(host)
            if hit is not None and hit[1] > now:
                return hit[0]
            self._contexts[host] = (context, leaf.not_valid_after_utc)
            self._contexts.move_to_end(host)
            while len(self._contexts) > LEAF_CACHE_SIZE:
                self._contexts.popitem(last=False)
        return context

    def loopback_context(self, alpn: Sequence[str] = ("postgresql",)) -> ssl.SSLContext:
        """A server context for wiretape's own listeners: valid for localhost, 127.0.0.1 and ::1.

        Database clients that verify the server (``sslmode=verify-full``) connect to these names.
        ``alpn``: the protocols the server may choose from what the client offers (PostgreSQL's
        direct TLS asks for ``postgresql``).
        """
        hosts = ["localhost", "127.0.0.1", "::1"]
        key = LOOPBACK + " ".join(alpn)
        now = _now()
        with self._lock:
            hit = self._contexts.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        leaf_key, leaf_key_pem = _shared_leaf_key()
        leaf = _build_leaf_cert(hosts, self.certificate, self._key, leaf_key)
        context = self._load_server_context(leaf, leaf_key_pem, alpn=list(alpn))
        with self._lock:
            self._contexts[key] = (context, leaf.not_valid_after_utc)
        return context

    def _load_server_context(
        self, leaf: x509.Certificate, key_pem: bytes, *, alpn: list[str] = ALPN
    ) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(alpn)
        fd, name = tempfile.mkstemp(prefix=".leaf-", suffix=".pem", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(leaf.public_bytes(serialization.Encoding.PEM) + key_pem)
            context.load_cert_chain(name)
        finally:
            os.unlink(name)
        return context

    def bundle_path(self) -> Path:
        """A PEM bundle of the system roots plus this CA, for clients that read one file."""
        path = self.directory / BUNDLE_NAME
        system = _system_roots()
        ca_pem = self._cert_pem
        if ca_pem.strip() in system:
            content = system
        else:
            if system and not system.endswith(b"\n"):
                system += b"\n"
            content = system + ca_pem
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != content:
            _write_atomic(path, content, 0o644)
        return path


def client_context(*, verify: bool = True, extra_ca: Path | None = None) -> ssl.SSLContext:
    """The context wiretape uses to reach a real upstream; cached per ``(verify, extra_ca)``."""
    key = (verify, extra_ca)
    with _client_lock:
        context = _client_contexts.get(key)
        if context is None:
            context = _make_client_context(verify, extra_ca)
            _client_contexts[key] = context
        return context


def app_env(ca: CertificateAuthority) -> dict[str, str]:
    """Environment variables that make common TLS clients in the app trust ``ca``."""
    bundle = str(ca.bundle_path())
    cert = str(ca.cert_path)
    return {
        "SSL_CERT_FILE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
        "NODE_EXTRA_CA_CERTS": cert,
        "PGSSLROOTCERT": cert,
    }


def make_test_ca(directory: Path, name: str = "test CA") -> tuple[Path, Path]:
    """Create an independent CA named ``name`` in ``directory``; returns (cert, key) paths.

    For tests and examples: it stands in for a real upstream's CA, unknown to the system.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stem = _slug(name)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build_ca_cert(key, name)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    _write_atomic(key_path, _private_pem(key), 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def issue_server_cert(
    ca_cert: Path, ca_key: Path, hostnames: Sequence[str], out_dir: Path
) -> tuple[Path, Path]:
    """A server certificate for ``hostnames`` (DNS names or IPs) signed by the given CA.

    For tests and examples; returns (cert, key) paths in ``out_dir``.
    """
    if not hostnames:
        raise ValueError("issue_server_cert needs at least one hostname")
    out_dir.mkdir(parents=True, exist_ok=True)
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    issuer_key = _read_key(ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build_leaf_cert([_normalize_host(h) for h in hostnames], issuer, issuer_key, key)
    stem = _slug(hostnames[0])
    cert_path, key_path = out_dir / f"{stem}.pem", out_dir / f"{stem}-key.pem"
    _write_atomic(key_path, _private_pem(key), 0o600)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


# --- certificates -----------------------------------------------------------------------------


def _build_ca_cert(key: SigningKey, common_name: str) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wiretape"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    start = _now() - BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, _hash_for(key))
    )


def _build_leaf_cert(
    hosts: Sequence[str],
    issuer: x509.Certificate,
    issuer_key: SigningKey,
    key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """``hosts`` are already normalized: lower-case ASCII DNS names or IP literals."""
    sans: list[x509.GeneralName] = []
    for host in hosts:
        ip = _ip(host)
        sans.append(x509.IPAddress(ip) if ip is not None else x509.DNSName(host))
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wiretape")]
    if len(hosts[0]) <= 64:
        attrs.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]))
    start = _now() - BACKDATE
    end = min(start + LEAF_VALIDITY, issuer.not_valid_after_utc)
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(aki, critical=False)
        .sign(issuer_key, _hash_for(issuer_key))
    )


_leaf_key: tuple[ec.EllipticCurvePrivateKey, bytes] | None = None
_leaf_key_lock = threading.Lock()


def _shared_leaf_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    global _leaf_key
    with _leaf_key_lock:
        if _leaf_key is None:
            key = ec.generate_private_key(ec.SECP256R1())
            _leaf_key = (key, _private_pem(key))
        return _leaf_key


def _hash_for(key: SigningKey) -> hashes.SHA256 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _private_pem(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read_key(path: Path) -> SigningKey:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SetupError(f"cannot read the CA key {path}: {exc}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise SetupError(
            f"the CA key {path} is readable by other users (mode {stat.S_IMODE(mode):03o}). "
            f"Run `chmod 600 {path}`, then try again."
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SetupError(
            f"cannot load the CA key {path}: {exc}. Restore it, or delete {path.parent} so "
            "wiretape can create a new CA, then trust the new certificate."
        ) from exc
    if not isinstance(key, SigningKey):
        raise SetupError(
            f"the CA key {path} is a {type(key).__name__}, which cannot sign certificates. "
            "Use an RSA, EC or Ed25519 key."
        )
    return key


# --- hosts ------------------------------------------------------------------------------------


def _normalize_host(hostname: str) -> str:
    host = hostname.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    ip = _ip(host)
    if ip is not None:
        return str(ip)
    host = host.rstrip(".").lower()
    if not host:
        raise ValueError(f"no host name to issue a certificate for: {hostname!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"not a valid host name: {hostname!r}") from exc
    return host


def _ip(host: str) -> IpAddress | None:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    return ip


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "cert"


# --- trust stores -----------------------------------------------------------------------------


def _system_roots() -> bytes:
    for candidate in _system_root_files():
        try:
            return candidate.read_bytes()
        except OSError:
            continue
    return b""


def _system_root_files() -> Iterator[Path]:
    try:
        import certifi
    except ImportError:
        pass
    else:
        yield Path(certifi.where())
    paths = ssl.get_default_verify_paths()
    for name in (paths.cafile, paths.openssl_cafile):
        if name:
            yield Path(name)
    yield DEBIAN_CA_FILE


_client_contexts: dict[tuple[bool, Path | None], ssl.SSLContext] = {}
_client_lock = threading.Lock()


def _make_client_context(verify: bool, extra_ca: Path | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        with contextlib.suppress(ImportError):
            import certifi

            context.load_verify_locations(cafile=certifi.where())
        if extra_ca is not None:
            try:
                context.load_verify_locations(cafile=str(extra_ca))
            except (OSError, ssl.SSLError) as exc:
                raise SetupError(
                    f"cannot load the extra CA certificates from {extra_ca}: {exc}. "
                    "Point it at a readable PEM file of CA certificates."
                ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    return context


# --- files ------------------------------------------------------------------------------------


def _make_private_dir(directory: Path) -> None:
    if directory.is_dir():
        return
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)
    except FileExistsError:
        if not directory.is_dir():
            raise SetupError(
                f"{directory} exists and is not a directory; move it away so wiretape can keep "
                "its CA there, or set WIRETAPE_HOME to another directory."
            ) from None
    except OSError as exc:
        raise SetupError(
            f"cannot create the CA directory {directory}: {exc}. "
            "Set WIRETAPE_HOME to a writable directory."
        ) from exc


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a fresh ``O_EXCL`` file of ``mode`` and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
