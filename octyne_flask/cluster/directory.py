"""What this node knows about the others: a node's line in ``GET /nodes``, and the static nodes' reachability.

``GET /nodes`` answers from memory; each static node is probed (``GET /`` with
a short timeout) every few seconds by the cluster's own threads, never by a
request. The nodes announced in Redis are ``announced.py``'s, loaded only with
Redis on.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from dataclasses import dataclass

PROBE_TIMEOUT_SECONDS = 2.0


def now_ms() -> int:
    return int(time.time() * 1000)


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
