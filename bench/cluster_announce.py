"""CPU cost of one node's cluster threads (announcing, scanning Redis) and the cost of answering GET /nodes.

Method: a real redis-server on a free loopback port with 50 other announcements
in it; one ``Cluster`` runs in this process (nothing else does) for ``seconds``
(default 30) and the process CPU time it used is divided by the wall time;
then ``Cluster.nodes()`` (what ``GET /nodes`` calls) is timed over 10 000 calls.
Printed as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from octyne_flask.cluster.announce import announcement, now_ms  # noqa: E402
from octyne_flask.cluster.cluster import Cluster  # noqa: E402
from octyne_flask.config import parse_config  # noqa: E402
from tests.services import RedisServer  # noqa: E402

OTHER_NODES = 50
CALLS = 10_000


def main(seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        redis_server = RedisServer(Path(directory))
        try:
            store = redis_server.client()
            for index in range(OTHER_NODES):
                name = f"other{index}"
                store.set(f"octyne-node:{name}", announcement(name, f"http://{name}:42069", now_ms()), ex=3600)
            config = {"redis": {"enabled": True, "url": redis_server.url, "role": "secondary"},
                      "node": {"name": "bench", "url": "http://bench:42069"}}
            cluster = Cluster(parse_config(json.dumps(config)))
            cluster.start()
            time.sleep(1)
            cpu, wall = time.process_time(), time.monotonic()
            time.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            started = time.perf_counter()
            for _ in range(CALLS):
                listed = cluster.nodes()
            per_call = (time.perf_counter() - started) / CALLS
            cluster.close()
        finally:
            redis_server.stop()
    return {"seconds": round(wall, 1), "cpu_percent": round(100 * cpu / wall, 4),
            "nodes_listed": len(listed), "nodes_call_us": round(per_call * 1e6, 1)}


if __name__ == "__main__":
    print(json.dumps(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30)))
