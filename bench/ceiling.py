"""The ceiling column of the database benchmarks: HAProxy forwarding TCP and doing nothing else.

HAProxy 2.x in ``mode tcp`` with ``nbthread 1`` (one thread, as wiretape serves a dependency
from one event loop) listens on a free 127.0.0.1 port and forwards every connection to the
server the ``direct`` target uses. It parses, records and logs nothing, so its throughput is
what a user-space proxy can reach on this machine at all: the client, the proxy and the server
share the same cores, and every byte crosses two more sockets. A record proxy's figure is read
against this one, not only against ``direct``.

Each run starts its own HAProxy in the foreground (``-db``) from a config generated under
``bench/.work/haproxy/`` and stops it afterwards (SIGTERM, an immediate stop).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work" / "haproxy"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.procs import Proc, free_port, wait_for_port  # noqa: E402

INSTALL_HINT = "apt-get install -y haproxy, or bench/peers/install.sh as root"

CONFIG = """\
global
    nbthread 1
    maxconn 1024

defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m

frontend bench
    bind 127.0.0.1:{port}
    default_backend upstream

backend upstream
    server upstream {upstream}
"""


def haproxy_binary() -> str | None:
    """The haproxy executable (also found in /usr/sbin when that is not on PATH), or None."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def skip_message() -> str | None:
    """Why the haproxy column is skipped, or None when haproxy is installed."""
    if haproxy_binary() is None:
        return f"haproxy not found ({INSTALL_HINT}); the haproxy column is skipped"
    return None


@contextmanager
def haproxy(upstream: str) -> Iterator[Proc]:
    """A TCP-mode, one-thread HAProxy forwarding a free 127.0.0.1 port to `upstream` (host:port).

    Yields the running process (its ``port`` is where to connect); stops it on exit.
    """
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError(f"haproxy not found ({INSTALL_HINT})")
    WORK.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = WORK / f"haproxy-{port}.cfg"
    config.write_text(CONFIG.format(port=port, upstream=upstream))
    proc = Proc([binary, "-db", "-f", str(config)], name="haproxy", port=port)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield proc
    finally:
        proc.stop()
        config.unlink(missing_ok=True)
