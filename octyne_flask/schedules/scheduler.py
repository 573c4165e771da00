"""One thread for the whole daemon: a heap of next-due times, sleeping until the earliest, woken on change.

A job is any key with a ``next_after(epoch seconds) -> epoch seconds`` function.
Due runs are handed to ``fire(key)`` outside the lock. A run found overdue by
more than ``MISSED_AFTER`` (the machine slept, the clock jumped) is not run
late: the job simply moves on to its next time, as it does after a daemon restart.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

MISSED_AFTER = 60.0  # seconds


class Scheduler:
    def __init__(self, fire: Callable[[Hashable], None], clock: Callable[[], float] = time.time):
        self._fire = fire
        self._clock = clock
        self._cond = threading.Condition()
        self._jobs: dict[Hashable, tuple[object, Callable[[float], float]]] = {}  # key -> (spec, next_after)
        self._due: dict[Hashable, tuple[float, int]] = {}  # key -> the live heap entry's (due, sequence)
        self._heap: list[tuple[float, int, Hashable]] = []
        self._sequence = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    def replace(self, jobs: dict[Hashable, tuple[object, Callable[[float], float]]]) -> None:
        """Use these jobs from now on: ``key -> (spec, next_after)``; a key whose spec is unchanged keeps its due time."""
        now = self._clock()
        with self._cond:
            old, self._jobs = self._jobs, dict(jobs)
            for key in list(self._due):
                if key not in jobs or old[key][0] != jobs[key][0]:
                    del self._due[key]
            for key, (_, next_after) in jobs.items():
                if key not in self._due:
                    self._push(key, next_after(now))
            self._cond.notify_all()

    def due_time(self, key: Hashable) -> float | None:
        """When ``key`` runs next (epoch seconds), or None for an unknown key."""
        with self._cond:
            entry = self._due.get(key)
            return entry[0] if entry else None

    def take_due(self, now: float) -> list[Hashable]:
        """Pop every job due at ``now`` and schedule its next time after ``now``; return those to run."""
        ready = []
        with self._cond:
            while self._heap and self._heap[0][0] <= now:
                due, sequence, key = heapq.heappop(self._heap)
                if self._due.get(key) != (due, sequence):
                    continue  # replaced or removed since it was pushed
                if now - due <= MISSED_AFTER:
                    ready.append(key)
                else:
                    log.warning("Schedule %s missed its run at %s; not running it late", key, time.ctime(due))
                self._push(key, self._jobs[key][1](now))
        return ready

    def _push(self, key: Hashable, due: float) -> None:
        entry = (due, next(self._sequence))
        self._due[key] = entry
        heapq.heappush(self._heap, (*entry, key))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            for key in self.take_due(self._clock()):
                try:
                    self._fire(key)
                except Exception:
                    log.exception("Schedule %s could not be started", key)
            with self._cond:
                if self._closed:
                    return
                timeout = self._heap[0][0] - self._clock() if self._heap else None
                if timeout is None or timeout > 0:
                    self._cond.wait(timeout)
