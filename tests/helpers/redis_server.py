"""A real redis-server for integration tests, in a temporary directory on a free loopback port.

Persistence is off (``--save ''``, ``--appendonly no``) and the working directory is a fresh
temporary one, so nothing outside it is touched. ``password`` turns on ``--requirepass``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.procs import REPO_ROOT, Proc, free_port, wait_for_port
from tests.helpers.wt import write_config

REDIS_APP = REPO_ROOT / "tests" / "apps" / "redisapp.py"

REDIS_PASSWORD = "redis-secret-pw"


@dataclass
class Redis:
    host: str
    port: int
    password: str | None
    dir: Path
    proc: Proc
    ca: Path | None = None  # with ``tls``: the test CA that signed the server's certificate

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def redis_bin() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


@contextlib.contextmanager
def redis_server(*, password: str | None = None, tls: bool = False) -> Iterator[Redis]:
    """A redis-server on 127.0.0.1; skips the test if none is installed.

    With ``tls`` it serves TLS only (no plain port), with a certificate for 127.0.0.1 signed by
    a test CA of its own (``Redis.ca``), and does not ask clients for certificates.
    """
    binary = redis_bin()
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="wt-redis-"))
    port = free_port()
    ca: Path | None = None
    listen = ["--port", str(port)]
    if tls:
        from wiretape.proxy.tls import issue_server_cert, make_test_ca

        ca, ca_key = make_test_ca(root / "ca", "redis test CA")
        cert, key = issue_server_cert(ca, ca_key, ["127.0.0.1", "localhost"], root / "ca")
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert)]
        listen += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(ca)]
        listen += ["--tls-auth-clients", "no"]
    args = [
        binary,
        *listen,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(root),
        "--daemonize",
        "no",
        "--proto-max-bulk-len",
        "1gb",
    ]
    if password is not None:
        args += ["--requirepass", password]
    proc = Proc(args, name="redis-server", port=port, log_dir=root)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield Redis("127.0.0.1", port, password, root, proc, ca)
    finally:
        proc.stop()
        shutil.rmtree(root, ignore_errors=True)


def configure_redisapp(
    dir: Path,
    server: Redis,
    *,
    dep: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """``dir/wiretape.yaml`` for tests/apps/redisapp.py with ``server`` as its ``cache``
    dependency (``dep``: more options of it), on a free port."""
    port = free_port()
    write_config(
        dir,
        command=f"{sys.executable} {REDIS_APP} {port}",
        port=port,
        health="/health",
        deps={"cache": {"protocol": "redis", "upstream": server.address, **(dep or {})}},
        env={
            "REDIS_HOST": "{deps.cache.host}",
            "REDIS_PORT": "{deps.cache.port}",
            "REDIS_PASSWORD": server.password or "",
            **(env or {}),
        },
        extra={"app": {"startup_timeout": 60}, **(extra or {})},
    )
