"""Loaded by ``bench/soak.py --tracemalloc`` through PYTHONPATH: traces the gunicorn worker's allocations.

Only a process created by ``os.fork`` (the worker; apps are started through exec) starts tracing; every
minute it writes the allocation sites that grew most since its first minute to ``OCTYNE_SOAK_TRACE``,
and glibc's per-arena statistics (``malloc_info``) to the same name with ``.malloc.xml`` added.
"""

import ctypes
import os
import threading
import time
import tracemalloc

TOP = 25


def _report_growth(path: str) -> None:
    time.sleep(60)
    baseline = tracemalloc.take_snapshot()
    started = time.monotonic()
    while True:
        time.sleep(60)
        snapshot = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"=== worker {os.getpid()}, minute {1 + (time.monotonic() - started) / 60:.1f}: "
                 f"traced {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB)"]
        for stat in snapshot.compare_to(baseline, "traceback")[:TOP]:
            lines.append(f"{stat.size_diff / 1024:+.0f} KiB in {stat.count_diff:+d} blocks "
                         f"(now {stat.size / 1024:.0f} KiB)")
            lines.extend(f"    {frame.filename}:{frame.lineno}" for frame in stat.traceback[-6:])
        with open(path, "a") as report:
            report.write("\n".join(lines) + "\n")
        _malloc_info(path + ".malloc.xml")


def _malloc_info(path: str) -> None:
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    stream = libc.fopen(path.encode(), b"a")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))


def _start_in_child() -> None:
    path = os.environ.get("OCTYNE_SOAK_TRACE")
    if path:
        tracemalloc.start(12)
        threading.Thread(target=_report_growth, args=(path,), name="soak-trace", daemon=True).start()


os.register_at_fork(after_in_child=_start_in_child)
