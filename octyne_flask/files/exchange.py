"""Swap two entries of a folder in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

After the call each name holds what the other held; at no instant is either
name missing, so a crash leaves one complete tree or the other in place.
"""

from __future__ import annotations

import ctypes
import os

RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(folder: int, first: str, second: str) -> None:
    """Swap ``first`` and ``second`` inside the folder open as ``folder``; OSError if the kernel refuses."""
    result = _libc.renameat2(folder, os.fsencode(first), folder, os.fsencode(second), RENAME_EXCHANGE)
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
