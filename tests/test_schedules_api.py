"""Schedules end to end on the real daemon and real apps, in real time (6-field crons every 2 s)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone

from tests.harness import wait_until

PY = sys.executable
APP = """
import os, sys
with open("starts.log", "a") as log:
    log.write(f"{os.getpid()}\\n")
print("ready", flush=True)
for line in sys.stdin:
    with open("input.log", "a") as log:
        log.write(line)
"""


def lines(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def app_server(directory, schedules, enabled=True) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.py").write_text(APP)
    return {"directory": str(directory), "command": f"{PY} app.py", "enabled": enabled, "schedules": schedules}


def listing(daemon, server) -> dict:
    response = daemon.get(f"/server/{server}/schedules")
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()}


def test_a_command_every_two_seconds_reaches_the_app_and_a_stopped_servers_run_is_skipped(daemon_factory, tmp_path):
    tick = {"name": "tick", "cron": "*/2 * * * * *", "action": "command", "command": "save-all"}
    daemon = daemon_factory({"app": app_server(tmp_path / "app", [tick]),
                             "idle": app_server(tmp_path / "idle", [tick], enabled=False)})
    wait_until(lambda: lines(tmp_path / "app" / "starts.log"))
    time.sleep(5)
    assert lines(tmp_path / "app" / "input.log").count("save-all") >= 2
    entry = listing(daemon, "app")["tick"]
    now_ms = time.time() * 1000
    assert (entry["cron"], entry["description"], entry["action"]) == ("*/2 * * * * *", "Every 2 seconds", "command")
    assert now_ms < entry["next"] <= now_ms + 2000 and entry["next"] % 2000 == 0
    assert entry["last"]["outcome"] == "ok" and now_ms - 2500 < entry["last"]["time"] <= now_ms
    idle = listing(daemon, "idle")["tick"]
    assert idle["last"]["outcome"] == "skipped" and idle["last"]["message"] == "the server is not running"
    assert not lines(tmp_path / "idle" / "input.log")
    ran = [e for e in daemon.action_log() if e.get("action") == "schedule.ran" and e["server"] == "app"]
    assert ran and ran[-1]["outcome"] == "ok"


def test_a_restart_types_its_warning_a_second_before_and_restarts_the_app_once(daemon_factory, tmp_path):
    at = datetime.now(timezone.utc) + timedelta(seconds=4)
    cron = f"{at.second} {at.minute} {at.hour} * * *"
    nightly = {"name": "nightly", "cron": cron, "action": "restart",
               "warnings": [{"before": 1, "command": "say Restarting in 1 second"}]}
    daemon = daemon_factory({"app": app_server(tmp_path / "app", [nightly])}, config={"timezone": "UTC"})
    starts, typed = tmp_path / "app" / "starts.log", tmp_path / "app" / "input.log"
    wait_until(lambda: lines(starts))
    assert listing(daemon, "app")["nightly"]["next"] == int(at.replace(microsecond=0).timestamp()) * 1000
    wait_until(lambda: len(lines(starts)) == 2, timeout=10)
    assert lines(typed) == ["say Restarting in 1 second"]
    warned, restarted = typed.stat().st_mtime, starts.stat().st_mtime
    assert 0.5 < restarted - warned < 3
    time.sleep(2)
    assert len(lines(starts)) == 2
    assert listing(daemon, "app")["nightly"]["last"]["outcome"] == "ok"
    assert daemon.get("/server/app").json()["status"] == 1


def test_run_now_skips_warnings_and_an_unknown_name_is_404(daemon_factory, tmp_path):
    later = {"name": "later", "cron": "0 4 1 1 *", "action": "restart",
             "warnings": [{"before": 300, "command": "say in five minutes"}]}
    daemon = daemon_factory({"app": app_server(tmp_path / "app", [later])})
    starts = tmp_path / "app" / "starts.log"
    wait_until(lambda: lines(starts))
    response = daemon.post("/server/app/schedules/later/run")
    assert (response.status_code, response.json()) == (200, {"success": True})
    wait_until(lambda: len(lines(starts)) == 2, timeout=10)
    assert not lines(tmp_path / "app" / "input.log")
    assert listing(daemon, "app")["later"]["description"] == "At 04:00, on day 1 of the month, only in January"
    missing = daemon.post("/server/app/schedules/nope/run")
    assert (missing.status_code, missing.json()) == (404, {"error": "This schedule does not exist!"})
    assert daemon.get("/server/app/schedules/later/run").status_code == 405
    assert any(e.get("action") == "schedule.run" and e["schedule"] == "later" for e in daemon.action_log())


def test_a_config_edit_adds_and_removes_schedules_at_once(daemon_factory, tmp_path):
    daemon = daemon_factory({"app": app_server(tmp_path / "app", [])})
    assert listing(daemon, "app") == {}
    config = json.loads(daemon.get("/config").text)
    config["servers"]["app"]["schedules"] = [{"name": "soon", "cron": "* * * * * *", "action": "command", "command": "hi"}]
    assert daemon.patch("/config", data=json.dumps(config)).status_code == 200
    wait_until(lambda: "hi" in lines(tmp_path / "app" / "input.log"), timeout=5)
    config["servers"]["app"]["schedules"] = []
    assert daemon.patch("/config", data=json.dumps(config)).status_code == 200
    assert listing(daemon, "app") == {}
    count = len(lines(tmp_path / "app" / "input.log"))
    time.sleep(2.5)
    assert len(lines(tmp_path / "app" / "input.log")) == count
