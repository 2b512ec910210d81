"""A real MariaDB server for integration tests, in a temporary directory on a free loopback port.

``mariadb-install-db`` creates a fresh data directory; ``mariadbd`` runs on 127.0.0.1 with its
socket inside that directory and durability turned off (the data is thrown away). The server
refuses to start as root unless told which user to run as, so ``--user`` is always given (the
current user). Authentication is real: a password user is created for the tests, and
``ed25519=True`` loads the ed25519 plugin for accounts that need an auth switch. Nothing here
starts a system service or touches a system data directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.helpers.procs import Proc, free_port, wait_for_port

MYSQL_USER = "wiretape"
MYSQL_PASSWORD = "my-secret-pw"
MYSQL_DB = "app"
MARIADBD = Path("/usr/sbin/mariadbd")


def _tool(name: str, fallback: str) -> str | None:
    return shutil.which(name) or shutil.which(fallback)


@dataclass
class MariaDB:
    host: str
    port: int
    user: str
    password: str
    database: str
    root: Path
    socket: Path
    proc: Proc
    ca: Path | None = None  # the test CA that signed the server certificate (ssl=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def sql(self, statements: str, *, database: str | None = None) -> str:
        """Run SQL as root over the server's socket with the ``mariadb`` client; its output."""
        client = _tool("mariadb", "mysql")
        assert client is not None
        args = [client, "--no-defaults", "-S", str(self.socket), "-uroot", "-N", "-B"]
        if database is not None:
            args.append(database)
        done = subprocess.run(
            args, input=statements, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb failed: {done.stderr.strip()}\nSQL: {statements[:500]}")
        return done.stdout


@contextlib.contextmanager
def mariadb_server(*, ssl: bool = False, ed25519: bool = False) -> Iterator[MariaDB]:
    """A MariaDB server on 127.0.0.1 with a password user; skips the test if none is installed."""
    install = _tool("mariadb-install-db", "mysql_install_db")
    if not MARIADBD.exists() or install is None or _tool("mariadb", "mysql") is None:
        pytest.skip("the MariaDB server is not installed (.ci/run installs it)")
    user = pwd.getpwuid(os.geteuid()).pw_name
    root = Path(tempfile.mkdtemp(prefix="wt-mariadb-"))
    data = root / "data"
    sock = root / "mariadb.sock"
    done = subprocess.run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed: {done.stdout}\n{done.stderr}")
    port = free_port()
    args = [
        str(MARIADBD),
        "--no-defaults",
        f"--user={user}",
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={sock}",
        f"--pid-file={root / 'mariadb.pid'}",
        f"--log-error={root / 'error.log'}",
        "--skip-name-resolve",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=16M",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        "--max-connections=200",
        "--local-infile=1",
    ]
    if ed25519:
        args.append("--plugin-load-add=auth_ed25519")
    ca_cert: Path | None = None
    if ssl:
        from wiretape.proxy.tls import issue_server_cert, make_test_ca

        ca_cert, ca_key = make_test_ca(root / "ca", "mariadb test CA")
        cert, key = issue_server_cert(ca_cert, ca_key, ["127.0.0.1", "localhost"], root / "ca")
        args += [f"--ssl-ca={ca_cert}", f"--ssl-cert={cert}", f"--ssl-key={key}"]
    proc = Proc(args, name="mariadbd", port=port, log_dir=root)
    try:
        wait_for_port(port, timeout=60, proc=proc)
        server = MariaDB(
            "127.0.0.1", port, MYSQL_USER, MYSQL_PASSWORD, MYSQL_DB, root, sock, proc, ca_cert
        )
        server.sql(
            f"CREATE USER '{MYSQL_USER}'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}';\n"
            f"GRANT ALL ON *.* TO '{MYSQL_USER}'@'%';\n"
            f"CREATE DATABASE {MYSQL_DB};\n"
        )
        yield server
    finally:
        proc.stop(timeout=20)
        shutil.rmtree(root, ignore_errors=True)
