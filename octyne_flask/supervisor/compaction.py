"""Console compaction in a thread of its own, shared by every server: the output readers only ask for it.

A reader that compressed its console itself stopped reading meanwhile, and the
app's writes blocked once the pipe was full: with a 64 MiB scrollback, a flooding
app stalled for 0.36 s every 10 s (2 s with 1 GiB). One thread is enough:
compaction is rare (a pause in output, or every 10 s of flow) and mostly brief.
"""

from __future__ import annotations

import logging
import threading

from ..allocator import release_free_memory
from .console import ConsoleLog

log = logging.getLogger(__name__)


class Compactor:
    """Compacts the consoles asked for, one at a time, in the order asked (a console waits in line once)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._due: dict[ConsoleLog, None] = {}  # an ordered set
        self._thread: threading.Thread | None = None

    def request(self, console: ConsoleLog) -> None:
        """Compact ``console`` soon; returns at once."""
        with self._cond:
            self._due[console] = None
            if self._thread is None:  # started by the first request: a daemon without apps has no such thread
                self._thread = threading.Thread(target=self._run, name="octyne-console-compaction", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._due)
                console = next(iter(self._due))
                del self._due[console]
            try:
                if console.compact():
                    release_free_memory()  # hand what compression freed back to the system
            except Exception:  # the thread serves every server: it goes on
                log.exception("Compacting a console failed")
