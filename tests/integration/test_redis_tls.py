"""Redis over TLS end to end: an app on ``rediss://`` recorded against a TLS-only redis-server,
then replayed without it.

The app (tests/apps/redisapp.py with REDIS_TLS=1) verifies the server it talks to, as redis-py
does by default: the certificate against the default trust store (the wiretape CA, through the
SSL_CERT_FILE that wiretape sets) and the host name. While recording, wiretape terminates the
app's TLS with its CA and speaks TLS to the server, verifying it against the server's own test
CA (``upstream_tls: verify-full`` with ``tls.extra_ca``). On replay the mock server terminates
the app's TLS the same way. A second recording keeps the app on plain Redis while wiretape
speaks TLS to the server (``upstream_tls: require``), and a third declines the app's TLS.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.redis_server import REDIS_PASSWORD, Redis, configure_redisapp, redis_server
from tests.helpers.wt import Recording, get_json, load, run_test_json, set_path

from wiretape.model import WireRequest

pytestmark = pytest.mark.integration

SCENARIOS = ["sync2/basic", "sync3-py/pipeline", "async3/basic", "async2-py/multi", "sync2/pubsub"]


def configure(dir: Path, server: Redis, *, app_tls: bool, dep: dict[str, str]) -> None:
    assert server.ca is not None
    dir.mkdir(parents=True, exist_ok=True)
    ca = shutil.copy(server.ca, dir / "redis-ca.pem")  # it outlives the server's directory
    configure_redisapp(
        dir,
        server,
        dep=dep,
        env={"REDIS_TLS": "1" if app_tls else "0"},
        extra={"tls": {"extra_ca": str(ca)}},
    )


@dataclass
class Recorded:
    dir: Path
    answers: dict[str, tuple[int, Any]]
    output: str


def record(dir: Path, *, app_tls: bool, dep: dict[str, str]) -> Recorded:
    answers: dict[str, tuple[int, Any]] = {}
    with redis_server(password=REDIS_PASSWORD, tls=True) as server:
        configure(dir, server, app_tls=app_tls, dep=dep)
        with Recording(dir) as rec:
            for path in SCENARIOS:
                answers[path] = get_json(f"{rec.url}/{path}")
            assert rec.stop() == 0, rec.output()
            output = rec.output()
    # redis-server is stopped from here on.
    return Recorded(dir, answers, output)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    yield record(
        tmp_path_factory.mktemp("redis-tls"), app_tls=True, dep={"upstream_tls": "verify-full"}
    )


def check_answers(recorded: Recorded) -> None:
    for path, (status, body) in recorded.answers.items():
        assert status == 200 and "result" in body, (path, body, recorded.output[-3000:])
    for client in ("sync2", "async3"):
        assert recorded.answers[f"{client}/basic"][1]["result"][:3] == [True, "alice", None]
    assert len(recorded.answers["sync3-py/pipeline"][1]["result"]) == 300
    messages = [m for m in recorded.answers["sync2/pubsub"][1]["result"] if "message" in m[0]]
    assert [m[-1] for m in messages][:3] == ["hello 0", "hello 1", "hello 2"]


def check_replay(recorded: Recorded) -> None:
    done, report = run_test_json(recorded.dir, timeout=300)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [], json.dumps(failing, indent=1)[:4000]
    assert done.returncode == 0 and len(report["results"]) == len(SCENARIOS)


def commands(recorded: Recorded) -> list[str]:
    test_set = load(recorded.dir)
    mocks = [*test_set.session, *(m for ms in test_set.mocks.values() for m in ms)]
    assert mocks and all(m.protocol == "redis" for m in mocks)
    names = []
    for mock in mocks:
        assert isinstance(mock.request, WireRequest)
        data = mock.request.data
        args = data["command"] if isinstance(data, dict) else data
        assert isinstance(args, list)
        names.append(str(args[0]).upper())
    return names


def test_an_app_on_tls_records_real_answers_through_a_verified_server(
    recorded: Recorded,
) -> None:
    check_answers(recorded)


def test_replay_terminates_the_apps_tls_without_redis(recorded: Recorded) -> None:
    check_replay(recorded)


def test_the_commands_are_recorded_in_clear_and_the_password_is_not(recorded: Recorded) -> None:
    names = commands(recorded)
    for name in ("HELLO", "SET", "GET", "MULTI", "EXEC", "SUBSCRIBE"):
        assert name in names, sorted(set(names))
    root = set_path(recorded.dir)
    for path in (p for p in root.rglob("*") if p.is_file()):
        assert REDIS_PASSWORD.encode() not in path.read_bytes(), path


def test_a_plain_app_recorded_against_a_tls_only_server(tmp_path: Path) -> None:
    plain = record(tmp_path / "plain", app_tls=False, dep={"upstream_tls": "require"})
    check_answers(plain)
    assert "SET" in commands(plain)
    check_replay(plain)


def test_a_declined_tls_connection_is_closed_and_said_so(tmp_path: Path) -> None:
    declined = record(
        tmp_path / "declined",
        app_tls=True,
        dep={"upstream_tls": "require", "client_tls": "decline"},
    )
    status, body = declined.answers["sync2/basic"]
    assert status == 500, body
    assert "client_tls is decline" in declined.output
