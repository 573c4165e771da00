"""Which cgroups this host lets the daemon use, decided once at start from /proc/self/mountinfo and /proc/self/cgroup.

cgroup v2 when its unified hierarchy offers the memory, cpu and pids
controllers to a cgroup the daemon may manage; else cgroup v1 when those
controllers are mounted as v1 hierarchies; else v2 without limit controllers
(stop and stats still cover the whole tree, limits are refused); else none.
The daemon-owned parent goes under the cgroup the daemon itself is in, in
each hierarchy.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from . import v1, v2
from .base import CgroupTree, NoCgroups

DELEGATE_XATTRS = ("trusted.delegate", "user.delegate")  # set by systemd on a cgroup with Delegate=yes


@dataclass(frozen=True)
class Mount:
    fstype: str
    point: str
    root: str  # the cgroup path the mount shows at its top (not "/" inside some containers)
    options: frozenset


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda found: chr(int(found[1], 8)), field)


def read_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """The cgroup and cgroup2 mounts."""
    mounts = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                mounts.append(Mount(tail[0], _unescape(fields[4]), _unescape(fields[3]), frozenset(tail[2].split(","))))
    return mounts


def read_own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """This process's cgroup per hierarchy: controller list ("" for the unified hierarchy) -> path."""
    own = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            _, controllers, where = line.rstrip("\n").split(":", 2)
            own[controllers] = where
    return own


def _directory(mount: Mount, path: str) -> str | None:
    """Where the cgroup ``path`` is under ``mount``; None if the mount does not show it."""
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    return os.path.join(mount.point, path[len(root):].lstrip("/")).rstrip("/") or "/"


def _delegated(directory: str) -> bool:
    """Whether systemd delegated this cgroup to us: its mark (readable by root), or, for a daemon that is
    not root, the directory being ours (systemd gives a delegated cgroup to the unit's ``User=``)."""
    if os.geteuid() != 0:
        try:
            return os.stat(directory).st_uid == os.geteuid()
        except OSError:
            return False
    for name in DELEGATE_XATTRS:
        try:
            os.getxattr(directory, name)
            return True
        except OSError:
            continue
    return False


def v1_hierarchies(mounts: list[Mount], own: dict[str, str]) -> list[tuple[str, tuple[str, ...]]]:
    """(the daemon's directory, its controllers) for each writable v1 hierarchy with a controller we use."""
    found = []
    for mount in mounts:
        held = tuple(sorted(mount.options & set(v1.CONTROLLERS)))
        if mount.fstype != "cgroup" or not held:
            continue
        path = next((where for controllers, where in own.items() if set(controllers.split(",")) >= set(held)), None)
        directory = _directory(mount, path) if path is not None else None
        if directory and os.access(directory, os.W_OK) and directory not in (d for d, _ in found):
            found.append((directory, held))
    return found


def v2_base(mounts: list[Mount], own: dict[str, str]) -> tuple[str | None, bool, str]:
    """(where the parent goes, whether the daemon must first leave that cgroup, why not when None)."""
    mount = next((mount for mount in mounts if mount.fstype == "cgroup2"), None)
    if mount is None or "" not in own:
        return None, False, "no cgroup v2 hierarchy"
    directory = _directory(mount, own[""])
    if directory is None:
        return None, False, "the daemon's cgroup v2 is not visible"
    if directory == mount.point.rstrip("/"):
        base, evacuate = directory, False  # the (namespace's) root may hold processes and still have children
    elif _delegated(os.path.dirname(directory)):
        base, evacuate = os.path.dirname(directory), False  # systemd's DelegateSubgroup= put us in a leaf
    elif _delegated(directory):
        base, evacuate = directory, True
    else:
        return None, False, f"the daemon's cgroup {own['']} is not delegated to it (systemd: Delegate=yes)"
    if not os.access(base, os.W_OK):
        return None, False, f"cannot write to {base}"
    return base, evacuate, ""


def choose(name: str, mounts: list[Mount], own: dict[str, str]) -> CgroupTree | NoCgroups:
    """The implementation for this host; ``name`` is the daemon-owned parent's directory name."""
    base, evacuate, why_not_v2 = v2_base(mounts, own)
    unified = v2.V2Tree(base, name, evacuate) if base else None
    if unified is not None and len(unified.controllers()) == len(v2.CONTROLLERS):
        return unified
    hierarchies = v1_hierarchies(mounts, own)
    if hierarchies:
        return v1.V1Tree(hierarchies, name)
    if unified is not None:
        return unified
    return NoCgroups(f"{why_not_v2}; no writable cgroup v1 hierarchy")


@functools.cache
def cgroup_tree(name: str) -> CgroupTree | NoCgroups:
    """This daemon's cgroups, chosen once (the gunicorn worker inherits the master's choice)."""
    try:
        return choose(name, read_mounts(), read_own_cgroups())
    except OSError as error:
        return NoCgroups(f"cannot read the cgroup setup: {error}")
