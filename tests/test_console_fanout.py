"""Fan-out under a flood: many readers get everything in order, a stalled reader is cut off, nothing else suffers."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import threading
import time

import websocket

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config

PY = sys.executable
LINES = 50_000
CLIENTS = 20
PACE_SECONDS = 2.0

FLOOD = f"""
import sys, time
started = time.monotonic()
out = sys.stdout
for chunk in range(50):
    out.write("".join(f"{{i:06d}} " + "f" * 93 + "\\n" for i in range(chunk * 1000, chunk * 1000 + 1000)))
    out.flush()
    time.sleep({PACE_SECONDS} / 50)
print(f"elapsed {{time.monotonic() - started:.3f}}", flush=True)
"""


def expected_flood() -> list[str]:
    return [f"{i:06d} " + "f" * 93 for i in range(LINES)]


def reader(daemon, results: list, index: int, ready: threading.Barrier) -> None:
    ws = websocket.create_connection(daemon.ws_url("/server/flood/console"), subprotocols=["console-v2"],
                                     header=[f"Authorization: {daemon.token}"], timeout=60,
                                     skip_utf8_validation=True)  # pure-Python validation would be the bottleneck
    ws.recv(), ws.recv()  # settings, scrollback
    ready.wait()
    lines: list[str] = []
    while not lines or lines[-1] != "[Octyne] Server flood has stopped.":
        message = json.loads(ws.recv())
        lines.extend(message["data"].split("\n"))
    results[index] = lines
    ws.close()


def stalled_client(daemon) -> socket.socket:
    """A console-v2 client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", daemon.port))
    sock.sendall((f"GET /server/flood/console HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: console-v2\r\nAuthorization: {daemon.token}\r\n\r\n").encode())
    return sock


def test_a_flood_reaches_every_client_whole_while_a_stalled_client_is_cut_off(tmp_path):
    (tmp_path / "flood.py").write_text(textwrap.dedent(FLOOD))
    servers = {"flood": {"directory": str(tmp_path), "command": f"{PY} flood.py", "enabled": False}}
    config = daemon_config(tmp_path, servers, console={"maxLagBytes": 1024 * 1024})
    daemon = RunningDaemon(tmp_path, config, {"admin": ADMIN_HASH})
    try:
        stalled = stalled_client(daemon)
        results: list = [None] * CLIENTS
        ready = threading.Barrier(CLIENTS + 1)
        threads = [threading.Thread(target=reader, args=(daemon, results, i, ready)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        ready.wait(timeout=30)
        assert daemon.post("/server/flood", data="START").json() == {"success": True}
        time.sleep(PACE_SECONDS / 2)
        served_at = time.monotonic()
        assert daemon.get("/servers").json() == {"servers": {"flood": 1}}  # the daemon keeps serving
        assert time.monotonic() - served_at < 2
        for thread in threads:
            thread.join(60)
        first = results[0]
        assert first is not None and all(result == first for result in results)
        assert [line for line in first if line[:6].isdigit()] == expected_flood()
        elapsed = float(next(line for line in first if line.startswith("elapsed ")).split()[1])
        assert elapsed < PACE_SECONDS * 1.5  # the app was never held up by its readers
        # the stalled client was cut off: once it reads, its stream ends
        stalled.settimeout(10)
        while stalled.recv(1 << 20):
            pass
        assert daemon.get("/server/flood").json()["status"] == 0
    finally:
        daemon.stop()
