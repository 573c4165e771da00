"""Console latency: one line every 10 ms; time from the app's print to a client's receipt.

Method: the app prints its own ``time.time()`` every 10 ms (600 lines); one
console-v2 client records ``time.time()`` on receipt (same machine, same
clock). Measured idle, then while another server floods 10 console clients
with 80-byte lines at up to 200 000 lines/s (a rate the clients can take; an
app that prints faster than its readers read gets them cut off after 16 MiB,
by design). Printed as JSON (milliseconds).
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time

from console_common import RawConsole, percentile, start_daemon, workspace, write_app

TICKS = 600
TICK = f"""
import time
for _ in range({TICKS}):
    print(f"{{time.time():.6f}}", flush=True)
    time.sleep(0.01)
"""
FLOOD_LINES_PER_S = 200_000  # 16 MB/s of 80-byte lines: about 100x what Octyne delivers to one client
FLOOD = f"""
import sys, time
block = ("y" * 79 + "\\n") * {FLOOD_LINES_PER_S // 100}
while True:
    sys.stdout.write(block)
    sys.stdout.flush()
    time.sleep(0.01)
"""


def measure(daemon) -> dict:
    console = RawConsole(daemon.port, "tick", daemon.token)
    console.frame(), console.frame()
    daemon.post("/server/tick", data="START")
    latencies = []
    while len(latencies) < TICKS:
        data = console.output()
        now = time.time()
        for line in data.split(b"\n"):
            if line[:1].isdigit():
                latencies.append((now - float(line)) * 1000)
    console.close()
    return {"p50_ms": round(percentile(latencies, 0.5), 3), "p99_ms": round(percentile(latencies, 0.99), 3),
            "max_ms": round(max(latencies), 3)}


def drain_flood(port: int, token: str, clients: int, seconds: float, result) -> None:
    """In its own process (so the measuring client has its own GIL): read the flood with ``clients`` consoles."""
    consoles = [RawConsole(port, "flood", token) for _ in range(clients)]
    counts = [0] * clients
    cut = [False] * clients
    deadline = time.monotonic() + seconds

    def read(index: int) -> None:
        try:
            while time.monotonic() < deadline:
                counts[index] += consoles[index].output().count(b"\n") + 1
        except (ConnectionError, OSError):
            cut[index] = True

    threads = [threading.Thread(target=read, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.put((sum(counts) / clients / seconds, sum(cut)))


def main() -> None:
    directory = workspace("console-latency")
    daemon = start_daemon(directory, {"tick": write_app(directory, "tick.py", TICK),
                                      "flood": write_app(directory, "flood.py", FLOOD)})
    report = {}
    try:
        report["idle"] = measure(daemon)
        result = multiprocessing.Queue()
        flood = multiprocessing.Process(target=drain_flood, args=(daemon.port, daemon.token, 10, TICKS / 100 + 3, result))
        flood.start()
        time.sleep(1)
        daemon.post("/server/flood", data="START")
        time.sleep(1)
        report["under_flood_to_10_clients"] = measure(daemon)
        rate, cut = result.get(timeout=60)
        flood.join()
        daemon.post("/server/flood", data="KILL")
        report["flood_lines_per_client_per_s"] = round(rate)
        report["flood_clients_cut_off"] = cut
    finally:
        daemon.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
