"""``POST /server/{id}/file``: stream the ``upload`` part into a temporary file, then rename it into place.

The file never sits in memory and is written once. Until the closing
boundary has arrived it lives under a hidden temporary name in the
destination folder, so an aborted upload leaves nothing behind and never
replaces the existing file of that name; the daemon's journal lists it
meanwhile, so even a killed daemon's leftover goes at the next start.
"""

from __future__ import annotations

from dataclasses import dataclass

from octyne_flask.errors import ApiError
from octyne_flask.files.multipart import MultipartReader, boundary_of, invalid_form
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import ServerPath
from octyne_flask.files.pending import PendingFile, too_large
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal

FIELD = "upload"
FORM_OVERHEAD = 1 << 20  # room for the multipart framing and small fields beside the file


@dataclass(frozen=True)
class Uploaded:
    """What was saved: the file name used and where it is."""

    filename: str
    target: ServerPath


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
                name = base_name(part.filename)
                pending = PendingFile(folder.child(name), limit, journal, owner)
                reader.copy_data(pending.write)
            else:
                reader.copy_data(_discard)
        if pending is None:
            raise invalid_form()
        pending.commit()
        return Uploaded(name, pending.target)
    finally:
        if pending is not None:
            pending.discard()


def _discard(_data) -> None:
    """Sink for form fields we do not use."""
