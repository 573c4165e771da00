"""The buffer between a channel's transport thread and its SFTP thread, as a queue of chunks.

paramiko's ``BufferedPipe`` keeps what the client sent in one ``array`` and takes each read off its
front with ``del buffer[:n]``, which moves everything behind it. An upload keeps up to a window
(2 MiB) buffered, and the SFTP loop reads each request in two steps (its 4-byte length, then the
request), so a busy upload moved about a megabyte for every few bytes it read. Here each fed packet
stays as it came, and a read slices off the front of the first one.

paramiko does not check that a client keeps to the window it was given; these pipes do: a client that
sends more than it may while its requests are not being read is cut off instead of filling memory. A
channel's data and its stderr (extended data) count against the same window, so its two pipes share one
``InboundWindow``.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from paramiko import SSHException
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout


class InboundWindow:
    """The bytes the pipes of one channel may hold together, fed but not yet read."""

    def __init__(self, limit: int):
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> None:
        """Count ``nbytes`` more, or raise ``SSHException`` (which ends the connection) beyond the limit."""
        with self._lock:
            if self._held + nbytes > self.limit:
                raise SSHException(f"the client sent more than its window ({self.limit} bytes) allows")
            self._held += nbytes

    def give_back(self, nbytes: int) -> None:
        with self._lock:
            self._held -= nbytes


class ChunkedPipe(BufferedPipe):
    """``BufferedPipe`` with the same behaviour (blocking reads, timeouts, close, the readiness event), holding
    no more than its ``window`` allows: feeding more raises ``SSHException``, which ends the connection."""

    def __init__(self, window: InboundWindow):
        super().__init__()
        self._window = window
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # how much of the first chunk has been read
        self._size = 0  # bytes buffered

    @classmethod
    def replacing(cls, pipe: BufferedPipe, window: InboundWindow) -> ChunkedPipe:
        """A chunked pipe holding whatever ``pipe`` held (call before anything else feeds or reads it)."""
        chunked = cls(window)
        left = pipe.empty()
        if left:
            chunked.feed(left)
        return chunked

    def set_event(self, event):
        with self._lock:
            self._event = event
            if self._closed or self._size:
                event.set()
            else:
                event.clear()

    def feed(self, data):
        if not data:
            return
        with self._lock:
            self._window.take(len(data))
            if self._event is not None:
                self._event.set()
            self._chunks.append(bytes(data))
            self._size += len(data)
            self._cv.notify_all()

    def read_ready(self):
        with self._lock:
            return self._size > 0

    def read(self, nbytes, timeout=None):
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._size and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise PipeTimeout()
                self._cv.wait(left)
            out = self._take(nbytes)
            if not self._size and self._event is not None and not self._closed:
                self._event.clear()
            return out

    def empty(self):
        with self._lock:
            out = self._take(self._size)
            if self._event is not None and not self._closed:
                self._event.clear()
            return out

    def __len__(self):
        with self._lock:
            return self._size

    def _take(self, nbytes: int) -> bytes:
        """Up to ``nbytes`` from the front (lock held); a whole first chunk is handed over as it is."""
        pieces = []
        wanted = min(nbytes, self._size)
        while wanted:
            first = self._chunks[0]
            end = min(len(first), self._offset + wanted)
            pieces.append(first if self._offset == 0 and end == len(first) else first[self._offset:end])
            wanted -= end - self._offset
            if end == len(first):
                self._chunks.popleft()
                self._offset = 0
            else:
                self._offset = end
        out = pieces[0] if len(pieces) == 1 else b"".join(pieces)  # b"" when there was nothing
        self._size -= len(out)
        self._window.give_back(len(out))
        return out
