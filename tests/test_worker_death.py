"""The gunicorn worker killed outright (e.g. by the OOM killer): the app never runs twice.

gunicorn starts a new worker at once; the dead worker's apps are still being
stopped by the group keeper's helper, so the new worker must start nothing
until they are gone.
"""

import signal
import sys
import textwrap
import time

import psutil

from tests.harness import wait_until

# Ignores SIGTERM (so it lives the whole grace period) and never writes to its stdout,
# whose reader died with the worker; it only touches a file in its directory.
STUBBORN_APP = textwrap.dedent("""
    import os, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        with open("world.lock", "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(0.1)
""")
GRACE = 2


def running_apps(script: str) -> list[int]:
    """Pids of the app's processes that still run (zombies run nothing)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if script in (process.info["cmdline"] or []) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


def test_a_new_worker_starts_the_app_only_once_the_dead_workers_app_is_gone(daemon_factory, tmp_path):
    folder = tmp_path / "world"
    folder.mkdir()
    script = str(folder / "stubborn.py")
    (folder / "stubborn.py").write_text(STUBBORN_APP)
    daemon = daemon_factory(servers={"world": {"directory": str(folder), "command": f"{sys.executable} {script}"}},
                            config={"stopGracePeriod": GRACE})
    # The app ignores SIGTERM from its first write of world.lock on; a SIGTERM before that would end it at once.
    wait_until(lambda: (folder / "world.lock").exists())
    [first] = wait_until(lambda: running_apps(script))
    [worker] = psutil.Process(daemon.proc.pid).children()
    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    most, replacement = 1, None
    deadline = killed + GRACE + 15
    while replacement is None and time.monotonic() < deadline:
        pids = running_apps(script)
        most = max(most, len(pids))
        replacement = next((pid for pid in pids if pid != first), None)
        time.sleep(0.01)
    assert most == 1, "two instances of the app ran at once"
    assert replacement is not None, "the app did not run again"
    assert time.monotonic() - killed >= GRACE  # it ignored SIGTERM, so only the SIGKILL after the grace period ended it
    assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    assert psutil.Process(daemon.proc.pid).children() != [worker]
    daemon.login()  # tokens lived in the dead worker's memory
    assert daemon.get("/server/world").json()["status"] == 1
