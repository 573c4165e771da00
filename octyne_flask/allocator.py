"""glibc malloc's arena limit for the daemon, set in the master before gunicorn forks the worker (which inherits it).

With glibc's default, each new thread gets an arena of its own, up to 8 per
core, and every arena keeps what is freed in it for that arena's next
allocations. The worker runs dozens of threads (a request thread per open
console, the apps' output readers), and the large buffers they pass around
(1 MiB upload reads, scrollback frames) ended up spread over 16 arenas:
``bench/soak.py`` (docs/benchmarks.md, "Soak") measured the worker 10 to 20 MiB
lower with two. Holding glibc's mmap threshold as well kept it flatter still,
but doubled to tripled the CPU per uploaded byte, so it is not set here.
Set through ``mallopt`` rather than the environment, so the apps the daemon
starts inherit nothing; a limit the user set in the environment
(``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES``) is left alone.
"""

from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h
ARENA_MAX = 2


def is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def limit_arenas() -> bool:
    """Limit glibc to ``ARENA_MAX`` arenas unless the environment chose; True if this call set it."""
    if not is_glibc():
        return False  # musl, macOS: other allocators, other knobs
    if "MALLOC_ARENA_MAX" in os.environ or "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    return ctypes.CDLL(None).mallopt(M_ARENA_MAX, ARENA_MAX) == 1
