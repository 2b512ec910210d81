"""Turn a ``RunReport`` into console text, JSON or JUnit XML, and draw a progress bar."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from wiretape.compare.diff import Difference
from wiretape.compare.report import Miss, RunReport, TestResult, report_to_dict

__all__ = ["render_json", "render_junit", "render_progress", "render_text"]

MAX_DIFFERENCES = 20  # per test, unless verbose
_VALUE_CHARS = 120

_LABELS = {"passed": "PASS", "failed": "FAIL", "error": "ERR ", "skipped": "SKIP"}
_COLORS = {"passed": "32", "failed": "31", "error": "35", "skipped": "33"}
_RED, _GREEN, _BOLD = "31", "32", "1"

# C0 controls except tab, DEL and C1 controls: shown escaped so a body cannot drive the terminal.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# Characters XML 1.0 cannot hold at all, even as character references.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(_escape, text)


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms" if value < 1 else f"{value:.2f}s"


def _plural(count: int, word: str, plural: str) -> str:
    return f"{count} {word if count == 1 else plural}"


# --- text ------------------------------------------------------------------------------


def render_text(r: RunReport, *, color: bool = False, verbose: bool = False) -> str:
    lines: list[str] = []
    for result in r.results:
        label = _paint(_LABELS.get(result.status, "????"), _COLORS.get(result.status, "0"), color)
        lines.append(f"{label} {result.test_id}  {_seconds(result.duration)}")
        if result.status != "passed" or verbose or result.unused_mocks:
            lines.extend(_details(result, strict=r.strict, verbose=verbose, color=color))
    if r.session_unused:
        lines.append(f"session mocks never used: {', '.join(r.session_unused)}")
    summary = (
        f"{r.passed} passed, {r.failed} failed, {_plural(r.errors, 'error', 'errors')}, "
        f"{r.skipped} skipped in {r.duration:.2f}s"
    )
    lines.append(_paint(summary, _GREEN if r.ok else _RED, color))
    return "\n".join(lines) + "\n"


def _details(result: TestResult, *, strict: bool, verbose: bool, color: bool) -> list[str]:
    lines: list[str] = []
    if (result.method or result.target) and (result.status != "passed" or verbose):
        lines.append(f"  {_printable(result.method)} {_printable(result.target)}".rstrip())
    if result.message:
        prefix = {"error": "error: ", "skipped": "skipped: "}.get(result.status, "")
        lines.append(f"  {prefix}{_printable(result.message)}")
    shown = result.differences if verbose else result.differences[:MAX_DIFFERENCES]
    for difference in shown:
        lines.extend(_difference_lines(difference, color))
    hidden = len(result.differences) - len(shown)
    if hidden:
        lines.append(f"  ... and {hidden} more differences (verbose output shows all)")
    for miss in result.misses:
        lines.extend(_miss_lines(miss))
    if result.unused_mocks:
        note = " (strict mode: this fails the test)" if strict else ""
        lines.append(f"  unused mocks{note}: {', '.join(result.unused_mocks)}")
    return lines


def _difference_lines(d: Difference, color: bool) -> list[str]:
    path = _paint(d.path, _BOLD, color)
    if d.path == "body" and _is_block(d.expected) and _is_block(d.actual):
        return _block_lines(path, str(d.expected), str(d.actual), color)
    expected, actual = _value(d.expected, d.path), _value(d.actual, d.path)
    if d.kind == "missing":
        return [f"  {path}: missing (expected {expected})"]
    if d.kind == "added":
        return [f"  {path}: added (got {actual})"]
    if d.kind == "type":
        return [
            f"  {path}: expected {_type_name(d.expected)} {expected}, "
            f"got {_type_name(d.actual)} {actual}"
        ]
    if d.kind == "changed":
        return [f"  {path}: expected {expected}, got {actual}"]
    return [f"  {path}: {_printable(d.kind)}: expected {expected}, got {actual}"]


def _is_block(value: object) -> bool:
    return isinstance(value, str)


def _block_lines(path: str, expected: str, actual: str, color: bool) -> list[str]:
    if expected and actual and "\n" not in expected and "\n" not in actual:
        return [f"  {path}: expected {_printable(expected)}, got {_printable(actual)}"]
    lines = [f"  {path}: differs"]
    if expected:
        lines.extend(
            _paint(f"    - {_printable(line)}", _RED, color) for line in expected.split("\n")
        )
    if actual:
        lines.extend(
            _paint(f"    + {_printable(line)}", _GREEN, color) for line in actual.split("\n")
        )
    return lines


def _value(value: object, path: str) -> str:
    """A value in one line: raw for body descriptions, compact JSON otherwise."""
    if path == "body" and isinstance(value, str):
        text = _printable(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=repr)
        text = _printable(text)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _miss_lines(miss: Miss) -> list[str]:
    lines = [f"  no recorded mock on {miss.dep} for {_printable(miss.request)}"]
    if miss.reason:
        lines.append(f"    {_printable(miss.reason)}")
    if not miss.candidates:
        lines.append("    no recorded request came close")
    for candidate in miss.candidates:
        lines.append(f"    closest: {candidate.mock_id} (score {candidate.score:.2f})")
        lines.extend(f"      - {_printable(text)}" for text in candidate.differences)
    return lines


# --- JSON ------------------------------------------------------------------------------


def render_json(r: RunReport) -> str:
    return json.dumps(report_to_dict(r), indent=2)


# --- JUnit -----------------------------------------------------------------------------


def _xml(text: str) -> str:
    return _NOT_XML.sub(_escape, text)


def _counts(r: RunReport) -> dict[str, str]:
    return {
        "tests": str(len(r.results)),
        "failures": str(r.failed),
        "errors": str(r.errors),
        "skipped": str(r.skipped),
        "time": f"{r.duration:.3f}",
    }


def render_junit(r: RunReport) -> str:
    root = ET.Element("testsuites", {"name": "wiretape", **_counts(r)})
    suite = ET.SubElement(root, "testsuite", {"name": _xml(r.set_name), **_counts(r)})
    timestamp = _timestamp(r.started)
    if timestamp:
        suite.set("timestamp", timestamp)
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", {"name": "run_id", "value": _xml(r.run_id)})
    ET.SubElement(properties, "property", {"name": "strict", "value": str(r.strict).lower()})
    for result in r.results:
        _testcase(suite, result, r)
    if r.session_unused:
        out = ET.SubElement(suite, "system-out")
        out.text = _xml(f"session mocks never used: {', '.join(r.session_unused)}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _timestamp(started: float) -> str:
    try:
        return datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return ""


def _testcase(suite: ET.Element, result: TestResult, r: RunReport) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": _xml(f"wiretape.{r.set_name}"),
            "name": _xml(result.test_id),
            "time": f"{result.duration:.3f}",
        },
    )
    details = _details(result, strict=r.strict, verbose=True, color=False)
    text = _xml("\n".join(line.removeprefix("  ") for line in details))
    if result.status == "failed":
        failure = ET.SubElement(
            case, "failure", {"message": _xml(_headline(result)), "type": "mismatch"}
        )
        failure.text = text
    elif result.status == "error":
        error = ET.SubElement(
            case, "error", {"message": _xml(result.message or "error"), "type": "error"}
        )
        error.text = text
    elif result.status == "skipped":
        ET.SubElement(case, "skipped", {"message": _xml(result.message)})
    elif result.unused_mocks:
        out = ET.SubElement(case, "system-out")
        out.text = text


def _headline(result: TestResult) -> str:
    """A one-line reason for a failure, for the ``message`` attribute."""
    if result.differences:
        first = _difference_lines(result.differences[0], color=False)[0].strip()
        more = len(result.differences) - 1
        return first + (
            f" (and {_plural(more, 'more difference', 'more differences')})" if more else ""
        )
    if result.misses:
        miss = result.misses[0]
        return f"no recorded mock on {miss.dep} for {miss.request}"
    if result.message:
        return result.message
    if result.unused_mocks:
        return f"unused mocks: {', '.join(result.unused_mocks)}"
    return "failed"


# --- progress --------------------------------------------------------------------------


def render_progress(done: int, total: int, failed: int, width: int = 30) -> str:
    """A one-line bar such as ``[#####-----] 5/10 1 failed``."""
    width = max(width, 1)
    filled = width if total <= 0 else min(width, max(0, done * width // total))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done}/{total} {failed} failed"
