"""Login tokens, and the in-memory authenticator that issues and checks them.

An authenticator answers five questions: who does this token belong to, are
these credentials right, log this user in, log this token out, and may accounts
be managed here. The memory one keeps tokens in this process and users in
``users.json``; the Redis one (``auth/redis_auth.py``) shares both between nodes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading

from octyne_flask.auth.users import UserStore

TOKEN_BYTES = 96
TOKEN_LENGTH = 128


def new_token() -> str:
    """96 random bytes, standard base64: 128 characters."""
    return base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")


def is_well_formed(token: str) -> bool:
    """Whether ``token`` could be one of ours; anything else is simply invalid."""
    if len(token) != TOKEN_LENGTH:
        return False
    try:
        base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class MemoryAuthenticator:
    """Tokens in a dict, users from the users file."""

    manages_users = True
    supports_login = True
    checks_tokens_locally = True

    def __init__(self, users: UserStore):
        self.users = users
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        users.on_change(self._forget_missing_users)

    def check_password(self, username: str, password: bytes) -> bool:
        """Whether the credentials are right (what ``login`` and SFTP logins check)."""
        return self.users.check_password(username, password)

    def login(self, username: str, password: bytes) -> str | None:
        """A new token when the credentials are right, else None."""
        if not self.check_password(username, password):
            return None
        token = new_token()
        with self._lock:
            self._tokens[token] = username
        return token

    def user_of(self, token: str) -> str | None:
        """The user a token belongs to; tokens of deleted users are dropped."""
        if not is_well_formed(token):
            return None
        with self._lock:
            username = self._tokens.get(token)
        if username is None:
            return None
        if not self.users.exists(username):
            self.logout(token)
            return None
        return username

    def user_exists(self, username: str) -> bool:
        return self.users.exists(username)

    def account_names(self) -> list[str]:
        return self.users.names()

    def logout(self, token: str) -> bool:
        """Forget a token; False when it was not there."""
        with self._lock:
            return self._tokens.pop(token, None) is not None

    def _forget_missing_users(self, users: dict[str, str]) -> None:
        with self._lock:
            for token, username in list(self._tokens.items()):
                if username not in users:
                    del self._tokens[token]

    def close(self) -> None:
        """Stop following user changes; the tokens die with this object."""
        self.users.remove_listener(self._forget_missing_users)
