"""The environment the app runs in, while recording and while replaying."""

from __future__ import annotations

import os
from collections.abc import Mapping

from wiretape.config import Config, render_env
from wiretape.proxy import tls

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def app_environment(
    cfg: Config,
    dep_addresses: Mapping[str, str],
    *,
    forward_proxy: str | None,
    ca: tls.CertificateAuthority | None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``base`` (default: our own environment) + app.env templates + proxy and CA variables.

    ``NO_PROXY`` lists the named dependencies' exact addresses (a loopback one also under the
    name ``localhost``) so the app reaches them directly while every other HTTP(S) call goes
    through the forward proxy. Clients that ignore ports in ``NO_PROXY`` (curl) bypass the proxy
    for those hosts entirely.
    """
    env = dict(os.environ if base is None else base)
    for var in (*PROXY_VARS, "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(var, None)
    if forward_proxy is not None:
        for var in PROXY_VARS:
            env[var] = f"http://{forward_proxy}"
        bypass = []
        for address in dep_addresses.values():
            bypass.append(address)
            host, _, port = address.rpartition(":")
            if host == "127.0.0.1":  # the app may name a dependency's listener either way
                bypass.append(f"localhost:{port}")
        bypass += [f"127.0.0.1:{cfg.app.port}", f"localhost:{cfg.app.port}"]
        env["NO_PROXY"] = env["no_proxy"] = ",".join(bypass)
    if ca is not None:
        env.update(tls.app_env(ca))
    for name, template in cfg.app.env.items():
        env[name] = render_env(template, dep_addresses, where=f"app.env.{name}")
    return env
