"""Making, listing and deleting backups: one at a time per server, in the background or waited for.

A backup types the ``before`` commands into the console, waits ``settle``
seconds, has the compression engine write a tar.zst of the directory
(``exclude`` left out) under a temporary name listed in the journal, links it
into place, applies retention, and types the ``after`` commands whatever
happened. Progress is readable while it runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from octyne_flask.errors import ApiError
from octyne_flask.files.archives.members import Progress, Root
from octyne_flask.files.ownership import Owner
from octyne_flask.files.paths import ServerPath
from octyne_flask.files.temp_journal import TemporaryJournal
from octyne_flask.supervisor import RUNNING, ManagedProcess

from . import folder as backups_folder

log = logging.getLogger(__name__)

BACKUP_WINDOW_LOG = 23  # an 8 MiB zstd window: the daemon's memory stays bounded (the 128 MiB window of /compress does not)

BUSY = "A backup is already in progress!"
MUST_BE_STOPPED = "The server must be stopped first!"
RESTORING = "A restore is already in progress!"
RESTORE_FAILED = "An error occurred while restoring the backup!"
BACKUP_FAILED = "An error occurred while making the backup!"
NO_SUCH_BACKUP = "This backup does not exist!"


class BackupRefused(ApiError):
    """A backup cannot be made, found or restored now: answered as it is (a restore passes it on, where any
    other failure becomes ``RESTORE_FAILED``)."""


@dataclass
class _Running:
    name: str
    trigger: str
    started: float
    progress: Progress


def exclusion(patterns: tuple[str, ...]):
    """``(name, is_folder) -> bool`` for gitignore-style ``patterns`` relative to the directory (None if none)."""
    if not patterns:
        return None
    import pathspec  # loaded by the first backup with exclusions, not by every worker

    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    return lambda name, is_folder: spec.match_file(name + "/" if is_folder else name)


class Backups:
    def __init__(self, journal: TemporaryJournal):
        self._journal = journal
        self._lock = threading.Condition()  # notified when a backup leaves _running
        self._running: dict[str, _Running] = {}  # server name -> its backup in progress
        self._restoring: set[str] = set()  # servers whose directory is being replaced: no backup, no second restore
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()

    # -- making ------------------------------------------------------------------
    def start(self, server: ManagedProcess, trigger: str = "manual") -> str:
        """Begin a backup in the background; its name. BackupRefused(409) while one is running."""
        running = self._reserve(server, trigger)
        thread = threading.Thread(target=self._make_logged, args=(server, running), daemon=True,
                                  name=f"backup {server.name}")
        with self._lock:
            self._threads.add(thread)
        thread.start()
        return running.name

    def make(self, server: ManagedProcess, trigger: str) -> str:
        """Make a backup and wait for it; its name. Raises what made it fail."""
        running = self._reserve(server, trigger)
        self._make(server, running)
        return running.name

    def _reserve(self, server: ManagedProcess, trigger: str) -> _Running:
        settings = server.config.backups
        if settings.problem:
            raise BackupRefused(500, BACKUP_FAILED, detail=settings.problem)
        os.makedirs(settings.path, mode=0o700, exist_ok=True)
        with self._lock:
            if server.name in self._running:
                raise BackupRefused(409, BUSY)
            if server.name in self._restoring and trigger != "pre-restore":
                raise BackupRefused(409, RESTORING)
            taken = {running.name for running in self._running.values()}
            name = backups_folder.fresh_name(settings.path, taken=taken)
            running = _Running(name, trigger, time.time(), Progress(self._stop))
            self._running[server.name] = running
        return running

    def _make_logged(self, server: ManagedProcess, running: _Running) -> None:
        try:
            self._make(server, running)
        except Exception:
            log.exception("Backup %s of %s failed", running.name, server.name)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _make(self, server: ManagedProcess, running: _Running) -> None:
        settings = server.config.backups
        try:
            typed = self._type(server, settings.before)
            if typed and self._stop.wait(settings.settle):
                raise RuntimeError("the daemon is stopping")
            backups_folder.record_trigger(settings.path, running.name, running.trigger)
            from octyne_flask.files.archives.compress import build_archive  # with tarfile: on the first backup

            build_archive(self._request(server, settings, running.name), running.progress, self._journal)
            self._retain(settings, running.name)
            log.info("Backup %s of %s made", running.name, server.name)
        finally:
            self._type(server, settings.after)
            with self._lock:
                self._running.pop(server.name, None)
                self._lock.notify_all()

    @staticmethod
    def _type(server: ManagedProcess, commands: tuple[str, ...]) -> bool:
        """Type ``commands`` into a running server's console; whether it was running."""
        if server.status != RUNNING:
            return False
        for command in commands:
            server.write_input(command)
        return True

    @staticmethod
    def _request(server: ManagedProcess, settings, name: str):
        from octyne_flask.files.archives.compress import CompressRequest

        directory = os.path.realpath(server.directory)
        target = ServerPath(os.path.realpath(settings.path), name, name)
        whole = Root(".", ServerPath(directory, "", "/"))
        return CompressRequest(target, "tar", "zstd", [whole], exclude=exclusion(settings.exclude),
                               zstd_window_log=BACKUP_WINDOW_LOG)

    @staticmethod
    def _retain(settings, newest: str) -> None:
        found = backups_folder.archives(settings.path)
        for archive in backups_folder.beyond_retention(found, settings.keep, settings.max_bytes, newest):
            os.unlink(os.path.join(settings.path, archive.name))
            backups_folder.record_trigger(settings.path, archive.name, None)
            log.info("Backup %s removed by retention", archive.name)

    # -- reading and deleting ----------------------------------------------------
    def listing(self, server: ManagedProcess) -> list[dict]:
        """Every backup of ``server``, newest first, the one in progress (if any) with its progress."""
        settings = server.config.backups
        triggers = backups_folder.triggers(settings.path)
        entries = [{"name": archive.name, "size": archive.size, "created": archive.created_ms,
                    "trigger": triggers.get(archive.name, "manual"), "complete": True}
                   for archive in reversed(backups_folder.archives(settings.path))]
        with self._lock:
            running = self._running.get(server.name)
        if running is not None and all(entry["name"] != running.name for entry in entries):  # not yet linked
            entries.insert(0, {"name": running.name, "size": running.progress.done,
                               "created": round(running.started * 1000), "trigger": running.trigger,
                               "complete": False, "progress": running.progress.fraction})
        return entries

    def _wait_for_running_backup(self, server: ManagedProcess, timeout: float = 60.0) -> None:
        """A backup listed complete may still be running its ``after`` commands and retention: let it finish
        (new ones are refused while the restore holds the server), so the pre-restore backup can start."""
        with self._lock:
            self._lock.wait_for(lambda: server.name not in self._running, timeout)

    def path_of(self, server: ManagedProcess, name: str) -> str:
        """The complete backup ``name`` of ``server``; BackupRefused(404) for anything else."""
        path = os.path.join(server.config.backups.path, name)
        if not backups_folder.is_backup_name(name) or not os.path.isfile(path) or os.path.islink(path):
            raise BackupRefused(404, NO_SUCH_BACKUP)
        return path

    def delete(self, server: ManagedProcess, name: str) -> None:
        path = self.path_of(server, name)
        os.unlink(path)
        backups_folder.record_trigger(server.config.backups.path, name, None)

    def restore(self, server: ManagedProcess, name: str, limit: int) -> None:
        """Make a ``pre-restore`` backup, then swap the directory for backup ``name``'s content (``limit`` bytes
        at most). The archive stays open throughout: retention after the pre-restore backup may delete it."""
        from .restore import restore_tree  # with the unpacker and tarfile: on the first restore

        with open(self.path_of(server, name), "rb") as archive:
            with self._lock:
                if server.name in self._restoring:
                    raise BackupRefused(409, RESTORING)
                if not server.hold_stopped():
                    raise BackupRefused(409, MUST_BE_STOPPED)
                self._restoring.add(server.name)
            try:
                self._wait_for_running_backup(server)
                self.make(server, "pre-restore")
                restore_tree(archive, server.directory, exclusion(server.config.backups.exclude), self._journal,
                             limit, Owner.of(server.config.run_as), self._stop)
            except BackupRefused:
                raise
            except Exception as error:  # the old tree is still in place
                log.exception("Restoring %s into %s failed", name, server.name)
                raise BackupRefused(500, RESTORE_FAILED, detail=str(error) or type(error).__name__) from None
            finally:
                with self._lock:
                    self._restoring.discard(server.name)
                server.release()
        log.info("Backup %s restored into %s", name, server.name)

    # -- shutdown ----------------------------------------------------------------
    def cancel(self) -> None:
        """Abandon every backup in progress (their temporary archives are removed as they unwind)."""
        self._stop.set()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
