"""ManagedProcess: one configured server, its state and the thread that owns its child.

States: STOPPED (0), RUNNING (1), CRASHED (2); "stopping" is RUNNING with a
stop requested. Transitions, all under one condition lock:

  STOPPED/CRASHED --start--> RUNNING            (spawn failed: -> CRASHED)
  RUNNING --exit 0 / 130 / 143, or a stop or kill we asked for--> STOPPED (crash counter reset)
  RUNNING --any other exit, or an OOM kill in its cgroup--> CRASHED; while the counter (incremented first)
          is <= 3, start again
  any exit while marked toDelete --> removed (consoles closed ~5 s later)

One long-lived thread per server spawns every run of the app (so nothing
tied to the forking thread dies early), waits for it on a pidfd, applies the
stop escalation steps, and decides what the exit means. A second thread per
run reads the output into the console. Each run gets a fresh cgroup (when the
host has one) made before the spawn and removed after the run. The thread never starts an app while
an earlier daemon process's run of it may still be stopping (GroupKeeper), and
never dies with a run: if watching one fails (a bug), it logs the error, kills
the group, reaps it and reports a crash (no automatic restart).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..config import Limits, ServerConfig, size_text
from .cgroups import CgroupTree, NoCgroups
from .child import GROUP_POLL, Child, poll_ready
from .compaction import Compactor
from .console import ConsoleLog
from .keeper import GroupKeeper
from .groups import escalate
from .output import pump
from .stats import RunStats
from .usage_history import UsageHistory

log = logging.getLogger(__name__)

STOPPED, RUNNING, CRASHED = 0, 1, 2
MAX_RESTARTS = 3
CLEAN_EXIT_CODES = (0, 130, 143)
REMOVED_CONSOLE_DELAY = 5.0  # seconds between the removal line and closing the consoles
START_WAIT = 30.0
KILL_WAIT = 5.0
OUTPUT_DRAIN_WAIT = 2.0


@dataclass(frozen=True)
class ServerStats:
    """What GET /server/{id} reports about the process (0s when not running)."""

    status: int
    uptime_ns: int
    cpu_percent: float
    memory_bytes: int


class ManagedProcess:
    """One server: start/term/kill/input from any thread; the owner thread does the rest."""

    def __init__(self, config: ServerConfig, console: ConsoleLog, keeper: GroupKeeper, grace: float,
                 on_removed: Callable[["ManagedProcess"], None], cgroups: CgroupTree | NoCgroups,
                 report: Callable[..., None], usage: UsageHistory, compactor: Compactor):
        """``report(action, **fields)`` records an event of the app itself (``server.oom``) in the action log;
        ``usage`` is where its resource history goes; ``compactor`` compresses its console's text."""
        self.name = config.name
        self.console = console
        self.usage = usage
        self._compactor = compactor
        self._keeper = keeper
        self._on_removed = on_removed
        self._cgroups = cgroups
        self._report = report
        self._cond = threading.Condition()
        self._config = config
        self._grace = grace
        self._status = STOPPED
        self._to_delete = False
        self._removed = False
        self._closing = False
        self._held = False  # its directory is being replaced (a restore): no start until released
        self._child: Child | None = None
        self._spawning = False  # between the decision to start and the child being known
        self._run_config = config  # the config the running child was started with
        self._stats: RunStats | None = None  # the running child's
        self._started_ns = 0
        self._stop_requested = False
        self._steps: list[tuple[float, int]] = []  # (monotonic deadline, signal) for the running child
        self._crashes = 0
        self._out_of_memory = False  # the last run was ended by the OOM killer
        self._start_wanted = False
        self._starts_requested = 0
        self._starts_done = 0
        self._last_start_ok = False
        self._runs_done = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._own, name=f"octyne-server-{self.name}", daemon=True)
        self._thread.start()

    # -- state, read from any thread -------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The current config (used for the next start)."""
        with self._cond:
            return self._config

    @property
    def directory(self) -> str:
        """The server's directory from the current config."""
        return self.config.directory

    @property
    def status(self) -> int:
        return self._status

    @property
    def to_delete(self) -> bool:
        return self._to_delete

    @property
    def limits(self) -> Limits:
        """The limits in force: the running app's, else those its next start will use."""
        with self._cond:
            return (self._run_config if self._child is not None else self._config).limits

    @property
    def out_of_memory(self) -> bool:
        """Whether the last run ended because the OOM killer killed a process of it."""
        return self._out_of_memory

    def stats(self) -> ServerStats:
        """Status, uptime and the process tree's CPU and memory use (from a reading up to a second old)."""
        with self._cond:
            status, run, started = self._status, self._stats, self._started_ns
        if run is None:
            return ServerStats(status, 0, 0.0, 0)
        reading = run.reading()
        uptime = time.monotonic_ns() - started
        if reading is None:  # it has just exited
            return ServerStats(status, uptime, 0.0, 0)
        return ServerStats(status, uptime, reading.cpu_percent, reading.memory_bytes)

    def sample_usage(self) -> None:
        """Add a sample of the running app to its resource history (the sampler thread calls this)."""
        with self._cond:
            run = self._stats
        self.usage.record(run)

    # -- control, from request threads ---------------------------------------------

    def start(self, wait: bool = True) -> bool:
        """Start unless running; a stopping app starts again once stopped. False if it could not start."""
        with self._cond:
            if self._removed or self._closing or self._held:
                return False
            if self._child is not None:
                if self._stop_requested:
                    self._start_wanted = True
                return True
            self._crashes = 0
            self._start_wanted = True
            self._starts_requested += 1
            ticket = self._starts_requested
            self._cond.notify_all()
            if not wait:
                return True
            self._cond.wait_for(lambda: self._starts_done >= ticket, timeout=START_WAIT)
            return self._starts_done >= ticket and self._last_start_ok

    def hold_stopped(self) -> bool:
        """Keep a stopped server stopped (start refused, a pending restart deferred) until ``release``;
        False, and nothing held, if it is running or starting."""
        with self._cond:
            if self._child is not None or self._spawning or self._held:
                return False
            self._held = True
            return True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def term(self) -> None:
        """Stop gracefully: the stop command then SIGTERM after its timeout, or SIGTERM at once."""
        with self._cond:
            child = self._child
            if child is None:
                return
            self.console.append([f"[Octyne] Stopping server {self.name}"])
            stop = self._run_config.stop
            send_command = stop is not None and not self._stop_requested
            if send_command:
                now = time.monotonic()
                self._steps = [(now + stop.timeout, signal.SIGTERM),
                               (now + stop.timeout + self._grace, signal.SIGKILL)]
                self._wake()
            else:
                child.signal(signal.SIGTERM)
            self._stop_requested = True
        if send_command:
            child.write(f"{stop.command}\n".encode())

    def kill(self) -> None:
        """SIGKILL the group and wait until the exit is handled, so the status is 0 on return."""
        with self._cond:
            child = self._child
            if child is None:
                return
            self.console.append([f"[Octyne] Killing server {self.name}"])
            self._stop_requested = True
            self._start_wanted = False
            child.signal(signal.SIGKILL)
            run = self._runs_done
            self._cond.wait_for(lambda: self._runs_done > run, timeout=KILL_WAIT)

    def write_input(self, line: str) -> bool:
        """Send one line of console input to the app's stdin."""
        with self._cond:
            child = self._child
        return child is not None and child.write(f"{line}\n".encode())

    # -- configuration, from the Supervisor ----------------------------------------

    def update(self, config: ServerConfig, grace: float) -> bool:
        """Use ``config`` for the next start and clear toDelete; False if already removed."""
        with self._cond:
            if self._removed:
                return False
            self._config, self._grace, self._to_delete = config, grace, False
            return True

    def mark_for_deletion(self) -> None:
        """Remove this server the next time its process exits."""
        with self._cond:
            self._to_delete = True

    def begin_shutdown(self) -> None:
        """Never start again; SIGTERM the group now and SIGKILL it after the grace period."""
        with self._cond:
            self._closing = True
            self._start_wanted = False
            self._cond.notify_all()
            if self._child is None:
                return
            self.console.append([f"[Octyne] Stopping server {self.name}"])
            self._stop_requested = True
            self._child.signal(signal.SIGTERM)
            self._steps = [(time.monotonic() + self._grace, signal.SIGKILL)]
            self._wake()

    def wait_stopped(self, timeout: float) -> bool:
        """Wait until no child of this server runs or is being spawned."""
        with self._cond:
            return self._cond.wait_for(lambda: self._child is None and not self._spawning, timeout=timeout)

    # -- the owner thread ------------------------------------------------------------

    def _wake(self) -> None:
        # Only called with the lock held while a child runs, so the owner thread (which closes
        # the pipe when it ends) is still alive.
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # already awake

    def _own(self) -> None:
        try:
            while self._next_run():
                child = self._spawn()
                if child is not None:
                    self._supervise(child)
        finally:
            os.close(self._wake_r)
            os.close(self._wake_w)
        if self._removed:
            self._on_removed(self)
            time.sleep(REMOVED_CONSOLE_DELAY)
            self.console.close()

    def _next_run(self) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: (self._start_wanted and not self._held) or self._closing or self._removed)
            if self._closing or self._removed:
                self._report_start(False)
                return False
            self._start_wanted = False
            return True

    def _report_start(self, ok: bool) -> None:
        """Answer every start request made so far (called with the lock held)."""
        self._starts_done, self._last_start_ok = self._starts_requested, ok
        self._cond.notify_all()

    def _spawn(self) -> Child | None:
        """Start the app once no earlier run of it can still be running; None if it did not start."""
        try:
            ready = self._keeper.wait_ready()
            with self._cond:
                if not ready or self._closing:
                    self._report_start(False)
                    return None
                self._run_config = config = self._config
                self._spawning = True
            cgroup = self._cgroups.create(self.name, config.limits.cgroup_limits())
            try:
                return Child.spawn(config, cgroup, self._keeper.app_marks())
            except BaseException:
                if cgroup is not None:
                    cgroup.kill_all()
                    cgroup.remove()
                raise
        except Exception as error:  # OSError: the command cannot run; anything else is a bug, but the same to the user
            if not isinstance(error, OSError):
                log.exception("Starting server %s failed unexpectedly", self.name)
            with self._cond:
                self._spawning = False
                self._status = CRASHED
                self.console.append([f"[Octyne] Failed to start server {self.name}! The following error occurred: {error}"])
                self._report_start(False)
            return None

    def _compact_console(self) -> None:
        """Have the console's text compressed (its output paused or ended, or flows on), off the output reader."""
        self._compactor.request(self.console)

    def _supervise(self, child: Child) -> None:
        """Watch one run to its end. Whatever goes wrong, the group is stopped and the leader reaped."""
        reader = None
        lost = False
        try:
            self._keeper.add(child.pid)
            self._begin_run(child)
            reader = threading.Thread(
                target=pump, args=(child.output_fd, self.console.append_output, self._compact_console),
                name=f"octyne-output-{self.name}", daemon=True)
            reader.start()
            self._wait_exit(child)
            self._clear_group(child)
        except Exception:
            log.exception("Supervising server %s failed; killing its process group", self.name)
            lost = True
            child.signal(signal.SIGKILL)
            child.wait_group_gone(KILL_WAIT)
        if reader is not None and reader.ident is not None:
            reader.join(OUTPUT_DRAIN_WAIT)
        else:
            os.close(child.output_fd)  # no reader took it over
        out_of_memory = child.out_of_memory()
        child.release_cgroup()
        with self._cond:
            code = child.reap()
            self._keeper.remove(child.pid)
            if self._child is None:  # the run never began: the start request is still waiting
                self._report_start(False)
            self._child, self._stats, self._steps, self._spawning = None, None, [], False
            self._decide(code, lost, out_of_memory)
            self._runs_done += 1
            self._cond.notify_all()

    def _begin_run(self, child: Child) -> None:
        with self._cond:
            self._child, self._spawning = child, False
            self._status = RUNNING
            self._out_of_memory = False
            self._started_ns = time.monotonic_ns()
            self._stop_requested = False
            self._start_wanted = False  # this start satisfies every request made while spawning
            self._steps = []
            self.console.append([f"[Octyne] Started server {self.name}"])
            self._report_start(True)
            if self._closing:  # the daemon began shutting down while this app was being spawned
                self._stop_requested = True
                child.signal(signal.SIGTERM)
                self._steps = [(time.monotonic() + self._grace, signal.SIGKILL)]
            self._stats = RunStats.of(child.pid, child.cgroup)

    def _wait_exit(self, child: Child) -> None:
        """Block until the leader exits, sending due escalation steps meanwhile."""
        while True:
            with self._cond:
                now = time.monotonic()
                due = [sig for deadline, sig in self._steps if deadline <= now]
                self._steps = [step for step in self._steps if step[0] > now]
                for sig in due:
                    child.signal(sig)
                timeout = min((deadline for deadline, _ in self._steps), default=None)
            if timeout is not None:
                timeout = max(0.0, timeout - time.monotonic())
            ready = poll_ready([child.pidfd, self._wake_r], select.POLLIN, timeout)
            if child.pidfd in ready:
                return
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)

    def _clear_group(self, child: Child) -> None:
        """The leader has exited: stop what is left of its group (TERM, then KILL after the grace period)."""
        if not child.group_running():
            return
        with self._cond:
            grace = self._grace

        def send(sig: int) -> None:
            with self._cond:
                child.signal(sig)

        escalate(send, child.group_running, grace, GROUP_POLL)

    def _decide(self, code: int, lost: bool, out_of_memory: bool) -> None:
        """Apply the exit rules (called with the lock held). A run we lost track of is a crash, never restarted."""
        if not lost and (self._stop_requested or (code in CLEAN_EXIT_CODES and not out_of_memory)):
            self._status = STOPPED
            self._crashes = 0
            self.console.append([f"[Octyne] Server {self.name} has stopped."])
        else:
            if out_of_memory:
                self._report_out_of_memory()
            self._out_of_memory = out_of_memory
            self._status = CRASHED
            self._crashes += 1
            self.console.append([f"[Octyne] Server {self.name} has crashed!"])
            if not lost and self._crashes <= MAX_RESTARTS and not self._to_delete and not self._closing:
                self.console.append([f"[Octyne] Restarting server {self.name} due to default behaviour."])
                self._start_wanted = True
        if self._to_delete:
            self.console.append([f"[Octyne] Server {self.name} was marked for deletion, stopped/crashed, and has now been removed."])
            self._removed = True
            self._start_wanted = False

    def _report_out_of_memory(self) -> None:
        limit = self._run_config.limits.memory
        shown = size_text(limit) if limit is not None else "none"
        self.console.append([f"[Octyne] {self.name} was killed: out of memory (limit {shown})"])
        self._report("server.oom", server=self.name, limit=limit)
