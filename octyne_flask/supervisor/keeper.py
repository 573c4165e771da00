"""A tiny helper process that stops our apps' process groups if the daemon dies abruptly.

``PR_SET_PDEATHSIG`` only reaches the direct child (and fires when the forking
*thread* exits), so it cannot stop a wrapper's grandchildren. Instead one
small helper per daemon, in its own session, reads "+<pgid>" / "-<pgid>" lines
on a pipe from us; when the pipe reaches end of file (the daemon process died,
however it died) it sends SIGTERM to every group still registered, then
SIGKILL after the grace period.
"""

from __future__ import annotations

import subprocess
import sys
import threading

_HELPER = r"""
import os, signal, sys, time
grace = float(sys.argv[1])
groups = set()
for line in sys.stdin.buffer:
    if line[:1] == b"+":
        groups.add(int(line[1:]))
    elif line[:1] == b"-":
        groups.discard(int(line[1:]))
def send(sig):
    for group in list(groups):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            groups.discard(group)
send(signal.SIGTERM)
deadline = time.monotonic() + grace
while groups and time.monotonic() < deadline:
    time.sleep(0.05)
    send(0)
send(signal.SIGKILL)
"""


class GroupKeeper:
    """Registers app process groups with the helper; ``close()`` at clean shutdown."""

    def __init__(self, grace: float):
        self._lock = threading.Lock()
        self._helper = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _HELPER, str(grace)],
            stdin=subprocess.PIPE, start_new_session=True, close_fds=True,
        )

    def add(self, pgid: int) -> None:
        """Stop this group too if the daemon dies."""
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        """This group has been stopped and reaped by us."""
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """End the helper (every registered group should be gone by now)."""
        with self._lock:
            if self._helper.stdin.closed:
                return
            self._helper.stdin.close()
        self._helper.wait()

    def _send(self, line: str) -> None:
        with self._lock:
            if self._helper.stdin.closed:
                return
            try:
                self._helper.stdin.write(line.encode())
                self._helper.stdin.flush()
            except BrokenPipeError:
                pass  # the helper is gone; nothing more it could do
