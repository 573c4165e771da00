"""One append-only log on disk: segment files with a sparse index, after Kafka's ``LogSegment``.

A folder holds ``<first seq>.log`` files of records (``records.py``) and
beside each a ``<first seq>.index`` of fixed-size entries (seq, time,
offset), one per ``INDEX_INTERVAL`` bytes of records, so a sequence number
or a time is found by a binary search and a short read. The newest segment
takes the appends; it is rolled once it holds ``segment_bytes``, and whole
segments are deleted, oldest first, to keep the log within ``max_bytes`` and
``max_age``. Only the writer thread appends; readers take a ``snapshot()``
(the segments and how far each is written) and read the files without a lock.

Recovery at open: each segment's tail is checked from its last good index
entry on; a torn or corrupt end (a ``kill -9`` mid-write, a power cut) is cut
off, and the index entries beyond it with it.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
from bisect import bisect_right
from dataclasses import dataclass, field

from ..atomicfile import sync_folder
from .records import records, valid_length

log = logging.getLogger(__name__)

INDEX_ENTRY = struct.Struct("<QQQ")  # seq, time ms, offset
INDEX_INTERVAL = 4096
IOV_MAX = os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024
LOG_SUFFIX, INDEX_SUFFIX = ".log", ".index"


def index_path_of(log_path: str) -> str:
    """The index file beside the segment file ``log_path``."""
    return log_path[:-len(LOG_SUFFIX)] + INDEX_SUFFIX


def remove_segment_files(log_path: str) -> None:
    """Delete a segment file and its index (either may be gone already)."""
    for path in (log_path, index_path_of(log_path)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


@dataclass
class Segment:
    """One segment file: its first seq, index entries (parallel lists), valid size, and what it holds."""

    first_seq: int
    path: str
    seqs: list[int] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    size: int = 0
    next_seq: int = 0  # one past the last seq it holds
    last_time: int = 0

    @property
    def index_path(self) -> str:
        return index_path_of(self.path)

    def add_entry(self, seq: int, time: int, offset: int) -> None:
        self.seqs.append(seq)
        self.times.append(time)
        self.offsets.append(offset)

    def offset_for_time(self, time: int) -> int:
        """Offset of the last indexed record older than ``time`` (records before it are all older)."""
        i = bisect_right(self.times, time - 1) - 1
        return self.offsets[max(0, i)] if self.offsets else 0


@dataclass(frozen=True)
class SegmentView:
    """What a reader may read of one segment: the bytes up to ``size`` (whole records)."""

    segment: Segment
    size: int
    next_seq: int


class SegmentLog:
    """The segments of one log in ``folder``; ``append`` only from the one writer thread."""

    def __init__(self, folder: str, segment_bytes: int, max_bytes: int, max_age_ms: int):
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._fd: int | None = None  # the newest segment, open for appending
        self._index_fd: int | None = None
        self._dirty = False
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self._recover()
        newest = self._segments[-1] if self._segments else Segment(1, "", next_seq=1)
        self._next_seq, self._last_time = newest.next_seq, newest.last_time

    # -- state ---------------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """One past the newest seq written (1 for a log that never held anything)."""
        return self._next_seq

    @property
    def last_time(self) -> int:
        """Time of the newest record written (0 for none)."""
        return self._last_time

    def snapshot(self) -> list[SegmentView]:
        """The segments as they are now, oldest first, each with its written size."""
        with self._lock:
            return [SegmentView(segment, segment.size, segment.next_seq) for segment in self._segments]

    def configure(self, segment_bytes: int, max_bytes: int, max_age_ms: int) -> None:
        """New bounds (config reload); applied at the next append or sweep."""
        self.segment_bytes, self.max_bytes, self.max_age_ms = segment_bytes, max_bytes, max_age_ms

    # -- recovery ------------------------------------------------------------------------

    def _recover(self) -> None:
        names = sorted((name for name in os.listdir(self.folder) if name.endswith(LOG_SUFFIX)),
                       key=lambda name: int(name[:-len(LOG_SUFFIX)]) if name[:-len(LOG_SUFFIX)].isdigit() else -1)
        for name in names:
            stem = name[:-len(LOG_SUFFIX)]
            if not stem.isdigit():
                continue
            segment = self._recover_segment(Segment(int(stem), os.path.join(self.folder, name)))
            if segment is not None:
                self._segments.append(segment)

    def _recover_segment(self, segment: Segment) -> Segment | None:
        """Load the index, cut a torn tail off the file; None (and the files removed) if nothing is left."""
        with open(segment.path, "rb") as handle:
            data = handle.read()
        try:
            with open(segment.index_path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raw = b""
        entries = [entry for entry in INDEX_ENTRY.iter_unpack(raw[:len(raw) - len(raw) % INDEX_ENTRY.size])
                   if entry[2] < len(data)]
        # Start checking at the last entry that points at a valid record (a power cut may have left garbage).
        while entries and next(records(data, entries[-1][2], verify=True), None) is None:
            entries.pop()
        start = entries[-1][2] if entries else 0
        end = valid_length(data, start)
        if end == 0:
            remove_segment_files(segment.path)
            return None
        # Records written after the last entry (a kill between the two writes) get theirs back.
        entries += self._entries_for(data, start, end, entries[-1][2] if entries else -INDEX_INTERVAL)
        last = None
        for last in records(data, start, end):
            pass
        segment.size, segment.next_seq, segment.last_time = end, last.next_seq, last.time
        for entry in entries:
            segment.add_entry(*entry)
        if end < len(data) or len(raw) != len(entries) * INDEX_ENTRY.size:
            log.warning("Console history %s: cut a torn end at byte %d of %d", segment.path, end, len(data))
            with open(segment.path, "r+b") as handle:
                handle.truncate(end)
            with open(segment.index_path, "wb") as handle:
                handle.write(b"".join(INDEX_ENTRY.pack(*entry) for entry in entries))
        return segment

    @staticmethod
    def _entries_for(data: bytes, start: int, end: int, last_indexed: int = -INDEX_INTERVAL):
        """Index entries for the records in ``data[start:end]``: one per INDEX_INTERVAL bytes."""
        for header in records(data, start, end):
            if header.start - last_indexed >= INDEX_INTERVAL:
                last_indexed = header.start
                yield header.seq, header.time, header.start

    # -- writing (the writer thread) ------------------------------------------------------

    def append(self, records: list[tuple[tuple[bytes, ...], int, int, int]]) -> None:
        """Append whole records, each (buffers, seq, time, next seq), with as few ``writev`` calls as can be.

        A segment is rolled before a record that would take it past ``segment_bytes`` (a
        single larger record gets a segment of its own); each roll applies retention.
        """
        sizes = [sum(map(len, parts)) for parts, *_ in records]
        i = 0
        while i < len(records):
            segment = self._segments[-1] if self._segments and self._fd is not None else None
            if segment is None or (segment.size and segment.size + sizes[i] > self.segment_bytes):
                self._roll(records[i][1], sizes[i])
                segment = self._segments[-1]
            j, total = i + 1, sizes[i]
            while j < len(records) and segment.size + total + sizes[j] <= self.segment_bytes:
                total += sizes[j]
                j += 1
            self._write(segment, records[i:j], sizes[i:j])
            i = j

    def _write(self, segment: Segment, records: list, sizes: list[int]) -> None:
        """Append records to the open segment and index them; readers see them once both files have them."""
        base = offset = segment.size
        last_indexed = segment.offsets[-1] if segment.offsets else -INDEX_INTERVAL
        entries = []
        for (_, seq, time, _), size in zip(records, sizes):
            if offset - last_indexed >= INDEX_INTERVAL:
                last_indexed = offset
                entries.append((seq, time, offset))
            offset += size
        try:
            _write_all(self._fd, [part for parts, *_ in records for part in parts])
            if entries:
                _write_all(self._index_fd, [INDEX_ENTRY.pack(*entry) for entry in entries])
        except OSError:
            self._undo(base, len(segment.offsets))
            raise
        _, _, time, next_seq = records[-1]
        with self._lock:
            for entry in entries:
                segment.add_entry(*entry)
            segment.size = offset
            segment.next_seq, segment.last_time = next_seq, time
        self._next_seq, self._last_time = next_seq, time
        self._dirty = True

    def _undo(self, size: int, entries: int) -> None:
        """A failed write (disk full): cut both files back, so no half record is followed by good ones."""
        try:
            os.ftruncate(self._fd, size)
            os.ftruncate(self._index_fd, entries * INDEX_ENTRY.size)
        except OSError:
            self._close_files()  # reopened (and its tail checked) at the next append

    def sync(self) -> None:
        """Make what was appended durable (the writer calls this at most every few hundred ms)."""
        if self._dirty and self._fd is not None:
            os.fdatasync(self._fd)
            os.fdatasync(self._index_fd)
        self._dirty = False

    def _roll(self, first_seq: int, record_bytes: int) -> None:
        """Open a segment for appending: the newest one if it is not open yet (after a restart) and
        the record fits, else a new one at ``first_seq`` (closing the full one durably); then retention."""
        reopen = self._fd is None and self._segments and self._segments[-1].size + record_bytes <= self.segment_bytes
        if self._fd is not None:
            self._dirty = True
            self.sync()
            self._close_files()
        if reopen:
            segment = self._segments[-1]
        else:
            segment = Segment(first_seq, os.path.join(self.folder, f"{first_seq:020d}{LOG_SUFFIX}"), next_seq=first_seq)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        self._fd = os.open(segment.path, flags, 0o600)
        self._index_fd = os.open(segment.index_path, flags, 0o600)
        os.ftruncate(self._fd, segment.size)  # appends go right after the last whole record
        os.ftruncate(self._index_fd, len(segment.offsets) * INDEX_ENTRY.size)
        if not reopen:
            sync_folder(self.folder)  # the new file's name is durable too
            with self._lock:
                self._segments.append(segment)
        self.apply_retention()

    def apply_retention(self, now_ms: int | None = None) -> None:
        """Delete the oldest whole segments beyond ``max_bytes`` or older than ``max_age``."""
        with self._lock:
            doomed = []
            total = sum(segment.size for segment in self._segments)
            while len(self._segments) > 1 and total > self.max_bytes:
                total -= self._segments[0].size
                doomed.append(self._segments.pop(0))
            if now_ms is not None and self.max_age_ms:
                while self._segments and self._segments[0].last_time < now_ms - self.max_age_ms:
                    doomed.append(self._segments.pop(0))
            everything = not self._segments
        if everything:  # all aged out, the open one too: the next append starts a new segment
            self._close_files()
        for segment in doomed:
            remove_segment_files(segment.path)

    def close(self) -> None:
        self.sync()
        self._close_files()

    def _close_files(self) -> None:
        for fd in (self._fd, self._index_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._index_fd = None


def _write_all(fd: int, buffers: list[bytes]) -> None:
    """``writev`` every buffer, in calls of at most IOV_MAX buffers, finishing any short write."""
    while buffers:
        batch, buffers = buffers[:IOV_MAX], buffers[IOV_MAX:]
        written = os.writev(fd, batch)
        for i, buffer in enumerate(batch):
            if written < len(buffer):  # a short write: the rest of this batch goes on later
                buffers = [memoryview(buffer)[written:], *batch[i + 1:], *buffers]
                break
            written -= len(buffer)
