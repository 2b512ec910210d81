"""Real processes for integration tests: free ports, readiness polling, log capture, and the
bundled example services (payments, rates over HTTPS, the shop).

Each process writes stdout and stderr to one log file, so a failure can show what the process said.
Processes start in their own session; stop() signals that process group only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO_ROOT / "examples"
PAYMENTS_KEY = "sk_test_wiretape"

# Inherited from the developer's shell these would reroute or re-trust the examples' own traffic.
_SCRUBBED_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SHOP_VARIANT",
    "WIRETAPE_URL",
)


class ProcessFailed(RuntimeError):
    """A test process exited early or never became ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without proxy, CA-bundle and example settings, plus `extra`."""
    scrubbed = {name.upper() for name in _SCRUBBED_ENV}
    env = {k: v for k, v in os.environ.items() if k.upper() not in scrubbed}
    env.update(extra or {})
    return env


class Proc:
    """A started subprocess whose output goes to a log file. Stops on context exit."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
        port: int | None = None,
    ) -> None:
        """Start `args` now. `env` is added to clean_env(); `port` is where it will listen."""
        self.args = list(args)
        self.name = name or Path(self.args[0]).name
        self.port = port
        if log_dir is None:
            fd, path = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(path)
            weakref.finalize(self, self.log_path.unlink, missing_ok=True)
        else:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.log_path = log_dir / f"{self.name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        try:
            self.popen = subprocess.Popen(
                self.args,
                cwd=cwd,
                env=clean_env(env),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        status = "running" if self.poll() is None else f"exit code {self.popen.returncode}"
        return (
            f"{self.name} (pid {self.pid}, {status}): {' '.join(self.args)}\n"
            f"--- output ({self.log_path}) ---\n{self.output()}--- end of output ---"
        )

    def wait_ready(self, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
        if self.port is None:
            raise ValueError(f"{self.name}: no port given, so readiness cannot be checked")
        wait_for_port(self.port, host, timeout, self)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after `timeout`; return the exit code."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout)
        self._log.close()
        return self.popen.returncode

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def __enter__(self) -> Proc:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _describe(proc: subprocess.Popen[bytes] | Proc | None) -> str:
    if isinstance(proc, Proc):
        return "\n" + proc.describe()
    if proc is not None:
        return f"\nprocess {proc.pid} ({proc.args!r}), exit code {proc.poll()}"
    return ""


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 15.0,
    proc: subprocess.Popen[bytes] | Proc | None = None,
) -> None:
    """Poll until host:port accepts a TCP connection; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise ProcessFailed(f"exited before listening on {host}:{port}{_describe(proc)}")
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                # A port nobody listens on can, rarely, accept a connection from itself.
                if sock.getsockname() != sock.getpeername():
                    return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ProcessFailed(
                f"nothing listened on {host}:{port} within {timeout:.0f}s{_describe(proc)}"
            )
        time.sleep(0.05)


@dataclass
class ExampleServices:
    """The running example upstreams; start_shop() adds shops that use them."""

    payments_port: int
    rates_port: int
    certs_dir: Path
    rates_ca: Path
    log_dir: Path
    procs: list[Proc] = field(default_factory=list)
    payments_key: str = PAYMENTS_KEY

    @property
    def payments_url(self) -> str:
        return f"http://127.0.0.1:{self.payments_port}"

    @property
    def rates_url(self) -> str:
        return f"https://localhost:{self.rates_port}"

    def shop_env(self, variant: str | None = None) -> dict[str, str]:
        env = {
            "PAYMENTS_URL": self.payments_url,
            "PAYMENTS_KEY": self.payments_key,
            "RATES_URL": self.rates_url,
            "SSL_CERT_FILE": str(self.rates_ca),
        }
        if variant:
            env["SHOP_VARIANT"] = variant
        return env

    def start_shop(
        self,
        port: int | None = None,
        *,
        variant: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ) -> Proc:
        """Start examples/shop/app.py (cwd examples/) and wait until it listens. `env` wins."""
        port = port or free_port()
        shop = Proc(
            [sys.executable, "shop/app.py", "--port", str(port)],
            name="shop",
            cwd=EXAMPLES_DIR,
            env={**self.shop_env(variant), **(env or {})},
            log_dir=self.log_dir,
            port=port,
        )
        self.procs.append(shop)
        shop.wait_ready(timeout=timeout)
        return shop

    def stop_upstreams(self) -> None:
        for proc in self.procs:
            if proc.name in ("payments", "rates"):
                proc.stop()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def __enter__(self) -> ExampleServices:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_examples(tmp: Path, timeout: float = 15.0) -> ExampleServices:
    """Start payments and rates (certificates in tmp/certs, logs in tmp/logs) and wait for both."""
    certs_dir = tmp / "certs"
    services = ExampleServices(
        payments_port=free_port(),
        rates_port=free_port(),
        certs_dir=certs_dir,
        rates_ca=certs_dir / "rates-ca.pem",
        log_dir=tmp / "logs",
    )
    try:
        payments = Proc(
            [sys.executable, "payments/server.py", "--port", str(services.payments_port)],
            name="payments",
            cwd=EXAMPLES_DIR,
            log_dir=services.log_dir,
            port=services.payments_port,
        )
        services.procs.append(payments)
        rates = Proc(
            [
                sys.executable,
                "rates/server.py",
                "--port",
                str(services.rates_port),
                "--certs",
                str(certs_dir),
            ],
            name="rates",
            cwd=EXAMPLES_DIR,
            log_dir=services.log_dir,
            port=services.rates_port,
        )
        services.procs.append(rates)
        payments.wait_ready(timeout=timeout)
        rates.wait_ready(timeout=timeout)
    except BaseException:
        services.stop()
        raise
    return services
