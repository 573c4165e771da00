"""Process isolation and limits, end to end: the real daemon as root, real cgroups (v1 on this machine),
real apps that allocate, spin, fork and escape their process group."""

from __future__ import annotations

import io
import json
import os
import pwd
import signal
import sys
import textwrap
import time
import zipfile

import psutil
import pytest
import requests
import websocket

from octyne_flask.supervisor.cgroups import V2Tree
from octyne_flask.supervisor.orphans import VARIABLE
from tests.cgrouphost import IS_ROOT, V2_BASE, daemon_parents, needs_v1, unique_name, v1_directory
from tests.harness import wait_until

PY = sys.executable
pytestmark = pytest.mark.skipif(not IS_ROOT, reason="running apps as another user and making cgroups need root")


def scrollback(daemon, server: str) -> list[str]:
    """The server's console as a new console-v2 client sees it on connect."""
    ws = websocket.create_connection(daemon.ws_url(f"/server/{server}/console"), timeout=10,
                                     subprotocols=["console-v2"], header=[f"Authorization: {daemon.token}"])
    try:
        while True:
            message = json.loads(ws.recv())
            if message["type"] == "output":
                return message["data"].lstrip("\n").split("\n")
    finally:
        ws.close()


def wait_for_line(daemon, server: str, predicate, timeout: float = 20) -> str:
    return wait_until(lambda: next((line for line in scrollback(daemon, server) if predicate(line)), None), timeout)


def app(directory, name: str, body: str) -> str:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(textwrap.dedent(body))
    return f"{PY} {name}"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def number_after(daemon, server: str, word: str) -> int:
    return int(wait_for_line(daemon, server, lambda line: line.startswith(word + " ")).split()[1])


def app_cgroups(config_path) -> list[str]:
    """The app cgroups under the daemon's parents (names, all hierarchies together)."""
    names = set()
    for parent in daemon_parents(config_path):
        if os.path.isdir(parent):
            names.update(entry.name for entry in os.scandir(parent) if entry.is_dir())
    return sorted(names)


ESCAPER = """
    import os, subprocess, time
    escaped = subprocess.Popen(["setsid", "sleep", "1000"])
    print("leader", os.getpid(), flush=True)
    print("escaped", escaped.pid, flush=True)
    time.sleep(1000)
"""


# -- environment, user, open files -------------------------------------------------------------

def test_an_app_runs_as_its_user_with_its_env_and_open_file_limit(daemon_factory, tmp_path):
    command = "sh -c 'id -u; id -g; echo \"greeting=$GREETING home=$HOME\"; ulimit -n; ulimit -Hn; sleep 1000'"
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": command, "user": "nobody",
                                     "env": {"GREETING": "hello there"}, "limits": {"openFiles": 4096}}})
    lines = wait_until(lambda: (found := scrollback(daemon, "app"))[5:] and found)
    nobody = pwd.getpwnam("nobody")
    assert lines[1:6] == [str(nobody.pw_uid), str(nobody.pw_gid), f"greeting=hello there home={nobody.pw_dir}",
                          "4096", "4096"]
    assert "Warning: server app runs as root" not in daemon.output()


def test_without_inherited_env_only_path_home_lang_and_env_remain(daemon_factory, tmp_path):
    command = app(tmp_path, "env.py", """
        import sys
        for entry in open("/proc/self/environ").read().split("\\0"):
            if entry:
                print("ENV", entry)
        sys.stdout.flush()
    """)
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": command, "inheritEnv": False,
                                     "env": {"ONLY": "this", "LANG": "C.UTF-8"}}},
                            env={"SECRET_OF_THE_DAEMON": "x", "LANG": "en_US.UTF-8"})
    wait_for_line(daemon, "app", lambda line: line == "[Octyne] Server app has stopped.")
    env = dict(line[4:].split("=", 1) for line in scrollback(daemon, "app") if line.startswith("ENV "))
    assert set(env) == {"PATH", "HOME", "LANG", "ONLY", VARIABLE}  # and the mark that finds orphaned apps
    assert (env["PATH"], env["HOME"]) == (os.environ["PATH"], os.environ["HOME"])
    assert (env["ONLY"], env["LANG"]) == ("this", "C.UTF-8")  # env wins over what is kept


def test_an_app_inherits_the_daemons_environment_by_default(daemon_factory, tmp_path):
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": "sh -c 'echo \"seen=$SECRET_OF_THE_DAEMON\"'"}},
                            env={"SECRET_OF_THE_DAEMON": "x"})
    assert wait_for_line(daemon, "app", lambda line: line.startswith("seen=")) == "seen=x"


def test_the_banner_names_the_cgroups_and_warns_about_apps_running_as_root(daemon_factory, tmp_path):
    daemon = daemon_factory({"rooty": {"directory": str(tmp_path), "command": "true", "enabled": False},
                             "safe": {"directory": str(tmp_path), "command": "true", "enabled": False, "user": "nobody"}})
    assert "Apps' cgroups: cgroup v1 (cpu, cpuacct, memory, pids) under " in daemon.output()
    assert "Warning: server rooty runs as root; set servers.rooty.user to run it as another user" in daemon.output()
    assert "server safe runs as root" not in daemon.output()


def test_an_unknown_user_in_patch_config_is_refused_and_the_file_untouched(daemon, tmp_path):
    before = daemon.config_path.read_bytes()
    document = json.loads(before)
    document["servers"] = {"x": {"directory": str(tmp_path), "command": "true", "user": "no-such-user-here"}}
    answer = daemon.patch("/config", data=json.dumps(document))
    assert answer.status_code == 400
    assert answer.json() == {"error": "Invalid JSON body!", "detail": "'servers.x.user' names no user on this system"}
    assert daemon.config_path.read_bytes() == before


# -- limits --------------------------------------------------------------------------------------

@needs_v1("memory")
def test_an_app_over_its_memory_limit_is_killed_reported_and_restarted(daemon_factory, tmp_path):
    hog = app(tmp_path, "hog.py", """
        print("allocating", flush=True)
        hoard = b"x" * (300 << 20)
        print("survived", flush=True)
    """)
    idle = app(tmp_path, "idle.py", "import os, time; print('pid', os.getpid(), flush=True); time.sleep(1000)")
    daemon = daemon_factory({"hog": {"directory": str(tmp_path), "command": hog, "limits": {"memory": "64M"}},
                             "idle": {"directory": str(tmp_path), "command": idle}})
    idle_pid = number_after(daemon, "idle", "pid")
    wait_until(lambda: scrollback(daemon, "hog").count("[Octyne] Server hog has crashed!") == 4, timeout=60)
    oom = "[Octyne] hog was killed: out of memory (limit 64M)"
    lines = [line for line in scrollback(daemon, "hog") if line.startswith("[Octyne]")]
    run = ["[Octyne] Started server hog", oom, "[Octyne] Server hog has crashed!"]
    assert lines == (run + ["[Octyne] Restarting server hog due to default behaviour."]) * 3 + run
    assert "survived" not in scrollback(daemon, "hog")
    assert daemon.get("/server/hog").json()["status"] == 2
    assert daemon.get("/server/hog?extrainfo=true").json()["outOfMemory"] is True
    events = [entry for entry in daemon.action_log() if entry.get("action") == "server.oom"]
    assert [(entry["server"], entry["limit"]) for entry in events] == [("hog", 64 << 20)] * 4
    assert daemon.get("/server/idle").json()["status"] == 1 and alive(idle_pid)  # the daemon and others unaffected


@needs_v1("cpu", "cpuacct")
def test_a_busy_loop_gets_at_most_its_cpu_limit(daemon_factory, tmp_path):
    busy = app(tmp_path, "busy.py", "import os; print('pid', os.getpid(), flush=True)\nwhile True: pass")
    daemon = daemon_factory({"busy": {"directory": str(tmp_path), "command": busy, "limits": {"cpu": 0.5}}})
    process = psutil.Process(number_after(daemon, "busy", "pid"))
    # The largest CPU weight for its cgroup and the daemon's parent, so that other work on this shared
    # machine cannot be what holds it back: only the quota can.
    cpu_dir = v1_directory(process.pid, "cpu")
    for directory in (cpu_dir, os.path.dirname(cpu_dir)):
        with open(os.path.join(directory, "cpu.shares"), "w") as shares:
            shares.write("262144")
    throttled_file = os.path.join(cpu_dir, "cpu.stat")

    def throttled() -> int:
        return int(open(throttled_file).read().split("nr_throttled ")[1].split()[0])

    throttled_before = throttled()
    cpu_before, wall_before = sum(process.cpu_times()[:2]), time.monotonic()
    time.sleep(3)
    cores = (sum(process.cpu_times()[:2]) - cpu_before) / (time.monotonic() - wall_before)
    assert cores <= 0.6
    wait_until(lambda: throttled() > throttled_before)  # it did reach its quota
    assert daemon.get("/server/busy").json()["cpuUsage"] <= 60  # the cgroup's figure, under the limit too


@needs_v1("pids")
def test_a_fork_bomb_hits_its_pids_limit_and_the_daemon_keeps_serving(daemon_factory, tmp_path):
    # Bounded even without the limit: at most 4 children per process, 4 levels (341 processes), 15 s each.
    bomb = app(tmp_path, "bomb.py", """
        import os, time
        deadline = time.monotonic() + 15
        depth = children = 0
        print("bombing", flush=True)
        while depth < 4 and children < 4:
            try:
                pid = os.fork()
            except BlockingIOError:
                print("fork failed", flush=True)
                break
            if pid == 0:
                depth, children = depth + 1, 0
            else:
                children += 1
        time.sleep(max(0.0, deadline - time.monotonic()))
    """)
    daemon = daemon_factory({"bomb": {"directory": str(tmp_path), "command": bomb,
                                      "limits": {"pids": 32, "cpu": 0.5}}})
    wait_for_line(daemon, "bomb", lambda line: line == "fork failed")
    started = time.monotonic()
    assert daemon.get("/servers").json() == {"servers": {"bomb": 1}}
    assert requests.get(daemon.url + "/", timeout=2).status_code == 200
    assert time.monotonic() - started < 2
    leader = psutil.Process(daemon.proc.pid).children(recursive=True)
    pids_dir = next(v1_directory(p.pid, "pids") for p in leader if p.cmdline()[-1:] == ["bomb.py"])
    assert int(open(os.path.join(pids_dir, "pids.current")).read()) <= 32
    assert int(open(os.path.join(pids_dir, "pids.events")).read().split()[-1]) > 0  # forks refused
    assert daemon.post("/server/bomb", data="KILL").json() == {"success": True}
    assert not os.path.exists(pids_dir)  # every process gone, the run's cgroup removed


# -- stopping everything in the cgroup ---------------------------------------------------------

@needs_v1("pids")
@pytest.mark.parametrize("operation", ["KILL", "TERM"])
def test_stop_and_kill_reach_a_process_that_left_the_process_group(daemon_factory, tmp_path, operation):
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": app(tmp_path, "escape.py", ESCAPER)}})
    leader, escaped = number_after(daemon, "app", "leader"), number_after(daemon, "app", "escaped")
    wait_until(lambda: os.getsid(escaped) != os.getsid(leader))  # setsid has run
    daemon.post("/server/app", data=operation)
    wait_until(lambda: daemon.get("/server/app").json()["status"] == 0)
    wait_until(lambda: not alive(escaped) and not alive(leader), timeout=5)
    assert app_cgroups(daemon.config_path) == []


@needs_v1("pids")
def test_daemon_shutdown_ends_escaped_processes_and_removes_its_cgroups(daemon_factory, tmp_path):
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": app(tmp_path, "escape.py", ESCAPER)}},
                            config={"stopGracePeriod": 1})
    escaped = number_after(daemon, "app", "escaped")
    assert app_cgroups(daemon.config_path) == ["app-app"]
    daemon.stop()
    assert not alive(escaped)
    assert not any(os.path.exists(parent) for parent in daemon_parents(daemon.config_path))


@needs_v1("pids")
def test_after_kill_9_a_restarted_daemon_cleans_the_stale_cgroup_and_runs_the_app_once(daemon_factory, tmp_path):
    servers = {"app": {"directory": str(tmp_path / "app"), "command": app(tmp_path / "app", "escape.py", ESCAPER)}}
    first = daemon_factory(servers, config={"stopGracePeriod": 1}, directory=tmp_path / "d")
    leader, escaped = number_after(first, "app", "leader"), number_after(first, "app", "escaped")
    os.killpg(first.proc.pid, signal.SIGKILL)  # gunicorn master and worker, at once
    first.proc.wait()
    wait_until(lambda: not alive(leader), timeout=10)  # the keeper stops the process group ...
    assert alive(escaped) and app_cgroups(first.config_path) == ["app-app"]  # ... not what left it
    second = daemon_factory(servers, config={"stopGracePeriod": 1}, directory=tmp_path / "d")
    new_leader = wait_until(lambda: (pid := number_after(second, "app", "leader")) != leader and pid)
    wait_until(lambda: not alive(escaped), timeout=10)
    assert app_cgroups(second.config_path) == ["app-app"]
    pids_dir = v1_directory(new_leader, "pids")
    in_cgroup = {int(pid) for pid in open(os.path.join(pids_dir, "cgroup.procs")).read().split()}
    assert in_cgroup == {new_leader, number_after(second, "app", "escaped")}  # one run, nothing of the old one
    apps = [p.pid for p in psutil.process_iter(["cmdline", "cwd", "status"]) if (p.info["cmdline"] or [])[-1:] == ["escape.py"]
            and p.info["status"] != psutil.STATUS_ZOMBIE and p.info["cwd"] == str(tmp_path / "app")]
    assert apps == [new_leader]
    second.stop()
    assert not any(os.path.exists(parent) for parent in daemon_parents(second.config_path))


# -- stats -------------------------------------------------------------------------------------

@needs_v1("memory", "cpuacct")
def test_stats_come_from_the_cgroup_and_total_memory_is_the_limit(daemon_factory, tmp_path):
    holder = app(tmp_path, "hold.py", """
        import os, subprocess, sys, time
        keep = b"x" * (40 << 20)
        child = subprocess.Popen(["setsid", sys.executable, "-c", "import time; b = b'y' * (30 << 20); time.sleep(1000)"])
        time.sleep(1)
        print("holding", flush=True)
        time.sleep(1000)
    """)
    daemon = daemon_factory({"hold": {"directory": str(tmp_path), "command": holder, "limits": {"memory": "256M"}},
                             "free": {"directory": str(tmp_path), "command": "sleep 1000"}})
    wait_for_line(daemon, "hold", lambda line: line == "holding")
    info = daemon.get("/server/hold").json()
    assert info["totalMemory"] == 256 << 20
    assert info["memoryUsage"] >= 70 << 20  # both processes, the one that left the tree too
    assert daemon.get("/server/free").json()["totalMemory"] == psutil.virtual_memory().total
    extra = daemon.get("/server/hold?extrainfo=true").json()
    assert extra["limits"] == {"memory": 256 << 20, "cpu": None, "pids": None, "openFiles": None}
    assert extra["outOfMemory"] is False
    assert list(daemon.get("/server/hold").json()) == ["status", "uptime", "cpuUsage", "memoryUsage", "totalMemory",
                                                       "toDelete"]


# -- where no cgroup can be used ---------------------------------------------------------------

def supervisor_with(tmp_path, cgroups, **entry):
    from octyne_flask.config import config_from_document
    from octyne_flask.supervisor import Supervisor

    document = {"stopGracePeriod": 1, "servers": {"s": {"directory": str(tmp_path), **entry}}}
    supervisor = Supervisor(config_from_document(document), cgroups=cgroups)
    supervisor.start_enabled()
    return supervisor


def test_without_a_usable_cgroup_an_app_with_limits_does_not_start_and_says_why(tmp_path):
    from octyne_flask.supervisor.cgroups import NoCgroups

    supervisor = supervisor_with(tmp_path, NoCgroups("no cgroup hierarchy is mounted"), command="sleep 1000",
                                 limits={"memory": "64M", "pids": 10})
    try:
        server = supervisor.get("s")
        wait_until(lambda: server.status == 2)
        time.sleep(0.3)  # no restart loop
        assert server.console.scrollback() == [
            "[Octyne] Failed to start server s! The following error occurred: limits (memory, pids) need a usable "
            "cgroup, and there is none: no cgroup hierarchy is mounted"]
        assert server.start() is False and server.status == 2
    finally:
        supervisor.shutdown()


def test_without_a_usable_cgroup_an_app_without_cgroup_limits_still_runs_with_its_open_file_limit(tmp_path):
    from octyne_flask.supervisor.cgroups import NoCgroups

    supervisor = supervisor_with(tmp_path, NoCgroups("none here"), command="sh -c 'ulimit -n'",
                                 limits={"openFiles": 512})
    try:
        wait_until(lambda: supervisor.get("s").console.scrollback()[1:2] == ["512"])
    finally:
        supervisor.shutdown()


@pytest.mark.skipif(V2_BASE is None, reason="needs a writable cgroup v2 hierarchy")
def test_on_cgroup_v2_without_the_memory_controller_a_memory_limit_refuses_the_start(tmp_path):
    tree = V2Tree(V2_BASE, unique_name())
    if "memory" in tree.controllers():
        pytest.skip("this machine's cgroup v2 offers the memory controller")
    supervisor = supervisor_with(tmp_path, tree, command="sleep 1000", limits={"memory": "64M"})
    try:
        server = supervisor.get("s")
        wait_until(lambda: server.status == 2)
        assert "the memory cgroup controller is not enabled for" in server.console.scrollback()[0]
    finally:
        supervisor.shutdown()
    assert not os.path.exists(tree.parents[0])


@pytest.mark.skipif(V2_BASE is None, reason="needs a writable cgroup v2 hierarchy")
def test_on_cgroup_v2_kill_reaches_an_escaped_process_and_stats_use_the_cgroup(tmp_path):
    tree = V2Tree(V2_BASE, unique_name())
    supervisor = supervisor_with(tmp_path, tree, command=app(tmp_path, "escape.py", ESCAPER))
    try:
        server = supervisor.get("s")
        escaped = int(wait_until(lambda: next((line for line in server.console.scrollback()
                                               if line.startswith("escaped ")), None)).split()[1])
        assert server.stats().memory_bytes > 0  # no memory controller here: from the process tree
        server.kill()
        wait_until(lambda: not alive(escaped), timeout=5)
        assert os.listdir(tree.parents[0]) == [name for name in os.listdir(tree.parents[0]) if "." in name]
    finally:
        supervisor.shutdown()
    assert not os.path.exists(tree.parents[0])


# -- what the file API creates belongs to the server's user -------------------------------------

def owners(root, relative_paths) -> dict:
    return {path: (os.lstat(root / path).st_uid, os.lstat(root / path).st_gid) for path in relative_paths}


def test_what_the_file_api_creates_belongs_to_the_servers_user(daemon_factory, tmp_path):
    nobody = pwd.getpwnam("nobody")
    run_as, daemons = (nobody.pw_uid, nobody.pw_gid), (os.geteuid(), os.getegid())
    apps = {name: tmp_path / name for name in ("confined", "plain")}
    for root in apps.values():
        (root / "existing").mkdir(parents=True)
        (root / "existing" / "kept.txt").write_text("root's")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("world/level.dat", b"level")
        bundle.writestr("world/region/r.0.0.mca", b"region")
        bundle.writestr("readme.txt", b"hi")
    daemon = daemon_factory({"confined": {"directory": str(apps["confined"]), "command": "true", "enabled": False,
                                          "user": "nobody"},
                             "plain": {"directory": str(apps["plain"]), "command": "true", "enabled": False}})
    for name, root in apps.items():
        base = f"/server/{name}"
        assert daemon.post(f"{base}/file?path=/", files={"upload": ("uploaded.txt", b"data")}).status_code == 200
        assert daemon.post(f"{base}/file?path=/", files={"upload": ("bundle.zip", archive.getvalue())}).status_code == 200
        assert daemon.post(f"{base}/folder?path=/made").status_code == 200
        assert daemon.patch(f"{base}/file", data=json.dumps(
            {"operation": "cp", "src": "/existing", "dest": "/copied"})).status_code == 200
        assert daemon.patch(f"{base}/files", json={"operations": [
            {"operation": "cp", "src": "/existing/kept.txt", "dest": "/made/kept-copy.txt"}]}).status_code == 200
        assert daemon.post(f"{base}/decompress?path=/bundle.zip", data=b"/new/unpacked").status_code == 200
        assert daemon.post(f"{base}/compress?path=/archive.tar.gz&archiveType=tar&compress=gzip",
                           json=["uploaded.txt"]).status_code == 200
    created = ["uploaded.txt", "bundle.zip", "made", "copied", "copied/kept.txt", "made/kept-copy.txt", "new",
               "new/unpacked", "new/unpacked/world", "new/unpacked/world/region", "new/unpacked/world/region/r.0.0.mca",
               "new/unpacked/readme.txt", "archive.tar.gz"]
    assert owners(apps["confined"], created) == {path: run_as for path in created}
    assert owners(apps["plain"], created) == {path: daemons for path in created}
    untouched = ["existing", "existing/kept.txt"]
    assert owners(apps["confined"], untouched) == {path: daemons for path in untouched}
