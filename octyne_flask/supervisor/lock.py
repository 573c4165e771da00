"""The daemon lock: one daemon per config file, so no app is ever run twice.

An exclusive ``flock`` on a lock file named after the config file's real path,
in the temporary directory (the config's own folder may be read-only, and the
config file itself is replaced on every save). The kernel drops the lock when
the last process holding it exits, however it exits, so a crash leaves no
stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass


class DaemonLockError(RuntimeError):
    """Another daemon already runs with this config."""


def config_id(config_path: str) -> str:
    """A short name for the config file, the same however its path is spelled."""
    return hashlib.sha256(os.path.realpath(config_path).encode()).hexdigest()[:16]


def instance_name(config_path: str) -> str:
    """A name for the daemon of this config file (its locks, its cgroups), the same after a restart."""
    return f"octyne-flask-{config_id(config_path)}"


def lock_path(config_path: str, kind: str = "") -> str:
    """Where the daemon lock file (or the ``kind`` lock, e.g. "apps") for this config lives."""
    suffix = f".{kind}.lock" if kind else ".lock"
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", instance_name(config_path) + suffix)


@dataclass(frozen=True)
class AppsGuard:
    """How the processes that may run one config's apps keep an app from ever running twice.

    ``lock``: held while these apps may run, by each worker's group keeper and by its helper until the
    last of them is gone, so the next worker (or daemon) waits for them before starting any.
    ``mark``: carried in every app's environment, so apps an earlier daemon process left running are
    found and stopped even when nothing was left to stop them (``orphans.py``).
    """

    lock: str
    mark: str


def apps_guard(config_path: str) -> AppsGuard:
    """The guard of this config's apps (its lock file in the temporary directory, the config's id as mark)."""
    return AppsGuard(lock_path(config_path, "apps"), config_id(config_path))


def acquire_daemon_lock(config_path: str) -> int:
    """Take the lock for ``config_path`` and return its fd (keep it open); DaemonLockError if held."""
    path = lock_path(config_path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DaemonLockError(
            f"another octyne daemon (pid {holder}) is already running with config "
            f"{os.path.realpath(config_path)} (lock file {path}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
