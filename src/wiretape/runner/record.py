"""``wiretape record``: run the app behind the proxies and write a test set."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import wiretape
from wiretape.config import Config, DepConfig
from wiretape.errors import SetupError
from wiretape.model import DepInfo, SetInfo
from wiretape.proxy import tls
from wiretape.proxy.auto import wire_record_handler
from wiretape.proxy.inbound import InboundHooks
from wiretape.proxy.mysql import MysqlRecordHooks
from wiretape.proxy.outbound import DepHooks, ForwardProxyHooks
from wiretape.proxy.postgres import PgRecordHooks
from wiretape.proxy.redis import RedisRecordHooks
from wiretape.proxy.server import Handler, Listener
from wiretape.runner.app import AppProcess
from wiretape.runner.console import Live, say
from wiretape.runner.recorder import Recorder
from wiretape.runner.stage import Stage
from wiretape.secrets import Secrets, ensure_gitignore, secrets_path
from wiretape.store.writer import SetWriter

SUPPORTED = {"http", "mysql", "postgres", "redis", "tcp", "auto"}
# Record proxies of the protocols with TLS options: (recorder, dep, *, ca, upstream_tls).
_DATABASE_HOOKS: dict[str, type[MysqlRecordHooks | PgRecordHooks | RedisRecordHooks]] = {
    "mysql": MysqlRecordHooks,
    "postgres": PgRecordHooks,
    "redis": RedisRecordHooks,
}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RecordOptions:
    run: str | None = None
    concurrent: bool = False
    overwrite: bool = False
    quiet: bool = False
    fsync: bool = False
    echo_app: bool = False


def check_protocols(cfg: Config) -> None:
    for dep in cfg.deps.values():
        if dep.protocol not in SUPPORTED:
            raise SetupError(
                f"deps.{dep.name}: protocol {dep.protocol!r} cannot be recorded by this version "
                f"of wiretape (supported: {', '.join(sorted(SUPPORTED))})"
            )


def new_set_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


async def record(cfg: Config, opts: RecordOptions) -> int:
    check_protocols(cfg)
    name = cfg.set_name or new_set_name()
    info = SetInfo(
        name=name,
        created=time.time(),
        app_command=cfg.app.command,
        deps=tuple(DepInfo(d.name, d.protocol, d.upstream) for d in cfg.deps.values()),
        wiretape_version=wiretape.__version__,
    )
    live = Live(enabled=not opts.quiet)
    writer = SetWriter(cfg.dir, info, fsync=opts.fsync, overwrite=opts.overwrite)
    recorder: Recorder
    ensure_gitignore(cfg.dir)
    recorder = Recorder(
        writer,
        secrets=Secrets(secrets_path(cfg.dir, name), cfg.secrets.all_headers, cfg.secrets.all_keys),
        concurrent=opts.concurrent,
        on_change=lambda: live.refresh(
            lambda: (
                f"recording {name}: {recorder.tests} tests, {recorder.mocks} mocks"
                + (f", {recorder.errors} errors" if recorder.errors else "")
            )
        ),
    )
    log_dir = cfg.dir / ".runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stage = Stage(cfg, log_path=log_dir / f"record-{name}.app.log", echo=opts.echo_app)
    # Ctrl-C and SIGTERM stop the recording cleanly at any point, start-up included.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    inbound: Listener | None = None
    code = 0
    try:
        client_tls = tls.client_context(verify=cfg.tls.verify_upstream, extra_ca=cfg.tls.extra_ca)

        def dep_handler(dep: DepConfig) -> Handler:
            verify = dep.upstream_tls == "verify-full"
            upstream_tls = tls.client_context(verify=verify, extra_ca=cfg.tls.extra_ca)
            if dep.protocol in ("tcp", "auto"):
                return wire_record_handler(
                    recorder, dep, dep_handler, SUPPORTED, ca=stage.ca, upstream_tls=upstream_tls
                )
            database = _DATABASE_HOOKS.get(dep.protocol)
            if database is not None:
                return database(recorder, dep, ca=stage.ca, upstream_tls=upstream_tls).serve
            return DepHooks(recorder, dep.name, dep.upstream, client_tls=client_tls).serve

        await stage.serve_deps(
            "dep",
            dep_handler,
            lambda ca: ForwardProxyHooks(recorder, ca, client_tls).serve,
        )
        app = await _unless_stopped(stage.start_app(), stop)
        if app is None:
            say("stopped before the app was ready", quiet=opts.quiet)
            return 0
        inbound = Listener(
            "inbound",
            InboundHooks(recorder, "127.0.0.1", cfg.app.port, lane_poll_us=cfg.lane_poll_us).serve,
            cfg.listen_host,
            cfg.listen_port,
        )
        try:
            await inbound.start()
        except OSError as exc:
            raise SetupError(
                f"cannot listen on {cfg.listen_host}:{cfg.listen_port}: {exc}\n"
                "  hint: pick another address with `listen:` or --listen"
            ) from None
        url = f"http://{inbound.address}"
        say(f"recording set {name!r} into {writer.path}", quiet=opts.quiet)
        say(f"send traffic to {url}" + ("" if opts.run else "; stop with Ctrl-C"), quiet=opts.quiet)
        code = await _wait(app, opts, url, stop)
    finally:
        live.done()
        if inbound is not None:
            await inbound.stop()
        await stage.close()
        if writer.backlog() > 1 << 20:
            say(f"writing {recorder.tests} tests into {writer.path} ...", quiet=opts.quiet)
            await _close_showing_progress(writer, recorder.tests, live)
        else:
            writer.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if writer.chains:
        say(
            f"found {writer.chains} chained value(s) (tokens, ids) that replay will follow",
            quiet=opts.quiet,
        )
    say(
        f"recorded {recorder.tests} tests and {recorder.mocks} mocks into {writer.path}"
        + (f" ({recorder.errors} with errors)" if recorder.errors else ""),
        quiet=opts.quiet,
    )
    return code


async def _close_showing_progress(writer: SetWriter, tests: int, live: Live) -> None:
    """``writer.close()`` in a thread, with the count of tests written so far on the console
    line: after a long uninterrupted load, writing every test's YAML takes a while."""
    closing = asyncio.ensure_future(asyncio.to_thread(writer.close))
    try:
        while not closing.done():
            live.show(f"written {writer.tests_written} of {tests} tests")
            await asyncio.wait({closing}, timeout=0.25)
    finally:
        live.done()
    closing.result()  # the writer's error, if any


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The result of ``work``, or None if ``stop`` is set first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopped.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _wait(app: AppProcess, opts: RecordOptions, url: str, stop: asyncio.Event) -> int:
    assert app.proc is not None
    waits: list[asyncio.Task[object]] = [
        asyncio.create_task(stop.wait()),
        asyncio.create_task(app.proc.wait()),
    ]
    traffic: asyncio.subprocess.Process | None = None
    try:
        if opts.run is not None:
            env = dict(os.environ, WIRETAPE_URL=url)
            traffic = await asyncio.create_subprocess_shell(
                opts.run, env=env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
            )
            waits.append(asyncio.create_task(traffic.wait()))
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if waits[1] in done:
            say(
                f"the app exited with code {app.proc.returncode} during the recording:\n"
                f"{app.last_output()}"
            )
            return 1
        if traffic is not None and traffic.returncode not in (None, 0):
            say(f"the traffic command failed with exit code {traffic.returncode}: {opts.run}")
            return 1
        return 0
    finally:
        for task in waits:
            task.cancel()
        if traffic is not None and traffic.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(traffic.pid, signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(traffic.wait(), 5)
