"""Slow and idle TCP clients cannot lock others out: the Unix socket always answers, TCP recovers, consoles fit."""

from __future__ import annotations

import json
import socket
import sys
import textwrap
import threading
import time

import requests
import websocket

from tests.harness import ADMIN_PASSWORD, UnixHTTPConnection, wait_until

SLOW_CLIENTS = 700
CONSOLES = 200
PY = sys.executable


def open_connections(daemon, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", daemon.port))
        connection.setblocking(False)
        connections.append(connection)
    return connections


def is_closed_by_daemon(connection: socket.socket) -> bool:
    try:
        return connection.recv(1 << 16) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def local_get(daemon, path: str, timeout: float) -> int:
    connection = UnixHTTPConnection(daemon.socket_path, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def assert_socket_answers_within_2s(daemon) -> None:
    started = time.monotonic()
    assert local_get(daemon, "/servers", timeout=2) == 200
    assert time.monotonic() - started < 2


class Trickler(threading.Thread):
    """Sends one more byte of a request head that never ends to every open connection, once a second."""

    def __init__(self, connections: list[socket.socket]):
        super().__init__(daemon=True)
        self.connections = connections
        self.stopped = threading.Event()
        for connection in connections:
            connection.send(b"GET /servers HTTP/1.1\r\nHost: x\r\nX-Slow: ")

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            for connection in self.connections:
                try:
                    connection.send(b"a")
                except OSError:
                    pass  # cut off (or its buffer is full because it is still waiting to be accepted)


def test_slow_request_heads_leave_the_socket_answering_and_are_cut_off(daemon):
    slow = open_connections(daemon, SLOW_CLIENTS)
    trickler = Trickler(slow)
    trickler.start()
    try:
        time.sleep(3)  # every thread and connection slot the daemon gives TCP is taken by now
        assert_socket_answers_within_2s(daemon)
        # every slow client is cut off by the request-head deadline, although it keeps sending
        wait_until(lambda: all(is_closed_by_daemon(connection) for connection in slow), timeout=45, interval=0.5)
        started = time.monotonic()
        login = requests.get(daemon.url + "/login", headers={"Username": "admin", "Password": ADMIN_PASSWORD},
                             timeout=5)
        assert login.status_code == 200 and len(login.json()["token"]) == 128
        assert time.monotonic() - started < 5
    finally:
        trickler.stopped.set()
        for connection in slow:
            connection.close()


def test_idle_connections_leave_the_socket_answering_and_make_room_for_new_clients(daemon):
    idle = open_connections(daemon, SLOW_CLIENTS)
    try:
        time.sleep(2)
        assert_socket_answers_within_2s(daemon)
        # idle connections are closed under pressure, long before their keep-alive time runs out
        started = time.monotonic()
        assert requests.get(daemon.url + "/servers", headers={"Authorization": daemon.token},
                            timeout=10).status_code == 200
        assert time.monotonic() - started < 10
        assert any(is_closed_by_daemon(connection) for connection in idle)
    finally:
        for connection in idle:
            connection.close()


def test_clients_that_never_close_after_the_answer_do_not_hold_up_others(daemon):
    """gthread waits up to 2 s for such a client's FIN when it closes the connection; never in its main loop."""
    lingering = []
    try:
        for _ in range(30):
            connection = socket.create_connection(("127.0.0.1", daemon.port))
            connection.sendall(b"GET / HTTP/1.0\r\n\r\n")  # answered with "Connection: close"
            lingering.append(connection)
        time.sleep(0.2)
        assert_socket_answers_within_2s(daemon)
    finally:
        for connection in lingering:
            connection.close()


ECHO = """
import sys
for line in sys.stdin:
    print("echo " + line.strip(), flush=True)
"""


def test_200_consoles_through_one_peer_connect_and_receive_output(daemon_factory, tmp_path):
    (tmp_path / "echo.py").write_text(textwrap.dedent(ECHO))
    daemon = daemon_factory(servers={"echo": {"directory": str(tmp_path), "command": f"{PY} echo.py"}})
    wait_until(lambda: daemon.get("/server/echo").json()["status"] == 1)
    consoles = []
    try:
        for _ in range(CONSOLES):  # all from 127.0.0.1, like every client behind nginx
            console = websocket.create_connection(daemon.ws_url("/server/echo/console"), subprotocols=["console-v2"],
                                                  header=[f"Authorization: {daemon.token}"], timeout=20)
            assert json.loads(console.recv())["type"] == "settings"
            console.recv()  # the scrollback
            consoles.append(console)
        assert_socket_answers_within_2s(daemon)
        consoles[0].send(json.dumps({"type": "input", "data": "hello"}))
        for console in consoles:
            message = json.loads(console.recv())
            assert (message["type"], message["data"]) == ("output", "echo hello")
    finally:
        for console in consoles:
            console.close()
