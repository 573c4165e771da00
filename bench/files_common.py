"""Shared pieces of the file benchmarks: a real daemon, wall-clock timing, RSS sampling.

Benchmark data lives under /tmp (``OCTYNE_BENCH_DIR`` overrides), never in the repository.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config  # noqa: E402

BENCH_ROOT = Path(os.environ.get("OCTYNE_BENCH_DIR", "/tmp"))
MIB = 1024 * 1024


def workspace(name: str) -> Path:
    """A fresh folder under /tmp for one benchmark's data."""
    return Path(tempfile.mkdtemp(prefix=f"octyne-bench-{name}-", dir=BENCH_ROOT))


def transfer_workspace(name: str, size_mib: int) -> tuple[Path, Path, Path]:
    """``(base, server directory, source file)``: a fresh workspace with ``size_mib`` MiB of random bytes to send."""
    base = workspace(name)
    server = base / "server"
    server.mkdir()
    source = base / "source.bin"
    with open(source, "wb") as out:
        subprocess.run(["head", "-c", str(size_mib * MIB), "/dev/urandom"], stdout=out, check=True)
    return base, server, source


def start_daemon(base: Path, server_directory: Path, **config) -> RunningDaemon:
    """The real daemon (embedded gunicorn) serving one server called ``bench``."""
    base.mkdir(parents=True, exist_ok=True)
    servers = {"bench": {"directory": str(server_directory), "command": "sleep 100000", "enabled": False}}
    return RunningDaemon(base, daemon_config(base, servers, **config), {"admin": ADMIN_HASH})


def timed(command: list[str] | str, **kwargs) -> float:
    """Seconds a command takes (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - started


def timed_with_cpu(command: list[str] | str, watch_pid: int | None = None, **kwargs) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of a command; the CPU is the command's own, or that of the process
    tree ``watch_pid`` (the daemon doing the work) when given. CPU time is what a loaded, shared
    machine distorts least."""
    before = tree_cpu_seconds(watch_pid) if watch_pid else _children_cpu()
    wall = timed(command, **kwargs)
    after = tree_cpu_seconds(watch_pid) if watch_pid else _children_cpu()
    return wall, after - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants."""
    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def best_of(runs: int, measure) -> float:
    """The fastest of a few runs: the machine is shared, so the minimum is the least noisy."""
    return min(measure() for _ in range(runs))


def drop_file(path: Path) -> None:
    if path.exists():
        path.unlink()


class PeakRss:
    """Samples the resident memory of a process tree every 20 ms; ``peak`` minus ``start`` is the growth."""

    def __init__(self, pid: int):
        self._process = psutil.Process(pid)
        self.start = self._sample()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._sample())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def report(title: str, rows: list[tuple]) -> None:
    """Print a Markdown table (first row is the header)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows[1:]:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
