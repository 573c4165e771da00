"""CPU and memory of an app's whole process tree: from its cgroup, or from /proc through psutil.

No process is spawned per request (Octyne runs ``ps`` on every call). With a
cgroup two or three small files give exact figures for everything in it.
Without one, the list of processes in the tree is refreshed at most once per
``TREE_TTL`` seconds, because finding descendants means scanning every
process on the machine; the figures themselves are read fresh on every call.
"""

from __future__ import annotations

import functools
import threading
import time

import psutil

from .cgroups import AppCgroup

TREE_TTL = 1.0


@functools.cache
def total_memory() -> int:
    """The host's RAM in bytes (MemTotal of /proc/meminfo); read once, it does not change."""
    return int(psutil.virtual_memory().total)


class _CpuRate:
    """CPU percent between samples: CPU seconds / wall seconds since the previous sample x 100."""

    def __init__(self, since_wall: float):
        self._last_cpu = 0.0
        self._last_wall = since_wall

    def percent(self, cpu_seconds: float) -> float:
        wall = time.time()
        elapsed = wall - self._last_wall
        percent = max(0.0, (cpu_seconds - self._last_cpu) / elapsed * 100) if elapsed > 0 else 0.0
        self._last_cpu, self._last_wall = cpu_seconds, wall
        return percent


class TreeStats:
    """Samples one running app; ``sample()`` gives (cpu percent since last sample, RSS bytes)."""

    def __init__(self, pid: int):
        self._lock = threading.Lock()
        self._root = psutil.Process(pid)
        self._tree: list[psutil.Process] = [self._root]
        self._tree_at = 0.0
        self._rate = _CpuRate(self._root.create_time())

    def sample(self) -> tuple[float, int]:
        """CPU percent since the previous sample (the first: since the app started) and tree RSS."""
        with self._lock:
            now = time.monotonic()
            if now - self._tree_at >= TREE_TTL:
                self._tree = self._find_tree()
                self._tree_at = now
            cpu, rss = 0.0, 0
            for process in self._tree:
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        rss += process.memory_info().rss
                except psutil.Error:
                    continue
                cpu += times.user + times.system + times.children_user + times.children_system
            return self._rate.percent(cpu), rss

    def _find_tree(self) -> list[psutil.Process]:
        try:
            return [self._root] + self._root.children(recursive=True)
        except psutil.Error:
            return [self._root]


class CgroupStats:
    """Samples one running app from its (per-run, so initially empty) cgroup.

    Where the cgroup cannot tell (a controller is missing), the process tree's figure is used instead.
    """

    def __init__(self, cgroup: AppCgroup, pid: int):
        self._lock = threading.Lock()
        self._cgroup = cgroup
        self._tree = TreeStats(pid)
        self._rate = _CpuRate(psutil.Process(pid).create_time())

    def sample(self) -> tuple[float, int]:
        usage = self._cgroup.usage()
        if usage.cpu_seconds is None or usage.memory_bytes is None:
            tree_cpu, tree_rss = self._tree.sample()
        with self._lock:
            cpu = self._rate.percent(usage.cpu_seconds) if usage.cpu_seconds is not None else tree_cpu
        return cpu, usage.memory_bytes if usage.memory_bytes is not None else tree_rss
