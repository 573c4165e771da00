"""Listing, delete, create-folder, move/copy and transactions on real files (api.md §8)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat

import pytest

from octyne_flask.errors import ApiError
from octyne_flask.files.listing import list_folder
from octyne_flask.files.operations import create_folder, delete_item, move_or_copy
from octyne_flask.files.paths import resolve
from octyne_flask.files.transactions import Outcome, Step, TransactionRejected, parse_operations, run_transaction, undo


def tree_state(root) -> dict:
    """Full listing with hashes and modes: two equal states mean an identical tree."""
    found = {}
    for parent, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(parent, name)
            relative = os.path.relpath(path, root)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("folder", stat.S_IMODE(info.st_mode))
            elif stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
                found[relative] = ("file", stat.S_IMODE(info.st_mode), digest)
            else:
                found[relative] = ("special", stat.S_IFMT(info.st_mode))
    return found


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "server"
    (root / "folder" / "nested").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "folder" / "b.txt").write_text("bravo")
    (root / "folder" / "nested" / "c.bin").write_bytes(b"\x00\x01binary")
    (root / "page.html").write_text("<html><body>hi</body></html>")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o750)
    os.symlink("folder", root / "link")
    return str(root)


def path(server, raw, what="file path", **kwargs):
    return resolve(server, raw, what, **kwargs)


def test_listing_has_exactly_the_five_keys_and_sniffed_types(server):
    os.utime(os.path.join(server, "a.txt"), (1_700_000_000.9, 1_700_000_000.9))
    contents = {item["name"]: item for item in list_folder(path(server, "/", "folder path", follow=True))}
    assert set(contents) == {"a.txt", "folder", "page.html", "script.sh", "link"}
    assert all(set(item) == {"name", "size", "lastModified", "folder", "mimeType"} for item in contents.values())
    assert contents["a.txt"] == {"name": "a.txt", "size": 5, "lastModified": 1_700_000_000,
                                 "folder": False, "mimeType": "text/plain; charset=utf-8"}
    assert contents["page.html"]["mimeType"] == "text/html; charset=utf-8"
    assert contents["folder"]["folder"] is True and contents["folder"]["mimeType"] == ""
    assert contents["link"]["folder"] is True and contents["link"]["mimeType"] == "inode/symlink"
    nested = list_folder(path(server, "folder/nested", "folder path", follow=True))
    assert nested[0]["mimeType"] == "application/octet-stream"


def test_listing_errors(server):
    with pytest.raises(ApiError) as missing:
        list_folder(path(server, "nope", "folder path", follow=True))
    assert (missing.value.status, missing.value.message) == (404, "This folder does not exist!")
    with pytest.raises(ApiError) as not_folder:
        list_folder(path(server, "a.txt", "folder path", follow=True))
    assert (not_folder.value.status, not_folder.value.message) == (400, "This is not a folder!")


def test_listing_reads_only_512_bytes_and_never_blocks_on_a_fifo(server):
    os.mkfifo(os.path.join(server, "pipe"))
    with open(os.path.join(server, "big.txt"), "wb") as big:
        big.write(b"a" * 600 + b"\x00")
    contents = {item["name"]: item for item in list_folder(path(server, "/", "folder path", follow=True))}
    assert contents["big.txt"]["mimeType"] == "text/plain; charset=utf-8"
    assert contents["pipe"]["mimeType"] == "" and contents["pipe"]["folder"] is False


def test_delete_file_folder_and_link(server):
    delete_item(path(server, "/a.txt"))
    delete_item(path(server, "link"))
    assert os.path.isdir(os.path.join(server, "folder"))  # the link went, not its target
    delete_item(path(server, "folder"))
    assert sorted(os.listdir(server)) == ["page.html", "script.sh"]


@pytest.mark.parametrize("raw", ["", "/", ".", "folder/.."])
def test_deleting_the_server_directory_is_forbidden(server, raw):
    before = tree_state(server)
    with pytest.raises(ApiError) as caught:
        delete_item(path(server, raw))
    assert (caught.value.status, caught.value.message) == (403, "This operation is dangerous and has been forbidden!")
    assert tree_state(server) == before


def test_deleting_a_missing_file_is_404(server):
    with pytest.raises(ApiError) as caught:
        delete_item(path(server, "ghost"))
    assert (caught.value.status, caught.value.message) == (404, "This file does not exist!")


def test_create_folder_and_refuse_anything_existing(server):
    create_folder(path(server, "/new", "folder path"))
    assert os.path.isdir(os.path.join(server, "new"))
    for existing in ("new", "a.txt", "link"):
        with pytest.raises(ApiError) as caught:
            create_folder(path(server, existing, "folder path"))
        assert (caught.value.status, caught.value.message) == (400, "This folder already exists!")


def test_move_renames_and_moves_into_an_existing_folder(server):
    move_or_copy("mv", path(server, "/a.txt", "source path"), path(server, "/moved.txt", "destination path"))
    assert open(os.path.join(server, "moved.txt")).read() == "alpha"
    final = move_or_copy("mv", path(server, "moved.txt", "source path"), path(server, "folder", "destination path"))
    assert final.relative == "folder/moved.txt" and os.path.isfile(os.path.join(server, "folder", "moved.txt"))


def test_copy_keeps_permissions_links_and_content(server):
    move_or_copy("cp", path(server, "script.sh", "source path"), path(server, "copy.sh", "destination path"))
    assert stat.S_IMODE(os.stat(os.path.join(server, "copy.sh")).st_mode) == 0o750
    os.symlink("b.txt", os.path.join(server, "folder", "to_b"))
    move_or_copy("cp", path(server, "folder", "source path"), path(server, "copied", "destination path"))
    original = tree_state(os.path.join(server, "folder"))
    assert tree_state(os.path.join(server, "copied")) == original
    assert os.readlink(os.path.join(server, "copied", "to_b")) == "b.txt"
    move_or_copy("cp", path(server, "link", "source path"), path(server, "link2", "destination path"))
    assert os.readlink(os.path.join(server, "link2")) == "folder"


@pytest.mark.parametrize("operation", ["mv", "cp"])
@pytest.mark.parametrize("src, dest, status, message", [
    ("ghost", "x", 400, "The file specified in src does not exist!"),
    ("a.txt", "page.html", 409, "This file already exists!"),
    ("a.txt", "/", 409, "This file already exists!"),
    ("a.txt", "missing/x", 400, "Destination parent folder does not exist!"),
    ("a.txt", "page.html/x", 400, "Destination parent is not a folder!"),
    ("folder", "folder/nested", 400, "Invalid destination path: destination is inside the source"),
])
def test_move_copy_refusals_change_nothing(server, operation, src, dest, status, message):
    before = tree_state(server)
    with pytest.raises(ApiError) as caught:
        move_or_copy(operation, path(server, src, "source path"), path(server, dest, "destination path"))
    assert (caught.value.status, caught.value.message) == (status, message)
    assert tree_state(server) == before


def test_a_failed_folder_copy_leaves_nothing_behind(server):
    secret = os.path.join(server, "folder", "nested", "c.bin")
    os.chmod(secret, 0)
    if os.access(secret, os.R_OK):
        os.chmod(secret, 0o644)
        os.mkfifo(os.path.join(server, "folder", "nested", "fifo"))  # root can read anything; a FIFO cannot be copied
    before = tree_state(server)
    with pytest.raises(ApiError) as caught:
        move_or_copy("cp", path(server, "folder", "source path"), path(server, "copy", "destination path"))
    assert caught.value.status == 500
    assert tree_state(server) == before
    assert not any(name.startswith(".octyne-copy-") for name in os.listdir(server))


# -- transactions ------------------------------------------------------------------

def transact(server, operations):
    steps = parse_operations({"operations": operations}, server)
    return run_transaction(steps, server)


def test_transaction_runs_in_order_using_earlier_results(server):
    outcome = transact(server, [
        {"operation": "cp", "src": "/a.txt", "dest": "/c.txt"},
        {"operation": "mv", "src": "/c.txt", "dest": "/folder"},
        {"operation": "rm", "path": "/page.html"},
    ])
    assert (outcome.status, outcome.body()) == (200, {"success": True})
    assert open(os.path.join(server, "folder", "c.txt")).read() == "alpha"
    assert open(os.path.join(server, "a.txt")).read() == "alpha"
    assert not os.path.exists(os.path.join(server, "page.html"))
    assert not any(name.startswith(".octyne-transaction-") for name in os.listdir(server))


@pytest.mark.parametrize("failing", [
    {"operation": "rm", "path": "/ghost"},
    {"operation": "cp", "src": "/a.txt", "dest": "/page.html"},
    {"operation": "mv", "src": "/ghost", "dest": "/x"},
])
def test_failure_at_the_last_of_five_rolls_back_exactly(server, failing):
    before = tree_state(server)
    outcome = transact(server, [
        {"operation": "cp", "src": "/folder", "dest": "/folder2"},
        {"operation": "mv", "src": "/a.txt", "dest": "/folder2/a-moved.txt"},
        {"operation": "rm", "path": "/script.sh"},
        {"operation": "rm", "path": "/folder/nested"},
        failing,
    ])
    assert outcome.status in (400, 409)
    assert outcome.body()["success"] is False and outcome.body()["errors"][0]["index"] == 4
    assert tree_state(server) == before


def test_runtime_messages(server):
    outcome = transact(server, [{"operation": "rm", "path": "/ghost"}])
    assert outcome.body()["errors"] == [{"index": 0, "message": "The file specified in path does not exist!"}]
    assert outcome.status == 400


@pytest.mark.parametrize("operation, message", [
    ({"operation": "zip", "src": "/a.txt", "dest": "/b"}, "Invalid operation! Operations available: mv,cp,rm"),
    ({"operation": "rm", "path": "../x"}, "Invalid source path: path escapes from parent"),
    ({"operation": "rm", "path": "/"}, "Invalid source path: path is the server directory itself"),
    ({"operation": "mv", "src": "", "dest": "/b"}, "Invalid source path: path is the server directory itself"),
    ({"operation": "cp", "src": "/a.txt", "dest": "../b"}, "Invalid destination path: path escapes from parent"),
])
def test_validation_failure_runs_nothing(server, operation, message):
    before = tree_state(server)
    with pytest.raises(TransactionRejected) as caught:
        parse_operations({"operations": [{"operation": "rm", "path": "/a.txt"}, operation]}, server)
    assert caught.value.outcome.status == 400
    assert caught.value.outcome.body() == {"success": False, "errors": [{"index": 1, "message": message}]}
    assert tree_state(server) == before


@pytest.mark.parametrize("body", [[], "x", {"operations": "x"}, {"operations": [1]}, {"operations": [{"src": 5}]}])
def test_malformed_transaction_bodies(server, body):
    with pytest.raises(ApiError) as caught:
        parse_operations(body, server)
    assert (caught.value.status, caught.value.message) == (400, "Invalid JSON body!")


def test_an_undo_that_fails_makes_the_status_500_and_is_reported(server):
    """Undo can only fail when something else changed the tree meanwhile; here the folder to restore into is gone."""
    moved = os.path.join(server, "b-moved.txt")
    os.rename(os.path.join(server, "folder", "b.txt"), moved)
    step = Step("mv", resolve(server, "/folder/b.txt", "source path"), resolve(server, "/b-moved.txt", "dest"))
    step.done = moved
    shutil.rmtree(os.path.join(server, "folder"))
    outcome = Outcome(400, [{"index": 1, "message": "The file specified in path does not exist!"}])
    undo([step], outcome)
    assert outcome.status == 500
    assert [error["index"] for error in outcome.body()["errors"]] == [1, 0]
    assert outcome.body()["errors"][1]["message"] == "Internal Server Error!"
    assert outcome.body()["errors"][1]["detail"] == "No such file or directory"
    assert os.path.isfile(moved)  # nothing lost
