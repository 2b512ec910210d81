"""The example shop's payments key never reaches the recorded set, and replay still passes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.helpers.procs import EXAMPLES_DIR, free_port, start_examples
from tests.helpers.wt import Recording, run_test_json, run_wiretape, write_config

pytestmark = pytest.mark.integration


def test_credentials_are_redacted_and_restored(tmp_path: Path) -> None:
    with start_examples(tmp_path / "upstreams") as services:
        port = free_port()
        write_config(
            tmp_path,
            command=f"{sys.executable} {EXAMPLES_DIR / 'shop' / 'app.py'} --port {port}",
            port=port,
            health="/healthz",
            env={
                "PAYMENTS_URL": "http://{deps.payments}",
                "PAYMENTS_KEY": services.payments_key,
                "RATES_URL": services.rates_url,
            },
            deps={"payments": {"protocol": "http", "upstream": services.payments_url}},
            extra={
                "tls": {"extra_ca": str(services.rates_ca)},
                "noise": ["body.created_at", "body[*].created_at", "body.quoted_at"],
            },
        )
        client = f"{sys.executable} {EXAMPLES_DIR / 'client.py'}"
        rec = Recording(tmp_path, args=["--run", client])
        rec.start(wait_port=False)
        assert rec.wait(120) == 0, rec.output()
        services.stop_upstreams()

    set_dir = tmp_path / "wiretape" / "s"
    leaks = [
        p
        for p in set_dir.rglob("*")
        if p.is_file() and services.payments_key.encode() in p.read_bytes()
    ]
    assert leaks == []
    mocks = "".join(p.read_text() for p in (set_dir / "mocks").glob("*.yaml"))
    assert "Bearer wiretape:secret:1" in mocks
    secrets_file = tmp_path / "wiretape" / ".secrets" / "s.yaml"
    assert services.payments_key in secrets_file.read_text()
    assert ".secrets/" in (tmp_path / "wiretape" / ".gitignore").read_text().splitlines()

    scan = run_wiretape(tmp_path, "secrets", "scan", "s")
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert "no credential-looking values" in scan.stderr

    done, report = run_test_json(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] >= 8
