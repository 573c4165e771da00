"""/compress, /compress/v2 and /decompress against the real daemon (api.md §8, log fields §9)."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator

import psutil
import pytest

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config, wait_until
from tests.test_files_api import check_error, last_log
from tests.test_files_operations import tree_state


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("archives-api")
    (base / "alpha").mkdir()
    servers = {"alpha": {"directory": str(base / "alpha"), "command": "sleep 100000"}}
    running = RunningDaemon(base, daemon_config(base, servers, files={"decompressLimit": 20_000_000}),
                            {"admin": ADMIN_HASH})
    yield running
    running.clean_up()


@pytest.fixture
def root(daemon):
    directory = daemon.directory / "alpha"
    subprocess.run(["rm", "-rf", str(directory)], check=True)
    (directory / "world" / "region").mkdir(parents=True)
    (directory / "world" / "level.dat").write_bytes(os.urandom(300_000))
    (directory / "world" / "log.txt").write_text("INFO all good\n" * 100_000)
    (directory / "world" / "region" / "r.mca").write_text("region\n")
    os.symlink("log.txt", directory / "world" / "latest.txt")
    return directory


def poll(daemon, path, token, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = daemon.get(f"{path}?token={token}")
        if response.status_code != 200 or response.json()["finished"]:
            return response
        assert 0 <= response.json()["progress"] <= 1
        time.sleep(0.05)
    raise AssertionError("compression did not finish")


@pytest.mark.parametrize("query, name, command", [
    ("", "out.zip", ["unzip", "-q", "{archive}", "-d", "{into}"]),
    ("archiveType=zip&compress=false", "out.zip", ["unzip", "-q", "{archive}", "-d", "{into}"]),
    ("archiveType=tar", "out.tar.gz", ["tar", "-xzf", "{archive}", "-C", "{into}"]),
    ("archiveType=tar&compress=false", "out.tar", ["tar", "-xf", "{archive}", "-C", "{into}"]),
    ("archiveType=tar&compress=xz", "out.tar.xz", ["tar", "-xJf", "{archive}", "-C", "{into}"]),
    ("archiveType=tar&compress=zstd", "out.tar.zst", ["tar", "--zstd", "-xf", "{archive}", "-C", "{into}"]),
])
def test_sync_compress_answers_when_the_archive_is_complete(daemon, root, tmp_path, query, name, command):
    response = daemon.post(f"/server/alpha/compress?path=/{name}&{query}", data=b'["world"]')
    assert (response.status_code, response.json()) == (200, {"success": True})
    into = tmp_path / "cli"
    into.mkdir()
    subprocess.run([part.format(archive=root / name, into=into) for part in command], check=True)
    assert tree_state(into / "world") == tree_state(root / "world")
    entry = last_log(daemon, "server.files.compress")
    assert {key: entry[key] for key in ("server", "path", "archiveType", "compression", "basePath", "files")} == {
        "server": "alpha", "path": f"/{name}", "archiveType": "tar" if "tar" in query else "zip",
        "compression": query.rpartition("compress=")[2] if "compress=" in query else "true",
        "basePath": "/", "files": ["world"]}


def test_async_compress_v2_with_progress_and_shared_tokens(daemon, root):
    response = daemon.post("/server/alpha/compress/v2?path=/w.zip&basePath=/world&async=true",
                           data=b'["log.txt", "region"]')
    token = response.json()["token"]
    assert len(token) == 32 and int(token, 16) >= 0
    finished = poll(daemon, "/server/alpha/compress", token)  # the v1 path knows v2's tokens
    assert finished.json()["finished"] is True
    with zipfile.ZipFile(root / "w.zip") as bundle:
        assert bundle.namelist() == ["log.txt", "region/", "region/r.mca"]
        assert bundle.testzip() is None
    assert last_log(daemon, "server.files.compress")["basePath"] == "/world"


def test_async_failure_is_a_500_and_leaves_nothing(daemon, root):
    big = root / "world" / "aaa-big.bin"
    big.write_bytes(os.urandom(30_000_000))
    token = daemon.post("/server/alpha/compress?path=/f.tar.xz&archiveType=tar&compress=xz&async=true",
                        data=b'["world"]').json()["token"]
    time.sleep(0.05)
    os.truncate(big, 1000)  # shrinks while it is being archived
    response = poll(daemon, "/server/alpha/compress", token)
    assert response.status_code == 500 and response.json()["error"] == "Internal Server Error!"
    assert not (root / "f.tar.xz").exists()
    assert not [name for name in os.listdir(root) if name.startswith(".octyne-archive-")]


def worker_of(daemon) -> psutil.Process:
    """The gunicorn worker: the master's only child (the apps and the keeper are the worker's)."""
    [worker] = psutil.Process(daemon.proc.pid).children()
    return worker


def peak_memory(process: psutil.Process) -> int:
    """The process's resident-set high-water mark, in bytes."""
    with open(f"/proc/{process.pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_folder_named_4000_times_is_walked_once_in_the_background(daemon_factory, tmp_path):
    folder = tmp_path / "busy"
    (folder / "world").mkdir(parents=True)
    for index in range(250):
        (folder / "world" / f"f{index:03}.txt").write_text(f"file {index}\n" * 50)
    daemon = daemon_factory(servers={"busy": {"directory": str(folder), "command": "sleep 100000"}})
    worker = worker_of(daemon)
    before = peak_memory(worker)
    body = json.dumps(["world"] * 4000).encode()  # 32 KB naming the same 251 members 4000 times
    response = daemon.post("/server/busy/compress?path=/w.zip&async=true", data=body, timeout=2)  # "at once"
    assert poll(daemon, "/server/busy/compress", response.json()["token"]).json()["finished"] is True
    names = zipfile.ZipFile(folder / "w.zip").namelist()
    assert len(names) == len(set(names)) == 251
    assert peak_memory(worker) - before < 64 * 2**20


@pytest.fixture
def big_server(daemon_factory, tmp_path):
    """A daemon whose server holds 40 MB of random data: seconds of xz work."""
    folder = tmp_path / "big"
    (folder / "world").mkdir(parents=True)
    for index in range(4):
        (folder / "world" / f"chunk{index}.bin").write_bytes(os.urandom(10_000_000))
    return daemon_factory(servers={"big": {"directory": str(folder), "command": "sleep 100000"}}), folder


def temporaries(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".octyne-archive-")]


def test_sigterm_during_an_async_compression_leaves_no_temporary_file(big_server):
    daemon, folder = big_server
    token = daemon.post("/server/big/compress?path=/w.tar.xz&archiveType=tar&compress=xz&async=true",
                        data=b'["world"]').json()["token"]
    wait_until(lambda: daemon.get(f"/server/big/compress?token={token}").json()["progress"] > 0)
    assert temporaries(folder)  # being written
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert sorted(os.listdir(folder)) == ["world"]


def test_a_daemon_killed_during_a_compression_removes_the_leftover_at_its_next_start(big_server, daemon_factory):
    daemon, folder = big_server
    token = daemon.post("/server/big/compress?path=/w.tar.xz&archiveType=tar&compress=xz&async=true",
                        data=b'["world"]').json()["token"]
    wait_until(lambda: daemon.get(f"/server/big/compress?token={token}").json()["progress"] > 0)
    os.killpg(daemon.proc.pid, signal.SIGKILL)  # master and worker at once: no shutdown code runs
    daemon.proc.wait(10)
    assert len(temporaries(folder)) == 1  # what a crash leaves
    restarted = daemon_factory(servers={"big": {"directory": str(folder), "command": "sleep 100000"}},
                               directory=daemon.directory)
    assert sorted(os.listdir(folder)) == ["world"]
    assert json.loads((restarted.directory / ".config.json.temporaries").read_text()) == []


def test_sigterm_during_a_sync_compression_answers_500_and_leaves_nothing(big_server):
    daemon, folder = big_server
    answer = {}
    request = threading.Thread(target=lambda: answer.update(response=daemon.post(
        "/server/big/compress?path=/w.tar.xz&archiveType=tar&compress=xz", data=b'["world"]')))
    request.start()
    wait_until(lambda: temporaries(folder))
    daemon.proc.send_signal(signal.SIGTERM)
    request.join(30)
    assert answer["response"].status_code == 500
    assert answer["response"].json() == {"error": "Internal Server Error!",
                                          "detail": "cancelled: the daemon is shutting down"}
    assert daemon.proc.wait(30) == 0
    assert sorted(os.listdir(folder)) == ["world"]


@pytest.mark.parametrize("query, body, message", [
    ("path=/x.zip&archiveType=rar", b'["world"]', "Invalid archive type!"),
    ("path=/x.zip&compress=bz2", b'["world"]', "Invalid compression type!"),
    ("path=/x.zip", b"world", "Invalid JSON body!"),
    ("path=/x.zip", b'["../etc"]', "Invalid file path ../etc: path escapes from parent"),
    ("path=/x.zip", b'["ghost"]', "The file ghost does not exist!"),
    ("path=/world", b'["world"]', "A file/folder already exists at the path of requested archive!"),
    ("path=../x.zip", b'["world"]', "Invalid archive path: path escapes from parent"),
    ("path=/x.zip", json.dumps(["world/region/r.mca"] * 10_001).encode(), "Too many paths to compress!"),
])
def test_compress_errors(daemon, root, query, body, message):
    check_error(daemon.post(f"/server/alpha/compress?{query}", data=body), 400, message)
    assert not (root / "x.zip").exists()


def test_token_errors_and_expiry(daemon, root):
    check_error(daemon.get("/server/alpha/compress"), 400, "No token provided!")
    check_error(daemon.get("/server/alpha/compress?token=00112233445566778899aabbccddeeff"), 400, "Invalid token!")
    token = daemon.post("/server/alpha/compress?path=/e.zip&async=true", data=b'["world/region"]').json()["token"]
    assert poll(daemon, "/server/alpha/compress/v2", token).json()["finished"] is True
    time.sleep(10.3)
    check_error(daemon.get(f"/server/alpha/compress?token={token}"), 400, "Invalid token!")


def test_decompress_round_trip_and_log(daemon, root):
    assert daemon.post("/server/alpha/compress?path=/w.tar.gz&archiveType=tar", data=b'["world"]').status_code == 200
    response = daemon.post("/server/alpha/decompress?path=/w.tar.gz", data=b"/restored")
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert tree_state(root / "restored" / "world") == tree_state(root / "world")
    entry = last_log(daemon, "server.files.decompress")
    assert (entry["server"], entry["archive"], entry["destination"]) == ("alpha", "/w.tar.gz", "/restored")


def test_decompress_contains_a_zip_slip(daemon, root):
    with zipfile.ZipFile(root / "slip.zip", "w") as bundle:
        bundle.writestr("../../../escaped.txt", "slip")
        bundle.writestr("fine.txt", "fine")
    assert daemon.post("/server/alpha/decompress?path=slip.zip", data=b"out").json() == {"success": True}
    assert (root / "out" / "fine.txt").read_text() == "fine"
    assert not any(path.name == "escaped.txt" for path in daemon.directory.rglob("escaped.txt"))


def test_decompress_bomb_is_refused(daemon, root):
    with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("zeros.bin", b"\x00" * 25_000_000)
    check_error(daemon.post("/server/alpha/decompress?path=bomb.zip", data=b"boom"), 500,
                "An error occurred while decompressing archive!")
    assert not (root / "boom").exists()


@pytest.mark.parametrize("archive, body, message", [
    ("../a.zip", b"x", "Invalid archive path: path escapes from parent"),
    ("ghost.zip", b"x", "The requested archive does not exist!"),
    ("world", b"x", "The requested archive is a folder!"),
    ("a.zip", b"../x", "Invalid destination path: path escapes from parent"),
    ("a.zip", b"world/log.txt", "There is a file at the requested unpack destination!"),
    ("world/log.txt", b"x", "Unsupported archive file!"),
])
def test_decompress_errors(daemon, root, archive, body, message):
    (root / "a.zip").write_bytes(b"PK")
    check_error(daemon.post(f"/server/alpha/decompress?path={archive}", data=body), 400, message)
    assert not (root / "x").exists()


HEADER_BOMB_BYTES = 256 * 2**20


def tar_header(name: str, size: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.GNU_FORMAT)


def with_checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def header_bomb(kind: str) -> Iterator[bytes]:
    """A tar stream whose first member's headers take ``HEADER_BOMB_BYTES``, then a small file."""
    if kind == "sparse":  # an old GNU sparse file whose map goes on for extension block after extension block
        header = bytearray(tar_header("holes.bin", 0, tarfile.GNUTYPE_SPARSE))
        header[482] = 1  # isextended
        yield with_checksum(header)
        block = b"".join(b"%011o\0%011o\0" % (offset * 2, 1) for offset in range(1, 22)) + b"\1".ljust(8, b"\0")
        blocks = HEADER_BOMB_BYTES // tarfile.BLOCKSIZE
        yield from (block * 2048 for _ in range(blocks // 2048))
        yield b"\0" * tarfile.BLOCKSIZE  # the last extension block
    else:
        type_ = tarfile.GNUTYPE_LONGNAME if kind == "long name" else tarfile.XHDTYPE
        yield tar_header("././@LongLink" if kind == "long name" else "pax", HEADER_BOMB_BYTES, type_)
        yield from (b"a" * 2**20 for _ in range(HEADER_BOMB_BYTES // 2**20))
    yield tar_header("small.txt", 0, tarfile.REGTYPE) + b"\0" * 2 * tarfile.BLOCKSIZE


@pytest.mark.parametrize("kind", ["long name", "pax header", "sparse"])
def test_a_tar_whose_headers_expand_to_hundreds_of_mib_is_refused_without_reading_them_into_memory(
        daemon_factory, tmp_path, kind):
    folder = tmp_path / "bombed"
    folder.mkdir()
    zstd_archive(folder / "bomb.tar.zst", header_bomb(kind))
    assert os.path.getsize(folder / "bomb.tar.zst") < 100_000
    daemon = daemon_factory(servers={"bombed": {"directory": str(folder), "command": "sleep 100000"}})
    worker = worker_of(daemon)
    before = peak_memory(worker)
    check_error(daemon.post("/server/bombed/decompress?path=bomb.tar.zst", data=b"out"), 500,
                "An error occurred while decompressing archive!")
    assert peak_memory(worker) - before < 64 * 2**20
    assert sorted(os.listdir(folder)) == ["bomb.tar.zst"]


def zstd_archive(path, parts: Iterator[bytes]) -> None:
    with open(path, "wb") as archive:
        zstd = subprocess.Popen(["zstd", "-q", "-c"], stdin=subprocess.PIPE, stdout=archive)
        for part in parts:
            zstd.stdin.write(part)
        zstd.stdin.close()
        assert zstd.wait() == 0


def _empty_file_template() -> tuple[int, bytes, bytes]:
    header = bytearray(tarfile.TarInfo("x").tobuf())
    header[:100], header[148:156] = bytes(100), b" " * 8  # no name; the checksum field counts as spaces
    return sum(header), bytes(header[100:148]), bytes(header[156:])


_EMPTY_FILE = _empty_file_template()


def empty_file_header(name: str) -> bytes:
    """``tarfile.TarInfo(name).tobuf()`` for a short name, ten times faster: only the name and the checksum vary."""
    checksum, before, after = _EMPTY_FILE
    encoded = name.encode()
    return encoded.ljust(100, b"\0") + before + b"%06o\0 " % (checksum + sum(encoded)) + after


def test_an_empty_file_header_is_the_one_tarfile_writes():
    for name in ("f", "d0/f0", "d599/f999", "x" * 99):
        assert empty_file_header(name) == tarfile.TarInfo(name).tobuf()


class Zeros(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        buffer[:] = bytes(len(buffer))
        return len(buffer)


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_a_small_compressed_tar_of_zeros_is_decompressed_no_faster_than_it_is_written(
        daemon_factory, tmp_path, compression):
    """tarfile's own "r|bz2" decompressed each MiB of input whole: this 1 KiB bz2 was 256 MiB in memory at once."""
    folder = tmp_path / "zeros"
    folder.mkdir()
    info = tarfile.TarInfo("zeros.bin")
    info.size = 256 * 2**20 if compression != "xz" else 64 * 2**20  # xz compresses slowly
    with tarfile.open(folder / f"z.tar.{compression}", f"w:{compression}") as bundle:
        bundle.addfile(info, io.BufferedReader(Zeros()))
    assert os.path.getsize(folder / f"z.tar.{compression}") < info.size // 500
    daemon = daemon_factory(servers={"zeros": {"directory": str(folder), "command": "sleep 100000"}},
                            config={"files": {"decompressLimit": 20_000_000}})
    worker = worker_of(daemon)
    before = peak_memory(worker)
    check_error(daemon.post(f"/server/zeros/decompress?path=z.tar.{compression}", data=b"out"), 500,
                "An error occurred while decompressing archive!")
    assert peak_memory(worker) - before < 32 * 2**20
    assert sorted(os.listdir(folder)) == [f"z.tar.{compression}"]


def test_a_million_members_that_are_all_skipped_still_count_against_the_bound(daemon_factory, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    fifo = tarfile.TarInfo("/absolute/fifo")
    fifo.type = tarfile.FIFOTYPE
    zstd_archive(folder / "many.tar.zst", (fifo.tobuf() * 1000 for _ in range(1000)))
    daemon = daemon_factory(servers={"many": {"directory": str(folder), "command": "sleep 100000"}},
                            config={"files": {"decompressLimit": 20_000_000}})
    worker = worker_of(daemon)
    before = peak_memory(worker)
    response = daemon.post("/server/many/decompress?path=many.tar.zst", data=b"out", timeout=30)
    check_error(response, 500, "An error occurred while decompressing archive!")
    assert "20000000" in response.json()["detail"]
    assert peak_memory(worker) - before < 32 * 2**20


def test_a_decompression_in_progress_is_abandoned_at_sigterm_and_leaves_nothing(daemon_factory, tmp_path):
    """Without that, the worker sat out twice the graceful timeout (30 s here) before it was killed."""
    folder = tmp_path / "long"
    folder.mkdir()
    members = (b"".join(empty_file_header(f"d{batch}/f{index}") for index in range(1000)) for batch in range(600))
    zstd_archive(folder / "files.tar.zst", itertools.chain(members, [b"\0" * 2 * tarfile.BLOCKSIZE]))
    daemon = daemon_factory(servers={"long": {"directory": str(folder), "command": "sleep 100000"}},
                            config={"stopGracePeriod": 0})  # gunicorn's graceful timeout: 15 s
    answers = []
    request = threading.Thread(target=lambda: answers.append(
        daemon.post("/server/long/decompress?path=files.tar.zst", data=b"out", timeout=60)))
    request.start()
    wait_until(lambda: (folder / "out").is_dir() and os.listdir(folder / "out"))
    time.sleep(0.5)
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.wait(12)
    request.join()
    check_error(answers[0], 500, "An error occurred while decompressing archive!")
    assert os.listdir(folder) == ["files.tar.zst"]
