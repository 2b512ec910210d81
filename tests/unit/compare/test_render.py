from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.compare import report
from wiretape.compare.diff import Difference
from wiretape.compare.render import (
    MAX_DIFFERENCES,
    render_json,
    render_junit,
    render_progress,
    render_text,
)
from wiretape.errors import StoreError

Result = report.TestResult


def sample_report() -> report.RunReport:
    return report.RunReport(
        run_id="run-1",
        set_name="shop",
        started=1_700_000_000.5,
        duration=1.234,
        results=(
            Result("0001-get-api-orders", "passed", 0.012, method="GET", target="/api/orders"),
            Result(
                "0002-post-api-orders",
                "failed",
                0.0456,
                differences=(
                    Difference("status", "changed", 200, 201),
                    Difference("body.items[0].total", "changed", 12.5, 13),
                    Difference("header.X-Foo", "missing", "bar", None),
                    Difference("body.extra", "added", None, {"k": [1]}),
                    Difference("body.count", "type", 1, "1"),
                ),
                misses=(
                    report.Miss(
                        dep="payments",
                        request="GET /v1/rates?base=USD",
                        candidates=(
                            report.Candidate(
                                "m-0003", 0.82, ("query base: 'EUR' recorded, 'USD' live",)
                            ),
                        ),
                        reason="no recorded request has this query",
                    ),
                ),
                unused_mocks=("m-0004",),
                method="POST",
                target="/api/orders",
            ),
            Result("0003-get-health", "error", 2.5, message="connection refused by the app"),
            Result("0004-ws", "skipped", 0.0, message="upgraded connection is not replayed"),
        ),
        session_unused=("s-0001",),
    )


# --- text ------------------------------------------------------------------------------


def test_text_lists_each_test_path_and_summary() -> None:
    text = render_text(sample_report())
    lines = text.splitlines()
    assert lines[0] == "PASS 0001-get-api-orders  12ms"
    assert "FAIL 0002-post-api-orders  46ms" in lines
    assert "  POST /api/orders" in lines
    assert "  status: expected 200, got 201" in lines
    assert "  body.items[0].total: expected 12.5, got 13" in lines
    assert '  header.X-Foo: missing (expected "bar")' in lines
    assert '  body.extra: added (got {"k": [1]})' in lines
    assert '  body.count: expected number 1, got string "1"' in lines
    assert "  no recorded mock on payments for GET /v1/rates?base=USD" in lines
    assert "    closest: m-0003 (score 0.82)" in lines
    assert "      - query base: 'EUR' recorded, 'USD' live" in lines
    assert "  unused mocks: m-0004" in lines
    assert "ERR  0003-get-health  2.50s" in lines
    assert "  error: connection refused by the app" in lines
    assert "SKIP 0004-ws  0ms" in lines
    assert "session mocks never used: s-0001" in lines
    assert lines[-1] == "1 passed, 1 failed, 1 error, 1 skipped in 1.23s"
    assert "\x1b[" not in text


def test_text_color_only_when_asked() -> None:
    colored = render_text(sample_report(), color=True)
    assert "\x1b[32mPASS\x1b[0m" in colored
    assert "\x1b[31mFAIL\x1b[0m" in colored


def test_text_body_block_and_description() -> None:
    r = report.RunReport(
        "r",
        "s",
        0.0,
        0.1,
        (
            Result(
                "t",
                "failed",
                0.1,
                differences=(Difference("body", "changed", "<p>hi</p>", "<p>ho</p>\n<i>x</i>"),),
            ),
            Result(
                "u",
                "failed",
                0.1,
                differences=(
                    Difference("body", "changed", "1 bytes sha256:aa", "2 bytes sha256:bb"),
                ),
            ),
        ),
    )
    lines = render_text(r).splitlines()
    assert "  body: differs" in lines
    assert "    - <p>hi</p>" in lines
    assert "    + <p>ho</p>" in lines and "    + <i>x</i>" in lines
    assert "  body: expected 1 bytes sha256:aa, got 2 bytes sha256:bb" in lines


def test_text_escapes_control_characters() -> None:
    diff = Difference("body", "changed", "a\x1b[31mred", "b\x07")
    r = report.RunReport("r", "s", 0.0, 0.0, (Result("t", "failed", 0.0, differences=(diff,)),))
    text = render_text(r)
    assert "\x1b" not in text and "\x07" not in text
    assert "a\\x1b[31mred" in text


def test_text_limits_differences_unless_verbose() -> None:
    diffs = tuple(Difference(f"body.k{i}", "changed", i, i + 1) for i in range(MAX_DIFFERENCES + 5))
    r = report.RunReport("r", "s", 0.0, 0.0, (Result("t", "failed", 0.0, differences=diffs),))
    short = render_text(r)
    assert f"body.k{MAX_DIFFERENCES - 1}:" in short and f"body.k{MAX_DIFFERENCES}:" not in short
    assert "and 5 more differences" in short
    full = render_text(r, verbose=True)
    assert all(f"  {d.path}: expected" in full for d in diffs)


def test_text_truncates_long_values() -> None:
    diff = Difference("body.big", "changed", "x" * 1000, "y")
    r = report.RunReport("r", "s", 0.0, 0.0, (Result("t", "failed", 0.0, differences=(diff,)),))
    line = next(line for line in render_text(r).splitlines() if "body.big" in line)
    assert len(line) < 200 and "..." in line


# --- JSON ------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    r = sample_report()
    data = json.loads(render_json(r))
    assert data["format"] == "wiretape/v1"
    assert data["summary"] == {"passed": 1, "failed": 1, "errors": 1, "skipped": 1, "ok": False}
    assert report.report_from_dict(data) == r


def test_report_counts() -> None:
    r = sample_report()
    assert (r.passed, r.failed, r.errors, r.skipped, r.ok) == (1, 1, 1, 1, False)
    ok = report.RunReport(
        "r", "s", 0.0, 0.0, (Result("a", "passed", 0.0), Result("b", "skipped", 0.0))
    )
    assert ok.ok


def test_bad_status_rejected() -> None:
    with pytest.raises(ValueError, match="'passing' is not one of"):
        Result("t", "passing", 0.0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="wiretape/v2"), "not a wiretape/v1 run report"),
        (lambda d: d.pop("run_id"), "'run_id' should be a string"),
        (lambda d: d.update(started="yesterday"), "'started' should be a number"),
        (lambda d: d["results"][0].update(status="weird"), "is not one of"),
        (lambda d: d["results"][1].update(misses=[1]), "malformed"),
        (lambda d: d.update(results={}), "'results' should be a list"),
    ],
)
def test_report_from_dict_rejects(mutate: object, message: str) -> None:
    data = json.loads(render_json(sample_report()))
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        report.report_from_dict(data)


def test_save_and_load(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    report.save_report(sample_report(), target)
    assert report.load_report(target) == sample_report()
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(StoreError, match=r"nope\.json"):
        report.load_report(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "wiretape/v1", "run_', encoding="utf-8")
    with pytest.raises(StoreError, match=r"broken\.json is not valid JSON"):
        report.load_report(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(StoreError, match=r"wrong\.json: not a wiretape/v1"):
        report.load_report(wrong)


def test_reexports() -> None:
    from wiretape import model

    assert report.Candidate is model.Candidate and report.Miss is model.Miss
    assert {"Candidate", "Miss", "TestResult", "RunReport"} <= set(report.__all__)
    assert all(hasattr(report, name) for name in report.__all__)


json_scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
differences = st.builds(
    Difference,
    st.text(max_size=20),
    st.sampled_from(["changed", "missing", "added", "type"]),
    json_values,
    json_values,
)
candidates = st.builds(
    report.Candidate,
    st.text(max_size=10),
    st.floats(min_value=0, max_value=1),
    st.lists(st.text(max_size=20), max_size=3).map(tuple),
)
misses = st.builds(
    report.Miss,
    st.text(max_size=10),
    st.text(max_size=30),
    st.lists(candidates, max_size=3).map(tuple),
    st.text(max_size=20),
)
results = st.builds(
    Result,
    st.text(max_size=20),
    st.sampled_from(report.STATUSES),
    st.floats(min_value=0, max_value=1e6),
    st.lists(differences, max_size=4).map(tuple),
    st.lists(misses, max_size=2).map(tuple),
    st.lists(st.text(max_size=10), max_size=3).map(tuple),
    st.text(max_size=30),
    st.text(max_size=7),
    st.text(max_size=30),
)
reports = st.builds(
    report.RunReport,
    st.text(max_size=10),
    st.text(max_size=10),
    st.floats(min_value=0, max_value=4e9),
    st.floats(min_value=0, max_value=1e6),
    st.lists(results, max_size=5).map(tuple),
    st.booleans(),
    st.lists(st.text(max_size=10), max_size=3).map(tuple),
)


@given(reports)
def test_dict_round_trip_is_lossless(r: report.RunReport) -> None:
    assert report.report_from_dict(json.loads(render_json(r))) == r


@given(reports)
def test_junit_parses_and_counts_match(r: report.RunReport) -> None:
    root = ET.fromstring(render_junit(r).encode("utf-8"))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(r.results) == int(suite.get("tests", "-1"))
    assert int(suite.get("failures", "-1")) == r.failed == len(suite.findall("testcase/failure"))
    assert int(suite.get("errors", "-1")) == r.errors == len(suite.findall("testcase/error"))
    assert int(suite.get("skipped", "-1")) == r.skipped == len(suite.findall("testcase/skipped"))
    assert math.isclose(float(suite.get("time", "nan")), r.duration, abs_tol=1e-3)


# --- JUnit -----------------------------------------------------------------------------


def test_junit_content() -> None:
    root = ET.fromstring(render_junit(sample_report()))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "shop"
    assert suite.get("timestamp") == "2023-11-14T22:13:20+00:00"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert all(case.get("classname") == "wiretape.shop" for case in cases.values())
    assert cases["0002-post-api-orders"].get("time") == "0.046"
    failure = cases["0002-post-api-orders"].find("failure")
    assert failure is not None
    assert failure.get("message") == "status: expected 200, got 201 (and 4 more differences)"
    assert failure.text is not None
    for path in ("status:", "body.items[0].total:", "header.X-Foo:", "body.extra:", "body.count:"):
        assert path in failure.text
    assert "closest: m-0003" in failure.text
    error = cases["0003-get-health"].find("error")
    assert error is not None and error.get("message") == "connection refused by the app"
    skipped = cases["0004-ws"].find("skipped")
    assert skipped is not None and skipped.get("message") == "upgraded connection is not replayed"
    assert cases["0001-get-api-orders"].find("failure") is None


def test_junit_escapes_what_xml_cannot_hold() -> None:
    nasty = "a\x00b\x1bc\ud800d\ufffe<&>\"'"
    r = report.RunReport(
        nasty,
        nasty,
        0.0,
        0.0,
        (Result(nasty, "failed", 0.0, differences=(Difference(nasty, "changed", nasty, nasty),)),),
    )
    root = ET.fromstring(render_junit(r).encode("utf-8"))
    case = root.find("testsuite/testcase")
    assert case is not None
    assert case.get("name") == "a\\x00b\\x1bc\\ud800d\\ufffe<&>\"'"


# --- progress --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((5, 10, 1, 10), "[#####-----] 5/10 1 failed"),
        ((0, 10, 0, 10), "[----------] 0/10 0 failed"),
        ((10, 10, 0, 4), "[####] 10/10 0 failed"),
        ((3, 0, 0, 4), "[####] 3/0 0 failed"),
        ((1, 3, 0, 30), "[##########--------------------] 1/3 0 failed"),
    ],
)
def test_progress(args: tuple[int, int, int, int], expected: str) -> None:
    assert render_progress(*args) == expected


def test_progress_default_width() -> None:
    bar = render_progress(7, 7, 2)
    assert bar == "[" + "#" * 30 + "] 7/7 2 failed"
