"""Trees deeper than Python's recursion limit are copied, merged, deleted and swept like any other.

One decompress request is enough to make a folder 1,500 levels deep (its
path still fits in PATH_MAX); before, copying, deleting, unpacking over it
again or removing it in a transaction failed with a RecursionError (500) and
the transaction left the item hidden in its trash.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile

import pytest

from octyne_flask.files.temp_journal import TemporaryJournal

DEPTH = 1500
DEEP = "/".join(["d"] * DEPTH)


@pytest.fixture
def deep_server(daemon_factory, tmp_path):
    folder = tmp_path / "alpha"
    folder.mkdir()
    with zipfile.ZipFile(folder / "deep.zip", "w") as archive:
        archive.writestr(f"{DEEP}/bottom.txt", "the bottom")
    daemon = daemon_factory(servers={"alpha": {"directory": str(folder), "command": "sleep 100000"}})
    yield daemon, folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)  # pytest's own clean-up recurses


def test_a_tree_1500_levels_deep_is_unpacked_twice_copied_and_deleted(deep_server):
    daemon, folder = deep_server
    for _ in range(2):  # the second merges into the tree the first made
        response = daemon.post("/server/alpha/decompress?path=/deep.zip", data="/out")
        assert (response.status_code, response.json()) == (200, {"success": True})
    assert (folder / "out" / DEEP / "bottom.txt").read_text() == "the bottom"

    response = daemon.patch("/server/alpha/file", json={"operation": "cp", "src": "/out", "dest": "/copy"})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert (folder / "copy" / DEEP / "bottom.txt").read_text() == "the bottom"

    assert daemon.delete("/server/alpha/file?path=/copy").status_code == 200
    response = daemon.patch("/server/alpha/files", json={"operations": [{"operation": "rm", "path": "/out"}]})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert sorted(os.listdir(folder)) == ["deep.zip"]


def test_a_deep_leftover_is_swept(tmp_path):
    server = tmp_path / "server"
    deep = server / ".octyne-unpack-1" / DEEP
    subprocess.run(["mkdir", "-p", str(deep)], check=True)  # pathlib's own mkdir recurses
    (deep / "bottom.txt").write_text("left by a crash")
    journal = tmp_path / ".config.json.temporaries"
    journal.write_text(json.dumps([str(server / ".octyne-unpack-1")]))
    try:
        assert TemporaryJournal(str(journal)).sweep() == [str(server / ".octyne-unpack-1")]
        assert os.listdir(server) == []
    finally:
        subprocess.run(["rm", "-rf", str(server)], check=True)
