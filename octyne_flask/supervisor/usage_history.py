"""The last hour of each server's CPU and memory (extensions.md §H), sampled by one thread for the daemon.

Every interval (5 s) the sampler takes each running server's current reading
(the one GET /server/{id} shares, so /proc is still read in one place) and
appends it to that server's ``UsageHistory``: in memory only, bounded to one
hour of samples. A sample's CPU percent covers the time since the previous
sample of the same run; after a restart, since the new run began.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from .stats import MAX_AGE, Reading, RunStats

log = logging.getLogger(__name__)

HOUR = 3600.0
DEFAULT_INTERVAL_MS = 5000
MIN_INTERVAL_MS = 100
INTERVAL_VARIABLE = "OCTYNE_STATS_INTERVAL_MS"  # a test hook: the test suite samples faster than every 5 s


def sample_interval_ms(environ: dict[str, str] = os.environ) -> int:
    """5000, or the test hook's value in milliseconds (at least 100, at most the hour the history keeps)."""
    text = environ.get(INTERVAL_VARIABLE)
    if not text:
        return DEFAULT_INTERVAL_MS
    try:
        return min(max(MIN_INTERVAL_MS, int(text)), round(HOUR * 1000))
    except ValueError:
        log.warning("Ignoring %s=%r: not a whole number of milliseconds", INTERVAL_VARIABLE, text)
        return DEFAULT_INTERVAL_MS


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic seconds, for ageing out
    time_ms: int
    cpu_percent: float
    memory_bytes: int

    def as_json(self) -> dict:
        return {"time": self.time_ms, "cpuUsage": round(self.cpu_percent, 2), "memoryUsage": self.memory_bytes}


class UsageHistory:
    """One server's samples, oldest first, at most an hour's worth (720 at 5 s)."""

    def __init__(self, interval_ms: int):
        self.interval_ms = interval_ms
        self._lock = threading.Lock()
        self._samples: deque[Sample] = deque(maxlen=max(1, round(HOUR * 1000 / interval_ms)))
        self._run: RunStats | None = None
        self._last: Reading | None = None
        # Younger than the interval, so a sample never reuses the reading the previous one was made from.
        self._max_age = min(MAX_AGE, interval_ms / 2000)

    def record(self, run: RunStats | None) -> None:
        """Append a sample of the running ``run`` (None: not running, nothing to add)."""
        reading = run.reading(self._max_age) if run is not None else None
        with self._lock:
            if reading is None:
                self._run = self._last = None
                return
            earlier = self._last if run is self._run and self._last is not None else run.start
            self._run, self._last = run, reading
            self._samples.append(Sample(reading.at, reading.time_ms, reading.percent_since(earlier),
                                        reading.memory_bytes))

    def as_json(self) -> dict:
        """``{"interval": ms, "samples": [...]}``: the samples of the last hour, oldest first."""
        cutoff = time.monotonic() - HOUR
        with self._lock:
            samples = [sample.as_json() for sample in self._samples if sample.at >= cutoff]
        return {"interval": self.interval_ms, "samples": samples}


class Sampled(Protocol):
    def sample_usage(self) -> None:
        """Add a sample to the server's history if it runs."""


class UsageSampler:
    """The thread that samples every server each interval, on a fixed schedule; ``close`` stops it."""

    def __init__(self, servers: Callable[[], Iterable[tuple[str, Sampled]]], interval_ms: int):
        self.interval_ms = interval_ms
        self._servers = servers
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="octyne-stats-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.interval_ms / 1000
        due = time.monotonic() + interval
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            for name, server in self._servers():
                try:
                    server.sample_usage()
                except Exception:  # a bug; the other servers and the next round still get sampled
                    log.exception("Sampling the resource use of server %s failed", name)
            due += interval
            if due < time.monotonic():  # after a stall, keep the spacing rather than catching up
                due = time.monotonic() + interval

    def close(self) -> None:
        """Stop sampling and wait for the thread to end."""
        self._stopping.set()
        self._thread.join()
