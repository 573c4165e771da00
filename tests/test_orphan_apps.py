"""Apps left running with nothing to stop them (their daemon and its keeper helper killed) are stopped
by the next start before it starts any app: an app never runs twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from octyne_flask.config import config_from_document
from octyne_flask.supervisor import Supervisor, apps_guard
from octyne_flask.supervisor.orphans import VARIABLE, marked_groups
from tests.harness import RunningDaemon, wait_until

# Ignores SIGTERM (so it outlives the grace period) and forks a child that leaves its session.
LEFT_RUNNING = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        os.setsid()
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
""")


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def left_running(environment: dict) -> tuple[subprocess.Popen, int]:
    """A process tree like an app's, alive in its own session; returns it and its child in another session."""
    tree = subprocess.Popen([sys.executable, "-c", LEFT_RUNNING], env=environment, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    return tree, int(tree.stdout.readline())


def supervisor_of(tmp_path, command: str) -> Supervisor:
    config = config_from_document({"stopGracePeriod": 1, "servers": {
        "app": {"directory": str(tmp_path), "command": command}}})
    return Supervisor(config, apps_guard(str(tmp_path / "config.json")))


def test_every_app_carries_the_mark_of_its_config(tmp_path):
    supervisor = supervisor_of(tmp_path, f"{sys.executable} -c \"import os; print(os.environ['{VARIABLE}'])\"")
    supervisor.start_enabled()
    try:
        server = supervisor.get("app")
        wait_until(lambda: len(server.console.scrollback()) > 1)
        assert server.console.scrollback()[1] == apps_guard(str(tmp_path / "config.json")).mark
    finally:
        supervisor.shutdown()


def test_apps_left_running_are_stopped_before_any_app_starts_even_those_that_left_their_group(tmp_path):
    mark = apps_guard(str(tmp_path / "config.json")).mark
    orphan, escaped = left_running({**os.environ, VARIABLE: mark})
    stranger, stranger_child = left_running({**os.environ, VARIABLE: "another-config"})
    supervisor = supervisor_of(tmp_path, "sh -c 'echo up; sleep 60'")
    try:
        supervisor.start_enabled()
        server = supervisor.get("app")
        while "up" not in server.console.scrollback():
            assert not running(orphan.pid) or "up" not in server.console.scrollback()
            time.sleep(0.01)
        assert not running(orphan.pid) and not running(escaped)
        assert running(stranger.pid) and running(stranger_child)
    finally:
        supervisor.shutdown()
        for pid in (stranger.pid, stranger_child):
            os.kill(pid, signal.SIGKILL)
        orphan.wait()
        stranger.wait()


def test_the_callers_own_process_group_is_never_taken_for_an_app(tmp_path):
    """A daemon started from an app's shell carries the mark itself."""
    environment = {**os.environ, VARIABLE: "inherited"}
    own = subprocess.Popen(["sleep", "60"], env=environment)
    apart = subprocess.Popen(["sleep", "60"], env=environment, start_new_session=True)
    try:
        assert marked_groups("inherited") == {apart.pid}
    finally:
        for process in (own, apart):
            process.kill()
            process.wait()


def test_a_restart_after_kill_9_of_master_worker_and_keeper_helper_runs_each_app_once(daemon_factory, tmp_path):
    marker = f"orphan-test-{os.getpid()}"
    command = f"sh -c 'while :; do sleep 1; done' {marker}"
    first = daemon_factory(servers={"app": {"directory": str(tmp_path), "command": command}},
                           config={"stopGracePeriod": 1})

    def apps() -> list[psutil.Process]:
        return [process for process in psutil.process_iter(["cmdline", "status", "ppid"])
                if (process.info["cmdline"] or [""])[-1] == marker and process.info["status"] != psutil.STATUS_ZOMBIE]

    second = None
    try:
        [old] = wait_until(apps)
        [worker] = psutil.Process(first.proc.pid).children()
        [helper] = [child for child in worker.children() if child.pid != old.pid]
        helper.kill()
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
        time.sleep(0.5)
        assert [process.pid for process in apps()] == [old.pid]  # left running, nothing to stop it
        second = RunningDaemon(first.directory, json.loads(first.config_path.read_text()), None, keep_files=True)
        [worker] = psutil.Process(second.proc.pid).children()
        wait_until(lambda: any(process.info["ppid"] == worker.pid for process in apps()))
        assert [process.info["ppid"] for process in apps()] == [worker.pid]
    finally:
        if second is not None:
            second.stop()
        for process in apps():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
