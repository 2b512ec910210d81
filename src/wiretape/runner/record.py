"""``wiretape record``: run the app behind the proxies and write a test set."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass

import wiretape
from wiretape.config import Config
from wiretape.errors import SetupError
from wiretape.model import DepInfo, SetInfo
from wiretape.proxy import tls
from wiretape.proxy.inbound import InboundHooks
from wiretape.proxy.outbound import DepHooks, ForwardProxyHooks
from wiretape.proxy.server import Listener
from wiretape.runner.app import AppProcess
from wiretape.runner.console import Live, say
from wiretape.runner.env import app_environment
from wiretape.runner.recorder import Recorder
from wiretape.store.writer import SetWriter

SUPPORTED = {"http"}


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
    recorder = Recorder(
        writer,
        concurrent=opts.concurrent,
        on_change=lambda: live.show(
            f"recording {name}: {recorder.tests} tests, {recorder.mocks} mocks"
            + (f", {recorder.errors} errors" if recorder.errors else "")
        ),
    )
    listeners: list[Listener] = []
    app: AppProcess | None = None
    inbound: Listener | None = None
    code = 0
    try:
        client_tls = tls.client_context(verify=cfg.tls.verify_upstream, extra_ca=cfg.tls.extra_ca)
        addresses: dict[str, str] = {}
        for dep in cfg.deps.values():
            hooks = DepHooks(recorder, dep.name, dep.upstream, client_tls=client_tls)
            listener = Listener(f"dep {dep.name}", hooks.serve)
            await listener.start()
            listeners.append(listener)
            addresses[dep.name] = listener.address
        ca = None
        forward = None
        if cfg.outbound_http == "proxy":
            ca = tls.CertificateAuthority.load_or_create()
            fwd = Listener("forward proxy", ForwardProxyHooks(recorder, ca, client_tls).serve)
            await fwd.start()
            listeners.append(fwd)
            forward = fwd.address
        env = app_environment(cfg, addresses, forward_proxy=forward, ca=ca)
        app = AppProcess(
            cfg.app.command,
            env=env,
            cwd=cfg.app.cwd,
            port=cfg.app.port,
            health=cfg.app.health,
            log_path=writer.path / "app.log",
            echo=opts.echo_app,
        )
        await app.start()
        await app.wait_ready(cfg.app.startup_timeout)
        inbound = Listener(
            "inbound",
            InboundHooks(recorder, "127.0.0.1", cfg.app.port).serve,
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
        code = await _wait(app, opts, url)
    finally:
        live.done()
        if inbound is not None:
            await inbound.stop()
        if app is not None:
            await app.stop()
        for listener in listeners:
            await listener.stop(grace=0.5)
        writer.close()
    say(
        f"recorded {recorder.tests} tests and {recorder.mocks} mocks into {writer.path}"
        + (f" ({recorder.errors} with errors)" if recorder.errors else ""),
        quiet=opts.quiet,
    )
    return code


async def _wait(app: AppProcess, opts: RecordOptions, url: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
