"""The app and the servers around it, set up the same way for recording and for replay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wiretape.config import Config, DepConfig
from wiretape.proxy import tls
from wiretape.proxy.server import Handler, Listener
from wiretape.runner.app import AppProcess
from wiretape.runner.env import app_environment


class Stage:
    """One listener per dependency, the forward proxy when enabled, then the app itself."""

    def __init__(self, cfg: Config, *, log_path: Path, echo: bool = False) -> None:
        self.cfg = cfg
        self.log_path = log_path
        self.echo = echo
        self.listeners: list[Listener] = []
        self.addresses: dict[str, str] = {}
        self.ca: tls.CertificateAuthority | None = None
        self.forward: str | None = None
        self.app: AppProcess | None = None

    async def _listen(self, name: str, handler: Handler) -> Listener:
        listener = Listener(name, handler)
        await listener.start()
        self.listeners.append(listener)
        return listener

    async def serve_deps(
        self,
        label: str,
        dep_handler: Callable[[DepConfig], Handler],
        forward_handler: Callable[[tls.CertificateAuthority], Handler],
    ) -> None:
        if self.cfg.outbound_http == "proxy" or any(
            d.protocol in ("postgres", "mysql", "redis", "auto") and d.client_tls == "accept"
            for d in self.cfg.deps.values()
        ):
            # Intercepted HTTPS and databases' in-protocol TLS present certificates of this CA.
            self.ca = tls.CertificateAuthority.load_or_create()
        for dep in self.cfg.deps.values():
            listener = await self._listen(f"{label} {dep.name}", dep_handler(dep))
            self.addresses[dep.name] = listener.address
        if self.cfg.outbound_http == "proxy":
            assert self.ca is not None
            listener = await self._listen(f"{label} forward proxy", forward_handler(self.ca))
            self.forward = listener.address

    async def start_app(
        self, adjust_env: Callable[[dict[str, str]], dict[str, str]] | None = None
    ) -> AppProcess:
        """Start the app and wait until it is ready; ``adjust_env`` edits its environment last."""
        cfg = self.cfg
        env = app_environment(cfg, self.addresses, forward_proxy=self.forward, ca=self.ca)
        if adjust_env is not None:
            env = adjust_env(env)
        self.app = AppProcess(
            cfg.app.command,
            env=env,
            cwd=cfg.app.cwd,
            port=cfg.app.port,
            health=cfg.app.health,
            log_path=self.log_path,
            echo=self.echo,
        )
        await self.app.start()
        await self.app.wait_ready(cfg.app.startup_timeout)
        return self.app

    async def close(self) -> None:
        if self.app is not None:
            await self.app.stop()
        for listener in self.listeners:
            await listener.stop(grace=0.5)
