"""The users file made on first start, before anything binds (in the gunicorn master, which stays lean)."""

from __future__ import annotations

import base64
import json
import os
import secrets

from octyne_flask.atomicfile import write_atomically


def generate_password() -> str:
    """12 random bytes, base64 without padding, like Octyne's first-start password."""
    return base64.b64encode(secrets.token_bytes(12)).decode("ascii").rstrip("=")


def ensure_users_file(path: str) -> str | None:
    """Create the users file with ``admin`` and a random password when it is missing.

    Returns the message to print (with the password), or None when the file existed.
    """
    if os.path.exists(path):
        return None
    from octyne_flask.auth.passwords import hash_password  # argon2, only on the very first start

    password = generate_password()
    stored = hash_password(password.encode("utf-8"))
    write_atomically(path, (json.dumps({"admin": stored}, indent=2) + "\n").encode("utf-8"))
    return (f"The file {path} has been generated with the default user 'admin' "
            f"and password '{password}'.")
