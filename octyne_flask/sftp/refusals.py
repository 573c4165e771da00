"""How a refused SFTP request is answered: an SFTP status code and the same message the HTTP API gives.

File work raises ``ApiError`` (the shared ``files/`` code) or ``OSError``;
``refusing()`` turns both into ``Refused``, which the channel sends as the
request's status (code and message), so FileZilla shows e.g. "Invalid file
path: path escapes from parent" rather than a bare "Failure".
"""

from __future__ import annotations

import errno
from contextlib import contextmanager

from paramiko.sftp import SFTP_FAILURE, SFTP_NO_SUCH_FILE, SFTP_OP_UNSUPPORTED, SFTP_PERMISSION_DENIED

from octyne_flask.errors import FORBIDDEN, ApiError

_BY_ERRNO = {errno.ENOENT: SFTP_NO_SUCH_FILE, errno.ENOTDIR: SFTP_NO_SUCH_FILE,
             errno.EACCES: SFTP_PERMISSION_DENIED, errno.EPERM: SFTP_PERMISSION_DENIED,
             errno.ELOOP: SFTP_PERMISSION_DENIED}  # ELOOP: a link met where none may be followed


class Refused(Exception):
    """The request fails with SFTP status ``code`` and ``message``."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def forbidden() -> Refused:
    return Refused(SFTP_PERMISSION_DENIED, FORBIDDEN)


def unsupported(what: str) -> Refused:
    return Refused(SFTP_OP_UNSUPPORTED, f"{what} is not supported")


def from_api_error(error: ApiError) -> Refused:
    """404 is "no such file"; a path refused by the path rules (400 ``Invalid ...``) or 403 is "permission
    denied"; anything else a failure, with the OS's reason for a 500."""
    if error.status == 404:
        return Refused(SFTP_NO_SUCH_FILE, error.message)
    if error.status == 403 or (error.status == 400 and error.message.startswith("Invalid ")):
        return Refused(SFTP_PERMISSION_DENIED, error.message)
    return Refused(SFTP_FAILURE, error.extra.get("detail") or error.message)


def from_os_error(error: OSError) -> Refused:
    return Refused(_BY_ERRNO.get(error.errno, SFTP_FAILURE), error.strerror or type(error).__name__)


@contextmanager
def refusing():
    """Raise the ``ApiError`` or ``OSError`` of the ``with`` body as ``Refused``."""
    try:
        yield
    except ApiError as error:
        raise from_api_error(error) from None
    except OSError as error:
        raise from_os_error(error) from None
