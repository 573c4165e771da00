"""Supervisor: every configured server, kept in step with the config.

``apply(config)`` is the reload of api.md section 4: new servers are created
(and started when enabled), existing ones take the new settings at their next
start (console bounds at once), and servers no longer listed are marked
toDelete and removed when their process next exits. Lock order: the Supervisor's lock, then a server's.
The apps' cgroups live under one daemon-owned parent (``cgroups``), emptied
of anything a dead daemon process left before the first app starts and
removed at shutdown. One thread samples every running app's CPU and memory
for its resource history (``usage_history``) until shutdown.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Callable

from ..config import Config, ServerConfig
from ..history import ConsoleHistory
from .cgroups import CgroupTree, NoCgroups
from .compaction import Compactor
from .console import ConsoleLog
from .keeper import GroupKeeper
from .lock import AppsGuard
from .process import ManagedProcess
from .usage_history import UsageHistory, UsageSampler, sample_interval_ms

SHUTDOWN_SLACK = 5.0  # seconds beyond the grace period for SIGKILLed apps to be reaped


class Supervisor:
    """All managed servers of one daemon. Create it in the process that will serve requests."""

    def __init__(self, config: Config, guard: AppsGuard | None = None, cgroups: CgroupTree | NoCgroups | None = None,
                 report: Callable[..., None] = lambda action, **fields: None, history: ConsoleHistory | None = None,
                 usage_interval_ms: int | None = None):
        """``guard``: shared by every process that may run these apps (see GroupKeeper); ``cgroups``: where
        the apps' cgroups go (none by default); ``report(action, **fields)``: the action log; ``history``:
        where each server's console lines are numbered from and kept (None: in memory only);
        ``usage_interval_ms``: how often each running app's CPU and memory are sampled (default: 5 s, or the
        OCTYNE_STATS_INTERVAL_MS test hook)."""
        self._lock = threading.Lock()
        self._config = config
        self._cgroups = cgroups if cgroups is not None else NoCgroups("none configured")
        self._report = report
        self._history = history
        self._keeper = GroupKeeper(config.stop_grace_period, guard, before_ready=self._cgroups.sweep)
        self._closed = False
        self._usage_interval_ms = usage_interval_ms or sample_interval_ms()
        self._compactor = Compactor()
        self._servers: dict[str, ManagedProcess] = {
            name: self._create(server) for name, server in config.servers.items()
        }
        self._sampler = UsageSampler(self.items, self._usage_interval_ms)

    def get(self, name: str) -> ManagedProcess | None:
        """The server called ``name``, or None."""
        with self._lock:
            return self._servers.get(name)

    def items(self) -> list[tuple[str, ManagedProcess]]:
        """A snapshot of (name, server) pairs in config order."""
        with self._lock:
            return list(self._servers.items())

    def start_enabled(self) -> None:
        """Start every server whose config says ``enabled`` (at daemon start)."""
        for _, server in self.items():
            if server.config.enabled:
                server.start(wait=False)

    def wait_ready(self) -> bool:
        """Block until no earlier worker's app runs any more (this process owns the apps); False once
        shutting down. OSError when the process-group keeper could not start."""
        return self._keeper.wait_ready()

    def apply(self, config: Config) -> None:
        """Reload: create new servers, update existing ones, mark removed ones toDelete."""
        created = []
        with self._lock:
            if self._closed:
                return
            self._config = config
            for name, server_config in config.servers.items():
                current = self._servers.get(name)
                if current is not None and current.update(server_config, config.stop_grace_period):
                    current.console.configure(*self._console_bounds())
                    continue
                self._servers[name] = self._create(server_config)
                created.append(self._servers[name])
            for name, server in self._servers.items():
                if name not in config.servers:
                    server.mark_for_deletion()
        for server in created:
            if server.config.enabled:
                server.start(wait=False)

    def close_consoles_of(self, users: Collection[str]) -> None:
        """Close every open console of these users (their accounts were deleted)."""
        for _, server in self.items():
            server.console.close_where(lambda subscriber: subscriber.owner in users)

    def shutdown(self) -> None:
        """Stop every app (SIGTERM, SIGKILL after the grace period), then close every console.

        Safe to call from several threads (gunicorn's exit signal and its worker_exit hook
        both do): the first call signals the apps, every call waits for them.
        """
        with self._lock:
            first, self._closed = not self._closed, True
            servers = list(self._servers.values())
            grace = self._config.stop_grace_period
        if first:
            self._sampler.close()
            for server in servers:
                server.begin_shutdown()
            self._keeper.stop_waiting()  # a server still waiting for an earlier worker's apps starts nothing
        for server in servers:
            server.wait_stopped(grace + SHUTDOWN_SLACK)
        for server in servers:  # open consoles would hold the worker until gunicorn's graceful timeout
            server.console.close()
        self._keeper.close()
        self._cgroups.close()  # by every caller: the first may be a thread the exiting worker does not wait for

    def _console_bounds(self) -> tuple[int, int, int]:
        console = self._config.console
        return console.scrollback_lines, console.scrollback_bytes, console.max_lag_bytes

    def _create(self, server: ServerConfig) -> ManagedProcess:
        history = self._history.open(server.name) if self._history is not None else None
        log = ConsoleLog(*self._console_bounds(), history=history)
        return ManagedProcess(server, log, self._keeper, self._config.stop_grace_period, self._forget,
                              self._cgroups, self._report, UsageHistory(self._usage_interval_ms), self._compactor)

    def _forget(self, server: ManagedProcess) -> None:
        """Called by a removed server's thread: drop it unless a newer one took its name."""
        with self._lock:
            if self._servers.get(server.name) is server:
                del self._servers[server.name]
