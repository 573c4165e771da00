"""Console throughput: 100 000 lines of 80 bytes to 1, 10 and 50 console-v2 clients, and with a stalled client.

Method: a managed app prints the lines as fast as it can (it records its own
print time in elapsed.txt). Clients connect first; the clock runs from
``POST START`` until every client has received the app's last line. Each
client hashes everything it received, which must equal the hash of the
expected stream (nothing lost, duplicated or reordered). Baseline in the same
run: the same app piped into a plain Python line counter. Printed as JSON.

``--before /path/to/other/checkout`` compares two trees instead: floods to 1 and
10 clients, the two trees' daemons taking turns for ``--rounds`` rounds (so both
see the same machine load), each round the best of three floods per tree.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import json
import subprocess
import threading
import time

from pathlib import Path

from console_common import RawConsole, start_daemon, workspace, write_app

LINES = 100_000
FLOOD = f"""
import sys, time
started = time.perf_counter()
write = sys.stdout.write
for start in range(0, {LINES}, 1000):
    write("".join(f"{{i:08d}} " + "x" * 70 + "\\n" for i in range(start, start + 1000)))
sys.stdout.flush()
open("elapsed.txt", "w").write(str(time.perf_counter() - started))
"""
COUNTER = "import sys\nn = 0\nfor _ in sys.stdin.buffer: n += 1\nprint(n)"


def expected_digest() -> str:
    lines = ["[Octyne] Started server flood"] + [f"{i:08d} " + "x" * 70 for i in range(LINES)]
    lines.append("[Octyne] Server flood has stopped.")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def baseline(directory, command: str) -> float:
    """Lines per second of the app piped into a line counter."""
    started = time.perf_counter()
    app = subprocess.Popen(command.split(), cwd=directory, stdout=subprocess.PIPE)
    counted = subprocess.run([command.split()[0], "-c", COUNTER], stdin=app.stdout, capture_output=True, text=True)
    app.wait()
    assert int(counted.stdout) == LINES
    return LINES / (time.perf_counter() - started)


def read_flood(console: RawConsole, results: dict, key) -> None:
    digest = hashlib.sha256()
    first = True
    while True:
        data = console.output()
        if not first:
            digest.update(b"\n")
        digest.update(data)
        first = False
        if data.endswith(b"has stopped."):
            break
    results[key] = (time.perf_counter(), digest.hexdigest())


def flood(daemon, directory, consoles: list[RawConsole]) -> dict:
    """One flood to ``consoles``: per-client lines/s of the slowest client, app print time, integrity."""
    results: dict = {}
    threads = [threading.Thread(target=read_flood, args=(c, results, i)) for i, c in enumerate(consoles)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    daemon.post("/server/flood", data="START")
    for thread in threads:
        thread.join(300)
    finished = max(at for at, _ in results.values())
    return {
        "per_client_lines_per_s": round(LINES / (finished - started)),
        "app_print_s": round(float((directory / "elapsed.txt").read_text()), 4),
        "intact": all(digest == expected_digest() for _, digest in results.values()) and len(results) == len(consoles),
    }


def connect(daemon, count: int, **kwargs) -> list[RawConsole]:
    consoles = [RawConsole(daemon.port, "flood", daemon.token, **kwargs) for _ in range(count)]
    for console in consoles:
        console.frame(), console.frame()  # settings, scrollback
    return consoles


def best_flood(tree: Path, count: int) -> float:
    """Per-client lines/s of the best of three floods to ``count`` clients, on a daemon running ``tree``."""
    directory = workspace("console-throughput")
    daemon = start_daemon(directory, {"flood": write_app(directory, "flood.py", FLOOD)}, tree=tree)
    try:
        consoles = connect(daemon, count)
        runs = [flood(daemon, directory, consoles) for _ in range(3)]
        assert all(run["intact"] for run in runs), "a client missed or reordered lines"
        return max(run["per_client_lines_per_s"] for run in runs)
    finally:
        daemon.stop()


def compare(before: Path, rounds: int) -> None:
    after = Path(__file__).resolve().parent.parent
    results = {count: {"before": [], "after": []} for count in (1, 10)}
    for _ in range(rounds):
        for count in (1, 10):
            results[count]["before"].append(best_flood(before, count))
            results[count]["after"].append(best_flood(after, count))
    print(json.dumps({f"clients_{count}": {**runs, "median_ratio_after_to_before": round(
        statistics.median(a / b for a, b in zip(runs["after"], runs["before"])), 3)}
        for count, runs in results.items()}, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to compare with (e.g. main)")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if options.before:
        compare(options.before.resolve(), options.rounds)
        return
    directory = workspace("console-throughput")
    command = write_app(directory, "flood.py", FLOOD)
    daemon = start_daemon(directory, {"flood": command})
    report = {"lines": LINES, "line_bytes": 80}
    try:
        report["baseline_lines_per_s"] = round(max(baseline(directory, command) for _ in range(3)))
        for count in (1, 10, 50):
            consoles = connect(daemon, count)
            runs = [flood(daemon, directory, consoles) for _ in range(3)]
            best = max(runs, key=lambda run: run["per_client_lines_per_s"])
            report[f"clients_{count}"] = {**best, "intact_all_runs": all(run["intact"] for run in runs),
                                          "ratio_to_baseline": round(best["per_client_lines_per_s"] / report["baseline_lines_per_s"], 4)}
            for console in consoles:
                console.close()
        # Stalled client: 10 readers; floods without and with a client that never reads, interleaved so
        # that the machine's background load hits both alike; then one stalled client through 3 floods
        # (24 MB, more than the 16 MiB it may lag) to see it cut off.
        readers = connect(daemon, 10)
        without, with_stalled = [], []
        for _ in range(5):
            without.append(flood(daemon, directory, readers))
            stalled = connect(daemon, 1, receive_buffer=4096)[0]
            with_stalled.append(flood(daemon, directory, readers))
            stalled.close()
        stalled = connect(daemon, 1, receive_buffer=4096)[0]
        with_stalled += [flood(daemon, directory, readers) for _ in range(3)]
        stalled.sock.settimeout(10)
        try:
            while stalled.sock.recv(1 << 20):
                pass
            cut_off = True
        except TimeoutError:
            cut_off = False

        def median(runs, key):
            return sorted(run[key] for run in runs)[len(runs) // 2]

        report["stalled"] = {
            "per_client_lines_per_s_without": median(without, "per_client_lines_per_s"),
            "per_client_lines_per_s_with": median(with_stalled, "per_client_lines_per_s"),
            "app_print_s_without": median(without, "app_print_s"),
            "app_print_s_with": median(with_stalled, "app_print_s"),
            "app_print_s_runs_without": [run["app_print_s"] for run in without],
            "app_print_s_runs_with": [run["app_print_s"] for run in with_stalled],
            "readers_intact": all(run["intact"] for run in without + with_stalled),
            "stalled_client_cut_off": cut_off,
            "daemon_alive": daemon.get("/servers").status_code == 200,
        }
    finally:
        daemon.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
