"""Each server endpoint names its permission (api.md §11); a refusal (403) comes before 404, 405 and validation (§2).

The rules are real access rules (extensions.md §A) given to a non-administrator.

The console's refusals are answered around the WebSocket upgrade; test_console_api.py covers them.
"""

from __future__ import annotations

import json

import pytest

from octyne_flask.auth.permissions import SERVER_PERMISSIONS
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, daemon_config

FORBIDDEN = {"error": "You are not allowed to access this resource!"}
SERVERS = ("alpha", "beta", "ghost")  # ghost is in no config


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app (Flask test client) with two idle servers, and a token of the non-administrator ``tester``."""
    from octyne_flask import create_app

    tmp_path = tmp_path_factory.mktemp("permissions")
    servers = {name: {"directory": str(tmp_path), "command": "true", "enabled": False} for name in ("alpha", "beta")}
    (tmp_path / "config.json").write_text(json.dumps(daemon_config(tmp_path, servers)))
    (tmp_path / "users.json").write_text(json.dumps({"admin": ADMIN_HASH, "tester": ADMIN_HASH}))
    app = create_app(str(tmp_path / "config.json"), str(tmp_path / "users.json"))
    client = app.test_client()
    token = client.get("/login", headers={"Username": "tester", "Password": ADMIN_PASSWORD}).get_json()["token"]
    yield app, client, {"Authorization": token}
    app.extensions["octyne"].shutdown()


def deny(app, refused) -> None:
    """Give ``tester`` every server permission except the full names (``serveralpha.view``) ``refused`` picks."""
    daemon = app.extensions["octyne"]
    servers = {server: [name for name in SERVER_PERMISSIONS if not refused(f"server{server}.{name}")]
               for server in SERVERS}
    daemon.access_store.patch({"accounts": {"tester": {"servers": servers}}}, daemon.users.names())


ENDPOINTS = [
    ("GET", "", "view"),
    ("POST", "", "control"),
    ("GET", "/stats/history", "view"),
    ("GET", "/files", "files.view"),
    ("PATCH", "/files", "files.modify"),
    ("GET", "/file", "files.download"),
    ("POST", "/file", "files.upload"),
    ("DELETE", "/file", "files.modify"),
    ("PATCH", "/file", "files.modify"),
    ("POST", "/folder", "files.createFolder"),
    ("POST", "/compress", "files.compress"),
    ("GET", "/compress/v2", "files.compress"),
    ("POST", "/decompress", "files.decompress"),
    ("GET", "/console/history", "console.view"),
    ("GET", "/console/history.txt", "console.view"),
    ("GET", "/console/inputs", "console.write"),
]


@pytest.mark.parametrize("method, suffix, permission", ENDPOINTS)
def test_each_endpoint_asks_for_its_own_permission(served, method, suffix, permission):
    app, client, headers = served
    deny(app, lambda name: name == f"serveralpha.{permission}")
    response = client.open(f"/server/alpha{suffix}", method=method, headers=headers, data=b"not a valid body")
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)
    deny(app, lambda name: name == f"serverbeta.{permission}")  # another server's permission does not refuse this one
    assert client.open(f"/server/alpha{suffix}", method=method, headers=headers, data=b"x").get_json() != FORBIDDEN


@pytest.mark.parametrize("method, suffix, permission", ENDPOINTS)
def test_a_refusal_comes_before_the_server_lookup(served, method, suffix, permission):
    app, client, headers = served
    deny(app, lambda name: name == f"serverghost.{permission}")
    response = client.open(f"/server/ghost{suffix}", method=method, headers=headers)
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)


def test_servers_lists_only_the_servers_the_user_may_view(served):
    app, client, headers = served
    deny(app, lambda name: name == "serverbeta.view")
    assert client.get("/servers", headers=headers).get_json() == {"servers": {"alpha": 0}}
    assert client.get("/servers?extrainfo=true", headers=headers).get_json() == {
        "servers": {"alpha": {"status": 0, "toDelete": False}}}


@pytest.mark.parametrize("method, suffix", [
    ("PUT", ""), ("PUT", "/files"), ("PUT", "/file"), ("GET", "/folder"), ("DELETE", "/compress"),
    ("GET", "/decompress"), ("POST", "/stats/history"),
])
def test_a_refusal_comes_before_the_wrong_method(served, method, suffix):
    app, client, headers = served
    deny(app, lambda name: name.startswith("serveralpha."))
    response = client.open(f"/server/alpha{suffix}", method=method, headers=headers)
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)
