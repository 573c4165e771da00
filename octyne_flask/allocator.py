"""glibc malloc's settings for the daemon, made in the master before gunicorn forks the worker (which inherits them).

Two settings, each measured with ``bench/soak.py`` (docs/benchmarks.md, "Soak"):

* **Two arenas.** With glibc's default, each new thread gets an arena of its own, up
  to 8 per core, and every arena keeps what is freed in it for that arena's next
  allocations. The worker runs dozens of threads (a request thread per open console,
  the apps' output readers); with two arenas it stayed 10 to 20 MiB lower.
* **A fixed mmap threshold of 1 MiB.** glibc otherwise raises its threshold to the
  size of the largest mapped block freed so far (up to 32 MiB), after which ever larger
  buffers are cut from the arenas, where they fragment: the worker's memory climbed in
  steps for many minutes. Held, a block of 1 MiB or more is mapped when allocated and
  returned when freed; what is smaller (console batches, output reads) stays in the
  arenas, as fast as before. (At glibc's starting value, 128 KiB, console floods to one
  client ran 15-20% slower: their batches were mapped and faulted in afresh.) Uploads make
  no such block per piece: the body is read into one buffer per upload
  (``request_body.py``, ``files/multipart.py``).

When an app's output pauses, its console text is compressed and the blocks it
replaced are freed; ``release_free_memory`` then hands glibc's free pages back to
the system (``malloc_trim``), which glibc does on its own only for the top of
each arena.

Set through ``mallopt`` rather than the environment, so the apps the daemon starts
inherit nothing; a setting the user made in the environment (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES``) is left alone.
"""

from __future__ import annotations

import ctypes
import os

# mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD = 1024 * 1024


def is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def _chosen_in_environment(variable: str, tunable: str) -> bool:
    return variable in os.environ or tunable in os.environ.get("GLIBC_TUNABLES", "")


def tune_malloc() -> dict[str, bool]:
    """Set both (unless the environment chose); says which of them this call set."""
    if not is_glibc():
        return {"arena_max": False, "mmap_threshold": False}  # musl, macOS: other allocators, other knobs
    mallopt = ctypes.CDLL(None).mallopt
    return {
        "arena_max": not _chosen_in_environment("MALLOC_ARENA_MAX", "glibc.malloc.arena_max")
        and mallopt(M_ARENA_MAX, ARENA_MAX) == 1,
        "mmap_threshold": not _chosen_in_environment("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")
        and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1,
    }


_malloc_trim = ctypes.CDLL(None).malloc_trim if is_glibc() else None


def release_free_memory() -> None:
    """Return the allocator's whole free pages to the system (glibc only; a fraction of a millisecond)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
