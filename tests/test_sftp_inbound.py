"""The SFTP channel's inbound buffer (``ChunkedPipe``) behaves as paramiko's ``BufferedPipe`` does, across
chunk boundaries, with timeouts, close and the readiness event."""

from __future__ import annotations

import threading
import time

import pytest
from paramiko import SSHException
from paramiko.buffered_pipe import BufferedPipe, PipeTimeout

from octyne_flask.sftp.inbound import ChunkedPipe, InboundWindow


def chunked_pipe():
    return ChunkedPipe(InboundWindow(1 << 20))


BOTH = pytest.mark.parametrize("pipe_class", [BufferedPipe, chunked_pipe], ids=["paramiko", "chunked"])


@BOTH
def test_reads_take_the_bytes_in_order_whatever_the_chunks(pipe_class):
    pipe = pipe_class()
    for chunk in (b"\x00\x00\x00\x05hel", b"lo", b"", b"\x00\x00\x00\x03abc!"):
        pipe.feed(chunk)
    assert len(pipe) == 17 and pipe.read_ready()
    assert [pipe.read(4), pipe.read(5), pipe.read(4), pipe.read(2), pipe.read(100)] == \
        [b"\x00\x00\x00\x05", b"hello", b"\x00\x00\x00\x03", b"ab", b"c!"]
    assert len(pipe) == 0 and not pipe.read_ready()
    with pytest.raises(PipeTimeout):
        pipe.read(1, timeout=0.0)


def test_a_read_of_a_whole_chunk_hands_over_the_chunk_itself():
    pipe = chunked_pipe()
    chunk = b"x" * 65536
    pipe.feed(chunk)
    assert pipe.read(65536) is chunk


@BOTH
def test_a_read_waits_for_data_fed_by_another_thread_and_times_out_without_it(pipe_class):
    pipe = pipe_class()
    threading.Timer(0.1, pipe.feed, args=(b"late",)).start()
    assert pipe.read(10, timeout=5) == b"late"
    started = time.monotonic()
    with pytest.raises(PipeTimeout):
        pipe.read(10, timeout=0.2)
    assert time.monotonic() - started >= 0.2


@BOTH
def test_close_wakes_a_waiting_reader_and_what_was_fed_is_still_read_first(pipe_class):
    pipe = pipe_class()
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read(10)))
    reader.start()
    time.sleep(0.1)
    pipe.close()
    reader.join(5)
    assert got == [b""]
    pipe = pipe_class()
    pipe.feed(b"left")
    pipe.close()
    assert pipe.read(10) == b"left" and pipe.read(10) == b""


@BOTH
def test_the_event_is_set_while_data_waits_and_cleared_once_it_is_read(pipe_class):
    pipe, event = pipe_class(), threading.Event()
    pipe.set_event(event)
    assert not event.is_set()
    pipe.feed(b"abc")
    assert event.is_set()
    pipe.read(2)
    assert event.is_set()
    pipe.read(2)
    assert not event.is_set()
    pipe.feed(b"more")
    assert pipe.empty() == b"more" and not event.is_set()


def test_replacing_a_pipe_keeps_what_it_held():
    old = BufferedPipe()
    old.feed(b"early")
    new = ChunkedPipe.replacing(old, InboundWindow(100))
    assert new.read(100) == b"early" and len(old) == 0


def test_feeding_beyond_the_limit_is_refused_and_what_was_read_makes_room_again():
    pipe = ChunkedPipe(InboundWindow(10))
    pipe.feed(b"12345678")
    with pytest.raises(SSHException, match="more than its window"):
        pipe.feed(b"abc")
    assert pipe.read(4) == b"1234"
    pipe.feed(b"abcdef")
    assert pipe.read(100) == b"5678abcdef"


def test_the_pipes_of_one_window_hold_no_more_than_it_together():
    """A channel's data and stderr count against one SSH window."""
    window = InboundWindow(10)
    data, stderr = ChunkedPipe(window), ChunkedPipe(window)
    stderr.feed(b"123456")
    with pytest.raises(SSHException, match="more than its window"):
        data.feed(b"abcde")
    data.feed(b"abcd")
    assert stderr.empty() == b"123456"
    data.feed(b"efghij")
    assert data.read(100) == b"abcdefghij"
