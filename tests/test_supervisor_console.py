"""The console log and line splitting, in isolation: scrollback bounds, cursors, cut-offs, shared batches."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

from octyne_flask.supervisor.console import CLOSED, LAGGED, MAX_BATCH_BYTES, ConsoleLog
from octyne_flask.supervisor import output
from octyne_flask.supervisor.output import LineSplitter, pump

MIB = 1024 * 1024


class Reader:
    """A subscriber that records wake-ups and cut-offs."""

    def __init__(self, log: ConsoleLog, owner: str | None = None):
        self.log = log
        self.wakes = 0
        self.cuts: list[str] = []
        self.sub, scrollback = log.subscribe(owner, self._wake, self.cuts.append)
        self.scrollback = scrollback.lines()

    def _wake(self):
        self.wakes += 1

    def drain(self) -> list[str]:
        lines = []
        while (batch := self.log.read(self.sub)) is not None:
            lines.extend(batch.lines)
        return lines


def test_scrollback_keeps_the_last_lines_within_the_line_bound():
    log = ConsoleLog(scrollback_lines=2500, scrollback_bytes=2 * MIB, max_lag_bytes=16 * MIB)
    log.append([f"line {i}" for i in range(3000)])
    scrollback = log.scrollback()
    assert len(scrollback) == 2500
    assert scrollback[0] == "line 500" and scrollback[-1] == "line 2999"


def test_scrollback_is_bounded_in_bytes_too():
    log = ConsoleLog(scrollback_lines=2500, scrollback_bytes=MIB, max_lag_bytes=16 * MIB)
    log.append(["x" * 1023] * 2000)  # 1 KiB per line with its newline
    assert len(log.scrollback()) == 1024


def test_a_new_subscriber_gets_the_scrollback_then_only_new_lines():
    log = ConsoleLog(10, MIB, 16 * MIB)
    log.append(["old 1", "old 2"])
    reader = Reader(log)
    assert reader.scrollback == ["old 1", "old 2"]
    assert reader.drain() == []
    log.append(["new"])
    assert reader.wakes == 1
    assert reader.drain() == ["new"]


def test_a_subscriber_that_keeps_up_loses_nothing_even_beyond_the_scrollback():
    log = ConsoleLog(scrollback_lines=100, scrollback_bytes=MIB, max_lag_bytes=16 * MIB)
    reader = Reader(log)
    received = []
    for chunk in range(50):
        log.append([f"{chunk}-{i}" for i in range(1000)])
        received.extend(reader.drain())
    assert received == [f"{c}-{i}" for c in range(50) for i in range(1000)]
    assert reader.cuts == []


def test_a_lagging_subscriber_is_cut_off_and_the_others_are_not():
    log = ConsoleLog(scrollback_lines=100, scrollback_bytes=MIB, max_lag_bytes=MIB)
    stalled, keeping_up = Reader(log), Reader(log)
    got = []
    for _ in range(40):
        log.append(["y" * 99] * 1000)  # 100 KB per append
        got.extend(keeping_up.drain())
    assert stalled.cuts == [LAGGED] and stalled.sub.cut == LAGGED
    assert log.read(stalled.sub) is None
    assert keeping_up.cuts == [] and len(got) == 40_000


def test_memory_stays_bounded_by_the_scrollback_once_nobody_lags():
    log = ConsoleLog(scrollback_lines=100, scrollback_bytes=MIB, max_lag_bytes=MIB)
    Reader(log)  # stalls, gets cut
    tracemalloc.start()
    try:
        for _ in range(30):
            log.append(["z" * 99] * 1000)  # 3 MB in all
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(log.scrollback()) == 100
    assert held < 256 * 1024  # the 10 KB scrollback, and at most a block or two of text around it


def test_batches_are_cut_once_per_position_and_encoded_once():
    log = ConsoleLog(10, MIB, 16 * MIB)
    first, second = Reader(log), Reader(log)
    log.append(["a", "b"])
    batch = log.read(first.sub)
    log.append(["c"])  # arrives after the first reader cut its batch
    assert log.read(second.sub) is batch  # same lines, same object
    calls = []

    def encode(lines, seq):
        calls.append(lines)
        return f"{seq}:" + "\n".join(lines)

    assert batch.encoded(encode) == "1:a\nb" and batch.encoded(encode) == "1:a\nb"  # numbered from 1
    assert len(calls) == 1
    assert first.drain() == ["c"] and second.drain() == ["c"]


def test_a_batch_is_bounded_in_bytes():
    log = ConsoleLog(10, MIB, 16 * MIB)
    reader = Reader(log)
    log.append(["w" * 999] * 2000)
    batch = log.read(reader.sub)
    assert sum(len(line) + 1 for line in batch.lines) <= MAX_BATCH_BYTES
    assert len(reader.drain()) + len(batch.lines) == 2000


def test_closing_an_owner_cuts_only_that_owners_subscribers():
    log = ConsoleLog(10, MIB, 16 * MIB)
    alice, bob = Reader(log, "alice"), Reader(log, "bob")
    log.close_where(lambda subscriber: subscriber.owner == "alice")
    assert alice.cuts == [CLOSED] and bob.cuts == []
    log.append(["still here"])
    assert bob.drain() == ["still here"]


def test_closing_the_log_cuts_everyone_and_later_subscribers_at_once():
    log = ConsoleLog(10, MIB, 16 * MIB)
    reader = Reader(log)
    log.close()
    assert reader.cuts == [CLOSED]
    late = Reader(log)
    assert late.sub.cut == CLOSED


def test_unsubscribing_releases_lines_kept_for_that_subscriber():
    log = ConsoleLog(scrollback_lines=10, scrollback_bytes=MIB, max_lag_bytes=16 * MIB)
    reader = Reader(log)
    log.append([str(i) for i in range(1000)])
    assert len(log._ends) - log._base == 1000
    log.unsubscribe(reader.sub)
    assert len(log._ends) - log._base == 10


def test_lines_are_split_on_newlines_with_carriage_returns_dropped():
    splitter = LineSplitter()
    assert splitter.feed(b"one\r\ntwo\nthr") == ["one", "two"]
    assert splitter.feed(b"ee\n") == ["three"]
    assert splitter.feed(b"tail without newline") == []
    assert splitter.finish() == ["tail without newline"]


def test_utf8_split_across_reads_decodes_and_invalid_bytes_become_replacement_characters():
    splitter = LineSplitter()
    encoded = "héllo\n".encode()
    assert splitter.feed(encoded[:2]) == []
    assert splitter.feed(encoded[2:]) == ["héllo"]
    assert splitter.feed(b"bad \xff\xfe bytes\n") == ["bad \ufffd\ufffd bytes"]


def test_a_line_longer_than_the_limit_is_split_not_dropped():
    splitter = LineSplitter()
    lines = []
    for _ in range(48):  # 3 MiB in 64 KiB reads
        lines += splitter.feed(b"q" * 65536)
    lines += splitter.feed(b"\n")
    assert [len(line) for line in lines] == [MIB, MIB, MIB]


def test_new_bounds_apply_at_once_and_a_larger_scrollback_regains_retained_lines():
    log = ConsoleLog(scrollback_lines=10, scrollback_bytes=MIB, max_lag_bytes=16 * MIB)
    reader = Reader(log)  # keeps every line retained until it reads them
    log.append([str(i) for i in range(100)])
    assert log.scrollback() == [str(i) for i in range(90, 100)]
    log.configure(50, MIB, 16 * MIB)
    assert log.scrollback() == [str(i) for i in range(50, 100)]
    log.configure(5, MIB, 16 * MIB)
    assert log.scrollback() == [str(i) for i in range(95, 100)]
    assert len(reader.drain()) == 100


def test_a_quiet_apps_reader_holds_no_output_buffer_while_it_waits():
    """``os.read`` allocates its whole buffer before it blocks: the reader waits for output first, and lets go
    of the last chunk, so an app that printed and went quiet costs no READ_SIZE block (20 apps: 9 MiB)."""
    read_end, write_end = os.pipe()
    delivered = threading.Event()
    tracemalloc.start()
    try:
        reader = threading.Thread(target=pump, args=(read_end, lambda lines: lines and delivered.set()))
        reader.start()
        os.write(write_end, b"x" * 100_000 + b"\n")
        assert delivered.wait(10)
        time.sleep(0.2)  # the reader is back to waiting
        large = [trace for trace in tracemalloc.take_snapshot().traces
                 if trace.size >= 64 * 1024 and trace.traceback[0].filename.endswith("output.py")]
    finally:
        tracemalloc.stop()
        os.close(write_end)
    reader.join(10)
    assert large == []


def test_lines_read_back_whole_across_text_blocks_and_with_any_characters():
    log = ConsoleLog(scrollback_lines=5000, scrollback_bytes=16 * MIB, max_lag_bytes=16 * MIB)
    reader = Reader(log)
    lines = [f"{i} é漢字🙂 " + "y" * (i % 300) for i in range(4000)] + ["", "", "last"]
    for start in range(0, len(lines), 7):  # many appends, so lines straddle the text's blocks
        log.append(lines[start:start + 7])
    assert reader.drain() == lines
    assert log.scrollback() == lines


def test_a_line_holding_a_newline_is_kept_as_two_lines():
    log = ConsoleLog(10, MIB, 16 * MIB)
    log.append(["one\ntwo", "three"])
    assert log.scrollback() == ["one", "two", "three"]


def test_compacting_compresses_the_kept_text_and_every_read_sees_the_same_lines():
    log = ConsoleLog(scrollback_lines=3000, scrollback_bytes=16 * MIB, max_lag_bytes=16 * MIB)
    early, late = Reader(log), Reader(log)
    lines = [f"{i:05d} [Server thread/INFO]: Saving chunks for level 'world' é" for i in range(3000)]
    tracemalloc.start()  # before the text is kept, so that its blocks are traced
    try:
        for start in range(0, 2000, 100):
            log.append(lines[start:start + 100])
        assert len(late.drain()) == 2000  # late has read these; early has not
        before = tracemalloc.get_traced_memory()[0]
        log.compact()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert before - after > 100 * 1024  # 130 KB of text, about a tenth of it left
    for start in range(2000, 3000, 100):  # appends go on after a compaction, and it can run again
        log.append(lines[start:start + 100])
    log.compact()
    assert log.scrollback() == lines
    assert early.drain() == lines and late.drain() == lines[2000:]
    assert Reader(log).scrollback == lines


def test_forgetting_old_lines_works_across_compressed_and_plain_blocks():
    log = ConsoleLog(scrollback_lines=50, scrollback_bytes=16 * MIB, max_lag_bytes=16 * MIB)
    for round_ in range(30):
        log.append([f"{round_}-{i} " + "z" * 200 for i in range(400)])  # 80 KB each: a block or more
        if round_ % 3 == 0:
            log.compact()
    assert log.scrollback() == [f"29-{i} " + "z" * 200 for i in range(350, 400)]
    assert len(log._text._blocks) <= 3  # the rest was let go


def test_the_reader_reports_a_pause_in_output_once_and_the_end_once():
    read_end, write_end = os.pipe()
    pauses = []
    reader = threading.Thread(target=pump, args=(read_end, lambda lines: None, lambda: pauses.append(time.monotonic())))
    reader.start()
    time.sleep(1.3)
    assert pauses == []  # no output yet: nothing to report
    for _ in range(6):  # output every 0.2 s: no pause
        os.write(write_end, b"line\n")
        time.sleep(0.2)
    assert pauses == []
    time.sleep(1.5)
    assert len(pauses) == 1  # a second after the last line
    time.sleep(1.2)
    assert len(pauses) == 1  # and only once
    os.close(write_end)
    reader.join(10)
    assert len(pauses) == 2  # the end


def test_the_reader_also_asks_for_compaction_while_output_never_pauses(monkeypatch):
    monkeypatch.setattr(output, "COMPACT_EVERY_S", 0.5)
    read_end, write_end = os.pipe()
    calls = []
    reader = threading.Thread(target=pump, args=(read_end, lambda lines: None, lambda: calls.append(time.monotonic())))
    reader.start()
    started = time.monotonic()
    while time.monotonic() - started < 2.2:  # a line every 0.1 s: never quiet for a second
        os.write(write_end, b"line\n")
        time.sleep(0.1)
    assert 3 <= len(calls) <= 5
    os.close(write_end)
    reader.join(10)
