"""The keeper's helper program, and what it shares with ``Child``: the test for a running process group
and the TERM-then-KILL escalation.

The keeper runs this file as a script with ``python -I -S`` (no site packages, nothing
of the daemon imported), and it imports only what the interpreter has loaded at start
(``os``, ``sys``, ``time``), so the process stays as small as a Python process can be;
``signal`` (with ``enum``, about 1 MiB) comes only when it has groups to stop.

It reads "+<pgid>" / "-<pgid>" lines on stdin; at end of file (the daemon closed it,
or the daemon process died, however it died) it sends SIGTERM to every group still
registered, SIGKILL after the grace period, and exits only once none of them runs any
more. Whatever file descriptors it inherited (the keeper's lock) stay held until then.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # typing's flag, without importing typing (a third of this process's own memory)
if TYPE_CHECKING:
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
    import signal

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


def main(grace: float) -> None:
    groups: set[int] = set()
    for line in sys.stdin.buffer:
        if line[:1] == b"+":
            groups.add(int(line[1:]))
        elif line[:1] == b"-":
            groups.discard(int(line[1:]))
    stop_groups(groups, grace)


if __name__ == "__main__":
    main(float(sys.argv[1]))
