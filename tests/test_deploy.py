"""deploy/: gunicorn.conf.py behaves exactly like ``python -m octyne_flask``; the systemd unit verifies."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import psutil
import pytest
import requests
import websocket

from octyne_flask.allocator import ARENA_MAX, is_glibc
from tests.harness import REPO, RunningDaemon, daemon_config
from tests.services import DEPLOY, is_listening

GUNICORN = str(REPO / ".venv" / "bin" / "gunicorn") if (REPO / ".venv" / "bin" / "gunicorn").exists() else "gunicorn"
APP = f"{sys.executable} -c 'import time; print(\"app up\", flush=True); time.sleep(600)'"


MODULE_COMMAND = [sys.executable, "-m", "octyne_flask", "--config=config.json", "--users=users.json"]
GUNICORN_COMMAND = [GUNICORN, "-c", str(DEPLOY / "gunicorn.conf.py"), "wsgi:app"]


def launcher_environment(directory) -> dict:
    return {"OCTYNE_CONFIG": str(directory / "config.json"), "OCTYNE_USERS": str(directory / "users.json")}


def launch(launcher: str, directory, config: dict) -> RunningDaemon:
    """The daemon started either as ``python -m octyne_flask`` or with gunicorn and deploy/gunicorn.conf.py."""
    return RunningDaemon(directory, config, users=_admin(),
                         args=MODULE_COMMAND if launcher == "module" else GUNICORN_COMMAND,
                         env=launcher_environment(directory))


def descendants(daemon) -> set[int]:
    return {child.pid for child in psutil.Process(daemon.proc.pid).children(recursive=True)}


def _admin() -> dict:
    from tests.harness import ADMIN_HASH

    return {"admin": ADMIN_HASH}


@pytest.mark.parametrize("launcher", ["module", "gunicorn"])
def test_smoke(launcher, tmp_path):
    config = daemon_config(tmp_path, {"app": {"directory": str(tmp_path), "command": APP}})
    daemon = launch(launcher, tmp_path, config)
    try:
        assert daemon.get("/").json()["version"]
        assert "Control socket" not in daemon.output()  # no shared $HOME/.gunicorn/gunicorn.ctl
        assert f"API on http://0.0.0.0:{config['port']}" in daemon.output()
        assert f"Local API (no login, user @local) on unix socket {daemon.socket_path}" in daemon.output()
        daemon.wait_for_running("app")
        assert daemon.get("/servers").json() == {"servers": {"app": 1}}
        assert stat.S_IMODE(os.stat(daemon.socket_path).st_mode) == 0o600
        status, _, body = daemon.local("GET", "/servers")
        assert (status, json.loads(body)) == (200, {"servers": {"app": 1}})
        web_ui = f"http://127.0.0.1:{config['webUI']['port']}"
        response = requests.get(web_ui + "/api/servers", headers={"Authorization": daemon.token}, timeout=10)
        assert response.status_code == 200
        assert requests.get(web_ui + "/", timeout=10).status_code == 200

        # SIGHUP reloads config.json in place: the new app appears; worker and app keep running.
        before = descendants(daemon)
        config["servers"]["second"] = {"directory": str(tmp_path), "command": APP, "enabled": False}
        daemon.config_path.write_text(json.dumps(config))
        os.kill(daemon.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "second" not in daemon.get("/servers").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert daemon.get("/servers").json() == {"servers": {"app": 1, "second": 0}}
        assert descendants(daemon) == before
        while "Config reloaded on SIGHUP" not in daemon.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Config reloaded on SIGHUP" in daemon.output()  # the daemon's own log lines show up too
        assert daemon.proc.poll() is None
    finally:
        code = daemon.stop()
    assert code == 0
    assert not is_listening(config["port"])
    assert not os.path.exists(daemon.socket_path)


@pytest.mark.parametrize("config, message", [
    ({"port": "not a number"}, "'port' must be an integer"),
    ({"https": {"enabled": True, "cert": "/nonexistent/cert.pem", "key": "/nonexistent/key.pem"}},
     "HTTPS certificate file not found: /nonexistent/cert.pem"),
], ids=["bad-config", "missing-certificate"])
def test_gunicorn_conf_refuses_what_the_cli_refuses_with_a_clear_message(tmp_path, config, message):
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    result = subprocess.run([GUNICORN, "-c", str(DEPLOY / "gunicorn.conf.py"), "wsgi:app"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OCTYNE_CONFIG": str(config_path)},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_systemd_unit_verifies(tmp_path):
    """The shipped unit, with its install path pointed at this checkout (systemd checks ExecStart exists)."""
    unit = (DEPLOY / "octyne.service").read_text()
    assert "KillMode=mixed" in unit and "Restart=on-failure" in unit and "User=octyne" in unit
    assert "\nDelegate=yes\n" in unit  # the apps' cgroups go below the service's
    assert "/opt/octyne-flask/.venv/bin/python" in unit
    (tmp_path / "octyne.service").write_text(unit.replace("/opt/octyne-flask", str(REPO)))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "octyne.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "octyne.service" not in result.stderr, result.stderr


@pytest.mark.parametrize("first", ["module", "gunicorn"])
def test_a_second_daemon_on_the_same_config_is_refused_whichever_launcher(first, tmp_path):
    running = launch(first, tmp_path, daemon_config(tmp_path))
    try:
        for second in (MODULE_COMMAND, GUNICORN_COMMAND):
            result = subprocess.run(second, cwd=tmp_path, capture_output=True, text=True, timeout=30, env={
                **os.environ, "PYTHONPATH": str(REPO), **launcher_environment(tmp_path)})
            assert result.returncode == 1, result.stderr
            assert "already running" in result.stderr
        assert running.get("/").status_code == 200
    finally:
        running.stop()


GLIBC_HEAP = 64 << 20  # a thread arena's heap: a 64 MiB-aligned reservation of 64 MiB


def thread_arenas(pid: int) -> int:
    """glibc arenas besides the main one, counted from the process's anonymous mappings."""
    ends = {}
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) == 5:  # no path: anonymous
                start, end = (int(address, 16) for address in fields[0].split("-"))
                ends[start] = end
    count = 0
    for start in ends:
        position = start
        while start % GLIBC_HEAP == 0 and position in ends and position < start + GLIBC_HEAP:
            position = ends[position]  # the heap's used part, then its reserved rest
        count += start % GLIBC_HEAP == 0 and position == start + GLIBC_HEAP
    return count


@pytest.mark.skipif(not is_glibc(), reason="the limits are glibc's")
@pytest.mark.parametrize("launcher", ["module", "gunicorn"])
def test_the_worker_keeps_at_most_two_malloc_arenas_whichever_launcher(launcher, tmp_path):
    """With glibc's default every request thread got an arena of its own, and the worker's memory grew."""
    config = daemon_config(tmp_path, {"app": {"directory": str(tmp_path), "command": APP}})
    daemon = launch(launcher, tmp_path, config)
    consoles = []
    try:
        for _ in range(8):  # each open console holds a request thread
            consoles.append(websocket.create_connection(daemon.ws_url("/server/app/console"), timeout=10,
                                                        subprotocols=["console-v2"],
                                                        header=[f"Authorization: {daemon.token}"]))
            consoles[-1].recv()
        master = psutil.Process(daemon.proc.pid)
        worker = next(child for child in master.children() if child.cmdline()[:2] == master.cmdline()[:2])
        assert worker.num_threads() > 8
        assert thread_arenas(worker.pid) <= ARENA_MAX - 1
    finally:
        for console in consoles:
            console.close()
        daemon.stop()
