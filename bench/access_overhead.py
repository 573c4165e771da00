"""What access control costs on the hottest read endpoints: GET /servers and GET /server/{id}, in req/s,
with access control off (no access.json: Octyne 1.4) and on (20 accounts, 20 servers, mixed grants).

Run: .venv/bin/python bench/access_overhead.py [seconds per round] [rounds]

Two daemons run side by side on the same machine, one without and one with access.json; the same
load is sent to one, then the other, alternating round by round (which goes first alternates too),
so a change in machine load hits both alike. The account measured is not an administrator but may
view every server (a `*` grant plus per-server entries), so both daemons send identical bodies and
only the permission resolution differs. Load: 4 client processes, each one keep-alive connection
sending requests back to back. Reported: the median req/s of each side and their ratio, the median
of the per-round ratios (each pair measured seconds apart, so it cancels slow load drift), the
daemon's CPU time per request (what a busy machine distorts least), and the in-process time of the
permission lookups one GET /servers makes.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import shutil
import statistics
import sys
import time
import timeit
from pathlib import Path

from files_common import tree_cpu_seconds, workspace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from octyne_flask.auth.access import AccessSnapshot, validate_document  # noqa: E402
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config  # noqa: E402

SERVERS = [f"server{n:02d}" for n in range(20)]
ACCOUNTS = [f"user{n:02d}" for n in range(20)]
MEASURED = "user07"
CLIENTS = 4


def mixed_rules() -> dict:
    """Every kind of entry: administrators, `*` grants, roles, lists, custom roles, global permissions."""
    accounts = {"admin": {"admin": True}}
    for n, name in enumerate(ACCOUNTS):
        if n % 5 == 0:
            accounts[name] = {"admin": True}
        elif n % 5 == 1:
            accounts[name] = {"servers": {server: "operator" for server in SERVERS[n % 7::3]}}
        elif n % 5 == 2:
            accounts[name] = {"permissions": ["accounts.view"],
                              "servers": {"*": "viewer", SERVERS[n]: ["moderator", "files.upload"]}}
        elif n % 5 == 3:
            accounts[name] = {"servers": {server: ["view", "console.view"] for server in SERVERS[:n]}}
        else:
            accounts[name] = {"servers": {"*": ["moderator"], SERVERS[n]: "operator"}}
    return {"roles": {"moderator": ["view", "console.view", "console.write"]}, "accounts": accounts,
            "defaults": {"servers": {}}}


def start(base: Path, access: bool) -> RunningDaemon:
    base.mkdir(parents=True)
    servers = {name: {"directory": str(base), "command": "sleep 100000", "enabled": False} for name in SERVERS}
    if access:
        (base / "access.json").write_text(json.dumps(mixed_rules(), indent=2))
    users = {"admin": ADMIN_HASH, **{name: ADMIN_HASH for name in ACCOUNTS}}
    daemon = RunningDaemon(base, daemon_config(base, servers, logging={"enabled": False}), users)
    daemon.login(MEASURED, ADMIN_PASSWORD)
    return daemon


def client(port: int, path: str, token: str, seconds: float) -> int:
    """Requests completed by one keep-alive connection in ``seconds``."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        connection.request("GET", path, headers={"Authorization": token})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        done += 1
    connection.close()
    return done


def measure(pool, daemon: RunningDaemon, path: str, seconds: float) -> tuple[float, float]:
    """(requests per second, daemon CPU microseconds per request) of one round."""
    cpu_before = tree_cpu_seconds(daemon.proc.pid)
    counts = pool.starmap(client, [(daemon.port, path, daemon.token, seconds)] * CLIENTS)
    cpu = tree_cpu_seconds(daemon.proc.pid) - cpu_before
    return sum(counts) / seconds, cpu / sum(counts) * 1e6


def resolution_cost() -> float:
    """Microseconds of permission checks one GET /servers makes (one lookup per server), in-process."""
    snapshot = AccessSnapshot(validate_document(mixed_rules()))
    runs = 20_000
    seconds = min(timeit.repeat(lambda: [snapshot.permissions(MEASURED, name) for name in SERVERS],
                                number=runs, repeat=5))
    return seconds / runs * 1e6


def main(seconds: float = 1.5, rounds: int = 20) -> None:
    base = workspace("access")
    off, on = start(base / "off", access=False), start(base / "on", access=True)
    try:
        assert off.get("/servers").json() == on.get("/servers").json()  # identical bodies, only the rules differ
        assert on.get("/access/me").json()["admin"] is False
        rows = [("endpoint", "access off (req/s)", "access on (req/s)", "on / off (medians)",
                 "on / off (median of paired rounds)", "daemon CPU µs per request, off / on", "rounds")]
        with multiprocessing.get_context("fork").Pool(CLIENTS) as pool:
            for path in ("/servers", "/server/server05"):
                results = {"off": [], "on": []}
                cpu = {"off": [], "on": []}
                for round_number in range(rounds):
                    order = [("off", off), ("on", on)] if round_number % 2 == 0 else [("on", on), ("off", off)]
                    for name, daemon in order:
                        rate, cpu_per_request = measure(pool, daemon, path, seconds)
                        results[name].append(rate)
                        cpu[name].append(cpu_per_request)
                off_rate, on_rate = statistics.median(results["off"]), statistics.median(results["on"])
                paired = statistics.median(a / b for a, b in zip(results["on"], results["off"]))
                off_cpu, on_cpu = statistics.median(cpu["off"]), statistics.median(cpu["on"])
                rows.append((f"GET {path}", f"{off_rate:.0f}", f"{on_rate:.0f}", f"{on_rate / off_rate:.3f}",
                             f"{paired:.3f}", f"{off_cpu:.0f} / {on_cpu:.0f}", f"{rounds} x {seconds:g} s each"))
                print(f"{path}: off {[round(r) for r in results['off']]}, on {[round(r) for r in results['on']]}",
                      flush=True)
        for row in rows:
            print(" | ".join(row))
        print(f"Permission checks of one GET /servers (20 lookups), in-process: {resolution_cost():.1f} µs")
    finally:
        off.stop()
        on.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5, int(sys.argv[2]) if len(sys.argv) > 2 else 20)
