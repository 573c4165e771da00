"""Console history: every console line kept on disk with its sequence number, per server.

``ConsoleHistory`` owns the one writer thread and a ``ServerHistory`` per
server name (kept while the daemon runs, so a server removed and added again
continues its numbering). Folders of servers no longer configured keep their
files until age retention removes them. Nothing here knows HTTP.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from urllib.parse import quote

from ..config import Config
from .segments import LOG_SUFFIX, remove_segment_files
from .store import CONSOLE_FOLDER, INPUTS_FOLDER, LOCK_FILE, Limits, ServerHistory
from .writer import HistoryWriter

log = logging.getLogger(__name__)

DAY_MS = 24 * 60 * 60 * 1000


def folder_name(server: str) -> str:
    """A server's folder: its name with everything but letters, digits, ``-`` and ``_`` %-escaped.

    Dots are escaped too, so ``.`` and ``..`` cannot name a folder outside.
    """
    return quote(server, safe="-_").replace(".", "%2E").replace("~", "%7E") or "%"


def limits_of(config: Config) -> Limits:
    settings = config.console.history
    return Limits(settings.max_bytes, settings.max_age_days * DAY_MS)


class ConsoleHistory:
    """The history of every server of one daemon."""

    def __init__(self, config: Config):
        settings = config.console.history
        self._root = os.path.abspath(settings.path)  # fixed at start, like the enabled switch
        self._keep_files = settings.enabled
        self._limits = limits_of(config)
        self._memory_bytes = config.console.scrollback_bytes
        self._lock = threading.Lock()
        self._closing = threading.Lock()
        self._stores: dict[str, ServerHistory] = {}
        self._writer = HistoryWriter(self._sweep)

    def open(self, server: str) -> ServerHistory:
        """The history of ``server`` (opened, and its files recovered, on first use)."""
        with self._lock:
            store = self._stores.get(server)
            if store is None:
                store = ServerHistory(server, os.path.join(self._root, folder_name(server)), self._limits,
                                      keep_files=self._keep_files, memory_bytes=self._memory_bytes,
                                      wake=self._writer.wake)
                self._stores[server] = store
            return store

    def apply(self, config: Config) -> None:
        """Config reload: size and age bounds apply from the next write (path and switch at restart)."""
        with self._lock:
            self._limits, self._memory_bytes = limits_of(config), config.console.scrollback_bytes
            stores = list(self._stores.values())
        for store in stores:
            store.configure(self._limits, self._memory_bytes)

    def close(self) -> None:
        """Write what is queued and save every sequence number (after the apps have stopped); idempotent."""
        with self._closing:  # shutdown may be called from two threads at once
            self._writer.close()
            with self._lock:
                stores = list(self._stores.values())
            for store in stores:
                store.close()

    def _sweep(self) -> None:
        """Age retention, in the writer thread: open stores, and the folders of servers no longer configured."""
        now = time.time_ns() // 1_000_000
        with self._lock:
            stores = list(self._stores.values())
            opened = {folder_name(name) for name in self._stores}
        for store in stores:
            store.apply_retention(now)
        try:
            folders = [entry for entry in os.scandir(self._root) if entry.is_dir() and entry.name not in opened]
        except FileNotFoundError:
            return
        for entry in folders:
            _expire_idle_folder(entry.path, now - self._limits.max_age_ms)


def _expire_idle_folder(folder: str, cutoff_ms: int) -> None:
    """Delete the segment files of a folder nobody has open that were last written before the cutoff."""
    try:
        lock_fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for sub in (CONSOLE_FOLDER, INPUTS_FOLDER):
            path = os.path.join(folder, sub)
            try:
                entries = list(os.scandir(path))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.endswith(LOG_SUFFIX) and entry.stat().st_mtime_ns // 1_000_000 < cutoff_ms:
                    remove_segment_files(entry.path)
    except BlockingIOError:
        pass  # another daemon uses it
    finally:
        os.close(lock_fd)
