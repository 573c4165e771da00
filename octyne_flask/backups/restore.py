"""Restoring a backup: unpack beside the server's directory, then swap the trees in one atomic step.

The archive is unpacked (by the decompress engine's ``Unpacker``: no entry or
link escapes) into ``.octyne-restore-<random>`` next to the directory, listed
in the temporary journal. Entries the current ``exclude`` matches (never in a
backup) are copied over from the current tree. Then ``renameat2(RENAME_EXCHANGE)``
swaps the two names, so the directory's name always holds a complete tree: the
old one until the swap, the new one after. The journaled name then holds the
old tree, which is removed; a daemon killed at any point has its leftover
(a partial new tree, or the whole old one) swept at the next start.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
from collections.abc import Callable

from octyne_flask.files.archives.extract import Unpacker
from octyne_flask.files.exchange import exchange
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.temp_journal import TemporaryJournal
from octyne_flask.files.tree import FOLLOWING_FOLDER_FLAGS, copy_entry, discard, open_folder, remove_entry

Exclude = Callable[[str, bool], bool]


def restore_tree(archive, directory: str, exclude: Exclude | None, journal: TemporaryJournal, limit: int,
                 owner: Owner = KEEP, stop: threading.Event | None = None) -> None:
    """Replace ``directory`` with the tar.zst read from the open binary file ``archive``; all or nothing.
    Setting ``stop`` (the daemon is stopping) abandons it while it unpacks."""
    parent_path, name = os.path.split(os.path.realpath(directory))
    parent = os.open(parent_path, FOLLOWING_FOLDER_FLAGS)
    staging = f".octyne-restore-{secrets.token_hex(8)}"
    try:
        with journal.recorded(parent, staging):
            os.mkdir(staging, 0o700, dir_fd=parent)
            try:
                _fill(archive, parent, staging, name, exclude, limit, owner, stop)
                exchange(parent, staging, name)
            except BaseException:
                discard(parent, staging)
                raise
            remove_entry(parent, staging)  # the old tree
    finally:
        os.close(parent)


def _fill(archive, parent: int, staging: str, name: str, exclude: Exclude | None, limit: int, owner: Owner,
          stop: threading.Event | None) -> None:
    """Unpack into the staging folder (what it holds given to ``owner``), carry the excluded entries over,
    give the folder itself the directory's owner and mode."""
    new = open_folder(staging, parent)
    old = open_folder(name, parent)
    try:
        with Unpacker.within_free_space(new, limit, stop) as unpacker:
            unpacker.unpack_tar(archive, "zstd")
        if exclude is not None:
            _carry_over(old, new, exclude, "")
        owner.take_tree(parent, staging)
        directory = os.fstat(old)
        os.fchown(new, directory.st_uid, directory.st_gid)
        os.fchmod(new, stat.S_IMODE(directory.st_mode))
    finally:
        os.close(new)
        os.close(old)


def _carry_over(old: int, new: int, exclude: Exclude, prefix: str) -> None:
    """Copy from the old tree every entry ``exclude`` matches, replacing whatever the archive put there."""
    for entry in sorted(os.listdir(old)):
        info = os.stat(entry, dir_fd=old, follow_symlinks=False)
        is_folder = stat.S_ISDIR(info.st_mode)
        if exclude(prefix + entry, is_folder):
            discard(new, entry)
            copy_entry(old, entry, new, entry)
        elif is_folder:
            _carry_over_below(old, new, entry, exclude, prefix)


def _carry_over_below(old: int, new: int, entry: str, exclude: Exclude, prefix: str) -> None:
    old_child = open_folder(entry, old)
    try:
        try:
            new_child = open_folder(entry, new)
        except FileNotFoundError:
            os.mkdir(entry, stat.S_IMODE(os.fstat(old_child).st_mode), dir_fd=new)
            new_child = open_folder(entry, new)
        except OSError:
            return  # the backup has a file or a link there: what is excluded below it has no place
        try:
            _carry_over(old_child, new_child, exclude, f"{prefix}{entry}/")
        finally:
            os.close(new_child)
    finally:
        os.close(old_child)
