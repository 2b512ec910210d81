"""Starts and stops the app under test, keeps its last output lines and probes readiness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections import deque
from pathlib import Path

from wiretape.errors import SetupError

TAIL_LINES = 40


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0 and not _self_connected(sock)


def _self_connected(sock: socket.socket) -> bool:
    """A connection to a loopback port nobody listens on can, rarely, connect to itself."""
    try:
        return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return False


class AppProcess:
    """The app, run through the shell in its own process group."""

    def __init__(
        self,
        command: str,
        *,
        env: dict[str, str],
        cwd: Path,
        port: int,
        health: str | None,
        log_path: Path | None = None,
        echo: bool = False,
    ) -> None:
        self.command = command
        self.env = env
        self.cwd = cwd
        self.port = port
        self.health = health
        self.log_path = log_path
        self.echo = echo
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if port_in_use(self.port):
            raise SetupError(
                f"port {self.port} is already in use, so the app could not be told apart from "
                "whatever is listening there\n  hint: stop that process or set app.port / --port"
            )
        try:
            self.proc = await asyncio.create_subprocess_shell(
                self.command,
                cwd=str(self.cwd),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise SetupError(
                f"cannot start the app ({self.command!r} in {self.cwd}): {exc}"
            ) from None
        self._reader = asyncio.create_task(self._read_output())

    async def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        log = self.log_path.open("ab") if self.log_path is not None else None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    return
                if log is not None:
                    log.write(line)
                    log.flush()
                text = line.decode("utf-8", "replace").rstrip("\n")
                self.tail.append(text)
                if self.echo:
                    print(f"  app | {text}", flush=True)
        finally:
            if log is not None:
                log.close()

    def last_output(self) -> str:
        if not self.tail:
            return "  (the app printed nothing)"
        return "\n".join(f"  | {line}" for line in self.tail)

    async def wait_ready(self, timeout: float) -> None:
        """Return once the app answers its health URL (or its port accepts)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        delay = 0.02
        last_problem = "it never accepted a connection"
        while True:
            if self.proc.returncode is not None:
                await self._drain_output()
                raise SetupError(
                    f"the app exited with code {self.proc.returncode} before it was ready "
                    f"(command: {self.command})\nits last output:\n{self.last_output()}"
                )
            problem = await self._probe()
            if problem is None:
                return
            last_problem = problem
            if time.monotonic() >= deadline:
                await self.stop()
                raise SetupError(
                    f"the app was not ready after {timeout:g}s: {last_problem} "
                    f"(command: {self.command}, port {self.port}"
                    + (f", health {self.health}" if self.health else "")
                    + f")\nits last output:\n{self.last_output()}\n"
                    "  hint: check app.port and app.health, or raise app.startup_timeout"
                )
            with contextlib.suppress(asyncio.TimeoutError):
                assert self.proc is not None
                await asyncio.wait_for(self.proc.wait(), delay)
            delay = min(delay * 1.5, 0.25)

    async def _probe(self) -> str | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), 1.0
            )
        except (TimeoutError, OSError):
            return f"nothing accepted connections on 127.0.0.1:{self.port}"
        sock = writer.get_extra_info("socket")
        if sock is not None and _self_connected(sock):
            writer.close()
            return f"nothing accepted connections on 127.0.0.1:{self.port}"
        try:
            if not self.health:
                return None
            path = self.health
            host = f"127.0.0.1:{self.port}"
            if path.startswith(("http://", "https://")):
                from urllib.parse import urlsplit

                url = urlsplit(path)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                host = url.netloc
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                "User-Agent: wiretape-health\r\n\r\n".encode()
            )
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 2.0)
            parts = line.split()
            if len(parts) >= 2 and parts[1][:1] in (b"2", b"3"):
                return None
            return f"{self.health} answered {line.decode('latin-1').strip() or 'nothing'}"
        except (TimeoutError, OSError) as exc:
            return f"{self.health} failed: {exc or type(exc).__name__}"
        finally:
            writer.close()

    async def _drain_output(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._reader), 2.0)

    async def stop(self, grace: float = 5.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        else:
            # The shell is gone; make sure nothing it started lingers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await self._drain_output()
        return proc.returncode
