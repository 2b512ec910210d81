from __future__ import annotations

import io

import pytest

from wiretape.runner import console
from wiretape.runner.console import Live


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_refresh_rewrites_the_line_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    term = Terminal()
    live = Live(term)
    made: list[int] = []

    def text() -> str:
        made.append(len(made))
        return f"recording: {len(made)} tests"

    live.refresh(text)  # the first one shows at once
    for _ in range(50):  # the same instant: neither shown nor even formatted
        live.refresh(text)
    clock[0] += 0.25
    live.refresh(text)
    assert made == [0, 1]
    assert term.getvalue() == "\rrecording: 1 tests\rrecording: 2 tests"
    live.done()
    assert term.getvalue().endswith("\r" + " " * len("recording: 2 tests") + "\r")


def test_refresh_is_silent_off_a_terminal() -> None:
    out = io.StringIO()
    live = Live(out)
    live.refresh(lambda: "never")
    assert out.getvalue() == ""
