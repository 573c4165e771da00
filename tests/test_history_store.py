"""Console history in isolation: the record format, segments and their recovery, the store's queue and numbering, queries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from octyne_flask.history import ConsoleHistory, folder_name
from octyne_flask.history.query import Substring, page, replay
from octyne_flask.history.records import encode_lines, line_at, records, valid_length
from octyne_flask.history.search import HistoryRequest, find_lines, recent_inputs
from octyne_flask.history.store import QUEUE_BYTES, RESERVE_AHEAD, Limits, ServerHistory
from octyne_flask.supervisor.console import ConsoleLog

MIB = 1024 * 1024
FOREVER = Limits(64 * MIB, 10**15)


def open_store(folder, limits=FOREVER, keep_files=True, woken=None) -> ServerHistory:
    return ServerHistory("demo", str(folder), limits, keep_files=keep_files, memory_bytes=MIB,
                         wake=(woken.append if woken is not None else lambda store: None))


def feed(store: ServerHistory, count: int, per_batch: int = 100, text: str = "line {}") -> None:
    """Number ``count`` lines the way the console log does, writing now and then."""
    seq = store.next_seq
    for start in range(0, count, per_batch):
        lines = [text.format(seq + i) for i in range(min(per_batch, count - start))]
        store.record_lines(seq, lines, sum(len(line) + 1 for line in lines))
        seq += len(lines)
        if start % (per_batch * 7) == 0:
            store.write_pending()
    store.write_pending()


def everything(store: ServerHistory) -> list[tuple[int, str]]:
    view = store.view()
    return [(line.seq, line.text) for line in page(view, 1, view.next_seq, 10**9, False)[0]]


def segment_files(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder / "console") if name.endswith(".log"))


def test_a_record_maps_any_position_back_to_its_line():
    block = encode_lines(7, 1000, ["alpha", "beta", "gamma"]) + encode_lines(10, 2000, ["delta"])
    assert [(h.seq, h.count, h.time) for h in records(block)] == [(7, 3, 1000), (10, 1, 2000)]
    header, index, start, end = line_at(block, block.index(b"mm"))
    assert (header.seq + index, block[start:end]) == (9, b"gamma")
    assert line_at(block, 3) is None  # inside a header
    assert valid_length(block + block[:10]) == len(block)  # a torn record is not counted


def test_lines_survive_a_reopen_and_numbering_continues(tmp_path):
    store = open_store(tmp_path)
    feed(store, 1000)
    store.close()
    reopened = open_store(tmp_path)
    assert reopened.next_seq == 1001  # a clean stop saves the exact next number
    assert everything(reopened) == [(i, f"line {i}") for i in range(1, 1001)]


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from octyne_flask.history.store import Limits, ServerHistory
store = ServerHistory("demo", {folder!r}, Limits(1 << 26, 10**15), keep_files=True, memory_bytes=1 << 20,
                      wake=lambda store: None)
store.record_lines(1, [f"line {{i}}" for i in range(1, 11)], 80)
store.write_pending()
store.record_lines(11, ["lost in the kill"], 17)  # queued, never written
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_after_a_kill_numbers_skip_past_the_reservation_and_are_never_reused(tmp_path):
    from tests.harness import REPO

    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER.format(repo=str(REPO), folder=str(tmp_path))])
    assert killed.returncode == -signal.SIGKILL
    reopened = open_store(tmp_path)
    assert reopened.next_seq == RESERVE_AHEAD + 2  # beyond anything the dead process could have numbered
    assert everything(reopened)[-1] == (10, "line 10")


def test_a_torn_last_record_is_cut_off_at_recovery(tmp_path):
    store = open_store(tmp_path)
    feed(store, 500)
    store.close()
    path = tmp_path / "console" / segment_files(tmp_path)[-1]
    intact = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(encode_lines(501, 1, ["half of a record"])[:-5])  # a kill -9 in the middle of a write
    reopened = open_store(tmp_path)
    assert path.stat().st_size == intact
    assert everything(reopened)[-1] == (500, "line 500")
    feed(reopened, 1)
    assert everything(reopened)[-1] == (501, "line 501")


def test_a_lost_index_is_rebuilt(tmp_path):
    store = open_store(tmp_path)
    feed(store, 5000)
    store.close()
    for name in os.listdir(tmp_path / "console"):
        if name.endswith(".index"):
            os.unlink(tmp_path / "console" / name)
    reopened = open_store(tmp_path)
    view = reopened.view()
    assert len(view.segments[0].segment.offsets) > 1
    assert [line.seq for line in page(view, 1, 3001, 3, True)[0]] == [2998, 2999, 3000]


def test_retention_keeps_max_bytes_plus_one_segment(tmp_path):
    limits = Limits(MIB, 10**15)
    store = open_store(tmp_path, limits)
    feed(store, 150_000, per_batch=500, text="line {} " + "x" * 60)  # about 10 MiB
    on_disk = sum(os.path.getsize(tmp_path / "console" / name) for name in segment_files(tmp_path))
    assert on_disk <= MIB + limits.segment_bytes()
    kept = everything(store)
    assert kept[-1][0] == 150_000 and kept[0][0] > 1
    assert [seq for seq, _ in kept] == list(range(kept[0][0], 150_001))


def test_lines_are_dropped_not_queued_without_bound_when_the_writer_falls_behind(tmp_path):
    woken = []
    store = open_store(tmp_path, woken=woken)
    line = "y" * 1023
    batch = [line] * 1024  # 1 MiB
    seq = 1
    for _ in range(QUEUE_BYTES // MIB + 4):  # the writer never runs meanwhile: a disk that stalls
        store.record_lines(seq, batch, MIB)
        seq += len(batch)
    assert woken == [store]  # one wake-up for the whole burst
    assert store.dropped == 4 * 1024
    store.write_pending()
    store.record_lines(seq, ["after the stall"], 16)
    store.write_pending()
    view = store.view()
    lines, _ = page(view, seq - 4 * 1024 - 1, view.next_seq, 10, False)
    assert [(line.seq, line.missed) for line in lines] == [(seq - 4097, 0), (seq - 4096, 4096), (seq, 0)]
    assert "left out of the history" in lines[1].text


def test_pages_go_backwards_and_forwards_with_more(tmp_path):
    store = open_store(tmp_path)
    feed(store, 2000)

    def ask(**bounds):
        lines, more = find_lines(store, HistoryRequest(**bounds))
        return [line.seq for line in lines], more

    assert ask(limit=3) == ([1998, 1999, 2000], True)
    assert ask(before=4, limit=3) == ([1, 2, 3], False)
    assert ask(after=1997, limit=3) == ([1998, 1999, 2000], False)
    assert ask(after=10, limit=2) == ([11, 12], True)
    assert ask(after=10, before=14, limit=10) == ([11, 12, 13], False)
    assert ask(q="LINE 19", limit=1000)[0] == [19] + list(range(190, 200)) + list(range(1900, 2000))
    assert ask(q="line 1\\d{3}$", regex=True, limit=2) == ([1998, 1999], True)


def test_time_bounds_select_the_lines_received_between(tmp_path):
    store = open_store(tmp_path)
    store.record_lines(1, ["early"], 6)
    time.sleep(0.05)
    middle = time.time_ns() // 1_000_000
    store.record_lines(2, ["middle"], 7)
    store.write_pending()
    time.sleep(0.05)
    store.record_lines(3, ["late"], 5)  # still queued: queries see it too
    late = store.view().pending[-1].time
    texts = [line.text for line in find_lines(store, HistoryRequest(time_from=middle, time_to=late - 1))[0]]
    assert texts == ["middle"]
    assert [line.text for line in find_lines(store, HistoryRequest(time_from=middle))[0]] == ["middle", "late"]


def test_replay_yields_runs_across_disk_and_queue(tmp_path):
    store = open_store(tmp_path)
    feed(store, 1000)
    store.record_lines(1001, ["queued"], 7)
    runs = list(replay(store.view(), 990, 1002, 1 << 20))
    assert runs == [(990, [f"line {i}" for i in range(990, 1001)] + ["queued"])]


def test_history_off_keeps_recent_lines_in_memory_and_only_the_number_on_disk(tmp_path):
    store = open_store(tmp_path, keep_files=False)
    feed(store, 100_000, per_batch=1000, text="line {} " + "z" * 40)
    assert not (tmp_path / "console").exists()
    kept = everything(store)
    assert kept[-1][0] == 100_000 and kept[0][0] > 80_000  # about 1 MiB of the newest
    store.close()
    assert json.loads((tmp_path / "seq").read_text()) == {"next": 100_001, "clean": True}


def test_inputs_are_kept_newest_first_and_filtered_by_user(tmp_path):
    store = open_store(tmp_path)
    for i in range(10):
        store.record_input("alice" if i % 2 else "bob", f"say {i}")
    store.write_pending()
    store.close()
    reopened = open_store(tmp_path)
    assert [entry["input"] for entry in recent_inputs(reopened, 3)] == ["say 9", "say 8", "say 7"]
    assert [entry["input"] for entry in recent_inputs(reopened, 2, "bob")] == ["say 8", "say 6"]


def test_the_console_log_numbers_lines_from_the_history_and_resumes_from_it(tmp_path):
    store = open_store(tmp_path)
    feed(store, 5000)
    log = ConsoleLog(10, MIB, 16 * MIB, history=store)
    log.append(["new 1", "new 2"])
    assert store.next_seq == 5003
    subscriber, older = log.resume(None, lambda: None, lambda reason: None, since=4990)
    assert [(seq, len(lines)) for seq, lines in older] == [(4991, 10)]  # from the history
    batch = log.read(subscriber)
    assert (batch.start, batch.lines) == (5001, ["new 1", "new 2"])  # from memory


@pytest.mark.parametrize("name, folder", [("survival", "survival"), ("..", "%2E%2E"), ("a/b", "a%2Fb"), ("", "%")])
def test_server_folders_stay_inside_the_history_folder(name, folder):
    assert folder_name(name) == folder


def test_the_sweep_removes_aged_files_of_servers_no_longer_configured(tmp_path):
    from tests.harness import daemon_config
    from octyne_flask.config import config_from_document

    config = config_from_document(daemon_config(tmp_path, console={"history": {"path": str(tmp_path / "h")}}))
    history = ConsoleHistory(config)
    gone = open_store(tmp_path / "h" / "gone")
    feed(gone, 10)
    gone.close()
    old = time.time() - 40 * 24 * 3600
    for name in os.listdir(tmp_path / "h" / "gone" / "console"):
        os.utime(tmp_path / "h" / "gone" / "console" / name, (old, old))
    history._sweep()
    history.close()
    assert segment_files(tmp_path / "h" / "gone") == []
    assert (tmp_path / "h" / "gone" / "seq").exists()  # its numbering is kept


def test_a_substring_never_matches_inside_a_record_header(tmp_path):
    store = open_store(tmp_path)
    feed(store, 50, text="plain {}")
    view = store.view()
    assert page(view, 1, view.next_seq, 100, True, Substring(" 1 "))[0] == []  # "\xffL1 1 ..." is a header


def test_a_resume_takes_from_memory_only_what_is_well_within_the_lag_bound(tmp_path):
    store = open_store(tmp_path)
    log = ConsoleLog(10, MIB, MIB, history=store)
    log.subscribe(None, lambda: None, lambda reason: None)  # a laggard: the log keeps every line for it
    log.append(["x" * 1023] * 900)  # 900 KiB: within the laggard's 1 MiB, and kept in memory
    store.write_pending()
    resumed, older = log.resume(None, lambda: None, lambda reason: None, since=0)
    runs = list(older)
    # Starting at line 1 in memory would put it 900 KiB behind at once, next to being cut off.
    assert resumed.cursor == 891  # the scrollback: the rest comes from the history
    assert runs[0][0] == 1 and runs[-1][0] + len(runs[-1][1]) == resumed.cursor


def test_a_newline_inside_a_daemon_line_cannot_break_the_numbering(tmp_path):
    store = open_store(tmp_path)
    store.record_lines(1, ["[Octyne] Started server odd\nname"], 32)  # a server name may hold a newline
    store.record_lines(2, ["next"], 5)
    store.write_pending()
    assert everything(store) == [(1, "[Octyne] Started server odd name"), (2, "next")]
