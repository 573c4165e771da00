"""Compression: zip and tar(.gz/.xz/.zst) built in place, readable by Python and the CLI tools (api.md §8)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tarfile
import zipfile

import pytest
import zstandard

from octyne_flask.errors import ApiError
from octyne_flask.files.paths import LINK_ESCAPES
from octyne_flask.files.archives import members
from octyne_flask.files.archives.compress import MAX_PATHS, Progress, build_archive, check_options, prepare
from tests.test_files_operations import tree_state

CASES = [
    ("zip", "true", "out.zip"), ("zip", "false", "out.zip"),
    ("tar", "true", "out.tar.gz"), ("tar", "gzip", "out.tar.gz"), ("tar", "false", "out.tar"),
    ("tar", "xz", "out.tar.xz"), ("tar", "zstd", "out.tar.zst"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A small mixed tree: a multi-block log, random data, small files, a link inside and one to /etc."""
    root = tmp_path_factory.mktemp("compress") / "server"
    (root / "world" / "region").mkdir(parents=True)
    (root / "world" / "empty").mkdir()
    generator = random.Random(4)
    lines = (f"[12:{i % 60:02d}] INFO player{generator.randint(1, 50)} did {generator.choice('abcde')}\n"
             for i in range(120_000))
    (root / "world" / "server.log").write_text("".join(lines))  # about 4 MiB: several parallel blocks
    (root / "world" / "region" / "r.0.0.mca").write_bytes(generator.randbytes(1_500_000))
    for index in range(50):
        (root / "world" / "region" / f"small{index}.json").write_text(f'{{"n": {index}}}\n')
    (root / "world" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "world" / "run.sh", 0o755)
    os.symlink("server.log", root / "world" / "latest.log")
    os.symlink("/etc/passwd", root / "world" / "passwd-link")
    return str(root)


def compress(server, archive, archive_type="zip", compression="true", files=("world",), base="/"):
    request = prepare(server, archive, base, archive_type, compression, list(files))
    build_archive(request)
    return os.path.join(server, archive.lstrip("/"))


def unpack_with_cli(archive: str, into) -> None:
    into.mkdir()
    if archive.endswith(".zip"):
        command = ["unzip", "-q", archive, "-d", str(into)]
    elif archive.endswith(".zst"):
        command = ["tar", "--zstd", "-xf", archive, "-C", str(into)]
    else:
        command = ["tar", "-xf", archive, "-C", str(into)]
    subprocess.run(command, check=True, capture_output=True)


@pytest.mark.parametrize("archive_type, compression, name", CASES)
def test_archives_open_with_the_command_line_tools_and_match_the_tree(server, tmp_path, archive_type,
                                                                      compression, name):
    archive = compress(server, f"/{tmp_path.name}-{name}", archive_type, compression)
    try:
        unpack_with_cli(archive, tmp_path / "cli")
        assert tree_state(tmp_path / "cli" / "world") == tree_state(os.path.join(server, "world"))
        assert os.readlink(tmp_path / "cli" / "world" / "passwd-link") == "/etc/passwd"  # stored as a link
    finally:
        os.unlink(archive)


@pytest.mark.parametrize("archive_type, compression, name", CASES)
def test_archives_open_with_python(server, tmp_path, archive_type, compression, name):
    archive = compress(server, f"/{tmp_path.name}-{name}", archive_type, compression)
    try:
        if archive_type == "zip":
            with zipfile.ZipFile(archive) as bundle:
                assert bundle.testzip() is None
                names = bundle.namelist()
                methods = {info.filename: info.compress_type for info in bundle.infolist()}
                bundle_sizes = {info.filename: (info.compress_size, info.file_size) for info in bundle.infolist()}
                assert bundle.read("world/server.log") == open(os.path.join(server, "world/server.log"), "rb").read()
            expected_text = zipfile.ZIP_DEFLATED if compression == "true" else zipfile.ZIP_STORED
            assert methods["world/server.log"] == expected_text
            random_entry = bundle_sizes["world/region/r.0.0.mca"]
            assert random_entry[0] <= random_entry[1] * 1.001  # random data is stored, not inflated
        else:
            if compression == "zstd":
                raw = open(archive, "rb")
                source = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(raw)
                bundle = tarfile.open(fileobj=source, mode="r|")
            else:
                bundle = tarfile.open(archive)
            with bundle:
                names = [member.name + ("/" if member.isdir() else "") for member in bundle]
        assert "world/" in names and "world/empty/" in names and "world/region/small7.json" in names
        assert not any(name.startswith(".octyne-archive-") or "/.octyne-archive-" in name for name in names)
    finally:
        os.unlink(archive)


def test_base_path_names_entries_relative_to_it(server, tmp_path):
    archive = compress(server, f"/{tmp_path.name}.zip", files=["region/small1.json", "/run.sh"], base="/world")
    try:
        assert zipfile.ZipFile(archive).namelist() == ["region/small1.json", "run.sh"]
    finally:
        os.unlink(archive)


def test_archive_inside_the_compressed_folder_does_not_contain_itself(server):
    archive = compress(server, "/world/self.zip", files=["world"])
    try:
        assert "world/self.zip" not in zipfile.ZipFile(archive).namelist()
    finally:
        os.unlink(archive)


@pytest.mark.parametrize("archive_type, compression, message", [
    ("rar", "true", "Invalid archive type!"),
    ("zip", "bz2", "Invalid compression type!"),
])
def test_option_errors(archive_type, compression, message):
    with pytest.raises(ApiError) as caught:
        check_options(archive_type, compression)
    assert (caught.value.status, caught.value.message) == (400, message)


def test_option_defaults():
    assert check_options(None, "") == ("zip", "true")


@pytest.mark.parametrize("files, base, archive, message", [
    ({"not": "a list"}, "/", "/a.zip", "Invalid JSON body!"),
    (["../x"], "/", "/a.zip", "Invalid file path ../x: path escapes from parent"),
    (["ok"], "../", "/a.zip", "Invalid base path: path escapes from parent"),
    (["ghost"], "/", "/a.zip", "The file ghost does not exist!"),
    (["world"], "/", "/world", "A file/folder already exists at the path of requested archive!"),
    (["world"], "/", "", "A file/folder already exists at the path of requested archive!"),
    (["world"], "/", "../a.zip", "Invalid archive path: path escapes from parent"),
])
def test_request_errors(server, files, base, archive, message):
    with pytest.raises(ApiError) as caught:
        prepare(server, archive, base, "zip", "true", files)
    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize("archive_type, compression", [("zip", "true"), ("tar", "zstd")])
def test_a_failed_compression_leaves_nothing_behind(server, tmp_path, archive_type, compression):
    request = prepare(server, f"/{tmp_path.name}.bin", "/", archive_type, compression, ["world"])
    taken = os.path.join(server, f"{tmp_path.name}.bin")
    open(taken, "w").write("created while the archive was being built")
    try:
        with pytest.raises(FileExistsError):
            build_archive(request)
        assert open(taken).read() == "created while the archive was being built"
        assert not any(name.startswith(".octyne-archive-") for name in os.listdir(server))
    finally:
        os.unlink(taken)


def test_a_file_removed_after_the_check_is_left_out(server, tmp_path):
    victim = os.path.join(server, "world", "vanishing.txt")
    open(victim, "w").write("here when the request was checked")
    request = prepare(server, f"/{tmp_path.name}.zip", "/", "zip", "true", ["world"])
    os.unlink(victim)
    build_archive(request)
    try:
        assert "world/vanishing.txt" not in zipfile.ZipFile(request.archive.absolute).namelist()
    finally:
        os.unlink(request.archive.absolute)


def test_progress_reaches_one(server, tmp_path):
    request = prepare(server, f"/{tmp_path.name}.tar.gz", "/", "tar", "true", ["world"])
    progress = Progress()
    assert progress.fraction == 0.0  # nothing counted yet
    build_archive(request, progress)
    os.unlink(request.archive.absolute)
    assert progress.total > 4_000_000 and progress.done == progress.total and progress.fraction == 1.0


def test_zip64_local_headers_are_read_by_both_tools(server, tmp_path, monkeypatch):
    """Entries near 4 GiB get ZIP64 sizes in their local header; forced here for every entry."""
    monkeypatch.setattr("octyne_flask.files.archives.zipwriter.ZIP64_FROM", 0)
    archive = compress(server, f"/{tmp_path.name}.zip", files=["world/server.log", "world/run.sh"])
    try:
        with zipfile.ZipFile(archive) as bundle:
            assert bundle.testzip() is None
        subprocess.run(["unzip", "-tq", archive], check=True, capture_output=True)
    finally:
        os.unlink(archive)


@pytest.fixture
def small(tmp_path):
    """A small server: a folder with a file and a subfolder, and a link to that folder."""
    root = tmp_path / "small"
    (root / "tiny" / "sub").mkdir(parents=True)
    (root / "tiny" / "a.txt").write_text("a")
    (root / "tiny" / "sub" / "b.txt").write_text("b")
    os.symlink("tiny", root / "alias")
    return str(root)


def member_names(archive: str) -> list[str]:
    if archive.endswith(".zip"):
        return zipfile.ZipFile(archive).namelist()
    with tarfile.open(archive) as bundle:
        return [member.name + ("/" if member.isdir() else "") for member in bundle]


@pytest.mark.parametrize("archive_type, compression, name", [("zip", "true", "out.zip"), ("tar", "gzip", "out.tar.gz")])
def test_a_folder_named_4000_times_and_overlapping_inputs_are_archived_once(small, archive_type, compression, name):
    files = ["tiny"] * 4000 + ["/tiny", "tiny/", "./tiny", "tiny/a.txt", "tiny/sub", "alias/sub/b.txt"]
    archive = compress(small, f"/{name}", archive_type, compression, files)
    assert member_names(archive) == ["tiny/", "tiny/a.txt", "tiny/sub/", "tiny/sub/b.txt"]


def test_the_base_folder_itself_covers_every_other_input(small):
    archive = compress(small, "/all.zip", files=["tiny/a.txt", "/", "alias"])
    assert member_names(archive) == ["alias", "tiny/", "tiny/a.txt", "tiny/sub/", "tiny/sub/b.txt"]
    assert zipfile.ZipFile(archive).read("alias") == b"tiny"  # the link itself, not followed


def test_too_many_paths_are_refused_before_anything_is_read(small):
    with pytest.raises(ApiError) as caught:
        prepare(small, "/x.zip", "/", "zip", "true", ["tiny"] * (MAX_PATHS + 1))
    assert (caught.value.status, caught.value.message) == (400, "Too many paths to compress!")
    assert caught.value.extra == {"detail": f"at most {MAX_PATHS} in one request"}


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_ENTRIES", 3, "Too many files and folders to compress!"),
    ("MAX_DEPTH", 1, "Folders are nested too deeply to compress!"),
])
def test_walks_past_the_limits_fail_before_anything_is_written(small, monkeypatch, limit, value, message):
    monkeypatch.setattr(members, limit, value)
    request = prepare(small, "/x.zip", "/", "zip", "true", ["tiny"])
    with pytest.raises(ApiError) as caught:
        build_archive(request)
    assert (caught.value.status, caught.value.message) == (400, message)
    assert sorted(os.listdir(small)) == ["alias", "tiny"]


@pytest.mark.parametrize("archive_type, compression, name", [("zip", "true", "out.zip"), ("tar", "false", "out.tar")])
def test_an_input_folder_swapped_for_a_link_after_the_check_is_stored_as_the_link(tmp_path, archive_type,
                                                                                   compression, name):
    root, outside = tmp_path / "server", tmp_path / "outside"
    (root / "pack" / "swap").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("not the server's")
    request = prepare(str(root), f"/{name}", "/", archive_type, compression, ["pack/swap"])
    (root / "pack" / "swap").rmdir()
    os.symlink(outside, root / "pack" / "swap")
    build_archive(request)
    assert member_names(str(root / name)) == ["pack/swap"]


def test_the_archive_folder_swapped_for_a_link_to_outside_after_the_check_is_refused(small, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkdir(os.path.join(small, "out"))
    request = prepare(small, "/out/x.zip", "/", "zip", "true", ["tiny"])
    os.rmdir(os.path.join(small, "out"))
    os.symlink(outside, os.path.join(small, "out"))
    with pytest.raises(ApiError) as caught:
        build_archive(request)
    assert (caught.value.status, caught.value.message) == (400, f"Invalid archive path: {LINK_ESCAPES}")
    assert os.listdir(outside) == []


# Swaps a folder between its real self (parked outside the compressed folder meanwhile) and a link to outside.
SWAPPER = """
import os, sys, time
real, parked, outside = sys.argv[1:4]
print("swapping", flush=True)
while True:
    os.rename(real, parked)
    os.symlink(outside, real)
    time.sleep(0.0005)
    os.unlink(real)
    os.rename(parked, real)
    time.sleep(0.0005)
"""


def test_a_folder_swapped_for_a_link_to_outside_during_compressions_never_brings_outside_in(tmp_path):
    root, outside = tmp_path / "server", tmp_path / "outside"
    for index in range(300):
        (root / "world" / "swap" / f"d{index}").mkdir(parents=True)
        (outside / f"d{index}" / "OUTSIDE").mkdir(parents=True)  # same names, plus one more level
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(root / "world" / "swap"),
                                str(root / "parked"), str(outside)], stdout=subprocess.PIPE)
    failures, leaks = [], []
    try:
        assert swapper.stdout.readline() == b"swapping\n"
        for attempt in range(20):
            for archive_type, compression, suffix in [("zip", "true", ".zip"), ("tar", "false", ".tar")]:
                archive = f"/out{attempt}{suffix}"
                try:
                    build_archive(prepare(str(root), archive, "/", archive_type, compression, ["world"]))
                except Exception as error:  # noqa: BLE001 - any failure is a finding here
                    failures.append(repr(error))
                    continue
                leaks += [name for name in member_names(str(root) + archive) if "OUTSIDE" in name]
    finally:
        swapper.kill()
        swapper.wait()
    assert leaks == [] and failures == []


def test_a_base_path_through_a_link_still_archives_each_place_once(small):
    archive = compress(small, "/via-alias.zip", files=["/", "a.txt", "sub/b.txt"], base="/alias")
    assert member_names(archive) == ["a.txt", "sub/", "sub/b.txt"]
