"""One server's console history: its sequence numbers, the queue to the writer, and what readers see.

The console log hands every batch of lines here as it numbers them (under its
own lock, so batches arrive in order); this only queues them, never touching
the disk, so the app's output reader never waits for it. The daemon's one
writer thread (``writer.py``) drains the queue into the segment files. When
the writer falls behind by more than ``QUEUE_BYTES``, new lines are dropped
from the history (never from the live console), counted, and a ``D`` record
marks the gap.

Sequence numbers survive restarts: the ``seq`` file holds either the exact
next number (written at a clean shutdown) or a number reserved ahead of use
(written by the writer while lines flow), so after a ``kill -9`` numbering
resumes beyond anything handed out: numbers are never reused.

Without a usable folder (history off, or the folder unusable) the history is
the newest ``memory_bytes`` of lines in memory only; with history off the
folder still keeps the tiny ``seq`` file so numbering continues.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..atomicfile import write_atomically
from .records import dropped_record, lines_record
from .segments import SegmentLog, SegmentView

log = logging.getLogger(__name__)

SEQ_FILE = "seq"
LOCK_FILE = "lock"
CONSOLE_FOLDER = "console"
INPUTS_FOLDER = "inputs"
RESERVE_AHEAD = 1 << 20  # numbers reserved beyond the newest; the reservation is renewed at half-way
QUEUE_BYTES = 16 * 1024 * 1024  # how far the writer may fall behind before lines are dropped from history
INPUT_QUEUE = 10_000  # inputs waiting for the writer
RECORD_BYTES = 32 * 1024  # a queued batch larger than this is written as several records
LOCK_WAIT = 30.0  # seconds to wait for a folder still held by an exiting worker (its apps stopping)


@dataclass(frozen=True)
class Limits:
    """Size and age bounds of one server's files."""

    max_bytes: int
    max_age_ms: int

    def segment_bytes(self) -> int:
        """Segments of an eighth of the budget (64 KiB to 16 MiB): retention deletes little at a time."""
        return max(64 * 1024, min(16 * 1024 * 1024, self.max_bytes // 8))

    def for_inputs(self) -> Limits:
        """Inputs are few and small: a sixty-fourth of the console budget, at least 256 KiB."""
        return Limits(max(256 * 1024, self.max_bytes // 64), self.max_age_ms)


@dataclass(slots=True)
class Pending:
    """Lines numbered but not yet written (``lines`` None: a run of dropped lines)."""

    seq: int
    count: int
    time: int
    lines: list[str] | None
    size: int

    def parts(self) -> tuple[bytes, ...]:
        """The record as it is written (several buffers)."""
        if self.lines is None:
            return dropped_record(self.seq, self.count, self.time)
        return lines_record(self.seq, self.time, self.lines)

    def encoded(self) -> bytes:
        return b"".join(self.parts())


@dataclass(frozen=True)
class HistoryView:
    """A consistent picture for a reader: segments on disk, then the queued tail, in sequence order."""

    segments: list[SegmentView]
    pending: list[Pending]
    next_seq: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ServerHistory:
    """Sequence numbers and history of one server; ``record_*`` from any thread, ``write_pending`` from the writer."""

    def __init__(self, name: str, folder: str | None, limits: Limits, *, keep_files: bool, memory_bytes: int,
                 wake: Callable[[ServerHistory], None]):
        self.name = name
        self._lock = threading.Lock()
        self._wake = wake
        self._limits = limits
        self._memory_bytes = memory_bytes
        self._pending: deque[Pending] = deque()
        self._pending_bytes = 0
        self._inputs: list[Pending] = []  # queued inputs (their lines hold one JSON text)
        self._queued = False  # the writer has been told there is work
        self._console: SegmentLog | None = None
        self._inputs_log: SegmentLog | None = None
        self._folder: str | None = None
        self._lock_fd: int | None = None
        self._reserved = 0
        self._next_seq = 1
        self._last_time = 0
        self._next_input = 1
        self.dropped = 0  # lines left out of the history because the writer fell behind
        if folder is not None:
            try:
                self._open(folder, keep_files)
            except OSError as error:
                log.error("Console history of %s cannot use %s (%s); keeping it in memory only",
                          name, folder, error.strerror or error)
                self._release_folder()

    # -- opening and closing -------------------------------------------------------------

    def _open(self, folder: str, keep_files: bool) -> None:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self._lock_fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        _lock_within(self._lock_fd, LOCK_WAIT, folder)
        self._folder = folder
        if keep_files:
            self._console = SegmentLog(os.path.join(folder, CONSOLE_FOLDER), self._limits.segment_bytes(),
                                       self._limits.max_bytes, self._limits.max_age_ms)
            inputs = self._limits.for_inputs()
            self._inputs_log = SegmentLog(os.path.join(folder, INPUTS_FOLDER), inputs.segment_bytes(),
                                          inputs.max_bytes, inputs.max_age_ms)
            self._last_time = self._console.last_time
            self._next_input = self._inputs_log.next_seq
        on_disk = self._console.next_seq if self._console else 1
        self._next_seq = max(self._saved_next_seq(), on_disk)
        self._reserve(self._next_seq + RESERVE_AHEAD)

    def _saved_next_seq(self) -> int:
        """From the seq file: the exact next number after a clean stop, else one past the reservation."""
        try:
            with open(os.path.join(self._folder, SEQ_FILE), encoding="ascii") as handle:
                saved = json.load(handle)
            return int(saved["next"]) if saved.get("clean") else int(saved["reserved"]) + 1
        except FileNotFoundError:
            return 1
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("Console history of %s: unreadable seq file, numbering from what is on disk", self.name)
            return 1

    def _reserve(self, upto: int) -> None:
        write_atomically(os.path.join(self._folder, SEQ_FILE), json.dumps({"reserved": upto}).encode())
        self._reserved = upto

    def close(self) -> None:
        """After the writer's last flush: close the files and save the exact next number."""
        with self._lock:
            folder, next_seq = self._folder, self._next_seq
        if folder is None:
            return
        for segment_log in (self._console, self._inputs_log):
            if segment_log is not None:
                segment_log.close()
        try:
            write_atomically(os.path.join(folder, SEQ_FILE), json.dumps({"next": next_seq, "clean": True}).encode())
        except OSError as error:
            log.error("Console history of %s: cannot save the sequence number: %s", self.name, error)
        self._release_folder()

    def _release_folder(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd = None
        self._folder = self._console = self._inputs_log = None

    @property
    def next_seq(self) -> int:
        """The number the next console line gets."""
        return self._next_seq

    def configure(self, limits: Limits, memory_bytes: int) -> None:
        """New bounds (config reload), applied from the next write on."""
        self._limits, self._memory_bytes = limits, memory_bytes
        if self._console is not None:
            self._console.configure(limits.segment_bytes(), limits.max_bytes, limits.max_age_ms)
            inputs = limits.for_inputs()
            self._inputs_log.configure(inputs.segment_bytes(), inputs.max_bytes, inputs.max_age_ms)

    # -- recording (any thread; never touches the disk) -------------------------------

    def record_lines(self, seq: int, lines: list[str], size: int) -> None:
        """Lines ``seq``… just numbered by the console log (called in order, under its lock)."""
        with self._lock:
            now = self._last_time = max(_now_ms(), self._last_time)
            self._next_seq = seq + len(lines)
            if self._console is None:
                self._keep_in_memory(Pending(seq, len(lines), now, lines, size))
                return
            if self._pending_bytes + size > QUEUE_BYTES:
                self._drop(seq, len(lines), now)
            else:
                self._pending.append(Pending(seq, len(lines), now, lines, size))
                self._pending_bytes += size
            wake, self._queued = not self._queued, True
        if wake:
            self._wake(self)

    def _keep_in_memory(self, item: Pending) -> None:
        self._pending.append(item)
        self._pending_bytes += item.size
        while self._pending_bytes > self._memory_bytes and len(self._pending) > 1:
            self._pending_bytes -= self._pending.popleft().size

    def _drop(self, seq: int, count: int, now: int) -> None:
        """The writer is too far behind: leave these lines out, in one marker with the run before them."""
        self.dropped += count
        last = self._pending[-1] if self._pending else None
        if last is not None and last.lines is None and last.seq + last.count == seq:
            last.count += count
        else:
            self._pending.append(Pending(seq, count, now, None, 0))

    def record_input(self, user: str, text: str) -> None:
        """Who typed what into the console."""
        entry = json.dumps({"user": user, "input": text}, ensure_ascii=False)
        with self._lock:
            now = self._last_time = max(_now_ms(), self._last_time)
            self._inputs.append(Pending(self._next_input, 1, now, [entry], len(entry)))
            self._next_input += 1
            if self._inputs_log is None:
                del self._inputs[:-INPUT_QUEUE]  # memory only: the newest ones
                return
            if len(self._inputs) > INPUT_QUEUE:
                self._inputs.pop()
                return
            wake, self._queued = not self._queued, True
        if wake:
            self._wake(self)

    # -- the writer thread ---------------------------------------------------------------

    def write_pending(self) -> None:
        """Write what is queued (one write per log), then let readers find it on disk."""
        with self._lock:
            self._queued = False
            items, inputs = list(self._pending), list(self._inputs)
        if self._console is None:
            return
        try:
            _append(self._console, items)
            _append(self._inputs_log, inputs)
        except OSError as error:
            log.error("Console history of %s: writing failed (%s); these lines are left out",
                      self.name, error.strerror or error)
            self.dropped += sum(item.count for item in items if item.lines is not None)
        with self._lock:
            for _ in items:
                self._pending_bytes -= self._pending.popleft().size
            del self._inputs[:len(inputs)]
        left_out = sum(item.count for item in items if item.lines is None)
        if left_out:  # said here, by the writer: the appending thread must never wait for a log write
            log.warning("Console history of %s fell %d bytes behind; %d line(s) left out of it",
                        self.name, QUEUE_BYTES, left_out)
        if self._next_seq + RESERVE_AHEAD // 2 > self._reserved:
            self._reserve(self._next_seq + RESERVE_AHEAD)

    def sync(self) -> None:
        for segment_log in (self._console, self._inputs_log):
            if segment_log is not None:
                segment_log.sync()

    def apply_retention(self, now_ms: int) -> None:
        for segment_log in (self._console, self._inputs_log):
            if segment_log is not None:
                segment_log.apply_retention(now_ms)

    # -- reading ---------------------------------------------------------------------------

    def view(self) -> HistoryView:
        """The console lines as a reader may read them now."""
        with self._lock:
            return _view(self._console, self._pending, self._next_seq)

    def inputs_view(self) -> HistoryView:
        """The recorded inputs, each a one-line JSON text, in the same shape."""
        with self._lock:
            return _view(self._inputs_log, self._inputs, self._next_input)


def _view(segment_log: SegmentLog | None, queued, next_seq: int) -> HistoryView:
    """Segments and queue as one picture (called under the store's lock)."""
    segments = segment_log.snapshot() if segment_log is not None else []
    # The writer updates the segments before it unqueues: an item may be in both for a moment.
    written = segments[-1].next_seq if segments else 0
    return HistoryView(segments, [item for item in queued if item.seq >= written], next_seq)


def _lock_within(fd: int, seconds: float, folder: str) -> None:
    """Take the folder's lock, waiting while another process (a worker on its way out) still holds it."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise OSError(f"another process is using {folder}") from None
            time.sleep(0.05)


def _append(segment_log: SegmentLog, items: list[Pending]) -> None:
    """Encode queued items as records of at most about RECORD_BYTES and append them in one go."""
    if not items:
        return
    segment_log.append([(piece.parts(), piece.seq, piece.time, piece.seq + piece.count)
                        for item in items for piece in _pieces(item)])


def _pieces(item: Pending) -> list[Pending]:
    """A big batch (a flood's read) as several records, so one seeks into it without reading it all."""
    if item.lines is None or item.size <= RECORD_BYTES:
        return [item]
    step = max(1, len(item.lines) * RECORD_BYTES // item.size)
    return [Pending(item.seq + i, len(item.lines[i:i + step]), item.time, item.lines[i:i + step], 0)
            for i in range(0, len(item.lines), step)]
