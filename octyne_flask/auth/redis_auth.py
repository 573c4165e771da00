"""Users and tokens in Redis, so one login works on every node (api.md §10).

Keys are Octyne's own, so Go Octyne nodes and ours can share one Redis:
``octyne-user:<name>`` holds the password hash, ``octyne-token:<token>`` the
user name. The ``primary`` mirrors ``users.json`` into Redis (on every change,
and it checks every second that its users are still there, because a Redis
restarted without persistence comes back empty); a ``secondary`` only reads.

Redis being unreachable must not hang requests: short socket timeouts, no
retries, and every failure becomes ``ApiError(500, INTERNAL)``; the pool
reconnects on the next request once Redis is back.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from octyne_flask.auth.passwords import spend_like_a_check, verify_password
from octyne_flask.auth.tokens import is_well_formed, new_token
from octyne_flask.auth.users import UserStore
from octyne_flask.config import RedisConfig
from octyne_flask.errors import INTERNAL, ApiError

log = logging.getLogger(__name__)

USER_PREFIX = "octyne-user:"
TOKEN_PREFIX = "octyne-token:"
CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
CHECK_INTERVAL_SECONDS = 1.0

# One round trip per token check: the token's user, if that user still exists;
# a token of a deleted user is deleted on the way (Octyne does the same in two trips).
_USER_OF_TOKEN = """
local user = redis.call('GET', KEYS[1])
if not user then return false end
if redis.call('EXISTS', ARGV[1] .. user) == 1 then return user end
redis.call('DEL', KEYS[1])
return false
"""


class RedisUnavailable(RuntimeError):
    """Redis could not be reached or refused the command."""


def without_password(url: str) -> str:
    """The URL for messages and logs: a password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))


def connect(url: str) -> redis.Redis:
    """A pooled client that fails fast: short timeouts, no retries, text replies."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


class OutageLog:
    """Logs the first failure of a run of Redis failures (again only when the kind of problem changes),
    and the recovery after it, so an outage costs two log lines, not one a second."""

    def __init__(self, logger: logging.Logger, recovered: str):
        self._log = logger
        self._recovered = recovered
        self._problem: str | None = None

    def failed(self, message: str, problem: str = "unreachable") -> None:
        if self._problem != problem:
            self._log.error(message)
        self._problem = problem

    def succeeded(self) -> None:
        if self._problem is not None:
            self._log.info(self._recovered)
        self._problem = None


class RedisAuthenticator:
    """The authenticator of a node that shares users and tokens through Redis."""

    checks_tokens_locally = False  # each check is a round trip, up to COMMAND_TIMEOUT_SECONDS

    def __init__(self, settings: RedisConfig, users: UserStore, *, require_connection: bool = True):
        """Connect to Redis; unreachable raises RedisUnavailable unless ``require_connection`` is False
        (then requests answer 500 and the primary mirrors its users once Redis is up)."""
        self.manages_users = self.supports_login = settings.role == "primary"
        self.users = users
        self._redis = connect(settings.url)
        try:
            self._redis.ping()
        except redis.RedisError as error:
            where = without_password(settings.url)
            if require_connection:
                self._redis.close()
                raise RedisUnavailable(f"cannot reach Redis at {where}: {error}") from None
            log.error("Redis at %s is unreachable, logins fail until it is up: %s", where, error)
        self._user_of_token = self._redis.register_script(_USER_OF_TOKEN)
        self._stop = threading.Event()
        self._mirror_lock = threading.Lock()
        self._outage = OutageLog(log, "Redis is reachable again")
        # Set when a mirror could not be written: the next check rewrites everything, deletions included.
        self._mirror_pending = False
        if self.manages_users:
            # A users file that cannot be read must not empty the shared users:
            # mirroring starts with the first good read.
            if users.reload():
                self.mirror_users(users.snapshot())
            else:
                log.error("Not mirroring users into Redis until %s can be read", users.path)
            users.on_change(self.mirror_users)
            self._checker = threading.Thread(target=self._keep_users_present, name="redis-users", daemon=True)
            self._checker.start()

    # -- the authenticator interface ---------------------------------------
    def check_password(self, username: str, password: bytes) -> bool:
        """Whether the password matches the hash stored in Redis; an unknown user costs a check too."""
        stored = self._call(self._redis.get, USER_PREFIX + username)
        if stored is None:
            return spend_like_a_check(password)
        return verify_password(password, stored)

    def login(self, username: str, password: bytes) -> str | None:
        """A new token when the password matches the hash stored in Redis, else None."""
        if not self.check_password(username, password):
            return None
        token = new_token()
        self._call(self._redis.set, TOKEN_PREFIX + token, username)
        return token

    def user_of(self, token: str) -> str | None:
        """The token's user while that user exists in Redis; tokens of deleted users are dropped."""
        if not is_well_formed(token):
            return None
        return self._call(self._user_of_token, keys=[TOKEN_PREFIX + token], args=[USER_PREFIX])

    def user_exists(self, username: str) -> bool:
        return bool(self._call(self._redis.exists, USER_PREFIX + username))

    def account_names(self) -> list[str]:
        """The primary's users file; on a secondary, the users the primary keeps in Redis."""
        if self.manages_users:
            return self.users.names()
        keys = self._call(lambda: list(self._redis.scan_iter(match=USER_PREFIX + "*", count=1000)))
        return sorted(key[len(USER_PREFIX):] for key in keys)

    def logout(self, token: str) -> bool:
        """Delete a token; False when it was not there."""
        return bool(self._call(self._redis.delete, TOKEN_PREFIX + token))

    def close(self) -> None:
        """Stop mirroring and drop the connections; the shared users and tokens stay in Redis."""
        with self._mirror_lock:  # a mirror in flight finishes first; none starts afterwards
            self._stop.set()
        if self.manages_users:
            self.users.remove_listener(self.mirror_users)
        self._redis.close()

    # -- primary: users.json -> Redis --------------------------------------
    def mirror_users(self, users: dict[str, str]) -> None:
        """Make the ``octyne-user:*`` keys exactly ``users`` in one transaction."""
        with self._mirror_lock:
            if self._stop.is_set():
                return
            try:
                stale = [key for key in self._redis.scan_iter(match=USER_PREFIX + "*", count=1000)
                         if key[len(USER_PREFIX):] not in users]
                with self._redis.pipeline(transaction=True) as pipe:
                    if stale:
                        pipe.delete(*stale)
                    if users:
                        pipe.mset({USER_PREFIX + name: stored for name, stored in users.items()})
                    pipe.execute()
            except redis.RedisError as error:
                self._mirror_pending = True
                self._outage.failed(f"cannot mirror users into Redis (retrying every second): {error}")
                return
            self._mirror_pending = False
        self._outage.succeeded()

    def _users_present(self, users: dict[str, str]) -> bool:
        if not users:
            return True
        names = list(users)
        return self._redis.mget([USER_PREFIX + name for name in names]) == [users[name] for name in names]

    def _keep_users_present(self) -> None:
        """Every second: are our users (with their hashes) still in Redis? If not, write them again.

        After a failed mirror (Redis was down when a user changed) the whole set is rewritten,
        so a user deleted meanwhile does not survive in a Redis that kept its data.
        """
        while not self._stop.wait(CHECK_INTERVAL_SECONDS):
            users = self.users.snapshot()
            if self._mirror_pending:
                self.mirror_users(users)
                continue
            try:
                present = self._users_present(users)
            except redis.RedisError as error:
                self._outage.failed(f"cannot check the users in Redis: {error}")
                continue
            if present:
                self._outage.succeeded()
            else:
                log.warning("Users missing from Redis (was it restarted empty?); writing them again")
                self.mirror_users(users)

    # -- failures ------------------------------------------------------------
    def _call(self, command, *args, **kwargs):
        """Run one Redis command; an unreachable Redis answers the request with 500."""
        try:
            return command(*args, **kwargs)
        except redis.RedisError as error:
            log.error("Redis request failed: %s", error)
            raise ApiError(500, INTERNAL) from None
