"""A real redis-server for integration tests, in a temporary directory on a free loopback port.

Persistence is off (``--save ''``, ``--appendonly no``) and the working directory is a fresh
temporary one, so nothing outside it is touched. ``password`` turns on ``--requirepass``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.helpers.procs import Proc, free_port, wait_for_port

REDIS_PASSWORD = "redis-secret-pw"


@dataclass
class Redis:
    host: str
    port: int
    password: str | None
    dir: Path
    proc: Proc

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def redis_bin() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


@contextlib.contextmanager
def redis_server(*, password: str | None = None) -> Iterator[Redis]:
    """A redis-server on 127.0.0.1; skips the test if none is installed."""
    binary = redis_bin()
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="wt-redis-"))
    port = free_port()
    args = [
        binary,
        "--port",
        str(port),
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
        yield Redis("127.0.0.1", port, password, root, proc)
    finally:
        proc.stop()
        shutil.rmtree(root, ignore_errors=True)
