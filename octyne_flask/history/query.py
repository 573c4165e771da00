"""Reading a history view: pages of lines (optionally searched), the text export, and resume's replay.

Everything reads *blocks*: runs of whole records, cut at index entries, read
with one ``pread`` each (the queued tail is one more block, encoded on the
spot), growing from 64 KiB to 4 MiB so a small page costs a small read and a
long search costs few calls. A search never parses records it does not need:
the substring search lowers a whole block and runs ``bytes.find``; only a hit
is mapped back to its line and record (``records.line_at``). Sequence bounds
narrow the blocks through the index; time bounds are turned into sequence
bounds first (times never decrease along the sequence).
"""

from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable, Iterator

from .records import DROPPED, LINES, body_lines, line_at, records
from .store import HistoryView

FIRST_BLOCK = 64 * 1024
LARGEST_BLOCK = 4 * 1024 * 1024
PAGE_TEXT_BYTES = 8 * 1024 * 1024  # a page stops growing past this much text (at least one line)


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    time: int
    text: str
    missed: int = 0  # > 0: a marker for that many lines left out of the history (text says so)

    def as_json(self) -> dict:
        entry = {"seq": self.seq, "time": self.time, "text": self.text}
        if self.missed:
            entry["missed"] = self.missed
        return entry


def dropped_text(count: int) -> str:
    return f"[Octyne] {count} line(s) of console output were left out of the history here (the disk fell behind)."


# -- blocks ----------------------------------------------------------------------------------

def _segment_range(view_segment, lo: int, hi: int) -> tuple[int, int]:
    """The byte range of one segment whose records may hold seqs in [lo, hi)."""
    segment = view_segment.segment
    count = bisect_right(segment.seqs, hi - 1)  # entries before this one start below hi
    seqs, offsets = segment.seqs[:count], segment.offsets[:count]
    end = segment.offsets[count] if count < len(segment.offsets) else view_segment.size
    start = offsets[max(0, bisect_right(seqs, lo) - 1)] if offsets else 0
    return start, min(end, view_segment.size)


def _cuts(offsets: list[int], start: int, end: int, backward: bool) -> Iterator[tuple[int, int]]:
    """[start, end) cut at index offsets into pieces growing from FIRST_BLOCK to LARGEST_BLOCK."""
    size = FIRST_BLOCK
    while start < end:
        if backward:
            i = bisect_right(offsets, end - size) - 1
            cut = offsets[i] if i >= 0 and offsets[i] > start else start
            yield cut, end
            end = cut
        else:
            i = bisect_right(offsets, start + size - 1)
            cut = offsets[i] if i < len(offsets) and offsets[i] < end else end
            yield start, cut
            start = cut
        size = min(size * 2, LARGEST_BLOCK)


def blocks(view: HistoryView, lo: int, hi: int, backward: bool = False) -> Iterator[bytes]:
    """Blocks of records that hold the seqs in [lo, hi), in sequence order or (``backward``) the reverse."""
    sources = [segment for segment in view.segments if segment.next_seq > lo and segment.segment.first_seq < hi]
    tail = [item for item in view.pending if item.seq + item.count > lo and item.seq < hi]
    if backward and tail:
        yield b"".join(item.encoded() for item in tail)
    for source in (reversed(sources) if backward else sources):
        try:
            fd = os.open(source.segment.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # retention deleted it meanwhile: its lines are gone
        try:
            start, end = _segment_range(source, lo, hi)
            for first, last in _cuts(source.segment.offsets, start, end, backward):
                yield os.pread(fd, last - first, first)
        finally:
            os.close(fd)
    if not backward and tail:
        yield b"".join(item.encoded() for item in tail)


def seq_at_time(view: HistoryView, time: int) -> int:
    """The seq of the first line received at or after ``time`` (``view.next_seq`` if none)."""
    for source in view.segments:
        if source.segment.last_time < time:
            continue
        start = source.segment.offset_for_time(time)
        try:
            with open(source.segment.path, "rb") as handle:
                handle.seek(start)
                data = handle.read(source.size - start)
        except FileNotFoundError:
            continue
        for header in records(data):
            if header.time >= time:
                return header.seq
    for item in view.pending:
        if item.time >= time:
            return item.seq
    return view.next_seq


# -- what a block yields ------------------------------------------------------------------------

def all_lines(block: bytes, lo: int, hi: int) -> list[Line]:
    """Every line (and drop marker) in the block with a seq in [lo, hi)."""
    found = []
    for header in records(block):
        if header.next_seq <= lo or header.seq >= hi:
            continue
        if header.kind == DROPPED:
            first = max(header.seq, lo)
            count = min(header.next_seq, hi) - first
            found.append(Line(first, header.time, dropped_text(count), count))
            continue
        lines = body_lines(block, header)
        skip = max(0, lo - header.seq)
        upto = min(header.count, hi - header.seq)
        found.extend(Line(header.seq + i, header.time, lines[i]) for i in range(skip, upto))
    return found


class Substring:
    """Case-insensitive ASCII substring search over raw blocks (lowered once per block)."""

    def __init__(self, needle: str):
        self._needle = needle.lower().encode()

    def __call__(self, block: bytes, lo: int, hi: int) -> list[Line]:
        lowered = block.lower()
        needle = self._needle
        found = []
        at = lowered.find(needle)
        while at >= 0:
            hit = line_at(block, at)
            if hit is None:  # inside a header line
                at = lowered.find(needle, block.find(b"\n", at) + 1)
                continue
            header, index, start, end = hit
            seq = header.seq + index
            if header.kind == LINES and lo <= seq < hi:
                found.append(Line(seq, header.time, block[start:end].decode("utf-8", "replace")))
            at = lowered.find(needle, end + 1)
        return found


class Pattern:
    """A regular expression searched line by line, within a shared deadline.

    The block's text is searched in one call per hit (MULTILINE, so ``^``/``$`` see
    lines); each hit's line is then checked alone, since a pattern can match across a
    newline in the block. ``search(text, pos)`` must raise TimeoutError once time is up.
    """

    def __init__(self, search: Callable[[str, int], object], line_search: Callable[[str], object]):
        self._search = search
        self._line_search = line_search

    def __call__(self, block: bytes, lo: int, hi: int) -> list[Line]:
        text = block.decode("utf-8", "surrogateescape")  # headers keep their 0xFF mark as \udcff
        found = []
        at = 0
        while (match := self._search(text, at)) is not None:
            hit = line_at(text, match.start()) if match.start() < len(text) else None
            line_end = text.find("\n", match.start())
            if line_end < 0:
                break
            if hit is not None:
                header, index, start, end = hit
                seq = header.seq + index
                line = text[start:end]
                if header.kind == LINES and lo <= seq < hi and self._line_search(line) is not None:
                    found.append(Line(seq, header.time, line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")))
            at = line_end + 1
        return found


# -- pages, export, replay ------------------------------------------------------------------------

def page(view: HistoryView, lo: int, hi: int, limit: int, backward: bool,
         matcher: Callable[[bytes, int, int], list[Line]] = all_lines) -> tuple[list[Line], bool]:
    """Up to ``limit`` matching lines with seqs in [lo, hi): the newest (``backward``) or the oldest.

    Returns them in ascending order, and whether matching lines were left out beyond them
    (in the paging direction). A page also ends before its text passes PAGE_TEXT_BYTES.
    """
    kept: list[Line] = []  # in scan order
    text_bytes = 0
    for block in blocks(view, lo, hi, backward):
        for piece in pieces(block, backward):  # so a page near the end of a big block stops early
            found = matcher(piece, lo, hi)
            for line in (reversed(found) if backward else found):
                if len(kept) == limit or (kept and text_bytes + len(line.text) > PAGE_TEXT_BYTES):
                    return _in_order(kept, backward), True
                kept.append(line)
                text_bytes += len(line.text)
    return _in_order(kept, backward), False


def _in_order(lines: list[Line], backward: bool) -> list[Line]:
    return lines[::-1] if backward else lines


def pieces(block: bytes, backward: bool, size: int = FIRST_BLOCK) -> Iterator[bytes]:
    """A block cut at record starts into pieces of about ``size`` bytes, from its start or from its end."""
    if len(block) <= size:
        yield block
        return
    if backward:
        end = len(block)
        while end > 0:
            start = block.rfind(b"\n\xff", 0, max(1, end - size)) + 1  # 0: the block's first record
            yield block[start:end]
            end = start
    else:
        start = 0
        while start < len(block):
            cut = block.find(b"\n\xff", start + size)
            end = len(block) if cut < 0 else cut + 1
            yield block[start:end]
            start = end


def export(view: HistoryView, lo: int, hi: int, stamp: Callable[[int], str]) -> Iterator[str]:
    """The lines with seqs in [lo, hi) as text, each line prefixed with ``stamp(time)`` and a space."""
    for block in blocks(view, lo, hi):
        lines = all_lines(block, lo, hi)
        if lines:
            yield "".join(f"{stamp(line.time)} {line.text}\n" for line in lines)


def replay(view: HistoryView, lo: int, hi: int, max_bytes: int) -> Iterator[tuple[int, list[str]]]:
    """The lines with seqs in [lo, hi) as runs of consecutive seqs (first seq, lines), each at most
    about ``max_bytes`` of text; a gap (lines not kept) starts a new run."""
    start, run, size = 0, [], 0
    for block in blocks(view, lo, hi):
        for line in all_lines(block, lo, hi):
            if line.missed:
                continue
            if run and (line.seq != start + len(run) or size + len(line.text) > max_bytes):
                yield start, run
                run, size = [], 0
            if not run:
                start = line.seq
            run.append(line.text)
            size += len(line.text) + 1
    if run:
        yield start, run
