"""The outcome of a test run as data, and its lossless dict form (``format: wiretape/v1``)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wiretape.compare.diff import Difference
from wiretape.errors import StoreError
from wiretape.model import Candidate, Miss

__all__ = [
    "FORMAT",
    "STATUSES",
    "Candidate",
    "Miss",
    "RunReport",
    "TestResult",
    "load_report",
    "report_from_dict",
    "report_to_dict",
    "save_report",
]

FORMAT = "wiretape/v1"
STATUSES = ("passed", "failed", "error", "skipped")


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False  # not a pytest test class

    test_id: str
    status: str  # "passed" | "failed" | "error" | "skipped"
    duration: float
    differences: tuple[Difference, ...] = ()
    misses: tuple[Miss, ...] = ()
    unused_mocks: tuple[str, ...] = ()  # mock ids not consumed (fail only in strict mode)
    message: str = ""  # e.g. transport error text, why skipped
    method: str = ""  # of the test request, for display
    target: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"test {self.test_id}: status {self.status!r} is not one of {', '.join(STATUSES)}"
            )


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    set_name: str
    started: float  # epoch seconds
    duration: float
    results: tuple[TestResult, ...]
    strict: bool = False
    session_unused: tuple[str, ...] = ()  # session mock ids never consumed

    def _count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def passed(self) -> int:
        return self._count("passed")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def errors(self) -> int:
        return self._count("error")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0


# --- to dict ---------------------------------------------------------------------------


def report_to_dict(r: RunReport) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "run_id": r.run_id,
        "set_name": r.set_name,
        "started": r.started,
        "duration": r.duration,
        "strict": r.strict,
        "summary": {  # derived; ignored when reading
            "passed": r.passed,
            "failed": r.failed,
            "errors": r.errors,
            "skipped": r.skipped,
            "ok": r.ok,
        },
        "session_unused": list(r.session_unused),
        "results": [_result_to_dict(result) for result in r.results],
    }


def _result_to_dict(t: TestResult) -> dict[str, Any]:
    return {
        "test_id": t.test_id,
        "status": t.status,
        "duration": t.duration,
        "method": t.method,
        "target": t.target,
        "message": t.message,
        "differences": [
            {"path": d.path, "kind": d.kind, "expected": d.expected, "actual": d.actual}
            for d in t.differences
        ],
        "misses": [
            {
                "dep": m.dep,
                "request": m.request,
                "reason": m.reason,
                "candidates": [
                    {"mock_id": c.mock_id, "score": c.score, "differences": list(c.differences)}
                    for c in m.candidates
                ],
            }
            for m in t.misses
        ],
        "unused_mocks": list(t.unused_mocks),
    }


# --- from dict -------------------------------------------------------------------------


def report_from_dict(d: Mapping[str, Any]) -> RunReport:
    """Rebuild a report; raise ``ValueError`` saying which field is wrong."""
    if d.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} run report (format is {d.get('format')!r})")
    try:
        return RunReport(
            run_id=_str(d, "run_id"),
            set_name=_str(d, "set_name"),
            started=_num(d, "started"),
            duration=_num(d, "duration"),
            strict=bool(d.get("strict", False)),
            session_unused=_strs(d, "session_unused"),
            results=tuple(_result_from_dict(x) for x in _list(d, "results")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed run report: {exc}") from None


def _result_from_dict(d: Mapping[str, Any]) -> TestResult:
    return TestResult(
        test_id=_str(d, "test_id"),
        status=_str(d, "status"),
        duration=_num(d, "duration"),
        method=_str(d, "method", ""),
        target=_str(d, "target", ""),
        message=_str(d, "message", ""),
        differences=tuple(
            Difference(_str(x, "path"), _str(x, "kind"), x.get("expected"), x.get("actual"))
            for x in _list(d, "differences")
        ),
        misses=tuple(
            Miss(
                dep=_str(m, "dep"),
                request=_str(m, "request"),
                reason=_str(m, "reason", ""),
                candidates=tuple(
                    Candidate(_str(c, "mock_id"), _num(c, "score"), _strs(c, "differences"))
                    for c in _list(m, "candidates")
                ),
            )
            for m in _list(d, "misses")
        ),
        unused_mocks=_strs(d, "unused_mocks"),
    )


def _str(d: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} should be a string, got {value!r}")
    return value


def _num(d: Mapping[str, Any], key: str) -> float:
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field {key!r} should be a number, got {value!r}")
    return value


def _list(d: Mapping[str, Any], key: str) -> list[Any]:
    value = d.get(key, [])
    if not isinstance(value, list | tuple):
        raise ValueError(f"field {key!r} should be a list, got {type(value).__name__}")
    return list(value)


def _strs(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _list(d, key)
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"field {key!r} should be a list of strings")
    return tuple(values)


# --- files -----------------------------------------------------------------------------


def save_report(r: RunReport, path: str | os.PathLike[str]) -> None:
    """Write the report as JSON, atomically (a reader never sees half a file)."""
    target = os.fspath(path)
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report_to_dict(r), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_report(path: str | os.PathLike[str]) -> RunReport:
    """Read a report written by ``save_report``; raise ``StoreError`` naming the file."""
    target = os.fspath(path)
    try:
        with open(target, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise StoreError(f"cannot read run report {target}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise StoreError(
            f"run report {target} is not valid JSON ({exc}); it may be truncated — "
            "delete it and run the tests again"
        ) from exc
    if not isinstance(data, dict):
        raise StoreError(f"run report {target} does not hold a JSON object")
    try:
        return report_from_dict(data)
    except ValueError as exc:
        raise StoreError(f"run report {target}: {exc}") from exc
