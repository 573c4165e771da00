"""Requests gunicorn refuses before the app runs are answered in JSON, with the status gunicorn chose."""

from __future__ import annotations

import json

import pytest

from tests.test_request_path import RawClient


@pytest.mark.parametrize(("request_head", "status"), [
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # over gunicorn's 4094-byte request line
    (b"GET /servers HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: y\r\n" * 120 + b"\r\n", 431),  # over 100 header fields
    (b"NOT A REQUEST\r\n\r\n", 400),
])
def test_a_request_gunicorn_refuses_gets_a_json_error(daemon, request_head, status):
    client = RawClient.tcp(daemon.port)
    client.sock.sendall(request_head)
    code, headers, body = client.answer()
    assert code == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error
    assert daemon.get("/servers").status_code == 200  # and the daemon goes on serving
