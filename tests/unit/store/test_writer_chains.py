"""Chains are found as a recording is written, in the order its tests began."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from wiretape import model
from wiretape.chains import detect
from wiretape.runner.templatize import templatize
from wiretape.store import reader, writer
from wiretape.store.writer import SetWriter

CREATED = 1795244400.0
JSON = (("Content-Type", "application/json"),)


def info(name: str = "s1") -> model.SetInfo:
    return model.SetInfo(name=name, created=CREATED, app_command="python -m shop")


def order_flow(n: int) -> list[model.TestCase]:
    """Orders that are made, then read back and paid with the ids and tokens they got."""
    tests = []
    for i in range(1, n + 1):
        if i % 3 == 0:
            req = model.HttpRequest("GET", f"/api/orders/ord-{i - 2:06d}", ())
        elif i % 3 == 2:
            headers = (("Authorization", f"Bearer tok-{i - 1:06d}-secretish"), *JSON)
            body = json.dumps({"order": f"ord-{i - 1:06d}"}).encode()
            req = model.HttpRequest("POST", "/api/payments", headers, body)
        else:
            req = model.HttpRequest("POST", "/api/orders", JSON, b'{"sku":"sku-1"}')
        answer = {"id": f"ord-{i:06d}", "token": f"tok-{i:06d}-secretish"}
        resp = model.HttpResponse(201, "Created", JSON, json.dumps(answer).encode())
        tests.append(
            model.TestCase(id=f"{i:04d}-t", request=req, response=resp, started=CREATED + i)
        )
    return tests


def record(root: Path, tests: list[model.TestCase]) -> tuple[model.TestSet, int]:
    with SetWriter(root, info()) as w:
        for test in tests:
            w.add_test(test, [])
    return reader.load_set(w.path), w.chains


def chains_of(test_set: model.TestSet) -> dict[str, tuple[model.Chain, ...]]:
    return {t.id: t.chains for t in test_set.tests if t.chains}


def test_a_recording_is_written_with_the_chains_detection_finds(tmp_path: Path) -> None:
    tests = order_flow(30)
    expected = detect(tests)
    assert len(expected) == 20  # every read-back and every payment
    loaded, count = record(tmp_path, tests)
    assert chains_of(loaded) == expected
    assert count == sum(len(c) for c in expected.values())
    # Nothing is left for the command to add.
    assert templatize(loaded.path, dry_run=True).tests == 0


def test_tests_that_finished_out_of_order_are_chained_in_the_order_they_began(
    tmp_path: Path,
) -> None:
    tests = order_flow(60)
    finished = list(tests)
    rng = random.Random(7)
    for start in range(0, len(finished), 6):  # concurrent requests finish in another order
        window = finished[start : start + 6]
        rng.shuffle(window)
        finished[start : start + 6] = window
    assert finished != tests
    loaded, _ = record(tmp_path, finished)
    assert chains_of(loaded) == detect(tests)


def test_a_test_that_never_finished_holds_up_no_more_than_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Test 2 began but was never written (its session ended without an answer): the tests
    after it still get their chains, once the window is full and at the end."""
    monkeypatch.setattr(writer, "CHAIN_WINDOW", 4)
    tests = [t for t in order_flow(30) if t.index != 2]
    loaded, _ = record(tmp_path, tests)
    assert [t.id for t in loaded.tests] == [t.id for t in tests]
    assert chains_of(loaded) == detect(tests)


def test_the_order_buffer_waits_for_the_next_index_within_its_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer, "CHAIN_WINDOW", 3)
    tests = {t.index: t for t in order_flow(11)}
    order = writer._InOrder()

    def push(index: int) -> list[int]:
        return [t.index for t in order.push(tests[index])]

    assert push(1) == [1]
    assert push(3) == []  # 2 is still running
    assert push(2) == [2, 3]
    assert push(5) == [] and push(6) == [] and push(7) == []  # 4 never finishes
    # Four waiting: the earliest goes on, and the ones that follow it without a gap.
    assert push(8) == [5, 6, 7, 8]
    assert push(4) == [4]  # late, and taken at once
    assert push(9) == [9]
    assert push(11) == []
    assert [t.index for t in order.rest()] == [11]


def test_the_writer_counts_the_tests_it_has_written(tmp_path: Path) -> None:
    """``tests_written`` is what ``record`` shows while it stops: every test, once."""
    tests = order_flow(40)
    with SetWriter(tmp_path, info()) as w:
        for test in tests:
            w.add_test(test, [])
        assert 0 <= w.tests_written <= len(tests)
    assert w.tests_written == len(tests)
    assert len(reader.load_set(w.path).tests) == len(tests)
