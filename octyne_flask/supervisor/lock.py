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


class DaemonLockError(RuntimeError):
    """Another daemon already runs with this config."""


def lock_path(config_path: str, kind: str = "") -> str:
    """Where the daemon lock file (or the ``kind`` lock, e.g. "apps") for this config lives."""
    real = os.path.realpath(config_path)
    digest = hashlib.sha256(real.encode()).hexdigest()[:16]
    suffix = f".{kind}.lock" if kind else ".lock"
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", f"octyne-flask-{digest}{suffix}")


def apps_lock_path(config_path: str) -> str:
    """The lock held while this config's apps may run: by each worker's group keeper, and by its helper
    until the last of them is gone, so the next worker (or daemon) waits for them before starting any."""
    return lock_path(config_path, "apps")


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
