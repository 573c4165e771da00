"""The nodes announced in Redis, as of the last scan (``GET /nodes``); used only with Redis on."""

from __future__ import annotations

import json
import logging
import threading

import redis

from octyne_flask.auth.redis_auth import OutageLog
from octyne_flask.cluster.announce import EXPIRY_SECONDS, NODE_PREFIX
from octyne_flask.cluster.directory import Node, now_ms

log = logging.getLogger(__name__)

OFFLINE_KEPT_MS = 10 * 60 * 1000  # an expired announcement stays listed (offline) this long


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
