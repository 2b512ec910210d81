"""Which recorded mock answers a live HTTP request during replay.

How this works: every HTTP mock's ``HttpKey`` is computed once, up front. ``begin_test`` turns the
active test's mocks into one queue per key, in recorded order; a lookup pops the head of the
queue for the live request's key, so identical requests get their recorded answers in order and
each answer is used once. Session mocks (recorded outside any test) are reusable: each key keeps a
cursor that walks its recorded answers in order and then stays on the last. Only a miss does more
than dict lookups: it asks ``explain.closest`` for the nearest recordings and says why none fit.

Database and TCP requests (``WireRequest``) are keyed by the key their protocol computed, under
the same rules. Those marked ``reusable`` (type introspection, ``SHOW``, pings) may also be
answered from any test's recordings when neither the active test nor the session has them: a
pooled connection may open in another test on replay than it did while recording.

The index holds mutable replay state and is meant to be driven from one thread or event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from wiretape.match.explain import closest, closest_wire
from wiretape.match.keys import describe, http_key
from wiretape.match.request_noise import HttpRules, keys_of
from wiretape.model import HttpRequest, Miss, Mock, WireRequest

__all__ = ["MockIndex", "request_key"]

_NAMED_TESTS = 2
Key = Any
_UNSET: Any = object()


def request_key(dep: str, req: HttpRequest | WireRequest) -> Key:
    if isinstance(req, WireRequest):
        return ("wire", dep, req.key)
    return http_key(dep, req)


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
    def __init__(
        self,
        session: Sequence[Mock],
        per_test: Mapping[str, Sequence[Mock]],
        *,
        http_noise: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """``http_noise``: request noise paths per HTTP dependency name (``request_noise``)."""
        self._http_rules = {
            dep: rules
            for dep, texts in (http_noise or {}).items()
            if (rules := HttpRules.of(texts)) is not None
        }
        self._session_mocks = list(session)
        self._session: dict[Key, _Replies] = {}
        self._session_loose: dict[Key, _Replies] = {}
        for pos, mock in enumerate(self._session_mocks):
            key, loose = self._keys(mock.dep, mock.request)
            self._session.setdefault(key, _Replies()).positions.append(pos)
            if loose is not None:
                self._session_loose.setdefault(loose, _Replies()).positions.append(pos)

        self._session_served: set[int] = set()

        self._tests: dict[str, list[Mock]] = {}
        self._test_keys: dict[str, list[Key]] = {}
        self._tests_by_key: dict[Key, list[str]] = {}
        self._test_loose: dict[str, list[Key | None]] = {}
        self._reusable: dict[Key, Mock] = {}
        for test_id, mocks in per_test.items():
            kept = list(mocks)
            both = [self._keys(m.dep, m.request) for m in kept]
            keys = [key for key, _ in both]
            self._tests[test_id] = kept
            self._test_keys[test_id] = keys
            self._test_loose[test_id] = [loose for _, loose in both]
            for key, mock in zip(keys, kept, strict=True):
                owners = self._tests_by_key.setdefault(key, [])
                if not owners or owners[-1] != test_id:
                    owners.append(test_id)
                if isinstance(mock.request, WireRequest) and mock.request.reusable:
                    self._reusable.setdefault(key, mock)
        self._deps = {m.dep for m in self._session_mocks}
        self._deps.update(m.dep for mocks in self._tests.values() for m in mocks)

        self._active: str | None = None
        self._queues: dict[Key, deque[int]] = {}
        self._loose_queues: dict[Key, deque[int]] = {}
        self._totals: dict[Key, int] = {}
        self._served: dict[str, list[str]] = {}
        self._served_positions: dict[str, set[int]] = {}
        self._misses: dict[str | None, list[Miss]] = {}

    def mocks_of(self, dep: str) -> Iterator[Mock]:
        """Every mock of ``dep``: the session's, then each test's, in recorded order."""
        for mock in self._session_mocks:
            if mock.dep == dep:
                yield mock
        for mocks in self._tests.values():
            for mock in mocks:
                if mock.dep == dep:
                    yield mock

    def begin_test(self, test_id: str | None) -> None:
        """Make ``test_id``'s mocks the active set; None means between tests.

        Beginning a test again starts it afresh: all its mocks are unused, and its served list and
        misses are cleared.
        """
        self._active = test_id
        self._queues = {}
        self._loose_queues = {}
        self._totals = {}
        if test_id is None:
            return
        for pos, key in enumerate(self._test_keys.get(test_id, ())):
            self._queues.setdefault(key, deque()).append(pos)
            self._totals[key] = self._totals.get(key, 0) + 1
        for pos, loose in enumerate(self._test_loose.get(test_id, ())):
            if loose is not None:
                self._loose_queues.setdefault(loose, deque()).append(pos)
        self._served[test_id] = []
        self._served_positions[test_id] = set()
        self._misses.pop(test_id, None)

    def lookup(
        self, dep: str, req: HttpRequest | WireRequest, *, optional: bool = False
    ) -> Mock | Miss:
        """The mock answering ``req``; a miss is kept for the report unless ``optional`` (the
        caller has its own answer, as for a connection start-up that was never recorded)."""
        key = self._key(dep, req)
        loose: Key | None = _UNSET
        active = self._active
        if active is not None:
            pos = self._take(active, key, None)
            if pos is None and self._loose_queues:
                loose = self._loose(dep, req)
                pos = self._take(active, key, loose)
            if pos is not None:
                self._served_positions[active].add(pos)
                mock = self._tests[active][pos]
                self._served[active].append(mock.id)
                return mock
        replies = self._session.get(key)
        if replies is None and self._session_loose:
            if loose is _UNSET:
                loose = self._loose(dep, req)
            if loose is not None:
                replies = self._session_loose.get(loose)
        if replies is not None:
            pos = replies.take()
            self._session_served.add(pos)
            mock = self._session_mocks[pos]
            if active is not None:
                self._served[active].append(mock.id)
            return mock
        reused = self._reusable.get(key)
        if reused is not None:
            if active is not None:
                self._served[active].append(reused.id)
            return reused
        miss = self._miss(dep, req, key)
        if not optional:
            self._misses.setdefault(active, []).append(miss)
        return miss

    def _key(self, dep: str, req: HttpRequest | WireRequest) -> Key:
        if isinstance(req, WireRequest):
            return ("wire", dep, req.key)
        rules = self._http_rules.get(dep)
        return http_key(dep, req) if rules is None else keys_of(dep, req, rules)[0]

    def _loose(self, dep: str, req: HttpRequest | WireRequest) -> Key | None:
        return self._keys(dep, req)[1]

    def _keys(self, dep: str, req: HttpRequest | WireRequest) -> tuple[Key, Key | None]:
        """The exact and the loose key (None when no typed value could make one differ)."""
        if isinstance(req, WireRequest):
            wire_loose = ("loose", dep, req.loose_key) if req.loose_key is not None else None
            return ("wire", dep, req.key), wire_loose
        key, loose = keys_of(dep, req, self._http_rules.get(dep))
        return key, None if loose is None else ("loose", loose)

    def _take(self, active: str, key: Key, loose: Key | None) -> int | None:
        """The next unused position of the active test answering ``key`` (or ``loose``)."""
        queue = self._queues.get(key)
        if queue:
            pos = queue.popleft()
            own = self._test_loose[active][pos]
            if own is not None:
                self._loose_queues[own].remove(pos)
            return pos
        if loose is None:
            return None
        queue = self._loose_queues.get(loose)
        if not queue:
            return None
        pos = queue.popleft()
        self._queues[self._test_keys[active][pos]].remove(pos)
        return pos

    def served(self, test_id: str) -> list[str]:
        """Ids of the mocks (the test's own and session ones) that answered during ``test_id``."""
        return list(self._served.get(test_id, ()))

    def unused(self, test_id: str) -> list[str]:
        """Ids of ``test_id``'s mocks that never answered, in recorded order."""
        used = self._served_positions.get(test_id, set())
        return [m.id for pos, m in enumerate(self._tests.get(test_id, ())) if pos not in used]

    def session_unused(self) -> list[str]:
        return [
            m.id for pos, m in enumerate(self._session_mocks) if pos not in self._session_served
        ]

    def misses(self, test_id: str | None) -> list[Miss]:
        return list(self._misses.get(test_id, ()))

    def _miss(self, dep: str, req: HttpRequest | WireRequest, key: Key) -> Miss:
        pool = list(self._session_mocks)
        if self._active is not None:
            pool = [*self._tests.get(self._active, ()), *pool]
        if isinstance(req, WireRequest):
            same = [m for m in pool if m.dep == dep and isinstance(m.request, WireRequest)]
            return Miss(
                dep=dep,
                request=req.summary,
                candidates=closest_wire(req, same),
                reason=self._reason(dep, key),
            )
        http = [m for m in pool if isinstance(m.request, HttpRequest)]
        same_dep = [m for m in http if m.dep == dep]
        return Miss(
            dep=dep,
            request=describe(req),
            candidates=closest(req, dep, same_dep or http),
            reason=self._reason(dep, key),
        )

    def _reason(self, dep: str, key: Key) -> str:
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
                f"no mocks were recorded for dependency {dep!r}; check the dependency name "
                "or record traffic to it"
            )
        return (
            "no recorded request is equal to this one after normalization; see how the closest "
            "candidates differ, and re-record the test if the call changed on purpose"
        )
