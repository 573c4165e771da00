"""``POST /server/{id}/compress``: zip or tar (plain, gzip, xz, zstd) of files under ``basePath``.

The request only checks its inputs; the members are found while the archive
is built (in the background for ``async=true``), by a walk through open
folder descriptors that never leaves the server directory (``members.py``).
Each place is archived once however often, or however overlapping, the
inputs name it. The archive is built under a hidden temporary name beside
its final path and linked into place only when complete, so a failed,
cancelled or interrupted compression never leaves a corrupt archive behind
(and never replaces anything). Symlinks are stored as links, never followed.

Levels (chosen against the command-line tools in bench/files_compress.py):
zip and gzip use DEFLATE level ``DEFLATE_LEVEL`` on every core, entries or
blocks that do not compress are stored; zstd uses level 3 with long-distance
matching (like ``zstd --long``) on every core; xz uses preset ``XZ_PRESET``.
"""

from __future__ import annotations

import functools
import grp
import lzma
import os
import pwd
import secrets
import stat
import struct
import tarfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import zstandard

from octyne_flask.errors import INVALID_JSON, ApiError
from octyne_flask.files.archives.deflate import BLOCK, DeflateStream, OrderedPipeline, deflate_small, worker_pool
from octyne_flask.files.archives.members import (TEMPORARY_PREFIX, Cancelled, Member, Progress, Root, Walk,
                                                  distinct_roots)
from octyne_flask.files.archives.zipwriter import DEFLATED, STORED, ZipWriter
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import PARENT_MISSING, ServerPath, open_parent, resolve
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal

ARCHIVE_TYPES = ("zip", "tar")
COMPRESSIONS = ("true", "false", "gzip", "xz", "zstd")
MAX_PATHS = 10_000
TOO_MANY_PATHS = "Too many paths to compress!"
DEFLATE_LEVEL = 3  # zlib's fastest strategy that still matches strings well: ~2x level 5, about 3% larger on logs
XZ_PRESET = 3
ZSTD_LEVEL = 3
ZSTD_WINDOW_LOG = 27  # what `zstd --long` uses


@dataclass(frozen=True)
class CompressRequest:
    """A validated compress request: every input checked, nothing walked yet."""

    archive: ServerPath
    archive_type: str
    compression: str
    roots: list[Root]
    owner: Owner = KEEP  # who gets the archive
    exclude: Callable[[str, bool], bool] | None = None  # see Walk
    zstd_window_log: int = ZSTD_WINDOW_LOG  # smaller: less memory in the daemon, less long-distance matching


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
            compression: str, files, owner: Owner = KEEP) -> CompressRequest:
    """Validate the body (at most ``MAX_PATHS`` paths), the base path, every input and the archive path."""
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise ApiError(400, INVALID_JSON)
    if len(files) > MAX_PATHS:
        raise ApiError(400, TOO_MANY_PATHS, detail=f"at most {MAX_PATHS} in one request")
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
    if not os.path.isdir(os.path.dirname(archive.absolute)):
        raise ApiError(400, f"Invalid archive path: {PARENT_MISSING}")
    return CompressRequest(archive, archive_type, compression, distinct_roots(inputs, base), owner=owner)


def build_archive(request: CompressRequest, progress: Progress | None = None,
                  journal: TemporaryJournal = UNRECORDED) -> None:
    """Count the members (within the walk's limits), then write the archive under a temporary name
    (listed in ``journal`` meanwhile) and link it into place when complete."""
    progress = progress or Progress()
    progress.total = sum(member.info.st_size for member in Walk(request.roots, progress.stop, request.exclude)
                         if stat.S_ISREG(member.info.st_mode))
    folder, final = open_parent(request.archive.absolute, request.archive.root, "archive path")
    temporary = f"{TEMPORARY_PREFIX}{secrets.token_hex(8)}"
    try:
        with journal.recorded(folder, temporary):
            fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                         dir_fd=folder)
            try:
                with open(fd, "w+b", buffering=BLOCK) as out:
                    request.owner.take(fd)
                    _write(out, request, progress)
                # link() refuses to replace something created meanwhile
                os.link(temporary, final, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
            finally:
                os.unlink(temporary, dir_fd=folder)
    finally:
        os.close(folder)


def _write(out, request: CompressRequest, progress: Progress) -> None:
    members = Walk(request.roots, progress.stop, request.exclude)
    if request.archive_type == "zip":
        _write_zip(out, members, request.compression != "false", progress)
    else:
        _write_tar(out, members, request, progress)


def _read_blocks(fd: int, progress: Progress):
    """The open file's content in 1 MiB blocks."""
    while block := os.read(fd, BLOCK):
        progress.add(len(block))
        yield block


def _write_zip(out, members: Walk, deflate: bool, progress: Progress) -> None:
    writer = ZipWriter(out)
    with worker_pool() as pool:
        pipeline = OrderedPipeline(pool)
        try:
            for member in members:
                _zip_member(writer, pipeline, member, deflate, progress)
            pipeline.drain()
        except BaseException:
            pipeline.cancel()
            raise
    writer.close()


def _zip_member(writer: ZipWriter, pipeline: OrderedPipeline, member: Member, deflate: bool,
                progress: Progress) -> None:
    """Queue one member: folders, links and small files whole; large files block by block.

    Everything is read here, while the walk holds the member's folder open; only writing is queued.
    """
    name, mode, mtime = member.name, member.info.st_mode, member.info.st_mtime
    if stat.S_ISDIR(mode):
        pipeline.then(lambda _: writer.add(name + "/", mode, mtime, STORED, b"", 0, 0))
        return
    if stat.S_ISLNK(mode):
        link = member.read_link()
        if link is not None:
            target = os.fsencode(link)
            pipeline.then(lambda _: writer.add(name, mode, mtime, STORED, target, zlib.crc32(target), len(target)))
        return
    opened = member.open()
    if opened is None:
        return
    fd, info = opened
    try:
        _zip_file(writer, pipeline, name, info, _read_blocks(fd, progress), deflate)
    finally:
        os.close(fd)


def _zip_file(writer: ZipWriter, pipeline: OrderedPipeline, name: str, info: os.stat_result, blocks,
              deflate: bool) -> None:
    mode, mtime = info.st_mode, info.st_mtime
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
    pipeline.then(lambda _: holder.setdefault("entry", writer.begin(name, mode, mtime, method, info.st_size)))
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


def _compressed_sink(out, request: CompressRequest, pool):
    """The file object ``tarfile`` writes to, compressing into ``out``; closing it ends the stream."""
    compression = request.compression
    if compression in ("true", "gzip"):
        return _GzipSink(out, OrderedPipeline(pool))
    if compression == "xz":
        return lzma.LZMAFile(out, "w", preset=XZ_PRESET)
    if compression == "zstd":
        parameters = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, window_log=request.zstd_window_log, enable_ldm=True, threads=os.cpu_count() or 2)
        return zstandard.ZstdCompressor(compression_params=parameters).stream_writer(out, closefd=False)
    return None


def _write_tar(out, members: Walk, request: CompressRequest, progress: Progress) -> None:
    hard_links: dict[tuple[int, int], str] = {}
    with worker_pool() as pool:
        sink = _compressed_sink(out, request, pool)
        with tarfile.TarFile(fileobj=sink or out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=BLOCK) as tar:
            for member in members:
                _tar_member(tar, member, progress, hard_links)
                tar.members.clear()  # TarFile keeps every header to read them back; a writer never needs them
        if sink is not None:
            sink.close()


def _tar_member(tar: tarfile.TarFile, member: Member, progress: Progress, hard_links: dict) -> None:
    """One member; a file with several names is stored once, its other names as hard links (like tar)."""
    if stat.S_ISDIR(member.info.st_mode):
        tar.addfile(_tar_header(member.name, member.info, tarfile.DIRTYPE))
        return
    if stat.S_ISLNK(member.info.st_mode):
        target = member.read_link()
        if target is not None:
            tar.addfile(_tar_header(member.name, member.info, tarfile.SYMTYPE, target))
        return
    opened = member.open()
    if opened is None:
        return
    fd, info = opened
    try:
        identity = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and identity in hard_links:
            tar.addfile(_tar_header(member.name, info, tarfile.LNKTYPE, hard_links[identity]))
            return
        if info.st_nlink > 1:
            hard_links[identity] = member.name
        tar.addfile(_tar_header(member.name, info, tarfile.REGTYPE), _CountingReader(fd, progress))
    finally:
        os.close(fd)


def _tar_header(name: str, info: os.stat_result, kind: bytes, link: str = "") -> tarfile.TarInfo:
    """The header ``tarfile.gettarinfo`` would make, from a stat taken through the walk's descriptors."""
    header = tarfile.TarInfo(name)
    header.type = kind
    header.mode = stat.S_IMODE(info.st_mode)
    header.uid, header.gid = info.st_uid, info.st_gid
    header.uname, header.gname = _owner_names(info.st_uid, info.st_gid)
    header.mtime = info.st_mtime
    header.size = info.st_size if kind == tarfile.REGTYPE else 0
    header.linkname = link
    return header


@functools.lru_cache(maxsize=64)
def _owner_names(uid: int, gid: int) -> tuple[str, str]:
    """The user and group names tar stores beside the ids ("" for an id without a name)."""
    return _name_of(pwd.getpwuid, uid), _name_of(grp.getgrgid, gid)


def _name_of(lookup, number: int) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return ""
