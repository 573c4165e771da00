"""glibc malloc's arena limit: threads share at most two arenas, unless the environment chose.

Each case runs in a fresh interpreter (the limit is process-wide) and counts the arenas
in glibc's own account of its heaps (``malloc_info``).
"""

import json
import re
import subprocess
import sys

import pytest

from octyne_flask.allocator import ARENA_MAX, is_glibc
from tests.harness import REPO

pytestmark = pytest.mark.skipif(not is_glibc(), reason="the limit is glibc's")

PROBE = r"""
import ctypes, json, sys, tempfile, threading
from octyne_flask.allocator import limit_arenas

applied = limit_arenas() if sys.argv[1] == "limit" else False
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
