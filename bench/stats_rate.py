"""GET /server/{id} request rate at 16 concurrent clients, against a variant that spawns ``ps`` per call.

Method: the managed app is a Python process with one child (a small tree).
16 client threads with keep-alive connections send ``GET /server/app`` for
5 s each against (a) the daemon, which reads /proc through psutil, and (b) a
variant served by the same gunicorn (one gthread worker, 16 threads) that
answers the same JSON by running ``ps`` for the app's tree on every call, as
Octyne does. Printed as JSON (requests per second).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from console_common import PY, start_daemon, workspace, write_app

CLIENTS = 16
SECONDS = 5
APP = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
print("ready", flush=True)
time.sleep(3600)
"""


def variant_app(environ, start_response):
    """The spawn-per-call variant: what ``ps`` says about the app's process tree."""
    pid = os.environ["BENCH_PID"]
    rows = subprocess.run(["ps", "-o", "pcpu=,rss=", "--pid", pid, "--ppid", pid],
                          capture_output=True, text=True).stdout.split("\n")
    cpu = rss = 0.0
    for row in filter(None, rows):
        fields = row.split()
        cpu, rss = cpu + float(fields[0]), rss + float(fields[1]) * 1024
    body = json.dumps({"status": 1, "uptime": 1, "cpuUsage": cpu, "memoryUsage": int(rss),
                       "totalMemory": 1, "toDelete": False}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def hammer(port: int, path: str, headers: dict) -> float:
    """Requests per second from CLIENTS keep-alive clients over SECONDS."""
    counts = [0] * CLIENTS
    deadline = time.monotonic() + SECONDS

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while time.monotonic() < deadline:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            assert response.status == 200 and b"memoryUsage" in response.read()
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / SECONDS


def app_pid(daemon) -> int:
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if (process.info["cmdline"] or [])[-1:] == ["app.py"]:
            return process.pid
    raise RuntimeError("app not found")


def main() -> None:
    directory = workspace("stats")
    daemon = start_daemon(directory, {"app": write_app(directory, "app.py", APP)}, threads=32)
    report = {"clients": CLIENTS}
    try:
        daemon.post("/server/app", data="START")
        time.sleep(1)
        port = daemon.port + 1 if daemon.port < 65000 else daemon.port - 1
        variant = subprocess.Popen(
            [PY, "-m", "gunicorn", "-k", "gthread", "--threads", str(CLIENTS), "-w", "1", "-b", f"127.0.0.1:{port}",
             "--chdir", str(Path(__file__).resolve().parent), "stats_rate:variant_app"],
            env={**os.environ, "BENCH_PID": str(app_pid(daemon))}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        try:
            report["psutil_daemon_req_per_s"] = round(hammer(daemon.port, "/server/app", {"Authorization": daemon.token}))
            report["spawn_per_call_req_per_s"] = round(hammer(port, "/server/app", {}))
        finally:
            variant.terminate()
            variant.wait()
        report["ratio"] = round(report["psutil_daemon_req_per_s"] / report["spawn_per_call_req_per_s"], 2)
    finally:
        daemon.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
