"""API request rate: ``GET /servers`` and ``GET /server/{id}`` at 16 and 64 keep-alive clients, two trees side by side.

Method: two daemons run at once, one from this tree and one from ``--baseline``
(e.g. ``git worktree add /tmp/orig-request main``), each started as users start
it (``python -m octyne_flask``, embedded gunicorn, one gthread worker) with five
running apps. In each of ``--rounds`` rounds every path and client count is measured for
each tree in turn, ``--seconds`` each after a short warm-up; the best round of
each is kept (the machine is shared: the best round is the one least
disturbed).

The client: ``--processes`` processes (default: one per core), each driving its
share of the connections from one selector loop over raw non-blocking sockets
(a request is a fixed byte string, a response is read up to its
Content-Length). A client thread per connection in Python would saturate long
before the daemon; this one spends a few microseconds per request, and the
report gives its CPU time next to the worker's so that a saturated client
shows. The worker's CPU time per request is given too: on a busy machine the
rate follows the CPU the worker gets, the cost per request much less so.
Printed as JSON.

``--profile OUT.svg`` records a py-spy flame graph of one tree's worker
(``--profile-tree``) under ``GET /servers`` at 16 clients instead of measuring
(any other suffix: py-spy's collapsed stacks, to read as text).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from console_common import percentile, start_daemon, worker_of, workspace, write_app

SERVERS = 5
CLIENT_COUNTS = (16, 64)
PATHS = ("/servers", "/server/app0")
WARM_UP_SECONDS = 0.5
APP = """
import time
print("ready", flush=True)
time.sleep(3600)
"""
CONTENT_LENGTH = b"\r\ncontent-length:"


def response_end(buffer: bytearray) -> int:
    """Where the first complete response in ``buffer`` ends, or -1 while incomplete. Fails on anything but 200."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    head = bytes(buffer[:head_end + 2]).lower()
    if not head.startswith(b"http/1.1 200 "):
        raise RuntimeError(head.decode(errors="replace"))
    start = head.index(CONTENT_LENGTH) + len(CONTENT_LENGTH)
    end = head_end + 4 + int(head[start:head.index(b"\r\n", start)])
    return end if len(buffer) >= end else -1


def drive(port: int, request: bytes, connections: int, seconds: float, results) -> None:
    """One client process: ``connections`` keep-alive sockets, each with one request in flight."""
    selector = selectors.DefaultSelector()
    buffers, sent_at, latencies = {}, {}, []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = bytearray()
    cpu_start = time.process_time()
    deadline = time.perf_counter() + seconds
    for sock in buffers:
        sent_at[sock] = time.perf_counter()
        sock.send(request)
    while (now := time.perf_counter()) < deadline:
        for key, _ in selector.select(deadline - now):
            sock = key.fileobj
            buffer = buffers[sock]
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the daemon")
            buffer += data
            end = response_end(buffer)
            if end < 0:
                continue
            del buffer[:end]
            now = time.perf_counter()
            latencies.append(now - sent_at[sock])
            sent_at[sock] = now
            sock.send(request)
    cpu = time.process_time() - cpu_start
    for sock in buffers:
        sock.close()
    results.put((latencies, cpu))


def hammer(port: int, request: bytes, clients: int, seconds: float, processes: int, worker: psutil.Process) -> dict:
    """Requests per second and latency percentiles of ``clients`` connections over ``seconds``."""
    results = multiprocessing.Queue()
    shares = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    drivers = [multiprocessing.Process(target=drive, args=(port, request, share, seconds, results))
               for share in shares if share]
    worker_cpu = sum(worker.cpu_times()[:2])
    for process in drivers:
        process.start()
    gathered = [results.get(timeout=seconds + 30) for _ in drivers]
    for process in drivers:
        process.join()
    worker_cpu = sum(worker.cpu_times()[:2]) - worker_cpu
    latencies = [latency for part, _ in gathered for latency in part]
    return {"req_per_s": round(len(latencies) / seconds),
            "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
            "client_cpu_per_s": round(sum(cpu for _, cpu in gathered) / seconds, 2),
            "worker_cpu_per_s": round(worker_cpu / seconds, 2),
            "worker_cpu_us_per_request": round(worker_cpu / max(1, len(latencies)) * 1e6)}


class Subject:
    """One tree's daemon with SERVERS running apps, and its request bytes."""

    def __init__(self, name: str, tree: Path | None, directory: Path):
        self.name = name
        directory.mkdir()
        command = write_app(directory, "app.py", APP)
        self.daemon = start_daemon(directory, {f"app{i}": command for i in range(SERVERS)}, tree=tree)
        for i in range(SERVERS):
            self.daemon.post(f"/server/app{i}", data="START")
        self.worker = worker_of(self.daemon)

    def request(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: {self.daemon.token}\r\n\r\n".encode()

    def measure(self, path: str, clients: int, seconds: float, processes: int) -> dict:
        hammer(self.daemon.port, self.request(path), clients, WARM_UP_SECONDS, processes, self.worker)
        return hammer(self.daemon.port, self.request(path), clients, seconds, processes, self.worker)


def compare(subjects: list[Subject], args) -> list[dict]:
    """Every (path, clients) case for every tree, in rounds: within a round the cases and the trees take turns, so
    that what the machine's load does over time falls on all of them alike."""
    cases = [(path, clients) for path in PATHS for clients in CLIENT_COUNTS]
    runs = {case: {subject.name: [] for subject in subjects} for case in cases}
    for _ in range(args.rounds):
        for path, clients in cases:
            for subject in subjects:
                runs[path, clients][subject.name].append(subject.measure(path, clients, args.seconds, args.processes))
    rows = []
    for (path, clients), by_tree in runs.items():
        row = {"path": path, "clients": clients, "rounds": by_tree}
        best = {name: max(results, key=lambda result: result["req_per_s"]) for name, results in by_tree.items()}
        row["best"] = best
        if "baseline" in best:
            row["ratio"] = round(best["new"]["req_per_s"] / best["baseline"]["req_per_s"], 2)
        rows.append(row)
        print(json.dumps({key: row[key] for key in ("path", "clients", "best", "ratio") if key in row}),
              file=sys.stderr, flush=True)
    return rows


def profile(subject: Subject, output: Path, seconds: float, processes: int) -> None:
    """A py-spy flame graph of the worker while 16 clients send ``GET /servers``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    form = "flamegraph" if output.suffix == ".svg" else "raw"  # raw: collapsed stacks, one per line
    spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(subject.worker.pid),
                            "--duration", str(int(seconds)), "--rate", "100", "--gil", "--nonblocking",
                            "--format", form, "--output", str(output)])
    time.sleep(1)  # py-spy attaching
    hammer(subject.daemon.port, subject.request("/servers"), 16, seconds - 1, processes, subject.worker)
    spy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with (e.g. a worktree of main)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    parser.add_argument("--profile", type=Path, help="write a flame graph SVG instead of measuring")
    parser.add_argument("--profile-tree", choices=("new", "baseline"), default="new")
    args = parser.parse_args()
    directory = workspace("api-rate")
    subjects = [Subject("new", None, directory / "new")]
    try:
        if args.baseline is not None:
            subjects.insert(0, Subject("baseline", args.baseline.resolve(), directory / "baseline"))
        report = {"servers": SERVERS, "seconds": args.seconds, "client_processes": args.processes,
                  "nproc": os.cpu_count(), "load_average_before": os.getloadavg()}
        if args.profile is not None:
            profile(next(s for s in subjects if s.name == args.profile_tree), args.profile, 10, args.processes)
            return
        report["results"] = compare(subjects, args)
        report["load_average_after"] = os.getloadavg()
    finally:
        for subject in subjects:
            subject.daemon.stop()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
