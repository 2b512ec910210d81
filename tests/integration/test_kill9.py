"""``kill -9`` of ``wiretape record`` in the middle of traffic leaves a loadable, complete set.

The record lane admits one request at a time and releases it only once the finished test and its
mocks are on disk. So when a client sends requests one after another, every response it received
whose *next* request was answered too belongs to a test that was durable before the kill; only
the last answered request may be missing. The traffic runs in a thread on one keep-alive
connection; the main thread SIGKILLs wiretape's process group (not the app, which wiretape runs in
its own session, and not the upstream) once a given number of answers has arrived.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.helpers.procs import REPO_ROOT, Proc, free_port
from tests.helpers.wt import Recording, descendants, run_test_json, write_config

from wiretape.model import Mock, body_bytes
from wiretape.store.reader import load_set

pytestmark = pytest.mark.integration

APPS = REPO_ROOT / "tests" / "apps"
MAX_REQUESTS = 400  # the traffic loop's bound; the kill comes long before
TRAFFIC_SECONDS = 30.0


@dataclass
class Traffic:
    """Sequential GET /twice?seq=N on one connection until the proxy goes away."""

    url_port: int
    sent: int = 0  # requests whose head went out
    answers: list[dict[str, int]] = field(default_factory=list)  # fully received, in order
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def received(self) -> int:
        with self.lock:
            return len(self.answers)

    def run(self) -> None:
        deadline = time.monotonic() + TRAFFIC_SECONDS
        conn = http.client.HTTPConnection("127.0.0.1", self.url_port, timeout=10)
        try:
            for seq in range(MAX_REQUESTS):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                with self.lock:
                    self.sent += 1
                conn.request("GET", f"/twice?seq={seq}")
                response = conn.getresponse()
                body = response.read()  # Content-Length: complete, or an exception
                if response.status != 200:
                    self.error = f"seq {seq}: status {response.status}: {body[:200]!r}"
                    return
                with self.lock:
                    self.answers.append(json.loads(body))
        except (OSError, http.client.HTTPException) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.002)


def kill_groups(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Proc]:
    port = free_port()
    with Proc(
        [sys.executable, str(APPS / "upstream.py"), "--port", str(port)],
        name="upstream",
        log_dir=tmp_path / "logs",
        port=port,
    ) as proc:
        proc.wait_ready(timeout=15)
        yield proc


def counter_values(mocks: tuple[Mock, ...]) -> list[int]:
    values: list[int] = []
    for mock in mocks:
        assert (mock.dep, mock.request.method, mock.request.target) == ("up", "GET", "/counter")
        assert mock.response is not None and mock.response.status == 200, mock
        values.append(json.loads(body_bytes(mock.response.body))["n"])
    return values


# (answers to wait for, then a little more time so the kill lands in different phases of the
# next exchange: before it is admitted, while the app calls the upstream, while it answers)
@pytest.mark.parametrize(("kill_after", "jitter"), [(1, 0.0), (6, 0.002), (15, 0.006)])
def test_kill9_mid_traffic_keeps_every_acknowledged_test(
    tmp_path: Path, upstream: Proc, kill_after: int, jitter: float
) -> None:
    app_port = free_port()
    write_config(
        tmp_path,
        command=f"{sys.executable} {APPS / 'caller.py'} --port {app_port}",
        port=app_port,
        health="/healthz",
        env={"UPSTREAM_URL": "http://{deps.up}"},
        deps={"up": {"protocol": "http", "upstream": f"http://127.0.0.1:{upstream.port}"}},
    )
    orphans: list[int] = []
    with Recording(tmp_path, set_name="k") as rec:
        traffic = Traffic(rec.port)
        thread = threading.Thread(target=traffic.run, name="traffic", daemon=True)
        try:
            thread.start()
            wait_until(
                lambda: traffic.received() >= kill_after or traffic.error,
                20,
                f"{kill_after} answers through the record proxy",
            )
            assert not traffic.error, f"{traffic.error}\n{rec.describe()}"
            time.sleep(jitter)  # varies the kill's timing; not a synchronisation
            orphans = descendants(rec.pid)  # the app's shell and the app: cleaned up below
            os.killpg(rec.pid, signal.SIGKILL)  # wiretape's own group only
            assert rec.proc is not None
            rec.proc.popen.wait(10)
            thread.join(15)
            assert not thread.is_alive(), "the traffic thread did not end after the kill"
        finally:
            traffic.stop.set()
            thread.join(15)
            kill_groups(orphans)
    assert rec.proc is not None and rec.proc.popen.returncode == -signal.SIGKILL
    assert upstream.poll() is None, "the upstream must survive the kill"

    answers = list(traffic.answers)
    assert len(answers) >= kill_after
    test_set = load_set(rec.set_path)
    assert not test_set.info.closed, "set.yaml says closed although wiretape was killed"
    tests = test_set.tests
    # Tests on disk are a prefix of the requests sent, in order ...
    assert [t.request.target for t in tests] == [f"/twice?seq={i}" for i in range(len(tests))]
    assert len(tests) <= traffic.sent
    # ... and hold every answer whose next request was answered too (the last may be missing).
    assert len(tests) >= len(answers) - 1, (
        f"{len(answers)} answers received but only {len(tests)} tests on disk"
    )
    for seq, test in enumerate(tests):
        if seq >= len(answers) - 1:
            break
        assert test.error is None and test.response is not None, test
        assert test.response.status == 200
        assert json.loads(body_bytes(test.response.body)) == answers[seq]
        mocks = test_set.mocks[test.id]
        assert counter_values(mocks) == [answers[seq]["first"], answers[seq]["second"]], (
            f"{test.id}: mocks {mocks}"
        )
    # The counter is never read outside a test, so nothing belongs to the session.
    assert test_set.session == ()

    # The interrupted set replays green with the upstream gone.
    upstream.stop()
    done, report = run_test_json(tmp_path, "k")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert report["summary"]["passed"] == len(tests) == len(report["results"]), report
