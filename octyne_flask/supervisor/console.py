"""One server's console: a shared, sequence-numbered output log with per-subscriber cursors.

The reader thread appends lines and never waits for a client; each subscriber
is only a cursor into the log plus a wake-up callback, so memory is bounded per
server, not per client. The log keeps the scrollback (last N lines within a
byte budget) and, beyond it, only what a connected subscriber has not read yet,
up to ``max_lag_bytes``; a subscriber that falls further behind is cut off.
Batches are cut once per start position and their encodings cached, so
subscribers at the same position share the same encoded bytes. The lines' text
is kept as UTF-8 bytes (``linetext.py``) and compressed once the app goes quiet
(``compact``): a quiet server's scrollback is what stays in memory for hours.

Every line's position is its sequence number (1, 2, 3, … continuing from the
server's history). Lines are handed to the history as they are numbered; the
log is the hot end of the same sequence, so a client resuming after ``seq``
reads what the log still holds from memory and anything older from the history.
"""

from __future__ import annotations

import operator
import threading
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate, repeat
from typing import Callable, Iterator

from ..history.query import replay
from .linetext import LineText, joined, pack

# A batch handed to a writer carries at most this many bytes of text (unless a
# single line is longer), so one message never holds a whole flood.
MAX_BATCH_BYTES = 512 * 1024

LAGGED = "lagged"
CLOSED = "closed"


def line_sizes(lines: list[str], ascii: bool):
    """Bytes each line occupies on the wire, with its newline (computed without a Python-level loop)."""
    lengths = map(len, lines) if ascii else map(len, map(str.encode, lines))
    return map(operator.add, lengths, repeat(1))


def text_of(pieces: list) -> str:
    """The whole lines ``LineText.between`` picked out, joined with newlines (decoded off the log's lock)."""
    data = joined(pieces)
    return data.decode()[:-1] if data else ""


def split_lines(pieces: list) -> list[str]:
    """The lines ``LineText.between`` picked out."""
    return text_of(pieces).split("\n") if pieces else []


class Scrollback:
    """The scrollback a new subscriber gets: ``count`` lines, joined and decoded off the log's lock.

    A console sends it as one text, so ``text()`` never splits it into lines (25 000 strings made
    and joined again cost a third of a connect).
    """

    __slots__ = ("count", "_pieces")

    def __init__(self, count: int, pieces: list):
        self.count = count
        self._pieces = pieces

    def text(self) -> str:
        """The lines joined with newlines."""
        return text_of(self._pieces)

    def lines(self) -> list[str]:
        return split_lines(self._pieces)


class Batch:
    """Consecutive lines [start, end) of a log; decoded, and each encoding computed, once and shared.

    It is cut under the log's lock as pieces of the log's text; the first reader joins and decodes
    them off that lock.
    """

    __slots__ = ("start", "end", "_text", "_lines", "_encoded", "_lock")

    def __init__(self, start: int, end: int, text: list):
        self.start = start
        self.end = end
        self._text = text
        self._lines: list[str] | None = None
        self._encoded: dict = {}
        self._lock = threading.Lock()

    @property
    def lines(self) -> list[str]:
        with self._lock:
            return self._decoded()

    def encoded(self, encoder: Callable[[list[str], int], object]) -> object:
        """``encoder(lines, first seq)``, computed by the first caller and reused by the others."""
        with self._lock:
            if encoder not in self._encoded:
                self._encoded[encoder] = encoder(self._decoded(), self.start)
            return self._encoded[encoder]

    def _decoded(self) -> list[str]:
        if self._lines is None:
            self._lines = split_lines(self._text)
            self._text = []
        return self._lines


class Subscriber:
    """A reader's position in the log; ``cut`` is set (LAGGED or CLOSED) when it must go."""

    __slots__ = ("cursor", "cut", "owner", "_wake", "_on_cut")

    def __init__(self, cursor: int, owner: str | None, wake: Callable[[], None], on_cut: Callable[[str], None]):
        self.cursor = cursor
        self.owner = owner
        self.cut: str | None = None
        self._wake = wake
        self._on_cut = on_cut


class ConsoleLog:
    """The sequenced output log of one server (thread-safe; one lock guards all state)."""

    def __init__(self, scrollback_lines: int, scrollback_bytes: int, max_lag_bytes: int, history=None):
        """``history``: the server's ``ServerHistory`` (numbering continues from it), or None (from 1)."""
        self.history = history
        self._scrollback_lines = scrollback_lines
        self._scrollback_bytes = scrollback_bytes
        self._max_lag_bytes = max_lag_bytes
        self._lock = threading.Lock()
        # Retained line i (from _base on) is _text between byte offsets _ends[i - 1] and _ends[i]
        # (machine integers: a list of ints took 40 bytes per line beside its text).
        self._text = LineText()
        self._ends = array("q")
        self._base = 0
        self._first = history.next_seq if history is not None else 1  # sequence number of line _base
        self._start_offset = 0  # byte offset where line _base starts
        self._scrollback_from = self._first  # sequence number of the first scrollback line
        self._subscribers: set[Subscriber] = set()
        self._batches: dict[int, Batch] = {}
        self._closed = False

    # -- writing (reader thread, marker lines) -------------------------------------

    def append(self, lines: list[str]) -> None:
        """Add complete lines; one holding a newline (a marker naming a server "a\\nb") is several lines."""
        text = "\n".join(lines)
        if lines and text.count("\n") != len(lines) - 1:
            lines = text.split("\n")
        self.append_output(lines)

    def append_output(self, lines: list[str]) -> None:
        """Add lines that hold no newline, as the output reader's (``LineSplitter`` splits on them).

        Wakes subscribers, cuts those too far behind. (Looking for newlines again took
        longer than the rest of the append together.)
        """
        if not lines:
            return
        text = "\n".join(lines)
        data = (text + "\n").encode()
        with self._lock:
            offset = self._ends[-1] if len(self._ends) > self._base else self._start_offset
            self._text.append(data)
            self._ends.extend(accumulate(line_sizes(lines, len(data) == len(text) + 1), initial=offset))
            del self._ends[-len(lines) - 1]  # accumulate repeats the starting offset first
            if self.history is not None:  # in order: numbering and handing over happen under one lock
                self.history.record_lines(self._head() - len(lines), lines, len(data))
            offset = self._ends[-1]
            cut = [s for s in self._subscribers if offset - self._offset_of(s.cursor) > self._max_lag_bytes]
            for subscriber in cut:
                self._remove(subscriber, LAGGED)
            self._advance_scrollback()
            self._trim()
            awake = list(self._subscribers)
        for subscriber in cut:
            subscriber._on_cut(LAGGED)
        for subscriber in awake:
            subscriber._wake()

    def compact(self) -> bool:
        """Compress the text kept so far (the app has gone quiet); compression runs off the lock.

        Says whether there was anything to compress (a trickle of lines pauses every second, mostly for nothing).
        """
        with self._lock:
            pending = self._text.unpacked()
        for start, block in pending:
            packed = pack(block)
            with self._lock:
                self._text.packed(start, packed)
        return bool(pending)

    def close(self) -> None:
        """Cut every subscriber (the server is gone); later subscribes are cut at once."""
        with self._lock:
            self._closed = True
        self.close_where(lambda subscriber: True)

    def close_where(self, chosen: Callable[[Subscriber], bool]) -> None:
        """Cut the subscribers ``chosen`` picks (e.g. by ``owner``, when that account is gone)."""
        with self._lock:
            gone = [subscriber for subscriber in self._subscribers if chosen(subscriber)]
            for subscriber in gone:
                self._remove(subscriber, CLOSED)
            self._trim()
        for subscriber in gone:
            subscriber._on_cut(CLOSED)

    def configure(self, scrollback_lines: int, scrollback_bytes: int, max_lag_bytes: int) -> None:
        """Apply new bounds (config reload); a larger scrollback can only regain lines still retained."""
        with self._lock:
            self._scrollback_lines = scrollback_lines
            self._scrollback_bytes = scrollback_bytes
            self._max_lag_bytes = max_lag_bytes
            if len(self._ends) > self._base:
                self._scrollback_from = self._first
                self._advance_scrollback()
                self._trim()

    # -- reading (one writer thread per subscriber) ---------------------------------

    def subscribe(self, owner: str | None, wake: Callable[[], None],
                  on_cut: Callable[[str], None]) -> tuple[Subscriber, Scrollback]:
        """A new subscriber positioned after the scrollback, and the scrollback.

        ``wake()`` is called (from the appending thread, so it must not block) when lines
        arrive; ``on_cut(reason)`` when the subscriber is cut off (too far behind, or closed).
        """
        with self._lock:
            head = self._head()
            subscriber = Subscriber(head, owner, wake, on_cut)
            scrollback = Scrollback(head - self._scrollback_from, self._text_between(self._scrollback_from, head))
            if self._closed:
                subscriber.cut = CLOSED
            else:
                self._subscribers.add(subscriber)
        return subscriber, scrollback

    def resume(self, owner: str | None, wake: Callable[[], None], on_cut: Callable[[str], None],
               since: int) -> tuple[Subscriber, Iterator[tuple[int, list[str]]]]:
        """A new subscriber that continues after line ``since`` instead of taking the scrollback.

        Lines the log still holds come through ``read`` as usual (the cursor starts at the
        first of them, or at the head when ``since`` is newer still); older ones come first,
        from the history, as (first seq, lines) runs of consecutive lines.
        """
        with self._lock:
            head = self._head()
            # From memory only what lies well within the lag bound (older lines may be held for a laggard).
            cursor = min(max(since + 1, self._scrollback_from, self._first_within(self._max_lag_bytes // 2)), head)
            subscriber = Subscriber(cursor, owner, wake, on_cut)
            if self._closed:
                subscriber.cut = CLOSED
            else:
                self._subscribers.add(subscriber)
        if since + 1 >= cursor or self.history is None:
            return subscriber, iter(())
        return subscriber, replay(self.history.view(), since + 1, cursor, MAX_BATCH_BYTES)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (its writer is done); idempotent."""
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.discard(subscriber)
                self._trim()

    def read(self, subscriber: Subscriber) -> Batch | None:
        """The next batch after the subscriber's cursor (moving the cursor past it), or None."""
        with self._lock:
            if subscriber.cut or subscriber not in self._subscribers:
                return None
            start = subscriber.cursor
            batch = self._batches.get(start)
            if batch is None:
                i = self._index(start)
                if i >= len(self._ends):
                    return None
                j = max(i + 1, bisect_right(self._ends, self._offset_of(start) + MAX_BATCH_BYTES, i))
                batch = Batch(start, start + j - i, self._text_between(start, start + j - i))
                self._batches[start] = batch
            subscriber.cursor = batch.end  # lines it no longer needs go at the next append's trim
            return batch

    def scrollback(self) -> list[str]:
        """The current scrollback lines (oldest first)."""
        with self._lock:
            text = self._text_between(self._scrollback_from, self._head())
        return split_lines(text)

    # -- internals (called with the lock held) ---------------------------------------

    def _index(self, seq: int) -> int:
        return self._base + (seq - self._first)

    def _head(self) -> int:
        """The sequence number the next line will get."""
        return self._first + len(self._ends) - self._base

    def _text_between(self, start: int, end: int) -> list:
        """The text of lines ``start`` to ``end`` (sequence numbers, end excluded), as pieces for ``text_of`` or ``split_lines``."""
        if start >= end:
            return []
        return self._text.between(self._offset_of(start), self._ends[self._index(end) - 1])

    def _offset_of(self, seq: int) -> int:
        """Byte offset at which line ``seq`` starts."""
        i = self._index(seq)
        return self._ends[i - 1] if i > self._base else self._start_offset

    def _advance_scrollback(self) -> None:
        """Move the scrollback start so it holds at most N lines and at most B bytes."""
        head = self._head()
        start = max(self._scrollback_from, head - self._scrollback_lines)
        self._scrollback_from = max(start, self._first_within(self._scrollback_bytes))

    def _first_within(self, budget: int) -> int:
        """The first retained line from which the lines up to the head take at most ``budget`` bytes."""
        if len(self._ends) == self._base:
            return self._first
        threshold = self._ends[-1] - budget  # the first such line starts at or after this
        if threshold <= self._start_offset:
            return self._first
        # ends[i] is where line i+1 starts: the first i whose end reaches the threshold
        return self._first + bisect_left(self._ends, threshold, self._base) + 1 - self._base

    def _remove(self, subscriber: Subscriber, reason: str) -> None:
        subscriber.cut = reason
        self._subscribers.discard(subscriber)

    def _trim(self) -> None:
        """Drop lines nobody needs: before the scrollback and before every subscriber's cursor."""
        keep_from = min([self._scrollback_from] + [s.cursor for s in self._subscribers])
        oldest_reader = min((s.cursor for s in self._subscribers), default=None)
        if self._batches:
            for start in [s for s in self._batches if oldest_reader is None or s < oldest_reader]:
                del self._batches[start]
        drop = keep_from - self._first
        if drop <= 0:
            return
        self._start_offset = self._ends[self._base + drop - 1]
        self._base += drop
        self._first = keep_from
        self._text.forget_before(self._start_offset)
        if self._base > 4096 and self._base * 2 > len(self._ends):
            del self._ends[:self._base]
            self._base = 0
