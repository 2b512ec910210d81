"""``wiretape record --concurrent``: links by traceparent, by time window, and marks ambiguity."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.helpers.procs import REPO_ROOT, Proc, free_port
from tests.helpers.wt import Recording, load, write_config

from wiretape.model import LinkKind

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = Proc(
        [sys.executable, str(REPO_ROOT / "tests/apps/upstream.py"), "--port", str(port)],
        name="upstream",
        log_dir=tmp_path / "logs",
        port=port,
    )
    with proc:
        proc.wait_ready()
        yield f"http://127.0.0.1:{port}"


def configure(tmp_path: Path, upstream: str) -> None:
    port = free_port()
    write_config(
        tmp_path,
        command=f"{sys.executable} {REPO_ROOT / 'tests/apps/tracer.py'} --port {port}",
        port=port,
        health="/healthz",
        env={"UPSTREAM_URL": "http://{deps.up}"},
        deps={"up": {"protocol": "http", "upstream": upstream}},
        outbound_http="off",
    )


def fire(url: str, ids: range, *, delay_ms: int, propagate: bool) -> None:
    def one(i: int) -> None:
        query = f"delay_ms={delay_ms}&propagate={int(propagate)}"
        with httpx.Client(base_url=url, trust_env=False, timeout=20) as client:
            assert client.get(f"/work/{i}?{query}").status_code == 200

    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(one, ids))


def mock_items(test_set: object, test_id: str) -> list[str]:
    mocks = test_set.mocks[test_id]  # type: ignore[attr-defined]
    return [m.request.target.rsplit("/", 1)[1] for m in mocks]


def test_traceparent_links_each_call_to_its_own_test(tmp_path: Path, upstream: str) -> None:
    configure(tmp_path, upstream)
    with Recording(tmp_path, args=["--concurrent"]) as rec:
        fire(rec.url, range(1, 7), delay_ms=300, propagate=True)
        assert rec.stop() == 0
    recorded = load(tmp_path)
    assert len(recorded.tests) == 6
    for test in recorded.tests:
        own = test.request.target.split("?")[0].rsplit("/", 1)[1]
        mocks = recorded.mocks[test.id]
        assert [m.link for m in mocks] == [LinkKind.TRACEPARENT], test.id
        assert mock_items(recorded, test.id) == [own]
    # The traceparent wiretape added is not part of the recorded request.
    assert all(
        "traceparent" not in {k.lower() for k, _ in t.request.headers} for t in recorded.tests
    )


def test_overlapping_calls_without_traceparent_are_marked_ambiguous(
    tmp_path: Path, upstream: str
) -> None:
    configure(tmp_path, upstream)
    with Recording(tmp_path, args=["--concurrent"]) as rec:
        fire(rec.url, range(1, 5), delay_ms=600, propagate=False)
        assert rec.stop() == 0
    recorded = load(tmp_path)
    mocks = [m for t in recorded.tests for m in recorded.mocks[t.id]]
    assert len(mocks) == 4
    ambiguous = [m for m in mocks if m.link is LinkKind.AMBIGUOUS]
    assert ambiguous, [m.link for m in mocks]
    test_ids = {t.id for t in recorded.tests}
    for m in ambiguous:
        assert m.candidates and set(m.candidates) <= test_ids
        assert m.test not in m.candidates
    text = (recorded.path / "mocks" / f"{ambiguous[0].test}.yaml").read_text()
    assert "link: ambiguous" in text and "candidates:" in text


def test_one_request_at_a_time_links_by_window(tmp_path: Path, upstream: str) -> None:
    configure(tmp_path, upstream)
    with Recording(tmp_path, args=["--concurrent"]) as rec:
        for i in (1, 2):
            fire(rec.url, range(i, i + 1), delay_ms=0, propagate=False)
        assert rec.stop() == 0
    recorded = load(tmp_path)
    for test in recorded.tests:
        assert [m.link for m in recorded.mocks[test.id]] == [LinkKind.WINDOW]


def test_the_default_lane_links_exactly_even_under_parallel_clients(
    tmp_path: Path, upstream: str
) -> None:
    configure(tmp_path, upstream)
    with Recording(tmp_path) as rec:
        fire(rec.url, range(1, 6), delay_ms=100, propagate=False)
        assert rec.stop() == 0
    recorded = load(tmp_path)
    assert len(recorded.tests) == 5
    for test in recorded.tests:
        own = test.request.target.split("?")[0].rsplit("/", 1)[1]
        assert [m.link for m in recorded.mocks[test.id]] == [LinkKind.LANE]
        assert mock_items(recorded, test.id) == [own]
