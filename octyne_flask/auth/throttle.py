"""Login throttling: failures counted per client IP and per username, never globally."""

from __future__ import annotations

import threading
import time
from collections import deque

WINDOW_SECONDS = 600.0
MAX_FAILURES_PER_USERNAME = 10
MAX_FAILURES_PER_IP = 50
_MAX_TRACKED_KEYS = 100_000  # bounds memory when someone sprays random names


class LoginThrottle:
    """Sliding-window failure counters; ``blocked`` is checked before a password is hashed."""

    def __init__(self, window: float = WINDOW_SECONDS, clock=time.monotonic):
        self._window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def blocked(self, ip: str, username: str) -> bool:
        now = self._clock()
        with self._lock:
            return (self._count(("ip", ip), now) >= MAX_FAILURES_PER_IP
                    or self._count(("user", username), now) >= MAX_FAILURES_PER_USERNAME)

    def record_failure(self, ip: str, username: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > _MAX_TRACKED_KEYS:
                self._prune(now)
            for key in (("ip", ip), ("user", username)):
                self._failures.setdefault(key, deque()).append(now)

    def _count(self, key: tuple[str, str], now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and now - times[0] > self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._count(key, now)
