"""Drive the real ``wiretape`` CLI from integration tests.

- ``write_config`` writes ``dir/wiretape.yaml`` (always with a fixed ``listen`` port, so the
  record proxy's URL is known before it starts);
- ``Recording`` runs ``wiretape record`` as a subprocess (cwd ``dir``, ``WIRETAPE_HOME`` set),
  waits until its proxy accepts, and stops it with a signal; it also cleans up the app if
  wiretape itself has to be killed;
- ``run_wiretape`` runs any other wiretape command and captures its output; ``run_test_json``
  runs ``wiretape test --format json`` and parses the report;
- ``load`` reads a recorded set with ``wiretape.store.reader.load_set``.

Every wiretape subprocess gets ``clean_env()`` (no inherited proxies or CA bundles) plus
``WIRETAPE_HOME=<dir>/.wiretape-home`` unless the caller's ``env`` sets its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from tests.helpers.procs import REPO_ROOT, Proc, ProcessFailed, clean_env, free_port, wait_for_port

from wiretape.store.reader import TestSet, load_set

__all__ = [
    "REPO_ROOT",
    "Recording",
    "descendants",
    "listen_port_of",
    "load",
    "run_test_json",
    "run_wiretape",
    "set_path",
    "wiretape_argv",
    "wiretape_env",
    "write_config",
]

CONFIG_NAME = "wiretape.yaml"


def wiretape_argv() -> list[str]:
    """How a user starts wiretape: the ``wiretape`` script of this venv (or ``-m wiretape``)."""
    script = Path(sys.executable).parent / "wiretape"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "wiretape"]


def wiretape_env(dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The extra environment for a wiretape subprocess run in ``dir`` (added to clean_env())."""
    return {"WIRETAPE_HOME": str(dir / ".wiretape-home"), **(env or {})}


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def write_config(
    dir: Path,
    *,
    command: str,
    port: int,
    health: str | None = None,
    env: dict[str, str] | None = None,
    deps: dict[str, dict[str, str]] | None = None,
    listen_port: int | None = None,
    outbound_http: str = "proxy",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``dir/wiretape.yaml`` and return its path.

    ``listen_port=None`` picks a free port now. ``deps`` maps a name to ``{protocol, upstream}``.
    ``extra`` is merged in last, recursively for mappings, e.g. ``{"app": {"cwd": "/x"}}`` or
    ``{"noise": ["body.id"]}``.
    """
    app: dict[str, Any] = {"command": command, "port": port}
    if health is not None:
        app["health"] = health
    if env:
        app["env"] = dict(env)
    doc: dict[str, Any] = {"app": app}
    if deps:
        doc["deps"] = {name: dict(dep) for name, dep in deps.items()}
    doc["outbound_http"] = outbound_http
    doc["listen"] = f"127.0.0.1:{listen_port if listen_port is not None else free_port()}"
    if extra:
        _merge(doc, extra)
    dir.mkdir(parents=True, exist_ok=True)
    path = dir / CONFIG_NAME
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _read_config(dir: Path) -> dict[str, Any]:
    path = dir / CONFIG_NAME
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return data if isinstance(data, dict) else {}


def listen_port_of(dir: Path, args: Sequence[str] = ()) -> int:
    """The record proxy's port: ``--listen`` in ``args``, else ``listen:`` in the config."""
    listen: object = _read_config(dir).get("listen")
    for i, arg in enumerate(args):
        if arg == "--listen" and i + 1 < len(args):
            listen = args[i + 1]
        elif arg.startswith("--listen="):
            listen = arg.split("=", 1)[1]
    if not isinstance(listen, str) or ":" not in listen:
        raise ValueError(f"no fixed listen port in {dir / CONFIG_NAME} or the args: {listen!r}")
    return int(listen.rsplit(":", 1)[1])


def get_json(url: str, timeout: float = 60) -> tuple[int, Any]:
    """GET ``url``: the status and the JSON body, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def set_path(dir: Path, set_name: str = "s") -> Path:
    """Where the set ``set_name`` of the config in ``dir`` lives (``dir:`` honoured)."""
    sets = _read_config(dir).get("dir", "wiretape")
    root = Path(str(sets)).expanduser()
    return (root if root.is_absolute() else dir / root) / set_name


def load(dir: Path, set_name: str = "s") -> TestSet:
    """The recorded set ``set_name`` of the config in ``dir``."""
    return load_set(set_path(dir, set_name))


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (read from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out.extend(children)
        todo.extend(children)
    return out


def _kill_groups(pids: Sequence[int]) -> None:
    """SIGKILL the process group of each pid (the app runs in its own session) and the pid."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class Recording:
    """``wiretape record --set <set_name> *args`` run in ``dir``; a context manager.

    ``start()`` waits for the record proxy (which opens once the app is ready); ``stop()``
    signals wiretape's process group like Ctrl-C does and returns the exit code. Leaving the
    context stops it (SIGINT, then SIGKILL of wiretape and its children if it hangs).
    """

    def __init__(
        self,
        dir: Path,
        *,
        set_name: str = "s",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.dir = dir
        self.set_name = set_name
        self.args = [*wiretape_argv(), "record", "--set", set_name, *args]
        self.env = wiretape_env(dir, env)
        self.port = listen_port_of(dir, args)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: Proc | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def set_path(self) -> Path:
        return set_path(self.dir, self.set_name)

    def start(self, timeout: float = 30, *, wait_port: bool = True) -> None:
        """Start wiretape and wait until the listen port accepts (fails early if it exits).

        ``wait_port=False`` returns at once, e.g. with ``--run`` whose traffic may end (and so
        wiretape) before the port could be polled; then use ``wait()``.
        """
        self.proc = Proc(
            self.args,
            name="wiretape-record",
            cwd=self.dir,
            env=self.env,
            log_dir=self.dir / "logs",
            port=self.port,
        )
        if not wait_port:
            return
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc)
        except BaseException:
            self.kill9()
            raise

    def wait(self, timeout: float = 60) -> int:
        """Wait for wiretape to exit by itself (``--run``); kill everything after ``timeout``."""
        proc = self.proc
        assert proc is not None, "not started"
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise ProcessFailed(
                f"wiretape record did not exit within {timeout:g}s\n" + proc.describe()
            ) from None
        proc.stop()  # closes the log
        return proc.popen.returncode

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        """Send ``sig`` to wiretape's process group; wait for the exit and return its code."""
        proc = self.proc
        assert proc is not None, "not started"
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise ProcessFailed(
                    f"wiretape record did not exit within {timeout:g}s of signal {sig}\n"
                    + proc.describe()
                ) from None
        proc.stop()  # closes the log; the process has exited already
        return proc.popen.returncode

    def kill9(self) -> None:
        """SIGKILL wiretape and everything it started (the app runs in its own session)."""
        proc = self.proc
        if proc is None:
            return
        kids = descendants(proc.pid) if proc.poll() is None else []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _kill_groups(kids)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(10)
        proc.stop()

    def output(self) -> str:
        """Everything wiretape printed so far (stdout and stderr)."""
        return "" if self.proc is None else self.proc.output()

    def describe(self) -> str:
        return "wiretape record (not started)" if self.proc is None else self.proc.describe()

    def __enter__(self) -> Recording:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self.proc.stop()
            return
        # On a timeout stop() has killed everything; the test's own assertions say what failed.
        with contextlib.suppress(ProcessFailed):
            self.stop(signal.SIGINT, timeout=15)


def run_wiretape(
    dir: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``wiretape *args`` in ``dir``; stdout and stderr captured as text; never raises on exit."""
    started = time.monotonic()
    try:
        return subprocess.run(
            [*wiretape_argv(), *args],
            cwd=dir,
            env=clean_env(wiretape_env(dir, env)),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProcessFailed(
            f"wiretape {' '.join(args)} did not finish within {time.monotonic() - started:.0f}s\n"
            f"stdout: {exc.stdout!r}\nstderr: {exc.stderr!r}"
        ) from None


def run_test_json(
    dir: Path,
    set_name: str = "s",
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``wiretape test --set <set_name> --format json *args``: the process and its parsed report."""
    done = run_wiretape(
        dir, "test", "--set", set_name, "--format", "json", *args, env=env, timeout=timeout
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(
            f"wiretape test printed no JSON report (exit {done.returncode})\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        ) from None
    if not isinstance(report, dict):
        raise AssertionError(f"the JSON report is not an object: {done.stdout[:500]}")
    return done, report
