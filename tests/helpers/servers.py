"""Real database servers for integration tests, each in a temporary directory on a free port.

PostgreSQL is created with ``initdb`` (SCRAM authentication, a password for the test user) and run
by the ``postgres`` system user when the tests run as root, since PostgreSQL refuses to run as
root. Nothing here starts a system service or touches a system data directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.helpers.procs import Proc, free_port, wait_for_port

PG_USER = "wiretape"
PG_PASSWORD = "pg-secret-pw"
PG_DB = "app"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_service_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def _give_to_service_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str
    bin_dir: Path
    data_dir: Path
    ca: Path | None = None  # the test CA that signed the server certificate (ssl=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def dsn(self, host: str | None = None, port: int | None = None, **extra: str) -> str:
        parts = [
            f"host={host or self.host}",
            f"port={port or self.port}",
            f"user={self.user}",
            f"password={self.password}",
            f"dbname={self.database}",
        ]
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)

    def url(
        self, host: str | None = None, port: int | None = None, scheme: str = "postgresql"
    ) -> str:
        return (
            f"{scheme}://{self.user}:{self.password}@{host or self.host}:{port or self.port}/"
            f"{self.database}"
        )

    def psql(self, sql: str) -> str:
        env = dict(os.environ, PGPASSWORD=self.password)
        out = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                self.database,
                "-c",
                sql,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout


@contextlib.contextmanager
def postgres_server(*, ssl: bool = False, hba: list[str] | None = None) -> Iterator[Postgres]:
    """A PostgreSQL server on 127.0.0.1 with SCRAM auth; skips the test if none is installed."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed (.ci/run installs them)")
    root = Path(tempfile.mkdtemp(prefix="wt-pg-"))
    os.chmod(root, 0o755)
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    _give_to_service_user(root)
    subprocess.run(
        _as_service_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    if hba is not None:
        lines = [*hba, "host all all 127.0.0.1/32 scram-sha-256"]
        (data / "pg_hba.conf").write_text("\n".join(lines) + "\n")
    opts = [
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={root}",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=50",
        "-c",
        "shared_buffers=32MB",
    ]
    ca_cert: Path | None = None
    if ssl:
        from wiretape.proxy.tls import issue_server_cert, make_test_ca

        ca_cert, ca_key = make_test_ca(root / "ca", "pg test CA")
        cert, key = issue_server_cert(ca_cert, ca_key, ["127.0.0.1", "localhost"], root / "ca")
        shutil.copy(cert, data / "server.crt")
        shutil.copy(key, data / "server.key")
        os.chmod(data / "server.key", 0o600)
        _give_to_service_user(data)
        opts += ["-c", "ssl=on"]
    port = free_port()
    proc = Proc(
        _as_service_user([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), *opts]),
        name="postgres",
        port=port,
    )
    try:
        wait_for_port(port, timeout=30, proc=proc)
        server = Postgres("127.0.0.1", port, PG_USER, PG_PASSWORD, PG_DB, bin_dir, data, ca_cert)
        env = dict(os.environ, PGPASSWORD=PG_PASSWORD)
        deadline = time.monotonic() + 30
        while True:
            made = subprocess.run(
                [
                    str(bin_dir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    PG_USER,
                    PG_DB,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if made.returncode == 0 or "already exists" in made.stderr:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"createdb failed: {made.stderr}")
            time.sleep(0.2)
        yield server
    finally:
        proc.stop()
        shutil.rmtree(root, ignore_errors=True)
