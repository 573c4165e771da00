"""Walk, copy and remove trees through open folder descriptors, never through paths.

Every entry is reached by its own name inside a folder that is already open,
and folders are entered with ``O_NOFOLLOW``: a folder swapped for a symlink
while a walk runs makes that step fail (or be passed over) instead of leading
out of the tree. An entry's type is read when it is used and confirmed on the
opened descriptor, never taken from an earlier listing. Links are copied as
links and never entered.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

from octyne_flask.files.paths import check_opened, is_inside, opened_path

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FOLLOWING_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # client paths: checked once open
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # never blocks on a FIFO swapped in
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SEND_CHUNK = 1 << 24
REPLACED = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # gone, or now a file or a link


def open_folder(name: str, folder: int) -> int:
    """The folder ``name`` inside the open ``folder``; fails (ELOOP, ENOTDIR) rather than follow a link."""
    return os.open(name, FOLDER_FLAGS, dir_fd=folder)


def open_below(folder: int, relative: str, *, create: bool = False, enter=open_folder,
               made=lambda folder, name: None) -> int:
    """A new descriptor for the folder at ``relative`` (``a/b``, "" for ``folder`` itself), entered one name
    at a time with ``enter(name, folder)`` (by default never following a link); missing folders are made
    on the way when ``create``, each reported as ``made(folder, name)``."""
    current = os.dup(folder)
    try:
        for name in filter(None, relative.split("/")):
            if create:
                try:
                    os.mkdir(name, dir_fd=current)
                    made(current, name)
                except FileExistsError:
                    pass
            inner = enter(name, current)
            os.close(current)
            current = inner
    except BaseException:
        os.close(current)
        raise
    return current


def open_folder_inside(root: str, relative: str, what: str, *, create: bool = False,
                       made=lambda folder, name: None) -> int:
    """The folder at ``relative`` below the server directory ``root``, entered one name at a time, each
    checked to be inside (a link that stays inside is followed, as client paths may); missing folders
    are made when ``create`` (and reported to ``made``). Refused as ``Invalid <what>`` when a step leads outside."""
    def enter(name: str, folder: int) -> int:
        return check_opened(os.open(name, FOLLOWING_FOLDER_FLAGS, dir_fd=folder), root, what)

    top = os.open(root, FOLLOWING_FOLDER_FLAGS)
    try:
        return open_below(top, relative, create=create, enter=enter, made=made)
    finally:
        os.close(top)


def names(folder: int) -> list[str]:
    """The names in the open ``folder`` (read at once, so no extra descriptor stays open meanwhile)."""
    with os.scandir(folder) as entries:
        return [entry.name for entry in entries]


@dataclass(frozen=True)
class Entry:
    """One entry met by ``walk``: reach it as ``name`` in ``folder``, which is open only while it is handled."""

    folder: int
    name: str
    info: os.stat_result  # lstat taken just before it was yielded


def walk(folder: int) -> Iterator[Entry]:
    """Everything below the open ``folder``, each folder before its contents; links are entries, never entered.

    Entries that vanish meanwhile, and folders replaced by something else before
    they are entered, are passed over. The folders being walked are a list, not
    the call stack, so a tree of any depth (a client can make thousands of levels)
    is walked, with one descriptor per level.
    """
    levels = [_Level(folder, iter(names(folder)))]
    try:
        while levels:
            level = levels[-1]
            name = next(level.entries, None)
            if name is None:
                levels.pop()
                if levels:  # the caller's own folder stays open
                    os.close(level.fd)
                continue
            try:
                info = os.stat(name, dir_fd=level.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield Entry(level.fd, name, info)
            if stat.S_ISDIR(info.st_mode):
                inner = open_folder_unless_replaced(name, level.fd)
                if inner is not None:
                    levels.append(_Level.listing(inner))
    finally:
        for level in levels[1:]:
            os.close(level.fd)


def walk_below(folder: int, name: str) -> Iterator[Entry]:
    """``walk`` of everything in ``name`` in the open ``folder``; nothing when it is not a folder (a file,
    a link) or is gone. Close it (``contextlib.closing``) to release its folders when leaving early."""
    inner = open_folder_unless_replaced(name, folder)
    if inner is None:
        return
    try:
        yield from walk(inner)
    finally:
        os.close(inner)


@dataclass
class _Level:
    """One open folder of a walk and the names in it still to visit."""

    fd: int
    entries: Iterator[str]

    @classmethod
    def listing(cls, fd: int) -> _Level:
        """The level for the newly opened folder ``fd`` (closed here if it cannot be listed)."""
        try:
            return cls(fd, iter(names(fd)))
        except BaseException:
            os.close(fd)
            raise


def open_folder_unless_replaced(name: str, folder: int) -> int | None:
    """``open_folder``, or None when the folder was replaced by something else since it was seen."""
    try:
        return open_folder(name, folder)
    except OSError as error:
        if error.errno in REPLACED:
            return None
        raise


def copy_entry(source: int, name: str, target: int, new_name: str) -> None:
    """Copy ``name`` in the open ``source`` folder to ``new_name`` (which must not exist) in ``target``.

    A file keeps its content, mode and times, a link is copied as a link, a
    folder recursively (of any depth: the folders being copied are a list, not
    the call stack); anything else (FIFO, socket, device) fails. Entries
    that change type while being copied fail the copy. The folders this copy
    makes are never entered, so a copy into its own source cannot recurse.
    """
    made: set[tuple[int, int]] = set()  # (st_dev, st_ino) of the folders made so far
    levels: list[_CopyLevel] = []
    try:
        _copy_one(levels, made, source, name, target, new_name)
        while levels:
            level = levels[-1]
            child = next(level.entries, None)
            if child is None:
                levels.pop().finish()
            else:
                _copy_one(levels, made, level.reading, child, level.writing, child)
    finally:
        for level in levels:
            level.close()


@dataclass
class _CopyLevel:
    """A folder being copied: both ends open, the names still to copy, and where its copy is named."""

    reading: int
    writing: int
    entries: Iterator[str]
    info: os.stat_result  # the source folder's, for the mode and times given to the copy once it is filled
    target: int
    new_name: str

    def finish(self) -> None:
        """Give the filled copy its mode (a read-only folder can be filled first) and times."""
        try:
            os.fchmod(self.writing, stat.S_IMODE(self.info.st_mode))
        finally:
            self.close()
        os.utime(self.new_name, ns=(self.info.st_atime_ns, self.info.st_mtime_ns), dir_fd=self.target,
                 follow_symlinks=False)

    def close(self) -> None:
        os.close(self.writing)
        os.close(self.reading)


def _copy_one(levels: list[_CopyLevel], made: set, source: int, name: str, target: int, new_name: str) -> None:
    """Copy a link or file now; a folder is made and pushed on ``levels`` for its contents."""
    info = os.stat(name, dir_fd=source, follow_symlinks=False)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(name, dir_fd=source), new_name, dir_fd=target)
    elif stat.S_ISDIR(info.st_mode):
        _start_folder(levels, made, source, name, target, new_name)
        return
    elif stat.S_ISREG(info.st_mode):
        _copy_file(source, name, target, new_name)
    else:
        raise OSError(errno.EOPNOTSUPP, "a FIFO, socket or device cannot be copied")
    os.utime(new_name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=target, follow_symlinks=False)


def _start_folder(levels: list[_CopyLevel], made: set, source: int, name: str, target: int, new_name: str) -> None:
    reading = open_folder(name, source)
    try:
        info = os.fstat(reading)
        if (info.st_dev, info.st_ino) in made:
            os.close(reading)
            return
        os.mkdir(new_name, 0o700, dir_fd=target)
        writing = open_folder(new_name, target)
    except BaseException:
        os.close(reading)
        raise
    try:
        written = os.fstat(writing)
        made.add((written.st_dev, written.st_ino))
        entries = iter(names(reading))
    except BaseException:
        os.close(writing)
        os.close(reading)
        raise
    levels.append(_CopyLevel(reading, writing, entries, info, target, new_name))


def _copy_file(source: int, name: str, target: int, new_name: str) -> None:
    reading = os.open(name, READ_FLAGS, dir_fd=source)
    try:
        info = os.fstat(reading)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EAGAIN, "the file changed while it was being copied")
        writing = os.open(new_name, CREATE_FLAGS, 0o600, dir_fd=target)
        try:
            copy_content(reading, writing)
            os.fchmod(writing, stat.S_IMODE(info.st_mode))
        finally:
            os.close(writing)
    finally:
        os.close(reading)


def copy_content(reading: int, writing: int) -> None:
    """Copy what is left to read of the open file ``reading`` to where ``writing`` is, in the kernel."""
    while os.sendfile(writing, reading, None, SEND_CHUNK):
        pass


def remove_entry(folder: int, name: str) -> None:
    """Remove ``name`` from the open ``folder``: a file or a link (not what it points to), or a folder with
    everything in it, of any depth, its folders entered without following a link swapped in meanwhile."""
    if not stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
        os.unlink(name, dir_fd=folder)
        return
    levels = [(name, _Level.listing(open_folder(name, folder)))]  # each folder with its name in the one below
    try:
        while levels:
            own_name, level = levels[-1]
            child = next(level.entries, None)
            if child is None:
                levels.pop()
                os.close(level.fd)
                os.rmdir(own_name, dir_fd=levels[-1][1].fd if levels else folder)
                continue
            try:
                is_folder = stat.S_ISDIR(os.stat(child, dir_fd=level.fd, follow_symlinks=False).st_mode)
            except FileNotFoundError:
                continue
            if is_folder:
                levels.append((child, _Level.listing(open_folder(child, level.fd))))
            else:
                os.unlink(child, dir_fd=level.fd)
    finally:
        for _, level in levels:
            os.close(level.fd)


def discard(folder: int, name: str) -> None:
    """Remove ``name`` from ``folder`` if it is there, for cleaning up after a failure (which it must not hide)."""
    try:
        remove_entry(folder, name)
    except OSError:
        pass


def link_leads_outside(folder: int, name: str, root: str) -> bool:
    """Whether ``name`` in the open ``folder`` is a symlink that, from where it is now, resolves outside ``root``."""
    if not stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
        return False
    return not is_inside(os.path.realpath(os.path.join(opened_path(folder), name)), root)


def has_link_leading_outside(folder: int, name: str, root: str) -> bool:
    """Whether ``name`` in the open ``folder`` is, or (a folder) holds, a symlink resolving outside ``root``."""
    if link_leads_outside(folder, name, root):
        return True
    with closing(walk_below(folder, name)) as entries:
        return any(link_leads_outside(entry.folder, entry.name, root)
                   for entry in entries if stat.S_ISLNK(entry.info.st_mode))
