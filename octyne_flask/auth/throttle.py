"""Login throttling: guesses counted per client IP and per username, never globally.

A guess is counted *before* its password is checked, in the same locked step as
the limit check, so a burst of concurrent logins cannot all slip past the limit
while their hashes are still being computed. Logins are served by one process
(a Redis secondary refuses them), so the counters live in memory.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from typing import Callable, TypeVar

WINDOW_SECONDS = 600.0
MAX_FAILURES_PER_USERNAME = 10
MAX_FAILURES_PER_IP = 50
_MAX_TRACKED_KEYS = 100_000  # bounds memory when someone sprays random names

T = TypeVar("T")


class LoginThrottled(Exception):
    """No guess left for this client IP or username in the current window."""


class LoginThrottle:
    """Sliding-window guess counters."""

    def __init__(self, window: float = WINDOW_SECONDS, clock=time.monotonic):
        self._window = window
        self._clock = clock
        self._guesses: dict[tuple[str, str], deque] = {}
        self._lock = threading.Lock()

    def attempt(self, ip: str, username: str, check: Callable[[], T | None]) -> T | None:
        """Run ``check()`` (a password check) as one counted guess; raise LoginThrottled when none is left.

        The guess stays counted when ``check`` returns None (a wrong password); it is taken
        back when ``check`` succeeds or raises, because then nothing was guessed wrong.
        """
        keys = (("ip", ip), ("user", _fixed_size(username)))
        stamp = self._reserve(keys)
        try:
            outcome = check()
        except BaseException:
            self._release(keys, stamp)
            raise
        if outcome is not None:
            self._release(keys, stamp)
        return outcome

    def _reserve(self, keys) -> float:
        now = self._clock()
        with self._lock:
            if len(self._guesses) > _MAX_TRACKED_KEYS:
                self._prune(now)
            if (self._count(keys[0], now) >= MAX_FAILURES_PER_IP
                    or self._count(keys[1], now) >= MAX_FAILURES_PER_USERNAME):
                raise LoginThrottled()
            for key in keys:
                self._guesses.setdefault(key, deque()).append(now)
        return now

    def _release(self, keys, stamp: float) -> None:
        with self._lock:
            for key in keys:
                times = self._guesses.get(key)
                if times is not None and stamp in times:
                    times.remove(stamp)

    def _count(self, key: tuple[str, str], now: float) -> int:
        times = self._guesses.get(key)
        if not times:
            return 0
        while times and now - times[0] > self._window:
            times.popleft()
        if not times:
            del self._guesses[key]
            return 0
        return len(times)

    def _prune(self, now: float) -> None:
        for key in list(self._guesses):
            self._count(key, now)


def _fixed_size(username: str) -> bytes:
    """The username as a 16-byte digest: a counter kept for a 8 KB name (the header limit) costs no more."""
    return hashlib.blake2b(username.encode("utf-8", "surrogatepass"), digest_size=16).digest()
