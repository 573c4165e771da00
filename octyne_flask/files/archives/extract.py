"""``POST /server/{id}/decompress``: unpack zip/tar archives without ever writing outside the destination.

The archive is unpacked into a hidden staging folder inside the destination
and merged into place only when everything was read, so a failed or
refused archive (corrupt data, too large) leaves the destination as it was.
Entries with absolute names or ``..`` are skipped, symlinks and hard links
that lead outside are skipped, and a bomb guard stops at
``files.decompressLimit`` or the free disk space, whichever is smaller.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile

import zstandard

from octyne_flask.errors import ApiError
from octyne_flask.files.archives.deflate import BLOCK
from octyne_flask.files.paths import ServerPath, check_opened, is_inside, resolve

FAILED = "An error occurred while decompressing archive!"
ENTRY_COST = 512  # counted per entry too, so millions of empty files also hit the bound
ZSTD_MAX_WINDOW = 1 << 31  # archives made with `zstd --long=31`
UNIX = 3  # zip "version made by" system whose external attributes carry a Unix mode
_TAR_SUFFIXES = {
    ".tar": "", ".tar.gz": "gz", ".tgz": "gz", ".tar.bz": "bz2", ".tbz": "bz2", ".tar.bz2": "bz2",
    ".tbz2": "bz2", ".tar.xz": "xz", ".txz": "xz", ".tar.zst": "zstd", ".tzst": "zstd",
}


class ExtractionFailed(Exception):
    """The archive could not be unpacked; the message says why (sent as ``detail``)."""


def archive_kind(path: str) -> str:
    """``zip`` or ``tar`` plus its compression (``tar:gz``...), from the name's suffix."""
    if path.endswith(".zip"):
        return "zip"
    for suffix, compression in _TAR_SUFFIXES.items():
        if path.endswith(suffix):
            return f"tar:{compression}"
    raise ApiError(400, "Unsupported archive file!")


def prepare(directory: str, archive_path: str | None, destination: str) -> tuple[ServerPath, ServerPath, str]:
    """Validate archive and destination in Octyne's order; returns both and the archive kind."""
    archive = resolve(directory, archive_path, "archive path", follow=True)
    try:
        archive_mode = os.stat(archive.absolute).st_mode
    except FileNotFoundError:
        raise ApiError(400, "The requested archive does not exist!") from None
    if stat.S_ISDIR(archive_mode):
        raise ApiError(400, "The requested archive is a folder!")
    target = resolve(directory, destination, "destination path", follow=True)
    if os.path.lexists(target.absolute) and not os.path.isdir(target.absolute):
        raise ApiError(400, "There is a file at the requested unpack destination!")
    return archive, target, archive_kind(archive.absolute)


def extract(archive: ServerPath, destination: ServerPath, kind: str, limit: int) -> None:
    """Unpack into a staging folder, check it, merge it into ``destination``; all or nothing."""
    created = not os.path.lexists(destination.absolute)
    try:
        os.makedirs(destination.absolute, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".octyne-unpack-", dir=destination.absolute)
    except OSError as error:
        raise ApiError(500, FAILED, detail=error.strerror) from None
    try:
        budget = min(limit, shutil.disk_usage(staging).free)
        unpacker = _Unpacker(staging, budget)
        if kind == "zip":
            unpacker.unpack_zip(archive.absolute)
        else:
            unpacker.unpack_tar(archive.absolute, kind.partition(":")[2])
        _merge(staging, destination.absolute, destination.root, unpacker.links)
    except Exception as error:
        if created:
            shutil.rmtree(destination.absolute, ignore_errors=True)
        raise ApiError(500, FAILED, detail=_describe(error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _describe(error: Exception) -> str:
    if isinstance(error, (ExtractionFailed, zipfile.BadZipFile, tarfile.TarError)):
        return str(error)
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return "the archive is damaged"


def _member_path(name: str) -> str | None:
    """The member's path relative to the destination, or None when it is absolute or climbs (skipped)."""
    if not name or name.startswith("/") or "\x00" in name:
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


class _Unpacker:
    """Writes members into the staging folder, counting bytes against the budget."""

    def __init__(self, staging: str, budget: int):
        self.staging = os.path.realpath(staging)
        self.budget = budget
        self.written = 0
        self.links: list[str] = []

    def _spend(self, count: int) -> None:
        self.written += count
        if self.written > self.budget:
            raise ExtractionFailed(f"the archive expands to more than {self.budget} bytes")

    def _place(self, relative: str) -> str | None:
        """The on-disk path for a member, its folders created; None if they lead outside (via a link)."""
        path = os.path.join(self.staging, relative)
        parent = os.path.dirname(path)
        if not is_inside(os.path.realpath(parent), self.staging):
            return None
        os.makedirs(parent, exist_ok=True)
        if not is_inside(os.path.realpath(parent), self.staging):
            return None
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)  # a later member of the same name replaces the earlier one
        return path

    def folder(self, relative: str) -> None:
        self._spend(ENTRY_COST)
        path = self._place(relative)
        if path is not None and not os.path.isdir(path):
            os.mkdir(path)

    def file(self, relative: str, source, mode: int, mtime: float) -> None:
        self._spend(ENTRY_COST)
        path = self._place(relative)
        if path is None or os.path.isdir(path):
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     (mode & 0o777) or 0o644)
        check_opened(fd, self.staging, "destination path")
        with open(fd, "wb", buffering=0) as out:
            while chunk := source.read(BLOCK):
                self._spend(len(chunk))
                out.write(chunk)
        os.utime(path, (mtime, mtime), follow_symlinks=False)

    def symlink(self, relative: str, target: str) -> None:
        self._spend(ENTRY_COST)
        path = self._place(relative)
        if path is None or os.path.isdir(path) or not target or target.startswith("/"):
            return
        if not is_inside(os.path.realpath(os.path.join(os.path.dirname(path), target)), self.staging):
            return
        os.symlink(target, path)
        self.links.append(relative)

    def hardlink(self, relative: str, target: str) -> None:
        self._spend(ENTRY_COST)
        target_relative = _member_path(target)
        path = self._place(relative)
        if path is None or target_relative is None:
            return
        source = os.path.join(self.staging, target_relative)
        if os.path.islink(source) or not os.path.isfile(source):
            return
        if is_inside(os.path.realpath(source), self.staging):
            os.link(source, path)

    def unpack_zip(self, archive: str) -> None:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                relative = _member_path(info.filename)
                if relative is None:
                    continue
                mode = info.external_attr >> 16 if info.create_system == UNIX else 0  # others' bits mean nothing here
                if info.is_dir():
                    self.folder(relative)
                elif stat.S_ISLNK(mode):
                    with bundle.open(info) as source:
                        target = source.read(4096)
                    self.symlink(relative, os.fsdecode(target))
                else:
                    with bundle.open(info) as source:
                        self.file(relative, source, mode, time.mktime(info.date_time + (0, 0, -1)))

    def unpack_tar(self, archive: str, compression: str) -> None:
        with open(archive, "rb") as raw:
            if compression == "zstd":
                source = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(raw)
                mode = "r|"
            else:
                source, mode = raw, f"r|{compression}"
            with tarfile.open(fileobj=source, mode=mode, bufsize=BLOCK) as bundle:
                for member in bundle:
                    self._tar_member(bundle, member)

    def _tar_member(self, bundle: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        relative = _member_path(member.name)
        if relative is None:
            return
        if member.isdir():
            self.folder(relative)
        elif member.issym():
            self.symlink(relative, member.linkname)
        elif member.islnk():
            self.hardlink(relative, member.linkname)
        elif member.isreg():
            self.file(relative, bundle.extractfile(member), member.mode, member.mtime)
        # devices and FIFOs are skipped


def _merge(staging: str, destination: str, root: str, links: list[str]) -> None:
    """Move the staged tree into the destination; refuse (before moving anything) to put a file over a folder."""
    _check_conflicts(staging, destination)
    _move_into(staging, destination)
    for relative in links:  # a link that now resolves outside (through existing folders) is dropped
        path = os.path.join(destination, relative)
        if os.path.islink(path) and not is_inside(os.path.realpath(path), root):
            os.unlink(path)


def _check_conflicts(source: str, destination: str) -> None:
    with os.scandir(source) as entries:
        for entry in entries:
            target = os.path.join(destination, entry.name)
            if not os.path.lexists(target):
                continue
            new_is_folder = entry.is_dir(follow_symlinks=False)
            old_is_folder = stat.S_ISDIR(os.lstat(target).st_mode)
            if new_is_folder and old_is_folder:
                _check_conflicts(entry.path, target)
            elif new_is_folder or old_is_folder:
                raise ExtractionFailed(f"{entry.name} would replace a folder by a file or a file by a folder")


def _move_into(source: str, destination: str) -> None:
    with os.scandir(source) as entries:
        for entry in entries:
            target = os.path.join(destination, entry.name)
            if entry.is_dir(follow_symlinks=False) and os.path.lexists(target):
                _move_into(entry.path, target)
            else:
                os.replace(entry.path, target)
