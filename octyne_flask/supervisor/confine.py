"""What an app runs with: its environment, and the confinement applied in the child between fork and exec.

The child enters its cgroup, takes its open-file limit and drops to its user
*before* it executes, so no instruction of the app runs unconfined or as
root. Everything is prepared in the daemon (files opened, ids looked up); the
child only makes system calls, nothing that could wait for a lock another
daemon thread held at the fork.
"""

from __future__ import annotations

import os
import resource

from ..config import ServerConfig
from .cgroups import AppCgroup

KEPT_WITHOUT_INHERITANCE = ("PATH", "HOME", "LANG")


def environment(config: ServerConfig, marks: dict[str, str] | None = None) -> dict[str, str]:
    """The app's environment: the daemon's (or only PATH, HOME, LANG), the user's HOME, then ``env``, then
    the daemon's ``marks`` (which ``env`` cannot override: they find the app's processes after a crash)."""
    if config.inherit_env:
        base = dict(os.environ)
    else:
        base = {name: os.environ[name] for name in KEPT_WITHOUT_INHERITANCE if name in os.environ}
        base.setdefault("PATH", os.defpath)
    if config.run_as is not None and config.run_as.home:
        base["HOME"] = config.run_as.home
    return {**base, **config.env, **(marks or {})}


class Confinement:
    """Opened in the daemon before the spawn (``close`` it after); ``apply`` runs in the child before exec."""

    def __init__(self, config: ServerConfig, cgroup: AppCgroup | None):
        self._open_files = config.limits.open_files
        self._run_as = config.run_as
        self._placement = cgroup.placement_fds() if cgroup is not None else []

    @property
    def needed(self) -> bool:
        return bool(self._placement) or self._open_files is not None or self._run_as is not None

    def apply(self) -> None:
        """In the child: enter the cgroup, set the rlimit, then drop to the user (setuid last)."""
        for fd in self._placement:
            os.write(fd, b"0")  # "0": the writing process itself
        if self._open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self._open_files, self._open_files))
        if self._run_as is not None:
            os.setgroups(self._run_as.groups)
            os.setgid(self._run_as.gid)
            os.setuid(self._run_as.uid)

    def close(self) -> None:
        for fd in self._placement:
            os.close(fd)
        self._placement = []
