"""A journal of the temporary files the daemon is writing right now, swept at its next start.

Uploads and archives are written under hidden ``.octyne-*`` names and renamed
into place (or removed) when done; a daemon killed meanwhile (kill -9, the
OOM killer, a power cut) leaves them behind in the servers' folders. Each one
is listed here before it is created and unlisted once it is gone; the journal
is rewritten whole and renamed into place on every change, so it is always a
complete list. At start, before any app runs, ``sweep`` removes whatever the
list still names and empties it: no server directory is ever walked.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager

from octyne_flask.atomicfile import write_atomically
from octyne_flask.files.paths import opened_path
from octyne_flask.files.tree import FOLLOWING_FOLDER_FLAGS, remove_entry

log = logging.getLogger(__name__)

PREFIX = ".octyne-"  # only names the daemon itself makes are ever swept


def journal_path(config_path: str) -> str:
    """The journal beside the config file (the daemon's state folder), one per config file."""
    folder, name = os.path.split(os.path.abspath(config_path))
    return os.path.join(folder, f".{name}.temporaries")


class TemporaryJournal:
    """The set of temporary paths in flight, mirrored to a file (``path`` None: kept in memory only)."""

    def __init__(self, path: str | None):
        self._path = path
        self._listed: set[str] = set()
        self._lock = threading.Lock()

    def add(self, folder: int, name: str) -> str:
        """List ``name`` in the folder open as ``folder`` (before creating it); returns the listed path."""
        path = os.path.join(opened_path(folder), name)
        with self._lock:
            self._listed.add(path)
            self._save()
        return path

    def remove(self, path: str) -> None:
        """Unlist a path returned by ``add`` (once it was renamed into place or removed)."""
        with self._lock:
            self._listed.discard(path)
            self._save()

    @contextmanager
    def recorded(self, folder: int, name: str):
        """``name`` stays listed while the block runs; the block creates it and renames or removes it."""
        path = self.add(folder, name)
        try:
            yield
        finally:
            self.remove(path)

    def _save(self) -> None:
        if self._path is None:
            return
        try:
            write_atomically(self._path, json.dumps(sorted(self._listed)).encode())
        except OSError as error:  # the work goes on; only a crash's leftovers would stay
            log.warning("Cannot write the journal of temporary files %s: %s", self._path, error.strerror)

    def sweep(self) -> list[str]:
        """Remove the temporary files and folders a previous run left listed, then empty the journal."""
        if self._path is None:
            return []
        try:
            with open(self._path, "rb") as handle:
                listed = json.loads(handle.read() or b"[]")
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            log.warning("Ignoring the unreadable journal of temporary files %s: %s", self._path, error)
            listed = []
        removed = [path for path in listed if isinstance(path, str) and _remove_leftover(path)]
        with self._lock:
            self._save()
        for path in removed:
            log.info("Removed %s, left behind by a daemon that did not stop cleanly", path)
        return removed


UNRECORDED = TemporaryJournal(None)  # for work done outside a daemon (tests, tools)


def _remove_leftover(path: str) -> bool:
    """Remove one listed leftover if it is still one of ours: a ``.octyne-*`` name in a folder reached
    without any symlink (so nothing swapped in since can redirect the removal)."""
    folder, name = os.path.split(path)
    if not os.path.isabs(path) or not name.startswith(PREFIX) or os.path.realpath(folder) != folder:
        return False
    try:
        parent = os.open(folder, FOLLOWING_FOLDER_FLAGS)
        try:
            remove_entry(parent, name)  # of any depth, never following a link
        finally:
            os.close(parent)
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("Cannot remove the leftover %s: %s", path, error.strerror)
        return False
    return True
