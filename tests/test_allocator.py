"""glibc malloc's settings: threads share at most two arenas, and large blocks stay mapped (a fixed mmap
threshold), unless the environment chose.

Each case runs in a fresh interpreter (the settings are process-wide) and reads glibc's own account:
its heaps (``malloc_info``), its mapped blocks (``mallinfo2``).
"""

import json
import re
import subprocess
import sys

import pytest

from octyne_flask.allocator import ARENA_MAX, MMAP_THRESHOLD, is_glibc
from tests.harness import REPO

pytestmark = pytest.mark.skipif(not is_glibc(), reason="the limit is glibc's")

PROBE = r"""
import ctypes, json, sys, tempfile, threading
from octyne_flask.allocator import tune_malloc

applied = tune_malloc()["arena_max"] if sys.argv[1] == "limit" else False
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p

# Eight threads alive at once, each allocating outside Python's small-object allocator.
all_allocated = threading.Barrier(9)
buffers = []
def allocate():
    buffers.append(bytearray(4096))
    all_allocated.wait()
    all_allocated.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
all_allocated.wait()
with tempfile.NamedTemporaryFile("r") as report:
    stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    info = report.read()
all_allocated.wait()
print(json.dumps({"applied": applied, "malloc_info": info}))
"""


def probe(mode: str, env: dict | None = None) -> tuple[bool, int]:
    """(whether ``limit_arenas`` set the limit, how many arenas eight threads ended up using)."""
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=environment,
                          timeout=30, check=True)
    result = json.loads(done.stdout)
    return result["applied"], len(re.findall(r"<heap nr=", result["malloc_info"]))


def test_eight_threads_share_at_most_two_arenas():
    applied, arenas = probe("limit")
    assert applied
    assert arenas <= ARENA_MAX


def test_without_the_limit_each_thread_gets_its_own_arena():
    """The premise: glibc's default, which let the worker's memory spread over 16 arenas."""
    applied, arenas = probe("defaults")
    assert not applied
    assert arenas > ARENA_MAX


@pytest.mark.parametrize("env, chosen", [({"MALLOC_ARENA_MAX": "4"}, 4),
                                         ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=3"}, 3)])
def test_a_limit_set_in_the_environment_is_left_alone(env, chosen):
    assert probe("limit", env) == (False, chosen)


THRESHOLD_PROBE = r"""
import ctypes, json, sys
from octyne_flask.allocator import tune_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

applied = tune_malloc()["mmap_threshold"] if sys.argv[1] == "tune" else False
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(int(sys.argv[2]) * 2))  # a large mapped block freed: glibc's default raises its threshold past it
before = libc.mallinfo2().hblks
blocks = [libc.malloc(int(sys.argv[2])) for _ in range(4)]
mapped = libc.mallinfo2().hblks - before
for block in blocks:
    libc.free(block)
print(json.dumps({"applied": applied, "mapped": mapped}))
"""


def threshold_probe(mode: str, size: int, env: dict | None = None) -> tuple[bool, int]:
    """(whether ``tune_malloc`` held the threshold, how many of four ``size``-byte blocks glibc mapped)."""
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, "-c", THRESHOLD_PROBE, mode, str(size)], capture_output=True, text=True,
                          env=environment, timeout=30, check=True)
    result = json.loads(done.stdout)
    return result["applied"], result["mapped"]


def test_blocks_over_the_held_threshold_stay_mapped_after_a_larger_one_was_freed():
    assert threshold_probe("tune", 2 * MMAP_THRESHOLD) == (True, 4)  # returned to the system when freed
    assert threshold_probe("tune", MMAP_THRESHOLD // 2) == (True, 0)  # small ones come from the arenas


def test_with_glibcs_moving_threshold_they_are_cut_from_the_arenas():
    """The premise: after a 4 MiB block was freed, glibc's default serves 2 MiB blocks from its arenas."""
    assert threshold_probe("defaults", 2 * MMAP_THRESHOLD) == (False, 0)


@pytest.mark.parametrize("env", [{"MALLOC_MMAP_THRESHOLD_": str(8 * MMAP_THRESHOLD)},
                                 {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={8 * MMAP_THRESHOLD}"}])
def test_a_threshold_set_in_the_environment_is_left_alone(env):
    assert threshold_probe("tune", 2 * MMAP_THRESHOLD, env) == (False, 0)  # under the user's threshold


RELEASE_PROBE = r"""
import json
from octyne_flask.allocator import release_free_memory, tune_malloc

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

tune_malloc()
# 40 MiB in blocks under the mmap threshold, each followed by a small block that stays: the freed
# memory is in the middle of the heap, where glibc does not give it back on its own.
blocks = [(bytes(256 * 1024), bytes(2000)) for _ in range(160)]
kept = [small for _, small in blocks]
del blocks
freed = resident()
release_free_memory()
print(json.dumps({"freed": freed, "released": resident()}))
"""


def test_release_free_memory_gives_the_heaps_free_pages_back():
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, env=environment,
                          timeout=30, check=True)
    result = json.loads(done.stdout)
    assert result["freed"] > 30 * 1024 * 1024  # freed by Python, kept by glibc
    assert result["freed"] - result["released"] > 15 * 1024 * 1024
