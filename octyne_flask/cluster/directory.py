"""What this node knows about the others: the announcements seen in Redis and the static nodes' reachability.

``GET /nodes`` answers from this memory; Redis is scanned every few seconds and
each static node is probed (``GET /`` with a short timeout) every few seconds
more, by the cluster's own threads, never by a request.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.request
from dataclasses import dataclass

import redis

from octyne_flask.auth.redis_auth import OutageLog
from octyne_flask.cluster.announce import EXPIRY_SECONDS, NODE_PREFIX, now_ms

log = logging.getLogger(__name__)

OFFLINE_KEPT_MS = 10 * 60 * 1000  # an expired announcement stays listed (offline) this long
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Node:
    """One line of ``GET /nodes``; ``last_seen`` is None for a static node never reached."""

    name: str
    url: str
    version: str
    online: bool
    last_seen: int | None
    is_self: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "url": self.url, "version": self.version, "online": self.online,
                "lastSeen": self.last_seen, "self": self.is_self}


class AnnouncedNodes:
    """The nodes announced in Redis, as of the last scan, plus those expired less than 10 minutes ago."""

    def __init__(self, client: redis.Redis):
        self._client = client
        self._seen: dict[str, tuple[dict, int]] = {}  # name -> (announcement, when last seen)
        self._live: frozenset[str] = frozenset()
        self._scanned_at = 0
        self._lock = threading.Lock()
        self._outage = OutageLog(log, "Reading the other nodes' announcements from Redis again")

    def scan(self) -> None:
        """Read every ``octyne-node:*`` key once; an unreachable Redis leaves the memory as it was."""
        try:
            keys = list(self._client.scan_iter(match=NODE_PREFIX + "*", count=1000))
            values = self._client.mget(keys) if keys else []
        except redis.RedisError as error:
            self._outage.failed(f"Cannot read the other nodes' announcements from Redis: {error}")
            return
        self._outage.succeeded()
        now = now_ms()
        announced = {}
        for key, value in zip(keys, values):
            document = _announcement(value)
            if document is not None:
                announced[key[len(NODE_PREFIX):]] = document
        with self._lock:
            for name, document in announced.items():
                self._seen[name] = (document, now)
            for name in [name for name, (_, seen) in self._seen.items() if now - seen > OFFLINE_KEPT_MS]:
                del self._seen[name]
            self._live = frozenset(announced)
            self._scanned_at = now

    def nodes(self) -> list[Node]:
        """Online: announced at the last scan, and that scan is younger than an announcement's expiry."""
        with self._lock:
            fresh = now_ms() - self._scanned_at <= EXPIRY_SECONDS * 1000
            return [Node(name, str(document.get("url") or ""), str(document.get("version") or ""),
                         fresh and name in self._live, seen)
                    for name, (document, seen) in self._seen.items()]


def _announcement(value: str | None) -> dict | None:
    try:
        document = json.loads(value) if value else None
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


class StaticNodes:
    """The ``nodes`` entries of the config, each probed with ``GET /`` now and then."""

    def __init__(self, entries: tuple):
        self._entries = entries
        self._state: dict[str, Node] = {name: Node(name, url, "", False, None) for name, url in entries}
        self._lock = threading.Lock()

    def probe(self) -> None:
        for name, url in self._entries:
            version = probe_version(url)
            with self._lock:
                last = self._state[name]
                if version is None:
                    self._state[name] = Node(name, url, last.version, False, last.last_seen)
                else:
                    self._state[name] = Node(name, url, version, True, now_ms())

    def nodes(self) -> list[Node]:
        with self._lock:
            return list(self._state.values())


def probe_version(url: str) -> str | None:
    """The ``version`` a daemon at ``url`` answers on ``GET /``, or None when it cannot be reached."""
    try:
        with urllib.request.urlopen(url + "/", timeout=PROBE_TIMEOUT_SECONDS) as response:
            document = json.loads(response.read(64 * 1024))
    except (OSError, ValueError, http.client.HTTPException):  # refused, timed out, not HTTP, not JSON
        return None
    if not isinstance(document, dict):
        return None
    return str(document.get("version") or "")
