"""Live console lines: the record counter and the replay progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Live:
    """One status line rewritten in place on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self._width = 0
        self._shown = float("-inf")

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def refresh(self, text: Callable[[], str], every: float = 0.1) -> None:
        """``show(text())`` at most once every ``every`` seconds; ``text`` is called only then.

        For counters that change with every exchange: a terminal write per exchange would cost
        the recording more than the exchange itself.
        """
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._shown >= every:
            self._shown = now
            self.show(text())

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def say(text: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(f"wiretape: {text}", file=sys.stderr, flush=True)
