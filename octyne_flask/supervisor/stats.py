"""CPU and memory of an app's whole process tree, read from /proc through psutil.

No process is spawned per request (Octyne runs ``ps`` on every call). The
list of processes in the tree is refreshed at most once per ``TREE_TTL``
seconds, because finding descendants means scanning every process on the
machine; the figures themselves are read fresh on every call.
"""

from __future__ import annotations

import functools
import threading
import time

import psutil

TREE_TTL = 1.0


@functools.cache
def total_memory() -> int:
    """The host's RAM in bytes (MemTotal of /proc/meminfo); read once, it does not change."""
    return int(psutil.virtual_memory().total)


class TreeStats:
    """Samples one running app; ``sample()`` gives (cpu percent since last sample, RSS bytes)."""

    def __init__(self, pid: int):
        self._lock = threading.Lock()
        self._root = psutil.Process(pid)
        self._tree: list[psutil.Process] = [self._root]
        self._tree_at = 0.0
        self._last_cpu = 0.0
        self._last_wall = self._root.create_time()

    def sample(self) -> tuple[float, int]:
        """CPU percent (CPU seconds / wall seconds since the previous sample x 100) and tree RSS."""
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
            wall = time.time()
            elapsed = wall - self._last_wall
            percent = max(0.0, (cpu - self._last_cpu) / elapsed * 100) if elapsed > 0 else 0.0
            self._last_cpu, self._last_wall = cpu, wall
            return percent, rss

    def _find_tree(self) -> list[psutil.Process]:
        try:
            return [self._root] + self._root.children(recursive=True)
        except psutil.Error:
            return [self._root]
