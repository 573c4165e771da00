"""Access control over every endpoint (api.md, extensions.md §A), against the real daemon.

For each endpoint: an account holding exactly the permission it needs gets
through, one holding every other permission gets 403, on TCP and, where a
ticket is accepted, through a ticket; a server the account may not see
answers exactly like a server that does not exist.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
import requests
import websocket

from octyne_flask.auth.permissions import GLOBAL_PERMISSIONS, SERVER_PERMISSIONS
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config
from tests.services import ECHO_APP

FORBIDDEN = {"error": "You are not allowed to access this resource!"}

# (method, path, body, the permission it needs); server paths use the server "alpha".
GLOBAL_ENDPOINTS = [
    ("GET", "/config", None, "config.view"),
    ("PATCH", "/config", "CONFIG", "config.edit"),
    ("GET", "/config/reload", None, "config.reload"),
    ("GET", "/accounts", None, "accounts.view"),
    ("POST", "/accounts", b'{"username": "", "password": ""}', "accounts.create"),
    ("PATCH", "/accounts?username=nobody", b'{"password": "x"}', "accounts.update"),
    ("DELETE", "/accounts?username=nobody", None, "accounts.delete"),
    ("GET", "/access", None, "access.view"),
    ("PATCH", "/access", b'{"accounts": {"nobody": {}}}', "access.edit"),
]
SERVER_ENDPOINTS = [
    ("GET", "/server/alpha", None, "view"),
    ("POST", "/server/alpha", b"NOTHING", "control"),
    ("GET", "/server/alpha/files?path=/", None, "files.view"),
    ("PATCH", "/server/alpha/files", b'{"operations": 1}', "files.modify"),
    ("GET", "/server/alpha/file?path=hello.txt", None, "files.download"),
    ("POST", "/server/alpha/file?path=/", b"not a form", "files.upload"),
    ("DELETE", "/server/alpha/file?path=missing", None, "files.modify"),
    ("PATCH", "/server/alpha/file", b"mv\nonly-one", "files.modify"),
    ("POST", "/server/alpha/folder?path=/sub", None, "files.createFolder"),
    ("POST", "/server/alpha/compress?path=/a.zip", b"not json", "files.compress"),
    ("GET", "/server/alpha/compress?token=", None, "files.compress"),
    ("POST", "/server/alpha/compress/v2?path=/a.zip", b"not json", "files.compress"),
    ("GET", "/server/alpha/compress/v2?token=", None, "files.compress"),
    ("POST", "/server/alpha/decompress?path=/missing.zip", b"/out", "files.decompress"),
    ("GET", "/server/alpha/console/history", None, "console.view"),
    ("GET", "/server/alpha/console/history.txt", None, "console.view"),
    ("GET", "/server/alpha/console/inputs", None, "console.write"),
    ("GET", "/server/alpha/stats/history", None, "view"),
    ("GET", "/server/alpha/backups", None, "backups.view"),
    ("POST", "/server/alpha/backups", None, "backups.create"),
    ("GET", "/server/alpha/backups/2020-01-01T00-00-00Z.tar.zst", None, "backups.view+files.download"),
    ("DELETE", "/server/alpha/backups/2020-01-01T00-00-00Z.tar.zst", None, "backups.delete"),
    ("POST", "/server/alpha/backups/2020-01-01T00-00-00Z.tar.zst/restore", None, "backups.restore"),
    ("GET", "/server/alpha/schedules", None, "schedules.view"),
    ("POST", "/server/alpha/schedules/nightly/run", None, "schedules.run"),
    ("GET", "/server/alpha/sftp", None, "files.view"),
]
# Endpoints every authenticated account may use, whatever its rules.
OPEN_ENDPOINTS = [("GET", "/servers"), ("GET", "/access/me"), ("GET", "/ott")]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon with an echo app ``alpha``, an idle ``beta``, and the account ``tester`` logged in."""
    directory = tmp_path_factory.mktemp("access")
    alpha = directory / "alpha"
    (alpha / "sub").mkdir(parents=True)
    (alpha / "hello.txt").write_text("hello")
    servers = {"alpha": {"directory": str(alpha), "command": ECHO_APP},
               "beta": {"directory": str(directory), "command": "true", "enabled": False}}
    running = RunningDaemon(directory, daemon_config(directory, servers), {"admin": ADMIN_HASH, "tester": ADMIN_HASH})
    running.wait_for_running("alpha")
    running.tester = requests.get(running.url + "/login",
                                  headers={"Username": "tester", "Password": ADMIN_PASSWORD}).json()["token"]
    yield running
    running.clean_up()


def give_tester(daemon, entry: dict) -> None:
    response = daemon.patch("/access", json={"accounts": {"tester": entry}})
    assert response.json() == {"success": True}, response.text


def everything_but(permission: str) -> dict:
    """Every global and server permission on every server except ``permission``."""
    return {"permissions": [name for name in GLOBAL_PERMISSIONS if name != permission],
            "servers": {server: [name for name in SERVER_PERMISSIONS if name != permission]
                        for server in ("alpha", "beta", "ghost")}}


def as_tester(daemon, method: str, path: str, body) -> requests.Response:
    if body == "CONFIG":
        body = daemon.config_path.read_bytes()
    return requests.request(method, daemon.url + path, data=body, headers={"Authorization": daemon.tester},
                            timeout=30)


def ticket_of_tester(daemon) -> str:
    response = requests.get(daemon.url + "/ott", headers={"Authorization": daemon.tester}, timeout=10)
    return quote(response.json()["ticket"], safe="")


def console(daemon, server: str = "alpha", *, v2: bool = True, ticket: bool = False):
    query = f"?ticket={ticket_of_tester(daemon)}" if ticket else ""
    headers = [] if ticket else [f"Authorization: {daemon.tester}"]
    return websocket.create_connection(daemon.ws_url(f"/server/{server}/console{query}"), timeout=10,
                                       subprotocols=["console-v2"] if v2 else None, header=headers)


def test_the_table_covers_every_operation_that_needs_a_permission():
    """A new endpoint cannot be forgotten here: every documented permission check has a row above."""
    from octyne_flask.openapi import openapi_document, operations

    documented = {(method.upper(), path.replace("{id}", "alpha"), operation["x-permission"].replace("server{id}.", ""))
                  for path, method, operation in operations(openapi_document()) if "x-permission" in operation}
    documented.discard(("GET", "/server/alpha/console", "console.view"))  # a WebSocket: tested on its own below
    rows = {(method, path.split("?")[0], permission.split("+")[0])
            for method, path, _, permission in GLOBAL_ENDPOINTS + SERVER_ENDPOINTS}
    templated = {(method, path, permission) for method, path, permission in documented if "{" in path}
    concrete = documented - templated
    assert concrete <= rows, concrete - rows
    for method, path, permission in templated:
        pattern = path.replace("{name}", "[^/]+")
        assert any(row[0] == method and row[2] == permission and re.fullmatch(pattern, row[1]) for row in rows), path


@pytest.mark.parametrize("method, path, body, permission", GLOBAL_ENDPOINTS + SERVER_ENDPOINTS)
def test_exactly_the_needed_permission_gets_through_and_nothing_else_does(daemon, method, path, body, permission):
    """``permission`` may be ``a+b``: both are needed (a backup's download), and lacking either is a 403."""
    needed = permission.split("+")
    give_tester(daemon, {"permissions": needed} if permission in GLOBAL_PERMISSIONS else {"servers": {"alpha": needed}})
    response = as_tester(daemon, method, path, body)
    assert response.status_code != 403, response.text
    for missing in needed:
        give_tester(daemon, everything_but(missing))
        response = as_tester(daemon, method, path, body)
        assert (response.status_code, response.json()) == (403, FORBIDDEN)


@pytest.mark.parametrize("method, path", OPEN_ENDPOINTS)
def test_endpoints_without_a_permission_serve_an_account_without_any(daemon, method, path):
    give_tester(daemon, {})
    assert as_tester(daemon, method, path, None).status_code == 200


@pytest.mark.parametrize("ticket", [False, True], ids=["token", "ticket"])
def test_download_through_a_token_or_a_ticket_needs_files_download(daemon, ticket):
    def download():
        if ticket:
            return requests.get(f"{daemon.url}/server/alpha/file?path=hello.txt&ticket={ticket_of_tester(daemon)}",
                                timeout=10)
        return as_tester(daemon, "GET", "/server/alpha/file?path=hello.txt", None)

    give_tester(daemon, {"servers": {"alpha": ["files.download"]}})
    assert (download().status_code, download().text) == (200, "hello")
    give_tester(daemon, everything_but("files.download"))
    response = download()
    assert (response.status_code, response.json()) == (403, FORBIDDEN)


@pytest.mark.parametrize("ticket", [False, True], ids=["token", "ticket"])
def test_the_console_needs_console_view_and_is_read_only_without_console_write(daemon, ticket):
    give_tester(daemon, {"servers": {"alpha": ["console.view"]}})
    ws = console(daemon, ticket=ticket)
    assert json.loads(ws.recv()) == {"type": "settings", "readOnly": True}
    ws.close()
    v1 = console(daemon, v2=False, ticket=ticket)
    assert v1.recv().startswith("\n")  # the scrollback
    v1.close()
    give_tester(daemon, {"servers": {"alpha": ["console.view", "console.write"]}})
    ws = console(daemon, ticket=ticket)
    assert json.loads(ws.recv()) == {"type": "settings", "readOnly": False}
    ws.close()
    give_tester(daemon, everything_but("console.view"))
    ws = console(daemon, ticket=ticket)
    assert json.loads(ws.recv()) == {"type": "error", "message": FORBIDDEN["error"]}
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        console(daemon, v2=False, ticket=ticket)
    assert refused.value.status_code == 403 and json.loads(refused.value.resp_body) == FORBIDDEN


@pytest.mark.parametrize("method, path, body, permission", SERVER_ENDPOINTS)
def test_a_server_the_account_may_not_see_answers_like_one_that_does_not_exist(daemon, method, path, body,
                                                                               permission):
    give_tester(daemon, {"permissions": list(GLOBAL_PERMISSIONS), "servers": {"beta": "operator"}})
    hidden = as_tester(daemon, method, path, body)
    missing = as_tester(daemon, method, path.replace("/server/alpha", "/server/ghost"), body)
    assert (hidden.status_code, hidden.json()) == (missing.status_code, missing.json()) == (403, FORBIDDEN)


def test_hidden_servers_are_left_out_of_servers_and_their_consoles_refuse_like_missing_ones(daemon):
    give_tester(daemon, {"servers": {"beta": ["view"]}})
    assert as_tester(daemon, "GET", "/servers", None).json() == {"servers": {"beta": 0}}
    assert as_tester(daemon, "GET", "/servers?extrainfo=true", None).json() == {
        "servers": {"beta": {"status": 0, "toDelete": False}}}
    answers = []
    for server in ("alpha", "ghost"):
        ws = console(daemon, server)
        answers.append(json.loads(ws.recv()))
        ws.close()
    assert answers[0] == answers[1] == {"type": "error", "message": FORBIDDEN["error"]}


def test_a_star_grant_reaches_every_server_and_unknown_ones_answer_404(daemon):
    give_tester(daemon, {"servers": {"*": "viewer"}})
    assert as_tester(daemon, "GET", "/servers", None).json() == {"servers": {"alpha": 1, "beta": 0}}
    response = as_tester(daemon, "GET", "/server/ghost", None)
    assert (response.status_code, response.json()) == (404, {"error": "This server does not exist!"})
    response = as_tester(daemon, "POST", "/server/alpha", b"KILL")
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
