"""The console log's compressed text: read by clients while the app's output goes on, and what compaction reports."""

from __future__ import annotations

import os
import threading

import pytest
import zstandard

from octyne_flask.supervisor.console import ConsoleLog
from octyne_flask.supervisor.output import pump

MIB = 1024 * 1024
LINES = [f"{i:05d} [Server thread/INFO]: Saving chunks for level 'world' é🙂" for i in range(20000)]


def compacted_log() -> tuple[ConsoleLog, object]:
    """A log holding LINES, compressed, with a subscriber that has read none of them yet."""
    log = ConsoleLog(scrollback_lines=len(LINES), scrollback_bytes=16 * MIB, max_lag_bytes=16 * MIB)
    laggard, _ = log.subscribe(None, lambda: None, lambda reason: None)
    log.append(LINES)
    log.compact()
    return log, laggard


def scrollback_on_connect(log, laggard):
    return log.subscribe(None, lambda: None, lambda reason: None)[1].lines()


def scrollback_of_the_api(log, laggard):
    return log.scrollback()


def laggards_batch(log, laggard):
    return log.read(laggard).lines


@pytest.mark.parametrize("read", [scrollback_on_connect, scrollback_of_the_api, laggards_batch])
def test_a_client_decompressing_kept_text_does_not_hold_up_the_apps_output(monkeypatch, read):
    log, laggard = compacted_log()
    decompressing, go_on = threading.Event(), threading.Event()
    decompress = zstandard.decompress

    def slow_decompress(data, *args, **kwargs):  # the real one, held up until the append has been tried
        decompressing.set()
        go_on.wait(10)
        return decompress(data, *args, **kwargs)

    monkeypatch.setattr(zstandard, "decompress", slow_decompress)
    got = []
    client = threading.Thread(target=lambda: got.extend(read(log, laggard)))
    client.start()
    assert decompressing.wait(5)
    output = threading.Thread(target=log.append, args=(["the app goes on"],))
    output.start()
    output.join(2)
    appended_meanwhile = not output.is_alive()
    go_on.set()
    client.join(10)
    output.join(10)
    assert appended_meanwhile
    assert got == LINES[:len(got)] and len(got) > 1000  # what the client read is whole and in order


def test_compacting_says_whether_there_was_anything_to_compress():
    """The output reader hands memory back to the system only then: ``malloc_trim`` walks the whole heap
    (milliseconds in a large worker), and an app printing a line a second pauses every second."""
    log = ConsoleLog(scrollback_lines=1000, scrollback_bytes=16 * MIB, max_lag_bytes=16 * MIB)
    log.append(["tick 1"])
    assert log.compact() is False  # a short tail stays as it is
    log.append(LINES[:500])
    assert log.compact() is True
    assert log.compact() is False  # already compressed
    assert log.scrollback() == ["tick 1"] + LINES[:500]


def test_the_output_readers_lines_go_in_as_split_and_read_back_whole():
    """The reader appends through ``append_output``, which does not look for newlines again (``LineSplitter``
    split on them; looking took longer than the rest of the append), while ``append`` still splits."""
    log = ConsoleLog(scrollback_lines=100_000, scrollback_bytes=64 * MIB, max_lag_bytes=64 * MIB)
    read_end, write_end = os.pipe()
    reader = threading.Thread(target=pump, args=(read_end, log.append_output, log.compact))
    reader.start()
    lines = [f"{i} é\r漢字🙂" + "x" * (i % 500) + "\r" for i in range(30000)]  # only the trailing \r is dropped
    with os.fdopen(write_end, "wb") as app:
        app.write("\n".join(lines).encode() + b"\n\xff\xfe bad")
    reader.join(10)
    log.append(["[Octyne] Server a", "b has stopped."])
    log.append(["[Octyne] Server a\nb has stopped."])
    log.append([])
    log.append_output([])
    expected = [line[:-1] for line in lines] + ["\ufffd\ufffd bad"]
    assert log.scrollback() == expected + ["[Octyne] Server a", "b has stopped."] * 2
