"""A request whose client stops mid-way (stops sending its upload, stops reading a download or the answers
to its pipelined requests) is ended after ``STALL_TIMEOUT`` seconds without progress instead of holding a
request thread for good; a console that stays quiet longer is left alone. The daemon runs with the timeout
shortened to 2 s (``OCTYNE_FLASK_STALL_TIMEOUT``)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import websocket

from tests.harness import wait_until
from tests.test_files_api import multipart_upload, upload_leftovers

STALL = 2
BIG = 64 * 1024 * 1024


@pytest.fixture
def stalling(daemon_factory, tmp_path):
    root = tmp_path / "alpha"
    root.mkdir()
    with open(root / "big.bin", "wb") as handle:
        handle.truncate(BIG)
    daemon = daemon_factory({"alpha": {"directory": str(root), "command": "sleep 100000", "enabled": True}},
                            env={"OCTYNE_FLASK_STALL_TIMEOUT": str(STALL)})
    daemon.root = root
    return daemon


def drain(sock: socket.socket, deadline: float) -> tuple[int, bool]:
    """(bytes read, whether the daemon closed the connection) reading until EOF or ``deadline``."""
    got = 0
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return got, True
        if not data:
            return got, True
        got += len(data)
    return got, False


def test_a_download_whose_client_stops_reading_is_ended(stalling):
    with socket.create_connection(("127.0.0.1", stalling.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET /server/alpha/file?path=/big.bin HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: {stalling.token}\r\n\r\n".encode())
        time.sleep(STALL + 3)  # the daemon's send makes no progress meanwhile
        got, closed = drain(sock, time.monotonic() + 10)
    assert closed and got < BIG  # cut off mid-file, not finished once we read again


def test_a_download_on_a_kept_alive_connection_whose_client_stops_reading_is_ended(stalling):
    """The stall bound holds for every request of a connection, not only its first (``StallBoundSocket``)."""
    with socket.create_connection(("127.0.0.1", stalling.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        auth = f"Host: x\r\nAuthorization: {stalling.token}\r\n\r\n"
        for _ in range(3):  # answered by the same thread, then after the linger from the poller
            sock.sendall(f"GET /servers HTTP/1.1\r\n{auth}".encode())
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.2)
        sock.sendall(f"GET /server/alpha/file?path=/big.bin HTTP/1.1\r\n{auth}".encode())
        time.sleep(STALL + 3)
        got, closed = drain(sock, time.monotonic() + 10)
    assert closed and got < BIG


def test_a_head_slower_than_the_stall_timeout_is_still_answered_within_the_head_deadline(stalling):
    """A request head has its own deadline (10 s); a shorter stall timeout does not cut it first."""
    with socket.create_connection(("127.0.0.1", stalling.port)) as sock:
        head = f"GET /servers HTTP/1.1\r\nHost: x\r\nAuthorization: {stalling.token}\r\n\r\n".encode()
        sock.sendall(head[:20])
        time.sleep(STALL + 1.5)
        sock.sendall(head[20:])
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_pipelined_requests_whose_answers_are_never_read_are_ended(stalling):
    many = stalling.root / "many"
    many.mkdir()
    for index in range(2000):  # a listing of about 150 KB: a few answers fill the sockets' buffers
        (many / f"region-file-with-a-long-name-{index:05d}.mca").touch()
    count = 400
    request = f"GET /server/alpha/files?path=/many HTTP/1.1\r\nHost: x\r\nAuthorization: {stalling.token}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", stalling.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        def send_all():
            try:
                sock.sendall(request * count)
            except OSError:
                pass  # the daemon closed the connection before taking them all

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        time.sleep(STALL + 3)  # the daemon, blocked on its answers, reads no more requests meanwhile
        got, closed = drain(sock, time.monotonic() + 15)
        sender.join(5)
    listing = len(stalling.get("/server/alpha/files?path=/many").content)
    assert closed
    assert got < count * listing // 2  # far fewer answers than requests: the rest were never served


def test_an_upload_whose_client_stops_sending_is_ended_and_leaves_nothing(stalling):
    body = multipart_upload("stalled.bin", os.urandom(4 * 1024 * 1024))
    head = (f"POST /server/alpha/file?path=/ HTTP/1.1\r\nHost: x\r\nAuthorization: {stalling.token}\r\n"
            f"Content-Type: multipart/form-data; boundary=pipelinedboundary\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", stalling.port)) as sock:
        sock.sendall(head + body[:1024 * 1024])
        sock.settimeout(STALL + 10)
        answer = sock.recv(65536)  # without the timeout this waits for the rest of the body for good
    assert answer.startswith(b"HTTP/1.1 400")
    wait_until(lambda: upload_leftovers(stalling.root) == [] and not (stalling.root / "stalled.bin").exists())


def test_a_console_quiet_for_longer_than_the_stall_timeout_stays_open(stalling):
    console = websocket.create_connection(f"ws://127.0.0.1:{stalling.port}/server/alpha/console",
                                          header=[f"Authorization: {stalling.token}"], timeout=10)
    try:
        time.sleep(STALL + 2)  # neither side sends anything
        console.send("echo still here")
        console.settimeout(5)
        console.recv()  # the console answers: still connected (anything at all would do)
        assert console.connected
    finally:
        console.close()
