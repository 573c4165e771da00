"""GET/PATCH /access and GET /access/me (extensions.md §A) against the real daemon: off until used,
validation that leaves access.json byte-identical, accounts kept in step, consoles closed on revocation,
hand edits, and a kill -9 in the middle of a write."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import requests
import websocket

from octyne_flask.auth.permissions import BUILT_IN_ROLES, GLOBAL_PERMISSIONS, SERVER_PERMISSIONS
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, wait_until
from tests.services import ECHO_APP

FORBIDDEN = {"error": "You are not allowed to access this resource!"}
LAST_ADMINISTRATOR = {"error": "At least one administrator must remain!"}
CLOSED = {"type": "error", "message": "This console has been closed."}


def token_of(daemon, username: str, password: str = ADMIN_PASSWORD) -> str:
    response = requests.get(daemon.url + "/login", headers={"Username": username, "Password": password}, timeout=10)
    return response.json()["token"]


def as_user(daemon, token: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, daemon.url + path, headers={"Authorization": token}, timeout=30, **kwargs)


def access_path(daemon):
    return daemon.directory / "access.json"


def start_two_accounts(factory, directory):
    daemon = factory(servers={"echo": {"directory": str(directory), "command": ECHO_APP}},
                     users={"admin": ADMIN_HASH, "alice": ADMIN_HASH})
    daemon.wait_for_running("echo")
    return daemon


@pytest.fixture
def two_accounts(daemon_factory, tmp_path):
    """A daemon with the accounts ``admin`` and ``alice`` and an echo app ``echo``."""
    return start_two_accounts(daemon_factory, tmp_path)


@pytest.fixture(scope="module")
def refusing_two_accounts(module_daemon_factory, tmp_path_factory):
    """``two_accounts``, one daemon per ``already_on`` shared by the tests whose changes are all refused."""
    daemons = {}

    def daemon_for(already_on: bool):
        if already_on not in daemons:
            daemons[already_on] = start_two_accounts(module_daemon_factory, tmp_path_factory.mktemp("echo"))
        return daemons[already_on]

    return daemon_for


def test_off_until_used_every_account_is_an_administrator(two_accounts):
    daemon = two_accounts
    body = daemon.get("/access").json()
    assert body == {
        "enabled": False,
        "roles": {"operator": list(SERVER_PERMISSIONS), "viewer": list(BUILT_IN_ROLES["viewer"])},
        "permissions": {"global": list(GLOBAL_PERMISSIONS), "server": list(SERVER_PERMISSIONS)},
        "accounts": {"admin": {"admin": True}, "alice": {"admin": True}},
        "defaults": {"servers": {}},
    }
    alice = token_of(daemon, "alice")
    assert as_user(daemon, alice, "GET", "/access/me").json() == {
        "username": "alice", "admin": True, "permissions": list(GLOBAL_PERMISSIONS),
        "servers": {"echo": list(SERVER_PERMISSIONS)}}
    assert as_user(daemon, alice, "GET", "/config").status_code == 200
    assert not access_path(daemon).exists()


def test_the_first_patch_creates_the_file_and_is_logged(two_accounts):
    daemon = two_accounts
    change = {"roles": {"moderator": ["view", "console.view", "console.write"]},
              "accounts": {"alice": {"servers": {"echo": "moderator"}}}}
    assert daemon.patch("/access", json=change).json() == {"success": True}
    assert json.loads(access_path(daemon).read_text()) == {
        "roles": {"moderator": ["view", "console.view", "console.write"]},
        "accounts": {"admin": {"admin": True}, "alice": {"servers": {"echo": "moderator"}}},
        "defaults": {"servers": {}}}
    entry = [e for e in daemon.action_log() if e.get("action") == "access.edit"][-1]
    assert (entry["user"], entry["changes"]) == ("admin", change)
    body = daemon.get("/access").json()
    assert body["enabled"] is True and body["roles"]["moderator"] == ["view", "console.view", "console.write"]
    assert body["accounts"]["alice"] == {"servers": {"echo": "moderator"}}
    alice = token_of(daemon, "alice")
    assert as_user(daemon, alice, "GET", "/access/me").json() == {
        "username": "alice", "admin": False, "permissions": [],
        "servers": {"echo": ["view", "console.view", "console.write"]}}
    assert as_user(daemon, alice, "GET", "/config").json() == FORBIDDEN
    assert as_user(daemon, alice, "GET", "/servers").json() == {"servers": {"echo": 1}}


@pytest.mark.parametrize("change, status, key", [
    ({"accounts": {"mallory": {}}}, 400, "accounts.mallory"),
    ({"accounts": {"alice": {"servers": {"echo": ["view", "files.delete"]}}}}, 400, "accounts.alice.servers.echo"),
    ({"accounts": {"alice": {"servers": {"echo": "moderator"}}}}, 400, "accounts.alice.servers.echo"),
    ({"accounts": {"alice": {"permissions": ["config.view", "access.own"]}}}, 400, "accounts.alice.permissions"),
    ({"roles": {"viewer": ["view"]}}, 400, "roles.viewer"),
    ({"roles": {"operator": None}}, 400, "roles.operator"),
    ({"defaults": {"servers": {"*": "nobody"}}}, 400, "defaults.servers.*"),
    ({"enabled": False}, 400, "enabled"),
    ({"accounts": {"admin": {"admin": False}, "alice": {"servers": {"*": "operator"}}}}, 409, None),
    ({"accounts": {"admin": None, "alice": None}}, 409, None),
])
@pytest.mark.parametrize("already_on", [False, True], ids=["off", "on"])
def test_a_refused_change_names_the_key_and_leaves_access_json_byte_identical(refusing_two_accounts, change, status,
                                                                             key, already_on):
    daemon = refusing_two_accounts(already_on)
    if already_on:
        assert daemon.patch("/access", json={"accounts": {"alice": {"servers": {"*": "viewer"}}}}).status_code == 200
    before = access_path(daemon).read_bytes() if already_on else None
    response = daemon.patch("/access", json=change)
    assert response.status_code == status
    if key is None:
        assert response.json() == LAST_ADMINISTRATOR
    else:
        assert response.json()["error"].startswith(key + ": ") and response.json()["key"] == key
    assert (access_path(daemon).read_bytes() if access_path(daemon).exists() else None) == before
    assert not any(e.get("action") == "access.edit" and e["changes"] == change for e in daemon.action_log())


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"accounts"', b"null"])
def test_a_body_that_is_not_a_json_object_is_invalid_json(shared_daemon, body):
    response = shared_daemon.patch("/access", data=body)
    assert (response.status_code, response.json()) == (400, {"error": "Invalid JSON body!"})


def test_wrong_methods_after_authentication(shared_daemon):
    assert requests.delete(shared_daemon.url + "/access", timeout=10).status_code == 401
    response = shared_daemon.delete("/access")
    assert (response.status_code, response.json()) == (405, {"error": "Only GET and PATCH are allowed!"})
    response = shared_daemon.post("/access/me")
    assert (response.status_code, response.json()) == (405, {"error": "Only GET is allowed!"})
    assert requests.get(shared_daemon.url + "/access/me", timeout=10).status_code == 401


def test_accounts_get_defaults_move_on_rename_drop_on_delete_and_the_last_administrator_stays(two_accounts):
    daemon = two_accounts
    assert daemon.patch("/access", json={"defaults": {"servers": {"echo": "viewer"}},
                                         "accounts": {"alice": {"servers": {"echo": "operator"}}}}).status_code == 200
    assert daemon.post("/accounts", json={"username": "carol", "password": "carol-password"}).status_code == 200
    carol = token_of(daemon, "carol", "carol-password")
    assert as_user(daemon, carol, "GET", "/access/me").json()["servers"] == {"echo": list(BUILT_IN_ROLES["viewer"])}
    assert daemon.patch("/accounts?username=alice", json={"username": "alicia", "password": ""}).status_code == 200
    stored = json.loads(access_path(daemon).read_text())["accounts"]
    assert "alice" not in stored and stored["alicia"] == {"servers": {"echo": "operator"}}
    assert daemon.delete("/accounts?username=carol").status_code == 200
    assert "carol" not in json.loads(access_path(daemon).read_text())["accounts"]
    before = access_path(daemon).read_bytes()
    response = daemon.delete("/accounts?username=admin")
    assert (response.status_code, response.json()) == (409, LAST_ADMINISTRATOR)
    assert access_path(daemon).read_bytes() == before and "admin" in daemon.get("/accounts").json()
    assert daemon.patch("/access", json={"accounts": {"alicia": None}}).status_code == 200
    assert json.loads(access_path(daemon).read_text())["accounts"]["alicia"] == {"servers": {"echo": "viewer"}}


def open_console(daemon, token: str):
    ws = websocket.create_connection(daemon.ws_url("/server/echo/console"), timeout=10,
                                     subprotocols=["console-v2"], header=[f"Authorization: {token}"])
    settings = json.loads(ws.recv())
    ws.recv()  # the scrollback
    return ws, settings


def closed_within(ws, seconds: float) -> bool:
    """Whether the server closes the console (the closed message, then the close) within ``seconds``."""
    started = time.monotonic()
    ws.settimeout(seconds)
    while True:
        message = json.loads(ws.recv())
        if message == CLOSED:
            break
        assert message["type"] == "output", message
    ws.recv_data(control_frame=True)
    return time.monotonic() - started < seconds


def test_a_console_whose_permission_is_revoked_closes_within_two_seconds(two_accounts):
    daemon = two_accounts
    daemon.patch("/access", json={"accounts": {"alice": {"servers": {"echo": ["view", "console.view",
                                                                             "console.write"]}}}})
    alice = token_of(daemon, "alice")
    writable, settings = open_console(daemon, alice)
    assert settings == {"type": "settings", "readOnly": False}
    mine, _ = open_console(daemon, daemon.token)
    daemon.patch("/access", json={"accounts": {"alice": {"servers": {"echo": ["view", "console.view"]}}}})
    assert closed_within(writable, 2)  # write revoked: it reconnects read-only
    read_only, settings = open_console(daemon, alice)
    assert settings == {"type": "settings", "readOnly": True}
    daemon.patch("/access", json={"accounts": {"alice": {"servers": {"echo": ["view"]}}}})
    assert closed_within(read_only, 2)
    mine.send(json.dumps({"type": "ping", "id": "still here"}))
    assert json.loads(mine.recv()) == {"type": "pong", "id": "still here"}  # the administrator's stays open
    mine.close()


def test_hand_edits_apply_within_two_seconds_and_a_broken_one_keeps_the_last_rules(two_accounts):
    daemon = two_accounts
    daemon.patch("/access", json={"accounts": {"alice": {"servers": {"echo": "viewer"}}}})
    alice = token_of(daemon, "alice")
    ws, _ = open_console(daemon, alice)
    document = json.loads(access_path(daemon).read_text())
    document["accounts"]["alice"] = {"servers": {}}
    replacement = access_path(daemon).with_name("access.json.new")
    replacement.write_text(json.dumps(document))
    os.replace(replacement, access_path(daemon))  # an editor's save: a new inode
    assert closed_within(ws, 2.5)
    assert as_user(daemon, alice, "GET", "/servers").json() == {"servers": {}}
    access_path(daemon).write_text('{"accounts": {"alice": {"admin": "yes"}}}')
    time.sleep(2.5)
    assert as_user(daemon, alice, "GET", "/servers").json() == {"servers": {}}
    assert "accounts.alice.admin: must be true or false" in daemon.output()


def directory_state(folder) -> tuple:
    """Names in ``folder`` and access.json's inode, size and mtime: any write shows up here first."""
    info = os.stat(folder / "access.json")
    return tuple(sorted(os.listdir(folder))), info.st_ino, info.st_size, info.st_mtime_ns


def test_kill_9_during_a_patch_leaves_the_old_or_the_new_file(daemon_factory, tmp_path):
    """The daemon is killed the moment a write of access.json shows on disk; the file is always a whole document."""
    users = {"admin": ADMIN_HASH, **{f"user{n}": ADMIN_HASH for n in range(200)}}
    for round_number in range(3):
        daemon = daemon_factory(users=users, directory=tmp_path / f"round{round_number}")
        done = []

        def write_until_killed():
            for counter in range(10_000):
                grants = {f"server{n}": ["view", "console.view"] if counter % 2 else "viewer" for n in range(20)}
                change = {"accounts": {f"user{n}": {"servers": grants} for n in range(200)}}
                try:
                    daemon.patch("/access", json=change, timeout=10)
                except requests.RequestException:
                    return
                done.append(counter)

        writer = threading.Thread(target=write_until_killed)
        writer.start()
        wait_until(lambda: len(done) >= 2)
        before, deadline = directory_state(daemon.directory), time.monotonic() + 10
        while directory_state(daemon.directory) == before:  # busy: the kill must land inside the write
            assert time.monotonic() < deadline, "no write of access.json started"
        os.killpg(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(10)
        writer.join(30)
        document = json.loads(access_path(daemon).read_text())
        assert set(document) == {"roles", "accounts", "defaults"} and len(document["accounts"]) == 201
        entries = {json.dumps(entry, sort_keys=True) for name, entry in document["accounts"].items() if name != "admin"}
        assert len(entries) == 1  # every account from the same write: never a mix, never a cut
