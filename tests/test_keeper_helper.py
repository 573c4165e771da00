"""The keeper's helper, ``keeper.sh``, run on its own as ``GroupKeeper`` runs it: registered groups are
stopped at end of input (TERM, then KILL after the grace period), nothing else is touched, and it exits
only once its groups are gone, holding whatever it inherited (the apps lock) until then."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest

from octyne_flask.supervisor.keeper import HELPER
from tests.harness import wait_until

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def start_group(code: str = "import time; print('ready', flush=True); time.sleep(60)") -> subprocess.Popen:
    """A process leading its own group, once it is ready (signal handlers set)."""
    process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"ready\n"
    return process


def run_keeper(grace_ms: int, lines: str, **options) -> subprocess.Popen:
    """The helper as the keeper starts it, fed ``lines`` and then end of file."""
    keeper = subprocess.Popen(["/bin/sh", str(HELPER), str(grace_ms)], stdin=subprocess.PIPE,
                              start_new_session=True, env={}, **options)
    keeper.stdin.write(lines.encode())
    keeper.stdin.close()
    return keeper


@pytest.fixture
def groups():
    started = []
    yield lambda *args: started.append(start_group(*args)) or started[-1]
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_at_end_of_input_the_registered_groups_get_sigterm_and_the_removed_one_nothing(groups):
    first, removed, last = groups(), groups(), groups()
    keeper = run_keeper(10_000, f"+{first.pid}\n+{removed.pid}\n+{last.pid}\n-{removed.pid}\n")
    assert keeper.wait(10) == 0
    assert first.wait(5) == -signal.SIGTERM and last.wait(5) == -signal.SIGTERM
    assert removed.poll() is None


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace_period_not_before(groups):
    stubborn = groups(IGNORES_TERM)
    started = time.monotonic()
    keeper = run_keeper(1_000, f"+{stubborn.pid}\n")
    time.sleep(0.6)
    assert stubborn.poll() is None  # within the grace period it may still stop on its own
    assert stubborn.wait(10) == -signal.SIGKILL
    assert keeper.wait(10) == 0
    assert time.monotonic() - started >= 1.0


def test_it_exits_only_once_its_groups_are_gone_and_holds_the_inherited_lock_until_then(groups, tmp_path):
    stubborn = groups(IGNORES_TERM)
    lock = os.open(tmp_path / "apps.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    keeper = run_keeper(1_500, f"+{stubborn.pid}\n", pass_fds=(lock,))
    os.close(lock)
    other = os.open(tmp_path / "apps.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # the helper's copy still holds it during the grace period
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert keeper.poll() is None
        assert stubborn.wait(10) == -signal.SIGKILL
        assert keeper.wait(10) == 0
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


def test_a_group_left_with_only_a_zombie_runs_nothing_and_is_not_waited_for():
    zombie = subprocess.Popen(["true"], start_new_session=True)  # never reaped until the end of the test
    wait_until(lambda: open(f"/proc/{zombie.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
    started = time.monotonic()
    keeper = run_keeper(20_000, f"+{zombie.pid}\n")
    assert keeper.wait(10) == 0
    assert time.monotonic() - started < 5  # far within the grace period
    zombie.wait()


def test_lines_that_are_not_a_group_are_ignored_and_a_group_registered_twice_is_one_group(groups):
    app = groups()
    keeper = run_keeper(10_000, f"+1\n+0\n+\n+abc\n+-{app.pid}\nx{app.pid}\n+{app.pid}\n+{app.pid}\n-{app.pid}\n")
    assert keeper.wait(10) == 0
    assert app.poll() is None  # registered twice, removed once: removed
    keeper = run_keeper(10_000, f"+1\n+0\n+{app.pid} \n+{app.pid}\n")
    assert keeper.wait(10) == 0
    assert app.wait(5) == -signal.SIGTERM


def test_a_process_named_like_a_stat_line_does_not_pass_for_a_running_group(groups):
    app = groups()
    # "<pid> () R 1 <app's group> " then a newline: line by line, that first line reads as a process of the group
    decoy = groups(f"open('/proc/self/comm', 'w').write(') R 1 {app.pid} \\n'); import time; print('ready', flush=True); time.sleep(60)")
    assert open(f"/proc/{decoy.pid}/comm").read() == f") R 1 {app.pid} \n\n"
    started = time.monotonic()
    keeper = run_keeper(30_000, f"+{app.pid}\n")
    assert app.wait(5) == -signal.SIGTERM
    assert keeper.wait(10) == 0
    assert time.monotonic() - started < 5  # far within the grace period: nothing of the group runs
    assert decoy.poll() is None


def test_with_nothing_registered_it_exits_at_once():
    keeper = run_keeper(60_000, "")
    assert keeper.wait(5) == 0
