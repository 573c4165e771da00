"""cgroup v2: one directory in the unified hierarchy, controllers enabled through ``cgroup.subtree_control``.

Limits: ``memory.max`` (and ``memory.swap.max`` 0, so swap is no way around
it), ``cpu.max`` over a 100 ms period, ``pids.max``. Usage: ``cpu.stat``
(present without the cpu controller) and ``memory.current`` less inactive
file cache; OOM kills: ``oom_kill`` of ``memory.events``; SIGKILL for the
whole cgroup at once through ``cgroup.kill`` (Linux 5.14+).

Controllers can only be enabled for children of a cgroup without processes
of its own. The daemon's parent therefore lives in the cgroup *above* the
daemon's when systemd put the daemon in a subgroup of its delegated cgroup
(``DelegateSubgroup=``); when the daemon sits directly in a delegated cgroup
(``Delegate=yes`` alone), it first moves that cgroup's processes (all the
service's own) into a ``daemon`` leaf.
"""

from __future__ import annotations

import errno
import os
import signal

from .base import AppCgroup, CgroupError, CgroupTree, Usage, read_keyed, read_text, write_text

CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000
DAEMON_LEAF = "daemon"
MAX_EVACUATION_ROUNDS = 100


class V2Cgroup(AppCgroup):
    @property
    def _directory(self) -> str:
        return self.directories[0]

    def _file(self, name: str, controller: str) -> str:
        path = os.path.join(self._directory, name)
        if not os.path.exists(path):
            raise CgroupError(f"the {controller} cgroup controller is not enabled for {self._directory}")
        return path

    def set_limits(self, limits: dict[str, float]) -> None:
        if "memory" in limits:
            write_text(self._file("memory.max", "memory"), str(int(limits["memory"])))
            swap = os.path.join(self._directory, "memory.swap.max")
            if os.path.exists(swap):
                write_text(swap, "0")
        if "cpu" in limits:
            write_text(self._file("cpu.max", "cpu"), f"{round(limits['cpu'] * CPU_PERIOD_US)} {CPU_PERIOD_US}")
        if "pids" in limits:
            write_text(self._file("pids.max", "pids"), str(int(limits["pids"])))

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            try:
                write_text(os.path.join(self._directory, "cgroup.kill"), "1")
                return
            except FileNotFoundError:
                pass  # before Linux 5.14: one process at a time
        super().signal(sig)

    def usage(self) -> Usage:
        usec = read_keyed(os.path.join(self._directory, "cpu.stat"), "usage_usec")
        memory = None
        try:
            used = int(read_text(os.path.join(self._directory, "memory.current")))
            memory = max(0, used - (read_keyed(os.path.join(self._directory, "memory.stat"), "inactive_file") or 0))
        except OSError:
            pass  # no memory controller here
        return Usage(None if usec is None else usec / 1e6, memory)

    def oom_kills(self) -> int:
        return read_keyed(os.path.join(self._directory, "memory.events"), "oom_kill") or 0


class V2Tree(CgroupTree):
    """``base``: the cgroup directory the daemon's parent goes in; ``evacuate``: move its processes out first."""

    version = "v2"

    def __init__(self, base: str, name: str, evacuate: bool = False):
        super().__init__([os.path.join(base, name)])
        self.base = base
        self._evacuate = evacuate

    def _app(self, directories: list[str]) -> V2Cgroup:
        return V2Cgroup(directories)

    def controllers(self) -> list[str]:
        """The limit controllers the base offers its children."""
        try:
            offered = read_text(os.path.join(self.base, "cgroup.controllers")).split()
        except OSError:
            return []
        return [controller for controller in CONTROLLERS if controller in offered]

    def describe(self) -> str:
        controllers = ", ".join(self.controllers()) or "no limit controllers: limits refused"
        return f"cgroup v2 ({controllers}) under {self.parents[0]}"

    def _prepare(self) -> None:
        if self._evacuate:
            self._move_processes_to_leaf()
            self._evacuate = False
        parent = self.parents[0]
        os.makedirs(parent, exist_ok=True)
        enable = " ".join(f"+{controller}" for controller in self.controllers())
        if enable:
            for directory in (self.base, parent):
                write_text(os.path.join(directory, "cgroup.subtree_control"), enable)

    def _move_processes_to_leaf(self) -> None:
        """Every process of the (delegated) base into ``base/daemon``, so controllers can be enabled below base."""
        leaf = os.path.join(self.base, DAEMON_LEAF)
        os.makedirs(leaf, exist_ok=True)
        procs = os.path.join(self.base, "cgroup.procs")
        for _ in range(MAX_EVACUATION_ROUNDS):  # a process forked meanwhile is moved in the next round
            pids = read_text(procs).split()
            if not pids:
                return
            for pid in pids:
                try:
                    write_text(os.path.join(leaf, "cgroup.procs"), pid)
                except OSError as error:
                    if error.errno != errno.ESRCH:
                        raise
        raise CgroupError(f"cannot move the daemon's processes out of {self.base}")
