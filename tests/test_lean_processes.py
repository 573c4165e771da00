"""The daemon's helper processes stay lean (issue #17): the gunicorn master only supervises the worker,
and the keeper helper is a shell, not an interpreter.

What a process imported is checked two ways: directly, by running the master's own start-up path
(``cli.prepare_to_serve`` and the embedded gunicorn, which loads the app only in the worker) in a
fresh interpreter and reading its ``sys.modules``; and on a real daemon started as users start it,
by the C extensions its processes map (pure-Python modules leave no trace there, but each heavy
library the app needs brings one: psutil, argon2's bindings, cryptography).
"""

from __future__ import annotations

import json
import subprocess
import sys

import psutil

from tests.harness import ADMIN_HASH, REPO, daemon_config, wait_until

PY = sys.executable
KEEPER_HELPER = REPO / "octyne_flask" / "supervisor" / "keeper.sh"
# Libraries only the worker's app needs (dateutil: only for a schedule); each must stay out of the master.
APP_ONLY = ("dateutil", "flask", "werkzeug", "flask_sock", "psutil", "argon2", "paramiko", "redis", "cryptography", "croniter",
            "cron_descriptor", "yaml", "zstandard", "octyne_flask.api", "octyne_flask.daemon", "octyne_flask.webui",
            "octyne_flask.supervisor.supervisor", "octyne_flask.supervisor.console")
# Shared objects those libraries load: psutil, argon2-cffi's bindings, cryptography's Rust core.
APP_ONLY_EXTENSIONS = ("_psutil_linux", "_argon2_cffi_bindings", "cryptography/hazmat/bindings")

MASTER_START = """
import json, sys
from octyne_flask.cli import prepare_to_serve
from octyne_flask.config import load_config
from octyne_flask.serving import EmbeddedGunicorn
config, _ = load_config(sys.argv[1])
prepare_to_serve(config, sys.argv[1], sys.argv[2])
EmbeddedGunicorn(sys.argv[1], sys.argv[2], config)  # what the master holds; run() forks the worker
print(json.dumps(sorted(sys.modules)))
"""


def imported(modules: list[str], name: str) -> bool:
    return any(module == name or module.startswith(name + ".") for module in modules)


def modules_after(script: str, tmp_path) -> list[str]:
    """The modules a fresh interpreter has imported once ``script`` ran on a one-app config."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps(daemon_config(tmp_path, {"app": {"directory": str(tmp_path), "command": "true"}})))
    (tmp_path / "users.json").write_text(json.dumps({"admin": ADMIN_HASH}))
    result = subprocess.run([PY, "-c", script, str(config), str(tmp_path / "users.json")], cwd=tmp_path,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def test_the_masters_start_up_path_imports_nothing_of_the_app(tmp_path):
    modules = modules_after(MASTER_START, tmp_path)  # argon2 would be loaded to make a users file: one exists
    assert imported(modules, "gunicorn") and imported(modules, "octyne_flask.config")
    assert [name for name in APP_ONLY if imported(modules, name)] == []


WORKER_START = """
import json, sys
from octyne_flask import create_app
app = create_app(sys.argv[1], sys.argv[2])
client = app.test_client()
assert client.get("/servers", headers={"Authorization": "x"}).status_code == 401  # the app answers
print(json.dumps(sorted(sys.modules)))
app.extensions["octyne"].shutdown()
"""
# What a worker need not load until it is used: asyncio (simple-websocket's asyncio variants, never used),
# tarfile and the archive writers and unpacker (the first compress, decompress, backup or restore loads them).
WORKER_LAZY = ("asyncio", "tarfile", "gzip", "octyne_flask.files.archives.compress",
               "octyne_flask.files.archives.extract", "octyne_flask.backups.restore")


def test_the_workers_app_leaves_asyncio_and_the_archive_code_until_they_are_needed(tmp_path):
    modules = modules_after(WORKER_START, tmp_path)
    assert imported(modules, "flask_sock") and imported(modules, "octyne_flask.backups.service")
    assert [name for name in WORKER_LAZY if imported(modules, name)] == []


def mapped_files(process: psutil.Process) -> set[str]:
    return {region.path for region in process.memory_maps(grouped=True)}


def test_a_running_daemons_master_maps_none_of_the_apps_libraries_and_the_keeper_is_a_small_shell(daemon_factory,
                                                                                                   tmp_path):
    app = tmp_path / "app.py"
    app.write_text("import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": f"{PY} {app}", "enabled": True}})
    master = psutil.Process(daemon.proc.pid)
    [worker] = [child for child in master.children() if child.cmdline()[:2] == master.cmdline()[:2]]

    def keeper():
        return [child for child in worker.children() if str(KEEPER_HELPER) in child.cmdline()]

    [helper] = wait_until(keeper)
    wait_until(lambda: daemon.get("/servers").json()["servers"]["app"] == 1)
    # The worker maps psutil's and argon2's (so the check can see them), the master and the keeper none of them.
    assert all(any(name in path for path in mapped_files(worker)) for name in APP_ONLY_EXTENSIONS[:2])
    assert [path for path in mapped_files(master) if any(name in path for name in APP_ONLY_EXTENSIONS)] == []
    assert helper.cmdline()[0] == "/bin/sh"
    assert [path for path in mapped_files(helper) if "python" in path or "site-packages" in path] == []
    assert helper.memory_info().rss < 4 * 1024 * 1024  # a Python helper, even with -I -S, took 8.6 MiB


def test_the_worker_loads_the_regex_engine_only_for_a_regex_search(daemon_factory, tmp_path):
    """``regex`` (about 1 MiB) is the history search's; a worker that never searched has not mapped it."""
    daemon = daemon_factory({"app": {"directory": str(tmp_path), "command": "echo hello", "enabled": True}})
    master = psutil.Process(daemon.proc.pid)
    [worker] = [child for child in master.children() if child.cmdline()[:2] == master.cmdline()[:2]]
    wait_until(lambda: daemon.get("/server/app/console/history?q=hello").json().get("lines"))  # a plain search: no regex
    assert not [path for path in mapped_files(worker) if "regex/_regex" in path]
    assert daemon.get("/server/app/console/history?q=hel%2Bo&regex=true").status_code == 200
    assert [path for path in mapped_files(worker) if "regex/_regex" in path]
