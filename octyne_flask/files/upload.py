"""``POST /server/{id}/file``: stream the ``upload`` part into a temporary file, then rename it into place.

The file never sits in memory and is written once. Until the closing
boundary has arrived it lives under a hidden temporary name in the
destination folder, so an aborted upload leaves nothing behind and never
replaces the existing file of that name; the daemon's journal lists it
meanwhile, so even a killed daemon's leftover goes at the next start.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass

from octyne_flask.errors import INTERNAL, ApiError
from octyne_flask.files.multipart import MultipartReader, boundary_of, invalid_form
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import LINK_ESCAPES, ServerPath, open_parent
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal

FIELD = "upload"
FORM_OVERHEAD = 1 << 20  # room for the multipart framing and small fields beside the file


@dataclass(frozen=True)
class Uploaded:
    """What was saved: the file name used and where it is."""

    filename: str
    target: ServerPath


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"The uploaded file is larger than the limit of {limit} bytes!")


def base_name(filename: str) -> str:
    """The last component of the sent filename, like Go's ``filepath.Base``; refuses empty, ``.`` and ``..``."""
    trimmed = filename.rstrip("/")
    name = trimmed.rsplit("/", 1)[-1] if trimmed else filename
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise ApiError(400, f"Invalid file name: {filename}")
    return name


def receive_upload(stream, content_type: str | None, content_length: int | None,
                   folder: ServerPath, limit: int, journal: TemporaryJournal = UNRECORDED,
                   owner: Owner = KEEP) -> Uploaded:
    """Read the whole form from ``stream``; save the first ``upload`` file part in ``folder``
    (its temporary file listed in ``journal`` meanwhile), given to ``owner``."""
    boundary = boundary_of(content_type)
    if content_length is not None and content_length > limit + FORM_OVERHEAD:
        raise too_large(limit)
    reader = MultipartReader(stream, boundary)
    pending = None
    try:
        while (part := reader.next_part()) is not None:
            if pending is None and part.name == FIELD and part.filename is not None:
                pending = _PendingFile(folder, base_name(part.filename), limit, journal, owner)
                reader.copy_data(pending.write)
            else:
                reader.copy_data(_discard)
        if pending is None:
            raise invalid_form()
        return pending.commit()
    finally:
        if pending is not None:
            pending.discard()


def _discard(_data) -> None:
    """Sink for form fields we do not use."""


class _PendingFile:
    """The upload's temporary file beside its final name; renamed over it only when complete.

    Both names are reached through the destination folder's descriptor, checked after opening,
    so swapping a folder on the way for a symlink cannot redirect the write.
    """

    def __init__(self, folder: ServerPath, name: str, limit: int, journal: TemporaryJournal, owner: Owner):
        self.target = folder.child(name)
        self.journal = journal
        self.owner = owner
        self.name = name
        self.limit = limit
        self.size = 0
        try:
            self.folder, self.final = open_parent(self._final_path(), folder.root, "file path")
        except FileNotFoundError:  # the client named a folder that is not there: its error, not ours
            raise ApiError(404, "This folder does not exist!") from None
        except NotADirectoryError:
            raise ApiError(400, "This is not a folder!") from None
        except OSError:
            raise ApiError(500, INTERNAL) from None
        self.temporary = f".octyne-upload-{secrets.token_hex(8)}"
        try:
            if stat.S_ISDIR(os.stat(self.final, dir_fd=self.folder).st_mode):
                raise ApiError(400, "This is a folder!")
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(self.folder)
            raise
        self.listed = journal.add(self.folder, self.temporary)
        try:
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=self.folder)
        except OSError:
            journal.remove(self.listed)
            os.close(self.folder)
            raise ApiError(500, INTERNAL) from None
        self.file = open(fd, "wb", buffering=0)  # pieces are large; a buffer would only add a copy
        self._keep_mode_of_existing(fd)

    def _final_path(self) -> str:
        path = self.target.absolute
        if os.path.islink(path):  # write through a link only when it stays inside
            if self.target.leads_outside():
                raise ApiError(400, f"Invalid file path: {LINK_ESCAPES}")
            path = os.path.realpath(path)
        return path

    def _keep_mode_of_existing(self, fd: int) -> None:
        try:
            existing = os.stat(self.final, dir_fd=self.folder, follow_symlinks=False)
        except OSError:
            return
        if stat.S_ISREG(existing.st_mode):
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))

    def write(self, data) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.limit)
        try:
            view = memoryview(data)
            while view:
                view = view[self.file.write(view):]
        except OSError:
            raise ApiError(500, INTERNAL) from None

    def commit(self) -> Uploaded:
        try:
            self.owner.take(self.file.fileno())
            self.file.close()
            os.replace(self.temporary, self.final, src_dir_fd=self.folder, dst_dir_fd=self.folder)
        except OSError:
            raise ApiError(500, INTERNAL) from None
        self.temporary = None
        self.journal.remove(self.listed)
        return Uploaded(self.name, self.target)

    def discard(self) -> None:
        """Remove the temporary file unless it was committed; release the folder."""
        if self.temporary is not None:
            self.file.close()
            try:
                os.unlink(self.temporary, dir_fd=self.folder)
            except OSError:
                pass
            self.journal.remove(self.listed)
        os.close(self.folder)
