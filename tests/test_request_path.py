"""The lean request path answers exactly as before: framing, headers, keep-alive and pipelining, TCP vs Unix socket.

The worker answers a client's back-to-back requests on one thread and sends
the head of an answer together with its body (``connections.py``,
``onesend.py``); these tests read the raw bytes on the wire.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config

LINGER_PASSED = 0.3  # longer than the worker's linger: the connection has gone back to the poller


class RawClient:
    """HTTP/1.1 over a plain socket (TCP or Unix), reading answers one by one off the stream."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.settimeout(10)
        self.buffer = b""

    @classmethod
    def tcp(cls, port: int) -> RawClient:
        return cls(socket.create_connection(("127.0.0.1", port)))

    @classmethod
    def unix(cls, path: str) -> RawClient:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        return cls(sock)

    def send(self, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> None:
        self.sock.sendall(request_bytes(method, path, headers or {}, body))

    def answer(self, head_only: bool = False) -> tuple[int, dict, bytes]:
        """The next answer: status, headers (lower-case names), body (read to its Content-Length)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"{name} twice"
            headers[name.lower()] = value.strip()
        assert "transfer-encoding" not in headers
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def nothing_more(self) -> bool:
        """No stray bytes after the last answer (checked after a short wait)."""
        self.sock.settimeout(0.3)
        try:
            extra = self.sock.recv(65536)
        except TimeoutError:
            extra = b""
        finally:
            self.sock.settimeout(10)
        return self.buffer + extra == b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the daemon")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One daemon for the module with a server whose folder holds a small and a large file."""
    base = tmp_path_factory.mktemp("request-path")
    (base / "alpha").mkdir()
    (base / "alpha" / "small.txt").write_bytes(b"small file\n")
    (base / "alpha" / "large.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    config = daemon_config(base, {"alpha": {"directory": str(base / "alpha"), "command": "sleep 100000",
                                            "enabled": False}})
    running = RunningDaemon(base, config, {"admin": ADMIN_HASH})
    yield running
    running.clean_up()


@pytest.fixture
def client(daemon):
    connection = RawClient.tcp(daemon.port)
    yield connection
    connection.close()


def test_a_small_json_answer_carries_its_exact_length_type_and_keep_alive(daemon, client):
    client.send("GET", "/servers", {"Authorization": daemon.token})
    status, headers, body = client.answer()
    assert status == 200 and body == b'{"servers":{"alpha":0}}\n'
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body))
    assert headers["connection"] == "keep-alive"
    assert client.nothing_more()


def test_pipelined_requests_are_answered_in_order_on_one_connection(daemon, client):
    auth = {"Authorization": daemon.token}
    requests_in_order = [("GET", "/servers", auth, b""), ("GET", "/server/nope", auth, b""),
                         ("POST", "/server/alpha", auth, b"NONSENSE"), ("GET", "/", {}, b""),
                         ("GET", "/servers", {}, b"")]
    client.sock.sendall(b"".join(request_bytes(*request) for request in requests_in_order))
    answers = [client.answer() for _ in requests_in_order]
    assert [status for status, _, _ in answers] == [200, 404, 400, 200, 401]
    assert answers[0][2] == b'{"servers":{"alpha":0}}\n'
    assert answers[1][2] == b'{"error":"This server does not exist!"}\n'
    assert b'"version":"1.4.2"' in answers[3][2]
    assert client.nothing_more()


def test_a_kept_alive_connection_is_answered_after_a_pause_longer_than_the_linger(daemon, client):
    for _ in range(3):
        client.send("GET", "/servers", {"Authorization": daemon.token})
        assert client.answer()[0] == 200
        time.sleep(LINGER_PASSED)
    client.send("GET", "/servers", {"Authorization": daemon.token, "Connection": "close"})
    status, headers, _ = client.answer()
    assert status == 200 and headers["connection"] == "close"
    assert client.sock.recv(1) == b""


def test_answers_without_a_body_send_their_head_alone_and_the_next_answer_follows(daemon, client):
    client.send("HEAD", "/servers", {"Authorization": daemon.token})
    status, headers, body = client.answer(head_only=True)
    assert status == 200 and headers["content-length"] == str(len(b'{"servers":{"alpha":0}}\n'))
    client.send("OPTIONS", "/servers", {"Origin": "https://panel.example"})  # a CORS preflight: 204
    status, headers, body = client.answer()
    assert status == 204 and body == b"" and "content-length" not in headers
    assert headers["access-control-allow-origin"] == "*"
    client.send("GET", "/servers", {"Authorization": daemon.token, "Origin": "https://panel.example"})
    status, headers, body = client.answer()
    assert status == 200 and body == b'{"servers":{"alpha":0}}\n'
    assert headers["access-control-allow-methods"] == "GET, POST, PUT, HEAD, OPTIONS, PATCH, DELETE"
    assert client.nothing_more()


def test_bodies_the_endpoint_never_reads_are_drained_up_to_a_bound(daemon, client):
    """``GET /servers`` reads no body. gunicorn drains a small one (sized or chunked) and parses the next request;
    more than 64 KiB left unread ends the connection after the answer."""
    auth = {"Authorization": daemon.token}
    client.send("GET", "/servers", auth, b"x" * 20_000)
    assert client.answer()[:3:2] == (200, b'{"servers":{"alpha":0}}\n')
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (b"a" * 5000, b"b" * 7000)) + b"0\r\n\r\n"
    head = request_bytes("GET", "/servers", {**auth, "Transfer-Encoding": "chunked"}, b"")
    client.sock.sendall(head + chunked + request_bytes("GET", "/server/alpha", auth, b""))
    assert client.answer()[:3:2] == (200, b'{"servers":{"alpha":0}}\n')
    status, _, body = client.answer()
    assert status == 200 and json.loads(body)["status"] == 0
    client.send("GET", "/servers", auth, b"x" * 200_000)
    assert client.answer()[0] == 200
    with pytest.raises(ConnectionError):
        client.answer()


def test_login_with_a_cookie_sets_it_in_one_header(daemon, client):
    client.send("GET", "/login?cookie=true", {"Username": "admin", "Password": ADMIN_PASSWORD})
    status, headers, body = client.answer()
    assert status == 200 and body == b'{"success":true}\n'
    assert headers["set-cookie"].startswith("X-Authentication=")
    assert headers["set-cookie"].endswith("; Max-Age=8035200; HttpOnly; SameSite=Strict")
    assert headers["content-length"] == str(len(body))


@pytest.mark.parametrize("name, size", [("small.txt", 11), ("large.bin", 1024 * 1024)])
def test_downloads_small_and_large_arrive_whole_and_the_connection_goes_on(daemon, client, name, size):
    for _ in range(2):
        client.send("GET", f"/server/alpha/file?path=/{name}", {"Authorization": daemon.token})
        status, headers, body = client.answer()
        assert status == 200 and len(body) == size == int(headers["content-length"])
        assert body == (daemon.directory / "alpha" / name).read_bytes()
    client.send("GET", "/server/alpha/file?path=/large.bin", {"Authorization": daemon.token,
                                                             "Range": "bytes=100000-299999"})
    status, headers, body = client.answer()
    assert status == 206 and body == (daemon.directory / "alpha" / "large.bin").read_bytes()[100000:300000]
    assert client.nothing_more()


def test_kept_alive_tcp_and_unix_connections_taking_turns_stay_remote_and_local(daemon):
    tcp, local = RawClient.tcp(daemon.port), RawClient.unix(daemon.socket_path)
    try:
        for _ in range(5):
            tcp.send("GET", "/accounts")
            local.send("GET", "/accounts")
            assert tcp.answer()[0] == 401
            assert local.answer()[0] == 200
        tcp.send("GET", "/accounts", {"Authorization": daemon.token})
        assert tcp.answer()[:3:2] == (200, b'["admin"]\n')
    finally:
        tcp.close()
        local.close()


def test_the_web_ui_port_routes_every_request_of_a_kept_alive_connection(daemon):
    web = RawClient.tcp(json.loads(daemon.config_path.read_text())["webUI"]["port"])
    try:
        for _ in range(3):
            web.send("GET", "/api/servers", {"Authorization": daemon.token})
            assert web.answer()[2] == b'{"servers":{"alpha":0}}\n'
            web.send("GET", "/", {"Authorization": daemon.token})
            status, headers, _ = web.answer()
            assert status == 200 and headers["content-type"].startswith("text/html")
    finally:
        web.close()


def request_bytes(method: str, path: str, headers: dict, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
