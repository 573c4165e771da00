"""The users file (``users.json``): username -> password hash, kept live.

One ``UserStore`` owns the file. Changes made through the API go through one
lock (read-modify-write is serialised), are written to ``<path>~`` and renamed
into place (keeping the file's mode and owner: it holds password hashes), and
apply to the live set at once. A watcher re-reads the file when it changes on
disk (content, mtime or inode: a rename-replace counts), and keeps the last
good users when the new content is broken.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Callable

from octyne_flask.atomicfile import write_atomically
from octyne_flask.auth.filewatch import WatchedFile, file_signature
from octyne_flask.auth.passwords import hash_password, spend_like_a_check, verify_password
from octyne_flask.errors import ApiError

log = logging.getLogger(__name__)

LOCAL_USER = "@local"
_VALID_USERNAME = re.compile(r"[a-zA-Z0-9_\-@]+")

USER_EXISTS = "User already exists!"
USER_MISSING = "User does not exist!"


def username_problem(name: str) -> str | None:
    """Why ``name`` cannot be a username (Octyne's exact message), or None."""
    if name == LOCAL_USER:
        return "The username '@local' is reserved for local system users."
    if not _VALID_USERNAME.fullmatch(name):  # the whole name: "^...$" with match() lets a final newline in
        return (f"The username '{name}' is invalid. A valid username can contain only "
                "letters, numbers, -, _ or @.")
    return None


class UserStore(WatchedFile):
    """The live set of users, backed by the users file."""

    def __init__(self, path: str):
        super().__init__(path, "users-watcher")
        self._users: dict[str, str] = {}
        self._ignored: dict[str, object] = {}  # entries of the file that are not usable users
        self._listeners: list[Callable[[dict[str, str]], None]] = []
        self.reload()

    # -- reading ---------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the file; returns False (and keeps the old users) when it is broken."""
        with self._lock:
            signature = file_signature(self.path)
            try:
                with open(self.path, "rb") as handle:
                    document = json.loads(handle.read().decode("utf-8"))
                if not isinstance(document, dict):
                    raise ValueError("the top level is not an object")
            except (OSError, ValueError) as error:
                log.error("Cannot read users from %s, keeping the previous users: %s", self.path, error)
                self._signature = signature
                return False
            users, ignored = {}, {}
            for name, stored in document.items():
                problem = username_problem(name)
                if problem or not isinstance(stored, str):
                    log.warning("Ignoring user %r in %s: %s", name, self.path, problem or "the hash is not a string")
                    ignored[name] = stored
                    continue
                users[name] = stored
            self._signature = signature
            self._ignored = ignored
            changed = users != self._users
            self._users = users
        if changed:
            self._notify()
        return True

    def names(self) -> list[str]:
        with self._lock:
            return list(self._users)

    def snapshot(self) -> dict[str, str]:
        """A copy of username -> hash."""
        with self._lock:
            return dict(self._users)

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._users

    def check_password(self, name: str, password: bytes) -> bool:
        """Whether the user exists and the password matches (hashing happens outside the lock).

        An unknown user costs a hash too, so timing does not reveal which names exist.
        """
        with self._lock:
            stored = self._users.get(name)
        if stored is None:
            return spend_like_a_check(password)
        return verify_password(password, stored)

    # -- changing --------------------------------------------------------
    def create(self, name: str, password: str) -> None:
        stored = hash_password(password.encode("utf-8"))
        with self._lock:
            if name in self._users:
                raise ApiError(409, USER_EXISTS)
            problem = username_problem(name)
            if problem:
                raise ApiError(400, problem)
            self._commit({**self._users, name: stored})

    def update(self, name: str, new_name: str, new_password: str) -> None:
        """Rename and/or change the password; empty strings mean "keep".

        Renaming to a name already in use, the account's own included, is 409.
        """
        stored = hash_password(new_password.encode("utf-8")) if new_password else None
        with self._lock:
            if name not in self._users:
                raise ApiError(404, USER_MISSING)
            renamed = bool(new_name)
            if renamed and new_name in self._users:
                raise ApiError(409, USER_EXISTS)
            if renamed:
                problem = username_problem(new_name)
                if problem:
                    raise ApiError(400, problem)
            users = {}
            for existing, existing_hash in self._users.items():
                if existing == name:
                    users[new_name if renamed else name] = stored or existing_hash
                else:
                    users[existing] = existing_hash
            self._commit(users)

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._users:
                raise ApiError(404, USER_MISSING)
            self._commit({k: v for k, v in self._users.items() if k != name})

    def _commit(self, users: dict[str, str]) -> None:
        """Write the new set to disk first; the live set changes only when that succeeded.

        Entries the store ignores (invalid names) are written back untouched: ignored, not deleted.
        """
        kept = {name: stored for name, stored in self._ignored.items() if name not in users}
        document = {**users, **kept}
        write_atomically(self.path, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        self._users = users
        self._signature = file_signature(self.path)
        self._notify()

    # -- listening -------------------------------------------------------
    def on_change(self, listener: Callable[[dict[str, str]], None]) -> None:
        """Call ``listener(users)`` after every change of the live set."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict[str, str]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self) -> None:
        users = self.snapshot()
        for listener in list(self._listeners):
            try:
                listener(users)
            except Exception:  # a broken listener must not stop the others
                log.exception("User change listener failed")

