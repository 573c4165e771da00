"""Open SFTP files: a file being read, and an upload written to a temporary name and put in place on close.

SFTP clients write into an open handle at offsets of their choosing and may
stop at any point. An upload therefore never writes under the real name: it
writes a ``PendingFile`` beside it (journal-listed, like HTTP uploads), which
starts as a copy of the existing file when the client did not ask to truncate
it (resume, writes into the middle), and is renamed over the real name only
when the client closes the handle. A dropped connection, an idle timeout or a
daemon stop discards it: the real name keeps its old content, or stays absent.
Readers meanwhile see the old file. FileZilla, WinSCP and OpenSSH's ``sftp``
need nothing else (none relies on seeing its bytes under the real name before
the close).
"""

from __future__ import annotations

import os
import stat

from paramiko import SFTPAttributes, SFTPHandle
from paramiko.sftp import SFTP_OK, SFTP_PERMISSION_DENIED

from octyne_flask.files.paths import ServerPath
from octyne_flask.files.pending import PendingFile
from octyne_flask.sftp.refusals import Refused, forbidden, refusing, unsupported
from octyne_flask.sftp.session import Session

MAX_READ = 256 * 1024  # bytes answered per read request, whatever length the client asks for


def allowed_mode(mode: int, *, folder: bool) -> int:
    """The permission bits a client may set: never setuid, setgid or sticky (the daemon may run as root),
    and the owner (the daemon, or the app's user) always keeps reading and writing, and entering a folder,
    so nobody locks the daemon out of a server's files."""
    return (mode & 0o777) | (0o700 if folder else 0o600)


def change_attributes(session: Session, target: ServerPath, fd: int, attr: SFTPAttributes) -> None:
    """SETSTAT on an existing file or folder open as ``fd`` (permission bits and times); logged."""
    if not session.may("files.upload"):
        raise forbidden()
    changed = _apply(fd, attr, truncate=None)
    if changed:
        session.log("server.files.sftp.setstat", path=target.request, **changed)


def _apply(fd: int, attr: SFTPAttributes, truncate) -> dict:
    """Apply the mode and times in ``attr`` to the file open as ``fd``; ``truncate(size)`` for a size
    (None: refused). Returns the changes for the action log."""
    flags = attr._flags  # paramiko keeps which fields the client sent only here
    if flags & attr.FLAG_UIDGID:
        raise unsupported("Changing the owner")
    if flags & attr.FLAG_SIZE and truncate is None:
        raise unsupported("Changing the size of a file in place")
    changed = {}
    # /proc/self/fd/N reaches exactly the opened inode, whatever happened to its path since.
    where = f"/proc/self/fd/{fd}"
    with refusing():
        if flags & attr.FLAG_SIZE:
            truncate(attr.st_size)
        if flags & attr.FLAG_PERMISSIONS:
            mode = allowed_mode(attr.st_mode, folder=stat.S_ISDIR(os.fstat(fd).st_mode))
            os.chmod(where, mode)
            changed["mode"] = f"{mode:04o}"
        if flags & attr.FLAG_AMTIME:
            os.utime(where, (attr.st_atime, attr.st_mtime))
            changed["mtime"] = attr.st_mtime
    return changed


class ReadHandle(SFTPHandle):
    """An existing regular file opened for reading (a download)."""

    def __init__(self, fd: int, session: Session, target: ServerPath):
        super().__init__()
        self._fd = fd
        self._session = session
        self._target = target

    def read(self, offset, length):
        if not self._session.may("files.download"):
            raise forbidden()
        with refusing():
            return os.pread(self._fd, min(length, MAX_READ), offset)

    def write(self, offset, data):
        raise Refused(SFTP_PERMISSION_DENIED, "The file is open for reading only")

    def stat(self):
        with refusing():
            return SFTPAttributes.from_stat(os.fstat(self._fd))

    def chattr(self, attr):
        change_attributes(self._session, self._target, self._fd, attr)
        return SFTP_OK

    def finish(self) -> None:
        """The client closed the handle."""
        self.close()

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class UploadHandle(SFTPHandle):
    """A file being written: every write goes to its ``PendingFile``, put in place by ``finish``."""

    def __init__(self, pending: PendingFile, session: Session, *, readable: bool, append: bool, replace: bool):
        super().__init__()
        self._pending = pending
        self._session = session
        self._readable = readable
        self._append = append
        self._replace = replace

    def read(self, offset, length):
        if not self._readable:
            raise Refused(SFTP_PERMISSION_DENIED, "The file is open for writing only")
        if not self._session.may("files.download"):
            raise forbidden()
        with refusing():
            return os.pread(self._pending.fd, min(length, MAX_READ), offset)

    def write(self, offset, data):
        if not self._session.may("files.upload"):
            raise forbidden()
        with refusing():
            self._pending.write_at(self._pending.size if self._append else offset, data)
        return SFTP_OK

    def stat(self):
        with refusing():
            return SFTPAttributes.from_stat(os.fstat(self._pending.fd))

    def chattr(self, attr):
        if not self._session.may("files.upload"):
            raise forbidden()
        _apply(self._pending.fd, attr, truncate=self._pending.truncate)  # part of the upload: not logged apart
        return SFTP_OK

    def finish(self) -> None:
        """The client closed the handle: put the file in place under its real name, and log the upload."""
        try:
            if not self._session.may("files.upload"):
                raise forbidden()
            with refusing():
                self._pending.commit(replace=self._replace)
        finally:
            self.close()
        self._session.log("server.files.sftp.upload", path=self._pending.target.request)

    def close(self):
        """Discard the temporary file unless ``finish`` put it in place (a dropped connection ends here)."""
        self._pending.discard()
