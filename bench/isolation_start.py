"""What limits add to an app's start: POST START round trips, and the supervisor's start path alone.

Method, as root on a host with cgroups:
(a) the real daemon (embedded gunicorn, one worker) with two servers running the same ``sleep``:
    one without limits (it still gets a cgroup, as every app does), one with memory, cpu, pids
    and openFiles limits. ``POST /server/{id}`` ``START`` answers once the app is spawned, so its
    round trip is the start as a client sees it. KILL after each start; the two servers alternate (each
    round starting with the other one), ROUNDS times, so the machine's background load hits both alike.
(b) the same in-process through ``Supervisor`` (no HTTP): unconfined (no cgroup, the spawn path
    before this change), a cgroup without limits, a cgroup with limits.
Printed as JSON: medians and 90th percentiles in milliseconds, and the differences of the medians.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from console_common import percentile, start_daemon, workspace

ROUNDS = 60
LIMITS = {"memory": "256M", "cpu": 1, "pids": 256, "openFiles": 4096}


def summary(samples: list[float]) -> dict:
    return {"median_ms": round(statistics.median(samples) * 1000, 2),
            "p90_ms": round(percentile(samples, 0.9) * 1000, 2)}


def rotated(cases: list, round_number: int) -> list:
    """Each round starts with the next case, so no case always follows the same one."""
    shift = round_number % len(cases)
    return cases[shift:] + cases[:shift]


def through_the_api(directory) -> dict:
    daemon = start_daemon(directory, {"plain": "sleep 1000", "limited": "sleep 1000"})
    try:
        document = json.loads(daemon.config_path.read_text())
        document["servers"]["limited"]["limits"] = LIMITS
        assert daemon.patch("/config", data=json.dumps(document)).status_code == 200
        times = {"plain": [], "limited": []}
        for round_number in range(ROUNDS):
            for name in rotated(list(times), round_number):
                began = time.perf_counter()
                assert daemon.post(f"/server/{name}", data="START").json() == {"success": True}
                times[name].append(time.perf_counter() - began)
                daemon.post(f"/server/{name}", data="KILL")
    finally:
        daemon.stop()
    return {name: summary(samples) for name, samples in times.items()}


def in_process(directory) -> dict:
    sys.path.insert(0, str(directory))
    from octyne_flask.config import config_from_document
    from octyne_flask.supervisor import Supervisor, cgroup_tree
    from octyne_flask.supervisor.cgroups import NoCgroups

    def entry(limits=None):
        return {"directory": str(directory), "command": "sleep 1000", "enabled": False, **({"limits": limits} if limits else {})}

    config = config_from_document({"stopGracePeriod": 1, "servers": {
        "plain": entry(), "limited": entry(LIMITS)}})
    unconfined = Supervisor(config_from_document({"servers": {"plain": entry()}}), cgroups=NoCgroups("bench"))
    confined = Supervisor(config, cgroups=cgroup_tree(f"octyne-flask-bench-{time.time_ns()}"))
    cases = {"unconfined": unconfined.get("plain"), "cgroup": confined.get("plain"), "cgroup+limits": confined.get("limited")}
    times = {name: [] for name in cases}
    try:
        for round_number in range(ROUNDS):
            for name, server in rotated(list(cases.items()), round_number):
                began = time.perf_counter()
                assert server.start()
                times[name].append(time.perf_counter() - began)
                server.kill()
    finally:
        unconfined.shutdown()
        confined.shutdown()
    return {name: summary(samples) for name, samples in times.items()}


def main() -> None:
    directory = workspace("isolation")
    api = through_the_api(directory)
    local = in_process(directory)
    report = {
        "rounds": ROUNDS,
        "api": api,
        "api_limits_add_ms": round(api["limited"]["median_ms"] - api["plain"]["median_ms"], 2),
        "supervisor": local,
        "supervisor_cgroup_adds_ms": round(local["cgroup"]["median_ms"] - local["unconfined"]["median_ms"], 2),
        "supervisor_limits_add_ms": round(local["cgroup+limits"]["median_ms"] - local["cgroup"]["median_ms"], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
