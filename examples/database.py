"""A throwaway PostgreSQL server for the example shop, in a temporary directory.

Run from examples/:  python database.py --port 9432
It creates a cluster with initdb (SCRAM authentication), a user and database ``shop`` with the
password ``shop``, listens on 127.0.0.1 only, and deletes everything when stopped (Ctrl-C or
SIGTERM). PostgreSQL refuses to run as root; as root, the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER = PASSWORD = DATABASE = "shop"


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        sys.exit("database: PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return Path(initdb).parent


def as_service_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a throwaway PostgreSQL for the shop.")
    parser.add_argument("--port", type=int, default=9432)
    args = parser.parse_args()
    bin_dir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
    os.chmod(root, 0o755)
    server: subprocess.Popen[bytes] | None = None
    try:
        (root / "pw").write_text(PASSWORD + "\n")
        chown_tree(root)
        subprocess.run(
            as_service_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(root / "data"),
                    "-U",
                    USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={root / 'pw'}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Its own process group: stopping the group stops the server whatever runs it (as root
        # that is runuser, which does not pass signals on).
        server = subprocess.Popen(
            start_new_session=True,
            args=as_service_user(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(root / "data"),
                    "-p",
                    str(args.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={root}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                ]
            ),
        )
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        deadline = time.monotonic() + 30
        while True:
            made = subprocess.run(
                [
                    str(bin_dir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(args.port),
                    "-U",
                    USER,
                    DATABASE,
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if made.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"database: PostgreSQL did not start: {made.stderr.strip()}")
            time.sleep(0.2)
        print(f"database: PostgreSQL listening on 127.0.0.1:{args.port}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None and server.poll() is None:
            stop(server)
        shutil.rmtree(root, ignore_errors=True)


def stop(server: subprocess.Popen[bytes]) -> None:
    """PostgreSQL's fast shutdown (SIGINT) for the whole group, then SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    main()
