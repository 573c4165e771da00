"""Block-parallel DEFLATE: independent 1 MiB blocks compressed on every core, written in order.

zlib releases the GIL, so two blocks really compress at once. Each block is
primed with the previous block's last 32 KiB (the whole DEFLATE window) and
ends with a sync flush, so the concatenated blocks form one ordinary DEFLATE
stream (the pigz technique) that any inflater reads.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

BLOCK = 1 << 20
WINDOW = 32 * 1024
SAMPLE = 16 * 1024
# A block whose sample saves less than this is stored: deflating random data costs time and gains nothing.
WORTH_COMPRESSING = 0.95


def worker_pool() -> ThreadPoolExecutor:
    """One compression thread per core."""
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="deflate")


def compressible(sample: bytes) -> bool:
    """Whether a quick level-1 pass over a sample of the data shrinks it enough to bother."""
    sample = sample[:SAMPLE]
    return not sample or len(zlib.compress(sample, 1)) < WORTH_COMPRESSING * len(sample)


def deflate_block(data: bytes, window: bytes, final: bool, level: int) -> bytes:
    """Raw DEFLATE of one block, continuing a stream whose previous 32 KiB were ``window``.

    Runs on a worker thread; a block that does not compress is emitted as stored DEFLATE blocks (level 0).
    """
    if not compressible(data):
        level = 0
    if window:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, window)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


class OrderedPipeline:
    """Jobs run on the pool; their results reach the writer in the order they were queued.

    At most ``depth`` results wait at once, which bounds memory to a few blocks.
    """

    def __init__(self, pool: ThreadPoolExecutor, depth: int = 4 * (os.cpu_count() or 2)):
        self._pool = pool
        self._depth = depth
        self._queue: deque = deque()

    def then(self, write, job: Future | None = None) -> None:
        """Queue ``write`` (called with the job's result, or None) behind everything queued before."""
        self._queue.append((job, write))
        while len(self._queue) > self._depth:
            self._step()

    def submit(self, write, function, *arguments) -> None:
        """Run ``function`` on the pool and hand its result to ``write`` in order."""
        self.then(write, self._pool.submit(function, *arguments))

    def drain(self) -> None:
        """Write everything still queued."""
        while self._queue:
            self._step()

    def cancel(self) -> None:
        """Drop queued work after a failure."""
        for job, _ in self._queue:
            if job is not None:
                job.cancel()
        self._queue.clear()

    def _step(self) -> None:
        job, write = self._queue.popleft()
        write(job.result() if job is not None else None)


def deflate_small(data: bytes, level: int) -> tuple[bool, bytes]:
    """A whole small file: ``(True, deflated)``, or ``(False, data)`` when deflating does not make it smaller."""
    deflated = deflate_block(data, b"", True, level)
    return (True, deflated) if len(deflated) < len(data) else (False, data)


class DeflateStream:
    """Feeds a byte stream through the pipeline as consecutive DEFLATE blocks (``write``, then ``finish``)."""

    def __init__(self, pipeline: OrderedPipeline, level: int, emit):
        self._pipeline = pipeline
        self._level = level
        self._emit = emit
        self._pending = bytearray()
        self._window = b""
        self.crc = 0
        self.size = 0

    @property
    def position(self) -> int:
        """Bytes written into the stream so far (compressed or still pending)."""
        return self.size + len(self._pending)

    def write(self, data) -> None:
        if not self._pending and len(data) == BLOCK:  # whole blocks from a file: no copying
            self._block(bytes(data), final=False)
            return
        self._pending += data
        while len(self._pending) >= BLOCK:
            block = bytes(self._pending[:BLOCK])
            del self._pending[:BLOCK]
            self._block(block, final=False)

    def finish(self) -> None:
        self._block(bytes(self._pending), final=True)
        self._pending = bytearray()

    def _block(self, block: bytes, final: bool) -> None:
        self.crc = zlib.crc32(block, self.crc)
        self.size += len(block)
        self._pipeline.submit(self._emit, deflate_block, block, self._window, final, self._level)
        self._window = block[-WINDOW:] if len(block) >= WINDOW else (self._window + block)[-WINDOW:]
