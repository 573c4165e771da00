"""Daemon memory with 20 servers whose scrollback is full.

Method: 20 managed apps each print 2500 lines and then idle, so every
console holds its full 2500-line scrollback. Two sizes: 80-byte lines
(typical logs) and 830-byte lines (2500 lines reach the 2 MiB byte bound).
Memory of the daemon's own processes (gunicorn master, the worker that holds
the consoles, and the small group-keeper helper), not the apps: RSS of each,
and the sum of their PSS (the worker is forked from the master, so adding
their RSS would count shared pages twice). Printed as JSON (MB).
"""

from __future__ import annotations

import json
import time

import psutil

from console_common import RawConsole, start_daemon, workspace, write_app

SERVERS = 20
APP = """
import sys, time
sys.stdout.write("".join(f"{{i:05d}} " + "m" * {width} + "\\n" for i in range(2500)))
sys.stdout.flush()
time.sleep(3600)
"""


def daemon_processes(daemon) -> dict:
    master = psutil.Process(daemon.proc.pid)
    found = {"master": master}
    for child in master.children():
        if child.cmdline()[:2] == master.cmdline()[:2]:
            found["worker"] = child
            found.update(("keeper", helper) for helper in child.children() if "-I" in helper.cmdline())
    return found


def daemon_memory(daemon) -> dict:
    """RSS per process, and PSS summed (the worker is forked from the master, so their RSS share pages)."""
    report = {}
    pss = 0
    for name, process in daemon_processes(daemon).items():
        info = process.memory_full_info()
        report[f"{name}_rss"] = round(info.rss / 1e6, 1)
        pss += info.pss
    report["total_pss"] = round(pss / 1e6, 1)
    return report


def measure(width: int) -> dict:
    directory = workspace("memory")
    command = write_app(directory, "app.py", APP.format(width=width))
    daemon = start_daemon(directory, {f"s{i}": command for i in range(SERVERS)})
    try:
        idle = daemon_memory(daemon)
        for i in range(SERVERS):
            daemon.post(f"/server/s{i}", data="START")
        for i in range(SERVERS):  # wait until every scrollback is full
            while True:
                console = RawConsole(daemon.port, f"s{i}", daemon.token)
                console.frame()
                scrollback = console.frame()[1]
                console.close()
                if b"02499 " in scrollback:
                    break
                time.sleep(0.1)
        time.sleep(1)
        return {"line_bytes": width + 7, "before_apps": idle, "full_scrollback": daemon_memory(daemon)}
    finally:
        daemon.stop()


def main() -> None:
    print(json.dumps({"servers": SERVERS, "runs": [measure(73), measure(823)]}, indent=2))


if __name__ == "__main__":
    main()
