"""access.json: the access document on disk, kept live as an ``AccessSnapshot``.

Access control is off while the file does not exist (Octyne 1.4: every account
is an administrator); the first PATCH /access creates it, and from then on the
file is the truth. Every change is validated whole, written atomically (a new
file is 0600, an existing one keeps its mode), and only then swapped in. A
watcher picks up hand edits like users.json's; a broken edit keeps the last
good rules.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Callable, Collection

from octyne_flask.atomicfile import write_atomically
from octyne_flask.auth.access import (
    ACCESS_OFF, LAST_ADMINISTRATOR, AccessError, AccessSnapshot, first_document, patched, validate_document,
    with_account_removed, with_account_renamed, with_defaults_for)
from octyne_flask.auth.filewatch import WatchedFile, file_signature
from octyne_flask.errors import ApiError

log = logging.getLogger(__name__)

Listener = Callable[[AccessSnapshot, AccessSnapshot], None]


def default_access_path(users_path: str) -> str:
    """``access.json`` in the users file's folder (``--access=`` overrides it)."""
    return os.path.join(os.path.dirname(os.path.abspath(users_path)), "access.json")


class SnapshotSource:
    """Holds the snapshot in force and tells listeners ``(old, new)`` about every swap."""

    def __init__(self):
        self.snapshot: AccessSnapshot = ACCESS_OFF
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _swap(self, snapshot: AccessSnapshot) -> None:
        old, self.snapshot = self.snapshot, snapshot  # one reference store: readers see old or new, whole
        for listener in list(self._listeners):
            try:
                listener(old, snapshot)
            except Exception:  # a broken listener must not stop the others
                log.exception("Access change listener failed")


class AccessStore(SnapshotSource, WatchedFile):
    """The access rules of this node, backed by ``access.json``."""

    def __init__(self, path: str):
        SnapshotSource.__init__(self)
        WatchedFile.__init__(self, path, "access-watcher")
        self.reload()

    # -- reading ---------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the file; False (and the previous rules kept) when it cannot be used."""
        with self._lock:
            signature = file_signature(self.path)
            self._signature = signature
            if signature is None:
                if self.snapshot.enabled:
                    log.warning("%s was removed: access control is off, every account is an administrator",
                                self.path)
                    self._swap(ACCESS_OFF)
                return True
            try:
                with open(self.path, "rb") as handle:
                    document = validate_document(json.loads(handle.read().decode("utf-8")))
            except (OSError, ValueError) as error:  # AccessError is a ValueError
                log.error("Cannot use %s, keeping the previous access rules: %s", self.path, error)
                return False
            snapshot = AccessSnapshot(document)
            if snapshot.serialized() != self.snapshot.serialized():
                self._swap(snapshot)
            return True

    # -- changing --------------------------------------------------------------------------
    def editing(self):
        """Hold the store for a sequence of changes (an account change and its access entry)."""
        return self._lock

    def patch(self, body: dict, accounts: Collection[str]) -> None:
        """Apply a PATCH /access body; the first change creates the file with every account an administrator.

        400 naming the key when the result is invalid, 409 when no administrator would remain;
        either way nothing is written.
        """
        with self._lock:
            current = self.snapshot
            base = current.document() if current.enabled else first_document(accounts)
            try:
                document = patched(base, body, accounts)
            except AccessError as error:
                raise ApiError(400, str(error), key=error.key) from None
            if not AccessSnapshot(document).has_administrator(accounts):
                raise ApiError(409, LAST_ADMINISTRATOR)
            self._commit(document)

    def account_created(self, name: str) -> None:
        with self._lock:
            if self.snapshot.enabled:
                self._commit(with_defaults_for(self.snapshot.document(), name))

    def account_renamed(self, old: str, new: str) -> None:
        with self._lock:
            if self.snapshot.enabled:
                self._commit(with_account_renamed(self.snapshot.document(), old, new))

    def account_removed(self, name: str) -> None:
        with self._lock:
            if self.snapshot.enabled:
                self._commit(with_account_removed(self.snapshot.document(), name))

    def refuse_removing_last_administrator(self, name: str, accounts: Collection[str]) -> None:
        """409 when deleting ``name`` would leave no administrator among ``accounts``."""
        snapshot = self.snapshot
        if snapshot.enabled and not snapshot.has_administrator([a for a in accounts if a != name]):
            raise ApiError(409, LAST_ADMINISTRATOR)

    def _commit(self, document: dict) -> None:
        """Write first; the rules in force change only once the new file is in place."""
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        write_atomically(self.path, text.encode("utf-8"))
        self._signature = file_signature(self.path)
        self._swap(AccessSnapshot(document))
