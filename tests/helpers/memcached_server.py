"""Real TCP servers for the generic TCP tests, each on a free loopback port.

- ``memcached_server()``: Debian's memcached (``-l 127.0.0.1 -p PORT -U 0``), memory only, no UDP;
  as root it runs as ``nobody``, since memcached refuses to run as root.
- ``paced_server()``: this file run as a process (``python memcached_server.py paced PORT``), a
  line server that speaks first and answers with deliberate pauses, so tests can see recorded
  timing honoured or dropped on replay. On connect it sends ``HELLO paced``; ``WAIT`` is
  answered ``one`` after ``THINK_S``, then ``two`` and ``END`` after ``GAP_S`` more; ``ECHO x``
  is answered ``x`` at once; ``QUIT`` is answered ``BYE`` and the server closes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The test helpers are imported inside the functions that need them: run as a script (the paced
# server process), this file has no ``tests`` package on its path.

THINK_S = 0.3
GAP_S = 0.4


@dataclass
class Server:
    host: str
    port: int
    ca: Path | None = None  # a TLS server's test CA

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def talk(self, data: bytes, until: bytes, timeout: float = 10) -> bytes:
        """Send ``data`` on a fresh connection; read until ``until`` is in the answer."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(data)
            deadline = time.monotonic() + timeout
            answer = b""
            while until not in answer and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return answer


def memcached_bin() -> str | None:
    return shutil.which("memcached") or (
        "/usr/bin/memcached" if Path("/usr/bin/memcached").exists() else None
    )


@contextlib.contextmanager
def memcached_server(*, tls: bool = False) -> Iterator[Server]:
    """A memcached on 127.0.0.1; skips the test if none is installed.

    With ``tls`` it serves TLS only, with a certificate for 127.0.0.1 signed by a test CA of its
    own (``Server.ca``); skips the test if this memcached was built without TLS.
    """
    import pytest
    from tests.helpers.procs import Proc, free_port, wait_for_port

    binary = memcached_bin()
    if binary is None:
        pytest.skip("memcached is not installed (.ci/run installs it)")
    port = free_port()
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    root: Path | None = None
    ca: Path | None = None
    if tls:
        from wiretape.proxy.tls import issue_server_cert, make_test_ca

        usage = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
        if "--enable-ssl" not in usage.stdout:
            pytest.skip("this memcached was built without TLS")
        # Readable by ``nobody``, which memcached runs as under root: test keys only.
        root = Path(tempfile.mkdtemp(prefix="wt-memcached-"))
        root.chmod(0o755)
        ca, ca_key = make_test_ca(root, "memcached test CA")
        cert, key = issue_server_cert(ca, ca_key, ["127.0.0.1", "localhost"], root)
        key.chmod(0o644)
        args += ["-Z", "-o", f"ssl_chain_cert={cert},ssl_key={key}"]
    proc = Proc(args, name="memcached", port=port)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield Server("127.0.0.1", port, ca)
    finally:
        proc.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def paced_server() -> Iterator[Server]:
    """The paced line server (see the module docstring) as a process on 127.0.0.1."""
    from tests.helpers.procs import Proc, free_port, wait_for_port

    port = free_port()
    proc = Proc([sys.executable, __file__, "paced", str(port)], name="paced", port=port)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield Server("127.0.0.1", port)
    finally:
        proc.stop()


class _Paced(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"HELLO paced\r\n")
        self.wfile.flush()
        for _ in range(10_000):
            line = self.rfile.readline(4096)
            if not line:
                return
            command = line.strip()
            if command == b"WAIT":
                time.sleep(THINK_S)
                self.wfile.write(b"one\r\n")
                self.wfile.flush()
                time.sleep(GAP_S)
                self.wfile.write(b"two\r\nEND\r\n")
            elif command.startswith(b"ECHO "):
                self.wfile.write(command[5:] + b"\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"BYE\r\n")
                self.wfile.flush()
                return
            else:
                self.wfile.write(b"ERROR unknown command\r\n")
            self.wfile.flush()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "paced":
        print("usage: memcached_server.py paced PORT", file=sys.stderr)
        return 2
    with _Server(("127.0.0.1", int(argv[1])), _Paced) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
