"""Every compression the daemon runs: async ones by token (forgotten 10 s after they end), sync ones too.

All of them stop at shutdown: ``cancel`` makes each build give up at its
next block or entry (its temporary file is removed as it unwinds), and
``wait`` lets the daemon exit only once they are gone. Their temporary files
are listed in the daemon's journal, so even a kill -9 leaves nothing for long.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from octyne_flask.errors import INTERNAL, ApiError, internal_error
from octyne_flask.files.archives.members import Cancelled, Progress
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal

if TYPE_CHECKING:
    from octyne_flask.files.archives.compress import CompressRequest

LINGER = 10.0
CANCELLED = "cancelled: the daemon is shutting down"


@dataclass
class _Task:
    progress: Progress
    ended: float | None = None
    error: str | None = None


class CompressionTasks:
    """Tokens shared by ``/compress`` and ``/compress/v2``; each names one background compression."""

    def __init__(self, journal: TemporaryJournal = UNRECORDED, linger: float = LINGER):
        self._journal = journal
        self._linger = linger
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._building = 0  # builds not yet unwound, sync and async
        self._idle = threading.Condition(self._lock)

    def run(self, request: CompressRequest) -> None:
        """Build the archive in the calling thread (a synchronous request); failures become API errors."""
        self._begin()
        try:
            self._build(request, Progress(self._stop))
        except OSError as error:
            raise internal_error(error) from None
        except Cancelled:
            raise ApiError(500, INTERNAL, detail=CANCELLED) from None
        finally:
            self._end()

    def start(self, request: CompressRequest) -> str:
        """Begin building the archive in the background; returns its token (32 hex digits) at once."""
        token = secrets.token_hex(16)
        task = _Task(Progress(self._stop))
        with self._lock:
            self._forget_expired()
            self._tasks[token] = task
        self._begin()
        threading.Thread(target=self._run, args=(task, request), name=f"compress-{token[:8]}", daemon=True).start()
        return token

    def _run(self, task: _Task, request: CompressRequest) -> None:
        try:
            self._build(request, task.progress)
        except Exception as error:  # reported through the token, never lost in a thread
            task.error = _reason(error)
        finally:
            with self._lock:
                task.ended = time.monotonic()
            self._end()

    def _build(self, request: CompressRequest, progress: Progress) -> None:
        from octyne_flask.files.archives.compress import build_archive  # with tarfile and the writers: on first use

        build_archive(request, progress, self._journal)

    def _begin(self) -> None:
        with self._lock:
            self._building += 1

    def _end(self) -> None:
        with self._idle:
            self._building -= 1
            self._idle.notify_all()

    def cancel(self) -> None:
        """Make every build, running or yet to come, give up (the daemon is stopping)."""
        self._stop.set()

    def wait(self, timeout: float) -> bool:
        """Wait until every build has unwound (its temporary file gone); False if some still run."""
        with self._idle:
            return self._idle.wait_for(lambda: self._building == 0, timeout)

    def _forget_expired(self) -> None:
        """Drop tasks that ended more than ``linger`` seconds ago (called with the lock held)."""
        now = time.monotonic()
        for name in [name for name, task in self._tasks.items()
                     if task.ended is not None and now - task.ended > self._linger]:
            del self._tasks[name]

    def status(self, token: str) -> dict:
        """``{"finished": bool, "progress": 0..1}``; 400 for an unknown or expired token, 500 if it failed."""
        with self._lock:
            self._forget_expired()
            task = self._tasks.get(token)
            ended = task.ended if task else None
        if task is None:
            raise ApiError(400, "Invalid token!")
        if ended is None:
            return {"finished": False, "progress": round(task.progress.fraction, 4)}
        if task.error is not None:
            raise ApiError(500, INTERNAL, detail=task.error)
        return {"finished": True, "progress": 1.0}


def _reason(error: Exception) -> str:
    """Why a background build failed, for ``detail`` (never a path)."""
    if isinstance(error, Cancelled):
        return CANCELLED
    if isinstance(error, ApiError):
        detail = error.extra.get("detail")
        return f"{error.message} ({detail})" if detail else error.message
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
