"""Apps an earlier daemon process left running: found by the mark in their environment, and stopped.

The keeper helper stops a dead worker's apps. When the helper died too (a
kill -9 of the whole daemon, the OOM killer), or the worker died between
starting an app and registering its group, those apps would run on
unsupervised and the next start would run them a second time. So every app
starts with ``OCTYNE_FLASK_APPS=<config id>`` in its environment, which
everything it starts inherits, and the next worker to hold the apps lock
finds them in /proc (whatever group or session they moved to) and stops them
before it starts any app.
"""

from __future__ import annotations

import logging
import os

from .groups import running_processes, stop_groups

log = logging.getLogger(__name__)

VARIABLE = "OCTYNE_FLASK_APPS"


def app_marks(mark: str) -> dict[str, str]:
    """What an app's environment gets on top of what it is configured with: the mark."""
    return {VARIABLE: mark}


def marked_groups(mark: str) -> set[int]:
    """The process groups of every running process carrying ``mark``, except the caller's own group
    (a daemon started from an app's shell inherited the mark)."""
    entry = f"{VARIABLE}={mark}".encode()
    own = os.getpgrp()
    groups = set()
    for pid, group in running_processes():
        if group == own or group in groups:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environment = handle.read()
        except OSError:  # gone meanwhile, or another user's
            continue
        if entry in environment.split(b"\0"):
            groups.add(group)
    return groups


def stop_orphans(mark: str, grace: float) -> set[int]:
    """Stop (SIGTERM, SIGKILL after ``grace`` s) every group running an app with ``mark``; returns them."""
    groups = marked_groups(mark)
    if groups:
        log.warning("Stopping apps an earlier daemon process left running (process groups %s)",
                    ", ".join(map(str, sorted(groups))))
        stop_groups(groups, grace)
    return groups
