"""Daemon memory with 20 servers whose scrollback is full, optionally two source trees side by side.

Method: 20 managed apps each print 2500 lines and then idle, so every
console holds its full 2500-line scrollback. Two sizes: 80-byte lines
(typical logs) and 830-byte lines (2500 lines reach the 2 MiB byte bound).
Measured: the daemon's own processes (gunicorn master, the worker that holds
the consoles, the group-keeper helper, anything else it runs that is not an
app), never the apps. Per process RSS, anonymous memory and PSS (from
``/proc/<pid>/smaps_rollup``); for the whole daemon the sum of RSS (what
issue #17 compares with Octyne's single process) and the sum of PSS (the
worker is forked from the master, so their RSS counts shared pages twice).
Printed as JSON, in MiB.

``--before /path/to/other/checkout`` runs that tree too, alternating with
this one (before, after, before, after ... for ``--rounds``), so both see the
same machine load; ``--widths`` picks the line sizes (default: 80-byte only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import psutil

from console_common import RawConsole, start_daemon, workspace, write_app

SERVERS = 20
APP_FILE = "app.py"
APP = """
import sys, time
sys.stdout.write("".join(f"{{i:05d}} " + "m" * {width} + "\\n" for i in range(2500)))
sys.stdout.flush()
time.sleep(3600)
"""
THIS_TREE = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` as bytes per field (Rss, Pss, Anonymous, ...)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0]) * 1024
    return fields


def is_app(process: psutil.Process) -> bool:
    return APP_FILE in process.cmdline()


def daemon_processes(daemon) -> dict[str, psutil.Process]:
    """Every process of the daemon's tree except the apps (and whatever the apps started), by role."""
    master = psutil.Process(daemon.proc.pid)
    found = {"master": master}
    apps = [p for p in master.children(recursive=True) if is_app(p)]
    app_tree = {p.pid for app in apps for p in [app, *app.children(recursive=True)]}
    for process in master.children(recursive=True):
        if process.pid in app_tree:
            continue
        command = process.cmdline()
        if command[:2] == master.cmdline()[:2]:
            role = "worker"
        elif any(part.endswith("keeper.sh") for part in command):
            role = "keeper"
        else:
            role = f"other-{process.pid}"
        found[role] = process
    return found


def daemon_memory(daemon) -> dict:
    report = {"total_rss": 0, "total_pss": 0}
    for role, process in daemon_processes(daemon).items():
        rollup = smaps_rollup(process.pid)
        report[role] = {"rss": rollup["Rss"], "anonymous": rollup["Anonymous"], "pss": rollup["Pss"]}
        report["total_rss"] += rollup["Rss"]
        report["total_pss"] += rollup["Pss"]
    return in_mib(report)


def in_mib(value):
    if isinstance(value, dict):
        return {key: in_mib(item) for key, item in value.items()}
    return round(value / MIB, 1)


def wait_for_full_scrollbacks(daemon) -> None:
    for i in range(SERVERS):
        while True:
            console = RawConsole(daemon.port, f"s{i}", daemon.token)
            console.frame()
            scrollback = console.frame()[1]
            console.close()
            if b"02499 " in scrollback:
                break
            time.sleep(0.1)


def measure(tree: Path, width: int) -> dict:
    directory = workspace("memory")
    command = write_app(directory, APP_FILE, APP.format(width=width))
    daemon = start_daemon(directory, {f"s{i}": command for i in range(SERVERS)}, tree=tree)
    try:
        idle = daemon_memory(daemon)
        for i in range(SERVERS):
            daemon.post(f"/server/s{i}", data="START")
        wait_for_full_scrollbacks(daemon)
        time.sleep(1)
        return {"tree": str(tree), "line_bytes": width + 7, "before_apps": idle, "full_scrollback": daemon_memory(daemon)}
    finally:
        daemon.stop()


def summary(runs: list[dict]) -> dict:
    """Median total RSS / PSS with full scrollbacks, per tree and line size."""
    grouped: dict[tuple, list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["tree"], run["line_bytes"]), []).append(run["full_scrollback"])
    return {f"{tree} ({line_bytes}-byte lines)": {
        "median_total_rss": statistics.median(r["total_rss"] for r in readings),
        "median_total_pss": statistics.median(r["total_pss"] for r in readings),
    } for (tree, line_bytes), readings in grouped.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to measure in the same run (e.g. main)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--widths", type=int, nargs="+", default=[73], help="characters after the line number")
    options = parser.parse_args()
    trees = [options.before.resolve(), THIS_TREE] if options.before else [THIS_TREE]
    runs = [measure(tree, width) for _ in range(options.rounds) for width in options.widths for tree in trees]
    print(json.dumps({"servers": SERVERS, "summary": summary(runs), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
