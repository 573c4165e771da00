"""A daemon killed with SIGKILL in the middle of a file operation leaves nothing behind after its next start.

Every hidden ``.octyne-*`` name a copy, a transaction or an unpacking works
under is listed in the journal of temporaries while it exists, so the next
start sweeps it; the test kills the whole process group (no shutdown code
runs) as soon as the name shows up on disk.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import zipfile

import pytest
import requests

from tests.harness import wait_until

FILES = 2000  # a few hundred milliseconds of work: long enough to be killed in the middle


def leftovers(folder) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob(".octyne-*"))


def kill_when_a_temporary_appears(daemon, folder, request) -> None:
    """Send ``request`` in the background, SIGKILL the daemon's group once a ``.octyne-*`` name exists."""
    def send():
        try:
            request(daemon)
        except requests.RequestException:
            pass  # the daemon died under it

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 20
    while not leftovers(folder) and time.monotonic() < deadline:
        pass  # no sleep: the name may exist for a fraction of a second only
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait(10)
    sender.join(30)


@pytest.mark.parametrize("request_during_crash", [
    pytest.param(lambda daemon: daemon.patch("/server/alpha/file", json={
        "operation": "cp", "src": "/world", "dest": "/copy"}), id="copy"),
    pytest.param(lambda daemon: daemon.patch("/server/alpha/files", json={"operations": [
        {"operation": "rm", "path": "/notes.txt"},
        {"operation": "cp", "src": "/world", "dest": "/copy"}]}), id="transaction"),
    pytest.param(lambda daemon: daemon.post("/server/alpha/decompress?path=/world.zip", data="/unpacked"),
                 id="decompress"),
])
def test_a_kill_9_during_a_file_operation_leaves_nothing_after_the_restart(daemon_factory, tmp_path,
                                                                          request_during_crash):
    folder = tmp_path / "alpha"
    (folder / "world").mkdir(parents=True)
    (folder / "notes.txt").write_text("notes")
    with zipfile.ZipFile(folder / "world.zip", "w") as archive:
        for index in range(FILES):
            (folder / "world" / f"{index}.dat").write_bytes(b"x" * 1024)
            archive.writestr(f"{index}.dat", b"x" * 1024)
    servers = {"alpha": {"directory": str(folder), "command": "sleep 100000"}}
    daemon = daemon_factory(servers=servers)
    kill_when_a_temporary_appears(daemon, folder, request_during_crash)
    assert leftovers(folder)  # what the crash left

    restarted = daemon_factory(servers=servers, directory=daemon.directory)
    wait_until(lambda: restarted.get("/server/alpha").status_code == 200)
    assert leftovers(folder) == []
    assert json.loads((restarted.directory / ".config.json.temporaries").read_text()) == []
