"""This node's announcement: ``octyne-node:<name>`` with a 15 s expiry, refreshed every 5 s.

A node only ever writes or deletes the key while it holds its own value, so a
second node started with the same name cannot take over a live node's entry
(it waits until that key expires, and refuses to start when it can tell at once).
Redis outages are survived: every write is retried on the next tick.
"""

from __future__ import annotations

import json
import logging
import time

import redis

from octyne_flask.auth.redis_auth import OutageLog, connect, without_password
from octyne_flask.cluster.directory import now_ms
from octyne_flask.version import API_VERSION

log = logging.getLogger(__name__)

NODE_PREFIX = "octyne-node:"
EXPIRY_SECONDS = 15
REFRESH_SECONDS = 5
# A live node refreshes every 5 s, so its key never has less than 10 s left.
LIVE_TTL_FLOOR_MS = (EXPIRY_SECONDS - REFRESH_SECONDS) * 1000 - 500

# Write the announcement only when the key is absent or already ours.
_REFRESH_IF_OURS = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""
_DELETE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class NodeNameTaken(RuntimeError):
    """Another live node announces the same ``node.name``."""


def announcement(name: str, url: str, started: int) -> str:
    return json.dumps({"name": name, "url": url, "version": API_VERSION, "started": started},
                      separators=(",", ":"))


def ensure_name_free(url: str, name: str, patience: float = REFRESH_SECONDS + 1) -> None:
    """At start: raise NodeNameTaken when a live node announces ``name``.

    A key left by a crashed predecessor is not refreshed: its time to live only
    falls, so it is told apart from a live node's within one refresh interval.
    An unreachable Redis is no reason to refuse to start (the announcer waits for it).
    """
    client = connect(url)
    try:
        deadline = time.monotonic() + patience
        previous = None
        while True:
            remaining = client.pttl(NODE_PREFIX + name)
            if remaining < 0:  # no key (or no expiry: not an announcement of ours)
                return
            if previous is not None and remaining > previous:
                current = client.get(NODE_PREFIX + name) or "{}"
                raise NodeNameTaken(f"node.name {name!r} is already used by a live node "
                                    f"({_url_of(current)}); give every node its own node.name")
            if remaining < LIVE_TTL_FLOOR_MS or time.monotonic() > deadline:
                return  # not refreshed in time: the previous holder is gone
            previous = remaining
            time.sleep(0.25)
    except redis.RedisError as error:
        log.warning("Cannot check that node.name %r is free (Redis at %s: %s); announcing when Redis is up",
                    name, without_password(url), error)
    finally:
        client.close()


def _url_of(text: str) -> str:
    try:
        return json.loads(text).get("url") or "no URL advertised"
    except (ValueError, AttributeError):
        return "unreadable announcement"


class Announcer:
    """Keeps ``octyne-node:<name>`` alive while the node runs; deletes it on a clean close."""

    def __init__(self, client: redis.Redis, name: str, url: str):
        self.name = name
        self._key = NODE_PREFIX + name
        self._value = announcement(name, url, now_ms())
        self._refresh = client.register_script(_REFRESH_IF_OURS)
        self._delete = client.register_script(_DELETE_IF_OURS)
        self._outage = OutageLog(log, f"This node is announced in Redis again as {name!r}")

    def refresh(self) -> bool:
        """Write the announcement again; False (logged once) when Redis is down or the name is taken."""
        try:
            written = self._refresh(keys=[self._key], args=[self._value, EXPIRY_SECONDS])
        except redis.RedisError as error:
            self._outage.failed(f"Cannot announce this node in Redis (retrying): {error}")
            return False
        if not written:
            self._outage.failed(f"Another live node announces node.name {self.name!r}; "
                                "this node is not announced until that key expires", problem="name taken")
            return False
        self._outage.succeeded()
        return True

    def withdraw(self) -> None:
        """Remove the announcement (clean shutdown), if it is still ours."""
        try:
            self._delete(keys=[self._key], args=[self._value])
        except redis.RedisError as error:
            log.warning("Cannot remove this node's announcement (it expires in %d s): %s", EXPIRY_SECONDS, error)
