"""The command line's contract: exit codes and messages for the user's common mistakes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.wt import run_wiretape, write_config

pytestmark = pytest.mark.integration


def upstreamless_config(tmp_path: Path) -> None:
    port = free_port()
    write_config(
        tmp_path,
        command=f"{sys.executable} {REPO_ROOT / 'tests/apps/upstream.py'} --port {port}",
        port=port,
        health="/healthz",
        outbound_http="off",
    )


def test_record_fails_when_the_traffic_command_fails(tmp_path: Path) -> None:
    upstreamless_config(tmp_path)
    script = (
        "import os, urllib.request\n"
        "urllib.request.urlopen(os.environ['WIRETAPE_URL'] + '/item/1').read()\n"
        "raise SystemExit(3)\n"
    )
    (tmp_path / "traffic.py").write_text(script)
    done = run_wiretape(tmp_path, "record", "--set", "s", "--run", f"{sys.executable} traffic.py")
    assert done.returncode == 1, done.stderr
    assert "traffic command failed with exit code 3" in done.stderr
    # What was recorded before the failure is kept, and the set is closed.
    text = (tmp_path / "wiretape" / "s" / "set.yaml").read_text()
    assert "closed: true" in text
    assert (tmp_path / "wiretape" / "s" / "tests" / "0001-get-item-1.yaml").is_file()


def test_record_succeeds_when_the_traffic_command_succeeds(tmp_path: Path) -> None:
    upstreamless_config(tmp_path)
    done = run_wiretape(tmp_path, "record", "--set", "s", "--run", "true")
    assert done.returncode == 0, done.stderr
    assert "recorded 0 tests and 0 mocks" in done.stderr


def test_test_without_any_set_is_a_setup_error(tmp_path: Path) -> None:
    upstreamless_config(tmp_path)
    done = run_wiretape(tmp_path, "test")
    assert done.returncode == 2
    assert "no test sets found" in done.stderr and "hint:" in done.stderr


def test_report_without_any_run_is_a_setup_error(tmp_path: Path) -> None:
    upstreamless_config(tmp_path)
    done = run_wiretape(tmp_path, "report")
    assert done.returncode == 2
    assert "run `wiretape test` first" in done.stderr


def test_no_config_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    done = run_wiretape(tmp_path, "test")
    assert done.returncode == 2
    assert "no wiretape.yaml found" in done.stderr


def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    done = run_wiretape(tmp_path, "test", "--format", "xml")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_flags_override_the_file(tmp_path: Path) -> None:
    upstreamless_config(tmp_path)
    other = free_port()
    done = run_wiretape(
        tmp_path,
        "record",
        "--set",
        "s",
        "--run",
        "true",
        "--port",
        str(other),
        "--command",
        f"{sys.executable} {REPO_ROOT / 'tests/apps/upstream.py'} --port {other}",
    )
    assert done.returncode == 0, done.stderr
    bad = run_wiretape(tmp_path, "record", "--set", "t", "--run", "true", "--port", "70000")
    assert bad.returncode == 2
    assert "--port" in bad.stderr


def test_ctrl_c_while_the_app_starts_stops_cleanly(tmp_path: Path) -> None:
    import signal
    import time

    from tests.helpers.wt import Recording

    marker = f"sleep 60.{free_port()}"  # a unique command line to look for
    write_config(
        tmp_path,
        command=marker,
        port=free_port(),
        outbound_http="off",
    )
    rec = Recording(tmp_path)
    rec.start(wait_port=False)
    deadline = time.monotonic() + 20
    while marker not in _process_list() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker in _process_list(), rec.output()
    assert rec.stop(signal.SIGINT) == 0, rec.output()
    assert "stopped before the app was ready" in rec.output()
    deadline = time.monotonic() + 10
    while marker in _process_list() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker not in _process_list(), "the app outlived wiretape"


def _process_list() -> str:
    return "\n".join(
        (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and (p / "cmdline").exists()
    )


def test_secrets_scan_uses_the_projects_own_secret_keys(tmp_path: Path) -> None:
    import json as _json
    import time as _time

    from wiretape.model import HttpRequest, HttpResponse, SetInfo, TestCase
    from wiretape.store.writer import SetWriter

    sets = tmp_path / "wiretape"
    with SetWriter(sets, SetInfo("s", _time.time(), "app")) as writer:
        body = _json.dumps({"pin_code": "4711-0815"}).encode()
        response = HttpResponse(200, "OK", (("Content-Type", "application/json"),), body)
        writer.add_test(TestCase("0001-get-pin", HttpRequest("GET", "/pin", ()), response), [])
    (tmp_path / "wiretape.yaml").write_text("app: {command: run, port: 8000}\n")
    clean = run_wiretape(tmp_path, "secrets", "scan", "s")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (tmp_path / "wiretape.yaml").write_text(
        "app: {command: run, port: 8000}\nsecrets: {keys: [pin_code]}\n"
    )
    found = run_wiretape(tmp_path, "secrets", "scan", "s")
    assert found.returncode == 1
    assert "pin_code" in found.stdout
