"""Process groups: which of them still run a process, and the TERM-then-KILL escalation that stops them.

Shared by ``Child`` (one app's group) and ``orphans`` (groups an earlier daemon process left). The
keeper's helper (``keeper.sh``) does the same in shell, for the groups it was told about.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

POLL = 0.05
KILL_WAIT = 5.0  # a SIGKILLed process runs no more code; this only waits for the kernel to finish it


def running_processes():
    """``(pid, process group id)`` of every process still running (zombies run nothing)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if fields[0] not in (b"Z", b"X"):
            yield int(entry), int(fields[2])


def running_groups() -> set[int]:
    """The process group ids that have at least one process still running."""
    return {group for _, group in running_processes()}


def wait_gone(running: Callable[[], bool], timeout: float, poll: float = POLL) -> bool:
    """Poll until ``running()`` is False (True) or ``timeout`` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while running():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def escalate(send: Callable[[int], None], running: Callable[[], bool], grace: float, poll: float = POLL) -> None:
    """``send(SIGTERM)``, then ``send(SIGKILL)`` if still ``running()`` after ``grace`` seconds; returns once
    nothing runs (or KILL_WAIT after the kill)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT)):
        send(sig)
        if wait_gone(running, wait, poll):
            return


def stop_groups(groups: set[int], grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once no group runs (or KILL_WAIT after the kill)."""

    def send(sig: int) -> None:
        for group in groups:
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass

    escalate(send, lambda: bool(groups & running_groups()), grace)

