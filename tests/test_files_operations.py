"""Listing, delete, create-folder, move/copy and transactions on real files (api.md §8)."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
import subprocess
import threading
import time

import pytest

from octyne_flask.errors import ApiError
from octyne_flask.files.listing import list_folder
from octyne_flask.files import noreplace
from octyne_flask.files.operations import copy_into_place, create_folder, delete_item, move_entry, move_or_copy
from octyne_flask.files.paths import ServerPath, resolve
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
    step.final = step.dest
    shutil.rmtree(os.path.join(server, "folder"))
    outcome = Outcome(400, [{"index": 1, "message": "The file specified in path does not exist!"}])
    undo([step], outcome)
    assert outcome.status == 500
    assert [error["index"] for error in outcome.body()["errors"]] == [1, 0]
    assert outcome.body()["errors"][1]["message"] == "Internal Server Error!"
    assert outcome.body()["errors"][1]["detail"] == "No such file or directory"
    assert os.path.isfile(moved)  # nothing lost


# -- races and links: nothing ever leaves the server directory ----------------------

LOOT = b"outside the server directory"


def big_world(tmp_path):
    """A server with a folder of 2000 small files (a copy takes a while) and an outside folder full of loot."""
    server, outside = tmp_path / "server", tmp_path / "outside"
    for index in range(40):
        folder = server / "src" / f"sub{index:02}"
        folder.mkdir(parents=True)
        for number in range(50):
            (folder / f"f{number}.txt").write_bytes(b"inside %d" % number)
    outside.mkdir()
    for number in range(50):
        (outside / f"f{number}.txt").write_bytes(LOOT)
    (outside / "sub00").mkdir()
    return str(server), str(outside)


class Swapper(threading.Thread):
    """Until stopped (at most ``limit`` seconds), in a tight loop: swaps the folder ``swap`` and every folder
    inside our hidden work folders (``staging``, a glob) for symlinks to ``outside``, then puts them back."""

    def __init__(self, server: str, outside: str, swap: str | None = "src/sub07",
                 staging: str | None = ".octyne-copy-*", limit: float = 20):
        super().__init__(daemon=True)
        self.server, self.outside, self.deadline = server, outside, time.monotonic() + limit
        self.swap, self.staging = swap, staging
        self.swaps = 0
        self.done = threading.Event()

    def _targets(self) -> list[str]:
        targets = [os.path.join(self.server, self.swap)] if self.swap else []
        for staging in glob.glob(os.path.join(self.server, self.staging)) if self.staging else []:
            try:
                targets += [entry.path for entry in os.scandir(staging) if entry.is_dir(follow_symlinks=False)]
            except OSError:
                pass  # finished meanwhile
        return targets

    def run(self):
        while not self.done.is_set() and time.monotonic() < self.deadline:
            swapped = []
            for target in self._targets():
                try:
                    os.rename(target, target + ".parked")
                except OSError:
                    continue  # gone, or being removed under us
                try:
                    os.symlink(os.path.join(self.outside, "sub00"), target)
                except OSError:  # its folder was removed meanwhile (the copy ended), or the name taken again
                    self._unpark(target)
                    continue
                swapped.append(target)
            for target in swapped:
                self._restore(target)
            self.swaps += len(swapped)

    @classmethod
    def _restore(cls, target: str) -> None:
        try:
            os.unlink(target)
        except OSError:
            return  # its folder was removed or renamed meanwhile: nothing to restore there
        cls._unpark(target)

    @staticmethod
    def _unpark(target: str) -> None:
        try:
            os.rename(target + ".parked", target)
        except OSError:
            pass  # its folder was removed or renamed meanwhile

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join()


def assert_nothing_from_outside(server: str) -> None:
    """No regular file in the server directory holds what only the outside folder has."""
    for parent, _, files in os.walk(server):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                assert open(path, "rb").read() != LOOT, f"{path} was read from outside"


@pytest.mark.parametrize("relocate", [move_entry, copy_into_place], ids=["mv", "cp"])
@pytest.mark.parametrize("source", ["a.txt", "folder"])
@pytest.mark.parametrize("taken_by", ["file", "empty folder"])
def test_a_destination_that_appears_after_the_check_is_never_replaced(server, relocate, source, taken_by):
    """The step after destination_for's check: something now at the new name is kept and the answer is 409."""
    if taken_by == "file":
        with open(os.path.join(server, "late"), "w") as late:
            late.write("written meanwhile")
    else:
        os.mkdir(os.path.join(server, "late"))
    before = tree_state(server)
    folder = os.open(server, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ApiError) as refused:
            relocate(folder, source, folder, "late", server)
    finally:
        os.close(folder)
    assert (refused.value.status, refused.value.message) == (409, "This file already exists!")
    assert tree_state(server) == before  # no staging copy left, nothing moved


@pytest.mark.parametrize("rename", [noreplace.rename_without_replacing, noreplace._rename_by_hand],
                         ids=["renameat2", "without the kernel flag"])
def test_renaming_without_replacing_moves_files_folders_and_links_and_refuses_taken_names(tmp_path, rename):
    (tmp_path / "file").write_text("content")
    (tmp_path / "folder").mkdir()
    os.symlink("nowhere", tmp_path / "link")
    (tmp_path / "taken").write_text("kept")
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("file", "folder", "link"):
            with pytest.raises(FileExistsError):
                rename(name, "taken", src_dir_fd=folder, dst_dir_fd=folder)
            rename(name, f"{name}-moved", src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
    assert sorted(os.listdir(tmp_path)) == ["file-moved", "folder-moved", "link-moved", "taken"]
    assert (tmp_path / "taken").read_text() == "kept" and os.readlink(tmp_path / "link-moved") == "nowhere"



@pytest.mark.parametrize("names", [("a", "b\0x"), ("a\0x", "b")], ids=["new name", "old name"])
def test_renaming_without_replacing_refuses_a_name_with_a_nul_byte_as_os_rename_does(tmp_path, names):
    """C reads a name up to its first NUL: through ctypes ``b<NUL>x`` would silently become ``b``."""
    (tmp_path / "a").write_text("content")
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ValueError):
            noreplace.rename_without_replacing(*names, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)
    assert os.listdir(tmp_path) == ["a"]

def test_a_folder_swapped_for_a_link_while_it_is_copied_never_leads_the_copy_outside(tmp_path):
    server, outside = big_world(tmp_path)
    before = tree_state(outside)
    with Swapper(server, outside) as swapper:
        for attempt in range(6):
            try:
                move_or_copy("cp", path(server, "src", "source path"), path(server, f"copy{attempt}", "destination path"))
            except ApiError as error:
                assert error.status in (400, 500), error.message
    assert swapper.swaps > 0
    assert tree_state(outside) == before
    assert_nothing_from_outside(server)


def test_a_folder_swapped_for_a_link_while_it_is_deleted_never_leads_the_delete_outside(tmp_path):
    server, outside = big_world(tmp_path)
    before = tree_state(outside)
    with Swapper(server, outside):
        time.sleep(0.01)
        try:
            delete_item(path(server, "src"))
        except ApiError as error:
            assert error.status in (404, 500), error.message  # the tree changed under the delete
    assert tree_state(outside) == before


@pytest.mark.parametrize("operation", ["mv", "cp"])
@pytest.mark.parametrize("src, dest", [
    ("folder/nested/up", "/"),  # "../../a.txt" is the top's a.txt where it is, outside from the top
    ("folder/nested", "/"),  # the same link inside a folder that moves up
    ("outward", "/folder"),  # already outside where it is
])
def test_a_link_that_would_resolve_outside_at_its_new_place_is_refused(server, operation, src, dest):
    os.symlink("../../a.txt", os.path.join(server, "folder", "nested", "up"))
    os.symlink("/etc", os.path.join(server, "outward"))
    before = tree_state(server)
    with pytest.raises(ApiError) as caught:
        move_or_copy(operation, path(server, src, "source path"), path(server, dest, "destination path"))
    assert (caught.value.status, caught.value.message) == (
        400, "Invalid destination path: symlink leads outside the server directory")
    assert tree_state(server) == before


@pytest.mark.parametrize("operation", ["mv", "cp"])
def test_links_that_stay_inside_move_and_copy_as_links(server, operation):
    os.symlink("../b.txt", os.path.join(server, "folder", "nested", "up"))
    move_or_copy(operation, path(server, "folder/nested", "source path"), path(server, "folder/two", "destination path"))
    assert os.readlink(os.path.join(server, "folder", "two", "up")) == "../b.txt"


@pytest.fixture
def mounted(server):
    """A tmpfs mounted at ``ram`` inside the server directory: a second device (needs root)."""
    mount = os.path.join(server, "ram")
    os.mkdir(mount)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "octyne-test", mount],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    assert os.stat(mount).st_dev != os.stat(server).st_dev
    yield mount
    subprocess.run(["umount", "-l", mount], check=True)


def test_a_move_across_devices_copies_then_removes(server, mounted):
    os.symlink("b.txt", os.path.join(server, "folder", "to_b"))
    expected = tree_state(os.path.join(server, "folder"))
    move_or_copy("mv", path(server, "folder", "source path"), path(server, "ram", "destination path"))
    assert tree_state(os.path.join(mounted, "folder")) == expected
    assert not os.path.lexists(os.path.join(server, "folder"))
    move_or_copy("mv", path(server, "ram/folder", "source path"), path(server, "/back", "destination path"))
    assert tree_state(os.path.join(server, "back")) == expected
    assert os.listdir(mounted) == []


def test_a_move_across_devices_that_would_leave_a_link_outside_changes_nothing(server, mounted):
    os.makedirs(os.path.join(mounted, "a", "b"))
    os.symlink("../../a.txt", os.path.join(mounted, "a", "b", "link"))  # ram/a.txt where it is
    before = tree_state(server)
    with pytest.raises(ApiError) as caught:
        move_or_copy("mv", path(server, "ram/a/b", "source path"), path(server, "/b", "destination path"))
    assert (caught.value.status, caught.value.message) == (
        400, "Invalid destination path: symlink leads outside the server directory")
    assert tree_state(server) == before


def test_paths_that_cannot_name_a_file_are_refused_before_anything_moves(server):
    before = tree_state(server)
    with pytest.raises(TransactionRejected) as caught:
        parse_operations({"operations": [{"operation": "mv", "src": "/a.txt", "dest": "/b.txt"},
                                         {"operation": "rm", "path": "/page.html"},
                                         {"operation": "rm", "path": "/\ud800"}]}, server)
    assert caught.value.outcome.status == 400
    assert caught.value.outcome.body() == {
        "success": False, "errors": [{"index": 2, "message": "Invalid source path: invalid path"}]}
    assert tree_state(server) == before
    for what in ("file path", "destination path"):
        with pytest.raises(ApiError) as refused:
            resolve(server, "a\udfff/b", what)
        assert (refused.value.status, refused.value.message) == (400, f"Invalid {what}: invalid path")
    assert resolve(server, "/\udcff", "file path").absolute.endswith("/\udcff")  # the byte 0xff, not UTF-8


def test_any_failure_in_a_transaction_rolls_everything_back(server):
    """A failure that is not an ApiError (here an unencodable name that skipped validation) still undoes all."""
    before = tree_state(server)
    steps = parse_operations({"operations": [{"operation": "mv", "src": "/a.txt", "dest": "/b.txt"},
                                             {"operation": "cp", "src": "/folder", "dest": "/copy"},
                                             {"operation": "rm", "path": "/page.html"}]}, server)
    steps.append(Step("rm", ServerPath(os.path.realpath(server), "\ud800", "/\ud800")))
    outcome = run_transaction(steps, server)
    assert (outcome.status, outcome.body()) == (
        500, {"success": False, "errors": [{"index": 3, "message": "Internal Server Error!"}]})
    assert tree_state(server) == before
    assert not glob.glob(os.path.join(server, ".octyne-*"))
