"""200 open consoles on one server: every one connects and receives output; GET /servers stays fast.

Method: a managed app prints a line every 100 ms. 200 console-v2 clients
connect (each holds a request thread in the daemon); each must receive a line
printed after all of them connected. Meanwhile one client times 300
sequential ``GET /servers`` (keep-alive). The same 300 requests are timed with
no console open as the baseline. Printed as JSON (milliseconds).
"""

from __future__ import annotations

import json
import threading
import time

import requests

from console_common import RawConsole, percentile, start_daemon, workspace, write_app

CONSOLES = 200
BEAT = """
import time
beat = 0
while True:
    beat += 1
    print(f"beat {beat}", flush=True)
    time.sleep(0.1)
"""


def servers_latency(daemon) -> dict:
    session = requests.Session()
    session.headers["Authorization"] = daemon.token
    timings = []
    for _ in range(300):
        started = time.perf_counter()
        assert session.get(daemon.url + "/servers").status_code == 200
        timings.append((time.perf_counter() - started) * 1000)
    session.close()
    return {"p50_ms": round(percentile(timings, 0.5), 3), "p99_ms": round(percentile(timings, 0.99), 3)}


def main() -> None:
    directory = workspace("console-many")
    daemon = start_daemon(directory, {"beat": write_app(directory, "beat.py", BEAT)})
    report = {"consoles": CONSOLES}
    try:
        daemon.post("/server/beat", data="START")
        report["servers_without_consoles"] = servers_latency(daemon)
        started = time.perf_counter()
        consoles = [RawConsole(daemon.port, "beat", daemon.token) for _ in range(CONSOLES)]
        for console in consoles:
            console.frame(), console.frame()
        report["connect_all_s"] = round(time.perf_counter() - started, 3)
        received = [False] * CONSOLES

        def wait_for_line(index: int) -> None:
            received[index] = consoles[index].output().startswith(b"beat ")

        threads = [threading.Thread(target=wait_for_line, args=(i,)) for i in range(CONSOLES)]
        for thread in threads:
            thread.start()
        report["servers_with_consoles"] = servers_latency(daemon)
        for thread in threads:
            thread.join(30)
        report["consoles_receiving_output"] = sum(received)
        for console in consoles:
            console.close()
    finally:
        daemon.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
