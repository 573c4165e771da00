"""``POST /server/{id}/compress``: zip or tar (plain, gzip, xz, zstd) of files under ``basePath``.

The archive is built under a hidden temporary name beside its final path and
linked into place only when complete, so a failed or interrupted
compression never leaves a corrupt archive behind (and never replaces
anything). Folders are added recursively; symlinks are stored as links and
never followed.

Levels (chosen against the command-line tools in bench/files_compress.py):
zip and gzip use DEFLATE level ``DEFLATE_LEVEL`` on every core, entries or
blocks that do not compress are stored; zstd uses level 3 with long-distance
matching (like ``zstd --long``) on every core; xz uses preset ``XZ_PRESET``.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import secrets
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass

import zstandard

from octyne_flask.errors import ApiError
from octyne_flask.files.archives.deflate import BLOCK, DeflateStream, OrderedPipeline, deflate_small, worker_pool
from octyne_flask.files.archives.zipwriter import DEFLATED, STORED, ZipWriter
from octyne_flask.files.paths import ServerPath, check_opened, resolve

ARCHIVE_TYPES = ("zip", "tar")
COMPRESSIONS = ("true", "false", "gzip", "xz", "zstd")
DEFLATE_LEVEL = 3  # zlib's fastest strategy that still matches strings well: ~2x level 5, about 3% larger on logs
XZ_PRESET = 3
ZSTD_LEVEL = 3
ZSTD_WINDOW_LOG = 27  # what `zstd --long` uses
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Item:
    """One archive member: its name in the archive, where it is on disk, and its lstat."""

    name: str
    path: str
    info: os.stat_result
    root: str  # the server directory it must stay inside

    def open(self) -> int:
        """A descriptor for reading the file: never through a final link, and checked to be inside."""
        return check_opened(os.open(self.path, _OPEN_FLAGS), self.root, "file path")


@dataclass(frozen=True)
class CompressRequest:
    """A validated compress request (everything checked before any work starts)."""

    archive: ServerPath
    base: ServerPath
    archive_type: str
    compression: str
    files: list
    items: list

    @property
    def total_bytes(self) -> int:
        return sum(item.info.st_size for item in self.items if stat.S_ISREG(item.info.st_mode))


def check_options(archive_type: str | None, compression: str | None) -> tuple[str, str]:
    """Defaults and validation of ``archiveType`` and ``compress``, in Octyne's order."""
    archive_type = archive_type or "zip"
    compression = compression or "true"
    if archive_type not in ARCHIVE_TYPES:
        raise ApiError(400, "Invalid archive type!")
    if compression not in COMPRESSIONS:
        raise ApiError(400, "Invalid compression type!")
    return archive_type, compression


def prepare(directory: str, archive_path: str | None, base_path: str | None, archive_type: str,
            compression: str, files) -> CompressRequest:
    """Validate the body, the base path, every input and the archive path; list every member."""
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise ApiError(400, "Invalid JSON body!")
    base = resolve(directory, base_path or "/", "base path", follow=True)
    inputs = []
    for name in files:
        entry = resolve(directory, name, f"file path {name}", base=base.relative)
        if not os.path.lexists(entry.absolute):
            raise ApiError(400, f"The file {name} does not exist!")
        inputs.append(entry)
    archive = resolve(directory, archive_path, "archive path")
    if os.path.lexists(archive.absolute):
        raise ApiError(400, "A file/folder already exists at the path of requested archive!")
    items = []
    for entry in inputs:
        items.extend(_walk(entry, base, archive))
    return CompressRequest(archive, base, archive_type, compression, files, items)


def _walk(entry: ServerPath, base: ServerPath, archive: ServerPath) -> list[Item]:
    """The input and, for a folder, everything below it (links not followed, our own archive skipped)."""
    found = []
    relative = posixpath.relpath(entry.relative or ".", base.relative or ".")
    pending = [(entry.absolute, relative)]
    while pending:
        path, name = pending.pop()
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if name != ".":
            found.append(Item(name, path, info, entry.root))
        if stat.S_ISDIR(info.st_mode):
            with os.scandir(path) as children:
                for child in children:
                    if child.name.startswith(".octyne-archive-") or child.path == archive.absolute:
                        continue
                    pending.append((child.path, child.name if name == "." else f"{name}/{child.name}"))
    found.sort(key=lambda item: item.name)
    return found


class Progress:
    """Bytes of file data read so far, out of the total; read from another thread."""

    def __init__(self, total: int):
        self.total = total
        self.done = 0

    def add(self, count: int) -> None:
        self.done += count

    @property
    def fraction(self) -> float:
        return 1.0 if not self.total else min(1.0, self.done / self.total)


def build_archive(request: CompressRequest, progress: Progress | None = None) -> None:
    """Write the archive under a temporary name and link it into place when complete."""
    progress = progress or Progress(request.total_bytes)
    final = request.archive.absolute
    temporary = os.path.join(os.path.dirname(final), f".octyne-archive-{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        with open(fd, "w+b", buffering=BLOCK) as out:
            if request.archive_type == "zip":
                _write_zip(out, request, progress)
            else:
                _write_tar(out, request, progress)
        os.link(temporary, final)  # refuses to replace something created meanwhile
    finally:
        os.unlink(temporary)


def _read_blocks(item: Item, progress: Progress):
    """The file's content in 1 MiB blocks, opened without following a link swapped in meanwhile."""
    fd = item.open()
    try:
        while block := os.read(fd, BLOCK):
            progress.add(len(block))
            yield block
    finally:
        os.close(fd)


def _write_zip(out, request: CompressRequest, progress: Progress) -> None:
    writer = ZipWriter(out)
    deflate = request.compression != "false"
    with worker_pool() as pool:
        pipeline = OrderedPipeline(pool)
        try:
            for item in request.items:
                _zip_item(writer, pipeline, item, deflate, progress)
            pipeline.drain()
        except BaseException:
            pipeline.cancel()
            raise
    writer.close()


def _zip_item(writer: ZipWriter, pipeline: OrderedPipeline, item: Item, deflate: bool, progress: Progress) -> None:
    """Queue one member: folders, links and small files whole; large files block by block."""
    name, mode, mtime = item.name, item.info.st_mode, item.info.st_mtime
    if stat.S_ISDIR(mode):
        pipeline.then(lambda _: writer.add(name + "/", mode, mtime, STORED, b"", 0, 0))
        return
    if stat.S_ISLNK(mode):
        target = os.fsencode(os.readlink(item.path))
        pipeline.then(lambda _: writer.add(name, mode, mtime, STORED, target, zlib.crc32(target), len(target)))
        return
    if not stat.S_ISREG(mode):
        return  # sockets, FIFOs and devices have no content to archive
    blocks = _read_blocks(item, progress)
    first = next(blocks, b"")
    second = next(blocks, None) if len(first) == BLOCK else None
    if second is None:  # the whole file is in hand
        crc, size = zlib.crc32(first), len(first)
        if deflate:
            pipeline.submit(lambda result: writer.add(name, mode, mtime, DEFLATED if result[0] else STORED,
                                                      result[1], crc, size), deflate_small, first, DEFLATE_LEVEL)
        else:
            pipeline.then(lambda _: writer.add(name, mode, mtime, STORED, first, crc, size))
        return
    holder = {}
    method = DEFLATED if deflate else STORED
    pipeline.then(lambda _: holder.setdefault("entry", writer.begin(name, mode, mtime, method, item.info.st_size)))
    emit = lambda chunk: writer.data(holder["entry"], chunk)  # noqa: E731 - runs in write order
    if deflate:
        stream = DeflateStream(pipeline, DEFLATE_LEVEL, emit)
        for block in _chain(first, second, blocks):
            stream.write(block)
        stream.finish()
        crc, size = stream.crc, stream.size
    else:
        crc = size = 0
        for block in _chain(first, second, blocks):
            crc, size = zlib.crc32(block, crc), size + len(block)
            pipeline.then(lambda _, block=block: emit(block))
    pipeline.then(lambda _: writer.end(holder["entry"], crc, size))


def _chain(first: bytes, second: bytes, rest):
    yield first
    yield second
    yield from rest


class _GzipSink:
    """A gzip file written from block-parallel DEFLATE; ``tarfile`` writes into it."""

    def __init__(self, out, pipeline: OrderedPipeline):
        self._out = out
        self._pipeline = pipeline
        out.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x00\x03")
        self._stream = DeflateStream(pipeline, DEFLATE_LEVEL, out.write)

    def write(self, data) -> int:
        self._stream.write(data)
        return len(data)

    def tell(self) -> int:
        return self._stream.position

    def close(self) -> None:
        self._stream.finish()
        self._pipeline.drain()
        self._out.write(struct.pack("<II", self._stream.crc, self._stream.size & 0xFFFFFFFF))


class _CountingReader:
    """A file opened without following links, read by ``tarfile``, counting progress."""

    def __init__(self, fd: int, progress: Progress):
        self._fd = fd
        self._progress = progress

    def read(self, size: int) -> bytes:
        data = os.read(self._fd, size)
        self._progress.add(len(data))
        return data


def _compressed_sink(out, compression: str, pool):
    """The file object ``tarfile`` writes to, compressing into ``out``; closing it ends the stream."""
    if compression in ("true", "gzip"):
        return _GzipSink(out, OrderedPipeline(pool))
    if compression == "xz":
        return lzma.LZMAFile(out, "w", preset=XZ_PRESET)
    if compression == "zstd":
        parameters = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, window_log=ZSTD_WINDOW_LOG, enable_ldm=True, threads=os.cpu_count() or 2)
        return zstandard.ZstdCompressor(compression_params=parameters).stream_writer(out, closefd=False)
    return None


def _write_tar(out, request: CompressRequest, progress: Progress) -> None:
    with worker_pool() as pool:
        sink = _compressed_sink(out, request.compression, pool)
        with tarfile.TarFile(fileobj=sink or out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=BLOCK) as tar:
            for item in request.items:
                _tar_item(tar, item, progress)
        if sink is not None:
            sink.close()


def _tar_item(tar: tarfile.TarFile, item: Item, progress: Progress) -> None:
    info = tar.gettarinfo(item.path, item.name)
    if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
        return  # sockets, FIFOs and devices have no content to archive
    if not info.isreg():
        tar.addfile(info)
        return
    fd = item.open()
    try:
        tar.addfile(info, _CountingReader(fd, progress))
    finally:
        os.close(fd)
