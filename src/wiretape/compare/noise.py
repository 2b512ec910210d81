"""A compiled set of noise paths, asked whether a location in a response is ignored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from wiretape.compare.paths import Concrete, Path, parse_path


@dataclass(frozen=True, slots=True)
class Noise:
    paths: tuple[Path, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.paths)

    def hides(self, concrete: Concrete) -> bool:
        """Whether ``concrete`` is named by a noise path or lies beneath one."""
        return any(path.covers(concrete) for path in self.paths)

    def texts(self) -> tuple[str, ...]:
        return tuple(path.text for path in self.paths)


NO_NOISE = Noise()


def compile_noise(texts: Iterable[str]) -> Noise:
    """Parse noise paths; raise ``PathSyntaxError`` (a ``ValueError``) naming the bad one.

    Duplicates are dropped; order is kept.
    """
    return _compile(tuple(dict.fromkeys(texts)))


@lru_cache(maxsize=256)
def _compile(texts: tuple[str, ...]) -> Noise:
    return Noise(tuple(parse_path(text) for text in texts)) if texts else NO_NOISE
