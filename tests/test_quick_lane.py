"""The quick lane (``lane.py``): one thread answers kept-alive TCP clients' status requests; nothing there waits on a
client, and every other request, and every connection it gives up, is served as before."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from octyne_flask.connections import StallBoundSocket
from octyne_flask.lane import IDLE_SECONDS, LaneSocket, QuickLane, is_quick, take_unsent
from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config, wait_until
from tests.test_request_path import RawClient, request_bytes
from tests.test_stalled_requests import drain

SERVERS_ANSWER = b'{"servers":{"alpha":0}}\n'


@pytest.mark.parametrize("head", [
    b"GET /servers HTTP/1.1\r\nHost: x\r\nAuthorization: t\r\n\r\n",
    b"GET /servers?extrainfo=true HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /server/alpha HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /server/a.b-c_d HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
])
def test_a_whole_status_request_alone_is_quick(head):
    assert is_quick(head)


@pytest.mark.parametrize("head", [
    b"GET /servers HTTP/1.1\r\nHost: x\r\n",  # not all of the head yet
    b"GET /servers HTTP/1.1\r\nHost: x\r\n\r\nGET /servers HTTP/1.1\r\n\r\n",  # pipelined
    b"GET /servers HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
    b"GET /servers HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\n\r\n",
    b"GET /servers HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /servers HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
    b"GET /server/alpha/files?path=/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /server/alpha%2Ffiles?path=/ HTTP/1.1\r\nHost: x\r\n\r\n",  # Flask would decode the slash
    b"GET /server/alpha/console HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /server/alpha HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /servers HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /servers HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET http://x/servers HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /server/ HTTP/1.1\r\n\r\n",
    b"GET /servers HTTP/1.1\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n",  # longer than the lane looks
    b"",
])
def test_anything_else_is_not(head):
    assert not is_quick(head)


def test_a_lane_socket_never_blocks_and_keeps_what_the_kernel_did_not_take():
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setblocking(False)
    ours.__class__ = LaneSocket
    data = os.urandom(4 * 1024 * 1024)
    try:
        ours.settimeout(60)  # gunicorn's calls change nothing in the lane
        ours.setblocking(True)
        assert ours.gettimeout() == 0.0
        ours.sendall(data[:1000])
        ours.sendall(data[1000:])  # far more than the buffers hold: returns at once
        unsent = take_unsent(ours)
        assert 0 < len(unsent) < len(data) and take_unsent(ours) == b""
        received = bytearray()
        reader = threading.Thread(target=lambda: received.extend(read_all(theirs, len(data))))
        reader.start()
        ours.__class__ = socket.socket
        ours.setblocking(True)
        ours.sendall(unsent)
        reader.join(10)
        assert bytes(received) == data
    finally:
        ours.close()
        theirs.close()


def test_a_lane_that_has_given_its_connections_back_takes_no_more():
    """A thread that answered just as the worker began to stop may offer its connection after the lane's last look
    at its set: the lane must refuse it (the thread goes on with it), or no one would ever serve or close it and the
    stop would wait out gunicorn's whole graceful timeout. The race is a few bytecodes wide, so the lane runs here
    alone, with a worker that is stopping."""
    returned = []
    lane = QuickLane(SimpleNamespace(alive=False, return_to_poller=returned.append))
    lane.run()  # the worker is stopping: the lane gives back what it holds (nothing) and ends
    ours, theirs = socket.socketpair()
    ours.__class__ = StallBoundSocket
    try:
        assert lane.adopt(SimpleNamespace(sock=ours)) is False
        assert type(ours) is StallBoundSocket and returned == []
    finally:
        ours.close()
        theirs.close()


def read_all(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("quick-lane")
    (base / "alpha").mkdir()
    (base / "alpha" / "notes.txt").write_text("hello\n")
    config = daemon_config(base, {"alpha": {"directory": str(base / "alpha"), "command": "sleep 100000",
                                            "enabled": False}})
    running = RunningDaemon(base, config, {"admin": ADMIN_HASH})
    yield running
    running.clean_up()


def test_status_requests_are_answered_right_in_turn_with_every_other_kind_on_the_same_connections(daemon):
    auth = {"Authorization": daemon.token}
    clients = [RawClient.tcp(daemon.port) for _ in range(12)]
    try:
        for _ in range(4):
            for client in clients:
                client.send("GET", "/servers", auth)
            for client in clients:
                assert client.answer()[:3:2] == (200, SERVERS_ANSWER)
            for client in clients:
                client.send("GET", "/server/alpha", auth)
                status, _, body = client.answer()
                assert status == 200 and json.loads(body)["status"] == 0
                client.send("GET", "/server/alpha/files?path=/", auth)
                status, _, body = client.answer()
                assert status == 200 and [entry["name"] for entry in json.loads(body)["contents"]] == ["notes.txt"]
                client.send("POST", "/server/alpha", auth, b"NONSENSE")
                assert client.answer()[0] == 400
                client.send("GET", "/server/nope", auth)
                assert client.answer()[:3:2] == (404, b'{"error":"This server does not exist!"}\n')
                client.send("GET", "/servers")
                assert client.answer()[0] == 401
                client.send("GET", "/servers?extrainfo=true", auth)
                assert json.loads(client.answer()[2]) == {"servers": {"alpha": {"status": 0, "toDelete": False}}}
        for client in clients:
            assert client.nothing_more()
    finally:
        for client in clients:
            client.close()


def test_pipelined_requests_and_heads_in_pieces_reaching_a_connection_in_the_lane_are_answered(daemon):
    auth = {"Authorization": daemon.token}
    client = RawClient.tcp(daemon.port)
    try:
        client.send("GET", "/servers", auth)
        assert client.answer()[2] == SERVERS_ANSWER
        burst = [("GET", "/servers", auth, b""), ("GET", "/server/nope", auth, b""), ("GET", "/servers", {}, b"")]
        client.sock.sendall(b"".join(request_bytes(*request) for request in burst))
        assert [client.answer()[0] for _ in burst] == [200, 404, 401]
        whole = request_bytes("GET", "/server/alpha", auth, b"")
        for cut in (5, len(whole) - 2):
            client.sock.sendall(whole[:cut])
            time.sleep(0.2)
            client.sock.sendall(whole[cut:])
            assert client.answer()[0] == 200
        assert client.nothing_more()
    finally:
        client.close()


def test_a_connection_idle_past_the_lane_goes_back_to_the_poller_and_is_answered_after(daemon):
    client = RawClient.tcp(daemon.port)
    try:
        for _ in range(2):
            client.send("GET", "/servers", {"Authorization": daemon.token})
            assert client.answer()[2] == SERVERS_ANSWER
            time.sleep(IDLE_SECONDS + 0.5)
        client.send("GET", "/servers", {"Authorization": daemon.token, "Connection": "close"})
        status, headers, _ = client.answer()
        assert status == 200 and headers["connection"] == "close"
        assert client.sock.recv(1) == b""
    finally:
        client.close()


def test_a_client_that_never_reads_its_status_answers_holds_up_no_one(daemon_factory, tmp_path):
    """Once the kernel holds no more of a client's answers, the lane leaves the rest to a pool thread, where the
    stall timeout ends the connection; meanwhile everyone else is answered."""
    (tmp_path / "app").mkdir()
    servers = {f"server-{index:03d}-" + "x" * 300: {"directory": str(tmp_path / "app"), "command": "sleep 100000",
                                                   "enabled": False} for index in range(800)}
    daemon = daemon_factory(servers, env={"OCTYNE_FLASK_STALL_TIMEOUT": "2"})
    auth = {"Authorization": daemon.token}
    answer_size = len(daemon.get("/servers").content)  # about 250 KB
    reader, stuck = RawClient.tcp(daemon.port), socket.socket()
    try:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window from the start
        stuck.connect(("127.0.0.1", daemon.port))
        stuck.settimeout(10)
        stuck.sendall(request_bytes("GET", "/server/server-000-" + "x" * 300, auth, b""))
        assert stuck.recv(65536).startswith(b"HTTP/1.1 200")  # its connection is in the lane now
        asked_for = 0
        started = time.monotonic()
        while time.monotonic() - started < 4:
            try:
                stuck.sendall(request_bytes("GET", "/servers", auth, b""))  # and never reads the answers
                asked_for += 1
            except OSError:
                break  # the daemon ended it already
            reader.send("GET", "/server/server-001-" + "x" * 300, auth)
            asked = time.monotonic()
            assert reader.answer()[0] == 200
            assert time.monotonic() - asked < 1
            time.sleep(0.05)
        time.sleep(3)
        got, closed = drain(stuck, time.monotonic() + 15)
        assert closed and got < asked_for * answer_size
    finally:
        reader.close()
        stuck.close()


def test_the_web_ui_port_keeps_serving_its_dashboard_to_kept_alive_clients(daemon):
    web = RawClient.tcp(json.loads(daemon.config_path.read_text())["webUI"]["port"])
    try:
        for _ in range(3):
            web.send("GET", "/servers", {"Authorization": daemon.token})
            assert web.answer()[:3:2] == (404, b'{"error":"Not Found"}')  # the dashboard's, not the API's
            web.send("GET", "/api/servers", {"Authorization": daemon.token})
            assert web.answer()[2] == SERVERS_ANSWER
    finally:
        web.close()


def test_connections_in_the_lane_do_not_hold_up_a_stop(daemon_factory, tmp_path):
    daemon = daemon_factory({"alpha": {"directory": str(tmp_path), "command": "sleep 100000", "enabled": False}})
    clients = [RawClient.tcp(daemon.port) for _ in range(20)]
    try:
        for client in clients:
            client.send("GET", "/servers", {"Authorization": daemon.token})
            assert client.answer()[2] == SERVERS_ANSWER
        asked = time.monotonic()
        daemon.stop()
        assert time.monotonic() - asked < 8
        for client in clients:
            assert client.sock.recv(1) == b""
    finally:
        for client in clients:
            client.close()


def test_status_requests_checked_in_a_hung_redis_wait_for_its_timeout_once_not_once_per_client(daemon_factory,
                                                                                               redis_server):
    """A token checked in Redis is a round trip: with Redis hung, answering status requests one after another in the
    lane would make the last of N clients wait N times Redis's 2 s timeout. They are answered side by side, as any
    other request."""
    daemon = daemon_factory(config={"redis": {"enabled": True, "url": redis_server.url, "role": "primary"}})
    auth = {"Authorization": daemon.token}
    clients = [RawClient.tcp(daemon.port) for _ in range(6)]
    try:
        for client in clients:
            client.send("GET", "/servers", auth)
            assert client.answer()[0] == 200
        time.sleep(0.1)
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        asked = time.monotonic()
        for client in clients:
            client.send("GET", "/servers", auth)
        for client in clients:
            assert client.answer()[0] == 500
        assert time.monotonic() - asked < 6  # 12 s one after another
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
        for client in clients:
            client.close()


def test_a_connection_whose_socket_was_closed_while_the_lane_answered_is_still_handed_over():
    """gunicorn closes the socket itself when the app fails after the head went out: the lane must still give the
    connection to the pool (which counts its slot free), although the closed file has left the epoll set."""
    handed = []
    worker = SimpleNamespace(alive=True, lane_may_answer=lambda: True,
                             serve_one=lambda conn: conn.sock.close() or False,
                             finish_in_pool=lambda conn, unsent, keep_alive: handed.append((conn, keep_alive)))
    lane = QuickLane(worker)
    ours, theirs = socket.socketpair()
    ours.__class__ = StallBoundSocket
    conn = SimpleNamespace(sock=ours, client="test", parser=None)
    try:
        assert lane.adopt(conn)
        theirs.sendall(b"GET /servers HTTP/1.1\r\nHost: x\r\n\r\n")
        runner = threading.Thread(target=lane.run)
        runner.start()
        wait_until(lambda: handed)
        worker.alive = False
        runner.join(5)
        assert handed == [(conn, False)] and not runner.is_alive()
    finally:
        ours.close()
        theirs.close()
