"""Folder listings in Octyne's shape: name, size, lastModified, folder, mimeType."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

from octyne_flask.errors import ApiError
from octyne_flask.files.messages import NOT_A_FOLDER, NO_SUCH_FOLDER
from octyne_flask.files.mime import sniff_fd
from octyne_flask.files.paths import ServerPath, check_opened

SYMLINK = "inode/symlink"
# Never block on a FIFO and never follow a link swapped in after the listing was read.
_SNIFF_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _mime_type(directory_fd: int, name: str, mode: int) -> str:
    if stat.S_ISLNK(mode):
        return SYMLINK
    if not stat.S_ISREG(mode):
        return ""
    try:
        fd = os.open(name, _SNIFF_FLAGS, dir_fd=directory_fd)
    except OSError:
        return ""
    try:
        return sniff_fd(fd)
    except OSError:
        return ""
    finally:
        os.close(fd)


@contextmanager
def opened_folder(folder: ServerPath):
    """The folder at ``folder`` (resolved with ``follow=True``) open for the ``with`` body; 400/404 otherwise.

    Where the descriptor really leads is checked once it is open.
    """
    try:
        directory_fd = os.open(folder.absolute, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise ApiError(400, NOT_A_FOLDER) from None
    except OSError:
        raise ApiError(404, NO_SUCH_FOLDER) from None
    check_opened(directory_fd, folder.root, "folder path")
    try:
        yield directory_fd
    finally:
        os.close(directory_fd)


def folder_entries(directory_fd: int) -> list[tuple[str, os.stat_result]]:
    """``(name, lstat)`` of every entry in the open folder; entries removed meanwhile are left out."""
    found = []
    with os.scandir(directory_fd) as entries:
        for entry in entries:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except OSError:
                continue  # removed while we were listing
    return found


def list_folder(folder: ServerPath) -> list[dict]:
    """Every entry of ``folder`` (resolved with ``follow=True``); symlinks are listed, not followed."""
    with opened_folder(folder) as directory_fd:
        contents = []
        for name, info in folder_entries(directory_fd):
            mime = _mime_type(directory_fd, name, info.st_mode)
            contents.append({
                "name": name,
                "size": info.st_size,
                "lastModified": info.st_mtime_ns // 1_000_000_000,
                "folder": stat.S_ISDIR(info.st_mode) or mime == SYMLINK,
                "mimeType": mime,
            })
        contents.sort(key=lambda item: item["name"])
        return contents
