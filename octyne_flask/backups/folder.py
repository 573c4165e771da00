"""One server's backups folder: the archives' names, their triggers, and retention.

Archives are ``<UTC YYYY-MM-DDTHH-MM-SSZ>[-N].tar.zst``; the trigger of each
(``manual``, ``schedule``, ``pre-restore``) is kept in ``backups.json`` beside
them, rewritten whole and renamed into place. Nothing else in the folder is
ever listed, served or deleted.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from octyne_flask.atomicfile import write_atomically

SUFFIX = ".tar.zst"
TRIGGERS_FILE = "backups.json"
_NAME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)(?:-([2-9]|[1-9]\d+))?\.tar\.zst")
_STAMP = "%Y-%m-%dT%H-%M-%SZ"
_TRIGGERS_LOCK = threading.Lock()  # one read-modify-write of a backups.json at a time


@dataclass(frozen=True)
class Archive:
    name: str
    size: int
    created_ms: int
    order: tuple  # sorts oldest first


def is_backup_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _order(name: str) -> tuple:
    found = _NAME.fullmatch(name)
    return found.group(1), int(found.group(2) or 1)


def _created_ms(name: str) -> int:
    stamp = _NAME.fullmatch(name).group(1)
    return round(datetime.strptime(stamp, _STAMP).replace(tzinfo=timezone.utc).timestamp() * 1000)


def fresh_name(folder: str, now: float | None = None, taken: set[str] = frozenset()) -> str:
    """The name of a backup made now: the UTC time, with ``-2``, ``-3``... when that name is taken."""
    stamp = time.strftime(_STAMP, time.gmtime(time.time() if now is None else now))
    number = 1
    while True:
        name = f"{stamp}{SUFFIX}" if number == 1 else f"{stamp}-{number}{SUFFIX}"
        if name not in taken and not os.path.lexists(os.path.join(folder, name)):
            return name
        number += 1


def archives(folder: str) -> list[Archive]:
    """The complete backups in ``folder``, oldest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if not is_backup_name(name):
            continue
        try:
            info = os.stat(os.path.join(folder, name), follow_symlinks=False)
        except FileNotFoundError:
            continue
        found.append(Archive(name, info.st_size, _created_ms(name), _order(name)))
    return sorted(found, key=lambda archive: archive.order)


def triggers(folder: str) -> dict[str, str]:
    try:
        with open(os.path.join(folder, TRIGGERS_FILE), encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def record_trigger(folder: str, name: str, trigger: str | None) -> None:
    """Note (or, with None, forget) what makes backup ``name``; entries of vanished backups are dropped too
    (a backup is noted before it is built, so a build that fails leaves an entry dropped next time)."""
    with _TRIGGERS_LOCK:
        recorded = {key: value for key, value in triggers(folder).items()
                    if os.path.lexists(os.path.join(folder, key))}
        if trigger is None:
            recorded.pop(name, None)
        else:
            recorded[name] = trigger
        write_atomically(os.path.join(folder, TRIGGERS_FILE), json.dumps(recorded, indent=1).encode())


def beyond_retention(found: list[Archive], keep: int, max_bytes: int, newest: str) -> list[Archive]:
    """The oldest backups past ``keep`` archives or ``max_bytes`` in total (0: no bound), never ``newest``.

    Counting from the newest down, the first backup that does not fit is dropped with every older one.
    """
    drop, count, total, full = [], 0, 0, False
    for archive in reversed(found):
        if archive.name != newest:
            full = full or (keep and count >= keep) or (max_bytes and total + archive.size > max_bytes)
            if full:
                drop.append(archive)
                continue
        count, total = count + 1, total + archive.size
    return drop
