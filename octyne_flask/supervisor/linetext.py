"""The text of a console log's retained lines, kept as UTF-8 bytes rather than one ``str`` per line.

A short ``str`` costs 49 bytes of object header beside its text, and the list
holding it 8 more: 20 scrollbacks of 80-byte lines took 6.9 MiB for 4.1 MiB of
text. Here the lines are one byte stream, each followed by a newline, addressed
by absolute byte offsets (the console log keeps where each line ends). The
stream is cut into blocks of about ``BLOCK_BYTES``, so that the oldest text can
be let go a block at a time without moving the rest.

Once an app goes quiet, its blocks are compressed (zstd; console logs shrink
four to sixty times): a quiet server's scrollback is what stays in memory for
hours. While output flows, they are compressed only every 10 s, as blocks rarely
outlive a flood (``supervisor/compaction.py`` does it, off the output reader).
Readers decompress off the log's lock (``between`` only picks the pieces).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

import zstandard

BLOCK_BYTES = 64 * 1024
MIN_PACK_BYTES = 4 * 1024  # a quiet tail smaller than this stays as it is (it would hardly shrink)
PACK_LEVEL = 3


def joined(pieces: list) -> bytes:
    """The text ``LineText.between`` picked out, decompressing what is compressed (call it off the lock)."""
    return b"".join(memoryview(zstandard.decompress(block) if packed else block)[start:end]
                    for packed, block, start, end in pieces)


def pack(block: bytes) -> bytes:
    # Copied: python-zstandard's result keeps the allocation of its worst case (the input's size).
    return bytes(memoryview(zstandard.compress(block, PACK_LEVEL)))


class LineText:
    """Append-only UTF-8 text of consecutive lines; read by byte range, forgotten from the front.

    Not thread-safe: the console log calls it under its lock.
    """

    def __init__(self, origin: int = 0):
        """``origin``: the absolute byte offset at which the first appended byte sits."""
        self._starts: deque[int] = deque()  # absolute offset of each sealed block's first byte
        self._blocks: deque[bytes] = deque()
        self._packed = 0  # the oldest this many blocks are compressed (compression goes oldest first)
        self._tail = bytearray()
        self._tail_start = origin

    def append(self, data: bytes) -> None:
        self._tail += data
        if len(self._tail) >= BLOCK_BYTES:
            self._seal()

    def between(self, start: int, end: int) -> list:
        """The pieces of the text between two absolute offsets (both within what is retained), for ``joined``.

        Only references are taken here, under the caller's lock: decompressing a 2 MiB
        scrollback there held the log for milliseconds per connecting client, and the
        app's output waited meanwhile. Sealed blocks never change (compaction swaps in
        a new object), so the pieces stay valid once the lock is let go.
        """
        pieces: list = []
        for i in range(max(bisect_right(self._starts, start) - 1, 0), len(self._starts)):
            block_start = self._starts[i]
            if block_start >= end:
                break
            pieces.append((i < self._packed, self._blocks[i], max(start - block_start, 0), end - block_start))
        if end > self._tail_start:  # the tail grows in place: copied
            pieces.append((False, self._tail[max(start - self._tail_start, 0):end - self._tail_start], 0, None))
        return pieces

    def forget_before(self, offset: int) -> None:
        """Let go of every sealed block that ends at or before ``offset``."""
        while self._starts and (self._starts[1] if len(self._starts) > 1 else self._tail_start) <= offset:
            self._starts.popleft()
            self._blocks.popleft()
            self._packed = max(self._packed - 1, 0)

    def unpacked(self) -> list[tuple[int, bytes]]:
        """The blocks not compressed yet, oldest first, as (start, text); a tail worth it is sealed first."""
        if len(self._tail) >= MIN_PACK_BYTES:
            self._seal()
        return [(self._starts[i], self._blocks[i]) for i in range(self._packed, len(self._blocks))]

    def packed(self, start: int, block: bytes) -> None:
        """Swap in the compressed form of the oldest uncompressed block, if it still starts at ``start``."""
        if self._packed < len(self._starts) and self._starts[self._packed] == start:
            self._blocks[self._packed] = block
            self._packed += 1

    def _seal(self) -> None:
        self._starts.append(self._tail_start)
        self._blocks.append(bytes(self._tail))
        self._tail_start += len(self._tail)
        self._tail = bytearray()
