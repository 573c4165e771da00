"""Delete, create-folder, move and copy, with Octyne's rules and nothing left half-done.

Everything runs through the open parent folders of source and destination
and walks trees by folder descriptors (``files/tree.py``), so a folder swapped
for a symlink while an operation runs never leads it out of the server
directory. Copies are written under a hidden temporary name beside the
destination and put in place only when complete, so a failed copy leaves
nothing behind and never replaces anything (api.md §8: no overwrites
anywhere). A move or copy that would leave a symlink resolving outside the
server directory from its new place is refused and undone.
"""

from __future__ import annotations

import errno
import os
import posixpath
import secrets
import stat
from contextlib import contextmanager

from octyne_flask.errors import ApiError, internal_error
from octyne_flask.files.messages import (
    FILE_EXISTS, FOLDER_EXISTS, NO_PARENT, NO_SUCH_FILE, NO_SUCH_SOURCE, PARENT_NOT_A_FOLDER)
from octyne_flask.files.noreplace import rename_without_replacing
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import LINK_ESCAPES, ServerPath, is_inside, open_parent
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal
from octyne_flask.files.tree import copy_entry, discard, has_link_leading_outside, remove_entry

DANGEROUS = "This operation is dangerous and has been forbidden!"
LINK_REFUSED = f"Invalid destination path: {LINK_ESCAPES}"


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
    with in_parent_folder(target, "file path", ApiError(404, NO_SUCH_FILE)) as (folder, name):
        remove_entry(folder, name)


def create_folder(target: ServerPath, owner: Owner = KEEP) -> None:
    """``POST /folder``: one new folder, given to ``owner``; anything already at that path is refused."""
    if os.path.lexists(target.absolute):
        raise ApiError(400, FOLDER_EXISTS)
    parent = os.path.dirname(target.absolute)
    if not os.path.lexists(parent):  # the client's mistake, not an internal error
        raise ApiError(400, NO_PARENT)
    if not os.path.isdir(parent):
        raise ApiError(400, PARENT_NOT_A_FOLDER)
    with in_parent_folder(target, "folder path") as (folder, name):
        try:
            os.mkdir(name, dir_fd=folder)
        except FileExistsError:
            raise ApiError(400, FOLDER_EXISTS) from None
        try:
            owner.take_entry(folder, name)
        except BaseException:
            discard(folder, name)
            raise


def destination_for(source: ServerPath, dest: ServerPath) -> ServerPath:
    """Where a move/copy lands: inside ``dest`` when it is a folder; checks the no-overwrite and parent rules."""
    if os.path.isdir(dest.absolute):
        dest = dest.child(posixpath.basename(source.relative))
    if os.path.lexists(dest.absolute):
        raise ApiError(409, FILE_EXISTS)
    parent = os.path.dirname(dest.absolute)
    try:
        parent_mode = os.stat(parent).st_mode
    except (FileNotFoundError, NotADirectoryError):  # a missing folder, or a file where one should be
        raise ApiError(400, NO_PARENT) from None
    except OSError as error:
        raise internal_error(error) from None
    if not stat.S_ISDIR(parent_mode):
        raise ApiError(400, PARENT_NOT_A_FOLDER)
    if is_inside(os.path.realpath(parent), source.real_location()):
        raise ApiError(400, "Invalid destination path: destination is inside the source")
    return dest


def move_or_copy(operation: str, source: ServerPath, dest: ServerPath,
                 journal: TemporaryJournal = UNRECORDED, owner: Owner = KEEP) -> ServerPath:
    """Run ``mv`` or ``cp`` from ``source`` to ``dest`` and return where the item now is
    (a copy's staging listed in ``journal`` while it is written; what a copy makes given to ``owner``)."""
    if not os.path.lexists(source.absolute):
        raise ApiError(400, NO_SUCH_SOURCE)
    final = destination_for(source, dest)
    relocate = move_entry if operation == "mv" else copy_into_place
    with in_parent_folder(source, "source path") as (origin, name), \
            in_parent_folder(final, "destination path") as (target, new_name):
        relocate(origin, name, target, new_name, final.root, journal, owner)
    return final


def move_entry(origin: int, name: str, target: int, new_name: str, root: str | None,
               journal: TemporaryJournal = UNRECORDED, owner: Owner = KEEP) -> None:
    """Rename ``name`` in the open folder ``origin`` to ``new_name`` in ``target``; across file systems, copy
    (given to ``owner``) then remove the original. With a ``root``, a symlink that would resolve outside it
    from the new place refuses the move (it is put back); an undo putting an item back passes None."""
    try:
        rename_without_replacing(name, new_name, src_dir_fd=origin, dst_dir_fd=target)
    except FileExistsError:  # it appeared after destination_for looked
        raise ApiError(409, FILE_EXISTS) from None
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        copy_into_place(origin, name, target, new_name, root, journal, owner)
        remove_entry(origin, name)
        return
    try:
        _check_links(target, new_name, root)
    except BaseException:
        rename_without_replacing(new_name, name, src_dir_fd=target, dst_dir_fd=origin)
        raise


def copy_into_place(origin: int, name: str, target: int, new_name: str, root: str | None,
                    journal: TemporaryJournal = UNRECORDED, owner: Owner = KEEP) -> None:
    """Copy ``name`` in ``origin`` under a hidden name in ``target`` (listed in ``journal`` meanwhile, so a
    killed daemon's half copy is swept at the next start), give it to ``owner``, then give it ``new_name``;
    all or nothing. With a ``root``, a symlink that would resolve outside it from the new place refuses the
    copy (removed)."""
    staging = f".octyne-copy-{secrets.token_hex(8)}"
    with journal.recorded(target, staging):
        try:
            copy_entry(origin, name, target, staging)
            owner.take_tree(target, staging)
            _name_copy(target, staging, new_name)
        except BaseException:
            discard(target, staging)
            raise
    try:
        _check_links(target, new_name, root)
    except BaseException:
        discard(target, new_name)
        raise


def _check_links(folder: int, name: str, root: str | None) -> None:
    """Refuse when ``name`` in ``folder`` is or holds a symlink resolving outside ``root`` (None: no check)."""
    if root is not None and has_link_leading_outside(folder, name, root):
        raise ApiError(400, LINK_REFUSED)


def _name_copy(folder: int, staging: str, name: str) -> None:
    """Give the finished copy its name, failing (409) instead of replacing what appeared there meanwhile."""
    try:
        rename_without_replacing(staging, name, src_dir_fd=folder, dst_dir_fd=folder)
    except FileExistsError:
        raise ApiError(409, FILE_EXISTS) from None
