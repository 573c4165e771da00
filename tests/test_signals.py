"""Signals the way Octyne users send them: TERM/INT stop every app gracefully then exit 0, HUP reloads the config."""

import gc
import json
import os
import queue
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from octyne_flask.serving import stop_promptly, worker_exit
from tests.services import is_listening

# An app that, on SIGTERM, takes a moment to "save", writes a marker and exits cleanly.
GRACEFUL_APP = textwrap.dedent("""
    import os, signal, sys, time
    def stop(signum, frame):
        time.sleep(0.3)
        with open("stopped-by-" + signal.Signals(signum).name, "w") as marker:
            marker.write(str(os.getpid()))
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    with open("pid", "w") as handle:
        handle.write(str(os.getpid()))
    print("ready", flush=True)
    while True:
        time.sleep(1)
""")


def wait_for_file(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), f"{path} did not appear"


@pytest.fixture
def graceful_apps(tmp_path):
    """Two app folders with the graceful app in each."""
    servers = {}
    for name in ("alpha", "beta"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "app.py").write_text(GRACEFUL_APP)
        servers[name] = {"directory": str(folder), "command": f"{sys.executable} app.py"}
    return servers


@pytest.mark.parametrize("sig, whole_group", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)],
                         ids=["SIGTERM", "SIGINT", "Ctrl-C (SIGINT to master and worker)"])
def test_stop_signal_stops_every_app_gracefully_then_exits_0(sig, whole_group, daemon_factory, graceful_apps):
    daemon = daemon_factory(servers=graceful_apps)
    folders = [Path(server["directory"]) for server in graceful_apps.values()]
    for folder in folders:
        wait_for_file(folder / "pid")
    app_pids = [int(open(os.path.join(folder, "pid")).read()) for folder in folders]
    started = time.monotonic()
    if whole_group:
        os.killpg(daemon.proc.pid, sig)  # the harness starts the daemon as its own process group
    else:
        daemon.proc.send_signal(sig)
    assert daemon.proc.wait(30) == 0
    assert time.monotonic() - started < 15
    for folder, pid in zip(folders, app_pids):
        assert os.path.exists(os.path.join(folder, "stopped-by-SIGTERM")), "the app was not stopped gracefully"
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not is_listening(daemon.port)
    assert not os.path.exists(daemon.socket_path)


def test_sighup_reloads_the_config_without_restarting_anything(daemon_factory, graceful_apps):
    daemon = daemon_factory(servers={"alpha": graceful_apps["alpha"]})
    worker_and_apps = {p.pid for p in psutil.Process(daemon.proc.pid).children(recursive=True)}
    config = json.loads(daemon.config_path.read_text())
    config["servers"]["beta"] = graceful_apps["beta"]
    config["logging"]["actions"] = {"config.view": False}
    daemon.config_path.write_text(json.dumps(config))
    os.kill(daemon.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while daemon.get("/servers").json()["servers"].get("beta") != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert daemon.get("/servers").json() == {"servers": {"alpha": 1, "beta": 1}}
    after = {p.pid for p in psutil.Process(daemon.proc.pid).children(recursive=True)}
    assert worker_and_apps < after  # beta started; the worker and alpha are the same processes
    daemon.get("/config")
    assert not [e for e in daemon.action_log() if e.get("action") == "config.view"]


def test_sighup_with_a_broken_config_keeps_the_running_one(daemon_factory, graceful_apps):
    daemon = daemon_factory(servers={"alpha": graceful_apps["alpha"]})
    daemon.config_path.write_text("{ this is not json")
    os.kill(daemon.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "Config reload on SIGHUP failed" not in daemon.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "Config reload on SIGHUP failed" in daemon.output()
    assert daemon.proc.poll() is None
    assert daemon.get("/servers").json() == {"servers": {"alpha": 1}}


def test_ttin_and_ttou_never_change_the_single_worker(daemon_factory, graceful_apps):
    daemon = daemon_factory(servers={"alpha": graceful_apps["alpha"]})
    daemon.wait_for_running("alpha")  # its process is in the tree
    before = {p.pid for p in psutil.Process(daemon.proc.pid).children(recursive=True)}
    for expected, sig in enumerate((signal.SIGTTIN, signal.SIGTTOU), start=1):
        os.kill(daemon.proc.pid, sig)
        deadline = time.monotonic() + 5
        while daemon.output().count("Ignoring TTIN/TTOU") < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert daemon.output().count("Ignoring TTIN/TTOU") == expected
    assert {p.pid for p in psutil.Process(daemon.proc.pid).children(recursive=True)} == before
    assert daemon.get("/servers").json() == {"servers": {"alpha": 1}}


class StoppingArbiter:
    """The parts of gunicorn's arbiter the prompt stop uses: a worker that exits after ``exits_after`` looks."""

    def __init__(self, exits_after: int, graceful_timeout: float = 30):
        self.WORKERS = {1234: object()}
        self.SIG_QUEUE = queue.SimpleQueue()
        self.cfg = type("Cfg", (), {"graceful_timeout": graceful_timeout})()
        self.signals, self.looks, self.exits_after, self.stopped_with = [], 0, exits_after, None

    def kill_workers(self, sig):
        self.signals.append(sig)

    def reap_workers(self):
        self.looks += 1
        if self.looks >= self.exits_after:
            self.WORKERS.clear()

    def gunicorns_stop(self, graceful=True):
        self.stopped_with = graceful


@pytest.fixture
def thawed():
    """The stop freezes every object for the exit; the test process goes on living."""
    yield
    gc.unfreeze()


def test_the_master_hands_over_to_gunicorns_stop_as_soon_as_the_worker_has_exited(thawed):
    arbiter = StoppingArbiter(exits_after=3)
    stop_promptly(arbiter, arbiter.gunicorns_stop)
    assert arbiter.signals == [signal.SIGTERM] and arbiter.looks == 3 and arbiter.stopped_with is True


def test_a_quick_shutdown_asked_meanwhile_is_left_to_gunicorn(thawed):
    arbiter = StoppingArbiter(exits_after=10**9)
    arbiter.SIG_QUEUE.put(signal.SIGQUIT)
    stop_promptly(arbiter, arbiter.gunicorns_stop)
    assert arbiter.looks == 0 and arbiter.stopped_with is True and arbiter.SIG_QUEUE.get_nowait() == signal.SIGQUIT


def test_a_worker_that_never_exits_is_left_to_gunicorn_after_the_graceful_timeout(thawed):
    arbiter = StoppingArbiter(exits_after=10**9, graceful_timeout=0.05)
    stop_promptly(arbiter, arbiter.gunicorns_stop, graceful=False)
    assert arbiter.signals == [signal.SIGQUIT] and arbiter.stopped_with is False and arbiter.WORKERS


def test_master_and_worker_leave_their_objects_to_the_exit_instead_of_collecting_them_once_more(thawed):
    """What is left when a stopped process exits is frozen, so the interpreter's collections at exit skip it."""
    gc.unfreeze()
    stop_promptly(StoppingArbiter(exits_after=1), StoppingArbiter(exits_after=1).gunicorns_stop)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    worker_exit(None, type("BootFailedWorker", (), {"wsgi": None})())
    assert gc.get_freeze_count() > 0
