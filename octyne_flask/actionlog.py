"""The action log: one JSON object per line in ``<logging.path>/octyne.log``.

Field order and texts follow what Octyne writes (level, ts, msg, action, ip,
user, then the action's own fields), so existing log readers keep working.
The file is rotated at about 1 MB. Settings can be swapped live on reload.
"""

from __future__ import annotations

import json
import os
import threading
import time

from octyne_flask.atomicfile import NEW_FILE_MODE
from octyne_flask.config import LoggingConfig

LOG_FILE_NAME = "octyne.log"
ROTATE_AT_BYTES = 1_000_000


class ActionLog:
    """Appends action lines; safe to call from any thread."""

    def __init__(self, settings: LoggingConfig):
        self._lock = threading.Lock()
        self._settings = settings

    @property
    def path(self) -> str:
        return os.path.join(self._settings.path, LOG_FILE_NAME)

    def apply(self, settings: LoggingConfig) -> None:
        """Use new logging settings from the next line on."""
        with self._lock:
            self._settings = settings

    def enabled_for(self, action: str) -> bool:
        settings = self._settings
        return settings.enabled and settings.actions.get(action, True) is not False

    def started(self, port: int) -> None:
        """The line written once when the daemon starts serving."""
        self._write({"msg": "started octyne", "port": port})

    def record(self, action: str, ip: str, user: str, **fields) -> None:
        """Log that ``user`` from ``ip`` performed ``action`` (unless switched off)."""
        if not self.enabled_for(action):
            return
        self._write({"msg": "user performed action", "action": action, "ip": ip, "user": user, **fields})

    def event(self, action: str, **fields) -> None:
        """Log something that happened to an app without anyone asking (``server.oom``), unless switched off."""
        if self.enabled_for(action):
            self._write({"msg": "server event", "action": action, **fields})

    def _write(self, entry: dict) -> None:
        line = json.dumps({"level": "info", "ts": time.time(), **entry}, ensure_ascii=False,
                          separators=(",", ":")) + "\n"
        with self._lock:
            if not self._settings.enabled:
                return
            os.makedirs(self._settings.path, exist_ok=True)
            path = self.path
            self._rotate_if_full(path)
            # A file name that is not UTF-8 carries surrogates; written as \udcXX they stay a JSON escape.
            with open(path, "a", encoding="utf-8", errors="backslashreplace", opener=_owner_only) as handle:
                handle.write(line)

    @staticmethod
    def _rotate_if_full(path: str) -> None:
        try:
            size = os.path.getsize(path)
        except OSError:
            return
        if size >= ROTATE_AT_BYTES:
            stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
            base, extension = os.path.splitext(path)
            os.replace(path, f"{base}-{stamp}-{time.time_ns() % 1_000_000:06d}{extension}")


def _owner_only(path: str, flags: int) -> int:
    """Open a log file; a new one is readable by the daemon's user only: it names who logged in from where."""
    return os.open(path, flags, NEW_FILE_MODE)
