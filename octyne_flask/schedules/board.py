"""Every server's schedules, kept in step with the config: when each runs next, how each last went.

The ``Scheduler`` decides when; this board decides what: each due run gets a
thread of its own (a restart may wait minutes for its warnings), at most one
per schedule at a time, and its outcome is kept and reported to ``on_outcome``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from octyne_flask.config import Config
from octyne_flask.supervisor import Supervisor

from .actions import perform
from .entries import Schedule
from .scheduler import Scheduler

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (server, schedule name)


class ScheduleBoard:
    def __init__(self, config: Config, supervisor: Supervisor, backup: Callable,
                 on_outcome: Callable[[str, str, dict], None], clock: Callable[[], float] = time.time):
        self._supervisor = supervisor
        self._backup = backup
        self._on_outcome = on_outcome
        self._clock = clock
        self._lock = threading.Lock()
        self._schedules: dict[Key, Schedule] = {}
        self._last: dict[Key, dict] = {}
        self._running: set[Key] = set()
        self._cancelled = threading.Event()
        self._scheduler = Scheduler(self._fire, clock)
        self.apply(config)

    def start(self) -> None:
        self._scheduler.start()

    def close(self) -> None:
        self._cancelled.set()
        self._scheduler.close()

    def apply(self, config: Config) -> None:
        """Take the config's schedules: new, changed and removed ones take effect at once."""
        zone = config.timezone
        schedules = {(server, schedule.name): schedule
                     for server, server_config in config.servers.items() for schedule in server_config.schedules}
        with self._lock:
            self._schedules = schedules
            self._last = {key: last for key, last in self._last.items() if key in schedules}
        self._scheduler.replace({key: ((schedule, zone), _next_after(schedule, zone))
                                 for key, schedule in schedules.items()})

    def listing(self, server: str) -> list[dict]:
        """The wire form of ``server``'s schedules, in config order (GET /server/{id}/schedules)."""
        with self._lock:
            entries = [(key, schedule, self._last.get(key)) for key, schedule in self._schedules.items()
                       if key[0] == server]
        listing = []
        for key, schedule, last in entries:
            due = self._scheduler.due_time(key)
            listing.append({"name": schedule.name, "cron": schedule.cron, "description": schedule.in_words,
                            "action": schedule.action, "next": None if due is None else round(due * 1000), "last": last})
        return listing

    def run_now(self, server: str, name: str) -> bool:
        """Run a schedule at once, without a restart's warnings; False if there is no such schedule."""
        with self._lock:
            if (server, name) not in self._schedules:
                return False
        self._fire((server, name), warn=False)
        return True

    def _fire(self, key: Key, warn: bool = True) -> None:
        with self._lock:
            schedule = self._schedules.get(key)
            if schedule is None:
                return
            busy = key in self._running
            self._running.add(key)
        started = self._clock()
        if busy:
            self._record(key, started, ("skipped", "the previous run has not finished"), release=False)
            return
        threading.Thread(target=self._run, args=(key, schedule, started, warn), daemon=True,
                         name=f"schedule {key[0]}/{key[1]}").start()

    def _run(self, key: Key, schedule: Schedule, started: float, warn: bool) -> None:
        server = self._supervisor.get(key[0])
        try:
            if server is None:
                outcome = ("skipped", "the server no longer exists")
            else:
                outcome = perform(schedule, server, self._backup, self._cancelled, warn)
        except Exception as error:
            log.exception("Schedule %s/%s failed", *key)
            outcome = ("failed", str(error) or type(error).__name__)
        self._record(key, started, outcome, release=True)

    def _record(self, key: Key, started: float, outcome: tuple[str, str], release: bool) -> None:
        last = {"time": round(started * 1000), "outcome": outcome[0], "message": outcome[1]}
        with self._lock:
            if release:
                self._running.discard(key)
            if key in self._schedules:
                self._last[key] = last
        log.info("Schedule %s/%s: %s (%s)", key[0], key[1], outcome[0], outcome[1])
        self._on_outcome(key[0], key[1], last)


def _next_after(schedule: Schedule, zone) -> Callable[[float], float]:
    """The job's clock arithmetic: epoch seconds in, the cron's next epoch seconds out, in ``zone``."""
    return lambda now: schedule.next_after(datetime.fromtimestamp(now, zone)).timestamp()
