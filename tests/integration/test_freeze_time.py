"""``wiretape test --freeze-time`` and ``--time-shift``: the app's clock under libfaketime.

The app is tests/apps/jwtapp.py (Starlette on uvicorn): POST /login issues a JWT valid for five
minutes, GET /me refuses an expired token with 401. One module-wide recording holds test 1, the
login, and test 2, a call to /me with the token test 1 got. A replay sends test 2's recorded
token verbatim, so a replay a day later meets an expired token.

"A day later" is made here by running ``wiretape test`` itself under libfaketime
(``LD_PRELOAD`` with ``FAKETIME=+1d``): wiretape sees tomorrow and so does the app it starts,
which inherits that environment, unless ``--freeze-time`` or ``--time-shift`` takes over the
app's clock. jwtapp logs the clock it saw for every request, so the tests read the app's clock
from the run's ``app.log``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.procs import REPO_ROOT, clean_env, free_port
from tests.helpers.wt import load, run_test_json, run_wiretape, write_config

from wiretape.errors import SetupError
from wiretape.model import TestCase
from wiretape.runner.clock import ENV_OVERRIDE, Search, find_libfaketime
from wiretape.secrets import Secrets, secrets_path

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "tests" / "apps" / "jwtapp.py"
SET = "jwt"
DAY = 86400.0
SLACK = 10.0  # seconds of tolerance around a clock reading

# Logs in, then calls /me with the token it got; writes what came back to argv[1].
TRAFFIC_SCRIPT = """\
import json, os, sys, urllib.request

base = os.environ["WIRETAPE_URL"]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
login = urllib.request.Request(
    base + "/login", data=json.dumps({"user": "ada"}).encode(), method="POST",
    headers={"Content-Type": "application/json"},
)
with opener.open(login, timeout=15) as response:
    issued = json.loads(response.read())
me = urllib.request.Request(base + "/me", headers={"Authorization": "Bearer " + issued["jwt"]})
with opener.open(me, timeout=15) as response:
    seen = {"login": issued, "me": json.loads(response.read()), "me_status": response.status}
with open(sys.argv[1], "w") as fh:
    json.dump(seen, fh)
"""

_LOG_LINE = re.compile(r"^jwtapp: (\S+) (\S+) clock=([0-9.]+) status=(\d+)$")


@dataclass
class Recorded:
    dir: Path
    seen: dict[str, Any]
    login: TestCase
    me: TestCase


@dataclass(frozen=True)
class AppRequest:
    method: str
    path: str
    clock: float
    status: int


def describe_run(done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{shlex.join(map(str, done.args))} exited {done.returncode}\n"
        f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    )


@pytest.fixture(scope="module")
def libfaketime() -> Path:
    try:
        return find_libfaketime(os.environ, Search.here(), flag="these tests")
    except SetupError as exc:
        pytest.fail(f"libfaketime is needed here (.ci/run installs it): {exc}")


@pytest.fixture(scope="module")
def tomorrow(libfaketime: Path) -> dict[str, str]:
    """The environment that runs a process a day ahead; checked on a real process first."""
    env = {
        "LD_PRELOAD": str(libfaketime),
        "FAKETIME": "+1d",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    before = time.time()
    done = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    seen = float(done.stdout)
    assert before + DAY - SLACK <= seen <= time.time() + DAY + SLACK, (before, seen)
    return env


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    base = tmp_path_factory.mktemp("freeze")
    port = free_port()
    write_config(
        base,
        command=shlex.join([sys.executable, str(APP), "--port", str(port)]),
        port=port,
        health="/healthz",
        outbound_http="off",
    )
    script = base / "traffic.py"
    script.write_text(TRAFFIC_SCRIPT, encoding="utf-8")
    seen_file = base / "client.json"
    run = shlex.join([sys.executable, str(script), str(seen_file)])
    done = run_wiretape(base, "record", "--set", SET, "--run", run, timeout=60)
    assert done.returncode == 0, describe_run(done)
    seen = json.loads(seen_file.read_text(encoding="utf-8"))
    login, me = load(base, SET).tests
    return Recorded(base, seen, login, me)


def wiretape_test(
    recorded: Recorded, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], list[AppRequest], float, float]:
    """``wiretape test --format json *args``; the report, what the app logged and when it ran."""
    before = time.time()
    done, report = run_test_json(recorded.dir, SET, args=args, env=env)
    after = time.time()
    log = recorded.dir / "wiretape" / ".runs" / report["run_id"] / "app.log"
    requests = []
    for line in log.read_text(encoding="utf-8").splitlines():
        match = _LOG_LINE.match(line)
        if match:
            method, path, clock, status = match.groups()
            requests.append(AppRequest(method, path, float(clock), int(status)))
    assert [(r.method, r.path) for r in requests] == [("POST", "/login"), ("GET", "/me")], (
        log.read_text(encoding="utf-8")
    )
    return done, report, requests, before, after


def result_of(report: dict[str, Any], test: TestCase) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in report["results"] if r["test_id"] == test.id]
    assert len(found) == 1, report["results"]
    return found[0]


def assert_me_refused(report: dict[str, Any], recorded: Recorded, reason: str) -> None:
    assert result_of(report, recorded.login)["status"] == "passed", report
    me = result_of(report, recorded.me)
    assert me["status"] == "failed", me
    diffs = {d["path"]: d for d in me["differences"]}
    assert (diffs["status"]["expected"], diffs["status"]["actual"]) == (200, 401), diffs
    assert diffs["body.error"]["actual"] == reason, diffs
    assert diffs["body.user"]["expected"] == "ada", diffs
    assert report["summary"] == {"passed": 1, "failed": 1, "errors": 0, "skipped": 0, "ok": False}


# --- the recording ------------------------------------------------------------------------------


def test_the_recording_replays_the_token_test_1_got(recorded: Recorded) -> None:
    assert recorded.seen["me_status"] == 200 and recorded.seen["me"] == {"user": "ada"}
    assert recorded.seen["login"]["expires_in"] == 300
    assert (recorded.login.request.method, recorded.login.request.target) == ("POST", "/login")
    assert (recorded.me.request.method, recorded.me.request.target) == ("GET", "/me")
    assert 0 < recorded.login.started <= recorded.me.started
    # What a replay sends as test 2 is the very token the login returned while recording.
    secrets = Secrets(secrets_path(recorded.dir / "wiretape", SET))
    sent = dict(
        (name.lower(), value) for name, value in secrets.reveal_headers(recorded.me.request.headers)
    )
    assert sent["authorization"] == "Bearer " + recorded.seen["login"]["jwt"]


def test_replay_now_passes_without_a_clock(recorded: Recorded) -> None:
    done, report, requests, before, after = wiretape_test(recorded)
    assert done.returncode == 0, describe_run(done)
    assert report["summary"]["ok"] is True, report
    assert all(before - SLACK <= r.clock <= after + SLACK for r in requests), requests


# --- a day later ------------------------------------------------------------------------------


def test_a_day_later_the_recorded_token_has_expired(
    recorded: Recorded, tomorrow: dict[str, str]
) -> None:
    done, report, requests, before, after = wiretape_test(recorded, env=tomorrow)
    assert done.returncode == 1, describe_run(done)
    assert_me_refused(report, recorded, "token expired")
    assert [r.status for r in requests] == [200, 401]
    # The app ran with tomorrow's clock.
    assert all(before + DAY - SLACK <= r.clock <= after + DAY + SLACK for r in requests), requests


def test_freeze_time_replays_each_test_at_its_recorded_clock(
    recorded: Recorded, tomorrow: dict[str, str]
) -> None:
    done, report, requests, _, _ = wiretape_test(recorded, "--freeze-time", env=tomorrow)
    assert done.returncode == 0, describe_run(done)
    assert report["summary"] == {"passed": 2, "failed": 0, "errors": 0, "skipped": 0, "ok": True}
    assert [r.status for r in requests] == [200, 200]
    login, me = requests
    # Each request saw the moment its test was recorded, a day before wiretape's own clock, and
    # the clock ticks on from there (it is not stopped).
    assert recorded.login.started - 1 <= login.clock <= recorded.login.started + SLACK, login
    assert recorded.me.started - 1 <= me.clock <= recorded.me.started + SLACK, me
    assert "the app's clock is frozen at each test's recorded time" in done.stderr, done.stderr


def test_time_shift_back_a_day_passes_a_day_later(
    recorded: Recorded, tomorrow: dict[str, str]
) -> None:
    # `--time-shift -1d` (a separate argument) shifts wiretape's clock, which is tomorrow here.
    done, report, requests, before, after = wiretape_test(
        recorded, "--time-shift", "-1d", env=tomorrow
    )
    assert done.returncode == 0, describe_run(done)
    assert report["summary"]["ok"] is True, report
    assert all(before - SLACK <= r.clock <= after + SLACK for r in requests), requests
    assert "the app's clock is shifted by -1d" in done.stderr, done.stderr


def test_time_shift_forward_expires_the_token(recorded: Recorded) -> None:
    done, report, requests, before, after = wiretape_test(recorded, "--time-shift=+2h")
    assert done.returncode == 1, describe_run(done)
    assert_me_refused(report, recorded, "token expired")
    hours = 2 * 3600
    assert all(before + hours - SLACK <= r.clock <= after + hours + SLACK for r in requests)


def test_time_shift_back_makes_the_token_not_yet_valid(recorded: Recorded) -> None:
    done, report, requests, before, after = wiretape_test(recorded, "--time-shift=-1d")
    assert done.returncode == 1, describe_run(done)
    assert_me_refused(report, recorded, "token issued in the future")
    assert all(before - DAY - SLACK <= r.clock <= after - DAY + SLACK for r in requests)


# --- usage and set-up errors ------------------------------------------------------------------


def runs(recorded: Recorded) -> set[str]:
    root = recorded.dir / "wiretape" / ".runs"
    return {p.name for p in root.iterdir()} if root.is_dir() else set()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--freeze-time", "--time-shift=+1d"), "not allowed with argument"),
        (("--time-shift=-1d", "--freeze-time"), "not allowed with argument"),
        (("--time-shift=soon",), "'soon' is not a time offset"),
        (("--time-shift=1h1d",), "largest first"),
    ],
)
def test_bad_clock_flags_are_usage_errors(
    recorded: Recorded, args: tuple[str, ...], says: str
) -> None:
    earlier = runs(recorded)
    done = run_wiretape(recorded.dir, "test", "--set", SET, *args)
    assert done.returncode == 2, describe_run(done)
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert runs(recorded) == earlier


@pytest.mark.parametrize("flags", [("--freeze-time",), ("--time-shift=+1h",)])
def test_missing_libfaketime_exits_2_and_says_how_to_get_it(
    recorded: Recorded, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    missing = tmp_path / "nowhere" / "libfaketime.so.1"
    earlier = runs(recorded)
    done = run_wiretape(
        recorded.dir, "test", "--set", SET, *flags, env={ENV_OVERRIDE: str(missing)}
    )
    assert done.returncode == 2, describe_run(done)
    assert f"needs libfaketime, but {ENV_OVERRIDE}={missing} is not a file" in done.stderr
    assert "apt-get install libfaketime" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # Nothing was started: no run was written.
    assert runs(recorded) == earlier
