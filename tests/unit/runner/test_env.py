"""The app's environment (``wiretape.runner.env``): which addresses bypass the forward proxy."""

from __future__ import annotations

from pathlib import Path

from wiretape.config import load_config
from wiretape.runner.env import app_environment

CONFIG = """\
app: {command: run, port: 8000}
deps:
  up: {protocol: auto, upstream: 10.0.0.7:7000}
  db: {protocol: postgres, upstream: 10.0.0.8:5432}
"""


def test_a_dependency_is_reached_directly_under_either_loopback_name(tmp_path: Path) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    cfg = load_config(path)
    addresses = {"up": "127.0.0.1:41001", "db": "127.0.0.1:41002"}
    env = app_environment(cfg, addresses, forward_proxy="127.0.0.1:41000", ca=None, base={})
    bypass = env["NO_PROXY"].split(",")
    assert env["no_proxy"] == env["NO_PROXY"]
    for port in (41001, 41002, 8000):
        assert f"127.0.0.1:{port}" in bypass
        assert f"localhost:{port}" in bypass
    assert not any(entry.endswith(":41000") for entry in bypass)  # the forward proxy itself
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:41000"


def test_no_forward_proxy_no_proxy_variables(tmp_path: Path) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    base = {"HTTPS_PROXY": "http://corp:3128", "NO_PROXY": "x", "KEEP": "1"}
    env = app_environment(load_config(path), {}, forward_proxy=None, ca=None, base=base)
    assert "HTTPS_PROXY" not in env and "NO_PROXY" not in env
    assert env["KEEP"] == "1"
