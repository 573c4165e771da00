"""The locks: a second daemon on the same config must refuse to start; no app starts while the apps lock is held."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import pytest

from octyne_flask.config import config_from_document
from octyne_flask.supervisor import RUNNING, STOPPED, DaemonLockError, Supervisor, acquire_daemon_lock, apps_guard
from tests.harness import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_second_holder_of_the_same_config_is_refused_with_a_clear_message(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{}")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from octyne_flask.supervisor import acquire_daemon_lock as a; "
                               "a(sys.argv[1]); print('held', flush=True); sys.stdin.read()", str(config)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(DaemonLockError) as refused:
            acquire_daemon_lock(str(tmp_path / "." / "config.json"))  # same file, other spelling
        message = str(refused.value)
        assert "already running" in message and str(config) in message and str(holder.pid) in message
    finally:
        holder.stdin.close()
        holder.wait()
    os.close(acquire_daemon_lock(str(config)))  # free again once the holder is gone


def test_different_configs_do_not_conflict(tmp_path):
    first = acquire_daemon_lock(str(tmp_path / "a.json"))
    second = acquire_daemon_lock(str(tmp_path / "b.json"))
    os.close(first)
    os.close(second)


def supervisor_on_apps_lock(tmp_path) -> Supervisor:
    (tmp_path / "s.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    config = config_from_document({"stopGracePeriod": 1, "servers": {
        "s": {"directory": str(tmp_path), "command": f"{sys.executable} s.py"}}})
    supervisor = Supervisor(config, apps_guard(str(tmp_path / "config.json")))
    supervisor.start_enabled()
    return supervisor


def test_no_app_starts_while_another_process_holds_the_apps_lock(tmp_path):
    """The apps lock is held by an earlier worker's keeper helper until its apps are gone."""
    lock = apps_guard(str(tmp_path / "config.json")).lock
    held = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    supervisor = supervisor_on_apps_lock(tmp_path)
    try:
        server = supervisor.get("s")
        time.sleep(0.5)
        assert server.status == STOPPED and server.console.scrollback() == []
        os.close(held)
        wait_until(lambda: "up" in server.console.scrollback())
        assert server.status == RUNNING
    finally:
        supervisor.shutdown()


def test_a_shutdown_while_waiting_for_the_apps_lock_is_prompt_and_starts_nothing(tmp_path):
    lock = apps_guard(str(tmp_path / "config.json")).lock
    held = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        supervisor = supervisor_on_apps_lock(tmp_path)
        time.sleep(0.2)
        asked = time.monotonic()
        supervisor.shutdown()
        assert time.monotonic() - asked < 2
    finally:
        os.close(held)
    time.sleep(0.3)
    assert supervisor.get("s").console.scrollback() == [] and supervisor.get("s").status == STOPPED
