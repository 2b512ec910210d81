"""Shared plumbing for the side-by-side benchmarks: paths, peers, processes, wrk and medians.

Processes are started with ``tests.helpers.procs.Proc`` (own session, output to a log file, the
process group is signalled on stop). Every load is ``wrk`` with a fixed duration against
127.0.0.1. Nothing here runs a load without a time bound.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
LOGS = WORK / "logs"
EXAMPLES_DIR = REPO_ROOT / "examples"
MITM_VENV = WORK / "mitm-venv"
MITMDUMP = MITM_VENV / "bin" / "mitmdump"
MITM_PYTHON = MITM_VENV / "bin" / "python"
PY_SPY = MITM_VENV / "bin" / "py-spy"
WIREMOCK_DIR = WORK / "wiremock"
WIRETAPE_HOME = WORK / "wiretape-home"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.procs import Proc, clean_env, free_port, wait_for_port  # noqa: E402

__all__ = [
    "Proc",
    "Sample",
    "WrkResult",
    "clean_env",
    "free_port",
    "median",
    "peer_status",
    "run_wrk",
    "wait_for_port",
]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def which(name: str) -> str | None:
    found = shutil.which(name)
    if found is None and Path("/usr/sbin", name).exists():
        found = str(Path("/usr/sbin", name))
    return found


def wiremock_jar() -> Path | None:
    root = WIREMOCK_DIR / "node_modules" / "wiremock"
    jars = sorted(root.rglob("wiremock-standalone*.jar")) if root.is_dir() else []
    return jars[0] if jars else None


def peer_status() -> dict[str, str | None]:
    """Why each optional peer is unavailable (None: available)."""
    hint = "run bench/peers/install.sh"
    status: dict[str, str | None] = {}
    status["wrk"] = None if which("wrk") else "wrk not found (apt-get install wrk)"
    status["nginx"] = None if which("nginx") else "nginx not found (apt-get install nginx-light)"
    status["mitmproxy"] = None if MITMDUMP.exists() else f"{MITMDUMP} missing; {hint}"
    if wiremock_jar() is None:
        status["wiremock"] = f"no WireMock jar under {WIREMOCK_DIR}; {hint}"
    elif not which("java"):
        status["wiremock"] = "java not found"
    else:
        status["wiremock"] = None
    return status


def versions() -> dict[str, str]:
    """Versions of the tools, for the results file."""

    def first_line(args: Sequence[str]) -> str:
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "n/a"
        text = (out.stdout + out.stderr).strip()
        line = text.splitlines()[0] if text else "n/a"
        # "wrk debian/4.1.0-3+b2 [epoll] ...", "nginx version: nginx/1.22.1",
        # "Mitmproxy: 11.0.2", 'openjdk version "17.0.15" 2025-04-15' -> the version alone.
        m = re.search(r'(?:version:? "?|/|: )(\d[\w.+-]*)', line)
        return m.group(1) if m else line

    import wiretape

    found = {
        "python": sys.version.split()[0],
        "wiretape": wiretape.__version__,
        "wrk": first_line([which("wrk") or "wrk", "--version"]),
        "nginx": first_line([which("nginx") or "nginx", "-v"]),
    }
    try:
        import uvloop

        found["uvloop"] = str(getattr(uvloop, "__version__", "?"))
    except ImportError:
        found["uvloop"] = "not installed"
    if MITMDUMP.exists():
        found["mitmproxy"] = first_line([str(MITMDUMP), "--version"])
    jar = wiremock_jar()
    if jar is not None:
        found["wiremock"] = jar.name
        found["java"] = first_line(["java", "-version"])
    return found


def source_state() -> str:
    """The commit under test and a hash of any uncommitted change to src/ (read-only git)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("diff", "HEAD", "--", "src")
    if not dirty:
        return f"{head} (src clean)"
    import hashlib

    files = git("diff", "HEAD", "--name-only", "--", "src").split()
    digest = hashlib.sha256(dirty.encode()).hexdigest()[:10]
    return f"{head} + uncommitted src changes {digest} ({', '.join(files)})"


def machine_note() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {os.uname().release}; "
        f"load average at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}"
    )


# --- wrk --------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    raw: str


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if m is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"cannot parse wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(p50.group(1)),
        p99_ms=_latency_ms(p99.group(1)),
        requests=int(total.group(1)),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
        raw=out,
    )


def wrk_command(
    url: str, *, conns: int, duration: float, script: Path | None = None, threads: int = 1
) -> list[str]:
    args = [
        which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, math.ceil(duration))}s",  # wrk takes whole seconds
        "--timeout",
        "5s",
        "--latency",
    ]
    if script is not None:
        args += ["-s", str(script)]
    return [*args, url]


def run_wrk(
    url: str,
    *,
    conns: int,
    duration: float,
    script: Path | None = None,
    env: dict[str, str] | None = None,
) -> WrkResult:
    """One bounded wrk run (its own -d, and a hard timeout of duration + 30 s)."""
    args = wrk_command(url, conns=conns, duration=duration, script=script)
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=duration + 30,
        env=clean_env(env),
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
    return parse_wrk(proc.stdout)


# --- results ----------------------------------------------------------------------------------


@dataclass
class Sample:
    bench: str  # "inbound" or "mock"
    target: str  # "nginx", "shop", "N=1000", ...
    config: str  # "direct", "wiretape", ...
    conns: int
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    extra: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def wait_until(pred: object, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``pred()`` until it is true, or raise after ``timeout`` seconds."""
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def peak_rss_mb(pid: int) -> float:
    """The peak resident set size (VmHWM) of a running process, in MiB; NaN if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by process ``pid`` (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan"), float("nan")
    # After the ")" that ends the command name, utime and stime are the 12th and 13th fields.
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def summarize_folded(path: Path, top: int = 25) -> str:
    """The hottest frames of a py-spy ``-f raw`` profile: inclusive share of the samples.

    Only frames from wiretape (and the json/asyncio/threading code it calls) are listed, so the
    table reads as "where a request's time goes".
    """
    from collections import Counter

    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [
            re.sub(r" \(/\S*?/(site-packages|python3\.\d+|src)/", " (", f) for f in stack.split(";")
        ]
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    keep = ("wiretape/", "json", "asyncio/", "threading", "libc", "epoll", "write", "read")
    rows = [f"{path.name}: {total} samples", "inclusive  own   frame"]
    for frame, n in inclusive.most_common():
        if (
            not any(k in frame for k in keep)
            or "(loop.c" in frame
            or frame.startswith(("0x", "main ", "_run ", "<module>", "run ", "Runner.run "))
        ):
            continue
        rows.append(f"{n / total * 100:6.1f}% {own[frame] / total * 100:5.1f}%  {frame[:110]}")
        if len(rows) >= top + 2:
            break
    return "\n".join(rows)
