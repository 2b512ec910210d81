"""``wiretape test``: start the app against mock servers, replay every test, compare, report."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from wiretape.compare.diff import compare_responses
from wiretape.compare.render import render_json, render_junit, render_progress
from wiretape.compare.report import RunReport, TestResult
from wiretape.config import Config
from wiretape.match.index import MockIndex
from wiretape.model import TestCase
from wiretape.proxy.mockserver import MockHttpServer
from wiretape.runner.client import AppClient, ReplayError
from wiretape.runner.console import Live
from wiretape.runner.record import check_protocols
from wiretape.runner.stage import Stage
from wiretape.secrets import Secrets, secrets_path
from wiretape.store.reader import TestSet, load_set, resolve_set
from wiretape.store.yamlio import atomic_write


@dataclass(frozen=True, slots=True)
class TestOptions:
    set_name: str | None = None
    strict: bool = False
    strict_values: bool = False
    quiet: bool = False
    echo_app: bool = False


def runs_dir(cfg: Config) -> Path:
    return cfg.dir / ".runs"


def new_run_id() -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{os.urandom(2).hex()}"


async def replay(cfg: Config, opts: TestOptions) -> tuple[RunReport, Path]:
    check_protocols(cfg)
    test_set = load_set(resolve_set(cfg.dir, opts.set_name))
    run_id = new_run_id()
    run_dir = runs_dir(cfg) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    index = MockIndex(test_set.session, test_set.mocks)
    secrets = Secrets(secrets_path(cfg.dir, test_set.info.name))
    stage = Stage(cfg, log_path=run_dir / "app.log", echo=opts.echo_app)
    started = time.time()
    t0 = time.perf_counter()
    results: list[TestResult] = []
    try:
        await stage.serve_deps(
            "mock",
            lambda dep: MockHttpServer(dep.name, index, secrets=secrets).serve,
            lambda ca: MockHttpServer("outbound", index, ca=ca, secrets=secrets).serve,
        )
        index.begin_test(None)
        await stage.start_app()
        results = await _run_tests(cfg, test_set, index, opts, secrets)
    finally:
        await stage.close()
    report = RunReport(
        run_id=run_id,
        set_name=test_set.info.name,
        started=started,
        duration=time.perf_counter() - t0,
        results=tuple(results),
        strict=opts.strict,
        session_unused=tuple(index.session_unused()),
    )
    atomic_write(run_dir / "report.json", render_json(report))
    atomic_write(run_dir / "junit.xml", render_junit(report))
    return report, run_dir


async def _run_tests(
    cfg: Config,
    test_set: TestSet,
    index: MockIndex,
    opts: TestOptions,
    secrets: Secrets,
) -> list[TestResult]:
    live = Live(enabled=not opts.quiet)
    client = AppClient("127.0.0.1", cfg.app.port)
    results: list[TestResult] = []
    failed = 0
    total = len(test_set.tests)
    base_noise = (*cfg.noise, *test_set.info.noise)
    try:
        for done, test in enumerate(test_set.tests):
            live.show(render_progress(done, total, failed) + f"  {test.id}")
            result = await _run_one(test, index, client, base_noise, opts, secrets)
            if result.status in ("failed", "error"):
                failed += 1
            results.append(result)
        index.begin_test(None)
        live.show(render_progress(total, total, failed))
    finally:
        live.done()
        client.close()
    return results


async def _run_one(
    test: TestCase,
    index: MockIndex,
    client: AppClient,
    base_noise: tuple[str, ...],
    opts: TestOptions,
    secrets: Secrets,
) -> TestResult:
    req = test.request
    common = _Common(test.id, req.method, req.target)
    if test.upgraded:
        return TestResult(
            status="skipped",
            duration=0.0,
            message="switched protocols (101); the tunnel is not replayed",
            test_id=common.test_id,
            method=common.method,
            target=common.target,
        )
    if test.response is None or test.error is not None:
        return TestResult(
            status="skipped",
            duration=0.0,
            message=f"recorded as failing, not replayed: {test.error}",
            test_id=common.test_id,
            method=common.method,
            target=common.target,
        )
    index.begin_test(test.id)
    note = ""
    missing = secrets.missing(req.headers)
    if missing:
        note = (
            f"no recorded value for the redacted header(s) {', '.join(missing)} "
            f"(looked in {secrets.path}); the placeholder was sent"
        )
    live = dataclasses.replace(req, headers=secrets.reveal_headers(req.headers))
    t0 = time.perf_counter()
    try:
        actual = await client.send(live)
    except ReplayError as exc:
        return TestResult(
            status="error",
            duration=time.perf_counter() - t0,
            message=f"no response from the app: {exc}" + (f"; {note}" if note else ""),
            misses=tuple(index.misses(test.id)),
            test_id=common.test_id,
            method=common.method,
            target=common.target,
        )
    duration = time.perf_counter() - t0
    diffs = compare_responses(
        test.response,
        actual,
        noise=(*base_noise, *test.noise),
        typed_values=not opts.strict_values,
        recorded_at=test.started or None,
    )
    misses = tuple(index.misses(test.id))
    unused = tuple(index.unused(test.id))
    failing = bool(diffs or misses or (opts.strict and unused))
    return TestResult(
        status="failed" if failing else "passed",
        duration=duration,
        differences=tuple(diffs),
        misses=misses,
        unused_mocks=unused,
        message=note,
        test_id=common.test_id,
        method=common.method,
        target=common.target,
    )


@dataclass(frozen=True, slots=True)
class _Common:
    test_id: str
    method: str
    target: str


def latest_run(cfg: Config, run_id: str | None = None) -> Path | None:
    root = runs_dir(cfg)
    if run_id is not None:
        path = root / run_id
        return path if (path / "report.json").exists() else None
    if not root.is_dir():
        return None
    runs = [p for p in root.iterdir() if (p / "report.json").exists()]
    if not runs:
        return None
    return max(runs, key=lambda p: ((p / "report.json").stat().st_mtime_ns, p.name))
