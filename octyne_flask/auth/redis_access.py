"""The access rules shared through Redis (key ``octyne-access``), so every node enforces the primary's.

The primary writes its access document there as JSON (``null`` while access
control is off) on every change, and checks every second that Redis still holds
it (a Redis restarted without persistence comes back empty). A secondary reads
the key about twice a second and swaps in what it finds, so a change reaches
every node within a second or so. Go Octyne nodes never read the key.

A secondary that has seen rules keeps enforcing them when the key vanishes
(Redis restarted empty) until the primary writes them again: a lost key must
not turn access control off. A key that was never there means off, as on a
cluster whose primary does not know access control.
"""

from __future__ import annotations

import json
import logging
import threading

import redis

from octyne_flask.auth.access import ACCESS_OFF, AccessSnapshot, validate_document
from octyne_flask.auth.access_store import AccessStore, SnapshotSource
from octyne_flask.auth.redis_auth import OutageLog, connect

log = logging.getLogger(__name__)

ACCESS_KEY = "octyne-access"
CHECK_INTERVAL_SECONDS = 1.0
FOLLOW_INTERVAL_SECONDS = 0.5


RECOVERED = "Redis is reachable again; access rules are in step"


class AccessMirror:
    """Primary: keeps ``octyne-access`` equal to this node's access document."""

    def __init__(self, store: AccessStore, url: str):
        self._store = store
        self._redis = connect(url)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._outages = OutageLog(log, RECOVERED)
        store.on_change(self._changed)
        threading.Thread(target=self._keep_present, name="redis-access", daemon=True).start()

    def _changed(self, old: AccessSnapshot, new: AccessSnapshot) -> None:
        self._write_if_stale(force=True)

    def _write_if_stale(self, force: bool = False) -> None:
        """Write the store's current document (never an older one, whoever calls first)."""
        with self._lock:
            if self._stop.is_set():
                return
            text = self._store.snapshot.serialized()
            try:
                if force or self._redis.get(ACCESS_KEY) != text:
                    self._redis.set(ACCESS_KEY, text)
            except redis.RedisError as error:
                self._outages.failed(f"Cannot mirror the access rules into Redis (retrying every second): {error}")
                return
        self._outages.succeeded()

    def _keep_present(self) -> None:
        self._write_if_stale()
        while not self._stop.wait(CHECK_INTERVAL_SECONDS):
            self._write_if_stale()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
        self._store.remove_listener(self._changed)
        self._redis.close()


class AccessFollower(SnapshotSource):
    """Secondary: the access rules in force are the ones the primary keeps in Redis."""

    def __init__(self, url: str):
        super().__init__()
        self._redis = connect(url)
        self._seen: str | None = None
        self._stop = threading.Event()
        self._outages = OutageLog(log, RECOVERED)
        self.follow_once()
        threading.Thread(target=self._follow, name="redis-access", daemon=True).start()

    def follow_once(self) -> None:
        try:
            text = self._redis.get(ACCESS_KEY)
        except redis.RedisError as error:
            self._outages.failed(f"Cannot read the access rules from Redis, keeping the last ones: {error}")
            return
        self._outages.succeeded()
        if text == self._seen:
            return
        if text is None:
            if self.snapshot.enabled:
                log.warning("The access rules are gone from Redis; enforcing the last ones until the primary "
                            "writes them again")
            self._seen = None
            return
        self._seen = text
        try:
            document = json.loads(text)
            snapshot = ACCESS_OFF if document is None else AccessSnapshot(validate_document(document))
        except ValueError as error:
            log.error("Unusable access rules in Redis, keeping the last ones: %s", error)
            return
        self._swap(snapshot)

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_INTERVAL_SECONDS):
            self.follow_once()

    def close(self) -> None:
        self._stop.set()
        self._redis.close()
