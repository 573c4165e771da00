"""``PATCH /server/{id}/files``: a batch of mv/cp/rm run in order and undone in reverse on failure.

Every operation is validated before anything runs (name, path containment,
and text that cannot name a file); existence checks happen as each one runs,
so later operations may use what earlier ones created. ``rm`` moves the item
into a hidden ``.octyne-transaction-*`` folder so it can be put back. Any
failure, expected or not, undoes what ran before it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, field

from octyne_flask.errors import INTERNAL, INVALID_JSON, ApiError, internal_error
from octyne_flask.files.operations import in_parent_folder, move_entry, move_or_copy
from octyne_flask.files.ownership import KEEP, Owner
from octyne_flask.files.paths import ServerPath, resolve
from octyne_flask.files.temp_journal import UNRECORDED, TemporaryJournal
from octyne_flask.files.tree import FOLLOWING_FOLDER_FLAGS, open_folder, remove_entry

log = logging.getLogger(__name__)

OPERATIONS = ("mv", "cp", "rm")
INVALID_OPERATION = "Invalid operation! Operations available: mv,cp,rm"
MOVE_COPY_ONLY = "Invalid operation! Operations available: mv,cp"


@dataclass
class Step:
    """One validated operation; ``final`` is where a mv/cp put the item, for the undo."""

    operation: str
    source: ServerPath
    dest: ServerPath | None = None
    final: ServerPath | None = None

    def logged(self) -> dict:
        """The operation as the action log shows it (cleaned request paths)."""
        if self.operation == "rm":
            return {"operation": "rm", "path": self.source.request}
        return {"operation": self.operation, "src": self.source.request, "dest": self.dest.request}


@dataclass
class Outcome:
    """The response of a transaction: HTTP status, body, and what the action log records."""

    status: int
    errors: list = field(default_factory=list)
    steps: list = field(default_factory=list)

    def body(self) -> dict:
        if not self.errors:
            return {"success": True}
        return {"success": False, "errors": self.errors}


def error_entry(index: int, error: ApiError) -> dict:
    """One item of the ``errors`` list: the operation's index and the failure's message (and detail)."""
    return {"index": index, "message": error.message, **error.extra}


class TransactionRejected(Exception):
    """An operation failed validation; nothing was run."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.errors[0]["message"])
        self.outcome = outcome


def parse_operations(document, directory: str) -> list[Step]:
    """Validate the request body; raises ApiError for a bad body, TransactionRejected for a bad operation."""
    if not isinstance(document, dict) or not isinstance(document.get("operations", []), list):
        raise ApiError(400, INVALID_JSON)
    steps = []
    for index, entry in enumerate(document.get("operations") or []):
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(key, ""), str) for key in ("operation", "src", "dest", "path")):
            raise ApiError(400, INVALID_JSON)
        try:
            steps.append(_validate(entry, directory))
        except ApiError as error:
            raise TransactionRejected(Outcome(400, [error_entry(index, error)])) from None
    return steps


def single_operation(body: bytes, directory: str) -> Step:
    """``PATCH /server/{id}/file``: a JSON object, or legacy text ``mv\\n/a\\n/b``; only mv and cp run."""
    text = body.decode("utf-8", "surrogateescape")
    if not text.strip():
        raise ApiError(400, INVALID_JSON)
    if text.lstrip()[0] == "{":
        try:
            entry = json.loads(body)
        except ValueError:
            raise ApiError(400, INVALID_JSON) from None
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(key, ""), str) for key in ("operation", "src", "dest", "path")):
            raise ApiError(400, INVALID_JSON)
    else:
        parts = text.split("\n")
        if len(parts) != 3:
            if parts[0] in ("mv", "cp"):
                raise ApiError(405, f"{parts[0]} operation requires two arguments!")
            raise ApiError(405, MOVE_COPY_ONLY)
        entry = {"operation": parts[0], "src": parts[1], "dest": parts[2]}
    if entry.get("operation") == "rm":  # a known operation, just not here: before any path is looked at
        raise ApiError(405, MOVE_COPY_ONLY)
    return _validate(entry, directory)


def _validate(entry: dict, directory: str) -> Step:
    operation = entry.get("operation", "")
    if operation not in OPERATIONS:
        raise ApiError(400, INVALID_OPERATION)
    if operation == "rm":
        return Step("rm", resolve(directory, entry.get("path"), "source path", allow_root=False))
    source = resolve(directory, entry.get("src"), "source path", allow_root=False)
    dest = resolve(directory, entry.get("dest"), "destination path", follow=True)
    return Step(operation, source, dest)


def run_transaction(steps: list[Step], directory: str, journal: TemporaryJournal = UNRECORDED,
                    owner: Owner = KEEP) -> Outcome:
    """Run the steps in order (what copies make given to ``owner``); on the first failure, whatever it is,
    undo the earlier ones in reverse. The trash and copies in progress are listed in ``journal``: a killed
    daemon's are swept at the next start."""
    outcome = Outcome(200, steps=steps)
    trash = None
    for index, step in enumerate(steps):
        try:
            if step.operation == "rm":
                trash = trash or Trash(directory, journal)
                trash.park(step.source, str(index))
            else:
                step.final = move_or_copy(step.operation, step.source, step.dest, journal, owner)
        except Exception as error:  # any failure, not only an ApiError: never leave the batch half-done
            failure = _failure(error)
            outcome.status = failure.status
            outcome.errors.append(error_entry(index, failure))
            undo(steps[:index], outcome, trash)
            break
    if trash:
        try:
            trash.close(empty=len(outcome.errors) < 2)  # keep removed items if an undo failed
        except OSError as error:
            outcome.status = 500
            outcome.errors.append(error_entry(-1, internal_error(error)))
    return outcome


def _failure(error: Exception) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, OSError):
        return internal_error(error)
    log.exception("Unexpected failure in a file transaction")
    return ApiError(500, INTERNAL)


class Trash:
    """The hidden folder in the server directory where ``rm`` parks items until the transaction ends.

    It is listed in the journal while it exists: after a kill -9 the items parked in it are removed
    at the next start, as their ``rm`` asked (which items came from where is not recorded).
    """

    def __init__(self, directory: str, journal: TemporaryJournal = UNRECORDED):
        self.root = os.open(os.path.realpath(directory), FOLLOWING_FOLDER_FLAGS)
        self.name = f".octyne-transaction-{secrets.token_hex(8)}"
        self.journal = journal
        try:
            self.listed = journal.add(self.root, self.name)
        except BaseException:
            os.close(self.root)
            raise
        try:
            os.mkdir(self.name, 0o700, dir_fd=self.root)
            self.folder = open_folder(self.name, self.root)
        except BaseException:
            journal.remove(self.listed)
            os.close(self.root)
            raise

    def park(self, source: ServerPath, key: str) -> None:
        """Move the item into the trash as ``key``, through its checked parent folder."""
        missing = ApiError(400, "The file specified in path does not exist!")
        with in_parent_folder(source, "source path", missing) as (folder, name):
            move_entry(folder, name, self.folder, key, None)

    def restore(self, key: str, source: ServerPath) -> None:
        """Put the item parked as ``key`` back where it was."""
        with in_parent_folder(source, "source path") as (folder, name):
            move_entry(self.folder, key, folder, name, None)

    def close(self, empty: bool) -> None:
        """Release the trash, removing it with its contents when ``empty`` (else it stays for the operator)."""
        try:
            if empty:
                remove_entry(self.root, self.name)
        finally:
            self.journal.remove(self.listed)
            os.close(self.folder)
            os.close(self.root)


def undo(done: list[Step], outcome: Outcome, trash: Trash | None = None) -> None:
    """Reverse ``done`` (last first); each failure is added to ``outcome`` and makes it a 500."""
    for index in range(len(done) - 1, -1, -1):
        step = done[index]
        try:
            if step.operation == "rm":
                trash.restore(str(index), step.source)
                continue
            with in_parent_folder(step.final, "destination path") as (folder, name):
                if step.operation == "cp":
                    remove_entry(folder, name)
                else:
                    with in_parent_folder(step.source, "source path") as (origin, old_name):
                        move_entry(folder, name, origin, old_name, None)
        except Exception as error:  # report it and carry on undoing the rest
            outcome.status = 500
            outcome.errors.append(error_entry(index, _failure(error)))
