"""End to end: ``wiretape record`` a real app and its real dependencies, then ``wiretape test``.

Every wiretape run here is the CLI as a user starts it, in a directory holding wiretape.yaml. The
app is tests/apps/caller.py; its dependencies are two tests/apps/upstream.py processes, one plain
HTTP (a named dependency ``up``) and one HTTPS with its own test CA, reached through wiretape's
intercepting forward proxy. One module-wide recording is made with both upstreams running; they
are stopped before any replay, so a replay that reached a real dependency would fail.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers.procs import REPO_ROOT, Proc, free_port
from tests.helpers.wt import load, run_test_json, run_wiretape, write_config

from wiretape.model import Mock, TestCase, body_bytes
from wiretape.proxy.tls import issue_server_cert, make_test_ca
from wiretape.store.reader import TestSet

pytestmark = pytest.mark.integration

APPS = REPO_ROOT / "tests" / "apps"
SET = "main"

# The requests the recording's traffic command sends, in order.
TRAFFIC = [
    ("GET", "/twice", None),
    ("GET", "/secure", None),
    ("POST", "/create", {"name": "widget", "qty": 3}),
    ("GET", "/now", None),
]

# Sends TRAFFIC to $WIRETAPE_URL (never through a proxy) and writes what came back to argv[1].
TRAFFIC_SCRIPT = """\
import json, os, sys, urllib.error, urllib.request

base = os.environ["WIRETAPE_URL"]
steps = json.loads(sys.argv[2])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
seen = []
for method, path, payload in steps:
    data = None if payload is None else json.dumps(payload).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with opener.open(request, timeout=15) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    seen.append({"method": method, "path": path, "status": status, "body": json.loads(text)})
with open(sys.argv[1], "w") as fh:
    json.dump(seen, fh)
"""


# --- processes and files ---------------------------------------------------------------------


def python_cmd(*args: str | Path) -> str:
    return shlex.join([sys.executable, *map(str, args)])


def start_upstream(log_dir: Path, tls: tuple[Path, Path] | None = None) -> Proc:
    port = free_port()
    args: list[str] = [sys.executable, str(APPS / "upstream.py"), "--port", str(port)]
    if tls is not None:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    proc = Proc(args, name="upstream-tls" if tls else "upstream", log_dir=log_dir, port=port)
    try:
        proc.wait_ready(timeout=15)
    except BaseException:
        proc.stop()
        raise
    return proc


def tls_material(directory: Path) -> tuple[Path, tuple[Path, Path]]:
    """A fresh test CA and a server certificate for localhost signed by it."""
    ca_cert, ca_key = make_test_ca(directory, "e2e upstream CA")
    return ca_cert, issue_server_cert(ca_cert, ca_key, ["localhost", "127.0.0.1"], directory)


def caller_config(
    directory: Path,
    *,
    upstream_port: int,
    secure_port: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    port = free_port()
    return write_config(
        directory,
        command=python_cmd(APPS / "caller.py", "--port", str(port)),
        port=port,
        health="/healthz",
        env={
            "UPSTREAM_URL": "http://{deps.up}",
            "SECURE_URL": f"https://localhost:{secure_port}",
        },
        deps={"up": {"protocol": "http", "upstream": f"http://127.0.0.1:{upstream_port}"}},
        extra=extra,
    )


def record_traffic(
    directory: Path, steps: list[tuple[str, str, Any]], set_name: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``wiretape record --run "python traffic.py ..."``: the run and what the client saw."""
    script = directory / "traffic.py"
    script.write_text(TRAFFIC_SCRIPT, encoding="utf-8")
    seen = directory / "client.json"
    run = python_cmd(script, seen, json.dumps(steps))
    done = run_wiretape(directory, "record", "--set", set_name, "--run", run, timeout=60)
    assert done.returncode == 0, describe_run(done)
    return done, json.loads(seen.read_text(encoding="utf-8"))


def describe_run(done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{shlex.join(map(str, done.args))} exited {done.returncode}\n"
        f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    )


def copy_project(src: Path, dst: Path) -> Path:
    """A copy of a recorded project (config, sets, CA) without its run reports and logs."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".runs", "logs"))
    return dst


def case_for(test_set: TestSet, target: str) -> TestCase:
    found = [t for t in test_set.tests if t.request.target == target]
    assert len(found) == 1, f"expected one test for {target}: {[t.id for t in test_set.tests]}"
    return found[0]


def result_of(report: dict[str, Any], test_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in report["results"] if r["test_id"] == test_id]
    assert len(found) == 1, f"no single result for {test_id} in {report['results']}"
    return found[0]


def json_body(message: TestCase | Mock) -> Any:
    assert message.response is not None, f"{message.id} has no response: {message.error}"
    return json.loads(body_bytes(message.response.body))


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["test_id"]: r["status"] for r in report["results"]}


# --- the module-wide recording ---------------------------------------------------------------


@dataclass
class Recorded:
    dir: Path
    upstream: Proc
    secure: Proc
    seen: list[dict[str, Any]]  # what the traffic command received while recording
    record_output: str

    @property
    def test_set(self) -> TestSet:
        return load(self.dir, SET)

    def seen_at(self, path: str) -> dict[str, Any]:
        return next(s for s in self.seen if s["path"] == path)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    base = tmp_path_factory.mktemp("e2e")
    ca_cert, server_cert = tls_material(base / "certs")
    upstream = start_upstream(base / "logs")
    try:
        secure = start_upstream(base / "logs", tls=server_cert)
        try:
            caller_config(
                base,
                upstream_port=upstream.port or 0,
                secure_port=secure.port or 0,
                extra={"tls": {"extra_ca": str(ca_cert)}, "noise": ["body.now"]},
            )
            done, seen = record_traffic(base, TRAFFIC, SET)
        finally:
            secure.stop()
    finally:
        upstream.stop()
    # Both dependencies are gone from here on: every replay must be served by the recording.
    yield Recorded(base, upstream, secure, seen, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def baseline(recorded: Recorded) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The plain replay of the module's recording, with the dependencies stopped."""
    return run_test_json(recorded.dir, SET)


# --- 1. record, stop the dependencies, replay -------------------------------------------------


def test_record_then_replay_without_dependencies_passes(
    recorded: Recorded, baseline: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    # What the client saw while recording came from the real dependencies.
    assert [(s["path"], s["status"]) for s in recorded.seen] == [
        ("/twice", 200),
        ("/secure", 200),
        ("/create", 201),
        ("/now", 200),
    ], recorded.seen
    assert recorded.seen_at("/secure")["body"] == {"item": {"id": "7", "name": "item-7"}}
    created = recorded.seen_at("/create")["body"]["created"]
    assert created["name"] == "widget" and created["qty"] == 3 and len(created["id"]) == 16

    test_set = recorded.test_set
    assert [t.request.target for t in test_set.tests] == [p for _, p, _ in TRAFFIC]
    assert test_set.info.closed, "the recording should have ended cleanly"
    assert "recorded 4 tests and 6 mocks" in recorded.record_output, recorded.record_output
    assert recorded.upstream.poll() is not None and recorded.secure.poll() is not None

    done, report = baseline
    assert done.returncode == 0, describe_run(done)
    assert report["summary"] == {"passed": 4, "failed": 0, "errors": 0, "skipped": 0, "ok": True}
    assert statuses(report) == {t.id: "passed" for t in test_set.tests}
    for result in report["results"]:
        assert result["differences"] == [] and result["misses"] == [], result
        assert result["unused_mocks"] == [], result
    assert report["session_unused"] == []


# --- 2. a code change fails the replay and names what changed --------------------------------


@pytest.mark.parametrize(
    ("variant", "expected_lines"),
    [
        ("rename", ["body.total: missing (expected 3)", "body.sum: added (got 3)"]),
        ("status", ["status: expected 200, got 202"]),
    ],
)
def test_code_change_fails_and_names_the_path(
    recorded: Recorded, variant: str, expected_lines: list[str]
) -> None:
    twice = case_for(recorded.test_set, "/twice")
    done = run_wiretape(recorded.dir, "test", "--set", SET, env={"CALLER_VARIANT": variant})
    assert done.returncode == 1, describe_run(done)
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    assert any(line.startswith(f"FAIL {twice.id}") for line in lines), done.stdout
    for expected in expected_lines:
        assert f"  {expected}" in lines, done.stdout
    assert "3 passed, 1 failed, 0 errors, 0 skipped" in done.stdout, done.stdout


# --- 3. noise ---------------------------------------------------------------------------------


def test_noise_global_and_per_test(
    recorded: Recorded,
    baseline: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
    tmp_path: Path,
) -> None:
    now = case_for(recorded.test_set, "/now")
    # With `noise: [body.now]` in wiretape.yaml (the module's config) /now passes.
    assert result_of(baseline[1], now.id)["status"] == "passed"

    project = copy_project(recorded.dir, tmp_path / "project")
    config = project / "wiretape.yaml"
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert doc.pop("noise") == ["body.now"]
    config.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    # Timestamps are typed values: by default a live ISO time matches the recorded one ...
    done, report = run_test_json(project, SET)
    assert done.returncode == 0, describe_run(done)
    assert result_of(report, now.id)["status"] == "passed"
    # ... and with --strict-values only noise paths can hide it.
    done, report = run_test_json(project, SET, args=["--strict-values"])
    assert done.returncode == 1, describe_run(done)
    failed = result_of(report, now.id)
    assert failed["status"] == "failed"
    assert [d["path"] for d in failed["differences"]] == ["body.now"], failed
    assert failed["differences"][0]["expected"] == recorded.seen_at("/now")["body"]["now"]
    assert report["summary"]["passed"] == 3

    # The same path as a per-test noise entry, edited into the test's file, is enough.
    test_file = project / "wiretape" / SET / "tests" / f"{now.id}.yaml"
    text = test_file.read_text(encoding="utf-8")
    assert "\nnoise:" not in text
    test_file.write_text(text + "noise:\n- body.now\n", encoding="utf-8")
    assert case_for(load(project, SET), "/now").noise == ("body.now",)

    done, report = run_test_json(project, SET, args=["--strict-values"])
    assert done.returncode == 0, describe_run(done)
    assert statuses(report) == {t.id: "passed" for t in recorded.test_set.tests}


# --- 4. identical outbound requests are answered in recorded order ----------------------------


def test_identical_requests_answered_in_recorded_order(
    recorded: Recorded, baseline: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    assert recorded.seen_at("/twice")["body"] == {"first": 1, "second": 2, "total": 3}
    test_set = recorded.test_set
    twice = case_for(test_set, "/twice")
    mocks = test_set.mocks[twice.id]
    assert [(m.dep, m.request.method, m.request.target) for m in mocks] == [
        ("up", "GET", "/counter"),
        ("up", "GET", "/counter"),
    ]
    assert mocks[0].request.body == mocks[1].request.body == b""
    assert [json_body(m) for m in mocks] == [{"n": 1}, {"n": 2}]
    assert json_body(twice) == {"first": 1, "second": 2, "total": 3}
    # The replay compares the whole body: n=2 before n=1 (or one answer twice) would fail.
    result = result_of(baseline[1], twice.id)
    assert result["status"] == "passed" and result["differences"] == [], result


# --- 5. HTTPS upstream with its own CA, through the forward proxy -----------------------------


def test_https_upstream_recorded_and_replayed(
    recorded: Recorded, baseline: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    test_set = recorded.test_set
    secure = case_for(test_set, "/secure")
    mocks = test_set.mocks[secure.id]
    assert len(mocks) == 1, mocks
    mock = mocks[0]
    assert mock.dep == "outbound"
    assert mock.request.scheme == "https"
    assert mock.request.host == f"localhost:{recorded.secure.port}"
    assert (mock.request.method, mock.request.target) == ("GET", "/item/7")
    assert mock.error is None and mock.response is not None and mock.response.status == 200
    assert json_body(mock) == {"id": "7", "name": "item-7"}
    mock_file = (test_set.path / "mocks" / f"{secure.id}.yaml").read_text(encoding="utf-8")
    assert "scheme: https" in mock_file, mock_file
    # The TLS upstream was stopped before the replay.
    result = result_of(baseline[1], secure.id)
    assert result["status"] == "passed" and result["misses"] == [], result


@dataclass
class Unverified:
    dir: Path
    seen: list[dict[str, Any]]
    upstream_log: str


@pytest.fixture(scope="module")
def unverified(tmp_path_factory: pytest.TempPathFactory) -> Unverified:
    """/secure recorded without tls.extra_ca: the upstream's CA is unknown to wiretape."""
    base = tmp_path_factory.mktemp("noca")
    _, server_cert = tls_material(base / "certs")
    secure = start_upstream(base / "logs", tls=server_cert)
    try:
        caller_config(base, upstream_port=free_port(), secure_port=secure.port or 0)
        _, seen = record_traffic(base, [("GET", "/secure", None)], "noca")
        upstream_log = secure.output()
    finally:
        secure.stop()
    return Unverified(base, seen, upstream_log)


def test_https_upstream_is_verified_by_default(unverified: Unverified) -> None:
    [answer] = unverified.seen
    assert answer["status"] == 502, answer
    assert answer["body"]["upstream_status"] == 502, answer
    assert "CERTIFICATE_VERIFY_FAILED" in answer["body"]["upstream_body"], answer
    assert "GET /item/7" not in unverified.upstream_log, "an unverified upstream was used"

    test_set = load(unverified.dir, "noca")
    [test] = test_set.tests
    assert test.response is not None and test.response.status == 502
    [mock] = test_set.mocks[test.id]
    assert (mock.dep, mock.request.scheme, mock.request.target) == ("outbound", "https", "/item/7")
    # What the app got was wiretape's own 502, and that is what the mock answers on replay.
    assert mock.response is not None and mock.response.status == 502, mock.response
    assert ("X-Wiretape-Error", "1") in mock.response.headers
    assert b"CERTIFICATE_VERIFY_FAILED" in body_bytes(mock.response.body)
    assert mock.error is not None and "CERTIFICATE_VERIFY_FAILED" in mock.error, mock.error
    mock_file = (test_set.path / "mocks" / f"{test.id}.yaml").read_text(encoding="utf-8")
    assert "CERTIFICATE_VERIFY_FAILED" in mock_file


def test_failed_dependency_call_replays_as_recorded(unverified: Unverified) -> None:
    """With no code change, a test whose dependency call failed while recording still passes.

    While recording, the app got wiretape's own 502 for the failed call; the replay has to show
    the app the same thing, not something else (such as a closed connection).
    """
    done, report = run_test_json(unverified.dir, "noca")
    assert done.returncode == 0, describe_run(done)
    assert report["summary"]["passed"] == 1, report


# --- 6. a miss is loud and explained ----------------------------------------------------------


def test_edited_mock_gives_an_explained_miss(recorded: Recorded, tmp_path: Path) -> None:
    project = copy_project(recorded.dir, tmp_path / "project")
    now = case_for(recorded.test_set, "/now")
    [time_mock] = recorded.test_set.mocks[now.id]
    mock_file = project / "wiretape" / SET / "mocks" / f"{now.id}.yaml"
    text = mock_file.read_text(encoding="utf-8")
    assert text.count("target: /time\n") == 1, text
    mock_file.write_text(text.replace("target: /time\n", "target: /clock\n"), encoding="utf-8")

    done, report = run_test_json(project, SET)
    assert done.returncode == 1, describe_run(done)
    others = {t.id: "passed" for t in recorded.test_set.tests if t.id != now.id}
    assert statuses(report) == {**others, now.id: "failed"}
    result = result_of(report, now.id)
    [miss] = result["misses"]
    assert miss["dep"] == "up"
    assert miss["request"] == "GET /time", miss
    assert miss["candidates"], miss
    closest = miss["candidates"][0]
    assert closest["mock_id"] == time_mock.id, miss
    assert any("/clock" in line for line in closest["differences"]), closest
    # The app got a 502 with X-Wiretape-Miss from the mock server and passed it on.
    diffs = {d["path"]: d for d in result["differences"]}
    assert diffs["status"]["expected"] == 200 and diffs["status"]["actual"] == 502, diffs
    assert diffs["body.miss"]["kind"] == "added", diffs
    assert diffs["body.miss"]["actual"] == "GET /time", diffs
    assert diffs["body.upstream_status"]["actual"] == 502, diffs
    assert result["unused_mocks"] == [time_mock.id]

    # The text report says the same.
    text_report = run_wiretape(project, "report")
    assert text_report.returncode == 1, describe_run(text_report)
    assert "no recorded mock on up for GET /time" in text_report.stdout, text_report.stdout
    assert f"closest: {time_mock.id}" in text_report.stdout, text_report.stdout


# --- 7. --strict makes unused mocks fail ------------------------------------------------------


def test_unused_mock_fails_only_in_strict_mode(recorded: Recorded) -> None:
    test_set = recorded.test_set
    create = case_for(test_set, "/create")
    mocks = test_set.mocks[create.id]
    assert [(m.request.method, m.request.path) for m in mocks] == [
        ("POST", "/items"),
        ("GET", f"/item/{json_body(create)['created']['id']}"),
    ]
    check_mock = mocks[1].id
    env = {"CALLER_VARIANT": "skipcheck"}  # the app no longer makes its second call

    done, report = run_test_json(recorded.dir, SET, env=env)
    assert done.returncode == 0, describe_run(done)
    assert statuses(report) == {t.id: "passed" for t in test_set.tests}
    result = result_of(report, create.id)
    assert result["unused_mocks"] == [check_mock], result
    assert not report["strict"]

    done, report = run_test_json(recorded.dir, SET, args=["--strict"], env=env)
    assert done.returncode == 1, describe_run(done)
    others = {t.id: "passed" for t in test_set.tests if t.id != create.id}
    assert statuses(report) == {**others, create.id: "failed"}
    result = result_of(report, create.id)
    assert result["unused_mocks"] == [check_mock], result
    assert result["differences"] == [] and result["misses"] == [], result
    assert report["strict"]


# --- 8. wiretape report -----------------------------------------------------------------------


def test_report_reprints_the_last_run(recorded: Recorded, tmp_path: Path) -> None:
    project = copy_project(recorded.dir, tmp_path / "project")
    test_set = recorded.test_set
    twice = case_for(test_set, "/twice")

    run = run_wiretape(project, "test", "--set", SET, env={"CALLER_VARIANT": "rename"})
    assert run.returncode == 1, describe_run(run)
    assert "3 passed, 1 failed" in run.stdout

    again = run_wiretape(project, "report")
    assert again.returncode == 1, describe_run(again)
    assert again.stdout == run.stdout

    as_json = run_wiretape(project, "report", "--format", "json")
    assert as_json.returncode == 1, describe_run(as_json)
    report = json.loads(as_json.stdout)
    assert report["set_name"] == SET
    assert report["summary"] == {"passed": 3, "failed": 1, "errors": 0, "skipped": 0, "ok": False}
    assert [r["test_id"] for r in report["results"]] == [t.id for t in test_set.tests]
    assert result_of(report, twice.id)["status"] == "failed"
    [run_dir] = (project / "wiretape" / ".runs").iterdir()
    assert report["run_id"] == run_dir.name

    as_junit = run_wiretape(project, "report", "--format", "junit")
    assert as_junit.returncode == 1, describe_run(as_junit)
    root = ET.fromstring(as_junit.stdout.encode("utf-8"))
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    for element in (root, suite):
        counts = {k: element.get(k) for k in ("tests", "failures", "errors", "skipped")}
        assert counts == {"tests": "4", "failures": "1", "errors": "0", "skipped": "0"}
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [t.id for t in test_set.tests]
    failing = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failing == [twice.id]
    [failure] = [c.find("failure") for c in cases if c.get("name") == twice.id]
    assert failure is not None and "body.total: missing" in (failure.text or ""), failure


# --- 9. set-up errors exit 2 and say why ------------------------------------------------------


def test_config_error_exits_2_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "wiretape.yaml"
    config.write_text(
        "app:\n  command: python app.py\n  port: 8000\n  helth: /healthz\n", encoding="utf-8"
    )
    for command in ("test", "record"):
        done = run_wiretape(tmp_path, command)
        assert done.returncode == 2, describe_run(done)
        assert f"{config}:4:" in done.stderr, done.stderr
        assert "unknown key 'helth'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr


NEVER_READY_APP = """\
import os, sys, time
open(sys.argv[1], "w").write(str(os.getpid()))
for step in range(1, 4):
    print(f"booting step {step}", flush=True)
print("waiting for a database that never comes", flush=True)
if sys.argv[2] == "crash":
    sys.exit(3)
time.sleep(120)
"""


def pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


@pytest.mark.parametrize("mode", ["hang", "crash"])
def test_app_that_never_becomes_ready_exits_2_with_its_output(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "slow_app.py"
    script.write_text(NEVER_READY_APP, encoding="utf-8")
    pidfile = tmp_path / "app.pid"
    write_config(
        tmp_path,
        command=python_cmd(script, pidfile, mode),
        port=free_port(),  # nothing ever listens there
        health="/healthz",
        extra={"app": {"startup_timeout": 2}},
    )
    started = time.monotonic()
    done = run_wiretape(tmp_path, "record", "--set", "s", "--run", "true", timeout=60)
    assert done.returncode == 2, describe_run(done)
    assert "booting step 3" in done.stderr, done.stderr
    assert "waiting for a database that never comes" in done.stderr, done.stderr
    if mode == "hang":
        assert "not ready after 2s" in done.stderr, done.stderr
        assert time.monotonic() - started < 30
    else:
        assert "exited with code 3 before it was ready" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr

    # wiretape stopped the app it started.
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while not pid_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not pid_gone(pid):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the app (pid {pid}) was still running after wiretape exited")
