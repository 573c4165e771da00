"""The daemon behind the real nginx, configured with deploy/nginx.conf as shipped (only the ports substituted)."""

import hashlib
import json
import os
import time
import urllib.parse

import pytest
import requests
import websocket
from requests.adapters import HTTPAdapter

from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config
from tests.services import ECHO_APP, Nginx

NOT_AUTHENTICATED = {"error": "You are not authenticated to access this resource!"}
UPLOAD_BYTES = 200 * 1024 * 1024
BLOCK = os.urandom(1024 * 1024)


class FromAddress(HTTPAdapter):
    """Connect from a given loopback address, so nginx sees a distinct client IP."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_at(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", FromAddress(address))
    return session


def start_behind_nginx(directory, **config_extra):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app").mkdir(exist_ok=True)
    servers = {"echo": {"directory": str(directory / "app"), "command": ECHO_APP}}
    config = daemon_config(directory, servers, **config_extra)
    daemon = RunningDaemon(directory, config, {"admin": ADMIN_HASH})
    try:
        daemon.wait_for_running("echo")
        proxy = Nginx(directory / "nginx", config["port"], config["webUI"]["port"])
    except Exception:
        daemon.stop()
        raise
    return daemon, proxy


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    daemon, proxy = start_behind_nginx(tmp_path_factory.mktemp("nginx-stack"))
    yield daemon, proxy
    proxy.stop()
    daemon.stop()


def api(proxy) -> str:
    return proxy.url + "/octyne/api"


def log_in(session: requests.Session, proxy) -> str:
    response = session.get(api(proxy) + "/login", headers={"Username": "admin", "Password": ADMIN_PASSWORD}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_login_servers_and_dashboard_through_nginx(stack):
    daemon, proxy = stack
    token = log_in(requests.Session(), proxy)
    response = requests.get(api(proxy) + "/servers", headers={"Authorization": token}, timeout=10)
    assert (response.status_code, response.json()) == (200, {"servers": {"echo": 1}})
    assert response.headers["Content-Type"] == "application/json"
    response = requests.get(api(proxy) + "/servers", timeout=10)
    assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)
    dashboard = requests.get(proxy.url + "/octyne/", timeout=10)
    assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()


def test_console_websocket_through_nginx(stack):
    daemon, proxy = stack
    token = log_in(requests.Session(), proxy)
    url = proxy.url.replace("http://", "ws://") + "/octyne/api/server/echo/console"
    connection = websocket.create_connection(url, header={"Authorization": token}, subprotocols=["console-v2"],
                                             timeout=10)
    try:
        assert connection.subprotocol == "console-v2"
        assert json.loads(connection.recv()) == {"type": "settings", "readOnly": False}
        connection.send(json.dumps({"type": "ping", "id": "through-nginx"}))
        connection.send(json.dumps({"type": "input", "data": "hello via nginx"}))
        messages, deadline = [], time.monotonic() + 10
        while time.monotonic() < deadline:
            messages.append(json.loads(connection.recv()))
            echoed = any("echo:hello via nginx" in m.get("data", "") for m in messages)
            if echoed and {"type": "pong", "id": "through-nginx"} in messages:
                break
        assert {"type": "pong", "id": "through-nginx"} in messages
        assert any("echo:hello via nginx" in m.get("data", "") for m in messages)
    finally:
        connection.close()


class MultipartUpload:
    """A multipart body of ``size`` bytes generated on the fly, with a known length (like a browser sends)."""

    BOUNDARY = "octyne-test-boundary-7d1f"

    def __init__(self, filename: str, size: int):
        self.head = (f"--{self.BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        self.tail = f"\r\n--{self.BOUNDARY}--\r\n".encode()
        self.size = size
        self.sent = 0
        self.digest = hashlib.sha256()
        self.pending = self.head

    def __len__(self):
        return len(self.head) + self.size + len(self.tail)

    def read(self, amount: int = -1) -> bytes:
        while len(self.pending) < max(amount, 1) and (self.sent < self.size or self.tail):
            if self.sent < self.size:
                block = BLOCK[:min(len(BLOCK), self.size - self.sent)]
                self.sent += len(block)
                self.digest.update(block)
                self.pending += block
            else:
                self.pending, self.tail = self.pending + self.tail, b""
        if amount < 0:
            amount = len(self.pending)
        chunk, self.pending = self.pending[:amount], self.pending[amount:]
        return chunk

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.BOUNDARY}"


def test_200_megabyte_upload_and_download_through_nginx(stack):
    daemon, proxy = stack
    token = log_in(requests.Session(), proxy)
    body = MultipartUpload("big.bin", UPLOAD_BYTES)
    response = requests.post(api(proxy) + "/server/echo/file", params={"path": "/"}, data=body,
                             headers={"Authorization": token, "Content-Type": body.content_type}, timeout=120)
    assert (response.status_code, response.json()) == (200, {"success": True})
    stored = daemon.directory / "app" / "big.bin"
    assert stored.stat().st_size == UPLOAD_BYTES

    downloaded = hashlib.sha256()
    size = 0
    with requests.get(api(proxy) + "/server/echo/file", params={"path": "/big.bin"},
                      headers={"Authorization": token}, stream=True, timeout=120) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == UPLOAD_BYTES
        for chunk in response.iter_content(1024 * 1024):
            downloaded.update(chunk)
            size += len(chunk)
    assert size == UPLOAD_BYTES
    assert downloaded.hexdigest() == body.digest.hexdigest()
    stored.unlink()


def download_with_ticket(session: requests.Session, proxy, ticket: str, headers=None) -> requests.Response:
    return session.get(api(proxy) + "/server/echo/file?path=/note.txt&ticket=" + urllib.parse.quote(ticket, safe=""),
                       headers=headers or {}, timeout=10)


def test_ticket_is_bound_to_the_client_ip_nginx_forwards(stack):
    daemon, proxy = stack
    (daemon.directory / "app" / "note.txt").write_text("ticketed")
    alice, mallory = client_at("127.0.0.2"), client_at("127.0.0.3")
    token = log_in(alice, proxy)

    def new_ticket() -> str:
        return alice.get(api(proxy) + "/ott", headers={"Authorization": token}, timeout=10).json()["ticket"]

    # Another client (even one claiming alice's address) cannot use alice's ticket (which is then spent) ...
    for headers in ({}, {"X-Forwarded-For": "127.0.0.2"}):
        response = download_with_ticket(mallory, proxy, new_ticket(), headers)
        assert response.status_code == 401, headers
    # ... and alice can, once.
    ticket = new_ticket()
    response = download_with_ticket(alice, proxy, ticket)
    assert (response.status_code, response.text) == (200, "ticketed")
    assert download_with_ticket(alice, proxy, ticket).status_code == 401

    downloads = [e for e in daemon.action_log() if e.get("action") == "server.files.download"]
    assert downloads[-1]["ip"] == "127.0.0.2" and downloads[-1]["user"] == "admin"
    logins = [e for e in daemon.action_log() if e.get("action") == "auth.login"]
    assert "127.0.0.2" in [e["ip"] for e in logins]


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path):
    daemon, proxy = start_behind_nginx(tmp_path / "untrusted", trustedProxies=[])
    try:
        log_in(client_at("127.0.0.2"), proxy)
        # Straight to the daemon, a forged header from an untrusted peer changes nothing either.
        requests.get(daemon.url + "/login", headers={"Username": "admin", "Password": ADMIN_PASSWORD,
                                                     "X-Forwarded-For": "203.0.113.9"}, timeout=10)
        ips = [e["ip"] for e in daemon.action_log() if e.get("action") == "auth.login"]
        assert ips[-2:] == ["127.0.0.1", "127.0.0.1"]
    finally:
        proxy.stop()
        daemon.stop()
