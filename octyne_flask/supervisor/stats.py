"""CPU and memory of an app's whole process tree: from its cgroup, or from /proc through psutil.

No process is spawned per request (Octyne runs ``ps`` on every call). Each run
of an app has one ``RunStats``, the only place its figures are read: a reading
serves every caller for up to ``MAX_AGE`` seconds (extensions.md §H), and its
lock makes concurrent callers wait for one read instead of each walking /proc.
With a cgroup two or three small files give exact figures for everything in
it; without one, the tree is the app's first process and its descendants.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import psutil

from .cgroups import AppCgroup

MAX_AGE = 1.0  # seconds a reading may be reused


@functools.cache
def total_memory() -> int:
    """The host's RAM in bytes (MemTotal of /proc/meminfo); read once, it does not change."""
    return int(psutil.virtual_memory().total)


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at a run: when (monotonic seconds and epoch ms), the CPU seconds it has used since it started,
    the CPU percent of one core since the reading before, and its memory in bytes."""

    at: float
    time_ms: int
    cpu_seconds: float
    cpu_percent: float
    memory_bytes: int

    def percent_since(self, earlier: Reading) -> float:
        """CPU percent of one core between ``earlier`` and this reading."""
        return cpu_percent(earlier, self.at, self.cpu_seconds)


def cpu_percent(earlier: Reading, at: float, cpu_seconds: float) -> float:
    """CPU seconds used since ``earlier`` over the wall seconds since it, x 100."""
    elapsed = at - earlier.at
    return max(0.0, (cpu_seconds - earlier.cpu_seconds) / elapsed * 100) if elapsed > 0 else 0.0


class UsageSource(Protocol):
    def read(self) -> tuple[float, int] | None:
        """(CPU seconds used since the run started, memory bytes); None once the app's first process has gone."""


class TreeUsage:
    """CPU time and RSS summed over the app's first process and its descendants, from /proc."""

    def __init__(self, pid: int):
        self._root = psutil.Process(pid)

    def read(self) -> tuple[float, int] | None:
        try:
            tree = [self._root] + self._root.children(recursive=True)
        except psutil.Error:
            return None
        cpu, rss = 0.0, 0
        for process in tree:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    memory = process.memory_info().rss
            except psutil.Error:
                continue  # exited between the listing and the read
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += memory
        return cpu, rss


class CgroupUsage:
    """The run's (fresh, so initially empty) cgroup; the process tree's figure where the cgroup cannot tell
    (a controller is missing)."""

    def __init__(self, cgroup: AppCgroup, pid: int):
        self._cgroup = cgroup
        self._tree = TreeUsage(pid)

    def read(self) -> tuple[float, int] | None:
        usage = self._cgroup.usage()
        if usage.cpu_seconds is not None and usage.memory_bytes is not None:
            return usage.cpu_seconds, usage.memory_bytes
        tree = self._tree.read()
        if tree is None:
            return None
        return (usage.cpu_seconds if usage.cpu_seconds is not None else tree[0],
                usage.memory_bytes if usage.memory_bytes is not None else tree[1])


class RunStats:
    """The readings of one run of an app. ``start`` is its beginning (no CPU used yet)."""

    def __init__(self, source: UsageSource, pid: int):
        self._source = source
        self._lock = threading.Lock()
        started = psutil.Process(pid).create_time()
        self.start = Reading(time.monotonic() - max(0.0, time.time() - started), int(started * 1000), 0.0, 0.0, 0)
        self._latest = self.start

    @classmethod
    def of(cls, pid: int, cgroup: AppCgroup | None) -> RunStats:
        """Read from the run's cgroup when it has one, else from its process tree."""
        return cls(TreeUsage(pid) if cgroup is None else CgroupUsage(cgroup, pid), pid)

    def reading(self, max_age: float = MAX_AGE) -> Reading | None:
        """The latest reading if it is at most ``max_age`` seconds old, else a new one (its CPU percent since the
        reading before; the first: since the run started). None once the app's first process has gone."""
        with self._lock:
            latest = self._latest
            if latest is not self.start and time.monotonic() - latest.at <= max_age:
                return latest
            figures = self._source.read()
            if figures is None:
                return None
            cpu_seconds, memory = figures
            at = time.monotonic()
            self._latest = Reading(at, time.time_ns() // 1_000_000, cpu_seconds,
                                   cpu_percent(latest, at, cpu_seconds), memory)
            return self._latest
