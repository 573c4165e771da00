"""The account an app runs as: a server's ``user``/``group`` resolved once, when the config is read.

The app gets that user's id, primary group (or the configured ``group``),
supplementary groups and ``HOME``; the file API gives what it creates in the
server's directory to the same ids. Changing user needs root, so these keys
are refused when the daemon is not root.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass


class RunAsError(ValueError):
    """``key`` (``"user"`` or ``"group"``) cannot be used; the message says why."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary groups
    home: str | None  # None: keep the daemon's HOME (a group alone changes no user)


def resolve(user: str, group: str) -> RunAs | None:
    """The ids for ``user``/``group`` (names or numbers); None when both are empty."""
    if not user and not group:
        return None
    if os.geteuid() != 0:
        raise RunAsError("user" if user else "group", "needs the daemon to run as root")
    entry = _password_entry(user) if user else None
    gid = _group_id(group) if group else (entry.pw_gid if entry else os.getegid())
    if entry is None:
        return RunAs(os.geteuid(), gid, (gid,), None)
    groups = tuple(os.getgrouplist(entry.pw_name, gid))
    return RunAs(entry.pw_uid, gid, groups, entry.pw_dir)


def _password_entry(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError, OverflowError):
        raise RunAsError("user", "names no user on this system") from None


def _group_id(group: str) -> int:
    try:
        return (grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)).gr_gid
    except (KeyError, ValueError, OverflowError):
        raise RunAsError("group", "names no group on this system") from None
