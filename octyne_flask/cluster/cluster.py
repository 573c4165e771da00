"""The cluster view of one node: its announcement, the nodes it knows, and the threads that keep them fresh.

The Redis side (the client, the announcement, the announced nodes) is imported only with Redis on.
"""

from __future__ import annotations

import threading
import time

from octyne_flask.cluster.directory import Node, StaticNodes, now_ms
from octyne_flask.config import Config
from octyne_flask.version import API_VERSION

SCAN_SECONDS = 2
PROBE_SECONDS = 10


def cluster_settings(config: Config) -> tuple:
    """What the cluster view depends on: a change of any of it rebuilds the view."""
    redis = config.redis.url if config.redis.enabled else None
    return (redis, config.node)


class Cluster:
    """Announces this node (with Redis on) and answers ``GET /nodes`` from memory."""

    def __init__(self, config: Config):
        self.settings = cluster_settings(config)
        self._node = config.node
        self._stop = threading.Event()
        self._static = StaticNodes(config.node.static)
        self._client = self._announcer = self._announced = None
        if config.redis.enabled:
            from octyne_flask.auth.redis_auth import connect
            from octyne_flask.cluster.announce import Announcer
            from octyne_flask.cluster.announced import AnnouncedNodes

            self._client = connect(config.redis.url)
            self._announcer = Announcer(self._client, config.node.name, config.node.url)
            self._announced = AnnouncedNodes(self._client)
        self._threads = [threading.Thread(target=self._keep_announced, name="cluster-announce", daemon=True),
                         threading.Thread(target=self._keep_probing, name="cluster-probe", daemon=True)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def nodes(self) -> list[Node]:
        """Every node, this one first (always online), then the others by name."""
        me = Node(self._node.name, self._node.url, API_VERSION, True, now_ms(), is_self=True)
        others = {node.name: node for node in self._static.nodes()}
        if self._announced is not None:
            others.update((node.name, node) for node in self._announced.nodes())  # announced beats static
        others.pop(me.name, None)
        return [me, *sorted(others.values(), key=lambda node: node.name)]

    def close(self) -> None:
        """Stop the threads and withdraw the announcement (a clean shutdown or a settings change)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(5)
        if self._announcer is not None:
            self._announcer.withdraw()
            self._client.close()

    def _keep_announced(self) -> None:
        """Refresh every 5 s (every second while it fails) and scan the announcements every 2 s."""
        if self._announcer is None:
            return
        from octyne_flask.cluster.announce import REFRESH_SECONDS

        next_refresh = next_scan = 0.0
        while True:
            clock = time.monotonic()
            if clock >= next_refresh:
                next_refresh = clock + (REFRESH_SECONDS if self._announcer.refresh() else 1)
            if clock >= next_scan:
                self._announced.scan()
                next_scan = clock + SCAN_SECONDS
            if self._stop.wait(1):
                return

    def _keep_probing(self) -> None:
        if not self._node.static:
            return
        while True:
            self._static.probe()
            if self._stop.wait(PROBE_SECONDS):
                return
