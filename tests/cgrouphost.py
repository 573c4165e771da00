"""What the cgroup tests need from this machine, found once: the real trees to test in, and skip reasons."""

from __future__ import annotations

import os
import uuid

import pytest

from octyne_flask.supervisor.cgroups import V1Tree, V2Tree
from octyne_flask.supervisor.cgroups.detect import read_mounts, read_own_cgroups, v1_hierarchies, v2_base

IS_ROOT = os.geteuid() == 0
_MOUNTS = read_mounts()
_OWN = read_own_cgroups()
V1_HIERARCHIES = v1_hierarchies(_MOUNTS, _OWN) if IS_ROOT else []
V1_CONTROLLERS = {controller for _, held in V1_HIERARCHIES for controller in held}
V2_BASE = v2_base(_MOUNTS, _OWN)[0] if IS_ROOT else None


def needs_v1(*controllers: str):
    """Skip, saying why, unless we are root and these v1 controllers are mounted."""
    missing = set(controllers) - V1_CONTROLLERS
    reason = "needs root" if not IS_ROOT else f"the kernel has no cgroup v1 {', '.join(sorted(missing))} hierarchy"
    return pytest.mark.skipif(not IS_ROOT or bool(missing), reason=reason)


needs_v2 = pytest.mark.skipif(V2_BASE is None, reason="needs root and a writable cgroup v2 hierarchy")


def unique_name() -> str:
    return f"octyne-flask-test-{uuid.uuid4().hex[:12]}"


def v1_tree() -> V1Tree:
    return V1Tree(V1_HIERARCHIES, unique_name())


def v2_tree() -> V2Tree:
    return V2Tree(V2_BASE, unique_name())


def v1_directory(pid: int, controller: str) -> str:
    """The v1 cgroup directory ``pid`` is in for ``controller``."""
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                mount = next(m for m in _MOUNTS if m.fstype == "cgroup" and controller in m.options)
                return os.path.join(mount.point, path[len(mount.root.rstrip("/")):].lstrip("/"))
    raise LookupError(f"process {pid} is in no {controller} cgroup")


def daemon_parents(config_path) -> list[str]:
    """The daemon-owned v1 parent directories of the daemon of ``config_path`` (started by this test process)."""
    from octyne_flask.supervisor import instance_name

    return V1Tree(V1_HIERARCHIES, instance_name(str(config_path))).parents
