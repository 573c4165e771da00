"""What every cgroup implementation offers the supervisor, and the file handling v1 and v2 share.

An ``AppCgroup`` is one run of one app: created (with its limits) before the
app starts, the app placed in it before it executes, removed once its last
process is gone. A ``CgroupTree`` is the daemon-owned parent of those, one
directory per hierarchy it uses, named after the daemon's config file so a
restarted daemon finds (and empties) what a crashed one left behind.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import signal
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

log = logging.getLogger(__name__)

KILL_WAIT = 5.0  # seconds for SIGKILLed processes to leave the cgroup
POLL = 0.01


class CgroupError(OSError):
    """A cgroup cannot be made, or a limit cannot be applied; the message says why."""


@dataclass(frozen=True)
class Usage:
    """What a cgroup has used; None where its hierarchy cannot tell (that controller is missing)."""

    cpu_seconds: float | None
    memory_bytes: int | None


def read_text(path: str) -> str:
    """A cgroup file's content (plain system calls: stats read several files on every request)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:  # a long process list
            chunks.append(os.read(fd, 65536))
        return b"".join(chunks).decode("ascii")
    finally:
        os.close(fd)


def write_text(path: str, text: str) -> None:
    """Write a cgroup file in one call (the kernel takes each write as one value)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def read_keyed(path: str, key: str) -> int | None:
    """The number after ``key`` in a ``name value`` file (memory.stat, cpu.stat, memory.events), or None."""
    try:
        found = re.search(rf"^{re.escape(key)} (\d+)$", read_text(path), re.MULTILINE)
    except OSError:
        return None
    return int(found[1]) if found else None


def app_directory_name(server: str) -> str:
    """A directory name for a server's cgroup that no server name can turn into a path or a control file."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}", server):
        return f"app-{server}"
    return "app-" + hashlib.sha256(server.encode()).hexdigest()[:16]


class AppCgroup(ABC):
    """One app run's cgroup: a directory in each hierarchy the tree uses."""

    def __init__(self, directories: list[str]):
        self.directories = directories

    def placement_fds(self) -> list[int]:
        """Its process lists opened for writing; the child writes ``0`` to each to enter before it executes."""
        fds: list[int] = []
        try:
            for directory in self.directories:
                fds.append(os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except OSError as error:
            for fd in fds:
                os.close(fd)
            raise CgroupError(f"cannot open the cgroup {directory}: {error.strerror}") from None
        return fds

    def place(self, pid: int) -> None:
        """Move the process ``pid`` into this cgroup."""
        for directory in self.directories:
            write_text(os.path.join(directory, "cgroup.procs"), str(pid))

    def pids(self) -> set[int]:
        """Every process in the cgroup (an exited process, even unreaped, is no longer listed)."""
        found: set[int] = set()
        for directory in self.directories:
            try:
                found.update(int(pid) for pid in read_text(os.path.join(directory, "cgroup.procs")).split())
            except FileNotFoundError:
                continue
            except OSError as error:
                if error.errno != errno.ENODEV:  # the cgroup was removed while being read: nothing left in it
                    raise
        return found

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process in the cgroup, whatever its process group or session."""
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def kill_all(self, timeout: float = KILL_WAIT) -> bool:
        """SIGKILL everything in the cgroup until it is empty (a fork meanwhile is caught next round)."""
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() >= deadline:
                return False
            self.signal(signal.SIGKILL)
            time.sleep(POLL)
        return True

    def remove(self) -> bool:
        """Remove the cgroup's directories; False (and a log line) if some process is still in it."""
        removed = True
        for directory in reversed(self.directories):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("Cannot remove cgroup %s: %s", directory, error.strerror)
                removed = False
        return removed

    @abstractmethod
    def set_limits(self, limits: dict[str, float]) -> None:
        """Apply ``{"memory": bytes, "cpu": cores, "pids": n}``; CgroupError names a limit it cannot apply."""

    @abstractmethod
    def usage(self) -> Usage:
        """CPU time and memory in use (without reclaimable file cache) of the whole cgroup."""

    @abstractmethod
    def oom_kills(self) -> int:
        """How many of its processes the OOM killer has killed."""


class CgroupTree(ABC):
    """The daemon-owned parent directories; ``create`` makes a fresh app cgroup under each."""

    version = ""

    def __init__(self, parents: list[str]):
        self.parents = parents
        self._lock = threading.Lock()  # the servers' threads create their cgroups concurrently

    @abstractmethod
    def _app(self, directories: list[str]) -> AppCgroup:
        """This implementation's AppCgroup for these directories."""

    def _prepare(self) -> None:
        """Make the parent directories ready for children (idempotent)."""
        for parent in self.parents:
            os.makedirs(parent, exist_ok=True)

    def describe(self) -> str:
        """One line for the start-up banner."""
        return f"cgroup {self.version} under {', '.join(self.parents)}"

    def create(self, server: str, limits: dict[str, float]) -> AppCgroup:
        """A new, empty cgroup for one run of ``server`` with ``limits`` applied; CgroupError if impossible."""
        try:
            with self._lock:
                self._prepare()
            cgroup = self._app([os.path.join(parent, app_directory_name(server)) for parent in self.parents])
            self._clear(cgroup)
            for directory in cgroup.directories:
                os.mkdir(directory)
        except CgroupError:
            raise
        except OSError as error:
            raise CgroupError(f"cannot create a cgroup for {server}: {error.strerror or error}") from None
        try:
            cgroup.set_limits(limits)
        except OSError as error:
            cgroup.remove()
            if isinstance(error, CgroupError):
                raise
            raise CgroupError(f"cannot set the limits of {server}: {error.strerror or error}") from None
        return cgroup

    def sweep(self) -> None:
        """Empty and remove every app cgroup under the parents: left by a daemon process that died."""
        names = set()
        for parent in self.parents:
            try:
                names.update(entry.name for entry in os.scandir(parent) if entry.is_dir())
            except FileNotFoundError:
                continue
        for name in sorted(names):
            self._clear(self._app([os.path.join(parent, name) for parent in self.parents]))

    def close(self) -> None:
        """Remove the parent directories (at shutdown, once every app has stopped)."""
        for parent in self.parents:
            try:
                os.rmdir(parent)
            except FileNotFoundError:
                pass
            except OSError as error:
                level = logging.INFO if error.errno == errno.EBUSY else logging.WARNING
                log.log(level, "Cannot remove cgroup %s: %s", parent, error.strerror)

    @staticmethod
    def _clear(cgroup: AppCgroup) -> None:
        """Kill whatever a dead daemon process left in ``cgroup`` and remove it."""
        if not any(os.path.isdir(directory) for directory in cgroup.directories):
            return
        left = len(cgroup.pids())
        if left:
            log.warning("Killing %d process(es) left in %s by an earlier daemon process", left, cgroup.directories[0])
        if not cgroup.kill_all() or not cgroup.remove():
            raise CgroupError(f"cannot clear the stale cgroup {cgroup.directories[0]}")


class NoCgroups:
    """No usable cgroup: apps run unconfined, and an app with cgroup limits does not start."""

    version = "none"

    def __init__(self, reason: str):
        self.reason = reason

    def describe(self) -> str:
        return f"no usable cgroup ({self.reason}); servers with limits will not start"

    def create(self, server: str, limits: dict[str, float]) -> None:
        if limits:
            raise CgroupError(f"limits ({', '.join(limits)}) need a usable cgroup, and there is none: {self.reason}")
        return None

    def sweep(self) -> None:
        pass

    def close(self) -> None:
        pass
