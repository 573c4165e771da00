"""What one console client can do: cost bounded memory, stall no thread for good, break no frame."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import threading
import time

import psutil
import pytest
import websocket

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config, wait_until
from tests.services import self_signed_certificate

PY = sys.executable
BIG_PING = json.dumps({"type": "ping", "id": "p" * 900_000})
MEMORY_BOUND = 64 * 1024 * 1024

TICKER = """
import itertools, time
for i in itertools.count():
    print(f"tick {i}", flush=True)
    time.sleep(0.05)
"""


def worker_rss(daemon) -> int:
    (worker,) = psutil.Process(daemon.proc.pid).children()
    return worker.memory_info().rss


def open_console(daemon, server: str, timeout: float = 20) -> websocket.WebSocket:
    url = daemon.url.replace("http", "ws", 1) + f"/server/{server}/console"
    console = websocket.create_connection(url, subprotocols=["console-v2"], header=[f"Authorization: {daemon.token}"],
                                          timeout=timeout, sslopt={"ca_certs": getattr(daemon, "ca_certs", None)})
    console.recv(), console.recv()  # settings, scrollback
    return console


class Observer(threading.Thread):
    """A console client that reads everything and notes when each output message arrived."""

    def __init__(self, console: websocket.WebSocket):
        super().__init__(daemon=True)
        self.console = console
        self.arrivals: list[float] = []

    def run(self) -> None:
        try:
            while (message := self.console.recv()) and json.loads(message)["type"] == "output":
                self.arrivals.append(time.monotonic())
        except (websocket.WebSocketException, OSError):
            pass

    def received_between(self, start: float, end: float) -> bool:
        return any(start <= arrival <= end for arrival in self.arrivals)


@pytest.fixture(params=["plain", "tls"])
def ticker_daemon(request, daemon_factory, tmp_path, monkeypatch):
    """A daemon running an app that prints a line every 50 ms, over plain HTTP or HTTPS."""
    (tmp_path / "ticker.py").write_text(textwrap.dedent(TICKER))
    config = {"console": {"idleTimeout": 600}}  # the observer never pings
    if request.param == "tls":
        cert, key = self_signed_certificate(tmp_path)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        config["https"] = {"enabled": True, "cert": str(cert), "key": str(key)}
    daemon = daemon_factory(servers={"ticker": {"directory": str(tmp_path), "command": f"{PY} ticker.py"}},
                            config=config, wait=False)
    if request.param == "tls":
        daemon.url = daemon.url.replace("http://", "https://")
        daemon.ca_certs = str(cert)
    daemon.wait_until_ready()
    wait_until(lambda: daemon.get("/server/ticker").json()["status"] == 1)
    return daemon


def test_a_client_that_never_reads_and_sends_big_pings_is_cut_off_with_memory_bounded(ticker_daemon):
    daemon = ticker_daemon
    observer = Observer(open_console(daemon, "ticker"))
    observer.start()
    baseline = worker_rss(daemon)
    attacker = open_console(daemon, "ticker", timeout=60)
    cut_off = threading.Event()

    def send_pings_without_reading():
        try:
            while True:
                attacker.send(BIG_PING)
        except (websocket.WebSocketException, OSError):
            cut_off.set()

    attack_started = time.monotonic()
    threading.Thread(target=send_pings_without_reading, daemon=True).start()
    peak = baseline
    while not cut_off.is_set() and time.monotonic() - attack_started < 45:
        peak = max(peak, worker_rss(daemon))
        time.sleep(0.1)
    attack_ended = time.monotonic()
    assert peak - baseline < MEMORY_BOUND
    assert cut_off.is_set()
    time.sleep(1)
    for second in range(int(attack_ended - attack_started)):  # the other console never stopped receiving
        assert observer.received_between(attack_started + second, attack_started + second + 1.5)
    assert observer.received_between(attack_ended, time.monotonic())
    observer.console.close()
    attacker.close()


FLOOD = """
import sys, time
for i in range(300):
    sys.stdout.write(f"{i:04d}" + "x" * 60000 + "\\n")
sys.stdout.flush()
time.sleep(600)
"""


def test_protocol_pongs_never_land_inside_an_output_frame(tmp_path):
    """simple-websocket answers protocol pings itself; those answers must wait for the end of the frame being sent."""
    (tmp_path / "flood.py").write_text(textwrap.dedent(FLOOD))
    servers = {"flood": {"directory": str(tmp_path), "command": f"{PY} flood.py", "enabled": False}}
    config = daemon_config(tmp_path, servers, console={"maxLagBytes": 256 * 1024 * 1024})
    daemon = RunningDaemon(tmp_path, config, {"admin": ADMIN_HASH})
    try:
        console = websocket.create_connection(  # a slow reader: the daemon's sends often wait for room
            daemon.ws_url("/server/flood/console"), subprotocols=["console-v2"], timeout=20,
            header=[f"Authorization: {daemon.token}"], sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        console.recv(), console.recv()
        assert daemon.post("/server/flood", data="START").json() == {"success": True}
        lines: list[str] = []
        while len(lines) < 300:
            for _ in range(20):
                console.ping("p" * 100)
            console.send(json.dumps({"type": "ping", "id": "1"}))
            message = json.loads(console.recv())  # a pong inside a frame breaks its UTF-8 or its JSON
            if message["type"] == "output":
                lines.extend(line for line in message["data"].split("\n") if line[:4].isdigit())
        assert lines == [f"{i:04d}" + "x" * 60000 for i in range(300)]
        console.close()
    finally:
        daemon.stop()
