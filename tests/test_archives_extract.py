"""Decompression: every suffix, slip/symlink/hardlink escapes skipped, bombs stopped, all or nothing (api.md §8)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import threading
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from octyne_flask.errors import ApiError
from octyne_flask.files.archives.extract import extract, prepare
from tests.test_files_operations import Swapper, assert_nothing_from_outside, big_world, tree_state
from tests.test_paths import snapshot

SUFFIXES = [".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz", ".tbz", ".tar.bz2", ".tbz2",
            ".tar.xz", ".txz", ".tar.zst", ".tzst"]


@pytest.fixture
def world(tmp_path):
    """A server directory, an outside folder to watch, and a source tree to archive."""
    server, outside, source = tmp_path / "server", tmp_path / "outside", tmp_path / "source"
    (source / "data" / "inner").mkdir(parents=True)
    (source / "data" / "hello.txt").write_text("hello\n" * 1000)
    (source / "data" / "inner" / "bytes.bin").write_bytes(os.urandom(70_000))
    (source / "data" / "tool.sh").write_text("#!/bin/sh\n")
    os.chmod(source / "data" / "tool.sh", 0o755)
    os.symlink("hello.txt", source / "data" / "alias.txt")
    server.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("outside")
    return server, outside, source


def make_archive(source, archive) -> None:
    """Build an archive with the command-line tools (what users upload)."""
    name = str(archive)
    if name.endswith(".zip"):
        subprocess.run(["zip", "-qry", name, "data"], cwd=source, check=True)
        return
    flag = {".tar": "", ".tar.gz": "z", ".tgz": "z", ".tar.bz": "j", ".tbz": "j", ".tar.bz2": "j", ".tbz2": "j",
            ".tar.xz": "J", ".txz": "J", ".tar.zst": "", ".tzst": ""}
    suffix = next(s for s in sorted(flag, key=len, reverse=True) if name.endswith(s))
    extra = ["--zstd"] if "zst" in suffix else []
    subprocess.run(["tar", *extra, f"-c{flag[suffix]}f", name, "data"], cwd=source, check=True)


def unpack(server, archive_name, destination, limit=10**10):
    archive, target, kind = prepare(str(server), archive_name, destination)
    extract(archive, target, kind, limit)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_suffix_unpacks_the_whole_tree(world, suffix):
    server, _, source = world
    make_archive(source, server / f"a{suffix}")
    unpack(server, f"/a{suffix}", "/out")
    assert tree_state(server / "out" / "data") == tree_state(source / "data")
    assert os.readlink(server / "out" / "data" / "alias.txt") == "hello.txt"
    assert not [name for name in os.listdir(server / "out") if name.startswith(".octyne-unpack-")]


def test_unpacking_merges_into_an_existing_folder(world):
    server, _, source = world
    make_archive(source, server / "a.tar.gz")
    (server / "out" / "data").mkdir(parents=True)
    (server / "out" / "data" / "hello.txt").write_text("old")
    (server / "out" / "data" / "mine.txt").write_text("mine")
    unpack(server, "a.tar.gz", "out")
    assert (server / "out" / "data" / "hello.txt").read_text() == "hello\n" * 1000
    assert (server / "out" / "data" / "mine.txt").read_text() == "mine"


def hostile_zip(path) -> None:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("../evil.txt", "slip")
        bundle.writestr("../../outside/keep.txt", "overwritten")
        bundle.writestr("/abs.txt", "absolute")
        bundle.writestr("ok/../../evil2.txt", "slip")
        link = zipfile.ZipInfo("escape")
        link.external_attr = (0o120777 << 16)
        bundle.writestr(link, "../../outside")
        bundle.writestr("escape/keep.txt", "through the link")
        bundle.writestr("fine.txt", "fine")


def hostile_tar(path, outside) -> None:
    with tarfile.open(path, "w:gz") as bundle:
        def add(name, data=b"", kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            bundle.addfile(info, io.BytesIO(data))
        add("../evil.txt", b"slip")
        add("/abs.txt", b"absolute")
        add("etc", kind=tarfile.SYMTYPE, link="/etc")
        add("etc/evil", b"through /etc")
        add("out", kind=tarfile.SYMTYPE, link=str(outside))
        add("out/keep.txt", b"overwritten")
        add("hard", kind=tarfile.LNKTYPE, link=str(outside / "keep.txt"))
        add("hard2", kind=tarfile.LNKTYPE, link="../outside/keep.txt")
        # A chain that is inside when each link is made, but escapes through an earlier link:
        add("m/n", kind=tarfile.DIRTYPE)
        add("m/n/d", kind=tarfile.SYMTYPE, link="../..")
        add("m/e", kind=tarfile.SYMTYPE, link="n/d/../..")
        add("m/e/keep.txt", b"through the chain")
        add("fifo", kind=tarfile.FIFOTYPE)
        add("fine.txt", b"fine")


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_slip_and_link_escapes_are_skipped(world, kind):
    server, outside, _ = world
    name = "hostile.zip" if kind == "zip" else "hostile.tar.gz"
    (hostile_zip if kind == "zip" else lambda path: hostile_tar(path, outside))(server / name)
    before_outside, before_etc = snapshot(str(outside)), os.listdir("/etc")
    unpack(server, name, "dest")
    assert snapshot(str(outside)) == before_outside and os.listdir("/etc") == before_etc
    assert (server / "dest" / "fine.txt").read_text() == "fine"
    assert not (server / "evil.txt").exists() and not (server.parent / "evil.txt").exists()
    assert not (server / "abs.txt").exists() and not os.path.exists("/abs.txt")
    root = os.path.realpath(server)
    for parent, folders, files in os.walk(server):
        for entry in folders + files:
            path = os.path.join(parent, entry)
            assert os.path.realpath(path).startswith(root + "/"), f"{path} leads outside"
            assert not os.path.exists(path) or os.stat(path).st_ino != os.stat(outside / "keep.txt").st_ino


def test_a_bomb_is_stopped_and_nothing_is_left(world):
    server, _, _ = world
    with zipfile.ZipFile(server / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("a.bin", b"\x00" * 8_000_000)
        bundle.writestr("b.bin", b"\x00" * 8_000_000)
    assert os.path.getsize(server / "bomb.zip") < 100_000
    with pytest.raises(ApiError) as caught:
        unpack(server, "bomb.zip", "boom", limit=10_000_000)
    assert (caught.value.status, caught.value.message) == (500, "An error occurred while decompressing archive!")
    assert "10000000" in caught.value.extra["detail"]
    assert sorted(os.listdir(server)) == ["bomb.zip"]


def test_a_corrupt_archive_changes_nothing(world):
    server, _, source = world
    make_archive(source, server / "a.tar.gz")
    data = (server / "a.tar.gz").read_bytes()
    (server / "a.tar.gz").write_bytes(data[: len(data) // 2])
    (server / "existing").mkdir()
    with pytest.raises(ApiError) as caught:
        unpack(server, "a.tar.gz", "existing")
    assert caught.value.status == 500
    assert os.listdir(server / "existing") == []


def test_a_file_over_a_folder_is_refused_before_anything_moves(world):
    server, _, _ = world
    with zipfile.ZipFile(server / "clash.zip", "w") as bundle:
        bundle.writestr("aaa.txt", "new")
        bundle.writestr("folder", "a file where a folder is")
    (server / "dest" / "folder").mkdir(parents=True)
    (server / "dest" / "aaa.txt").write_text("old")
    with pytest.raises(ApiError):
        unpack(server, "clash.zip", "dest")
    assert (server / "dest" / "aaa.txt").read_text() == "old" and (server / "dest" / "folder").is_dir()


@pytest.mark.parametrize("archive, destination, status, message", [
    ("../a.zip", "x", 400, "Invalid archive path: path escapes from parent"),
    ("ghost.zip", "x", 400, "The requested archive does not exist!"),
    ("folder.zip", "x", 400, "The requested archive is a folder!"),
    ("a.zip", "../x", 400, "Invalid destination path: path escapes from parent"),
    ("a.zip", "file.txt", 400, "There is a file at the requested unpack destination!"),
    ("a.rar", "x", 400, "Unsupported archive file!"),
])
def test_request_errors(world, archive, destination, status, message):
    server, _, _ = world
    (server / "folder.zip").mkdir()
    (server / "a.zip").write_bytes(b"PK")
    (server / "a.rar").write_bytes(b"Rar!")
    (server / "file.txt").write_text("x")
    with pytest.raises(ApiError) as caught:
        prepare(str(server), archive, destination)
    assert (caught.value.status, caught.value.message) == (status, message)
    assert not (server / "x").exists()


_NAME_PARTS = st.sampled_from(["..", ".", "", "a", "b", "link", "/", "//", "etc", "x.txt"])
_MEMBERS = st.lists(st.tuples(
    st.sampled_from(["file", "dir", "symlink", "hardlink"]),
    st.lists(_NAME_PARTS, min_size=1, max_size=5).map("/".join),
    st.lists(_NAME_PARTS, min_size=1, max_size=5).map("/".join),
), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=_MEMBERS)
def test_generated_hostile_tars_never_write_outside(tmp_path, members):
    base = tmp_path / os.urandom(6).hex()
    server, outside = base / "server", base / "outside"
    server.mkdir(parents=True)
    outside.mkdir()
    (outside / "x.txt").write_text("outside")
    with tarfile.open(server / "h.tar", "w") as bundle:
        for kind, name, target in members:
            info = tarfile.TarInfo(name)
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            data = b"payload" if kind == "file" else b""
            info.size, info.linkname = len(data), target.replace("etc", str(outside))
            bundle.addfile(info, io.BytesIO(data))
    before = snapshot(str(outside))
    try:
        unpack(server, "h.tar", "dest")
    except ApiError as error:
        assert error.status == 500
    assert snapshot(str(outside)) == before
    root = os.path.realpath(server)
    for parent, folders, files in os.walk(server):
        for entry in folders + files:
            path = os.path.join(parent, entry)
            assert os.path.realpath(path).startswith(root + "/"), f"{path} leads outside"
    assert sorted(os.listdir(base)) == ["outside", "server"]


@pytest.mark.parametrize("swap, staging", [
    (None, "dest/.octyne-unpack-*/data"),  # the folders being unpacked into
    ("dest/data/sub07", None),  # a folder the staged tree is merged into
])
def test_folders_swapped_for_links_while_unpacking_never_lead_a_write_outside(tmp_path, swap, staging):
    server, outside = big_world(tmp_path)
    with tarfile.open(os.path.join(server, "big.tar"), "w") as bundle:
        bundle.add(os.path.join(server, "src"), "data")
    shutil.copytree(os.path.join(server, "src"), os.path.join(server, "dest", "data"))
    before = tree_state(outside)
    with Swapper(server, outside, swap=swap, staging=staging) as swapper:
        try:
            unpack(server, "big.tar", "dest")
        except ApiError as error:
            assert error.status == 500
    assert swapper.swaps > 0
    assert tree_state(outside) == before
    assert_nothing_from_outside(server)


def test_a_destination_swapped_for_a_link_after_the_check_gets_nothing(world):
    server, outside, source = world
    make_archive(source, server / "a.tar")
    (server / "a" / "b").mkdir(parents=True)
    archive, target, kind = prepare(str(server), "a.tar", "a/b/out")
    os.rename(server / "a" / "b", server / "parked")
    os.symlink(outside, server / "a" / "b")
    before = snapshot(str(outside))
    with pytest.raises(ApiError) as caught:
        extract(archive, target, kind, 10**9)
    assert (caught.value.status, caught.value.message) == (
        400, "Invalid destination path: symlink leads outside the server directory")
    assert snapshot(str(outside)) == before


def test_an_archive_swapped_for_one_outside_after_the_check_is_not_read(world):
    server, outside, source = world
    make_archive(source, outside / "a.tar")
    (server / "mine").mkdir()
    make_archive(source, server / "mine" / "a.tar")
    archive, target, kind = prepare(str(server), "mine/a.tar", "out")
    os.rename(server / "mine", server / "parked")
    os.symlink(outside, server / "mine")
    with pytest.raises(ApiError) as caught:
        extract(archive, target, kind, 10**9)
    assert (caught.value.status, caught.value.message) == (
        400, "Invalid archive path: symlink leads outside the server directory")
    assert not (server / "out").exists()


def test_a_fifo_named_like_an_archive_is_refused_not_waited_on(world):
    server, _, _ = world
    os.mkfifo(server / "pipe.tar")  # what an app can make; nothing will ever write to it
    outcome = {}

    def attempt():
        try:
            unpack(server, "/pipe.tar", "/out")
        except ApiError as error:
            outcome["error"] = error

    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # blocked in open(): release it before failing
        os.close(os.open(server / "pipe.tar", os.O_WRONLY))
        worker.join()
        pytest.fail("decompressing a FIFO blocked")
    error = outcome["error"]
    assert (error.status, error.message, error.extra) == (
        500, "An error occurred while decompressing archive!", {"detail": "the archive is not a regular file"})
    assert sorted(os.listdir(server)) == ["pipe.tar"]
