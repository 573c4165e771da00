"""The operating-system side of one run of an app: spawn, signal its group and cgroup, reap.

Every app gets its own session (so its process group id is its pid) and
signals go to the whole group, so shell wrappers and the processes they start
are stopped together; with a cgroup (see ``cgroups``) they also reach every
process in it, including ones that left the group (``setsid``, double forks).
A pidfd (``Child.pidfd``, readable once the leader has exited) tells the owner
thread that the app has exited without reaping it: while the leader is an unreaped zombie its pid (and so
the group id) cannot be reused, which makes signalling the group race-free.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import threading
import time

from ..config import ServerConfig
from .cgroups import AppCgroup
from .confine import Confinement, environment
from .groups import running_groups, wait_gone

_F_SETPIPE_SZ = 1031  # Linux fcntl: a larger pipe lets a fast app write without waiting for us
_PIPE_SIZE = 1024 * 1024
GROUP_POLL = 0.02  # seconds between looks at whether the group is gone


def exit_code(returncode: int) -> int:
    """A shell-style exit code: death by signal N counts as 128+N (SIGTERM -> 143)."""
    return 128 - returncode if returncode < 0 else returncode


def poll_ready(fds: list[int], events: int, timeout: float | None) -> set[int]:
    """Those of ``fds`` ready for ``events`` within ``timeout`` s (poll, as select() refuses fds above 1023)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, events)
    return {fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)}


class Child:
    """A started app; the owner thread alone calls ``wait_exit`` and ``reap``."""

    def __init__(self, popen: subprocess.Popen, cgroup: AppCgroup | None):
        self._popen = popen
        self.cgroup = cgroup
        self.pid = popen.pid
        self.pidfd = os.pidfd_open(popen.pid)
        self.output_fd = os.dup(popen.stdout.fileno())
        popen.stdout.close()
        self._stdin_fd = popen.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._stdin_lock = threading.Lock()
        self._reaped = False

    @classmethod
    def spawn(cls, config: ServerConfig, cgroup: AppCgroup | None = None,
              marks: dict[str, str] | None = None) -> "Child":
        """Start the app in its own session (and ``cgroup``) with merged output, ``marks`` added to its
        environment; raises OSError if it cannot start."""
        confinement = Confinement(config, cgroup)
        try:
            popen = subprocess.Popen(
                config.argv(), cwd=config.directory, env=environment(config, marks), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, bufsize=0,
                preexec_fn=confinement.apply if confinement.needed else None,
            )
        except ValueError as error:  # an unbalanced quote, or a NUL character in the command, directory or env
            raise OSError(f"cannot run the command: {error}") from None
        except subprocess.SubprocessError:  # raised by Confinement.apply in the child; the app never ran
            raise OSError("cannot confine the app (entering its cgroup, setting its open-file limit "
                          "or switching to its user failed)") from None
        finally:
            confinement.close()
        try:
            fcntl.fcntl(popen.stdout.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass  # the system limit is lower; the default pipe still works
        try:
            return cls(popen, cgroup)
        except OSError:  # e.g. out of file descriptors: an app we cannot watch must not run
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            raise

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the app's whole process group and cgroup (no-op once reaped)."""
        if self._reaped:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        if self.cgroup is not None:
            self.cgroup.signal(sig)

    def group_running(self) -> bool:
        """Whether any process of the group or cgroup still runs (the exited leader, a zombie until reaped,
        does not)."""
        if self.cgroup is not None and self.cgroup.pids():
            return True
        return self.pid in running_groups()

    def wait_group_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every process of the group to go; True if they did."""
        return wait_gone(self.group_running, timeout, GROUP_POLL)

    def out_of_memory(self) -> bool:
        """Whether the OOM killer killed a process of this run (its cgroup is new for each run)."""
        return self.cgroup is not None and self.cgroup.oom_kills() > 0

    def release_cgroup(self) -> None:
        """Remove the run's cgroup once its processes are gone (anything left is killed first)."""
        if self.cgroup is not None:
            self.cgroup.kill_all()
            self.cgroup.remove()

    def reap(self) -> int:
        """Collect the exited leader's status; afterwards the group may no longer be signalled."""
        code = self._popen.wait()
        self._reaped = True
        os.close(self.pidfd)
        with self._stdin_lock:
            self._popen.stdin.close()
            self._stdin_fd = -1
        return exit_code(code)

    def write(self, data: bytes, timeout: float = 1.0) -> bool:
        """Write to the app's stdin, waiting at most ``timeout`` s for room; False if it failed."""
        with self._stdin_lock:
            if self._stdin_fd < 0:
                return False
            deadline = time.monotonic() + timeout
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(self._stdin_fd, view):]
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0 or not poll_ready([self._stdin_fd], select.POLLOUT, left):
                        return False
                except OSError:
                    return False
            return True

