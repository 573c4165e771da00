"""The ``schedules`` and ``backups`` entries of a server's config, and the ``timezone`` key, validated.

Cron syntax and time arithmetic are croniter's: 5 fields, or 6 with seconds first;
the words for a cron ("At 04:00, Monday through Friday") are cron-descriptor's.
Errors are ``EntryError(path, problem)`` so config.py can name the key the usual way.
Both libraries (about 5 MiB) are imported only where a schedule needs them: a daemon
without schedules, and the gunicorn master that parses the config, never load them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ACTIONS = ("start", "stop", "restart", "kill", "command", "backup")
DEFAULT_BACKUPS_FOLDER = "backups"


class EntryError(ValueError):
    """A schedule or backups entry is unusable: ``path`` is the key below the server, ``problem`` says why."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


@dataclass(frozen=True)
class RestartWarning:
    before: float  # seconds before the restart
    command: str


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    action: str
    command: str = ""
    warnings: tuple[RestartWarning, ...] = ()

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after ``moment`` (an aware datetime) that the cron names, in its zone."""
        from croniter import croniter

        return croniter(self.cron, moment, second_at_beginning=_has_seconds(self.cron)).get_next(datetime)

    @property
    def in_words(self) -> str:
        """The cron read out in English, in the daemon's time zone; the cron itself if the describer cannot read it."""
        from cron_descriptor import ExpressionDescriptor, FormatError, MissingFieldError, Options, WrongArgumentError

        options = Options()
        options.use_24hour_time_format = True
        try:
            return ExpressionDescriptor(self.cron, options).get_description()
        except (FormatError, MissingFieldError, WrongArgumentError):
            return self.cron


@dataclass(frozen=True)
class BackupSettings:
    path: str  # absolute
    keep: int
    max_bytes: int
    exclude: tuple[str, ...]
    before: tuple[str, ...]
    settle: float
    after: tuple[str, ...]
    problem: str = ""  # why backups cannot be made (the default folder falls inside the directory)


def _has_seconds(cron: str) -> bool:
    return len(cron.split()) == 6


@functools.cache
def system_timezone() -> tzinfo:
    """The system's zone with its DST rules, found as the C library finds it: ``TZ`` when it names a
    zone (or a zone file), else /etc/localtime, else UTC. One object per process, so reloaded configs compare equal.

    Read with the standard library's zoneinfo: dateutil (2.8 MiB in every process that parses the
    config) is loaded only when neither can be read (``TZ`` in POSIX rule form, no /etc/localtime).
    """
    name = os.environ.get("TZ")
    try:
        if name is None:
            try:
                with open("/etc/localtime", "rb") as handle:
                    return ZoneInfo.from_file(handle, key="localtime")
            except FileNotFoundError:
                return timezone.utc  # the C library's choice too
        name = name.removeprefix(":")
        if name.startswith("/"):
            with open(name, "rb") as handle:
                return ZoneInfo.from_file(handle, key=name)
        if name:
            return ZoneInfo(name)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        pass
    from dateutil.tz import tzlocal

    return tzlocal()


def parse_timezone(name: str) -> tzinfo:
    """The named IANA zone, or the system's (DST-aware) when ``name`` is empty."""
    if not name:
        return system_timezone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"is not a known time zone: {name!r}") from None


def parse_schedules(entries: list) -> tuple[Schedule, ...]:
    """Validate the ``schedules`` list: names unique, a known action, a cron croniter accepts."""
    if not entries:
        return ()
    from croniter import croniter

    schedules, names = [], set()
    for index, entry in enumerate(entries):
        where = f"schedules[{index}]"
        if not isinstance(entry, dict):
            raise EntryError(where, "must be an object")
        name = _text(entry, "name", where)
        if name in names:
            raise EntryError(f"{where}.name", f"{name!r} is used by another schedule")
        names.add(name)
        cron = _text(entry, "cron", where)
        if len(cron.split()) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=_has_seconds(cron)):
            raise EntryError(f"{where}.cron", "must be a cron expression of 5 fields, or 6 with seconds first")
        action = entry.get("action")
        if action not in ACTIONS:
            raise EntryError(f"{where}.action", f"must be one of {', '.join(ACTIONS)}")
        command = _text(entry, "command", where) if action == "command" else ""
        warnings = _warnings(entry.get("warnings", []), f"{where}.warnings") if action == "restart" else ()
        schedules.append(Schedule(name, cron, action, command, warnings))
    return tuple(schedules)


def _warnings(entries, where: str) -> tuple[RestartWarning, ...]:
    if not isinstance(entries, list):
        raise EntryError(where, "must be a list")
    warnings = []
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        before = entry.get("before") if isinstance(entry, dict) else None
        if isinstance(before, bool) or not isinstance(before, (int, float)) or not 0 <= before <= 86400:
            raise EntryError(f"{at}.before", "must be a number of seconds from 0 to 86400")
        warnings.append(RestartWarning(float(before), _text(entry, "command", at)))
    return tuple(sorted(warnings, key=lambda warning: -warning.before))


def _text(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise EntryError(f"{where}.{key}", "must be a non-empty string")
    return value


def parse_backups(server: str, directory: str, values: dict) -> BackupSettings:
    """The ``backups`` keys (already type-checked) of server ``server``; the folder must lie outside ``directory``.

    Only a folder set explicitly is a config error there: a config written for Octyne
    (no ``backups`` at all) must still load when its app runs in the daemon's own folder.
    """
    path = os.path.abspath(values["path"] or os.path.join(DEFAULT_BACKUPS_FOLDER, server))
    real_path, real_directory = os.path.realpath(path), os.path.realpath(directory)
    problem = ""
    if os.path.commonpath([real_path, real_directory]) == real_directory:
        if values["path"]:
            raise EntryError("backups.path", "must be outside the server's directory")
        problem = "the default backups folder is inside the server's directory: set backups.path"
    lists = {}
    for key in ("exclude", "before", "after"):
        items = values[key]
        if not all(isinstance(item, str) and item for item in items):
            raise EntryError(f"backups.{key}", "must be a list of non-empty strings")
        lists[key] = tuple(items)
    return BackupSettings(path, values["keep"], values["maxBytes"], lists["exclude"], lists["before"],
                          float(values["settle"]), lists["after"], problem)
