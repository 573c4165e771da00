"""A file's new content written under a hidden temporary name beside it, put in place only when complete.

Uploads over HTTP and over SFTP both write this way: until ``commit`` the
real name holds the old content (or nothing), so a broken transfer never
leaves a half-written file under it. The temporary name is listed in the
daemon's journal meanwhile, so even a killed daemon's leftover goes at the
next start. Both names are reached through the destination folder's
descriptor, checked after opening, so swapping a folder on the way for a
symlink cannot redirect the write.
"""

from __future__ import annotations

import os
import secrets
import stat

from octyne_flask.errors import INTERNAL, ApiError
from octyne_flask.files.messages import FILE_EXISTS, IS_A_FOLDER, NOT_A_FOLDER, NO_SUCH_FOLDER
from octyne_flask.files.noreplace import rename_without_replacing
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import LINK_ESCAPES, ServerPath, open_parent
from octyne_flask.files.temp_journal import TemporaryJournal
from octyne_flask.files.tree import READ_FLAGS, copy_content

PREFIX = ".octyne-upload-"
CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"The uploaded file is larger than the limit of {limit} bytes!")


class PendingFile:
    """The temporary file for ``target``: written at any offset, then given to ``owner`` and renamed over it
    (or discarded). A folder for it that is missing is a 404, one that is not a folder a 400.

    ``keep_content`` starts it as a copy of the existing file (an SFTP client may
    write into the middle of a file, or resume one); ``mode`` is given to a file
    that did not exist (an existing one keeps its own). Writes that would make it
    longer than ``limit`` bytes are refused with 413.
    """

    def __init__(self, target: ServerPath, limit: int, journal: TemporaryJournal, owner: Owner = KEEP, *,
                 keep_content: bool = False, mode: int | None = None):
        self.target = target
        self.journal = journal
        self.owner = owner
        self.limit = limit
        self.size = 0
        try:
            self.folder, self.final = open_parent(self._final_path(), target.root, "file path")
        except FileNotFoundError:  # the client named a folder that is not there: its error, not ours
            raise ApiError(404, NO_SUCH_FOLDER) from None
        except NotADirectoryError:
            raise ApiError(400, NOT_A_FOLDER) from None
        except OSError:
            raise ApiError(500, INTERNAL) from None
        self.temporary: str | None = f"{PREFIX}{secrets.token_hex(8)}"
        try:
            existing = self._existing()
        except BaseException:
            os.close(self.folder)
            raise
        self.listed = journal.add(self.folder, self.temporary)
        try:
            self.fd = os.open(self.temporary, CREATE_FLAGS, 0o666, dir_fd=self.folder)
        except OSError:
            journal.remove(self.listed)
            os.close(self.folder)
            raise ApiError(500, INTERNAL) from None
        try:
            if existing is not None:
                os.fchmod(self.fd, stat.S_IMODE(existing.st_mode))
            elif mode is not None:
                os.fchmod(self.fd, mode)
            if keep_content and existing is not None:
                self._copy_existing()
        except OSError:
            self.discard()
            raise ApiError(500, INTERNAL) from None
        except BaseException:
            self.discard()
            raise

    def _final_path(self) -> str:
        path = self.target.absolute
        if os.path.islink(path):  # write through a link only when it stays inside
            if self.target.leads_outside():
                raise ApiError(400, f"Invalid file path: {LINK_ESCAPES}")
            path = os.path.realpath(path)
        return path

    def _existing(self) -> os.stat_result | None:
        """The regular file now under the final name (None when there is none); a folder is refused."""
        try:
            existing = os.stat(self.final, dir_fd=self.folder, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError:
            raise ApiError(500, INTERNAL) from None
        if stat.S_ISDIR(existing.st_mode):
            raise ApiError(400, IS_A_FOLDER)
        return existing if stat.S_ISREG(existing.st_mode) else None

    def _copy_existing(self) -> None:
        reading = os.open(self.final, READ_FLAGS, dir_fd=self.folder)
        try:
            if stat.S_ISREG(os.fstat(reading).st_mode):
                copy_content(reading, self.fd)
        finally:
            os.close(reading)
        self.size = os.fstat(self.fd).st_size

    def write(self, data) -> None:
        """Add ``data`` at the end."""
        self.write_at(self.size, data)

    def write_at(self, offset: int, data) -> None:
        """Write all of ``data`` at ``offset`` (a hole before it reads as zeros)."""
        end = offset + len(data)
        if end > self.limit:
            raise too_large(self.limit)
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError:
            raise ApiError(500, INTERNAL) from None
        self.size = max(self.size, end)

    def truncate(self, size: int) -> None:
        if size > self.limit:
            raise too_large(self.limit)
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            raise ApiError(500, INTERNAL) from None
        self.size = size

    def commit(self, *, replace: bool = True) -> None:
        """Put the file in place under its real name; with ``replace`` False, fail (409) if something is there."""
        try:
            self.owner.take(self.fd)
            os.close(self.fd)
            self.fd = -1
            if replace:
                os.replace(self.temporary, self.final, src_dir_fd=self.folder, dst_dir_fd=self.folder)
            else:
                rename_without_replacing(self.temporary, self.final, src_dir_fd=self.folder, dst_dir_fd=self.folder)
        except FileExistsError:
            raise ApiError(409, FILE_EXISTS) from None
        except OSError:
            raise ApiError(500, INTERNAL) from None
        self.journal.remove(self.listed)
        self.temporary = None

    def discard(self) -> None:
        """Remove the temporary file unless it was committed; release the folder. Safe to call twice."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.temporary is not None:
            try:
                os.unlink(self.temporary, dir_fd=self.folder)
            except OSError:
                pass
            self.journal.remove(self.listed)
            self.temporary = None
        if self.folder >= 0:
            os.close(self.folder)
            self.folder = -1
