"""Benchmark 1: the overhead of the inbound record proxy.

Two targets (nginx serving a small static JSON file; the example shop's ``GET /api/products``),
each loaded by wrk directly, through ``wiretape record`` (the lane default and ``--concurrent``),
through ``bench/pyforward.py`` (bytes forwarded and nothing else: the floor of a Python proxy on
this machine), and through ``mitmdump`` in reverse mode with flow saving off. ``wiretape
record`` is run exactly as a user runs it: the CLI as a subprocess with a generated wiretape.yaml
whose ``app.command`` starts the target, the load on its ``listen`` port, ``--overwrite`` into a
throwaway set.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    BENCH_DIR,
    EXAMPLES_DIR,
    LOGS,
    MITMDUMP,
    PY_SPY,
    WIRETAPE_HOME,
    WORK,
    Proc,
    Sample,
    WrkResult,
    cpu_seconds,
    free_port,
    log,
    peak_rss_mb,
    rmtree,
    run_wrk,
    summarize_folded,
    wait_for_port,
    which,
)

SETS_DIR = WORK / "sets"
SMALL_JSON = {"id": "sku-1", "name": "Coffee beans", "price_cents": 1299, "currency": "EUR"}
SHOP_ENV = {
    # shop/config.py needs these at startup; GET /api/products calls no dependency.
    "PAYMENTS_URL": "http://127.0.0.1:9",
    "PAYMENTS_KEY": "sk_bench",
    "RATES_URL": "https://127.0.0.1:9",
}


@dataclass
class Target:
    name: str
    path: str
    health: str | None
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError


class NginxTarget(Target):
    def argv(self, port: int) -> list[str]:
        root = WORK / "nginx" / str(port)
        (root / "www").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        (root / "www" / "data.json").write_text(json.dumps([SMALL_JSON] * 3) + "\n")
        tmp = root / "tmp"
        conf = root / "nginx.conf"
        conf.write_text(
            f"""daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  server {{
    listen 127.0.0.1:{port};
    root {root}/www;
    default_type application/json;
  }}
}}
"""
        )
        return [which("nginx") or "nginx", "-c", str(conf), "-e", str(root / "error.log")]


class ShopTarget(Target):
    def argv(self, port: int) -> list[str]:
        return [sys.executable, "shop/app.py", "--port", str(port)]


TARGETS = {
    "nginx": NginxTarget("nginx", "/data.json", None, WORK),
    "shop": ShopTarget("shop", "/api/products", "/healthz", EXAMPLES_DIR, SHOP_ENV),
}
CONFIGS = (
    "direct",
    "wiretape",
    "wiretape-nopoll",
    "wiretape-concurrent",
    "python-forward",
    "python-forward-lane",
    "mitmdump",
)


def _start_direct(target: Target, port: int) -> Proc:
    proc = Proc(
        target.argv(port),
        name=f"{target.name}-direct",
        cwd=target.cwd,
        env=target.env,
        log_dir=LOGS,
        port=port,
    )
    wait_for_port(port, timeout=60, proc=proc)
    return proc


def _wiretape_config(target: Target, app_port: int, listen: int, *, poll: bool = True) -> Path:
    cfg_dir = WORK / "cfg"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "app:",
        f"  command: {json.dumps(shlex.join(target.argv(app_port)))}",
        f"  port: {app_port}",
        f"  cwd: {json.dumps(str(target.cwd))}",
        "  startup_timeout: 60",
    ]
    if target.health:
        lines.append(f"  health: {target.health}")
    if target.env:
        lines.append("  env:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in target.env.items()]
    lines += [
        'outbound_http: "off"',
        f"listen: 127.0.0.1:{listen}",
        f"dir: {json.dumps(str(SETS_DIR))}",
    ]
    if not poll:
        lines.append("lane_poll_us: 0")
    path = cfg_dir / f"{target.name}-{listen}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Front:
    """What a benchmark loads: its URL, the process in front, and notes filled in on exit."""

    url: str
    proc: Proc
    notes: dict[str, float] = field(default_factory=dict)


@contextmanager
def stack(target: Target, config: str, profile: Path | None = None) -> Iterator[Front]:
    """Start ``target`` behind ``config``; yield the URL to load and the process in front.

    On exit ``notes`` gets the front process's peak RSS, and for wiretape how long ``record``
    took to stop (it finishes the set's YAML files then) and how many tests it wrote.
    """
    app_port = free_port()
    if config == "direct":
        proc = _start_direct(target, app_port)
        try:
            yield Front(f"http://127.0.0.1:{app_port}{target.path}", proc)
        finally:
            proc.stop()
        return
    listen = free_port()
    if config.startswith("wiretape"):
        set_name = f"bench-{target.name}-{listen}"
        args = [
            sys.executable,
            "-m",
            "wiretape",
            "record",
            "-c",
            str(_wiretape_config(target, app_port, listen, poll=config != "wiretape-nopoll")),
            "--set",
            set_name,
            "--overwrite",
            "-q",
        ]
        if config == "wiretape-concurrent":
            args.append("--concurrent")
        if profile is not None:
            args = [sys.executable, "-m", "cProfile", "-o", str(profile), *args[1:]]
        proc = Proc(
            args,
            name=f"wiretape-{target.name}",
            cwd=WORK,
            env={"WIRETAPE_HOME": str(WIRETAPE_HOME)},
            log_dir=LOGS,
            port=listen,
        )
        front = Front(f"http://127.0.0.1:{listen}{target.path}", proc)
        try:
            wait_for_port(listen, timeout=90, proc=proc)
            yield front
        finally:
            front.notes["peak_rss_mb"] = peak_rss_mb(proc.pid)
            t0 = time.perf_counter()
            code = proc.stop(timeout=120)
            front.notes["stop_s"] = time.perf_counter() - t0
            if code not in (0, None):
                log(f"wiretape record exited {code}:\n{proc.output()[-3000:]}")
            tests = SETS_DIR / set_name / "tests"
            front.notes["tests_written"] = len(list(tests.iterdir())) if tests.is_dir() else 0
            rmtree(SETS_DIR / set_name)
            rmtree(SETS_DIR / ".runs")  # the app's log of this recording
        return
    if config in ("python-forward", "python-forward-lane"):
        argv = [sys.executable, str(BENCH_DIR / "pyforward.py"), str(listen), str(app_port)]
        if config == "python-forward-lane":
            argv.append("--lane")
    elif config == "mitmdump":
        argv = [
            str(MITMDUMP),
            "-q",
            "--listen-host",
            "127.0.0.1",
            "-p",
            str(listen),
            "--mode",
            f"reverse:http://127.0.0.1:{app_port}",
            "--set",
            f"confdir={WORK / 'mitm-conf'}",
        ]
    else:
        raise ValueError(f"unknown config {config!r}")
    # A proxy in front of the app, started directly.
    app = _start_direct(target, app_port)
    try:
        proc = Proc(argv, name=f"{config}-{target.name}", log_dir=LOGS, port=listen)
        front = Front(f"http://127.0.0.1:{listen}{target.path}", proc)
        try:
            wait_for_port(listen, timeout=90, proc=proc)
            yield front
        finally:
            front.notes["peak_rss_mb"] = peak_rss_mb(proc.pid)
            proc.stop()
    finally:
        app.stop()


def run_round(
    target_name: str,
    configs: list[str],
    rnd: int,
    *,
    duration: float,
    warmup: float,
    conns_list: list[int],
) -> list[Sample]:
    target = TARGETS[target_name]
    samples: list[Sample] = []
    for config in configs:
        t0 = time.perf_counter()
        results: list[tuple[int, WrkResult, dict[str, float]]] = []
        with stack(target, config) as front:
            ready = time.perf_counter() - t0
            sent = 0
            if warmup > 0:
                sent += run_wrk(front.url, conns=max(conns_list), duration=warmup).requests
            for conns in conns_list:
                cpu0 = cpu_seconds(front.proc.pid)
                res = run_wrk(front.url, conns=conns, duration=duration)
                cpu1 = cpu_seconds(front.proc.pid)
                sent += res.requests
                per_req = {
                    "cpu_user_us_per_req": (cpu1[0] - cpu0[0]) / max(res.requests, 1) * 1e6,
                    "cpu_sys_us_per_req": (cpu1[1] - cpu0[1]) / max(res.requests, 1) * 1e6,
                }
                results.append((conns, res, per_req))
        for conns, res, per_req in results:
            extra = {
                "startup_s": ready,
                "wrk_requests_total": float(sent),
                **per_req,
                **front.notes,
            }
            samples.append(
                Sample(
                    bench="inbound",
                    target=target_name,
                    config=config,
                    conns=conns,
                    round=rnd,
                    rps=res.rps,
                    p50_ms=res.p50_ms,
                    p99_ms=res.p99_ms,
                    requests=res.requests,
                    non2xx=res.non2xx,
                    socket_errors=res.socket_errors,
                    extra=extra,
                )
            )
            log(
                f"inbound {target_name:5} {config:19} c{conns} round {rnd}: "
                f"{res.rps:9.0f} req/s  p50 {res.p50_ms:.3f} ms  p99 {res.p99_ms:.3f} ms  "
                f"non2xx {res.non2xx} errors {res.socket_errors}"
            )
        if front.notes:
            log(
                "  "
                + ", ".join(f"{k} {v:.1f}" for k, v in front.notes.items())
                + f" (wrk completed {sent} requests)"
            )
    return samples


def profile(target_name: str, config: str, *, duration: float, conns: int, out: Path) -> None:
    """Profile wiretape record under load: py-spy if it works here, else cProfile."""
    target = TARGETS[target_name]
    out.mkdir(parents=True, exist_ok=True)
    stem = f"record-{target_name}-{config}-c{conns}"
    if PY_SPY.exists():
        with stack(target, config) as front:
            url, proc = front.url, front.proc
            run_wrk(url, conns=conns, duration=1)
            spy = Proc(
                [
                    str(PY_SPY),
                    "record",
                    "-p",
                    str(proc.pid),
                    "-d",
                    str(int(duration)),
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(out / f"{stem}.folded"),
                ],
                name="py-spy",
                log_dir=LOGS,
            )
            run_wrk(url, conns=conns, duration=duration)
            try:
                spy.popen.wait(duration + 30)
            finally:
                spy.stop()
            if spy.popen.returncode == 0:
                folded = out / f"{stem}.folded"
                log(f"py-spy profile: {folded}\n{summarize_folded(folded)}")
                return
            log(f"py-spy failed; falling back to cProfile:\n{spy.output()[-2000:]}")
    prof = out / f"{stem}.pstats"
    with stack(target, config, profile=prof) as front:
        run_wrk(front.url, conns=conns, duration=duration)
    log(f"cProfile: {prof}")
