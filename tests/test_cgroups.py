"""The cgroup implementations with real cgroups (as root): detection, placement before exec, limits, usage,
OOM counting, killing everything inside, stale cleanup. v1 is what this machine has; its cgroup v2 hierarchy
has no controllers, so v2 is tested for placement, cgroup.kill, CPU usage, refusing limits and leaving a
delegated cgroup; v2 limits themselves are not testable here."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from octyne_flask.config import config_from_document
from octyne_flask.supervisor.cgroups import CgroupError, NoCgroups, V1Tree, V2Tree
from octyne_flask.supervisor.cgroups.detect import Mount, choose, read_mounts, read_own_cgroups
from octyne_flask.supervisor.child import Child
from tests import cgrouphost
from tests.cgrouphost import V2_BASE, needs_v1, needs_v2, unique_name
from tests.harness import REPO, wait_until

PY = sys.executable


def server_config(tmp_path, command: str, **entry):
    document = {"servers": {"s": {"directory": str(tmp_path), "command": command, **entry}}}
    return config_from_document(document).servers["s"]


def app(tmp_path, body: str) -> str:
    (tmp_path / "app.py").write_text(textwrap.dedent(body))
    return f"{PY} app.py"


@pytest.fixture
def trees():
    """``make(kind)`` -> a fresh V1Tree or V2Tree with a unique name; emptied and removed after the test."""
    made = []

    def make(kind: str):
        tree = cgrouphost.v1_tree() if kind == "v1" else cgrouphost.v2_tree()
        made.append(tree)
        return tree

    yield make
    for tree in made:
        tree.sweep()
        tree.close()
        assert not any(os.path.exists(parent) for parent in tree.parents)


def run_in(cgroup, tmp_path, body: str) -> Child:
    return Child.spawn(server_config(tmp_path, app(tmp_path, body)), cgroup)


def output(child: Child, until: str, timeout: float = 10) -> str:
    """Read the child's output up to the end of the first line holding ``until``."""
    text = ""
    deadline = time.monotonic() + timeout
    while not any(until in line for line in text.splitlines(keepends=True) if line.endswith("\n")):
        assert time.monotonic() < deadline, f"no {until!r} in {text!r}"
        text += os.read(child.output_fd, 65536).decode()
    return text.rstrip("\n")


def alive(pid: int) -> bool:
    """Running (a killed process whose new parent has not reaped it yet runs nothing)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def finish(child: Child) -> None:
    child.signal(signal.SIGKILL)
    child.wait_group_gone(5)
    child.reap()
    os.close(child.output_fd)


# -- detection ---------------------------------------------------------------------------------

def fake_host(tmp_path, *, v2_controllers: str | None, v1: tuple = ()) -> tuple[list[Mount], dict[str, str]]:
    """Mounts and own cgroups of an imagined host whose hierarchies are folders under ``tmp_path``."""
    mounts, own = [], {}
    if v2_controllers is not None:
        (tmp_path / "unified").mkdir()
        (tmp_path / "unified" / "cgroup.controllers").write_text(v2_controllers + "\n")
        mounts.append(Mount("cgroup2", str(tmp_path / "unified"), "/", frozenset({"rw"})))
        own[""] = "/"
    for controllers in v1:
        (tmp_path / controllers / "daemon").mkdir(parents=True)
        mounts.append(Mount("cgroup", str(tmp_path / controllers), "/", frozenset({"rw", *controllers.split(",")})))
        own[controllers] = "/daemon"
    return mounts, own


def test_v2_is_chosen_when_it_offers_memory_cpu_and_pids(tmp_path):
    mounts, own = fake_host(tmp_path, v2_controllers="cpuset cpu io memory pids", v1=("memory",))
    tree = choose("octyne-flask-x", mounts, own)
    assert isinstance(tree, V2Tree) and tree.parents == [str(tmp_path / "unified" / "octyne-flask-x")]


def test_v1_is_chosen_when_v2_lacks_controllers_and_co_mounted_controllers_share_a_directory(tmp_path):
    mounts, own = fake_host(tmp_path, v2_controllers="", v1=("memory", "cpu,cpuacct", "pids"))
    tree = choose("octyne-flask-x", mounts, own)
    assert isinstance(tree, V1Tree)
    assert tree.parents == [str(tmp_path / name / "daemon" / "octyne-flask-x") for name in ("memory", "cpu,cpuacct", "pids")]
    assert tree.controllers == {"memory": 0, "cpu": 1, "cpuacct": 1, "pids": 2}


def test_v2_without_controllers_still_tracks_the_apps_when_there_is_no_v1(tmp_path):
    assert isinstance(choose("octyne-flask-x", *fake_host(tmp_path, v2_controllers="")), V2Tree)


def test_no_cgroups_says_why(tmp_path):
    tree = choose("octyne-flask-x", [], {})
    assert isinstance(tree, NoCgroups)
    assert "no cgroup v2 hierarchy; no writable cgroup v1 hierarchy" in tree.describe()
    with pytest.raises(CgroupError, match="limits \\(memory\\) need a usable cgroup"):
        tree.create("s", {"memory": 1 << 26})
    assert tree.create("s", {}) is None


def test_a_v2_cgroup_that_is_not_delegated_is_not_used(tmp_path):
    mounts, own = fake_host(tmp_path, v2_controllers="cpu memory pids")
    (tmp_path / "unified" / "system.slice" / "octyne.service").mkdir(parents=True)
    own[""] = "/system.slice/octyne.service"
    tree = choose("octyne-flask-x", mounts, own)
    assert isinstance(tree, NoCgroups) and "not delegated to it (systemd: Delegate=yes)" in tree.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="setting trusted.* attributes needs root")
def test_a_daemon_in_systemds_delegate_subgroup_puts_its_apps_beside_itself(tmp_path):
    mounts, own = fake_host(tmp_path, v2_controllers="cpu memory pids")
    service = tmp_path / "unified" / "system.slice" / "octyne.service"
    (service / "daemon").mkdir(parents=True)
    (service / "cgroup.controllers").write_text("cpu memory pids\n")
    try:
        os.setxattr(service, "trusted.delegate", b"1")
    except OSError as error:
        pytest.skip(f"this file system keeps no trusted.* attributes: {error}")
    own[""] = "/system.slice/octyne.service/daemon"
    tree = choose("octyne-flask-x", mounts, own)
    assert isinstance(tree, V2Tree) and tree.parents == [str(service / "octyne-flask-x")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check as another user")
def test_a_daemon_that_is_not_root_sees_delegation_in_owning_its_cgroup():
    """systemd gives a delegated cgroup to the unit's User=, and only root may read its trusted.delegate mark."""
    host = Path(tempfile.mkdtemp(prefix="octyne-delegation-"))
    try:
        host.chmod(0o755)
        service = host / "unified" / "system.slice" / "octyne.service"
        service.mkdir(parents=True)
        (service / "cgroup.controllers").write_text("cpu memory pids\n")
        os.chown(service, 65534, 65534)
        check = textwrap.dedent(f"""
            import encodings.ascii, os  # imported while Python's own files (under /root here) are readable
            from octyne_flask.supervisor.cgroups.detect import Mount, choose
            mounts = [Mount("cgroup2", {str(host / "unified")!r}, "/", frozenset({{"rw"}}))]
            os.seteuid(65534)
            tree = choose("octyne-flask-x", mounts, {{"": "/system.slice/octyne.service"}})
            print(type(tree).__name__, tree.parents)
        """)
        done = subprocess.run([PY, "-c", check], capture_output=True, text=True, cwd=REPO, timeout=30,
                              env={"PYTHONPATH": str(REPO)})
        assert done.stdout.split(" ", 1) == ["V2Tree", f"{[str(service / 'octyne-flask-x')]}\n"], done.stderr
    finally:
        shutil.rmtree(host)


def test_this_hosts_mounts_and_own_cgroups_are_read():
    mounts, own = read_mounts(), read_own_cgroups()
    assert all(mount.fstype in ("cgroup", "cgroup2") for mount in mounts)
    assert all(path.startswith("/") for path in own.values())


# -- v1, for real ------------------------------------------------------------------------------

@needs_v1("memory", "cpu", "pids")
def test_v1_app_is_in_its_cgroup_from_its_first_instruction_with_the_limits_written(tmp_path, trees):
    tree = trees("v1")
    cgroup = tree.create("s", {"memory": 64 << 20, "cpu": 0.5, "pids": 32})
    memory, cpu, pids = (cgroup.directories[tree.controllers[name]] for name in ("memory", "cpu", "pids"))
    assert open(f"{memory}/memory.limit_in_bytes").read().strip() == str(64 << 20)
    assert open(f"{cpu}/cpu.cfs_quota_us").read().strip() == "50000"
    assert open(f"{cpu}/cpu.cfs_period_us").read().strip() == "100000"
    assert open(f"{pids}/pids.max").read().strip() == "32"
    child = run_in(cgroup, tmp_path, "print(open('/proc/self/cgroup').read(), flush=True)")
    text = output(child, "memory:")
    memory_line = next(line for line in text.splitlines() if ":memory:" in line)
    assert memory.endswith(memory_line.split(":", 2)[2])
    finish(child)
    assert cgroup.remove() and not os.path.exists(memory)


@needs_v1("memory")
def test_v1_counts_an_oom_kill_and_reports_memory_use_without_cache(tmp_path, trees):
    cgroup = trees("v1").create("s", {"memory": 64 << 20})
    child = run_in(cgroup, tmp_path, """
        import time
        keep = b"x" * (40 << 20)
        print("holding", flush=True)
        time.sleep(1)
        more = b"y" * (300 << 20)
        print("survived", flush=True)
    """)
    output(child, "holding")
    assert cgroup.usage().memory_bytes >= 40 << 20
    child.wait_group_gone(10)
    assert child.reap() == 128 + signal.SIGKILL
    assert cgroup.oom_kills() == 1
    os.close(child.output_fd)


@needs_v1("pids")
def test_v1_kill_reaches_a_process_that_left_the_process_group(tmp_path, trees):
    cgroup = trees("v1").create("s", {})
    child = run_in(cgroup, tmp_path, """
        import subprocess
        escaped = subprocess.Popen(["setsid", "sleep", "1000"])
        print("escaped", escaped.pid, flush=True)
        import time; time.sleep(1000)
    """)
    escaped = int(output(child, "escaped").split()[-1])
    wait_until(lambda: escaped in cgroup.pids())
    wait_until(lambda: os.getpgid(escaped) != child.pid)  # setsid has run
    child.signal(signal.SIGKILL)
    assert child.wait_group_gone(5)
    assert cgroup.pids() == set() and not alive(escaped)
    child.reap()
    os.close(child.output_fd)


@needs_v1("memory", "pids")
def test_sweep_empties_and_removes_what_a_dead_daemon_left_and_create_replaces_a_stale_cgroup(tmp_path, trees):
    first = trees("v1")
    left_behind = subprocess.Popen(["setsid", "sleep", "1000"])
    first.create("s", {}).place(left_behind.pid)
    stale = first.create("other", {})
    stale_sleep = subprocess.Popen(["sleep", "1000"])
    stale.place(stale_sleep.pid)
    again = V1Tree(cgrouphost.V1_HIERARCHIES, os.path.basename(first.parents[0]))  # the restarted daemon
    fresh = again.create("s", {})
    assert left_behind.wait(5) == -signal.SIGKILL and fresh.pids() == set()
    again.sweep()
    assert stale_sleep.wait(5) == -signal.SIGKILL
    assert [entry for parent in again.parents for entry in os.scandir(parent) if entry.is_dir()] == []


@needs_v1("cpuacct")
def test_v1_cpu_usage_is_the_whole_cgroups(tmp_path, trees):
    cgroup = trees("v1").create("s", {})
    child = run_in(cgroup, tmp_path, """
        import os, time
        if os.fork() == 0:
            while time.process_time() < 0.3: pass  # CPU time, however loaded the machine is
            os._exit(0)
        os.wait()
        print("done", flush=True)
        time.sleep(100)
    """)
    output(child, "done")
    assert cgroup.usage().cpu_seconds >= 0.3  # the forked child's CPU time counts
    finish(child)


# -- v2, as far as this machine allows ---------------------------------------------------------

@needs_v2
def test_v2_places_the_app_and_cgroup_kill_reaches_a_process_that_left_the_group(tmp_path, trees):
    tree = trees("v2")
    cgroup = tree.create("s", {})
    child = run_in(cgroup, tmp_path, """
        import subprocess
        print(open('/proc/self/cgroup').read(), flush=True)
        escaped = subprocess.Popen(["setsid", "sleep", "1000"])
        print("escaped", escaped.pid, flush=True)
        import time
        while time.process_time() < 0.3: pass
        time.sleep(1000)
    """)
    text = output(child, "escaped")
    relative = cgroup.directories[0][len(V2_BASE):] or "/"
    assert f"0::{relative}\n" in text
    escaped = int(text.split()[-1])
    # The app burns 0.3 s of CPU and the cgroup must count at least 0.2: its own clock includes what ran
    # before it joined the cgroup, so a busy loop to exactly 0.2 s left the cgroup at 0.199 (CI failures).
    wait_until(lambda: cgroup.usage().cpu_seconds >= 0.2, timeout=30)
    assert cgroup.usage().memory_bytes is None  # no memory controller on this machine's cgroup v2
    child.signal(signal.SIGKILL)  # cgroup.kill
    assert child.wait_group_gone(5) and not alive(escaped)
    child.reap()
    os.close(child.output_fd)


@needs_v2
def test_v2_refuses_limits_its_controllers_do_not_offer_and_leaves_nothing(trees):
    tree = trees("v2")
    if "memory" in tree.controllers():
        pytest.skip("this machine's cgroup v2 has the memory controller")
    with pytest.raises(CgroupError, match="memory cgroup controller is not enabled"):
        tree.create("s", {"memory": 64 << 20})
    assert os.listdir(tree.parents[0]) == [name for name in os.listdir(tree.parents[0]) if not name.startswith("app-")]


@needs_v2
def test_v2_in_a_delegated_cgroup_moves_the_daemon_to_a_leaf_before_making_cgroups(tmp_path):
    """Delegate=yes without DelegateSubgroup=: the daemon's own cgroup must give up its processes first."""
    service = os.path.join(V2_BASE, unique_name())
    os.mkdir(service)
    os.setxattr(service, "trusted.delegate", b"1")
    script = textwrap.dedent("""
        from octyne_flask.supervisor.cgroups import V2Tree
        from octyne_flask.supervisor.cgroups.detect import read_mounts, read_own_cgroups, v2_base
        base, evacuate, _ = v2_base(read_mounts(), read_own_cgroups())
        tree = V2Tree(base, "octyne-flask-evacuee", evacuate)
        cgroup = tree.create("s", {})
        print(tree.version, cgroup.directories[0])
        print(open("/proc/self/cgroup").read())
        cgroup.remove(); tree.close()
    """)
    placement = os.open(os.path.join(service, "cgroup.procs"), os.O_WRONLY)
    try:
        done = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=30, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              preexec_fn=lambda: os.write(placement, b"0"))
    finally:
        os.close(placement)
        for leftover in ("daemon", ""):
            os.rmdir(os.path.join(service, leftover))
    assert done.returncode == 0, done.stderr
    assert f"{os.path.join(service, 'octyne-flask-evacuee', 'app-s')}" in done.stdout
    assert f"0::{service[len(V2_BASE):]}/daemon\n" in done.stdout
