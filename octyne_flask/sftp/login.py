"""SFTP logins: ``<account>.<server>`` with the account's password, or with a key listed for the account.

A password is checked by the authenticator's own ``check_password`` (what
``/login`` runs: Argon2id or legacy SHA-256, a decoy hash for unknown
accounts) inside the same throttle, counted per client IP and per account,
so failures over SFTP and over ``/login`` share one budget. The password is
checked before anything else, so a wrong password, an unknown account, an
unknown server and a server the account may not touch all cost one hash
and end in the same failure.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from octyne_flask.auth.throttle import LoginThrottled
from octyne_flask.errors import ApiError
from octyne_flask.sftp.session import Session

log = logging.getLogger(__name__)

KEYS_FILE_LIMIT = 1 << 20  # bytes read from sftp.authorizedKeys


def login_name(account: str, server: str) -> str:
    """What ``account`` logs in as to reach ``server``'s files."""
    return f"{account}.{server}"


def split_login_name(name: str) -> tuple[str, str]:
    """``(account, server)`` of ``<account>.<server>``, split at the first dot (account names have none)."""
    account, _, server = name.partition(".")
    return account, server


def password_login(daemon, name: str, password: str | bytes, ip: str) -> Session | None:
    """The session for these credentials, or None (wrong, unknown, not allowed, or throttled)."""
    account, server = split_login_name(name)
    secret = password if isinstance(password, bytes) else password.encode("utf-8", "surrogateescape")

    def check() -> Session | None:
        if not daemon.authenticator.check_password(account, secret):
            return None
        session = Session(daemon, account, server, ip)
        return session if session.may_log_in() else None

    try:
        return daemon.throttle.attempt(ip, account, check)
    except LoginThrottled:
        log.warning("SFTP login for %r from %s refused: too many failed attempts", account, ip)
    except ApiError:  # the authenticator's store is unreachable (Redis down): no login, and no guess counted
        pass
    return None


def key_login(daemon, name: str, key_type: str, key_blob: bytes, ip: str) -> Session | None:
    """The session when the key is listed for the account in ``sftp.authorizedKeys``, else None.

    A public key cannot be guessed like a password, so these attempts are not throttled;
    the client still has to prove it holds the private key (paramiko checks the signature).
    """
    path = daemon.config.sftp.authorized_keys
    account, server = split_login_name(name)
    if not path or not account:
        return None
    try:
        if not daemon.authenticator.user_exists(account):
            return None
    except ApiError:
        return None
    if not any(listed_type == key_type and hmac.compare_digest(listed_blob, key_blob)
               for listed_type, listed_blob in authorized_keys(path, account)):
        return None
    session = Session(daemon, account, server, ip)
    return session if session.may_log_in() else None


def authorized_keys(path: str, account: str) -> list[tuple[str, bytes]]:
    """``(key type, key blob)`` of every ``<account>: <type> <base64> [comment]`` line for ``account``.

    Blank lines and ``#`` comments are skipped; a line that cannot be read is logged and skipped.
    The file is read at each attempt, so edits apply at once.
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read(KEYS_FILE_LIMIT).decode("utf-8", "replace")
    except OSError as error:
        log.error("Cannot read sftp.authorizedKeys %s: %s", path, error.strerror)
        return []
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        owner, colon, key = line.partition(":")
        fields = key.split()
        if not colon or len(fields) < 2:
            log.warning("Ignoring line %d of %s: not '<account>: <type> <base64 key>'", number, path)
            continue
        if owner.strip() != account:
            continue
        try:
            keys.append((fields[0], base64.b64decode(fields[1], validate=True)))
        except (binascii.Error, ValueError):
            log.warning("Ignoring line %d of %s: the key is not base64", number, path)
    return keys
