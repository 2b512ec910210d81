"""A compiled set of noise paths, asked whether a location in a response is ignored.

An entry ``unordered(PATH)`` is not noise but an order rule: arrays at ``PATH`` are compared as
multisets (each recorded element must match a distinct live one, in any order). It travels in the
same lists as noise paths (config, set, test) so every place that takes noise takes it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from wiretape.compare.paths import Concrete, Path, parse_path

UNORDERED = "unordered("


def split_rule(text: str) -> tuple[str, bool]:
    """``(path, is_unordered)`` for one entry of a noise list."""
    stripped = text.strip()
    if stripped.startswith(UNORDERED) and stripped.endswith(")"):
        return stripped[len(UNORDERED) : -1].strip(), True
    return stripped, False


@dataclass(frozen=True, slots=True)
class Noise:
    paths: tuple[Path, ...] = ()
    unordered: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.paths or self.unordered)

    def hides(self, concrete: Concrete) -> bool:
        """Whether ``concrete`` is named by a noise path or lies beneath one."""
        return any(path.covers(concrete) for path in self.paths)

    def is_unordered(self, concrete: Concrete) -> bool:
        """Whether the array at ``concrete`` is compared without regard to order."""
        return any(path.matches(concrete) for path in self.unordered)

    def texts(self) -> tuple[str, ...]:
        return (
            *(path.text for path in self.paths),
            *(f"{UNORDERED}{path.text})" for path in self.unordered),
        )


NO_NOISE = Noise()


def compile_noise(texts: Iterable[str]) -> Noise:
    """Parse noise paths; raise ``PathSyntaxError`` (a ``ValueError``) naming the bad one.

    Duplicates are dropped; order is kept.
    """
    return _compile(tuple(dict.fromkeys(texts)))


@lru_cache(maxsize=256)
def _compile(texts: tuple[str, ...]) -> Noise:
    if not texts:
        return NO_NOISE
    hide: list[Path] = []
    order: list[Path] = []
    for text in texts:
        path, unordered = split_rule(text)
        (order if unordered else hide).append(parse_path(path))
    return Noise(tuple(hide), tuple(order))
