"""What a schedule does to its server: ``start stop restart kill command backup``.

Each action returns ``(outcome, message)`` with outcome ``ok``, ``failed`` or
``skipped``; ``command`` and ``restart`` are skipped when the server is not running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from octyne_flask.supervisor import RUNNING, ManagedProcess

from .entries import Schedule

Outcome = tuple[str, str]
NOT_RUNNING: Outcome = ("skipped", "the server is not running")


def perform(schedule: Schedule, server: ManagedProcess, backup: Callable[[ManagedProcess], str],
            cancelled: threading.Event, warn: bool = True) -> Outcome:
    """Carry out ``schedule``'s action on ``server``; ``warn=False`` skips a restart's warnings (run now)."""
    action = schedule.action
    if action == "start":
        return ("ok", "started") if server.start() else ("failed", "the server could not be started")
    if action == "stop":
        server.term()
        return "ok", "stop requested"
    if action == "kill":
        server.kill()
        return "ok", "killed"
    if action == "command":
        if server.status != RUNNING:
            return NOT_RUNNING
        return ("ok", "command sent") if server.write_input(schedule.command) else NOT_RUNNING
    if action == "restart":
        return _restart(schedule, server, cancelled, warn)
    return "ok", f"backup {backup(server)} made"


def _restart(schedule: Schedule, server: ManagedProcess, cancelled: threading.Event, warn: bool) -> Outcome:
    """Type each warning at its offset before the restart, then stop the app and start it again."""
    if server.status != RUNNING:
        return NOT_RUNNING
    warnings = schedule.warnings if warn else ()
    restart_at = time.monotonic() + (warnings[0].before if warnings else 0)
    for warning in warnings:  # longest offset first
        if cancelled.wait(max(0.0, restart_at - warning.before - time.monotonic())):
            return "failed", "cancelled: the daemon is stopping"
        server.write_input(warning.command)
    if cancelled.wait(max(0.0, restart_at - time.monotonic())):
        return "failed", "cancelled: the daemon is stopping"
    if server.status != RUNNING:
        return NOT_RUNNING
    server.term()
    server.start(wait=False)  # a stopping app starts again once stopped
    return "ok", "restarted"
