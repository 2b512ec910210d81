"""Polling the app's socket for a fast answer while the record lane waits.

In lane mode one request is in the app at a time, so the recording's throughput is one over the
round trip: proxy, app, proxy. When the app answers within a few tens of microseconds, a large
part of that round trip is the event loop going to sleep in ``epoll_wait`` and being woken again:
a context switch, and on a virtual machine often a wake-up of an idle vCPU, for every request.
The kernel's ``haltpoll`` idle governor and ``SO_BUSY_POLL`` answer the same problem the same
way, by polling for a short, bounded time before sleeping.

So after a request has gone to the app, the session tries to read the upstream socket, without
blocking and for at most ``window`` seconds, in a callback of its own. What it reads goes to the
connection's protocol exactly as the event loop would hand it over. Only plain TCP upstreams
are read this way; a TLS one is left to the event loop.

It adapts to the app. Polling goes on while recent polls found the answer within the window (an
average of how long they waited, where a poll that found nothing counts twice the window), so
a slow app, or one that calls its dependencies for most requests, soon costs no polling at all.
Every ``PROBE_EVERY``-th request then polls anyway, so that the average learns when the app
gets faster again. During a poll the event loop serves nothing else, for at most ``window``.
With a single CPU there is no polling at all: the app would have to wait for the poll to end.
"""

from __future__ import annotations

import os
import time

DEFAULT_WINDOW_US = 150
PROBE_EVERY = 64
_WEIGHT = 8  # the average moves by 1/8 of the difference to each new wait


class LanePoll:
    """The polling policy of one record lane: its window, and how long polls have waited."""

    __slots__ = ("_average", "_count", "answered", "polls", "window")

    def __init__(self, window: float) -> None:
        self.window = window  # seconds; 0 turns polling off
        self._average = 0.0  # optimistic: the first requests poll, and measure
        self._count = 0
        self.polls = 0  # reads made
        self.answered = 0  # reads that found bytes (or the end) within the window

    def observe(self, waited: float) -> None:
        """A poll waited ``waited`` seconds for the app's answer."""
        self._average += (waited - self._average) / _WEIGHT

    @property
    def average(self) -> float:
        return self._average

    def worth_polling(self) -> bool:
        """Whether to poll for the answer to the request just forwarded."""
        if self.window <= 0:
            return False
        if self._average <= self.window:
            return True
        self._count += 1
        return self._count % PROBE_EVERY == 0

    def read(self, fd: int, size: int) -> bytes | None:
        """Read up to ``size`` bytes from the non-blocking socket ``fd`` as soon as it has some,
        for at most the window, and learn from it. None when nothing came in time, or on an
        error, which is left for the event loop to meet: the socket then reads as ended."""
        clock = time.perf_counter
        read = os.read
        start = clock()
        deadline = start + self.window
        self.polls += 1
        while True:
            try:
                data = read(fd, size)
            except BlockingIOError:
                if clock() > deadline:
                    # The answer takes longer than the window: count it as twice the window,
                    # so that a few such answers in a row stop the polling.
                    self.observe(2 * self.window)
                    return None
                continue
            except OSError:
                return None
            self.observe(clock() - start)
            self.answered += 1
            return data  # b"" at the end: the event loop sees the end too, and handles it


def usable_cpus() -> int:
    """How many CPUs this process may run on. Polling needs two: one CPU polling, and one for
    the app to answer on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1
