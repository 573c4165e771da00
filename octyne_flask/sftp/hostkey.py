"""The SFTP server's host key: an ed25519 key in OpenSSH format, made on first start and kept private.

A client pins this key on its first connection, so it must survive restarts;
like sshd, the daemon refuses to use a key file that others may read.
paramiko and cryptography are imported only to read or make a key: with SFTP off they never load.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

from octyne_flask.atomicfile import write_atomically
from octyne_flask.config import SftpConfig

if TYPE_CHECKING:
    import paramiko

DEFAULT_NAME = "sftp_host_ed25519_key"


class HostKeyError(RuntimeError):
    """The host key cannot be made, read or trusted; the message says which file and why."""


def host_key_path(settings: SftpConfig, users_path: str) -> str:
    """``sftp.hostKey``, or by default ``sftp_host_ed25519_key`` beside the users file."""
    if settings.host_key:
        return os.path.abspath(settings.host_key)
    return os.path.join(os.path.dirname(os.path.abspath(users_path)), DEFAULT_NAME)


def load_host_key(path: str) -> paramiko.PKey:
    """The key in ``path``, made first (ed25519, mode 0600) when the file does not exist."""
    import paramiko

    if not os.path.lexists(path):
        _create(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise HostKeyError(f"the SFTP host key {path} may be read by other users (mode {mode:04o}); "
                               f"make it private with: chmod 600 {path}")
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as error:
        raise HostKeyError(f"cannot read the SFTP host key {path}: {error}") from None


def _create(path: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    try:
        write_atomically(path, key)  # a new file is 0600 from its first byte
    except OSError as error:
        raise HostKeyError(f"cannot create the SFTP host key {path}: {error.strerror}") from None


def describe(key: paramiko.PKey) -> str:
    """``ED25519 SHA256:...``, as ``ssh-keygen -l`` and clients' first-connection prompts show it."""
    return f"{key.algorithm_name} {key.fingerprint}"
