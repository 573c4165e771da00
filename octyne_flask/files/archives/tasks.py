"""Async compressions (``async=true``): a token per task, its progress, forgotten 10 s after it ends."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from octyne_flask.errors import INTERNAL, ApiError
from octyne_flask.files.archives.compress import CompressRequest, Progress, build_archive

LINGER = 10.0


@dataclass
class _Task:
    progress: Progress
    ended: float | None = None
    error: str | None = None


class CompressionTasks:
    """Tokens shared by ``/compress`` and ``/compress/v2``; each names one background compression."""

    def __init__(self, linger: float = LINGER):
        self._linger = linger
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()

    def start(self, request: CompressRequest) -> str:
        """Begin building the archive in the background; returns its token (32 hex digits)."""
        token = secrets.token_hex(16)
        task = _Task(Progress(request.total_bytes))
        with self._lock:
            self._forget_expired()
            self._tasks[token] = task
        threading.Thread(target=self._run, args=(task, request), name=f"compress-{token[:8]}", daemon=True).start()
        return token

    def _run(self, task: _Task, request: CompressRequest) -> None:
        try:
            build_archive(request, task.progress)
        except Exception as error:  # reported through the token, never lost in a thread
            task.error = getattr(error, "strerror", None) or str(error) or type(error).__name__
        with self._lock:
            task.ended = time.monotonic()

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
