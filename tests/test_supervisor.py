"""The supervisor with real child processes: exit rules, restarts, stopping whole trees, reload, shutdown."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from octyne_flask.config import StopConfig, config_from_document
from octyne_flask.supervisor import CRASHED, RUNNING, STOPPED, Supervisor, process
from octyne_flask.supervisor.stats import MAX_AGE
from tests.harness import wait_until

PY = sys.executable


def script(tmp_path, name: str, body: str) -> str:
    """Write a small Python app into the server directory; returns its command line."""
    (tmp_path / name).write_text(textwrap.dedent(body))
    return f"{PY} {name}"


def config_for(tmp_path, servers: dict, **extra):
    document = {"stopGracePeriod": 1, **extra,
                "servers": {name: {"directory": str(tmp_path), **entry} for name, entry in servers.items()}}
    return config_from_document(document)


@pytest.fixture
def supervise(tmp_path):
    """``supervise(servers, **top_level)`` -> a Supervisor with its enabled servers started; shut down after."""
    made = []

    def make(servers: dict, **extra) -> Supervisor:
        supervisor = Supervisor(config_for(tmp_path, servers, **extra))
        made.append(supervisor)
        supervisor.start_enabled()
        return supervisor

    yield make
    for supervisor in made:
        supervisor.shutdown()


def lines(server) -> list[str]:
    return server.console.scrollback()


SLEEPER = """
import os, time
print("pid", os.getpid(), flush=True)
time.sleep(60)
"""

FORKER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("pids", os.getpid(), child.pid, flush=True)
time.sleep(60)
"""


def pid_of(server) -> int:
    line = wait_until(lambda: next((l for l in lines(server) if l.startswith("pid ")), None))
    return int(line.split()[1])


def tree_pids(server) -> list[int]:
    line = wait_until(lambda: next((l for l in lines(server) if l.startswith("pids ")), None))
    return [int(p) for p in line.split()[1:]]


def gone(pids) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_exit_code_zero_is_stopped(tmp_path, supervise):
    sup = supervise({"ok": {"command": script(tmp_path, "ok.py", "print('bye')")}})
    server = sup.get("ok")
    wait_until(lambda: "[Octyne] Server ok has stopped." in lines(server))
    assert server.status == STOPPED
    assert lines(server) == ["[Octyne] Started server ok", "bye", "[Octyne] Server ok has stopped."]


def test_a_crashing_app_runs_four_times_then_stays_crashed(tmp_path, supervise):
    sup = supervise({"bad": {"command": script(tmp_path, "bad.py", "import sys; sys.exit(3)")}})
    server = sup.get("bad")
    wait_until(lambda: lines(server).count("[Octyne] Server bad has crashed!") == 4)
    time.sleep(0.3)  # no fifth run
    started, crashed = "[Octyne] Started server bad", "[Octyne] Server bad has crashed!"
    restarting = "[Octyne] Restarting server bad due to default behaviour."
    assert lines(server) == [started, crashed, restarting] * 3 + [started, crashed]  # each crash, then its restart
    assert server.status == CRASHED


@pytest.mark.parametrize("code", [130, 143])
def test_exit_codes_of_interrupt_and_terminate_count_as_stopped(tmp_path, supervise, code):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", f"import sys; sys.exit({code})")}})
    wait_until(lambda: "[Octyne] Server s has stopped." in lines(sup.get("s")))
    assert sup.get("s").status == STOPPED


def test_term_stops_an_app_that_does_not_trap_sigterm_without_restart(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", SLEEPER)}})
    server = sup.get("s")
    pid = pid_of(server)
    server.term()
    wait_until(lambda: server.status == STOPPED)
    time.sleep(0.2)
    assert lines(server)[-2:] == ["[Octyne] Stopping server s", "[Octyne] Server s has stopped."]
    assert "[Octyne] Restarting server s due to default behaviour." not in lines(server)
    assert not psutil.pid_exists(pid)


def test_kill_is_a_stop_and_is_complete_when_it_returns(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", SLEEPER)}})
    server = sup.get("s")
    pid = pid_of(server)
    server.kill()
    assert server.status == STOPPED
    assert lines(server)[-2:] == ["[Octyne] Killing server s", "[Octyne] Server s has stopped."]
    assert server.start() is True
    assert server.status == RUNNING
    wait_until(lambda: lines(server).count("[Octyne] Started server s") == 2)
    assert not psutil.pid_exists(pid)


def test_start_while_running_starts_no_second_process(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", SLEEPER)}})
    server = sup.get("s")
    pid_of(server)
    assert server.start() is True
    time.sleep(0.2)
    assert lines(server).count("[Octyne] Started server s") == 1


def test_a_command_that_cannot_start_is_crashed_and_start_says_so(tmp_path, supervise):
    sup = supervise({"s": {"command": "no-such-program-anywhere --flag", "enabled": False}})
    server = sup.get("s")
    assert server.start() is False
    assert server.status == CRASHED
    assert "Failed to start server s" in lines(server)[-1]


def test_commands_are_split_like_a_shell_without_running_one(tmp_path, supervise):
    command = script(tmp_path, "args.py", "import sys; print(sys.argv[1:])") + " 'two words' \"$HOME\""
    sup = supervise({"s": {"command": command}})
    wait_until(lambda: "[Octyne] Server s has stopped." in lines(sup.get("s")))
    assert "['two words', '$HOME']" in lines(sup.get("s"))


@pytest.mark.parametrize("action", ["term", "kill"])
def test_stopping_reaches_the_whole_process_tree(tmp_path, supervise, action):
    sup = supervise({"s": {"command": script(tmp_path, "f.py", FORKER)}})
    server = sup.get("s")
    pids = tree_pids(server)
    getattr(server, action)()
    wait_until(lambda: server.status == STOPPED)
    wait_until(lambda: gone(pids), timeout=5)


def test_a_shell_wrapper_is_stopped_with_its_children(tmp_path, supervise):
    script(tmp_path, "s.py", SLEEPER)
    sup = supervise({"s": {"command": f"sh -c '{PY} s.py; echo after'"}})
    server = sup.get("s")
    pid = pid_of(server)
    server.term()
    wait_until(lambda: server.status == STOPPED)
    wait_until(lambda: gone([pid]), timeout=5)


def test_memory_counts_the_whole_tree(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "f.py", FORKER)}})
    server = sup.get("s")
    parent, child = tree_pids(server)
    time.sleep(1.1)  # the tree is re-scanned at most once a second
    stats = server.stats()
    assert isinstance(stats.memory_bytes, int)
    assert stats.memory_bytes >= psutil.Process(parent).memory_info().rss + psutil.Process(child).memory_info().rss * 0.9
    assert stats.uptime_ns > 1_000_000_000


def test_cpu_usage_of_a_busy_app_is_reported_in_percent(tmp_path, supervise):
    busy = "import os\nprint('pid', os.getpid(), flush=True)\nwhile True: pass"
    sup = supervise({"s": {"command": script(tmp_path, "busy.py", busy)}})
    server = sup.get("s")
    app = psutil.Process(pid_of(server))
    server.stats()
    before, started = sum(app.cpu_times()[:2]), time.monotonic()
    time.sleep(MAX_AGE + 0.2)  # a reading serves callers for up to MAX_AGE: the next call reads afresh
    reported = server.stats().cpu_percent
    used = 100 * (sum(app.cpu_times()[:2]) - before) / (time.monotonic() - started)
    # Compared with what the kernel says the app used over the same interval, so a
    # loaded machine (where the loop gets little CPU) cannot make the test fail.
    assert reported > 1 and used * 0.5 - 5 < reported < used * 1.5 + 5, (reported, used)


def test_stats_are_zero_when_not_running(tmp_path, supervise):
    sup = supervise({"s": {"command": "true", "enabled": False}})
    assert sup.get("s").stats() == process.ServerStats(STOPPED, 0, 0.0, 0)


def test_console_input_reaches_stdin_with_a_newline(tmp_path, supervise):
    echo = "import sys\nfor line in sys.stdin: print('got', repr(line), flush=True)"
    sup = supervise({"s": {"command": script(tmp_path, "echo.py", echo)}})
    server = sup.get("s")
    wait_until(lambda: server.status == RUNNING)
    assert server.write_input("hello there")
    wait_until(lambda: "got 'hello there\\n'" in lines(server))


def test_apps_are_fed_and_waited_for_on_descriptors_above_1023(tmp_path, supervise):
    """The worker may hold a thousand connections, so an app's pipes and pidfd can be past select()'s limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        deaf = "import time\nprint('up', flush=True)\ntime.sleep(2)"  # never reads its stdin, then exits
        sup = supervise({"s": {"command": script(tmp_path, "deaf.py", deaf)}})
        server = sup.get("s")
        wait_until(lambda: "up" in lines(server))
        assert server.write_input("x" * (4 << 20)) is False  # the pipe fills; waiting for room gives up after 1 s
        wait_until(lambda: server.status == STOPPED)
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


GRACEFUL = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("sigterm", flush=True), sys.exit(0)))
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "{word}":
        print("saving", flush=True)
        sys.exit(0)
"""


def test_term_sends_the_stop_command_first(tmp_path, supervise):
    sup = supervise({"g": {"command": script(tmp_path, "g.py", GRACEFUL.format(word="stop")),
                           "stop": {"command": "stop", "timeout": 5}}})
    server = sup.get("g")
    wait_until(lambda: "ready" in lines(server))
    server.term()
    wait_until(lambda: server.status == STOPPED, timeout=3)
    assert "saving" in lines(server) and "sigterm" not in lines(server)


def test_term_falls_back_to_sigterm_after_the_stop_timeout(tmp_path, supervise):
    sup = supervise({"g": {"command": script(tmp_path, "g.py", GRACEFUL.format(word="never")),
                           "stop": {"command": "stop", "timeout": 0.3}}})
    server = sup.get("g")
    wait_until(lambda: "ready" in lines(server))
    server.term()
    wait_until(lambda: server.status == STOPPED, timeout=3)
    assert "sigterm" in lines(server) and "saving" not in lines(server)


SLOW_STOP = """
import signal, sys, time
def bye(*_):
    time.sleep(0.5)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
time.sleep(60)
"""


def test_start_during_a_term_starts_again_once_stopped(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", SLOW_STOP)}})
    server = sup.get("s")
    wait_until(lambda: "ready" in lines(server))
    server.term()
    assert server.start() is True
    wait_until(lambda: lines(server).count("[Octyne] Started server s") == 2)
    log = lines(server)
    assert log.index("[Octyne] Server s has stopped.") < len(log) - 1 - log[::-1].index("[Octyne] Started server s")
    assert server.status == RUNNING


def test_reload_adds_updates_and_marks_removed_servers(tmp_path, supervise, monkeypatch):
    monkeypatch.setattr(process, "REMOVED_CONSOLE_DELAY", 0.2)
    sleeper = script(tmp_path, "s.py", SLEEPER)
    sup = supervise({"keep": {"command": sleeper}, "gone": {"command": sleeper}, "idle": {"command": sleeper, "enabled": False}})
    keep, removed, idle = sup.get("keep"), sup.get("gone"), sup.get("idle")
    pid_of(removed)
    new = script(tmp_path, "new.py", "print('new version')")
    sup.apply(config_for(tmp_path, {"keep": {"command": new}, "added": {"command": sleeper}}))
    # the new server is created and started; the others are listed until their process exits
    wait_until(lambda: sup.get("added") is not None and sup.get("added").status == RUNNING)
    assert keep.to_delete is False and keep.status == RUNNING
    assert removed.to_delete is True and idle.to_delete is True and idle.status == STOPPED
    assert sup.get("idle") is idle
    # the updated command is used at the next start
    keep.kill()
    keep.start()
    wait_until(lambda: "new version" in lines(keep))
    # a marked server is removed when its process exits, then its consoles close
    cuts = []
    removed.console.subscribe("someone", lambda: None, cuts.append)
    removed.term()
    wait_until(lambda: sup.get("gone") is None)
    assert lines(removed)[-1] == "[Octyne] Server gone was marked for deletion, stopped/crashed, and has now been removed."
    assert cuts == []
    wait_until(lambda: cuts == ["closed"], timeout=2)
    assert [name for name, _ in sup.items()] == ["keep", "idle", "added"]


def test_listing_a_marked_server_again_clears_the_mark(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", SLEEPER)}})
    server = sup.get("s")
    sup.apply(config_for(tmp_path, {}))
    assert server.to_delete is True
    sup.apply(config_for(tmp_path, {"s": {"command": "true"}}))
    assert server.to_delete is False and sup.get("s") is server


TRAPS_TERM = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("pid", os.getpid(), flush=True)
time.sleep(60)
"""


def test_shutdown_stops_every_app_before_returning(tmp_path):
    sleeper = script(tmp_path, "s.py", SLEEPER)
    stubborn = script(tmp_path, "t.py", TRAPS_TERM)
    sup = Supervisor(config_for(tmp_path, {"a": {"command": sleeper}, "b": {"command": sleeper},
                                           "c": {"command": stubborn}}, stopGracePeriod=0.5))
    sup.start_enabled()
    pids = [pid_of(sup.get(name)) for name in "abc"]
    started = time.monotonic()
    sup.shutdown()
    assert time.monotonic() - started < 3
    assert gone(pids)
    assert all(server.status == STOPPED for _, server in sup.items())
    assert sup.get("a").start() is False  # nothing starts after shutdown


def test_apps_do_not_outlive_a_daemon_that_dies_abruptly(tmp_path):
    """The whole tree goes even when the supervising process is SIGKILLed."""
    script(tmp_path, "f.py", FORKER)
    config = {"stopGracePeriod": 1, "servers": {"f": {"directory": str(tmp_path), "command": f"{PY} f.py"}}}
    program = textwrap.dedent(f"""
        import json, time
        from octyne_flask.config import config_from_document
        from octyne_flask.supervisor import Supervisor
        sup = Supervisor(config_from_document(json.loads({json.dumps(json.dumps(config))})))
        sup.start_enabled()
        server = sup.get("f")
        while not any(l.startswith("pids ") for l in server.console.scrollback()):
            time.sleep(0.02)
        print(next(l for l in server.console.scrollback() if l.startswith("pids ")), flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([PY, "-c", program], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    pids = [int(p) for p in holder.stdout.readline().split()[1:]]
    assert len(pids) == 2 and not gone(pids)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    wait_until(lambda: gone(pids), timeout=5)


STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_stop_that_nothing_answers_ends_in_sigkill_after_the_grace_period(tmp_path, supervise):
    sup = supervise({"s": {"command": script(tmp_path, "s.py", STUBBORN), "stop": {"command": "stop", "timeout": 0.2}}},
                    stopGracePeriod=0.5)
    server = sup.get("s")
    wait_until(lambda: "ready" in lines(server))
    asked = time.monotonic()
    server.term()
    wait_until(lambda: server.status == STOPPED, timeout=5)
    assert 0.6 < time.monotonic() - asked < 3
    assert lines(server)[-1] == "[Octyne] Server s has stopped."


def test_a_start_after_giving_up_grants_three_restarts_again(tmp_path, supervise):
    sup = supervise({"bad": {"command": script(tmp_path, "bad.py", "import sys; sys.exit(3)")}})
    server = sup.get("bad")
    wait_until(lambda: lines(server).count("[Octyne] Server bad has crashed!") == 4)
    assert server.start() is True
    wait_until(lambda: lines(server).count("[Octyne] Server bad has crashed!") == 8)
    time.sleep(0.3)
    assert lines(server).count("[Octyne] Started server bad") == 8 and server.status == CRASHED


def test_a_command_with_a_nul_character_is_a_failed_start_not_a_dead_thread(tmp_path, supervise):
    """Popen refuses it with ValueError, which used to end the server's thread: every later start hung 30 s."""
    sup = supervise({"s": {"command": "echo a\u0000b", "enabled": False}})
    server = sup.get("s")
    for _ in range(2):
        asked = time.monotonic()
        assert server.start() is False
        assert time.monotonic() - asked < 5
        assert server.status == CRASHED
        assert "Failed to start server s" in lines(server)[-1] and "null byte" in lines(server)[-1]


def test_a_supervising_thread_that_fails_kills_and_reaps_the_app_and_recovers(tmp_path, caplog):
    """A stop timeout too large for select() (the config now refuses it) used to kill the thread and wedge the server."""
    config = config_for(tmp_path, {"s": {"command": script(tmp_path, "s.py", SLEEPER)}})
    config.servers["s"] = dataclasses.replace(config.servers["s"], stop=StopConfig("stop", 1e10))
    sup = Supervisor(config)
    try:
        sup.start_enabled()
        server = sup.get("s")
        pid = pid_of(server)
        server.term()
        wait_until(lambda: server.status == CRASHED, timeout=5)
        assert not psutil.pid_exists(pid)  # killed and reaped: not even a zombie is left
        assert lines(server)[-1] == "[Octyne] Server s has crashed!"
        assert "Restarting" not in lines(server)[-2]
        failure = next(record for record in caplog.records if "Supervising server s failed" in record.getMessage())
        assert failure.levelname == "ERROR" and failure.exc_info[0] is OverflowError
        assert server.start() is True and server.status == RUNNING
        wait_until(lambda: lines(server).count("[Octyne] Started server s") == 2)
        second = int([line for line in lines(server) if line.startswith("pid ")][-1].split()[1])
    finally:
        asked = time.monotonic()
        sup.shutdown()
    assert time.monotonic() - asked < 3
    assert gone([second]) and server.status == STOPPED
