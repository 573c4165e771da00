"""Tar headers read within a memory bound: a small archive must not make the daemon hold gigabytes.

``tarfile`` reads a member's extended headers (a GNU long name or link, a pax
header, GNU sparse maps) whole into memory, however large the archive says
they are: a 33 KiB tar.zst declaring a 1 GiB long name took 2 GiB of the
daemon's memory, before any byte was written and counted against the
decompression bound. Here every read made for one member's headers counts,
and a member whose headers need more than ``MAX_HEADER_BYTES`` fails the
archive before that read is made.
"""

from __future__ import annotations

import tarfile

MAX_HEADER_BYTES = 1024 * 1024  # a path is at most 4 KiB; pax records (xattrs, ACLs) fit many times over


class HeaderTooLarge(tarfile.TarError):
    """A member's headers ask for more than ``MAX_HEADER_BYTES`` (a ``TarError``: the archive is refused as damaged)."""


class _CountedReads:
    """The tar stream as one member's header processing sees it: ``read`` counts against the bound."""

    def __init__(self, stream, allowed: int):
        self._stream = stream
        self._allowed = allowed

    def read(self, size: int) -> bytes:
        if size > self._allowed:
            raise HeaderTooLarge(f"a tar member's headers are larger than {MAX_HEADER_BYTES} bytes")
        self._allowed -= size
        return self._stream.read(size)

    def __getattr__(self, name):  # tell() and the rest, as they are
        return getattr(self._stream, name)


class BoundedTarInfo(tarfile.TarInfo):
    """``tarfile.open(..., tarinfo=BoundedTarInfo)``: members whose extended headers stay within the bound.

    The stream is swapped only while the member's headers are processed; the headers of the members they
    chain to (a pax header then a long name...) are counted against the same bound.
    """

    def _proc_member(self, tar):
        stream = tar.fileobj
        if isinstance(stream, _CountedReads):  # a header chained to another: already counted
            return super()._proc_member(tar)
        tar.fileobj = _CountedReads(stream, MAX_HEADER_BYTES)
        try:
            return super()._proc_member(tar)
        finally:
            tar.fileobj = stream
