"""GET /servers, GET/POST /server/{id} and the apps' lifecycle against the real daemon."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time

import psutil
import pytest
import requests
import websocket

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config, wait_until

PY = sys.executable

SLEEPER = """
import os, time
print("pid", os.getpid(), flush=True)
time.sleep(120)
"""


def app_dir(tmp_path, name: str = "apps"):
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / "sleeper.py").write_text(textwrap.dedent(SLEEPER))
    (directory / "hello.py").write_text("print('hello from', __file__)\n")
    return directory


def sleeper(directory, **extra) -> dict:
    return {"directory": str(directory), "command": f"{PY} sleeper.py", **extra}


def status(daemon, name) -> int:
    return daemon.get(f"/server/{name}").json()["status"]


def app_pids(daemon) -> list[int]:
    """PIDs of the sleeper apps the daemon runs (their command line names sleeper.py)."""
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if any(part.endswith("sleeper.py") for part in cmdline) and str(daemon.directory) in process.cwd():
            pids.append(process.pid)
    return pids


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One daemon for the request/response tests: 'run' runs, 'idle' does not."""
    tmp_path = tmp_path_factory.mktemp("servers")
    directory = app_dir(tmp_path)
    servers = {"run": sleeper(directory), "idle": sleeper(directory, enabled=False)}
    daemon = RunningDaemon(tmp_path, daemon_config(tmp_path, servers, stopGracePeriod=2), {"admin": ADMIN_HASH})
    yield daemon
    daemon.clean_up()


def test_servers_lists_every_status(shared):
    wait_until(lambda: status(shared, "run") == 1)
    response = shared.get("/servers")
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"servers": {"run": 1, "idle": 0}}
    assert shared.get("/servers?extrainfo=true").json() == {
        "servers": {"run": {"status": 1, "toDelete": False}, "idle": {"status": 0, "toDelete": False}}}


def test_servers_needs_authentication(shared):
    response = requests.get(shared.url + "/servers")
    assert (response.status_code, response.json()) == (401, {"error": "You are not authenticated to access this resource!"})


def test_server_reports_exactly_the_octyne_fields_with_integer_types(shared):
    wait_until(lambda: status(shared, "run") == 1)
    body = shared.get("/server/run").content.decode()
    info = json.loads(body)
    assert list(info) == ["status", "uptime", "cpuUsage", "memoryUsage", "totalMemory", "toDelete"]
    assert info["status"] == 1 and info["toDelete"] is False
    for key in ("status", "uptime", "memoryUsage", "totalMemory"):
        assert type(info[key]) is int, key
        assert f'"{key}":{info[key]},' in body or f'"{key}":{info[key]}' in body  # no 1.0e7 style
    assert info["uptime"] > 0 and info["memoryUsage"] > 1_000_000
    assert isinstance(info["cpuUsage"], (int, float))
    with open("/proc/meminfo") as meminfo:
        kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    assert info["totalMemory"] == kib * 1024


def test_a_stopped_server_reports_zeros(shared):
    assert shared.get("/server/idle").content == (
        b'{"status":0,"uptime":0,"cpuUsage":0,"memoryUsage":0,"totalMemory":'
        + str(shared.get("/server/idle").json()["totalMemory"]).encode() + b',"toDelete":false}\n')


@pytest.mark.parametrize("method, path, body, expected", [
    ("GET", "/server/nope", None, (404, "This server does not exist!")),
    ("POST", "/server/nope", "START", (404, "This server does not exist!")),
    ("PUT", "/server/run", None, (405, "Only GET and POST is allowed!")),
    ("POST", "/server/idle", "RESTART", (400, "Invalid operation requested!")),
    ("POST", "/server/idle", "", (400, "Invalid operation requested!")),
    ("POST", "/server/idle", "START" * 1000, (400, "Invalid operation requested!")),
])
def test_server_errors(shared, method, path, body, expected):
    response = shared.request(method, path, data=body)
    assert (response.status_code, response.json()) == (expected[0], {"error": expected[1]})


def test_authentication_comes_before_the_server_lookup_and_the_method(shared):
    for method in ("GET", "POST", "PUT"):
        response = requests.request(method, shared.url + "/server/nope", data="START")
        assert response.status_code == 401


def test_start_term_kill_cycle_with_action_log(shared):
    assert shared.post("/server/idle", data="start").json() == {"success": True}
    assert status(shared, "idle") == 1
    assert shared.post("/server/idle", data="Term").json() == {"success": True}
    wait_until(lambda: status(shared, "idle") == 0)
    assert shared.post("/server/idle", data="START").json() == {"success": True}
    assert shared.post("/server/idle", data="KILL").json() == {"success": True}
    assert status(shared, "idle") == 0  # already stopped when the answer came
    assert shared.post("/server/idle", data="START").json() == {"success": True}
    assert shared.post("/server/idle", data="STOP").json() == {"success": True}  # deprecated alias of KILL
    assert status(shared, "idle") == 0
    # stopping what is not running is still a success
    assert shared.post("/server/idle", data="TERM").json() == {"success": True}
    assert shared.post("/server/idle", data="KILL").json() == {"success": True}
    entries = [e for e in shared.action_log() if e.get("server") == "idle"]
    last = entries[-1]
    assert list(last) == ["level", "ts", "msg", "action", "ip", "user", "server"]  # api.md §9, nothing else
    assert (last["level"], last["msg"]) == ("info", "user performed action")
    assert (last["ip"], last["user"]) == ("127.0.0.1", "admin")
    assert isinstance(last["ts"], (int, float)) and abs(last["ts"] - time.time()) < 60
    actions = [(e["action"], e["server"]) for e in entries]
    assert actions[-8:] == [("server.start", "idle"), ("server.stop", "idle"), ("server.start", "idle"),
                            ("server.kill", "idle"), ("server.start", "idle"), ("server.kill", "idle"),
                            ("server.stop", "idle"), ("server.kill", "idle")]


def test_term_then_start_restarts_like_octynectl(shared):
    wait_until(lambda: status(shared, "run") == 1)
    before = app_pids(shared)
    shared.post("/server/run", data="TERM")
    assert shared.post("/server/run", data="START").json() == {"success": True}
    wait_until(lambda: status(shared, "run") == 1 and set(app_pids(shared)) - set(before))


def test_start_of_a_command_that_cannot_run_fails(daemon_factory, tmp_path):
    daemon = daemon_factory(servers={"broken": {"directory": str(tmp_path), "command": "no-such-program", "enabled": False}})
    assert daemon.post("/server/broken", data="START").json() == {"success": False}
    assert status(daemon, "broken") == 2


def test_reload_adds_updates_and_removes_servers(daemon_factory, tmp_path):
    directory = app_dir(tmp_path)
    daemon = daemon_factory(servers={"keep": sleeper(directory), "drop": sleeper(directory),
                                     "parked": sleeper(directory, enabled=False)})
    wait_until(lambda: status(daemon, "drop") == 1)
    config = json.loads(daemon.config_path.read_text())
    config["servers"] = {"keep": {"directory": str(directory), "command": f"{PY} hello.py"},
                         "added": sleeper(directory)}
    assert daemon.patch("/config", data=json.dumps(config)).json() == {"success": True}
    listed = daemon.get("/servers?extrainfo=true").json()["servers"]
    assert listed == {"keep": {"status": 1, "toDelete": False}, "drop": {"status": 1, "toDelete": True},
                      "parked": {"status": 0, "toDelete": True}, "added": listed["added"]}
    wait_until(lambda: status(daemon, "added") == 1)
    # a marked server that is not running stays, and answers
    assert daemon.get("/server/parked").json()["toDelete"] is True
    # the updated command runs at the next start
    daemon.post("/server/keep", data="KILL")
    daemon.post("/server/keep", data="START")
    # a marked server goes when its process exits
    daemon.post("/server/drop", data="TERM")
    wait_until(lambda: daemon.get("/server/drop").status_code == 404)
    assert "drop" not in daemon.get("/servers").json()["servers"]
    # listing it again clears the mark
    config["servers"]["parked"] = sleeper(directory, enabled=False)
    daemon.config_path.write_text(json.dumps(config))
    assert daemon.get("/config/reload").json() == {"success": True}
    assert daemon.get("/server/parked").json()["toDelete"] is False
    wait_until(lambda: status(daemon, "keep") == 0)  # hello.py printed and exited


def test_daemon_sigterm_stops_every_app_and_closes_consoles_before_it_exits(tmp_path):
    directory = app_dir(tmp_path)
    servers = {name: sleeper(directory) for name in ("a", "b", "c")}
    daemon = RunningDaemon(tmp_path, daemon_config(tmp_path, servers, stopGracePeriod=2), {"admin": ADMIN_HASH})
    try:
        wait_until(lambda: len(app_pids(daemon)) == 3)
        pids = app_pids(daemon)
        console = websocket.create_connection(daemon.ws_url("/server/a/console"), timeout=10,
                                              header=[f"Authorization: {daemon.token}"])
        console.recv()
        asked = time.monotonic()
    finally:
        daemon.stop(signal.SIGTERM)
    assert time.monotonic() - asked < 8  # an open console does not hold the exit for gunicorn's graceful timeout
    assert not any(alive(pid) for pid in pids)
    received = []
    while (frame := console.recv()):
        received.append(frame)
    assert received[-2:] == ["[Octyne] Stopping server a", "[Octyne] Server a has stopped."]


def test_apps_do_not_survive_the_worker_being_killed(tmp_path):
    directory = app_dir(tmp_path)
    servers = {name: sleeper(directory) for name in ("a", "b")}
    daemon = RunningDaemon(tmp_path, daemon_config(tmp_path, servers, stopGracePeriod=2), {"admin": ADMIN_HASH})
    try:
        wait_until(lambda: len(app_pids(daemon)) == 2)
        pids = app_pids(daemon)
        worker = psutil.Process(pids[0]).parent()
        assert worker.pid != daemon.proc.pid and worker.parent().pid == daemon.proc.pid
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5)
    finally:
        daemon.stop(signal.SIGTERM)


def test_a_second_daemon_on_the_same_config_refuses_to_start(daemon_factory):
    first = daemon_factory()
    second = RunningDaemon(first.directory, json.loads(first.config_path.read_text()), None, wait=False)
    try:
        assert second.proc.wait(15) == 1
        assert "already running with config" in second.output()
        assert requests.get(first.url + "/").status_code == 200
        assert first.local("GET", "/servers")[0] == 200  # its Unix socket was left alone
    finally:
        second.stop()
