"""HTTPS with a real self-signed certificate: TLS on the API and web-UI ports, plain HTTP on the Unix socket."""

import json
import os
import socket
import ssl
import time

import pytest
import requests
import websocket

from tests.harness import RunningDaemon, daemon_config, wait_until
from tests.services import ECHO_APP, is_listening, self_signed_certificate
from tests.test_files_api import multipart_upload, read_answers, upload_leftovers, upload_request



@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_daemon(daemon_factory, certificate, monkeypatch, tmp_path):
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the harness's own requests trust our CA too
    daemon = daemon_factory(servers={"echo": {"directory": str(tmp_path), "command": ECHO_APP}},
                            config={"https": {"enabled": True, "cert": str(cert), "key": str(key)}}, wait=False)
    daemon.url = daemon.url.replace("http://", "https://")
    daemon.wait_until_ready()
    daemon.wait_for_running("echo")
    daemon.web_ui_port = json.loads(daemon.config_path.read_text())["webUI"]["port"]
    return daemon


def test_api_and_web_ui_speak_tls(tls_daemon, certificate):
    cert, _ = certificate
    assert tls_daemon.get("/servers").json() == {"servers": {"echo": 1}}
    web_ui = f"https://127.0.0.1:{tls_daemon.web_ui_port}"
    response = requests.get(web_ui + "/api/servers", headers={"Authorization": tls_daemon.token}, timeout=10)
    assert response.json() == {"servers": {"echo": 1}}
    assert requests.get(web_ui + "/", timeout=10).status_code == 200
    login = requests.get(web_ui + "/api/login", headers={"Username": "admin", "Password": "admin-password-for-tests"},
                         timeout=10)
    assert login.status_code == 200 and len(login.json()["token"]) == 128


def test_console_websocket_over_tls(tls_daemon, certificate):
    cert, _ = certificate
    url = tls_daemon.url.replace("https://", "wss://") + "/server/echo/console"
    connection = websocket.create_connection(url, header={"Authorization": tls_daemon.token}, timeout=10,
                                             subprotocols=["console-v2"], sslopt={"ca_certs": str(cert)})
    try:
        connection.send(json.dumps({"type": "input", "data": "over tls"}))
        deadline = time.monotonic() + 10
        seen = ""
        while "echo:over tls" not in seen and time.monotonic() < deadline:
            seen += connection.recv()
        assert "echo:over tls" in seen
    finally:
        connection.close()


@pytest.mark.parametrize("port_of", [lambda d: d.port, lambda d: d.web_ui_port], ids=["api", "web-ui"])
def test_plain_http_to_a_tls_port_gets_no_api_answer(tls_daemon, port_of):
    port = port_of(tls_daemon)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/servers", headers={"Authorization": tls_daemon.token}, timeout=5)
    # Still serving TLS afterwards.
    assert tls_daemon.get("/").status_code == 200


def test_unix_socket_stays_plain_http(tls_daemon):
    status, _, body = tls_daemon.local("GET", "/servers")
    assert (status, json.loads(body)) == (200, {"servers": {"echo": 1}})


def _start_failing(tmp_path, cert: str, key: str) -> tuple[RunningDaemon, dict]:
    config = daemon_config(tmp_path, https={"enabled": True, "cert": cert, "key": key})
    return RunningDaemon(tmp_path, config, users={}, wait=False), config


@pytest.mark.parametrize("problem", ["missing cert", "missing key", "mismatched pair", "not a certificate"])
def test_unusable_certificate_fails_fast_with_a_clear_message(problem, tmp_path, certificate):
    cert, key = certificate
    other_cert, other_key = self_signed_certificate(tmp_path, "other") if problem == "mismatched pair" else (cert, key)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cert_path, key_path = {
        "missing cert": (str(tmp_path / "absent.crt"), str(key)),
        "missing key": (str(cert), str(tmp_path / "absent.key")),
        "mismatched pair": (str(cert), str(other_key)),
        "not a certificate": (str(garbage), str(key)),
    }[problem]
    started = time.monotonic()
    daemon, config = _start_failing(tmp_path, cert_path, key_path)
    try:
        assert daemon.proc.wait(10) == 1
    finally:
        daemon.stop()
    assert time.monotonic() - started < 10
    output = daemon.stdout_path.read_text()
    assert "HTTPS" in output and (cert_path in output or key_path in output)
    assert "Traceback" not in output
    assert not is_listening(config["port"]) and not is_listening(config["webUI"]["port"])
    with pytest.raises(OSError):
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(config["unixSocket"]["location"])
        finally:
            probe.close()


def test_tls_handshake_uses_our_certificate(tls_daemon, certificate):
    cert, _ = certificate
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.getpeercert()["subject"] == ((("commonName", "localhost"),),)


def test_a_request_pipelined_behind_one_that_fills_a_read_in_one_tls_record_is_answered(tls_daemon, certificate):
    """The first request is exactly one socket read long, so the next one stays decrypted in the TLS layer,
    which the kernel no longer reports as readable: the worker must look there, not wait on the socket."""
    cert, _ = certificate
    second = f"GET /servers HTTP/1.1\r\nHost: x\r\nAuthorization: {tls_daemon.token}\r\n\r\n".encode()
    first = second[:-2] + b"X-Pad: "
    first += b"p" * (8192 - len(first) - 4) + b"\r\n\r\n"  # gunicorn reads a request head 8 KiB at a time
    assert len(first) == 8192
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(first + second)  # one TLS record (under 16 KiB)
            received = b""
            while received.count(b"HTTP/1.1 200 ") < 2:
                chunk = tls.recv(65536)  # times out (5 s) if the second request is left waiting
                assert chunk, "closed by the daemon"
                received += chunk


def test_an_upload_over_tls_is_saved_whole(tls_daemon, tmp_path):
    """The upload's body is read from the TLS connection itself."""
    payload = os.urandom(1_500_000)
    response = tls_daemon.post("/server/echo/file?path=/", files={"upload": ("over-tls.bin", payload)})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert (tmp_path / "over-tls.bin").read_bytes() == payload
    assert tls_daemon.get("/server/echo/files?path=/").status_code == 200  # the connection pool reuses it


def test_uploads_pipelined_over_tls_end_where_the_next_request_starts(tls_daemon, certificate, tmp_path):
    """Requests of one TLS record less, exactly and one byte more (16 KiB), and past the 1 MiB mark, back to back
    on one connection: each body read from the TLS connection stops at its end, the rest still decrypted there."""
    cert, _ = certificate
    payloads, pipelined = [], b""
    for number, total in enumerate((16384 - 1, 16384, 16384 + 1, (1 << 20) + 1)):
        overhead = len(upload_request(tls_daemon, multipart_upload(f"{number}.bin", b""), server="echo"))
        payloads.append(os.urandom(total - overhead))
        pipelined += upload_request(tls_daemon, multipart_upload(f"{number}.bin", payloads[-1]), server="echo")
    listing = f"GET /server/echo/files?path=/ HTTP/1.1\r\nHost: x\r\nAuthorization: {tls_daemon.token}\r\n\r\n"
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(pipelined + listing.encode())
            answers = read_answers(tls, 5)
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"200"] * 5, answers
    assert [(tmp_path / f"{number}.bin").read_bytes() for number in range(4)] == payloads


def test_a_tls_upload_cut_off_halfway_leaves_nothing(tls_daemon, certificate, tmp_path):
    cert, _ = certificate
    body = multipart_upload("cut.bin", os.urandom(1_500_000))
    request = upload_request(tls_daemon, body, server="echo")
    context = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request[:-500_000])
            wait_until(lambda: upload_leftovers(tmp_path), 5)  # the file is being written
    # closed without a TLS close_notify
    wait_until(lambda: not upload_leftovers(tmp_path), 10)
    assert not (tmp_path / "cut.bin").exists()
    assert tls_daemon.get("/server/echo/files?path=/").status_code == 200
