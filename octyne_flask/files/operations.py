"""Delete, create-folder, move and copy, with Octyne's rules and nothing left half-done.

Copies are written under a hidden temporary name beside the destination and
put in place only when complete, so a failed copy leaves nothing behind and
never replaces anything (api.md §8: no overwrites anywhere).
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tempfile
from contextlib import contextmanager

from octyne_flask.errors import ApiError, internal_error
from octyne_flask.files.paths import ServerPath, anchored, is_inside, open_parent

DANGEROUS = "This operation is dangerous and has been forbidden!"


def remove_tree(path: str) -> None:
    """Remove a file, a symlink (not what it points to) or a folder recursively."""
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


@contextmanager
def in_parent_folder(target: ServerPath, what: str, missing: ApiError | None = None):
    """``(folder fd, name)`` of ``target`` in its checked parent folder, for the ``with`` body.

    OS failures while opening or in the body become API errors: a vanished
    entry is ``missing`` (when given), anything else ``Internal Server Error!``.
    """
    try:
        folder, name = open_parent(target.absolute, target.root, what)
    except OSError as error:
        raise _as_api_error(error, missing) from None
    try:
        yield folder, name
    except OSError as error:
        raise _as_api_error(error, missing) from None
    finally:
        os.close(folder)


def _as_api_error(error: OSError, missing: ApiError | None) -> ApiError:
    if missing is not None and isinstance(error, FileNotFoundError):
        return missing
    return internal_error(error)


def delete_item(target: ServerPath) -> None:
    """``DELETE /file``: the server directory itself is refused; a symlink is removed, not followed."""
    if target.is_root:
        raise ApiError(403, DANGEROUS)
    with in_parent_folder(target, "file path", ApiError(404, "This file does not exist!")) as (folder, name):
        if stat.S_ISDIR(os.lstat(name, dir_fd=folder).st_mode):
            shutil.rmtree(name, dir_fd=folder)
        else:
            os.unlink(name, dir_fd=folder)


def create_folder(target: ServerPath) -> None:
    """``POST /folder``: one new folder; anything already at that path is refused."""
    if os.path.lexists(target.absolute):
        raise ApiError(400, "This folder already exists!")
    parent = os.path.dirname(target.absolute)
    if not os.path.lexists(parent):  # the client's mistake, not an internal error
        raise ApiError(400, "Destination parent folder does not exist!")
    if not os.path.isdir(parent):
        raise ApiError(400, "Destination parent is not a folder!")
    with in_parent_folder(target, "folder path") as (folder, name):
        try:
            os.mkdir(name, dir_fd=folder)
        except FileExistsError:
            raise ApiError(400, "This folder already exists!") from None


def destination_for(source: ServerPath, dest: ServerPath) -> ServerPath:
    """Where a move/copy lands: inside ``dest`` when it is a folder; checks the no-overwrite and parent rules."""
    if os.path.isdir(dest.absolute):
        dest = dest.child(posixpath.basename(source.relative))
    if os.path.lexists(dest.absolute):
        raise ApiError(409, "This file already exists!")
    parent = os.path.dirname(dest.absolute)
    try:
        parent_mode = os.stat(parent).st_mode
    except FileNotFoundError:
        raise ApiError(400, "Destination parent folder does not exist!") from None
    except OSError as error:
        raise internal_error(error) from None
    if not stat.S_ISDIR(parent_mode):
        raise ApiError(400, "Destination parent is not a folder!")
    if is_inside(os.path.realpath(parent), _real_location(source.absolute)):
        raise ApiError(400, "Invalid destination path: destination is inside the source")
    return dest


def _real_location(path: str) -> str:
    """Where an entry really is, its own name left unresolved (a symlink is the link, not its target)."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def move_or_copy(operation: str, source: ServerPath, dest: ServerPath) -> ServerPath:
    """Run ``mv`` or ``cp`` from ``source`` to ``dest`` and return where the item now is."""
    if not os.path.lexists(source.absolute):
        raise ApiError(400, "The file specified in src does not exist!")
    final = destination_for(source, dest)
    folders = []
    try:
        folders.append(open_parent(source.absolute, source.root, "source path"))
        folders.append(open_parent(final.absolute, final.root, "destination path"))
        origin, target = (anchored(folder, name) for folder, name in folders)
        if operation == "mv":
            move_item(origin, target)
        else:
            copy_item(origin, target)
    except OSError as error:
        raise internal_error(error) from None
    finally:
        for folder, _ in folders:
            os.close(folder)
    return final


def move_item(source: str, dest: str) -> None:
    """Rename; across file systems, copy then remove the original."""
    try:
        os.rename(source, dest)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        copy_item(source, dest)
        remove_tree(source)


def copy_item(source: str, dest: str) -> None:
    """Copy a file, a symlink (as a link) or a folder (recursively), keeping permissions; all or nothing."""
    info = os.lstat(source)
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), dest)
        return
    parent = os.path.dirname(dest)
    if stat.S_ISDIR(info.st_mode):
        staging = tempfile.mkdtemp(prefix=".octyne-copy-", dir=parent)
        try:
            os.rmdir(staging)
            shutil.copytree(source, staging, symlinks=True)
            os.rename(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return
    handle, staging = tempfile.mkstemp(prefix=".octyne-copy-", dir=parent)
    os.close(handle)
    try:
        shutil.copy2(source, staging)
        os.link(staging, dest)  # fails instead of replacing something that appeared meanwhile
    finally:
        os.unlink(staging)
