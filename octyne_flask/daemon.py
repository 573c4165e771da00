"""The daemon: the one object that owns config, accounts, tokens, the action log and the apps.

Blueprints reach it through ``current_daemon()``; nothing else keeps state.
Config changes (PATCH /config, reload, SIGHUP) all go through ``apply`` under
one lock, so a change is either applied whole or refused whole.
"""

from __future__ import annotations

import logging
import threading

from octyne_flask.actionlog import ActionLog
from octyne_flask.atomicfile import write_atomically
from octyne_flask.auth.access import AccessSnapshot
from octyne_flask.auth.access_store import AccessStore, SnapshotSource, default_access_path
from octyne_flask.auth.accounts import Accounts
from octyne_flask.auth.throttle import LoginThrottle
from octyne_flask.auth.tickets import TicketStore
from octyne_flask.auth.tokens import MemoryAuthenticator
from octyne_flask.auth.users import UserStore
from octyne_flask.backups.service import Backups
from octyne_flask.cluster.cluster import Cluster, cluster_settings
from octyne_flask.config import Config, ConfigError, load_config, parse_config
from octyne_flask.errors import INVALID_JSON, ApiError
from octyne_flask.files.archives.tasks import CompressionTasks
from octyne_flask.files.temp_journal import TemporaryJournal, journal_path
from octyne_flask.history import ConsoleHistory
from octyne_flask.schedules.board import ScheduleBoard
from octyne_flask.sftp.service import SftpService, SftpUnavailable
from octyne_flask.supervisor import Supervisor, apps_guard, cgroup_tree, instance_name

log = logging.getLogger(__name__)

CONFIG_READ_ERROR = "An error occurred while reading config!"
COMPRESSION_STOP_SECONDS = 10  # a cancelled build gives up within one 1 MiB block


class AuthenticatorSwitchError(Exception):
    """The new config asks for an authenticator that cannot be built (e.g. Redis unreachable)."""


def build_authenticator(config: Config, users: UserStore, *, require_redis: bool = True):
    """The authenticator the config asks for (memory, or Redis when enabled).

    At start Redis may still be down (the apps must start anyway; logins
    answer 500 until it is up); a live switch requires a reachable Redis.
    """
    if config.redis.enabled:
        from octyne_flask.auth.redis_auth import RedisAuthenticator

        return RedisAuthenticator(config.redis, users, require_connection=require_redis)
    return MemoryAuthenticator(users)


def build_access_source(config: Config, store: AccessStore) -> tuple[SnapshotSource, object | None]:
    """The access rules this node enforces, and the Redis link to close when the settings change.

    Standalone: its own access.json. A Redis primary mirrors that file into Redis;
    a secondary enforces what Redis holds.
    """
    if not config.redis.enabled:
        return store, None
    from octyne_flask.auth.redis_access import AccessFollower, AccessMirror

    if config.redis.role == "primary":
        return store, AccessMirror(store, config.redis.url)
    follower = AccessFollower(config.redis.url)
    return follower, follower


CONSOLE_PERMISSIONS = frozenset({"console.view", "console.write"})


def _auth_settings(config: Config) -> tuple:
    return (config.redis.enabled, config.redis.url, config.redis.role)


class Daemon:
    """Everything one running octyne-flask owns."""

    def __init__(self, config_path: str, users_path: str, access_path: str | None = None):
        self.config_path = config_path
        self.users_path = users_path
        self.config = load_config(config_path)[0]
        self.action_log = ActionLog(self.config.logging)
        self.users = UserStore(users_path)
        self.authenticator = build_authenticator(self.config, self.users, require_redis=False)
        self.tickets = TicketStore()
        self.throttle = LoginThrottle()
        self.access_store = AccessStore(access_path or default_access_path(users_path))
        self.accounts = Accounts(self.users, self.access_store)
        # The rules in force (``access.snapshot``): access.json, or Redis on a secondary.
        self.access, self._access_link = build_access_source(self.config, self.access_store)
        self.access.on_change(self._close_revoked_consoles)
        self.history = ConsoleHistory(self.config)
        self.supervisor = Supervisor(self.config, apps_guard(config_path), cgroup_tree(instance_name(config_path)),
                                     report=self.action_log.event, history=self.history)
        self.temporaries = TemporaryJournal(journal_path(config_path))  # swept at start after a crash
        self.stopping = threading.Event()  # set at shutdown: a decompression in progress gives up
        self.compressions = CompressionTasks(self.temporaries)  # every /compress build, sync and async
        self.backups = Backups(self.temporaries)
        self.schedules = ScheduleBoard(self.config, self.supervisor, self._scheduled_backup, self._log_schedule_run)
        self.sftp = SftpService(self)
        self._known_users = set(self.users.snapshot())
        self.users.on_change(self._close_consoles_of_removed_users)
        self.cluster = Cluster(self.config)  # this node's announcement and GET /nodes
        self._config_lock = threading.Lock()

    def start(self) -> None:
        """Remove what a crash left behind, begin watching users.json and access.json, start the enabled apps,
        SFTP, the schedules, and announce this node."""
        self.temporaries.sweep()
        self.users.start_watching()
        self.access_store.start_watching()
        self.supervisor.start_enabled()
        self.schedules.start()
        self.cluster.start()
        threading.Thread(target=self._serve_sftp, name="sftp-start", daemon=True).start()

    def _serve_sftp(self) -> None:
        """SFTP is served by the process that owns the apps: once no earlier worker's apps run any more."""
        try:
            if not self.supervisor.wait_ready():
                return  # shutting down
        except OSError as error:
            log.error("SFTP is not served: %s", error)
            return
        with self._config_lock:
            try:
                self.sftp.begin(self.config.sftp)
            except SftpUnavailable as error:
                log.error("SFTP is not served: %s", error)

    def _close_consoles_of_removed_users(self, users: dict[str, str]) -> None:
        """A user deleted (through the API or from users.json) loses their open consoles at once.

        Called by the user store, one change at a time.
        """
        removed, self._known_users = self._known_users - set(users), set(users)
        if removed:
            self.supervisor.close_consoles_of(removed)

    def _close_revoked_consoles(self, old: AccessSnapshot, new: AccessSnapshot) -> None:
        """A console whose owner lost ``console.view`` or ``console.write`` on its server closes at once.

        The client reconnects (or is refused) under the new rules, read-only if that is what is left.
        """
        for name, server in self.supervisor.items():
            def lost(subscriber, name=name) -> bool:
                was, now = old.permissions(subscriber.owner, name), new.permissions(subscriber.owner, name)
                return bool(CONSOLE_PERMISSIONS & (was - now))

            server.console.close_where(lost)

    def shutdown(self) -> None:
        """Stop SFTP, the schedules, every app (TERM, then KILL after the grace period) and every compression,
        release resources."""
        self.stopping.set()
        self.sftp.stop()
        self.schedules.close()
        self.compressions.cancel()  # builds unwind (removing their temporary files) while the apps stop
        self.backups.cancel()
        self.cluster.close()  # the other nodes see this one gone at once
        self.supervisor.shutdown()
        self.history.close()  # after the apps' last lines
        self.users.stop_watching()
        self.access_store.stop_watching()
        if self._access_link is not None:
            self._access_link.close()
        self.authenticator.close()
        if not self.compressions.wait(COMPRESSION_STOP_SECONDS) or not self.backups.wait(COMPRESSION_STOP_SECONDS):
            log.warning("A compression was still running at shutdown; its temporary file may remain")

    def _log_schedule_run(self, server: str, schedule: str, last: dict) -> None:
        self.action_log.record("schedule.ran", "", "", server=server, schedule=schedule,
                               outcome=last["outcome"], message=last["message"])

    def _scheduled_backup(self, server) -> str:
        return self.backups.make(server, "schedule")

    # -- config ----------------------------------------------------------
    def read_config_bytes(self) -> bytes:
        with open(self.config_path, "rb") as handle:
            return handle.read()

    def reload_config(self) -> None:
        """Re-read config.json and apply it (GET /config/reload, SIGHUP)."""
        with self._config_lock:
            try:
                config, _ = load_config(self.config_path)
            except ConfigError as error:
                log.error("Config reload failed: %s", error)
                raise ApiError(500, CONFIG_READ_ERROR) from None
            authenticator, sftp = self._prepare(config, lambda detail: ApiError(500, CONFIG_READ_ERROR, detail=detail))
            self._apply(config, authenticator, sftp)

    def edit_config(self, text: str) -> Config:
        """Validate new config text, write it atomically, apply it (PATCH /config)."""
        with self._config_lock:
            try:
                config = parse_config(text)
            except ConfigError as error:
                log.warning("Refused config edit: %s", error)
                raise ApiError(400, INVALID_JSON, detail=str(error)) from None
            authenticator, sftp = self._prepare(config, lambda detail: ApiError(400, INVALID_JSON, detail=detail))
            try:
                write_atomically(self.config_path, (text.strip() + "\n").encode("utf-8"))
            except OSError:
                self._abandon(authenticator, sftp)
                raise
            self._apply(config, authenticator, sftp)
            return config

    def _prepare(self, config: Config, refused):
        """``(authenticator, SFTP plan)`` for ``config``: what can fail is done before anything is written or
        changed, so a change that cannot work (Redis unreachable, SFTP port taken) is ``refused(detail)`` whole."""
        try:
            authenticator = self._authenticator_for(config)
        except AuthenticatorSwitchError as error:
            raise refused(str(error)) from None
        try:
            return authenticator, self.sftp.plan(config.sftp)
        except SftpUnavailable as error:
            log.error("Cannot serve the new SFTP settings: %s", error)
            self._abandon(authenticator, None)
            raise refused(str(error)) from None

    def _abandon(self, authenticator, sftp) -> None:
        """Release what ``_prepare`` built for a change that is not applied after all."""
        if authenticator is not self.authenticator:
            authenticator.close()  # never used: stop its mirroring
        if sftp is not None:
            sftp.abandon()

    def _authenticator_for(self, config: Config):
        """A new authenticator if the auth settings changed, else the current one.

        Built before anything is written, so a switch that cannot work (Redis
        unreachable, bad role) refuses the whole config change.
        """
        if _auth_settings(config) == _auth_settings(self.config):
            return self.authenticator
        try:
            return build_authenticator(config, self.users)
        except Exception as error:
            log.error("Cannot switch authenticator: %s", error)
            raise AuthenticatorSwitchError(f"cannot use the new Redis settings: {error}") from None

    def _apply(self, config: Config, authenticator, sftp) -> None:
        if authenticator is not self.authenticator:
            old, self.authenticator = self.authenticator, authenticator
            old.close()
            self._switch_access_source(config)
        self.action_log.apply(config.logging)
        self.history.apply(config)
        self.supervisor.apply(config)
        self.schedules.apply(config)
        if cluster_settings(config) != self.cluster.settings:
            self.cluster.close()
            self.cluster = Cluster(config)
            self.cluster.start()
        self.config = config
        self.sftp.switch(sftp)

    def _switch_access_source(self, config: Config) -> None:
        """Redis switched on, off or to another role: enforce the rules of the new source from now on."""
        if self._access_link is not None:
            self._access_link.close()
        old = self.access
        old.remove_listener(self._close_revoked_consoles)
        self.access, self._access_link = build_access_source(config, self.access_store)
        self.access.on_change(self._close_revoked_consoles)
        self._close_revoked_consoles(old.snapshot, self.access.snapshot)
