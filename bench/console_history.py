"""Console history: what keeping every line on disk costs a flood, how fast search scans, what a resume costs.

Method, all in one run so the machine's background load hits both sides alike:

* Flood: two daemons, history on and history off, each with the flood app of
  ``console_throughput.py`` (100 000 lines of 80 bytes, as fast as it can).
  For 1, 10 and 50 clients, floods alternate between the two daemons (five
  each); the best and the median per-client lines/s of each side are
  compared, and the worker's CPU time per flood (the cost, which the
  machine's load distorts least). Every client hashes its whole stream:
  nothing may be lost, repeated or reordered.
* Search: the history-on daemon's app prints 64 MiB of log-like lines; the
  history is then scanned for a substring that is not there (every byte
  read), in this process (one core, ``find_lines`` on the daemon's files) and
  through ``GET …/console/history?q=`` (one request, the daemon's one core).
* Resume: 200 sequential console-v2 connections with the full 2500-line
  scrollback, then 200 with ``?since=`` ten lines back; the daemon worker's
  CPU time (psutil) and the bytes received per connection.
Printed as JSON. Arguments pick parts: ``flood``, ``search``, ``resume`` (default: all).
"""

from __future__ import annotations

import json
import os
import sys
import time

from console_common import RawConsole, percentile, start_daemon, worker_of, workspace, write_app
from console_throughput import FLOOD, LINES, connect, flood

from octyne_flask.history.search import HistoryRequest, find_lines
from octyne_flask.history.store import Limits, ServerHistory

SEARCH_BYTES = 64 * 1024 * 1024
BIG = f"""
import sys
out = sys.stdout
line = 0
written = 0
while written < {SEARCH_BYTES}:
    chunk = "".join(f"2026-11-27 03:00:00 [Server thread/INFO]: entry {{i}} player joined, world saved, ok\\n"
                    for i in range(line, line + 10000))
    out.write(chunk)
    written += len(chunk)
    line += 10000
out.flush()
"""
BEAT = """
import time
for i in range(2600):
    print(f"{i:08d} " + "x" * 70)
print("ready", flush=True)
time.sleep(3600)
"""
RESUMES = 200


def daemon_pair(base):
    """Two daemons on the same apps, history on and off."""
    pair = {}
    for name, enabled in (("on", True), ("off", False)):
        directory = base / name
        directory.mkdir()
        servers = {"flood": write_app(directory, "flood.py", FLOOD), "big": write_app(directory, "big.py", BIG),
                   "beat": write_app(directory, "beat.py", BEAT)}
        config = {"console": {"idleTimeout": 3600,  # the clients never ping between floods
                              "history": {"enabled": enabled, "path": str(directory / "history"),
                                          "maxBytes": 128 * 1024 * 1024}}}
        pair[name] = (start_daemon(directory, servers, **config), directory)
    return pair


def worker_cpu(daemon) -> float:
    """CPU seconds used so far by the daemon's worker (the process that holds the apps and the history)."""
    times = worker_of(daemon).cpu_times()
    return times.user + times.system


def floods(pair, rounds: int) -> dict:
    report = {}
    for count in (1, 10, 50):
        consoles = {name: connect(daemon, count) for name, (daemon, _) in pair.items()}
        runs = {"on": [], "off": []}
        for _ in range(rounds):
            for name in ("off", "on"):
                daemon, directory = pair[name]
                cpu = worker_cpu(daemon)
                run = flood(daemon, directory, consoles[name])
                runs[name].append({**run, "worker_cpu_s": worker_cpu(daemon) - cpu})
        row = {"intact_all_runs": all(run["intact"] for results in runs.values() for run in results)}
        for name, results in runs.items():
            rates = sorted(run["per_client_lines_per_s"] for run in results)
            row[f"history_{name}_best_lines_per_s"] = rates[-1]
            row[f"history_{name}_median_lines_per_s"] = percentile(rates, 0.5)
            row[f"history_{name}_median_worker_cpu_s"] = round(percentile([run["worker_cpu_s"] for run in results], 0.5), 3)
        row["ratio_best"] = round(row["history_on_best_lines_per_s"] / row["history_off_best_lines_per_s"], 3)
        row["ratio_median"] = round(row["history_on_median_lines_per_s"] / row["history_off_median_lines_per_s"], 3)
        report[f"clients_{count}"] = row
        for group in consoles.values():
            for console in group:
                console.close()
    return report


def wait_for_last_line(daemon, server: str, text: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        lines = daemon.get(f"/server/{server}/console/history", params={"limit": 1}).json()["lines"]
        if lines and lines[0]["text"] == text:
            return
        time.sleep(0.2)
    raise TimeoutError(text)


def search(daemon, directory) -> dict:
    daemon.post("/server/big", data="START")
    wait_for_last_line(daemon, "big", "[Octyne] Server big has stopped.")
    newest = lambda: max((directory / "history" / "big" / "console").glob("*.log"))  # noqa: E731
    while not newest().read_bytes().endswith(b"[Octyne] Server big has stopped.\n"):
        time.sleep(0.2)  # the writer is still at it (the last line is visible while still queued)
    http_times = []
    for _ in range(3):
        started = time.perf_counter()
        answer = daemon.get("/server/big/console/history", params={"q": "no such words", "limit": 1}).json()
        http_times.append(time.perf_counter() - started)
        assert answer == {"lines": [], "more": False}
    # The same scan in this process, on a second opening of the files (the daemon holds its lock).
    copy = directory / "history-copy"
    os.system(f"cp -r {directory / 'history' / 'big'} {copy}")
    os.unlink(copy / "lock")
    size = sum(path.stat().st_size for path in (copy / "console").glob("*.log"))
    store = ServerHistory("big", str(copy), Limits(1 << 30, 10**15), keep_files=True, memory_bytes=0,
                          wake=lambda store: None)
    local_times, cpu_times = [], []
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        assert find_lines(store, HistoryRequest(q="no such words", limit=1)) == ([], False)
        local_times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu)
    regex_started = time.perf_counter()
    found = find_lines(store, HistoryRequest(q=r"entry \d+7 player", regex=True, limit=500))[0]
    regex_time = time.perf_counter() - regex_started
    assert len(found) == 500
    mb = size / 1e6
    return {"history_mb": round(mb, 1), "lines": store.view().segments[-1].next_seq - 1,
            "substring_local_s": round(min(local_times), 3), "substring_local_mb_per_s": round(mb / min(local_times)),
            "substring_local_cpu_s": round(min(cpu_times), 3), "substring_mb_per_cpu_s": round(mb / min(cpu_times)),
            "substring_http_s": round(min(http_times), 3), "substring_http_mb_per_s": round(mb / min(http_times)),
            "regex_newest_500_matches_s": round(regex_time, 3)}


def writer_cost(base) -> dict:
    """CPU time of numbering, queueing and writing 100 000 flood lines (3200-line reads), in this process."""
    store = ServerHistory("cost", str(base / "cost"), Limits(1 << 30, 10**15), keep_files=True, memory_bytes=0,
                          wake=lambda store: None)
    reads = [[f"{i:08d} " + "x" * 70 for i in range(start, start + 3200)] for start in range(0, LINES, 3200)]
    cpu = time.process_time()
    seq = store.next_seq
    for n, lines in enumerate(reads):
        store.record_lines(seq, lines, 80 * len(lines))
        seq += len(lines)
        if n % 3 == 2:
            store.write_pending()
    store.write_pending()
    store.sync()
    return {"cpu_s_per_100k_lines": round(time.process_time() - cpu, 4)}


def resume_cost(daemon) -> dict:
    daemon.post("/server/beat", data="START")
    wait_for_last_line(daemon, "beat", "ready")
    worker = worker_of(daemon)
    head = daemon.get("/server/beat/console/history", params={"limit": 1}).json()["lines"][0]["seq"]
    report = {}
    for name, since in (("fresh_with_scrollback", None), ("resume_since_10_back", head - 10)):
        cpu = sum(worker.cpu_times()[:2])
        started = time.perf_counter()
        received = 0
        for _ in range(RESUMES):
            console = RawConsole(daemon.port, "beat", daemon.token, since=since)
            console.frame()  # settings
            received += len(console.frame()[1])  # the scrollback, or the lines after since
            console.close()
        report[name] = {"worker_cpu_ms_per_connection": round((sum(worker.cpu_times()[:2]) - cpu) * 1000 / RESUMES, 2),
                        "bytes_per_connection": received // RESUMES,
                        "wall_ms_per_connection": round((time.perf_counter() - started) * 1000 / RESUMES, 2)}
    return report


def main() -> None:
    base = workspace("console-history")
    pair = daemon_pair(base)
    report = {"lines_per_flood": LINES, "line_bytes": 80, "load_average_at_start": os.getloadavg()}
    parts = sys.argv[1:] or ["flood", "search", "resume"]
    try:
        if "flood" in parts:
            report["flood"] = floods(pair, rounds=5)
        if "search" in parts:
            report["search"] = search(*pair["on"])
        if "flood" in parts:
            report["writer_cost"] = writer_cost(base)
        if "resume" in parts:
            report["resume"] = resume_cost(pair["on"][0])
        report["load_average_at_end"] = os.getloadavg()
    finally:
        for daemon, _ in pair.values():
            daemon.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
