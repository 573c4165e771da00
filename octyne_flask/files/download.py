"""``GET /server/{id}/file``: open a regular file for streaming, with its size and sniffed type."""

from __future__ import annotations

import os
import stat
import unicodedata
from urllib.parse import quote

from octyne_flask.errors import ApiError
from octyne_flask.files.messages import NO_SUCH_FILE
from octyne_flask.files.mime import sniff_fd
from octyne_flask.files.paths import ServerPath, check_opened


def open_regular_file(target: ServerPath) -> tuple[int, os.stat_result]:
    """``(fd, stat)`` of the regular file at ``target``, resolved with ``follow=True``; 404/400 otherwise.

    Where the descriptor really leads is checked once it is open, so a folder
    swapped for a symlink after ``resolve`` cannot lead the read outside.
    """
    try:
        fd = os.open(target.absolute, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # never block on a FIFO
    except OSError:
        raise ApiError(404, NO_SUCH_FILE) from None
    check_opened(fd, target.root, "file path")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ApiError(400, "This is not a file!")
    os.set_blocking(fd, True)
    return fd, info


def open_download(target: ServerPath):
    """``(binary file, stat, MIME type)`` for a file resolved with ``follow=True``; 404/400 otherwise."""
    fd, info = open_regular_file(target)
    return os.fdopen(fd, "rb"), info, sniff_fd(fd)


_TOKEN = set(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def content_disposition(name: str) -> str:
    """``attachment; filename=<name>`` as Octyne sends it, quoted per RFC 6266 when the name needs it.

    Any other name gets a printable-ASCII fallback (a header must not carry control
    characters, and gunicorn refuses them) plus ``filename*=UTF-8''<percent-encoded>``
    holding the real name.
    """
    encoded = name.encode("utf-8", "surrogateescape")
    if encoded and all(byte in _TOKEN for byte in encoded):
        return f"attachment; filename={name}"
    fallback = _ascii_fallback(name)
    quoted = '"' + fallback.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if fallback == name:
        return f"attachment; filename={quoted}"
    return f"attachment; filename={quoted}; filename*=UTF-8''{quote(encoded, safe='')}"


def _ascii_fallback(name: str) -> str:
    """``name`` in printable ASCII: accents dropped (é -> e), anything else, controls included, as ``_``."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(char if " " <= char <= "~" else "_" for char in decomposed if not unicodedata.combining(char))
