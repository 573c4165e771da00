"""Stores kept in one file that people may also edit by hand (users.json, access.json).

The file's (inode, mtime, size) is polled about once a second: a replacement
by rename (a new inode, what editors and atomic writers do) is seen too, which
an inotify watch on the file alone misses.
"""

from __future__ import annotations

import os
import threading


def file_signature(path: str) -> tuple | None:
    """What changes whenever the file does; None when it does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class WatchedFile:
    """Base of a store backed by the file ``path``: once watching, the subclass's ``reload()`` runs
    whenever the file is no longer the one it last read or wrote (``_signature``, kept under ``_lock``)."""

    POLL_SECONDS = 1.0

    def __init__(self, path: str, watcher_name: str):
        self.path = path
        self._lock = threading.RLock()
        self._signature: tuple | None = None
        self._watcher_name = watcher_name
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def reload(self) -> bool:
        raise NotImplementedError

    def start_watching(self) -> None:
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name=self._watcher_name, daemon=True)
            self._watcher.start()

    def stop_watching(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.POLL_SECONDS):
            with self._lock:
                unchanged = file_signature(self.path) == self._signature
            if not unchanged:
                self.reload()
