"""Restore: 409 while running, the tree equals the backup byte for byte afterwards (excluded paths kept),
a pre-restore backup exists, and kill -9 of the daemon mid-restore leaves one complete tree."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import requests

from tests.harness import wait_until
from tests.test_backups_api import backup_now

PY = sys.executable
APP = "import sys, time\nprint('ready', flush=True)\ntime.sleep(3600)\n"


def snapshot(directory, skip=("logs",)) -> dict:
    """relative path -> (kind, content or link target, mode) of everything below ``directory``."""
    found = {}
    for folder, folders, files in os.walk(directory):
        relative_folder = os.path.relpath(folder, directory)
        if relative_folder.split(os.sep)[0] in skip:
            continue
        for name in folders + files:
            path = os.path.join(folder, name)
            relative = os.path.normpath(os.path.join(relative_folder, name))
            if relative.split(os.sep)[0] in skip:
                continue
            info = os.lstat(path)
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path), None)
            elif os.path.isdir(path):
                found[relative] = ("folder", None, info.st_mode & 0o7777)
            else:
                with open(path, "rb") as handle:
                    found[relative] = ("file", handle.read(), info.st_mode & 0o7777)
    return found


def make_tree(directory, files=20, big=0) -> None:
    (directory / "world" / "region").mkdir(parents=True)
    for index in range(files):
        (directory / "world" / "region" / f"r.{index}.mca").write_bytes(os.urandom(100))
    if big:
        (directory / "world" / "big.dat").write_bytes(os.urandom(big))
    (directory / "secret.txt").write_text("only me\n")
    os.chmod(directory / "secret.txt", 0o600)
    (directory / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(directory / "run.sh", 0o755)
    os.symlink("world/region", directory / "regions")
    (directory / "logs").mkdir()
    (directory / "logs" / "latest.log").write_text("at backup time\n")
    (directory / "app.py").write_text(APP)


def change_tree(directory) -> None:
    (directory / "secret.txt").write_text("changed\n")
    (directory / "new.txt").write_text("new\n")
    os.unlink(directory / "run.sh")
    os.unlink(directory / "regions")
    (directory / "logs" / "latest.log").write_text("after the backup\n")


def entry(directory, backups, enabled=True) -> dict:
    return {"directory": str(directory), "command": f"{PY} app.py", "enabled": enabled, "backups": backups}


def test_restore_refuses_a_running_server_then_swaps_in_the_backup_and_keeps_excluded_paths(daemon_factory, tmp_path):
    directory = tmp_path / "app"
    directory.mkdir()
    make_tree(directory)
    daemon = daemon_factory({"app": entry(directory, {"path": str(tmp_path / "b"), "exclude": ["logs/"]})})
    wait_until(lambda: daemon.get("/server/app").json()["status"] == 1)
    name = backup_now(daemon, "app")
    time.sleep(0.5)  # no after-commands to wait for: the tree is what the backup holds
    expected = snapshot(directory)
    busy = daemon.post(f"/server/app/backups/{name}/restore")
    assert (busy.status_code, busy.json()) == (409, {"error": "The server must be stopped first!"})
    assert daemon.post("/server/app", data="KILL").status_code == 200
    change_tree(directory)
    changed = snapshot(directory)
    done = daemon.post(f"/server/app/backups/{name}/restore")
    assert (done.status_code, done.json()) == (200, {"success": True})
    assert snapshot(directory) == expected
    assert (directory / "logs" / "latest.log").read_text() == "after the backup\n"  # excluded: carried over
    assert not [leftover for leftover in os.listdir(tmp_path) if leftover.startswith(".octyne-")]
    backups = daemon.get("/server/app/backups").json()["backups"]
    [pre] = [b for b in backups if b["trigger"] == "pre-restore"]
    # The pre-restore backup holds the changed tree: restoring it brings the change back.
    assert daemon.post(f"/server/app/backups/{pre['name']}/restore").status_code == 200
    assert snapshot(directory) == changed
    missing = daemon.post("/server/app/backups/2020-01-01T00-00-00Z.tar.zst/restore")
    assert (missing.status_code, missing.json()) == (404, {"error": "This backup does not exist!"})
    assert any(e.get("action") == "server.backups.restore" for e in daemon.action_log())


def test_kill_9_during_a_restore_leaves_a_complete_tree_and_the_next_start_sweeps_the_rest(daemon_factory, tmp_path):
    directory, home = tmp_path / "app", tmp_path / "home"
    directory.mkdir()
    make_tree(directory, files=2000, big=80 * 1024 * 1024)
    servers = {"app": entry(directory, {"path": str(tmp_path / "b")}, enabled=False)}
    daemon = daemon_factory(servers, directory=home)
    name = backup_now(daemon, "app")
    backed_up = snapshot(directory)
    change_tree(directory)
    changed = snapshot(directory)
    def restore():
        try:
            daemon.post(f"/server/app/backups/{name}/restore", timeout=60)
        except requests.ConnectionError:
            pass  # the daemon is killed before it answers

    threading.Thread(target=restore, daemon=True).start()
    wait_until(lambda: any(entry.startswith(".octyne-restore-") for entry in os.listdir(tmp_path)),
               timeout=30, interval=0.002)
    for attempt in (f"/server/app/backups/{name}/restore", "/server/app/backups"):
        refused = daemon.post(attempt)
        assert (refused.status_code, refused.json()) == (409, {"error": "A restore is already in progress!"})
    assert daemon.post("/server/app", data="START").json() == {"success": False}  # held stopped meanwhile
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    assert snapshot(directory) in (changed, backed_up)  # in fact the old one: the unpacking had just begun
    assert snapshot(directory) == changed
    restarted = daemon_factory(servers, directory=home)
    assert not [leftover for leftover in os.listdir(tmp_path) if leftover.startswith(".octyne-")]
    assert snapshot(directory) == changed
    assert restarted.post(f"/server/app/backups/{name}/restore").status_code == 200
    assert snapshot(directory) == backed_up


def test_a_damaged_backup_fails_the_restore_and_leaves_the_tree_as_it_was(daemon_factory, tmp_path):
    directory, backups = tmp_path / "app", tmp_path / "b"
    directory.mkdir()
    make_tree(directory)
    daemon = daemon_factory({"app": entry(directory, {"path": str(backups)}, enabled=False)})
    name = backup_now(daemon, "app")
    archive = (backups / name).read_bytes()
    damaged = "2030-01-01T00-00-00Z.tar.zst"
    (backups / damaged).write_bytes(archive[: len(archive) // 2])  # a backup cut short
    before = snapshot(directory, skip=())
    failed = daemon.post(f"/server/app/backups/{damaged}/restore")
    assert failed.status_code == 500
    assert failed.json()["error"] == "An error occurred while restoring the backup!"
    assert snapshot(directory, skip=()) == before
    assert not [leftover for leftover in os.listdir(tmp_path) if leftover.startswith(".octyne-")]


def test_a_restore_into_a_server_run_as_another_user_gives_that_user_what_it_restored(daemon_factory, tmp_path):
    """Like an upload or an unpack through the API (extensions.md §D), a restore's files belong to the app's user."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    directory = tmp_path / "app"
    directory.mkdir()
    make_tree(directory)
    server = {**entry(directory, {"path": str(tmp_path / "b"), "exclude": ["logs/"]}, enabled=False), "user": "nobody"}
    daemon = daemon_factory({"app": server})
    name = backup_now(daemon, "app")
    change_tree(directory)
    assert daemon.post(f"/server/app/backups/{name}/restore").status_code == 200
    owners = {(info.st_uid, info.st_gid) for path in directory.rglob("*") for info in [path.lstat()]}
    assert owners == {(nobody.pw_uid, nobody.pw_gid)}
    assert (directory.stat().st_uid, directory.stat().st_gid) == (0, 0)  # the directory itself keeps its owner


def test_sigterm_during_a_restore_abandons_it_and_leaves_the_old_tree_whole(daemon_factory, tmp_path):
    """The daemon stops promptly: the restore gives up, its staging folder goes, nothing waits for the next start."""
    directory, home = tmp_path / "app", tmp_path / "home"
    directory.mkdir()
    make_tree(directory, files=2000, big=80 * 1024 * 1024)
    servers = {"app": entry(directory, {"path": str(tmp_path / "b")}, enabled=False)}
    daemon = daemon_factory(servers, directory=home, config={"stopGracePeriod": 0})
    name = backup_now(daemon, "app")
    change_tree(directory)
    changed = snapshot(directory)
    answers = []

    def restore():
        try:
            answers.append(daemon.post(f"/server/app/backups/{name}/restore", timeout=60))
        except requests.ConnectionError:
            answers.append(None)  # the connection closed as the worker exited

    request = threading.Thread(target=restore, daemon=True)
    request.start()
    wait_until(lambda: any(entry.startswith(".octyne-restore-") for entry in os.listdir(tmp_path)),
               timeout=30, interval=0.002)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(12) == 0
    request.join(10)
    assert answers and (answers[0] is None or answers[0].status_code == 500)
    assert snapshot(directory) == changed
    assert not [leftover for leftover in os.listdir(tmp_path) if leftover.startswith(".octyne-")]
