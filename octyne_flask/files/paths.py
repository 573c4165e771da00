"""One resolver for every client-supplied path, so nothing escapes a server's directory.

Rules (api.md §8): a rooted path is normalised first (``/../../x`` is ``/x``),
a relative path that climbs out is refused, NUL bytes and text that names
no file (a lone surrogate from a JSON ``\\ud800`` escape) are refused, and
(**Better:**) a symlink in the directories leading to the target must not
lead outside the server directory. The target itself, when it is a symlink,
is left alone unless the caller wants to read or write through it.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from octyne_flask.errors import ApiError

ESCAPES = "path escapes from parent"
INVALID = "invalid path"
IS_ROOT = "path is the server directory itself"
LINK_ESCAPES = "symlink leads outside the server directory"
TOO_LONG = "name too long"
PARENT_MISSING = "parent folder does not exist"

NAME_MAX = 255  # bytes in one file name (Linux file systems)
PATH_MAX = 4095  # bytes in a whole path


def request_path(raw: str) -> str:
    """The client's path cleaned like Go's ``path.Clean``; this form is written to the action log."""
    cleaned = posixpath.normpath(raw) if raw else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def relative_path(raw: str) -> str | None:
    """The path relative to the server directory ("" for the directory itself), or None if it climbs out."""
    if raw.startswith("/"):
        return posixpath.normpath("/" + raw.lstrip("/")).lstrip("/")
    cleaned = posixpath.normpath(raw) if raw else "."
    if cleaned == ".." or cleaned.startswith("../"):
        return None
    return "" if cleaned == "." else cleaned


def is_inside(path: str, root: str) -> bool:
    """Whether an absolute, normalised path is ``root`` or below it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


@dataclass(frozen=True)
class ServerPath:
    """A path checked against a server directory: where it is on disk and how the client wrote it."""

    root: str  # the server directory, symlinks resolved
    relative: str  # "" for the server directory itself
    request: str  # cleaned client path, for the action log

    @property
    def absolute(self) -> str:
        """The on-disk path (under the resolved server directory)."""
        return os.path.join(self.root, self.relative) if self.relative else self.root

    @property
    def is_root(self) -> bool:
        return self.relative == ""

    def child(self, name: str) -> ServerPath:
        """The entry ``name`` inside this folder (``name`` is a single, already checked component)."""
        joined = posixpath.join(self.relative, name)
        return ServerPath(self.root, joined, posixpath.join(self.request, name))

    def real_location(self) -> str:
        """Where the entry really is: the folders leading to it resolved, its own name not (a symlink is the link)."""
        return os.path.join(os.path.realpath(os.path.dirname(self.absolute)), os.path.basename(self.absolute))

    def leads_outside(self) -> bool:
        """Whether following this path, final symlink included, ends outside the server directory."""
        return not is_inside(os.path.realpath(self.absolute), self.root)


def opened_path(fd: int) -> str:
    """Where the file or folder open as ``fd`` is now, in the kernel's own record (``/proc/self/fd``)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""  # no /proc: callers refuse rather than trust an unchecked path


def check_opened(fd: int, root: str, what: str) -> int:
    """Return ``fd`` if what it opened really is inside ``root``; otherwise close it and refuse.

    Closes the gap between checking a path and opening it, in which a folder
    on the way could have been swapped for a symlink: where the descriptor
    really is gets checked, not the path.
    """
    if not is_inside(opened_path(fd), root):
        os.close(fd)
        raise ApiError(400, f"Invalid {what}: {LINK_ESCAPES}")
    return fd


def open_parent(path: str, root: str, what: str) -> tuple[int, str]:
    """``(folder fd, name)`` for the entry at absolute ``path``: later calls use the fd (``dir_fd=``)
    so the entry is reached through the checked folder, whatever happens to the path meanwhile."""
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return check_opened(fd, root, what), os.path.basename(path)


def _names_a_file(raw: str) -> bool:
    """Whether the text can be a file name at all (bytes that are not UTF-8 arrive as ``\\udc80``-``\\udcff``)."""
    try:
        os.fsencode(raw)
    except UnicodeEncodeError:
        return False
    return True


def _too_long(absolute: str) -> bool:
    """Whether the OS would refuse the path as too long (ENAMETOOLONG): a 400 up front, not a 500 later."""
    encoded = os.fsencode(absolute)
    return len(encoded) > PATH_MAX or any(len(name) > NAME_MAX for name in encoded.split(b"/"))


def resolve(directory: str, raw: str | None, what: str, *, base: str = "",
            follow: bool = False, allow_root: bool = True) -> ServerPath:
    """Check ``raw`` against the server ``directory`` and return it as a ServerPath.

    ``what`` names the path in the error (``Invalid <what>: <reason>``, e.g. ``folder path``).
    ``base`` is a relative path the client's path is taken from (compress's
    ``basePath``): rooted paths are rooted there and may not climb above it.
    ``follow`` also refuses a final symlink that leads outside (reads/writes
    through it); ``allow_root`` refuses the server directory itself.
    """
    raw = raw or ""
    if "\x00" in raw or not _names_a_file(raw):
        raise ApiError(400, f"Invalid {what}: {INVALID}")
    relative = relative_path(raw)
    if relative is None:
        raise ApiError(400, f"Invalid {what}: {ESCAPES}")
    relative = posixpath.join(base, relative).rstrip("/") if base else relative
    if not relative and not allow_root:
        raise ApiError(400, f"Invalid {what}: {IS_ROOT}")
    root = os.path.realpath(directory)
    checked = ServerPath(root, relative, request_path(raw))
    if _too_long(checked.absolute):
        raise ApiError(400, f"Invalid {what}: {TOO_LONG}")
    parent = os.path.dirname(checked.absolute) if relative else root
    if not is_inside(os.path.realpath(parent), root):
        raise ApiError(400, f"Invalid {what}: {LINK_ESCAPES}")
    if follow and relative and checked.leads_outside():
        raise ApiError(400, f"Invalid {what}: {LINK_ESCAPES}")
    return checked
