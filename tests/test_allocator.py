"""glibc malloc limits: at most two arenas, and a freed large buffer never raises the mmap threshold.

Each case runs in a fresh interpreter (the limits are process-wide) and reads glibc's own
account of its heaps with ``malloc_info``.
"""

import json
import re
import subprocess
import sys

import pytest

from octyne_flask.allocator import ARENA_MAX, is_glibc
from tests.harness import REPO

pytestmark = pytest.mark.skipif(not is_glibc(), reason="the limits are glibc's")

PROBE = r"""
import ctypes, json, sys, tempfile, threading
from octyne_flask.allocator import limit_allocator

applied = limit_allocator() if sys.argv[1] == "limit" else []
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p


def malloc_info() -> str:
    with tempfile.NamedTemporaryFile("r") as report:
        stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return report.read()


# An upload's 1 MiB read, freed, then the next one: is it mapped again, or cut from an arena?
first = bytearray(1 << 20)
del first
second = bytearray(1 << 20)
with_second = malloc_info()
del second
without_second = malloc_info()

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
with_threads = malloc_info()
all_allocated.wait()
print(json.dumps({"applied": applied, "with_second": with_second, "without_second": without_second,
                  "with_threads": with_threads}))
"""


def probe(mode: str, env: dict | None = None) -> dict:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=environment,
                          timeout=30, check=True)
    result = json.loads(done.stdout)
    return {"applied": result["applied"],
            "second_buffer_mapped": mapped_chunks(result["with_second"]) - mapped_chunks(result["without_second"]),
            "arenas": len(re.findall(r"<heap nr=", result["with_threads"]))}


def mapped_chunks(malloc_info: str) -> int:
    return int(re.search(r'<total type="mmap" count="(\d+)"', malloc_info)[1])


def test_limits_keep_two_arenas_and_map_every_large_buffer():
    result = probe("limit")
    assert result["applied"] == ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"]
    assert result["arenas"] <= ARENA_MAX  # glibc's default: one per thread, up to 8 per core
    assert result["second_buffer_mapped"] == 1  # by default the first one, freed, lifted the threshold past 1 MiB


def test_glibc_defaults_are_what_the_limits_change():
    """The premise of the two assertions above: without the limits, both come out the other way."""
    result = probe("defaults")
    assert result["arenas"] > ARENA_MAX
    assert result["second_buffer_mapped"] == 0


def test_a_limit_set_in_the_environment_is_left_alone():
    assert probe("limit", {"MALLOC_ARENA_MAX": "4"})["applied"] == ["MALLOC_MMAP_THRESHOLD_"]
    tunables = {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=262144"}
    assert probe("limit", tunables)["applied"] == ["MALLOC_ARENA_MAX"]
