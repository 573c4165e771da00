"""cgroup v1: one directory per controller hierarchy (memory, cpu, cpuacct, pids; co-mounted ones share one).

Limits: ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes``, so
swap is no way around it), CFS quota ``cpu.cfs_quota_us`` over a 100 ms
period, ``pids.max``. Usage: ``cpuacct.usage`` and ``memory.usage_in_bytes``
less inactive file cache; OOM kills: ``oom_kill`` of ``memory.oom_control``.
"""

from __future__ import annotations

import os

from .base import AppCgroup, CgroupError, CgroupTree, Usage, read_keyed, read_text, write_text

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
CFS_PERIOD_US = 100_000


class V1Cgroup(AppCgroup):
    def __init__(self, directories: list[str], controllers: dict[str, int]):
        super().__init__(directories)
        self._controllers = controllers  # controller -> index into directories

    def _file(self, controller: str, name: str) -> str:
        index = self._controllers.get(controller)
        if index is None:
            raise CgroupError(f"the {controller} cgroup controller is not mounted")
        return os.path.join(self.directories[index], name)

    def set_limits(self, limits: dict[str, float]) -> None:
        if "memory" in limits:
            write_text(self._file("memory", "memory.limit_in_bytes"), str(int(limits["memory"])))
            swap = self._file("memory", "memory.memsw.limit_in_bytes")
            if os.path.exists(swap):  # only with swap accounting; never above memory + swap
                write_text(swap, str(int(limits["memory"])))
        if "cpu" in limits:
            write_text(self._file("cpu", "cpu.cfs_period_us"), str(CFS_PERIOD_US))
            write_text(self._file("cpu", "cpu.cfs_quota_us"), str(round(limits["cpu"] * CFS_PERIOD_US)))
        if "pids" in limits:
            write_text(self._file("pids", "pids.max"), str(int(limits["pids"])))

    def usage(self) -> Usage:
        cpu = memory = None
        if "cpuacct" in self._controllers:
            try:
                cpu = int(read_text(self._file("cpuacct", "cpuacct.usage"))) / 1e9
            except OSError:
                pass
        if "memory" in self._controllers:
            try:
                used = int(read_text(self._file("memory", "memory.usage_in_bytes")))
                cache = read_keyed(self._file("memory", "memory.stat"), "total_inactive_file") or 0
                memory = max(0, used - cache)
            except OSError:
                pass
        return Usage(cpu, memory)

    def oom_kills(self) -> int:
        if "memory" not in self._controllers:
            return 0
        return read_keyed(self._file("memory", "memory.oom_control"), "oom_kill") or 0


class V1Tree(CgroupTree):
    """``hierarchies``: the daemon's own cgroup directory in each hierarchy, with the controllers it holds."""

    version = "v1"

    def __init__(self, hierarchies: list[tuple[str, tuple[str, ...]]], name: str):
        super().__init__([os.path.join(directory, name) for directory, _ in hierarchies])
        self.controllers = {controller: index for index, (_, held) in enumerate(hierarchies)
                            for controller in held if controller in CONTROLLERS}

    def _app(self, directories: list[str]) -> V1Cgroup:
        return V1Cgroup(directories, self.controllers)

    def describe(self) -> str:
        return f"cgroup v1 ({', '.join(sorted(self.controllers))}) under {', '.join(self.parents)}"
