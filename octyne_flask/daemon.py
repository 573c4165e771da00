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
from octyne_flask.auth.permissions import AllowEveryone
from octyne_flask.auth.throttle import LoginThrottle
from octyne_flask.auth.tickets import TicketStore
from octyne_flask.auth.tokens import MemoryAuthenticator
from octyne_flask.auth.users import UserStore
from octyne_flask.config import Config, ConfigError, load_config, parse_config
from octyne_flask.errors import INVALID_JSON, ApiError
from octyne_flask.files.archives.tasks import CompressionTasks
from octyne_flask.files.temp_journal import TemporaryJournal, journal_path
from octyne_flask.history import ConsoleHistory
from octyne_flask.supervisor import Supervisor, apps_lock_path

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


def _auth_settings(config: Config) -> tuple:
    return (config.redis.enabled, config.redis.url, config.redis.role)


class Daemon:
    """Everything one running octyne-flask owns."""

    def __init__(self, config_path: str, users_path: str):
        self.config_path = config_path
        self.users_path = users_path
        self.config = load_config(config_path)[0]
        self.action_log = ActionLog(self.config.logging)
        self.users = UserStore(users_path)
        self.authenticator = build_authenticator(self.config, self.users, require_redis=False)
        self.tickets = TicketStore()
        self.throttle = LoginThrottle()
        self.permissions = AllowEveryone()
        self.history = ConsoleHistory(self.config)
        self.supervisor = Supervisor(self.config, apps_lock_path(config_path), self.history)
        self.temporaries = TemporaryJournal(journal_path(config_path))  # swept at start after a crash
        self.compressions = CompressionTasks(self.temporaries)  # every /compress build, sync and async
        self._known_users = set(self.users.snapshot())
        self.users.on_change(self._close_consoles_of_removed_users)
        self._config_lock = threading.Lock()

    def start(self) -> None:
        """Remove what a crash left behind, begin watching users.json and start the enabled apps."""
        self.temporaries.sweep()
        self.users.start_watching()
        self.supervisor.start_enabled()

    def _close_consoles_of_removed_users(self, users: dict[str, str]) -> None:
        """A user deleted (through the API or from users.json) loses their open consoles at once.

        Called by the user store, one change at a time.
        """
        removed, self._known_users = self._known_users - set(users), set(users)
        if removed:
            self.supervisor.close_consoles_of(removed)

    def shutdown(self) -> None:
        """Stop every app (TERM, then KILL after the grace period) and every compression, release resources."""
        self.compressions.cancel()  # builds unwind (removing their temporary files) while the apps stop
        self.supervisor.shutdown()
        self.history.close()  # after the apps' last lines
        self.users.stop_watching()
        self.authenticator.close()
        if not self.compressions.wait(COMPRESSION_STOP_SECONDS):
            log.warning("A compression was still running at shutdown; its temporary file may remain")

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
            try:
                authenticator = self._authenticator_for(config)
            except AuthenticatorSwitchError as error:
                raise ApiError(500, CONFIG_READ_ERROR, detail=str(error)) from None
            self._apply(config, authenticator)

    def edit_config(self, text: str) -> Config:
        """Validate new config text, write it atomically, apply it (PATCH /config)."""
        with self._config_lock:
            try:
                config = parse_config(text)
            except ConfigError as error:
                log.warning("Refused config edit: %s", error)
                raise ApiError(400, INVALID_JSON, detail=str(error)) from None
            try:
                authenticator = self._authenticator_for(config)
            except AuthenticatorSwitchError as error:
                raise ApiError(400, INVALID_JSON, detail=str(error)) from None
            try:
                write_atomically(self.config_path, (text.strip() + "\n").encode("utf-8"))
            except OSError:
                if authenticator is not self.authenticator:
                    authenticator.close()  # never used: stop its mirroring
                raise
            self._apply(config, authenticator)
            return config

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

    def _apply(self, config: Config, authenticator) -> None:
        if authenticator is not self.authenticator:
            old, self.authenticator = self.authenticator, authenticator
            old.close()
        self.action_log.apply(config.logging)
        self.history.apply(config)
        self.supervisor.apply(config)
        self.config = config
