"""Who owns what the file API creates in a server's directory: the user the server runs as.

A server with ``user``/``group`` needs a root daemon, so without this an upload,
a new folder, a copy, an extracted archive or a new archive would belong to
root and the app, running as its user, could not change or remove it. Every
creator in ``files/`` hands what it made to the request's ``Owner``: through
its descriptor, or by name inside an open folder without following a link.
"""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass

from octyne_flask.files.tree import walk_below
from octyne_flask.runas import RunAs

UNCHANGED = -1  # chown's "leave as it is"


@dataclass(frozen=True)
class Owner:
    uid: int = UNCHANGED
    gid: int = UNCHANGED

    @classmethod
    def of(cls, run_as: RunAs | None) -> Owner:
        """The owner for a server running as ``run_as``; without one, what the daemon creates stays its own."""
        return cls(run_as.uid, run_as.gid) if run_as is not None else KEEP

    @property
    def changes(self) -> bool:
        return (self.uid, self.gid) != (UNCHANGED, UNCHANGED)

    def take(self, fd: int) -> None:
        """Give the open file or folder ``fd``."""
        if self.changes:
            os.fchown(fd, self.uid, self.gid)

    def take_entry(self, folder: int, name: str) -> None:
        """Give ``name`` in the open ``folder`` (a link itself, never what it points to)."""
        if self.changes:
            os.chown(name, self.uid, self.gid, dir_fd=folder, follow_symlinks=False)

    def take_tree(self, folder: int, name: str) -> None:
        """Give ``name`` in the open ``folder`` and, if it is a folder, everything below it (links not entered)."""
        if not self.changes:
            return
        self.take_entry(folder, name)
        with closing(walk_below(folder, name)) as entries:
            for entry in entries:
                self.take_entry(entry.folder, entry.name)


KEEP = Owner()
