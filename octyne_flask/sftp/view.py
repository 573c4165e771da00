"""One SFTP session's view of a server's directory: every request answered through ``files/``.

Each path goes through ``files.paths.resolve`` exactly as an HTTP file request
does (rooted at the server directory, ``..`` never above it, links leading
outside refused), then through the checked folder descriptors of
``files/`` (``open_parent``, ``check_opened``), so a folder swapped for a
symlink mid-request cannot lead outside either. There is no second path layer.

Permissions (extensions.md §F), asked of the session before the path is even
looked at, so a refusal never tells whether something exists:

| SFTP request | permission |
|---|---|
| list, stat, lstat, fstat, readlink, realpath | ``files.view`` (realpath needs none: it only cleans the text) |
| open for reading, read | ``files.download`` |
| open for writing, write, setstat, fsetstat | ``files.upload`` (and ``files.download`` to read the same handle) |
| rename, remove, rmdir | ``files.modify`` |
| mkdir | ``files.createFolder`` |
| symlink | refused: the HTTP API makes no links either |
| posix-rename (replaces), hard links, statvfs | not offered (paramiko answers "unsupported") |
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

from paramiko import SFTPAttributes, SFTPServerInterface
from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

from octyne_flask.errors import ApiError
from octyne_flask.files.download import open_regular_file
from octyne_flask.files.listing import folder_entries, opened_folder
from octyne_flask.files.messages import FILE_EXISTS, IS_A_FOLDER, NO_SUCH_FILE, NO_SUCH_SOURCE
from octyne_flask.files.operations import create_folder, in_parent_folder, move_entry
from octyne_flask.files.paths import LINK_ESCAPES, ServerPath, check_opened, is_inside, relative_path, resolve
from octyne_flask.files.pending import PendingFile
from octyne_flask.sftp.handles import ReadHandle, UploadHandle, allowed_mode, change_attributes
from octyne_flask.sftp.refusals import Refused, forbidden, refusing, unsupported
from octyne_flask.sftp.session import Session

_WRITING = os.O_WRONLY | os.O_RDWR


class ServerFilesView(SFTPServerInterface):
    """paramiko's interface for one SFTP channel; ``gate`` is the connection's ``SessionGate``."""

    def __init__(self, gate, *args, **kwargs):
        super().__init__(gate, *args, **kwargs)
        self.session: Session = gate.session

    # -- helpers ---------------------------------------------------------
    def _require(self, permission: str) -> None:
        if not self.session.may(permission):
            raise forbidden()

    def _resolve(self, raw: str, what: str = "file path", **options) -> ServerPath:
        directory = self.session.directory()
        if directory is None:
            raise Refused(SFTP_NO_SUCH_FILE, "This server does not exist!")
        with refusing():
            return resolve(directory, raw, what, **options)

    def _log(self, action: str, **fields) -> None:
        self.session.log(f"server.files.sftp.{action}", **fields)

    # -- reading ---------------------------------------------------------
    def canonicalize(self, path):
        """The absolute form of ``path`` in the session's view (``/`` is the server directory); text only."""
        return "/" + relative_path("/" + path)

    def list_folder(self, path):
        self._require("files.view")
        folder = self._resolve(path, "folder path", follow=True)
        with refusing(), opened_folder(folder) as fd:
            return [SFTPAttributes.from_stat(info, name) for name, info in folder_entries(fd) if _is_text(name)]

    def stat(self, path):
        self._require("files.view")
        target = self._resolve(path, follow=True)
        with refusing(), _opened_path(target) as fd:
            return SFTPAttributes.from_stat(os.fstat(fd))

    def lstat(self, path):
        self._require("files.view")
        target = self._resolve(path)
        if target.is_root:
            return self.stat(path)
        with refusing(), in_parent_folder(target, "file path", ApiError(404, NO_SUCH_FILE)) as (folder, name):
            return SFTPAttributes.from_stat(os.stat(name, dir_fd=folder, follow_symlinks=False))

    def readlink(self, path):
        """Where a link leads, as a path in the session's view; a link leading outside is not told."""
        self._require("files.view")
        target = self._resolve(path)
        with refusing():
            if not os.path.islink(target.absolute):
                raise Refused(SFTP_FAILURE, "This is not a link!")
            destination = os.path.realpath(target.absolute)
        if not is_inside(destination, target.root):
            raise Refused(SFTP_PERMISSION_DENIED, f"Invalid file path: {LINK_ESCAPES}")
        relative = os.path.relpath(destination, target.root)
        return "/" if relative == "." else "/" + relative

    def open(self, path, flags, attr):
        if flags & _WRITING:
            return self._open_for_writing(path, flags, attr)
        self._require("files.download")
        target = self._resolve(path, follow=True)
        with refusing():
            fd, _ = open_regular_file(target)
        self._log("download", path=target.request)
        return ReadHandle(fd, self.session, target)

    # -- writing ---------------------------------------------------------
    def _open_for_writing(self, path, flags, attr):
        self._require("files.upload")
        readable = bool(flags & os.O_RDWR)
        if readable:
            self._require("files.download")
        target = self._resolve(path, follow=True, allow_root=False)
        exists = os.path.lexists(target.absolute)
        if not exists and not flags & os.O_CREAT:
            raise Refused(SFTP_NO_SUCH_FILE, NO_SUCH_FILE)
        if exists and flags & os.O_EXCL:
            raise Refused(SFTP_FAILURE, FILE_EXISTS)
        mode = allowed_mode(attr.st_mode, folder=False) if attr._flags & attr.FLAG_PERMISSIONS else None
        with refusing():
            pending = PendingFile(target, self.session.daemon.config.files.upload_limit,
                                  self.session.daemon.temporaries, self.session.owner(),
                                  keep_content=not flags & os.O_TRUNC, mode=mode)
        return UploadHandle(pending, self.session, readable=readable, append=bool(flags & os.O_APPEND),
                            replace=not flags & os.O_EXCL)

    def chattr(self, path, attr):
        self._require("files.upload")
        target = self._resolve(path, follow=True, allow_root=False)
        with refusing(), _opened_path(target) as fd:
            change_attributes(self.session, target, fd, attr)
        return SFTP_OK

    def mkdir(self, path, attr):
        self._require("files.createFolder")
        target = self._resolve(path, "folder path")
        with refusing():
            create_folder(target, self.session.owner())
        self._log("mkdir", path=target.request)
        return SFTP_OK

    def remove(self, path):
        """Remove a file or a link (never what it points to); folders go with ``rmdir``."""
        self._require("files.modify")
        target = self._resolve(path, allow_root=False)
        with refusing(), in_parent_folder(target, "file path", ApiError(404, NO_SUCH_FILE)) as (folder, name):
            if stat.S_ISDIR(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                raise Refused(SFTP_FAILURE, IS_A_FOLDER)
            os.unlink(name, dir_fd=folder)
        self._log("delete", path=target.request)
        return SFTP_OK

    def rmdir(self, path):
        """Remove an empty folder."""
        self._require("files.modify")
        target = self._resolve(path, "folder path", allow_root=False)
        with refusing(), in_parent_folder(target, "folder path", ApiError(404, NO_SUCH_FILE)) as (folder, name):
            os.rmdir(name, dir_fd=folder)
        self._log("delete", path=target.request)
        return SFTP_OK

    def rename(self, oldpath, newpath):
        """SFTP v3 rename: never over something that exists (posix-rename, which replaces, is not offered)."""
        self._require("files.modify")
        source = self._resolve(oldpath, "source path", allow_root=False)
        dest = self._resolve(newpath, "destination path", allow_root=False)
        if os.path.lexists(dest.absolute):
            raise Refused(SFTP_FAILURE, FILE_EXISTS)
        missing = ApiError(404, NO_SUCH_SOURCE)
        with refusing(), in_parent_folder(source, "source path", missing) as (origin, name), \
                in_parent_folder(dest, "destination path") as (target, new_name):
            move_entry(origin, name, target, new_name, source.root, self.session.daemon.temporaries,
                       self.session.owner())
        self._log("rename", src=source.request, dest=dest.request)
        return SFTP_OK

    def symlink(self, target_path, path):
        raise unsupported("Creating links")


def _is_text(name: str) -> bool:
    """Whether a file name is UTF-8 (SFTP v3 paths are UTF-8 text: another name could be listed but
    never asked for, so listings leave it out; the HTTP API still reaches it)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@contextmanager
def _opened_path(target: ServerPath):
    """An ``O_PATH`` descriptor of what ``target`` leads to (links followed), checked to really be
    inside the server directory once open, for the ``with`` body."""
    try:
        fd = os.open(target.absolute, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ApiError(404, NO_SUCH_FILE) from None
    check_opened(fd, target.root, "file path")
    try:
        yield fd
    finally:
        os.close(fd)
