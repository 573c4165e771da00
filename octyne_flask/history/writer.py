"""The daemon's one history writer thread: drains every server's queue, fsyncs, applies retention.

Woken only when a server's queue goes from empty to not empty, it writes each
such server's queue with one ``writev`` per file (what queued while it wrote
goes in the next), so a flood costs a few large writes, not one per line.
Lines reach the kernel as soon as it gets to them (a ``kill -9`` of the daemon
loses only what was still queued), and ``fdatasync`` follows within
``SYNC_INTERVAL`` (a power cut). A slow disk only makes the queues grow, and the stores drop
lines once a queue is full; nothing waits for this thread but shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

SYNC_INTERVAL = 0.2  # seconds: at most this much written data is not yet durable
SWEEP_INTERVAL = 3600.0  # seconds between age-retention sweeps


class HistoryWriter:
    """Writes queued history for every server; ``close()`` writes what is left and stops."""

    def __init__(self, sweep: Callable[[], None]):
        self._sweep = sweep
        self._lock = threading.Lock()
        self._work: dict = {}  # stores with queued lines, in order of arrival (a dict as an ordered set)
        self._event = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="octyne-history-writer", daemon=True)
        self._thread.start()

    def wake(self, store) -> None:
        """``store`` has queued lines (called once per empty-to-queued change)."""
        with self._lock:
            self._work[store] = None
        self._event.set()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, sync it, and stop the thread."""
        with self._lock:
            self._closing = True
        self._event.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        unsynced: set = set()
        sync_at = None
        sweep_at = time.monotonic()  # the first sweep runs at start
        while True:
            now = time.monotonic()
            deadline = min(sweep_at, sync_at) if sync_at is not None else sweep_at
            self._event.wait(max(0.0, deadline - now))
            with self._lock:
                self._event.clear()
                work, self._work = list(self._work), {}
                closing = self._closing
            for store in work:
                self._guarded(store.write_pending)
            unsynced.update(work)
            now = time.monotonic()
            if unsynced and sync_at is None:
                sync_at = now + SYNC_INTERVAL
            if closing or (sync_at is not None and now >= sync_at):
                for store in unsynced:
                    self._guarded(store.sync)
                unsynced.clear()
                sync_at = None
            if closing:
                with self._lock:
                    if not self._work:
                        return
                continue
            if now >= sweep_at:
                self._guarded(self._sweep)
                sweep_at = time.monotonic() + SWEEP_INTERVAL

    @staticmethod
    def _guarded(step: Callable[[], None]) -> None:
        """One store's failure (a bug, a broken disk) must not stop the others' history."""
        try:
            step()
        except Exception:
            log.exception("Console history writing failed")
