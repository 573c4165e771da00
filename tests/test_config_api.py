"""GET/PATCH /config and GET /config/reload (api.md §4), through the Flask test client."""

import json
import os
import stat

import pytest


def config_bytes(app):
    with open(app.extensions["octyne"].config_path, "rb") as handle:
        return handle.read()


def test_get_config_returns_the_file_byte_for_byte(app, client, admin_headers):
    path = app.extensions["octyne"].config_path
    original = json.loads(config_bytes(app))
    text = "{\n  // a comment\n" + json.dumps(original)[1:-1] + ",\n}\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    response = client.get("/config", headers=admin_headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.data == text.encode()


@pytest.mark.parametrize("body, detail_fragment", [
    (b"", "empty"),
    (b"garbage", "syntax error"),
    (b"{\"port\": 1,, }", "syntax error"),
    (b"[1, 2]", "JSON object"),
    (b'{"port": "x"}', "'port'"),
    (b'{"servers": []}', "'servers'"),
    (b'{"servers": {"a": {"directory": "/x"}}}', "'servers.a.command'"),
    (b"\xff\xfe", "UTF-8"),
    (b'{"stopGracePeriod": 1e999}', "'stopGracePeriod' must be a number from 0 to"),
    (b'{"stopGracePeriod": -0.5}', "'stopGracePeriod' must be a number from 0 to"),
    (b'{"stopGracePeriod": NaN}', "'stopGracePeriod'"),
    (b'{"servers": {"a": {"directory": "/x", "command": "x", "stop": {"command": "stop", "timeout": 1e10}}}}',
     "'servers.a.stop.timeout' must be a number from 0 to"),
    (b'{"console": {"idleTimeout": true}}', "'console.idleTimeout' must be a number"),
])
def test_patch_with_a_bad_config_is_400_and_leaves_the_file_untouched(app, client, admin_headers, body, detail_fragment):
    before = config_bytes(app)
    response = client.patch("/config", headers=admin_headers, data=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == "Invalid JSON body!"
    assert detail_fragment in payload["detail"]
    assert config_bytes(app) == before


def test_patch_writes_trimmed_text_applies_it_and_logs(app, client, admin_headers):
    daemon = app.extensions["octyne"]
    document = json.loads(config_bytes(app))
    document["logging"]["actions"] = {"config.view": False}
    text = "\n\n  // edited\n" + json.dumps(document, indent=2) + "\n\n\n"
    response = client.patch("/config", headers=admin_headers, data=text)
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert config_bytes(app) == (text.strip() + "\n").encode()
    assert daemon.config.logging.actions == {"config.view": False}
    client.get("/config", headers=admin_headers)  # silenced now
    with open(daemon.action_log.path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle]
    assert entries[-1]["action"] == "config.edit"
    assert entries[-1]["newConfig"] == document


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_patch_keeps_the_config_file_mode(app, client, admin_headers, mode):
    """config.json may hold Redis credentials: a rewrite must not make it readable by anyone new."""
    path = app.extensions["octyne"].config_path
    os.chmod(path, mode)
    response = client.patch("/config", headers=admin_headers, data=config_bytes(app))
    assert response.get_json() == {"success": True}
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_tokens_survive_a_config_change(client, admin_headers, app):
    client.patch("/config", headers=admin_headers, data=config_bytes(app))
    assert client.get("/config", headers=admin_headers).status_code == 200


def test_reload_applies_the_file_and_a_broken_file_is_500(app, client, admin_headers):
    daemon = app.extensions["octyne"]
    document = json.loads(config_bytes(app))
    document["logging"]["actions"] = {"auth.login": False}
    with open(daemon.config_path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    response = client.get("/config/reload", headers=admin_headers)
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert daemon.config.logging.actions == {"auth.login": False}
    with open(daemon.config_path, "w", encoding="utf-8") as handle:
        handle.write("{ broken")
    response = client.get("/config/reload", headers=admin_headers)
    assert (response.status_code, response.get_json()) == (500, {"error": "An error occurred while reading config!"})
    assert daemon.config.logging.actions == {"auth.login": False}


@pytest.mark.parametrize("method, path, message", [
    ("POST", "/config", "Only GET and PATCH are allowed!"),
    ("DELETE", "/config", "Only GET and PATCH are allowed!"),
    ("POST", "/config/reload", "Only GET is allowed!"),
])
def test_wrong_methods_are_405_after_authentication(client, admin_headers, method, path, message):
    assert client.open(path, method=method).status_code == 401
    response = client.open(path, method=method, headers=admin_headers)
    assert (response.status_code, response.get_json()) == (405, {"error": message})


@pytest.mark.parametrize("path", ["/config", "/config/reload", "/accounts", "/ott", "/logout"])
def test_every_endpoint_needs_authentication(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"


def test_unknown_paths_are_json_404(client):
    response = client.get("/no/such/path")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "error" in response.get_json()


def test_version(client):
    response = client.get("/")
    assert response.get_json()["version"] == "1.4.2"


def test_cors_on_every_response_including_errors(client):
    for path in ("/", "/accounts", "/nope"):
        response = client.get(path, headers={"Origin": "https://evil.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = client.options("/accounts", headers={"Origin": "https://x.example",
                                                     "Access-Control-Request-Method": "PATCH"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Headers"] == (
        "X-Requested-With, Content-Type, Authorization, Username, Password")
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, HEAD, OPTIONS, PATCH, DELETE"


def test_view_and_reload_are_logged_with_no_fields_of_their_own(app, client, admin_headers):
    client.get("/config", headers=admin_headers)
    client.get("/config/reload", headers=admin_headers)
    with open(app.extensions["octyne"].action_log.path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle][-2:]
    assert [(list(e), e["action"], e["user"], e["ip"]) for e in entries] == [
        (["level", "ts", "msg", "action", "ip", "user"], action, "admin", "127.0.0.1")
        for action in ("config.view", "config.reload")]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_patch_reads_the_raw_body_whatever_the_content_type_says(app, client, admin_headers, content_type):
    text = config_bytes(app).decode().strip() + "\n// typed\n"
    response = client.patch("/config", headers=admin_headers, content_type=content_type, data=text)
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert config_bytes(app) == text.encode()


def test_an_unreadable_config_file_is_a_json_500(app, client, admin_headers):
    """Any unexpected failure answers Octyne's 500 as JSON (api.md §2), not an HTML error page."""
    os.unlink(app.extensions["octyne"].config_path)
    response = client.get("/config", headers=admin_headers)
    assert (response.status_code, response.get_json()) == (500, {"error": "Internal Server Error!"})
    assert response.headers["Content-Type"] == "application/json"
