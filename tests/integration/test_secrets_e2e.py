"""Credentials never reach a recorded set, the scan finds none, and replay still passes.

The example shop sends its payments key as a header. tests/apps/secret_app.py and its dependency
tests/apps/secret_upstream.py pass credentials in JSON and form bodies, query strings and text:
passwords, an OAuth client secret and tokens, and a Stripe-style key.
"""

from __future__ import annotations

import json
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from tests.helpers.procs import EXAMPLES_DIR, REPO_ROOT, Proc, free_port, start_examples
from tests.helpers.wt import Recording, load, run_test_json, run_wiretape, write_config

from wiretape.model import HttpRequest, body_bytes

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


APPS = REPO_ROOT / "tests" / "apps"


@dataclass(frozen=True)
class Credentials:
    client_secret: str = "cs-" + secrets.token_hex(10)
    stripe_key: str = "sk_" + "test_" + secrets.token_hex(12)
    password: str = "pw-" + secrets.token_hex(6) + ' &"é'
    wrong_password: str = "wrong-" + secrets.token_hex(6)
    db_password: str = "db-" + secrets.token_hex(6)

    def values(self) -> list[str]:
        return [
            self.client_secret,
            self.stripe_key,
            self.password,
            self.wrong_password,
            self.db_password,
        ]


def _drive(url: str, creds: Credentials) -> dict[str, httpx.Response]:
    """The traffic of the recording, against the record proxy at ``url``."""
    with httpx.Client(base_url=url, trust_env=False, timeout=15) as client:
        return {
            "login": client.post("/login", json={"username": "ann", "password": creds.password}),
            "charge": client.post("/charge", json={"amount": 500}),
            "account": client.get("/account"),
            "config": client.get("/config"),
            "denied": client.post(
                "/login", json={"username": "bob", "password": creds.wrong_password}
            ),
        }


def _files(set_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(set_dir)): p.read_bytes() for p in set_dir.rglob("*") if p.is_file()}


def test_body_credentials_are_redacted_scanned_clean_and_replayed(tmp_path: Path) -> None:
    creds = Credentials()
    upstream_port = free_port()
    upstream = Proc(
        [
            sys.executable,
            str(APPS / "secret_upstream.py"),
            "--port",
            str(upstream_port),
            "--client-secret",
            creds.client_secret,
            "--stripe-key",
            creds.stripe_key,
            "--password",
            creds.password,
        ],
        name="secret-upstream",
        log_dir=tmp_path / "logs",
        port=upstream_port,
    )
    with upstream:
        upstream.wait_ready()
        port = free_port()
        write_config(
            tmp_path,
            command=f"{sys.executable} {APPS / 'secret_app.py'} --port {port}",
            port=port,
            health="/healthz",
            env={
                "UPSTREAM_URL": "http://{deps.up}",
                "CLIENT_SECRET": creds.client_secret,
                "STRIPE_KEY": creds.stripe_key,
                "DB_PASSWORD": creds.db_password,
                "USER_PASSWORD": creds.password,
            },
            deps={"up": {"protocol": "http", "upstream": f"http://127.0.0.1:{upstream_port}"}},
        )
        with Recording(tmp_path) as rec:
            seen = _drive(rec.url, creds)
            assert rec.stop() == 0, rec.output()
    assert [r.status_code for r in seen.values()] == [200, 201, 200, 200, 401], [
        r.text for r in seen.values()
    ]
    token = seen["login"].json()["session_token"]
    charge_secret = seen["charge"].json()["charge"]["client_secret"]

    # Nothing secret is in the set, in any file; the secrets file has it all.
    set_dir = tmp_path / "wiretape" / "s"
    leaked = {
        name: value
        for name, data in _files(set_dir).items()
        for value in [*creds.values(), token, charge_secret]
        for spelled in (value, json.dumps(value), json.dumps(value, ensure_ascii=False))
        if spelled.encode() in data
    }
    assert leaked == {}
    secrets_file = tmp_path / "wiretape" / ".secrets" / "s.yaml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    table = yaml.safe_load(secrets_file.read_text())["secrets"]
    assert set(table.values()) >= {*creds.values(), token, charge_secret}

    # The bodies are still typed and readable, with placeholders where the values were.
    recorded = load(tmp_path)
    login = recorded.tests[0]
    assert login.request.path == "/login"
    assert json.loads(body_bytes(login.request.body))["password"].startswith("wiretape:secret:")
    assert login.response is not None
    assert json.loads(body_bytes(login.response.body))["token_type"] == "Bearer"
    mocks = [m for ms in recorded.mocks.values() for m in ms]
    requests = {m.request.path: m.request for m in mocks if isinstance(m.request, HttpRequest)}
    token_form = body_bytes(requests["/oauth/token"].body).decode()
    assert "&client_id=shop&client_secret=wiretape:secret:" in token_form
    assert json.loads(body_bytes(requests["/v1/charges"].body))["api_key"] == table_key(
        table, creds.stripe_key
    )
    assert requests["/v1/account"].query == f"api_key={table_key(table, creds.stripe_key)}"
    login_doc = yaml.safe_load((set_dir / "tests" / f"{login.id}.yaml").read_text())
    assert "json" in login_doc["request"]["body"]

    scan = run_wiretape(tmp_path, "secrets", "scan", "s")
    assert scan.returncode == 0, scan.stdout + scan.stderr

    # Replay: real values go back in, live requests match their redacted recordings.
    done, report = run_test_json(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["summary"]["passed"] == 5 and report["summary"]["failed"] == 0

    # Without the secrets file the inbound password cannot be put back (the report names the
    # field), and the Stripe key the app sends is unknown, so its call misses loudly.
    secrets_file.rename(tmp_path / "moved-secrets.yaml")
    done, report = run_test_json(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    login_result, charge_result, account_result = report["results"][:3]
    assert login_result["target"] == "/login" and login_result["status"] == "failed"
    assert "no recorded value for the redacted field(s) body.password" in login_result["message"]
    assert [d["path"] for d in login_result["differences"]][:1] == ["status"]
    for result, call in ((charge_result, "POST /v1/charges"), (account_result, "GET /v1/account")):
        assert result["status"] == "failed", result
        miss = result["misses"][0]
        assert miss["request"].startswith(call)
        differences = [line for cand in miss["candidates"] for line in cand["differences"]]
        assert any("wiretape:secret:unknown-1" in line for line in differences), miss
    out = done.stdout + done.stderr
    for report_file in (tmp_path / "wiretape" / ".runs").glob("*/*"):
        if report_file.suffix in (".json", ".xml"):
            out += report_file.read_text()
    assert [v for v in [*creds.values(), token] if v in out] == []


def table_key(table: dict[str, str], value: str) -> str:
    return next(p for p, v in table.items() if v == value)
