"""ReadAhead: the thread that decompresses a tar.zst ahead of the unpacking hands over every byte in order,
raises the source's error where the reader meets it, and stops when closed early."""

from __future__ import annotations

import io
import os
import random

import pytest

from octyne_flask.files.archives.readahead import ReadAhead


@pytest.mark.parametrize("block", [1, 7, 4096, 1 << 20, 10_000_000])
def test_every_byte_arrives_in_order_whatever_the_read_sizes(block):
    data = os.urandom(min(3_000_000, block * 5000))  # up to 5000 blocks: a 1-byte block is slow by nature
    chooser = random.Random(block)
    received = bytearray()
    with ReadAhead(io.BytesIO(data), block) as reader:
        while chunk := reader.read(chooser.choice([1, 100, 65536, -1])):
            received += chunk
        assert reader.read(10) == b""
    assert bytes(received) == data


def test_an_error_of_the_source_is_raised_after_the_bytes_read_before_it():
    class Corrupt:
        reads = 0

        def read(self, size):
            self.reads += 1
            if self.reads == 3:
                raise ValueError("corrupt block")
            return b"x" * size

    with ReadAhead(Corrupt(), 10) as reader:
        assert reader.read(10) + reader.read(10) == b"x" * 20
        with pytest.raises(ValueError, match="corrupt block"):
            reader.read(10)


def test_closing_early_stops_a_producer_that_would_never_end():
    class Endless:
        def read(self, size):
            return b"y" * size

    reader = ReadAhead(Endless(), 1 << 20)
    assert reader.read(5) == b"yyyyy"
    reader.close()
    assert not reader._thread.is_alive()
