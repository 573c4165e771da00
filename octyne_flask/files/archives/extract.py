"""``POST /server/{id}/decompress``: unpack zip/tar archives without ever writing outside the destination.

The archive is unpacked into a hidden staging folder inside the destination
and merged into place only when everything was read, so a failed or
refused archive (corrupt data, too large) leaves the destination as it was.
Entries with absolute names or ``..`` are skipped, symlinks and hard links
that lead outside are skipped, and a bomb guard stops at
``files.decompressLimit`` or the free disk space, whichever is smaller.
Every write and the merge go through open folders entered without following
links (``files/tree.py``), so a folder swapped for a symlink meanwhile never
leads a write out: a member whose folders are links or files is skipped.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import posixpath
import secrets
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack

import zstandard

from octyne_flask.errors import ApiError
from octyne_flask.files.archives.deflate import BLOCK
from octyne_flask.files.archives.members import Cancelled
from octyne_flask.files.archives.readahead import ReadAhead
from octyne_flask.files.archives.tasks import CANCELLED
from octyne_flask.files.archives.tarheaders import BoundedTarInfo
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import ServerPath, check_opened, is_inside, opened_path, resolve
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal
from octyne_flask.files.tree import (
    CREATE_FLAGS, FOLLOWING_FOLDER_FLAGS, discard, link_leads_outside, names, open_below, open_folder,
    open_folder_inside)

FAILED = "An error occurred while decompressing archive!"
ENTRY_COST = 512  # counted per entry too, so millions of empty files also hit the bound
ZSTD_MAX_WINDOW = 1 << 31  # archives made with `zstd --long=31`
UNIX = 3  # zip "version made by" system whose external attributes carry a Unix mode
# Decompressing no more than is read: tarfile's own "r|gz" (and kin) decompresses each block of input whole,
# and 1.6 KiB of bzip2 is 2 GiB of zeros.
_DECOMPRESSING = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}
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


def extract(archive: ServerPath, destination: ServerPath, kind: str, limit: int,
            journal: TemporaryJournal = UNRECORDED, owner: Owner = KEEP, stop: threading.Event | None = None) -> None:
    """Unpack into a staging folder (listed in ``journal`` meanwhile), check it, merge it into ``destination``;
    all or nothing. What it makes (the destination's missing folders too) is given to ``owner``. Setting
    ``stop`` (the daemon is stopping) abandons it at the next block or entry."""
    reading = _open_archive(archive)
    with reading:
        try:
            parent, target, made = _open_destination(destination, owner)
        except OSError as error:
            raise ApiError(500, FAILED, detail=error.strerror) from None
        try:
            if made:
                owner.take(target)
            _unpack_and_merge(reading, kind, limit, target, destination.root, journal, owner, stop)
        except Exception as error:
            if made:
                discard(parent, posixpath.basename(destination.relative))
            raise ApiError(500, FAILED, detail=_describe(error)) from None
        finally:
            os.close(target)
            if parent is not None:
                os.close(parent)


def _open_archive(archive: ServerPath):
    """The archive open for reading; a FIFO (or anything but a regular file) swapped in is refused, not waited on."""
    try:
        fd = check_opened(os.open(archive.absolute, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC),
                          archive.root, "archive path")
    except OSError as error:
        raise ApiError(500, FAILED, detail=error.strerror) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ApiError(500, FAILED, detail="the archive is not a regular file")
    os.set_blocking(fd, True)
    return open(fd, "rb")


def _open_destination(destination: ServerPath, owner: Owner) -> tuple[int | None, int, bool]:
    """``(parent folder, destination folder, whether it was made here)``, both open and checked to be inside;
    missing folders on the way are made (given to ``owner``). The parent is None for the server directory itself."""
    if destination.is_root:
        return None, open_folder_inside(destination.root, "", "destination path"), False
    parent_path, name = posixpath.split(destination.relative)
    parent = open_folder_inside(destination.root, parent_path, "destination path", create=True,
                                made=owner.take_entry)
    try:
        try:
            os.mkdir(name, dir_fd=parent)
            made = True
        except FileExistsError:
            made = False
        opened = os.open(name, FOLLOWING_FOLDER_FLAGS, dir_fd=parent)
        return parent, check_opened(opened, destination.root, "destination path"), made
    except BaseException:
        os.close(parent)
        raise


def _unpack_and_merge(reading, kind: str, limit: int, target: int, root: str, journal: TemporaryJournal,
                      owner: Owner, stop: threading.Event | None) -> None:
    staging = f".octyne-unpack-{secrets.token_hex(8)}"
    with journal.recorded(target, staging):  # a killed daemon's staging folder goes at the next start
        os.mkdir(staging, 0o700, dir_fd=target)
        try:
            folder = open_folder(staging, target)
            try:
                with Unpacker.within_free_space(folder, limit, stop) as unpacker:
                    if kind == "zip":
                        unpacker.unpack_zip(reading)
                    else:
                        unpacker.unpack_tar(reading, kind.partition(":")[2])
                owner.take_tree(target, staging)
                _merge(folder, target, root, unpacker.links)
            finally:
                os.close(folder)
        finally:
            discard(target, staging)


def _describe(error: Exception) -> str:
    if isinstance(error, (ExtractionFailed, zipfile.BadZipFile, tarfile.TarError)):
        return str(error)
    if isinstance(error, Cancelled):
        return CANCELLED
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


class Unpacker:
    """Writes members into the open staging folder, counting bytes against the budget; leaving its ``with``
    block closes the folder it keeps open."""

    def __init__(self, staging: int, budget: int, stop: threading.Event | None = None):
        self.staging = staging
        self.budget = budget
        self.stop = stop
        self.written = 0
        self.links: list[str] = []
        self._folder: tuple[str, int] | None = None  # the folder last written into, kept open: members come in runs

    @classmethod
    def within_free_space(cls, staging: int, limit: int, stop: threading.Event | None = None) -> Unpacker:
        """An unpacker whose budget is ``limit`` bytes or the free space where ``staging`` is, whichever is smaller;
        setting ``stop`` makes it give up (``Cancelled``) at its next block or entry."""
        free = os.statvfs(staging)
        return cls(staging, min(limit, free.f_bavail * free.f_frsize), stop)

    def __enter__(self) -> Unpacker:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        if self._folder is not None:
            os.close(self._folder[1])
            self._folder = None

    def _spend(self, count: int) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Cancelled()
        self.written += count
        if self.written > self.budget:
            raise ExtractionFailed(f"the archive expands to more than {self.budget} bytes")

    def _open(self, relative: str) -> int | None:
        """The staging folder at ``relative``, made if missing; None when something on the way is a link or a file."""
        if self._folder is not None and self._folder[0] == relative:
            return self._folder[1]
        self.close()
        try:
            folder = open_below(self.staging, relative, create=True)
        except OSError as error:
            if error.errno in (errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        self._folder = (relative, folder)
        return folder

    def _place(self, relative: str) -> tuple[int, str] | None:
        """``(folder, name)`` for a member, its folders made; None if they lead through a link or a file.
        A non-folder already there is removed: a later member of the same name replaces the earlier one."""
        parent, _, name = relative.rpartition("/")
        folder = self._open(parent)
        if folder is None:
            return None
        try:
            if not stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=folder)
        except FileNotFoundError:
            pass
        return folder, name

    def skip(self) -> None:
        """A member not unpacked (it would land outside, or is a device) costs its entry too: millions of them
        are work all the same."""
        self._spend(ENTRY_COST)

    def folder(self, relative: str) -> None:
        self._spend(ENTRY_COST)
        spot = self._place(relative)
        if spot is not None:
            try:
                os.mkdir(spot[1], dir_fd=spot[0])
            except FileExistsError:
                pass  # already a folder

    def file(self, relative: str, source, mode: int, mtime: float) -> None:
        self._spend(ENTRY_COST)
        spot = self._place(relative)
        if spot is None:
            return
        try:
            fd = os.open(spot[1], CREATE_FLAGS, (mode & 0o777) or 0o644, dir_fd=spot[0])
        except FileExistsError:
            return  # a folder of that name
        with open(fd, "wb", buffering=0) as out:
            while chunk := source.read(BLOCK):
                self._spend(len(chunk))
                out.write(chunk)
            os.utime(fd, (mtime, mtime))

    def symlink(self, relative: str, target: str) -> None:
        self._spend(ENTRY_COST)
        spot = self._place(relative)
        if spot is None or not target or target.startswith("/"):
            return
        folder, name = spot
        if not is_inside(os.path.realpath(os.path.join(opened_path(folder), target)), opened_path(self.staging)):
            return
        try:
            os.symlink(target, name, dir_fd=folder)
        except FileExistsError:
            return  # a folder of that name
        self.links.append(relative)

    def hardlink(self, relative: str, target: str) -> None:
        self._spend(ENTRY_COST)
        target_relative = _member_path(target)
        spot = self._place(relative)
        if spot is None or target_relative is None:
            return
        source_parent, _, source_name = target_relative.rpartition("/")
        try:
            source = open_below(self.staging, source_parent)
        except OSError:
            return  # no such member folder, or a link on the way
        try:
            if stat.S_ISREG(os.stat(source_name, dir_fd=source, follow_symlinks=False).st_mode):
                os.link(source_name, spot[1], src_dir_fd=source, dst_dir_fd=spot[0], follow_symlinks=False)
        except (FileNotFoundError, FileExistsError):
            pass  # no such member, or a folder of that name
        finally:
            os.close(source)

    def unpack_zip(self, archive) -> None:
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                relative = _member_path(info.filename)
                if relative is None:
                    self.skip()
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

    def unpack_tar(self, archive, compression: str) -> None:
        """Unpack a tar stream; a zstd one is decompressed ahead on another thread while members are written."""
        with ExitStack() as stack:
            if compression == "zstd":
                decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
                decompressed = stack.enter_context(decompressor.stream_reader(archive, closefd=False))
                source = stack.enter_context(ReadAhead(decompressed, BLOCK))
            elif compression:
                source = stack.enter_context(_DECOMPRESSING[compression](archive, "rb"))
            else:
                source = archive
            with tarfile.open(fileobj=source, mode="r|", bufsize=BLOCK, tarinfo=BoundedTarInfo) as bundle:
                while (member := bundle.next()) is not None:
                    bundle.members.clear()  # tarfile keeps every member it read; none is looked up again here
                    self._tar_member(bundle, member)

    def _tar_member(self, bundle: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        relative = _member_path(member.name)
        if relative is None or not (member.isdir() or member.issym() or member.islnk() or member.isreg()):
            self.skip()  # devices and FIFOs too
            return
        if member.isdir():
            self.folder(relative)
        elif member.issym():
            self.symlink(relative, member.linkname)
        elif member.islnk():
            self.hardlink(relative, member.linkname)
        else:
            self.file(relative, bundle.extractfile(member), member.mode, member.mtime)


def _merge(staging: int, destination: int, root: str, links: list[str]) -> None:
    """Move the staged tree into the destination; refuse (before moving anything) to put a file over a folder."""
    _check_conflicts(staging, destination)
    _move_into(staging, destination)
    for relative in links:  # a link that now resolves outside (through existing folders) is dropped
        parent, _, name = relative.rpartition("/")
        try:
            folder = open_below(destination, parent)
        except OSError:
            continue  # its folder was replaced meanwhile
        try:
            if link_leads_outside(folder, name, root):
                os.unlink(name, dir_fd=folder)
        except FileNotFoundError:
            pass
        finally:
            os.close(folder)


def _is_folder(folder: int, name: str) -> bool | None:
    """Whether ``name`` in ``folder`` is a folder (a link is not); None when there is nothing of that name."""
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return None


def _check_conflicts(source: int, destination: int) -> None:
    for inner_source, inner_destination in _folders_in_both(source, destination):
        for name in names(inner_source):
            old_is_folder = _is_folder(inner_destination, name)
            if old_is_folder is not None and bool(_is_folder(inner_source, name)) != old_is_folder:
                raise ExtractionFailed(f"{name} would replace a folder by a file or a file by a folder")


def _move_into(source: int, destination: int) -> None:
    for inner_source, inner_destination in _folders_in_both(source, destination):
        for name in names(inner_source):
            if not (_is_folder(inner_source, name) and _is_folder(inner_destination, name) is not None):
                os.replace(name, name, src_dir_fd=inner_source, dst_dir_fd=inner_destination)


def _folders_in_both(source: int, destination: int) -> Iterator[tuple[int, int]]:
    """Each pair of folders at the same place in both trees, the given pair first, entered without
    following a link; a pair's names are read only after the caller handled it (what it moved away
    is not entered). The pairs being visited are a list, not the call stack: any depth is merged."""
    levels = [(source, destination, _names_when_needed(source))]
    try:
        yield source, destination
        while levels:
            inner_source, inner_destination, entries = levels[-1]
            name = next(entries, None)
            if name is None:
                levels.pop()
                if levels:  # the caller's own pair stays open
                    os.close(inner_source)
                    os.close(inner_destination)
                continue
            if _is_folder(inner_source, name) and _is_folder(inner_destination, name):
                deeper_source = open_folder(name, inner_source)
                try:
                    deeper_destination = open_folder(name, inner_destination)
                except BaseException:
                    os.close(deeper_source)
                    raise
                levels.append((deeper_source, deeper_destination, _names_when_needed(deeper_source)))
                yield deeper_source, deeper_destination
    finally:
        for inner_source, inner_destination, _ in levels[1:]:
            os.close(inner_source)
            os.close(inner_destination)


def _names_when_needed(folder: int) -> Iterator[str]:
    yield from names(folder)
