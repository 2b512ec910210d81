"""``wiretape test``: start the app against mock servers, replay every test, compare, report."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wiretape.chains import substitute
from wiretape.compare.diff import compare_responses
from wiretape.compare.render import render_json, render_junit, render_progress
from wiretape.compare.report import RunReport, TestResult
from wiretape.config import Config, DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import HttpResponse, Mock, TestCase, WireRequest
from wiretape.protocols.wire import codec_for
from wiretape.proxy.auto import wire_mock_handler
from wiretape.proxy.mockserver import MockHttpServer
from wiretape.proxy.mysql import MysqlMockServer
from wiretape.proxy.postgres import PgMockServer
from wiretape.proxy.redis import RedisMockServer
from wiretape.proxy.server import Handler
from wiretape.runner.client import AppClient, ReplayError
from wiretape.runner.clock import Clock, open_clock
from wiretape.runner.console import Live, say
from wiretape.runner.record import SUPPORTED, check_protocols
from wiretape.runner.stage import Stage
from wiretape.secrets import Secrets, secrets_path
from wiretape.store.reader import TestSet, load_set, pinned, resolve_set
from wiretape.store.yamlio import atomic_write


@dataclass(frozen=True, slots=True)
class TestOptions:
    set_name: str | None = None
    strict: bool = False
    strict_values: bool = False
    quiet: bool = False
    echo_app: bool = False
    freeze_time: bool = False  # run the app under libfaketime at each test's recorded time
    time_shift: float | None = None  # or at wiretape's clock plus this many seconds
    latency: str = "recorded"  # generic TCP answers: "recorded" pauses, or "none"


def with_dep_noise(mocks: Sequence[Mock], deps: Mapping[str, DepConfig]) -> list[Mock]:
    """``mocks`` keyed as the mock servers key live requests: without what each database
    dependency's ``request_noise`` names (its protocol's ``WireCodec.with_noise``)."""
    out = []
    for mock in mocks:
        dep = deps.get(mock.dep)
        if dep is not None and dep.request_noise and isinstance(mock.request, WireRequest):
            with_noise = codec_for(mock.protocol).with_noise
            if with_noise is not None:
                mock = dataclasses.replace(
                    mock, request=with_noise(mock.request, dep.request_noise)
                )
        out.append(mock)
    return out


def runs_dir(cfg: Config) -> Path:
    return cfg.dir / ".runs"


def new_run_id() -> str:
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}.{int(now * 1000) % 1000:03d}-{os.urandom(2).hex()}"


async def replay(
    cfg: Config,
    opts: TestOptions,
    *,
    responses: dict[str, HttpResponse | None] | None = None,
) -> tuple[RunReport, Path]:
    """Replay the set; ``responses``, when given, receives every test's live answer."""
    check_protocols(cfg)
    test_set = load_set(resolve_set(cfg.dir, opts.set_name))
    clock = open_clock(freeze=opts.freeze_time, shift=opts.time_shift, keep=cfg.app.env.keys())
    run_id = new_run_id()
    run_dir = runs_dir(cfg) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    http_noise = {
        name: (*cfg.request_noise, *dep.http_request_noise)
        for name, dep in cfg.deps.items()
        if dep.protocol == "http"
    }
    http_noise["outbound"] = cfg.request_noise
    index = MockIndex(
        with_dep_noise(test_set.session, cfg.deps),
        {test: with_dep_noise(mocks, cfg.deps) for test, mocks in test_set.mocks.items()},
        http_noise=http_noise,
    )
    secrets = Secrets(
        secrets_path(cfg.dir, test_set.info.name), cfg.secrets.all_headers, cfg.secrets.all_keys
    )
    stage = Stage(cfg, log_path=run_dir / "app.log", echo=opts.echo_app)
    started = time.time()
    t0 = time.perf_counter()
    results: list[TestResult] = []
    try:

        def dep_handler(dep: DepConfig) -> Handler:
            if dep.protocol in ("tcp", "auto"):
                return wire_mock_handler(
                    dep,
                    index,
                    test_set,
                    dep_handler,
                    SUPPORTED,
                    latency=opts.latency,
                    secrets=secrets,
                    ca=stage.ca,
                )
            if dep.protocol == "redis":
                return RedisMockServer(dep, index, ca=stage.ca).serve
            if dep.protocol == "mysql":
                return MysqlMockServer(dep, index, ca=stage.ca).serve
            if dep.protocol == "postgres":
                return PgMockServer(dep, index, ca=stage.ca).serve
            return MockHttpServer(dep.name, index, secrets=secrets).serve

        await stage.serve_deps(
            "mock",
            dep_handler,
            lambda ca: MockHttpServer("outbound", index, ca=ca, secrets=secrets).serve,
        )
        index.begin_test(None)
        if clock is not None:
            clock.start(test_set.tests)
            say(clock.describe(), quiet=opts.quiet)
        with pinned():
            await stage.start_app(clock.app_env if clock is not None else None)
            results = await _run_tests(
                cfg, test_set, index, opts, secrets, clock, responses=responses
            )
    finally:
        await stage.close()
        if clock is not None:
            clock.close()
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
    clock: Clock | None = None,
    *,
    responses: dict[str, HttpResponse | None] | None = None,
) -> list[TestResult]:
    live = Live(enabled=not opts.quiet)
    client = AppClient("127.0.0.1", cfg.app.port)
    results: list[TestResult] = []
    failed = 0
    total = len(test_set.tests)
    base_noise = (*cfg.noise, *test_set.info.noise)
    sources: set[str] | None = None  # the tests whose live answers are kept
    if responses is None:
        responses = {}  # live answers, for chained values: only those that later tests need
        sources = {chain.source for test in test_set.tests for chain in test.chains}
    try:
        for done, test in enumerate(test_set.tests):
            live.show(render_progress(done, total, failed) + f"  {test.id}")
            if clock is not None:
                clock.before_test(test)
            result = await _run_one(
                test,
                index,
                client,
                base_noise,
                opts,
                secrets,
                responses=responses,
                strict_set=test_set.info.strict_values,
            )
            if sources is not None and test.id not in sources:
                responses.pop(test.id, None)
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
    *,
    responses: dict[str, HttpResponse | None] | None = None,
    strict_set: bool = False,
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
    notes: list[str] = []
    if test.chains and responses is not None:
        # Values an earlier response handed out are taken from that response's live answer.
        req, unfollowed = substitute(req, test.chains, responses)
        if unfollowed:
            notes.append("chained values not followed: " + "; ".join(unfollowed))
    missing = secrets.missing_fields(req)
    if missing:
        notes.append(
            f"no recorded value for the redacted field(s) {', '.join(missing)} "
            f"(looked in {secrets.path}); the placeholder was sent"
        )
    note = "; ".join(notes)
    live = secrets.reveal_request(req)
    t0 = time.perf_counter()
    try:
        actual = await client.send(live)
    except ReplayError as exc:
        if responses is not None:
            responses[test.id] = None
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
    if responses is not None:
        responses[test.id] = actual
    diffs = compare_responses(
        test.response,
        actual,
        noise=(*base_noise, *test.noise),
        typed_values=not (opts.strict_values or strict_set),
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
