"""glibc malloc limits for the daemon, set in the master before gunicorn forks the worker (which inherits them).

With glibc's defaults the worker's memory kept climbing in steps under load
(``bench/soak.py``, docs/benchmarks.md, "Soak"): each new thread gets an arena
of its own, up to 8 per core, and every arena keeps what is freed in it; and
once a large buffer (a 1 MiB upload read, a scrollback frame) is freed, glibc
raises its mmap threshold to that size, so later buffers like it are cut from
those arenas, where they fragment the free space instead of being mapped and
unmapped. Two arenas alone were not enough; with the threshold held at
128 KiB too, the worker stays flat. The price: each large buffer is mapped
afresh, which roughly doubles the daemon's CPU per uploaded byte. Set through
``mallopt`` rather than the environment, so the apps the daemon starts inherit
nothing; a value the user set in the environment (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES``) is left alone.
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # mallopt parameters, from glibc's malloc.h
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept from moving

# (mallopt parameter, value, environment variable, GLIBC_TUNABLES name)
SETTINGS = (
    (M_ARENA_MAX, ARENA_MAX, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
    (M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
)


def is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def limit_allocator() -> list[str]:
    """Apply the limits the environment does not set already; returns the names of those applied."""
    if not is_glibc():
        return []  # musl, macOS: other allocators, other knobs
    mallopt = ctypes.CDLL(None).mallopt
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    applied = []
    for parameter, value, variable, tunable in SETTINGS:
        if variable not in os.environ and tunable not in tunables and mallopt(parameter, value) == 1:
            applied.append(variable)
    return applied
