"""Compression: zip and tar(.gz/.xz/.zst) built in place, readable by Python and the CLI tools (api.md §8)."""

from __future__ import annotations

import os
import random
import subprocess
import tarfile
import zipfile

import pytest
import zstandard

from octyne_flask.errors import ApiError
from octyne_flask.files.archives.compress import Progress, build_archive, check_options, prepare
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
    victim = os.path.join(server, "world", "vanishing.txt")
    open(victim, "w").write("here at listing time")
    request = prepare(server, f"/{tmp_path.name}.bin", "/", archive_type, compression, ["world"])
    os.unlink(victim)
    with pytest.raises(FileNotFoundError):
        build_archive(request)
    assert not any(name.startswith(tmp_path.name) or name.startswith(".octyne-archive-")
                   for name in os.listdir(server))


def test_progress_reaches_one(server, tmp_path):
    request = prepare(server, f"/{tmp_path.name}.tar.gz", "/", "tar", "true", ["world"])
    progress = Progress(request.total_bytes)
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
