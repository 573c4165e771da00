"""The daemon lock: a second daemon on the same config must refuse to start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from octyne_flask.supervisor import DaemonLockError, acquire_daemon_lock

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
