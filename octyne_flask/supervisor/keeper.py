"""A tiny helper process that stops our apps' process groups if the daemon dies abruptly.

``PR_SET_PDEATHSIG`` only reaches the direct child (and fires when the forking
*thread* exits), so it cannot stop a wrapper's grandchildren. Instead one
small helper per daemon, in its own session, learns every group we start and
stop (``keeper.sh``, a shell script: it costs a shell's memory, not an
interpreter's); when its pipe from us reaches end of file, however the daemon
died, it stops every group still registered.

It also keeps a new daemon worker from starting apps while the dead one's apps
still run (gunicorn starts a new worker at once, so both would run in the same
directory): the helper holds the apps lock until every group it knew is gone,
and a keeper is ready to accept new groups only once it holds that lock itself
and has stopped whatever apps were left with nothing to stop them (``orphans.py``)
and run ``before_ready`` (the supervisor empties the cgroups an earlier daemon
process left: processes that escaped their group).
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import threading
from pathlib import Path
from typing import Callable

from .lock import AppsGuard
from .orphans import app_marks, stop_orphans

log = logging.getLogger(__name__)

LOCK_POLL = 0.05  # seconds between tries for the apps lock while a previous worker's apps stop
HELPER = Path(__file__).with_name("keeper.sh")


class GroupKeeper:
    """Registers app process groups with the helper; ``wait_ready()`` before the first, ``close()`` at shutdown.

    Without a ``guard`` the keeper is ready at once, waits for nobody and marks no app.
    """

    def __init__(self, grace: float, guard: AppsGuard | None = None, before_ready: Callable[[], None] = lambda: None):
        self._grace = grace
        self._guard = guard
        self._before_ready = before_ready
        self._cond = threading.Condition()
        self._helper: subprocess.Popen | None = None
        self._failure: str | None = None
        self._given_up = False
        if guard is None:
            self._run_before_ready()
            self._helper = self._start_helper(())
        else:
            threading.Thread(target=self._take_over, args=(guard,), name="octyne-apps-lock", daemon=True).start()

    def wait_ready(self) -> bool:
        """Block until no earlier worker's app runs and the helper is up; False once shutting down.

        Raises OSError if the helper could not be started (no app may run unguarded).
        """
        with self._cond:
            self._cond.wait_for(lambda: self._helper is not None or self._given_up or self._failure)
            if self._failure:
                raise OSError(self._failure)
            return not self._given_up

    def app_marks(self) -> dict[str, str]:
        """The variables added to every app's environment so its processes can be found later."""
        return {} if self._guard is None else app_marks(self._guard.mark)

    def stop_waiting(self) -> None:
        """The daemon is shutting down: ``wait_ready`` answers False from now on."""
        with self._cond:
            self._given_up = True
            self._cond.notify_all()

    def add(self, pgid: int) -> None:
        """Stop this group too if the daemon dies."""
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        """This group has been stopped and reaped by us."""
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """End the helper (every registered group should be gone by now)."""
        self.stop_waiting()
        with self._cond:
            helper = self._helper
            if helper is None or helper.stdin.closed:
                return
            helper.stdin.close()
        helper.wait()

    def _take_over(self, guard: AppsGuard) -> None:
        """Wait for the apps lock (an earlier helper holds it while its groups run), stop the apps nothing
        was left to stop, then start our helper holding the lock."""
        fd = os.open(guard.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if not self._wait_for_lock(fd):
                return
            stop_orphans(guard.mark, self._grace)
            self._run_before_ready()
            with self._cond:
                if not self._given_up:
                    self._helper = self._start_helper((fd,))
                self._cond.notify_all()
        except OSError as error:
            log.error("Cannot start the process-group keeper: %s", error)
            with self._cond:
                self._failure = f"the process-group keeper could not start: {error}"
                self._cond.notify_all()
        finally:
            os.close(fd)  # the helper holds its own copy

    def _run_before_ready(self) -> None:
        try:
            self._before_ready()
        except Exception:  # what it could not clean up, each app's start reports again
            log.exception("Preparing to start apps failed")

    def _wait_for_lock(self, fd: int) -> bool:
        """Take the lock on ``fd``; False if shutdown came first."""
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            if not announced:
                log.warning("Apps of a previous daemon process are still stopping; no app starts until they are gone")
                announced = True
            with self._cond:
                if self._cond.wait_for(lambda: self._given_up, timeout=LOCK_POLL):
                    return False

    def _start_helper(self, keep_fds: tuple) -> subprocess.Popen:
        return subprocess.Popen(
            ["/bin/sh", str(HELPER), str(round(self._grace * 1000))],
            stdin=subprocess.PIPE, start_new_session=True, close_fds=True, pass_fds=keep_fds,
        )

    def _send(self, line: str) -> None:
        with self._cond:
            helper = self._helper
            if helper is None or helper.stdin.closed:
                return
            try:
                helper.stdin.write(line.encode())
                helper.stdin.flush()
            except BrokenPipeError:
                pass  # the helper is gone; nothing more it could do
