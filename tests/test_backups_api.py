"""Backups end to end: real daemon, real app, real tar.zst archives read back with zstandard and tarfile."""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import time

import zstandard

from tests.harness import wait_until

PY = sys.executable
APP = """
import sys
print("ready", flush=True)
for line in sys.stdin:
    with open("input.log", "a") as log:
        log.write(line)
"""
BIG = 50 * 1024 * 1024


def read_archive(path, wanted=("big.bin", "input.log")) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes]]:
    """Every member's header, and the content of the ``wanted`` ones."""
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            found, contents = {}, {}
            for member in tar:
                found[member.name] = member
                if member.name in wanted:
                    contents[member.name] = tar.extractfile(member).read()
            return found, contents


def make_tree(directory) -> str:
    """1,000 small files, a 50 MB file, links in and out, and excluded things; the big file's sha256."""
    (directory / "world" / "region").mkdir(parents=True)
    for index in range(1000):
        (directory / "world" / "region" / f"r.{index}.mca").write_bytes(f"chunk {index}\n".encode() * 10)
    big = os.urandom(1024 * 1024) * (BIG // (1024 * 1024))
    (directory / "big.bin").write_bytes(big)
    (directory / "logs").mkdir()
    (directory / "logs" / "latest.log").write_text("log\n")
    (directory / "world" / "session.tmp").write_text("tmp\n")
    os.symlink("world/region", directory / "regions")
    os.symlink("/etc/passwd", directory / "outside")
    (directory / "app.py").write_text(APP)
    return hashlib.sha256(big).hexdigest()


def server_entry(directory, backups: dict, schedules=(), enabled=True) -> dict:
    return {"directory": str(directory), "command": f"{PY} app.py", "enabled": enabled,
            "backups": backups, "schedules": list(schedules)}


def complete(daemon, server="app") -> list[dict]:
    return [entry for entry in daemon.get(f"/server/{server}/backups").json()["backups"] if entry["complete"]]


def test_a_backup_holds_the_tree_without_exclusions_between_the_before_and_after_commands(daemon_factory, tmp_path):
    directory = tmp_path / "app"
    directory.mkdir()
    digest = make_tree(directory)
    backups = {"path": str(tmp_path / "backups"), "exclude": ["logs/", "*.tmp"],
               "before": ["save-off", "save-all flush"], "settle": 1, "after": ["save-on"]}
    daemon = daemon_factory({"app": server_entry(directory, backups)})
    wait_until(lambda: daemon.get("/server/app").json()["status"] == 1)
    created = daemon.post("/server/app/backups")
    assert created.status_code == 202
    name = created.json()["name"]
    again = daemon.post("/server/app/backups")
    assert (again.status_code, again.json()) == (409, {"error": "A backup is already in progress!"})
    running = daemon.get("/server/app/backups").json()["backups"][0]
    assert (running["name"], running["complete"], running["trigger"]) == (name, False, "manual")
    assert 0 <= running["progress"] <= 1
    wait_until(lambda: complete(daemon), timeout=40)
    [entry] = daemon.get("/server/app/backups").json()["backups"]
    archive = tmp_path / "backups" / name
    assert entry == {"name": name, "size": archive.stat().st_size, "created": entry["created"],
                     "trigger": "manual", "complete": True}
    assert abs(entry["created"] - time.time() * 1000) < 60_000
    found, contents = read_archive(archive)
    expected = {"app.py", "big.bin", "input.log", "regions", "outside", "world", "world/region"}
    expected |= {f"world/region/r.{index}.mca" for index in range(1000)}
    assert set(found) == expected
    assert hashlib.sha256(contents["big.bin"]).hexdigest() == digest
    assert (found["regions"].issym(), found["regions"].linkname) == (True, "world/region")
    assert (found["outside"].issym(), found["outside"].linkname) == (True, "/etc/passwd")
    # The app's own log, archived between the commands: the before commands are in it, the after one is not.
    assert contents["input.log"] == b"save-off\nsave-all flush\n"
    wait_until(lambda: (directory / "input.log").read_text() == "save-off\nsave-all flush\nsave-on\n")

    download = daemon.get(f"/server/app/backups/{name}")
    assert download.status_code == 200 and download.content == archive.read_bytes()
    part = daemon.get(f"/server/app/backups/{name}", headers={"Range": "bytes=0-9"})
    assert (part.status_code, part.content) == (206, archive.read_bytes()[:10])
    assert daemon.delete(f"/server/app/backups/{name}").json() == {"success": True}
    assert not archive.exists() and complete(daemon) == []
    assert daemon.get("/server/app/backups/..%2Fapp%2Fapp.py").status_code == 404  # no such route
    for bad in (name, "backups.json", "x.tar.zst", "2026-01-01T00-00-00Z.tar.zst"):
        missing = daemon.get(f"/server/app/backups/{bad}")
        assert (missing.status_code, missing.json()) == (404, {"error": "This backup does not exist!"})
    actions = [entry.get("action") for entry in daemon.action_log()]
    assert {"server.backups.create", "server.backups.download", "server.backups.delete"} <= set(actions)


def backup_now(daemon, server: str) -> str:
    """Start a backup once the previous one has finished entirely; its name, once it is complete."""
    started = []
    wait_until(lambda: started.append(daemon.post(f"/server/{server}/backups")) or started[-1].status_code == 202)
    name = started[-1].json()["name"]
    wait_until(lambda: name in [entry["name"] for entry in complete(daemon, server)])
    return name


def test_retention_by_count_and_by_bytes_never_drops_the_new_backup(daemon_factory, tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    (small / "app.py").write_text(APP)
    (large / "app.py").write_text(APP)
    (large / "noise.bin").write_bytes(os.urandom(200_000))
    daemon = daemon_factory({
        "small": server_entry(small, {"path": str(tmp_path / "b-small"), "keep": 2}, enabled=False),
        "large": server_entry(large, {"path": str(tmp_path / "b-large"), "keep": 0, "maxBytes": 300_000},
                              enabled=False)})
    names = [backup_now(daemon, "small") for _ in range(3)]
    wait_until(lambda: [entry["name"] for entry in complete(daemon, "small")] == names[:0:-1])
    assert len(set(names)) == 3  # same second: -2, -3 before the extension
    for _ in range(2):
        name = backup_now(daemon, "large")
    # two of ~200 kB exceed 300 kB: the older goes, the new one stays
    wait_until(lambda: [entry["name"] for entry in complete(daemon, "large")] == [name])


def test_a_backup_schedule_run_now_makes_a_schedule_backup(daemon_factory, tmp_path):
    directory = tmp_path / "app"
    directory.mkdir()
    (directory / "app.py").write_text(APP)
    schedule = {"name": "nightly", "cron": "30 3 * * *", "action": "backup"}
    daemon = daemon_factory({"app": server_entry(directory, {"path": str(tmp_path / "b")}, [schedule], False)})
    assert daemon.post("/server/app/schedules/nightly/run").status_code == 200
    wait_until(lambda: complete(daemon))
    assert complete(daemon)[0]["trigger"] == "schedule"
    wait_until(lambda: daemon.get("/server/app/schedules").json()[0]["last"] is not None)
    last = daemon.get("/server/app/schedules").json()[0]["last"]
    assert last["outcome"] == "ok" and complete(daemon)[0]["name"] in last["message"]


def test_a_default_backups_folder_inside_the_directory_refuses_backups_without_naming_paths(daemon_factory, tmp_path):
    home = tmp_path / "home"
    daemon = daemon_factory({"here": {"directory": str(home), "command": "cat", "enabled": False}}, directory=home)
    refused = daemon.post("/server/here/backups")
    assert refused.status_code == 500
    assert refused.json() == {"error": "An error occurred while making the backup!",
                              "detail": "the default backups folder is inside the server's directory: set backups.path"}
