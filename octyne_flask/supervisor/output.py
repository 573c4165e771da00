"""Turning a child's raw output bytes into console lines.

Output is read in large chunks (never per byte), decoded as UTF-8 with
replacement characters (a sequence split across two reads still decodes
right), split on newlines with a trailing carriage return dropped (as Octyne's
line scanner does), and a line longer than ``MAX_LINE`` characters is split
into pieces rather than dropped or held forever.
"""

from __future__ import annotations

import codecs
import os
import select
import time
from typing import Callable

MAX_LINE = 1024 * 1024
READ_SIZE = 256 * 1024
QUIET_MS = 1000  # output stopped this long: the app has gone quiet
COMPACT_EVERY_S = 10.0


class LineSplitter:
    """Feed bytes in, get complete lines out; ``finish()`` flushes a last unterminated line."""

    def __init__(self, max_line: int = MAX_LINE):
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._max_line = max_line

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by this chunk of output."""
        text = self._pending + self._decoder.decode(data)
        lines = text.split("\n")
        self._pending = lines.pop()
        lines = self._shape(lines, "\r" in text)
        while len(self._pending) > self._max_line:
            lines.append(self._pending[:self._max_line])
            self._pending = self._pending[self._max_line:]
        return lines

    def finish(self) -> list[str]:
        """Whatever is left once the output has ended."""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return self._shape([text], "\r" in text) if text else []

    def _shape(self, lines: list[str], has_cr: bool) -> list[str]:
        if has_cr:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        if lines and max(map(len, lines)) > self._max_line:
            lines = [piece for line in lines for piece in self._pieces(line)]
        return lines

    def _pieces(self, line: str) -> list[str]:
        if len(line) <= self._max_line:
            return [line]
        return [line[i:i + self._max_line] for i in range(0, len(line), self._max_line)]


def pump(fd: int, deliver: Callable[[list[str]], None], compact: Callable[[], None] = lambda: None) -> None:
    """Read ``fd`` to end of file, handing each chunk's complete lines to ``deliver``; closes ``fd``.

    ``compact()`` (asking for the console's text to be compressed: it must return at once, or the
    app's writes block) is called once output has paused for ``QUIET_MS``, every ``COMPACT_EVERY_S``
    while it keeps flowing (an app that never pauses for a second), and at the end.

    It waits for output before reading, and lets go of each chunk before it waits again:
    ``os.read`` allocates its whole buffer before it blocks, so a quiet app's reader held
    ``READ_SIZE`` bytes, and the last chunk beside them, for as long as the app was quiet
    (20 quiet apps: 9 MiB).
    """
    splitter = LineSplitter()
    output = select.poll()
    output.register(fd, select.POLLIN)
    quiet = True  # nothing read since the last compaction
    compacted = 0.0
    try:
        while True:
            ready = output.poll(None if quiet else QUIET_MS)
            if not quiet and (not ready or time.monotonic() - compacted >= COMPACT_EVERY_S):
                compact()
                compacted = time.monotonic()
                quiet = not ready
                continue
            try:
                data = os.read(fd, READ_SIZE)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            if quiet:
                quiet, compacted = False, time.monotonic()
            flooding = len(data) == READ_SIZE
            deliver(splitter.feed(data))
            del data
            if flooding:
                time.sleep(0)  # hand the GIL to the other consoles between chunks
        deliver(splitter.finish())
        compact()
    finally:
        os.close(fd)
