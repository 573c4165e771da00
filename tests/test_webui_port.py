"""The web-UI port: the whole API under /api (console WebSocket included), a static dashboard with Octyne's rewrites."""

import http.client
import json
import os
import time

import pytest
import requests
import websocket

from octyne_flask.webui import BUILT_IN
from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config
from tests.services import ECHO_APP

NOT_AUTHENTICATED = {"error": "You are not authenticated to access this resource!"}

# A static export the way Next.js writes Ecthelion: dynamic routes as literal [server] file names.
EXPORT = {
    "index.html": "home page",
    "about.html": "about page",
    "dashboard/index.html": "dashboard list",
    "dashboard/[server].html": "server console page",
    "dashboard/[server]/properties.html": "server properties page",
    "dashboard/[server]/files/[[...path]].html": "file manager page",
    "_next/static/chunks/app.js": "console.log('app')",
}
SECRET = "secret outside the dashboard folder"


@pytest.fixture(scope="module")
def web_ui(tmp_path_factory):
    """One daemon for the whole module: these tests only read."""
    tmp_path = tmp_path_factory.mktemp("webui")
    export = tmp_path / "export"
    for relative, content in EXPORT.items():
        (export / relative).parent.mkdir(parents=True, exist_ok=True)
        (export / relative).write_text(content)
    (tmp_path / "secret.txt").write_text(SECRET)
    os.symlink(tmp_path / "secret.txt", export / "link.txt")
    os.symlink(tmp_path, export / "dashboard" / "outside")
    config = daemon_config(tmp_path, {"echo": {"directory": str(tmp_path), "command": ECHO_APP}},
                           webUI={"directory": str(export)})
    daemon = RunningDaemon(tmp_path, config, {"admin": ADMIN_HASH})
    daemon.web_ui_port = config["webUI"]["port"]
    daemon.web_ui_url = f"http://127.0.0.1:{daemon.web_ui_port}"
    daemon.wait_for_running("echo")
    yield daemon
    daemon.stop()


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (requests would normalise dot segments)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_api_is_mounted_under_api(web_ui):
    response = requests.get(web_ui.web_ui_url + "/api/servers", headers={"Authorization": web_ui.token}, timeout=10)
    assert response.json() == {"servers": {"echo": 1}}
    response = requests.get(web_ui.web_ui_url + "/api/servers", timeout=10)
    assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)
    assert requests.get(web_ui.web_ui_url + "/api", timeout=10).json()["version"]
    login = requests.get(web_ui.web_ui_url + "/api/login?cookie=true",
                         headers={"Username": "admin", "Password": "admin-password-for-tests"}, timeout=10)
    assert login.json() == {"success": True}
    cookie = login.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    response = requests.get(web_ui.web_ui_url + "/api/servers", cookies={"X-Authentication": cookie}, timeout=10)
    assert response.status_code == 200


def test_console_websocket_under_api(web_ui):
    url = f"ws://127.0.0.1:{web_ui.web_ui_port}/api/server/echo/console"
    connection = websocket.create_connection(url, header={"Authorization": web_ui.token}, timeout=10,
                                             subprotocols=["console-v2"])
    try:
        assert json.loads(connection.recv()) == {"type": "settings", "readOnly": False}
        connection.send(json.dumps({"type": "ping", "id": "p1"}))
        connection.send(json.dumps({"type": "input", "data": "through the web ui"}))
        messages, deadline = [], time.monotonic() + 10
        while time.monotonic() < deadline:
            messages.append(json.loads(connection.recv()))
            if any("echo:through the web ui" in m.get("data", "") for m in messages) and \
                    {"type": "pong", "id": "p1"} in messages:
                break
        assert {"type": "pong", "id": "p1"} in messages
        assert any("echo:through the web ui" in m.get("data", "") for m in messages)
    finally:
        connection.close()


@pytest.mark.parametrize("path, served", [
    ("/", "index.html"),
    ("/about", "about.html"),
    ("/about.html", "about.html"),
    ("/dashboard", "dashboard/index.html"),
    ("/dashboard/", "dashboard/index.html"),
    ("/dashboard/survival", "dashboard/[server].html"),
    ("/dashboard/survival/properties", "dashboard/[server]/properties.html"),
    ("/dashboard/survival/files", "dashboard/[server]/files/[[...path]].html"),
    ("/dashboard/survival/files/world/level.dat", "dashboard/[server]/files/[[...path]].html"),
    ("/_next/static/chunks/app.js", "_next/static/chunks/app.js"),
])
def test_dashboard_export_rewrites(web_ui, path, served):
    response = requests.get(web_ui.web_ui_url + path, timeout=10)
    assert (response.status_code, response.text) == (200, EXPORT[served])
    if served.endswith(".js"):
        assert "javascript" in response.headers["Content-Type"]
    else:
        assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/dashboard/..%2f..%2fsecret.txt", "/..%2fsecret.txt",
    "/link.txt", "/dashboard/outside/secret.txt", "/dashboard/x/../../../secret.txt", "/%00", "/a%00b",
    "/missing", "//etc/passwd", "/%5c..%5csecret.txt",
])
def test_dashboard_refuses_escapes_and_missing_files(web_ui, path):
    status, body = raw_get(web_ui.web_ui_port, path)
    assert status == 404
    assert SECRET.encode() not in body


def test_built_in_dashboard_is_the_default(daemon):
    port = json.loads(daemon.config_path.read_text())["webUI"]["port"]
    response = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    with open(os.path.join(BUILT_IN, "index.html"), "rb") as handle:
        assert (response.status_code, response.content) == (200, handle.read())
    # The API port itself serves the API only, not the dashboard.
    assert daemon.get("/").json()["version"]
