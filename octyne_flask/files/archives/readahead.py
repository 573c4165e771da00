"""A reader that reads ahead in a thread of its own, so producing the bytes overlaps consuming them.

Unpacking a tar.zst is two jobs in turn on one thread: zstd decompression (C,
which releases the GIL) and writing the members (system calls). Reading the
decompressed stream a few blocks ahead on another thread puts them on two
cores, as ``zstd -d | tar x`` does with two processes. Memory stays bounded:
at most ``depth`` blocks wait between the two.
"""

from __future__ import annotations

import io
import queue
import threading


class ReadAhead(io.RawIOBase):
    """``source.read(block)`` run ahead by a thread; ``read`` answers from what it has read. Close it (or leave
    its ``with`` block) to stop the thread; an error of the source is raised to the reader where it happened."""

    def __init__(self, source, block: int, depth: int = 4):
        super().__init__()
        self._blocks: queue.Queue = queue.Queue(depth)
        self._stopping = threading.Event()
        self._block, self._offset = b"", 0  # the block being read, and how far
        self._finished = False
        self._thread = threading.Thread(target=self._fill, args=(source, block), name="read-ahead", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer at the end of a block; b"" at the end of the source)."""
        if self._offset == len(self._block) and not self._finished:
            item = self._blocks.get()
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._finished = not item
            self._block, self._offset = item, 0
        start = self._offset
        end = len(self._block) if size is None or size < 0 else min(start + size, len(self._block))
        self._offset = end
        return self._block if start == 0 and end == len(self._block) else self._block[start:end]

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[:len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._stopping.set()
            while self._thread.is_alive():  # unblock a producer waiting for room
                try:
                    self._blocks.get_nowait()
                except queue.Empty:
                    self._thread.join(0.01)
        super().close()

    def _fill(self, source, block: int) -> None:
        try:
            while not self._stopping.is_set():
                chunk = source.read(block)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as error:  # handed to the reader, which raises it
            self._put(error)

    def _put(self, item) -> None:
        while not self._stopping.is_set():
            try:
                self._blocks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
