"""Benchmark 2: serving recorded mocks. wiretape's mock server vs WireMock vs mitmdump replay.

The same N exchanges (``GET /item/<i>`` -> 200 JSON, i = 1..N) are given to each server in its own
format: a wiretape test set written with ``SetWriter`` (session mocks of dep ``api``, reusable as
in replay between tests), a WireMock mappings file, and a mitmproxy flows file. Each server is
loaded with wrk and ``lua/cycle.lua``, which walks the N paths in order, so every stub is hit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness import (
    BENCH_DIR,
    LOGS,
    MITM_PYTHON,
    MITMDUMP,
    WORK,
    Proc,
    Sample,
    cpu_seconds,
    free_port,
    log,
    peak_rss_mb,
    run_wrk,
    wait_for_port,
    which,
    wiremock_jar,
)

from wiretape.model import HttpRequest, HttpResponse, LinkKind, Mock, SetInfo
from wiretape.store.writer import SetWriter

GEN_VERSION = "v2"  # bump when the generated data changes
DEP = "api"
FAKE_UPSTREAM = ("127.0.0.1", 9)  # never contacted: every request has a recorded answer
LUA = BENCH_DIR / "lua" / "cycle.lua"


def item_body(i: int) -> bytes:
    # Keep in sync with peers/mitm_flows.py:item_body.
    doc = {"id": i, "name": f"item {i}", "price_cents": 100 + i % 900, "currency": "EUR"}
    return json.dumps(doc, separators=(",", ":")).encode()


# --- data sets --------------------------------------------------------------------------------


@dataclass
class Dataset:
    n: int
    wiretape_set: Path
    wiremock_root: Path
    mitm_flows: Path | None
    gen_seconds: dict[str, float]


def _fresh(marker: Path) -> bool:
    return marker.exists() and marker.read_text() == GEN_VERSION


def _write_wiretape_set(n: int, root: Path) -> float:
    name = f"mocks-{n}"
    marker = root / name / ".bench-generated"
    if _fresh(marker):
        return float("nan")
    t0 = time.perf_counter()
    now = time.time()
    info = SetInfo(
        name=name,
        created=now,
        app_command="bench/mockserve.py",
        deps=(),
    )
    mocks = []
    for i in range(1, n + 1):
        body = item_body(i)
        mocks.append(
            Mock(
                id=f"{DEP}-{i:05d}",
                dep=DEP,
                protocol="http",
                request=HttpRequest(
                    "GET",
                    f"/item/{i}",
                    (("Host", "api.example.test"), ("Accept", "application/json")),
                ),
                response=HttpResponse(
                    200,
                    "OK",
                    (("Content-Type", "application/json"), ("Content-Length", str(len(body)))),
                    body,
                ),
                test=None,
                link=LinkKind.SESSION,
                started=now,
                duration=0.001,
            )
        )
    # Queued without waiting, so the writer folds them into few rewrites of _session.yaml.
    with SetWriter(root, info, overwrite=True) as writer:
        futures = [writer.add_session_mock(m) for m in mocks]
    for f in futures:
        f.result()
    marker.write_text(GEN_VERSION)
    return time.perf_counter() - t0


def _write_wiremock(n: int, root: Path) -> float:
    marker = root / ".bench-generated"
    if _fresh(marker):
        return float("nan")
    t0 = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    (root / "mappings").mkdir(parents=True)
    (root / "__files").mkdir()
    stubs = []
    for i in range(1, n + 1):
        body = item_body(i).decode()
        stubs.append(
            {
                "request": {"method": "GET", "url": f"/item/{i}"},
                "response": {
                    "status": 200,
                    "headers": {
                        "Content-Type": "application/json",
                        "Content-Length": str(len(body)),
                    },
                    "body": body,
                },
            }
        )
    (root / "mappings" / "items.json").write_text(json.dumps({"mappings": stubs}))
    marker.write_text(GEN_VERSION)
    return time.perf_counter() - t0


def _write_flows(n: int, out: Path) -> float:
    marker = out.with_suffix(".generated")
    if _fresh(marker) and out.exists():
        return float("nan")
    t0 = time.perf_counter()
    subprocess.run(
        [
            str(MITM_PYTHON),
            str(BENCH_DIR / "peers" / "mitm_flows.py"),
            str(n),
            str(out),
            FAKE_UPSTREAM[0],
            str(FAKE_UPSTREAM[1]),
        ],
        check=True,
        timeout=300,
    )
    marker.write_text(GEN_VERSION)
    return time.perf_counter() - t0


def prepare(n: int, peers: dict[str, str | None]) -> Dataset:
    base = WORK / "mockdata"
    base.mkdir(parents=True, exist_ok=True)
    gen: dict[str, float] = {}
    gen["wiretape"] = _write_wiretape_set(n, base / "sets")
    wm_root = base / f"wiremock-{n}"
    if peers.get("wiremock") is None:
        gen["wiremock"] = _write_wiremock(n, wm_root)
    flows: Path | None = None
    if peers.get("mitmproxy") is None:
        flows = base / f"items-{n}.flows"
        gen["mitmproxy"] = _write_flows(n, flows)
    return Dataset(n, base / "sets" / f"mocks-{n}", wm_root, flows, gen)


# --- servers ----------------------------------------------------------------------------------


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _check(base: str, n: int, who: str) -> None:
    """The server answers the first, a middle and the last path with the recorded body."""
    for i in sorted({1, max(1, n // 2), n}):
        status, body = _get(f"{base}/item/{i}")
        if status != 200 or json.loads(body) != json.loads(item_body(i)):
            raise RuntimeError(f"{who}: GET /item/{i} answered {status} {body[:200]!r}")


@contextmanager
def wiretape_server(
    ds: Dataset, port: int, cprofile: Path | None = None
) -> Iterator[tuple[str, Proc]]:
    args = [
        sys.executable,
        str(BENCH_DIR / "wt_mockserver.py"),
        "--set",
        str(ds.wiretape_set),
        "--dep",
        DEP,
        "--port",
        str(port),
    ]
    if cprofile is not None:
        args += ["--cprofile", str(cprofile)]
    proc = Proc(args, name=f"wt-mock-{ds.n}", log_dir=LOGS, port=port)
    try:
        wait_for_port(port, timeout=300, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.stop(timeout=30)
        out = proc.output()
        if "0 misses" not in out:
            log(f"wiretape mock server reported misses or did not stop cleanly:\n{out}")


@contextmanager
def wiremock_server(ds: Dataset, port: int) -> Iterator[tuple[str, Proc]]:
    jar = wiremock_jar()
    assert jar is not None
    proc = Proc(
        [
            which("java") or "java",
            "-jar",
            str(jar),
            "--port",
            str(port),
            "--bind-address",
            "127.0.0.1",
            "--no-request-journal",
            "--disable-banner",
            "--root-dir",
            str(ds.wiremock_root),
        ],
        name=f"wiremock-{ds.n}",
        log_dir=LOGS,
        port=port,
    )
    try:
        wait_for_port(port, timeout=120, proc=proc)
        status, body = _get(f"http://127.0.0.1:{port}/__admin/mappings?limit=1")
        total = json.loads(body)["meta"]["total"]
        if status != 200 or total != ds.n:
            raise RuntimeError(f"WireMock loaded {total} stubs, expected {ds.n}")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.stop(timeout=15)


@contextmanager
def mitm_server(ds: Dataset, port: int) -> Iterator[tuple[str, Proc]]:
    assert ds.mitm_flows is not None
    proc = Proc(
        [
            str(MITMDUMP),
            "-q",
            "--listen-host",
            "127.0.0.1",
            "-p",
            str(port),
            "--mode",
            f"reverse:http://{FAKE_UPSTREAM[0]}:{FAKE_UPSTREAM[1]}",
            "-S",
            str(ds.mitm_flows),
            "--server-replay-reuse",
            "--set",
            "server_replay_extra=404",
            "--set",
            "connection_strategy=lazy",
            "--set",
            f"confdir={WORK / 'mitm-conf'}",
        ],
        name=f"mitmdump-replay-{ds.n}",
        log_dir=LOGS,
        port=port,
    )
    try:
        wait_for_port(port, timeout=300, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.stop(timeout=15)


Server = Callable[[Dataset, int], AbstractContextManager[tuple[str, Proc]]]
SERVERS: dict[str, tuple[Server, str | None]] = {
    # name -> (context manager, peer it needs)
    "wiretape": (wiretape_server, None),
    "wiremock": (wiremock_server, "wiremock"),
    "mitmdump": (mitm_server, "mitmproxy"),
}


def run_round(
    ds: Dataset,
    servers: list[str],
    rnd: int,
    *,
    duration: float,
    warmup: float,
    jvm_warmup: float,
    conns: int,
) -> list[Sample]:
    samples: list[Sample] = []
    env = {"WT_PATHS": str(ds.n), "WT_PREFIX": "/item/"}
    for name in servers:
        server, _ = SERVERS[name]
        port = free_port()
        t0 = time.perf_counter()
        with server(ds, port) as (base, proc):
            ready = time.perf_counter() - t0
            _check(base, ds.n, name)
            warm = warmup + (jvm_warmup if name == "wiremock" else 0.0)
            run_wrk(f"{base}/", conns=conns, duration=warm, script=LUA, env=env)
            cpu0 = cpu_seconds(proc.pid)
            res = run_wrk(f"{base}/", conns=conns, duration=duration, script=LUA, env=env)
            cpu1 = cpu_seconds(proc.pid)
            rss = peak_rss_mb(proc.pid)
        per_req = {
            "cpu_user_us_per_req": (cpu1[0] - cpu0[0]) / max(res.requests, 1) * 1e6,
            "cpu_sys_us_per_req": (cpu1[1] - cpu0[1]) / max(res.requests, 1) * 1e6,
        }
        samples.append(
            Sample(
                bench="mock",
                target=f"N={ds.n}",
                config=name,
                conns=conns,
                round=rnd,
                rps=res.rps,
                p50_ms=res.p50_ms,
                p99_ms=res.p99_ms,
                requests=res.requests,
                non2xx=res.non2xx,
                socket_errors=res.socket_errors,
                extra={"startup_s": ready, "peak_rss_mb": rss, **per_req},
            )
        )
        log(
            f"mock N={ds.n} {name:9} round {rnd}: {res.rps:9.0f} req/s  "
            f"p50 {res.p50_ms:.2f} ms  p99 {res.p99_ms:.2f} ms  non2xx {res.non2xx}  "
            f"ready in {ready:.1f}s  peak RSS {rss:.0f} MiB"
        )
    return samples
