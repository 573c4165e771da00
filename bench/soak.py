"""Soak: a daemon under steady mixed load for many minutes; does its memory, thread or fd count grow?

Run: .venv/bin/python bench/soak.py [--minutes 20] [--code PATH] [--env NAME=VALUE ...] [--tracemalloc FILE]
Load, all at once for the whole run: 3 apps printing 2 000 lines/s each (80-byte lines), 10 console-v2
clients that reconnect every 2 s (each reads its app's scrollback and live output meanwhile), a 5 MiB
upload + download + delete every second, and login, ``GET /servers``, logout twice a second.
Every 10 s the gunicorn worker (the process that holds the daemon) is sampled: RSS, threads, open
file descriptors, and the "quiet" RSS: read while no login and no upload/download is in flight (the
sampler holds the login and file loops back for that moment, at most one iteration of each; the
consoles go on). Each login's Argon2id check maps 50 MiB for its duration, so plain RSS readings
that land on one jump by up to 50 MiB; the quiet RSS is what the daemon keeps. Printed as JSON: the
samples, and for each series the least-squares slope per minute over the whole run and over its
second half (after warm-up, the figure that shows a leak).

``--code`` runs the daemon from another checkout (e.g. a ``git worktree`` of main, for a before/after
pair); ``--env`` adds variables to the daemon's environment; ``--tracemalloc FILE`` starts
tracemalloc in the worker (through ``bench/soak_trace/sitecustomize.py``, not the daemon's code) and
writes, every minute, what grew since the first minute, by allocation site.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
from pathlib import Path

import psutil
import requests

from console_common import RawConsole, worker_of, workspace, write_app
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, REPO, RunningDaemon, daemon_config

APPS = 3
LINES_PER_SECOND = 2000
CONSOLE_CLIENTS = 10
RECONNECT_SECONDS = 2.0
UPLOAD_BYTES = 5 * 1024 * 1024
LOGINS_PER_SECOND = 2
SAMPLE_SECONDS = 10
MIB = 1024 * 1024

APP = f"""
import sys, time
line = "x" * 70
n = 0
next_tick = time.monotonic()
while True:
    sys.stdout.write("".join(f"{{n + i:08d}} {{line}}\\n" for i in range({LINES_PER_SECOND // 10})))
    sys.stdout.flush()
    n += {LINES_PER_SECOND // 10}
    next_tick += 0.1
    time.sleep(max(0.0, next_tick - time.monotonic()))
"""


class Load:
    """The load generators: threads that run until ``stop`` is set, counting what they did and what failed."""

    def __init__(self, daemon: RunningDaemon, payload: bytes):
        self.daemon = daemon
        self.payload = payload
        self.stop = threading.Event()
        self.counts = {"console_sessions": 0, "console_bytes": 0, "uploads": 0, "downloads": 0, "logins": 0}
        self.errors: list[str] = []
        self.logins_quiet = threading.Lock()  # held by a login in flight, or by the sampler
        self.files_quiet = threading.Lock()  # the same for an upload, download and delete
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def _failed(self, what: str, error: Exception) -> None:
        with self._lock:
            if len(self.errors) < 50:
                self.errors.append(f"{what}: {error!r}")

    def start(self) -> None:
        targets = [(self._console, (i,)) for i in range(CONSOLE_CLIENTS)]
        targets += [(self._files, ()), (self._logins, ())]
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _paced(self, period: float):
        """Yields once per ``period`` seconds until stopped (skipping ticks it fell behind on)."""
        next_tick = time.monotonic()
        while not self.stop.is_set():
            yield
            next_tick = max(next_tick + period, time.monotonic())
            self.stop.wait(next_tick - time.monotonic())

    def _console(self, index: int) -> None:
        time.sleep(index * RECONNECT_SECONDS / CONSOLE_CLIENTS)  # spread the reconnects out
        for _ in self._paced(RECONNECT_SECONDS):
            try:
                console = RawConsole(self.daemon.port, f"app{index % APPS}", self.daemon.token)
                console.sock.settimeout(5)
                deadline = time.monotonic() + RECONNECT_SECONDS * 0.9
                received = 0
                while time.monotonic() < deadline:
                    received += len(console.frame()[1])
                console.close()
                self._count("console_sessions")
                self._count("console_bytes", received)
            except (OSError, RuntimeError) as error:
                self._failed("console", error)

    def _files(self) -> None:
        session = requests.Session()
        session.headers["Authorization"] = self.daemon.token
        base = f"{self.daemon.url}/server/app0"
        for _ in self._paced(1.0):
            with self.files_quiet:
                self._transfer(session, base)

    def _transfer(self, session: requests.Session, base: str) -> None:
        try:
            name = f"soak-{random.randrange(1 << 30)}.bin"
            answer = session.post(f"{base}/file", params={"path": "/"}, timeout=30,
                                  files={"upload": (name, self.payload)})
            answer.raise_for_status()
            self._count("uploads")
            answer = session.get(f"{base}/file", params={"path": name}, timeout=30)
            answer.raise_for_status()
            if answer.content != self.payload:
                raise ValueError("downloaded bytes differ from the upload")
            self._count("downloads")
            session.delete(f"{base}/file", params={"path": name}, timeout=30).raise_for_status()
        except (requests.RequestException, ValueError) as error:
            self._failed("files", error)

    def _logins(self) -> None:
        url = self.daemon.url
        for _ in self._paced(1.0 / LOGINS_PER_SECOND):
            with self.logins_quiet:
                self._login(url)

    def _login(self, url: str) -> None:
        try:
            with requests.Session() as session:
                answer = session.get(f"{url}/login", timeout=30,
                                     headers={"Username": "admin", "Password": ADMIN_PASSWORD})
                answer.raise_for_status()
                session.headers["Authorization"] = answer.json()["token"]
                session.get(f"{url}/servers", timeout=30).raise_for_status()
                session.get(f"{url}/logout", timeout=30).raise_for_status()
            self._count("logins")
        except requests.RequestException as error:
            self._failed("login", error)


def sample(worker: psutil.Process, started: float, load: Load) -> dict:
    rss = worker.memory_info().rss
    with load.logins_quiet, load.files_quiet:
        quiet_rss = worker.memory_info().rss
    return {"minute": round((time.monotonic() - started) / 60, 3),
            "rss_mib": round(rss / MIB, 2), "quiet_rss_mib": round(quiet_rss / MIB, 2),
            "threads": worker.num_threads(), "fds": worker.num_fds()}


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, value) points."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def summary(samples: list[dict], minutes: float) -> dict:
    result = {}
    for series in ("rss_mib", "quiet_rss_mib", "threads", "fds"):
        points = [(entry["minute"], entry[series]) for entry in samples]
        second_half = [(x, y) for x, y in points if x >= minutes / 2]
        result[series] = {"first": points[0][1], "last": points[-1][1], "min": min(y for _, y in points),
                          "max": max(y for _, y in points),
                          "slope_per_min": round(slope_per_minute(points), 3),
                          "second_half_slope_per_min": round(slope_per_minute(second_half), 3)}
    return result


def run(minutes: float, code: Path, env: dict, trace_file: str | None) -> dict:
    base = workspace("soak")
    command = write_app(base, "flood.py", APP)
    servers = {f"app{i}": {"directory": str(base), "command": command, "enabled": True} for i in range(APPS)}
    env = {"PYTHONPATH": str(code), **env}
    if trace_file:
        env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parent / "soak_trace")
        env["OCTYNE_SOAK_TRACE"] = str(Path(trace_file).resolve())
    daemon = RunningDaemon(base, daemon_config(base, servers), {"admin": ADMIN_HASH}, env=env)
    load = Load(daemon, os.urandom(UPLOAD_BYTES))
    samples = []
    try:
        worker = worker_of(daemon)
        started = time.monotonic()
        load.start()
        samples.append(sample(worker, started, load))
        for tick in range(1, int(minutes * 60 / SAMPLE_SECONDS) + 1):
            time.sleep(max(0.0, started + tick * SAMPLE_SECONDS - time.monotonic()))
            samples.append(sample(worker, started, load))
    finally:
        load.join()
        daemon.stop()
    return {"minutes": minutes, "code": str(code), "env": {k: v for k, v in env.items() if k != "PYTHONPATH"},
            "load_average_end": os.getloadavg(), "counts": load.counts, "errors": load.errors,
            "summary": summary(samples, minutes), "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose daemon runs (default: this one)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--tracemalloc", metavar="FILE", help="write tracemalloc growth reports here")
    options = parser.parse_args()
    env = dict(item.split("=", 1) for item in options.env)
    print(json.dumps(run(options.minutes, options.code.resolve(), env, options.tracemalloc), indent=1))


if __name__ == "__main__":
    main()
