"""Renaming that never replaces what is at the new name: ``renameat2(RENAME_NOREPLACE)``.

``os.rename`` replaces a file, or an empty folder, that appeared at the new name
after the caller checked it was free; the kernel's flag makes that check and the
rename one step. Python's ``os`` does not expose the call, so it is reached
through libc. On a file system without the flag, a file is linked then unlinked
(a link also fails on an existing name); a folder falls back to a plain rename
after a last check, which can only ever replace an empty folder.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

RENAME_NOREPLACE = 1
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    _renameat2.restype = ctypes.c_int


def rename_without_replacing(name: str, new_name: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
    """Rename ``name`` in ``src_dir_fd`` to ``new_name`` in ``dst_dir_fd``; FileExistsError if that is taken."""
    if _renameat2 is not None:
        if _renameat2(src_dir_fd, _c_name(name), dst_dir_fd, _c_name(new_name), RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in _UNSUPPORTED:
            raise OSError(code, os.strerror(code), name, None, new_name)
    _rename_by_hand(name, new_name, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


def _c_name(name: str) -> bytes:
    """``name`` for C, refused as ``os`` refuses it when it holds a NUL (C would read it only up to there)."""
    encoded = os.fsencode(name)
    if b"\0" in encoded:
        raise ValueError("embedded null byte")
    return encoded


def _rename_by_hand(name: str, new_name: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
    if not stat.S_ISDIR(os.stat(name, dir_fd=src_dir_fd, follow_symlinks=False).st_mode):
        os.link(name, new_name, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
        os.unlink(name, dir_fd=src_dir_fd)
        return
    try:
        os.stat(new_name, dir_fd=dst_dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(name, new_name, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), new_name)
