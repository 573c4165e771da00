"""Account changes (POST, PATCH, DELETE /accounts) that keep users.json and access.json in step.

A new account gets the access ``defaults``, a rename moves the account's entry,
a deletion drops it and is refused (409) when it would remove the last
administrator. The access store is held across both files, so a concurrent
PATCH /access cannot slip in between the check and the change.
"""

from __future__ import annotations

from octyne_flask.auth.access_store import AccessStore
from octyne_flask.auth.users import UserStore


class Accounts:
    def __init__(self, users: UserStore, access: AccessStore):
        self._users = users
        self._access = access

    def names(self) -> list[str]:
        return self._users.names()

    def create(self, name: str, password: str) -> None:
        with self._access.editing():
            self._users.create(name, password)
            self._access.account_created(name)

    def update(self, name: str, new_name: str, password: str) -> None:
        """Rename and/or change the password; empty strings mean "keep"."""
        with self._access.editing():
            self._users.update(name, new_name, password)
            if new_name:
                self._access.account_renamed(name, new_name)

    def delete(self, name: str) -> None:
        with self._access.editing():
            if self._users.exists(name):  # an unknown account is the users store's 404
                self._access.refuse_removing_last_administrator(name, self._users.names())
            self._users.delete(name)
            self._access.account_removed(name)
