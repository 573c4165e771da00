"""The members of an archive: the inputs, each place once, walked through open folder descriptors.

Each folder is opened relative to its parent's descriptor with ``O_NOFOLLOW``
(``openat``), and everything in it is reached through that descriptor, so a
folder swapped for a symlink while the archive is being built is never
entered: nothing outside the server directory can be read, whatever happens
to the paths meanwhile. Symlinks are members stored as links, never followed;
sockets, FIFOs and devices are left out; an entry that vanishes during the
walk is left out too. The walk is lazy (one folder listing per open level),
bounded in entries and depth, and stops when asked to.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from octyne_flask.errors import ApiError
from octyne_flask.files.paths import ServerPath, check_opened, is_inside
from octyne_flask.files.tree import FOLLOWING_FOLDER_FLAGS, READ_FLAGS, REPLACED, open_folder_unless_replaced

MAX_ENTRIES = 1_000_000
MAX_DEPTH = 128  # folders open at once during a walk: one descriptor each
TOO_MANY_ENTRIES = "Too many files and folders to compress!"
TOO_DEEP = "Folders are nested too deeply to compress!"
TEMPORARY_PREFIX = ".octyne-archive-"  # archives being built (ours included) are never members


class Cancelled(Exception):
    """The daemon is shutting down: the archive is abandoned."""


class Progress:
    """Bytes of file data read so far, out of the total (known once the members are counted); read from
    another thread. Setting ``stop`` makes the build give up (``Cancelled``) at its next block or entry."""

    def __init__(self, stop: threading.Event | None = None):
        self.total: int | None = None
        self.done = 0
        self.stop = stop

    def add(self, count: int) -> None:
        self.done += count
        if self.stop is not None and self.stop.is_set():
            raise Cancelled()

    @property
    def fraction(self) -> float:
        if self.total is None:
            return 0.0
        return 1.0 if not self.total else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class Root:
    """One input of a compression: its name in the archive ("." for the contents of the base folder alone)."""

    name: str
    location: ServerPath


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member; ``folder`` (the descriptor of the folder holding it) is open while it is current."""

    name: str
    info: os.stat_result
    folder: int
    entry: str  # its name in that folder

    def open(self) -> tuple[int, os.stat_result] | None:
        """``(descriptor, fstat)`` for reading the file; None if it is no longer a regular file."""
        try:
            fd = os.open(self.entry, READ_FLAGS, dir_fd=self.folder)
        except OSError as error:
            if error.errno in REPLACED:
                return None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        return fd, info

    def read_link(self) -> str | None:
        """The link's target as stored; None if it is no longer a link."""
        try:
            return os.readlink(self.entry, dir_fd=self.folder)
        except OSError as error:
            if error.errno in (*REPLACED, errno.EINVAL):
                return None
            raise


def distinct_roots(inputs: list[ServerPath], base: ServerPath) -> list[Root]:
    """The inputs, each place once, in the order given.

    A repeat (``/a``, ``a/``, ``./a``, or a path to it through a link) and
    anything inside a folder that is itself an input are dropped, so no
    member is walked or stored twice.
    """
    candidates = []
    for entry in inputs:
        name = posixpath.relpath(entry.relative or ".", base.relative or ".")
        if name == ".":  # the base folder itself, reached like the base path (through links)
            real = os.path.realpath(entry.absolute)
            candidates.append((Root(name, entry), real, os.path.isdir(real)))
        else:  # the entry itself, a link stored as a link
            real = entry.real_location()
            candidates.append((Root(name, entry), real, _is_folder(real)))
    folders = {real for _, real, folder in candidates if folder}
    roots, seen = [], set()
    for root, real, _ in candidates:
        if real in seen or any(parent in folders for parent in _ancestors(real, root.location.root)):
            continue
        seen.add(real)
        roots.append(root)
    return roots


def _is_folder(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _ancestors(path: str, root: str):
    while path != root and is_inside(path, root):
        path = os.path.dirname(path)
        yield path


class Walk:
    """The members of ``roots`` in order, each folder's entry first, then its contents sorted by name.

    Raises ``ApiError`` past ``MAX_ENTRIES`` members or ``MAX_DEPTH`` levels,
    and ``Cancelled`` once ``stop`` is set. ``exclude(name, is_folder)`` leaves
    a member out (a folder with everything in it).
    """

    def __init__(self, roots: list[Root], stop: threading.Event | None = None,
                 exclude: Callable[[str, bool], bool] | None = None):
        self._roots = roots
        self._stop = stop
        self._exclude = exclude
        self._count = 0

    def __iter__(self) -> Iterator[Member]:
        for root in self._roots:
            yield from self._walk(root)

    def _walk(self, root: Root) -> Iterator[Member]:
        location = root.location
        whole_folder = root.name == "."  # the base folder itself: its contents, named alone
        try:
            fd = _open_checked(location.absolute if whole_folder else os.path.dirname(location.absolute),
                               location.root)
        except OSError as error:
            if error.errno in REPLACED:
                return  # removed since the request was checked
            raise
        if whole_folder:
            levels = [_Level.listing(fd, "")]
        else:
            levels = [_Level(fd, iter([(os.path.basename(location.absolute), root.name)]))]
        try:
            while levels:
                level = levels[-1]
                found = next(level.entries, None)
                if found is None:
                    os.close(levels.pop().fd)
                    continue
                if self._stop is not None and self._stop.is_set():
                    raise Cancelled()
                entry, name = found
                info = _lstat(level.fd, entry)
                if info is None or entry.startswith(TEMPORARY_PREFIX):
                    continue
                if self._exclude is not None and self._exclude(name, stat.S_ISDIR(info.st_mode)):
                    continue
                self._count += 1
                if self._count > MAX_ENTRIES:
                    raise ApiError(400, TOO_MANY_ENTRIES, detail=f"an archive holds at most {MAX_ENTRIES}")
                yield Member(name, info, level.fd, entry)
                if stat.S_ISDIR(info.st_mode):
                    self._descend(levels, entry, name)
        finally:
            for level in levels:
                os.close(level.fd)

    @staticmethod
    def _descend(levels: list, entry: str, name: str) -> None:
        if len(levels) > MAX_DEPTH:
            raise ApiError(400, TOO_DEEP, detail=f"at most {MAX_DEPTH} levels")
        fd = open_folder_unless_replaced(entry, levels[-1].fd)
        if fd is not None:  # else swapped for a link or a file since it was listed: its old contents are not ours
            levels.append(_Level.listing(fd, name))


@dataclass
class _Level:
    """An open folder of the walk and the ``(name in folder, name in archive)`` pairs still to visit."""

    fd: int
    entries: Iterator[tuple[str, str]]

    @classmethod
    def listing(cls, fd: int, name: str) -> _Level:
        """The folder open as ``fd``, whose members are named ``name/<entry>`` (or just ``<entry>``)."""
        try:
            entries = sorted(os.listdir(fd))
        except BaseException:
            os.close(fd)
            raise
        prefix = name + "/" if name else ""
        return cls(fd, ((entry, prefix + entry) for entry in entries))


def _lstat(folder: int, entry: str) -> os.stat_result | None:
    """The entry's own lstat if it is a file, folder or link; None if it vanished or is anything else."""
    try:
        info = os.stat(entry, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
    kind = stat.S_IFMT(info.st_mode)
    return info if kind in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK) else None


def _open_checked(path: str, root: str) -> int:
    """A folder an input is reached from, opened by path (links in it are allowed if they stay inside) and
    checked by what the kernel opened."""
    return check_opened(os.open(path, FOLLOWING_FOLDER_FLAGS), root, "file path")
