"""Replacing a file whole: temp name, fsync, rename, keeping who may read it.

The daemon's own files hold secrets (password hashes in ``users.json``, Redis
credentials in ``config.json``), so a rewrite must never widen access: the new
file gets the old one's mode and, where the OS lets us, its owner and group;
a file created for the first time is ``0600``.
"""

from __future__ import annotations

import os
import stat

NEW_FILE_MODE = 0o600


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``<path>~``, flush it to disk, then rename it over ``path``.

    Readers see the old content or the new, never a mix; the replacement keeps the
    old file's mode and owner (``NEW_FILE_MODE`` when there was none).
    """
    temporary = path + "~"
    try:
        previous = os.stat(path)
    except FileNotFoundError:
        previous = None
    try:
        os.unlink(temporary)  # a leftover of a crash, possibly with a wider mode or a link planted there
    except FileNotFoundError:
        pass
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, NEW_FILE_MODE)
    try:
        with open(fd, "wb", closefd=False) as handle:
            handle.write(data)
        if previous is not None:
            _keep_mode_and_owner(fd, previous)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    os.close(fd)
    os.replace(temporary, path)
    sync_folder(os.path.dirname(os.path.abspath(path)))


def _keep_mode_and_owner(fd: int, previous: os.stat_result) -> None:
    """Give the file open at ``fd`` the mode, owner and group of ``previous``.

    Only root may give a file away; otherwise the group is kept when we belong to it,
    and when even that fails the group and other bits are dropped rather than granted
    to a group the old file did not have.
    """
    mode = stat.S_IMODE(previous.st_mode)
    try:
        os.fchown(fd, previous.st_uid, previous.st_gid)
    except PermissionError:
        try:
            os.fchown(fd, -1, previous.st_gid)
        except PermissionError:
            mode &= ~0o077
    os.fchmod(fd, mode)


def sync_folder(folder: str) -> None:
    """Make the rename itself durable (the folder entry), not just the file's bytes."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
