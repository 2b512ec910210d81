"""Which recorded mock answers a live HTTP request during replay.

How this works: every HTTP mock's ``HttpKey`` is computed once, up front. ``begin_test`` turns the
active test's mocks into one queue per key, in recorded order; a lookup pops the head of the
queue for the live request's key, so identical requests get their recorded answers in order and
each answer is used once. Session mocks (recorded outside any test) are reusable: each key keeps a
cursor that walks its recorded answers in order and then stays on the last. Only a miss does more
than dict lookups: it asks ``explain.closest`` for the nearest recordings and says why none fit.

The index holds mutable replay state and is meant to be driven from one thread or event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from wiretape.match.explain import closest
from wiretape.match.keys import HttpKey, describe, http_key
from wiretape.model import HttpRequest, Miss, Mock

__all__ = ["MockIndex"]

PROTOCOL = "http"
_NAMED_TESTS = 2


class _Replies:
    """A session key's recorded answers: served in order, the last one repeating."""

    __slots__ = ("next", "positions")

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.next = 0

    def take(self) -> int:
        pos = self.positions[min(self.next, len(self.positions) - 1)]
        if self.next < len(self.positions):
            self.next += 1
        return pos


class MockIndex:
    def __init__(self, session: Sequence[Mock], per_test: Mapping[str, Sequence[Mock]]) -> None:
        self._session_mocks = [m for m in session if m.protocol == PROTOCOL]
        self._session: dict[HttpKey, _Replies] = {}
        for pos, mock in enumerate(self._session_mocks):
            key = http_key(mock.dep, mock.request)
            self._session.setdefault(key, _Replies()).positions.append(pos)
        self._session_served: set[int] = set()

        self._tests: dict[str, list[Mock]] = {}
        self._test_keys: dict[str, list[HttpKey]] = {}
        self._tests_by_key: dict[HttpKey, list[str]] = {}
        for test_id, mocks in per_test.items():
            kept = [m for m in mocks if m.protocol == PROTOCOL]
            keys = [http_key(m.dep, m.request) for m in kept]
            self._tests[test_id] = kept
            self._test_keys[test_id] = keys
            for key in keys:
                owners = self._tests_by_key.setdefault(key, [])
                if not owners or owners[-1] != test_id:
                    owners.append(test_id)
        self._deps = {m.dep for m in self._session_mocks}
        self._deps.update(m.dep for mocks in self._tests.values() for m in mocks)

        self._active: str | None = None
        self._queues: dict[HttpKey, deque[int]] = {}
        self._totals: dict[HttpKey, int] = {}
        self._served: dict[str, list[str]] = {}
        self._served_positions: dict[str, set[int]] = {}
        self._misses: dict[str | None, list[Miss]] = {}

    def begin_test(self, test_id: str | None) -> None:
        """Make ``test_id``'s mocks the active set; None means between tests.

        Beginning a test again starts it afresh: all its mocks are unused, and its served list and
        misses are cleared.
        """
        self._active = test_id
        self._queues = {}
        self._totals = {}
        if test_id is None:
            return
        for pos, key in enumerate(self._test_keys.get(test_id, ())):
            self._queues.setdefault(key, deque()).append(pos)
            self._totals[key] = self._totals.get(key, 0) + 1
        self._served[test_id] = []
        self._served_positions[test_id] = set()
        self._misses.pop(test_id, None)

    def lookup(self, dep: str, req: HttpRequest) -> Mock | Miss:
        key = http_key(dep, req)
        active = self._active
        if active is not None:
            queue = self._queues.get(key)
            if queue:
                pos = queue.popleft()
                self._served_positions[active].add(pos)
                mock = self._tests[active][pos]
                self._served[active].append(mock.id)
                return mock
        replies = self._session.get(key)
        if replies is not None:
            pos = replies.take()
            self._session_served.add(pos)
            mock = self._session_mocks[pos]
            if active is not None:
                self._served[active].append(mock.id)
            return mock
        miss = self._miss(dep, req, key)
        self._misses.setdefault(active, []).append(miss)
        return miss

    def served(self, test_id: str) -> list[str]:
        """Ids of the mocks (the test's own and session ones) that answered during ``test_id``."""
        return list(self._served.get(test_id, ()))

    def unused(self, test_id: str) -> list[str]:
        """Ids of ``test_id``'s HTTP mocks that never answered, in recorded order."""
        used = self._served_positions.get(test_id, set())
        return [m.id for pos, m in enumerate(self._tests.get(test_id, ())) if pos not in used]

    def session_unused(self) -> list[str]:
        return [
            m.id for pos, m in enumerate(self._session_mocks) if pos not in self._session_served
        ]

    def misses(self, test_id: str | None) -> list[Miss]:
        return list(self._misses.get(test_id, ()))

    def _miss(self, dep: str, req: HttpRequest, key: HttpKey) -> Miss:
        pool = list(self._session_mocks)
        if self._active is not None:
            pool = [*self._tests.get(self._active, ()), *pool]
        same_dep = [m for m in pool if m.dep == dep]
        return Miss(
            dep=dep,
            request=describe(req),
            candidates=closest(req, dep, same_dep or pool),
            reason=self._reason(dep, key),
        )

    def _reason(self, dep: str, key: HttpKey) -> str:
        active = self._active
        total = self._totals.get(key, 0)
        if total:
            used = (
                "the only recorded answer for this request was"
                if total == 1
                else f"all {total} recorded answers for this request were"
            )
            return (
                f"{used} already used in this test; the app now makes this call more often than "
                "when it was recorded (re-record the test if that is intended)"
            )
        owners = [t for t in self._tests_by_key.get(key, ()) if t != active]
        if owners:
            named = ", ".join(owners[:_NAMED_TESTS])
            if len(owners) > _NAMED_TESTS:
                named += f" (and {len(owners) - _NAMED_TESTS} more)"
            if active is None:
                return (
                    f"this request was recorded in test {named}; between tests only session "
                    "mocks answer"
                )
            return (
                f"this request was recorded in test {named}, not in {active}; a test's mocks "
                "answer only that test (re-record if the call moved between tests)"
            )
        if dep not in self._deps:
            return (
                f"no HTTP mocks were recorded for dependency {dep!r}; check the dependency name "
                "or record traffic to it"
            )
        return (
            "no recorded request is equal to this one after normalization; see how the closest "
            "candidates differ, and re-record the test if the call changed on purpose"
        )
