"""/accounts (api.md §5): every status and message, through the Flask test client."""

import json
import os
import stat
import threading

import pytest

from tests.harness import ADMIN_PASSWORD

INVALID_NAME = ("The username '{}' is invalid. A valid username can contain only letters, "
                "numbers, -, _ or @.")


def users_on_disk(app):
    with open(app.extensions["octyne"].users_path, encoding="utf-8") as handle:
        return json.load(handle)


def can_login(client, username, password):
    return client.get("/login", headers={"Username": username, "Password": password}).status_code == 200


def test_list_create_and_log(app, client, admin_headers):
    response = client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "alice", "password": "pw"}))
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert client.get("/accounts", headers=admin_headers).get_json() == ["admin", "alice"]
    assert set(users_on_disk(app)) == {"admin", "alice"}
    assert can_login(client, "alice", "pw")


@pytest.mark.parametrize("body, status, message", [
    (b"", 400, "Invalid JSON body!"),
    (b"{nope", 400, "Invalid JSON body!"),
    (b"[]", 400, "Invalid JSON body!"),
    (b'{"username": 5, "password": "x"}', 400, "Invalid JSON body!"),
    (b'{"username": "x", "password": ["x"]}', 400, "Invalid JSON body!"),
    (b'{"username": "x"}', 400, "Username or password not provided!"),
    (b'{"password": "x"}', 400, "Username or password not provided!"),
    (b'{"username": "", "password": "x"}', 400, "Username or password not provided!"),
    (b'{"username": "admin", "password": "x"}', 409, "User already exists!"),
    (b'{"username": "bad name", "password": "x"}', 400, INVALID_NAME.format("bad name")),
    (b'{"username": "a/b", "password": "x"}', 400, INVALID_NAME.format("a/b")),
    (b'{"username": "alice\\n", "password": "x"}', 400, INVALID_NAME.format("alice\n")),
    (b'{"username": "@local", "password": "x"}', 400, "The username '@local' is reserved for local system users."),
])
def test_create_errors(client, admin_headers, body, status, message):
    response = client.post("/accounts", headers=admin_headers, data=body)
    assert response.status_code == status
    assert response.get_json() == {"error": message}


def test_a_ten_megabyte_body_is_refused_cleanly(app, client, admin_headers):
    body = json.dumps({"username": "x" * (10 * 1024 * 1024), "password": "y"})
    response = client.post("/accounts", headers=admin_headers, data=body)
    assert response.status_code == 400
    assert set(users_on_disk(app)) == {"admin"}


def test_rename_keeps_the_hash_byte_for_byte(app, client, admin_headers):
    client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "alice", "password": "pw"}))
    before = users_on_disk(app)["alice"]
    response = client.patch("/accounts?username=alice", headers=admin_headers,
                            data=json.dumps({"username": "alicia", "password": ""}))
    assert response.get_json() == {"success": True}
    after = users_on_disk(app)
    assert "alice" not in after and after["alicia"] == before
    assert can_login(client, "alicia", "pw")


def test_password_only_change_through_the_query(client, admin_headers):
    client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "alice", "password": "pw"}))
    response = client.patch("/accounts?username=alice", headers=admin_headers, data=json.dumps({"password": "new"}))
    assert response.get_json() == {"success": True}
    assert can_login(client, "alice", "new") and not can_login(client, "alice", "pw")


def test_legacy_password_change_names_the_account_in_the_body(client, admin_headers):
    client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "alice", "password": "pw"}))
    response = client.patch("/accounts", headers=admin_headers, data=json.dumps({"username": "alice", "password": "new"}))
    assert response.get_json() == {"success": True}
    assert can_login(client, "alice", "new")


@pytest.mark.parametrize("query, body, status, message", [
    ("?username=admin", {"username": "", "password": ""}, 400, "Username or password not provided!"),
    ("", {"password": "x"}, 400, "Username or password not provided!"),
    ("", {"username": "admin"}, 400, "Username or password not provided!"),
    ("?username=ghost", {"password": "x"}, 404, "User does not exist!"),
    ("?username=admin", {"username": "bob"}, 409, "User already exists!"),
    ("?username=bob", {"username": "bob", "password": ""}, 409, "User already exists!"),  # a rename onto itself
    ("?username=bob", {"username": "bob", "password": "x"}, 409, "User already exists!"),
    ("?username=admin", {"username": "no way"}, 400, INVALID_NAME.format("no way")),
    ("?username=admin", {"username": "@local"}, 400, "The username '@local' is reserved for local system users."),
    ("?username=admin", {"username": 7}, 400, "Invalid JSON body!"),
])
def test_update_errors(client, admin_headers, query, body, status, message):
    client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "bob", "password": "pw"}))
    response = client.patch("/accounts" + query, headers=admin_headers, data=json.dumps(body))
    assert (response.status_code, response.get_json()) == (status, {"error": message})


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_account_changes_keep_the_users_file_mode(app, client, admin_headers, mode):
    """users.json holds password hashes: a rewrite must not make it readable by anyone new."""
    path = app.extensions["octyne"].users_path
    os.chmod(path, mode)
    changes = [("POST", "/accounts", {"username": "alice", "password": "pw"}),
               ("PATCH", "/accounts?username=alice", {"username": "alicia", "password": "new"}),
               ("DELETE", "/accounts?username=alicia", None)]
    for method, url, body in changes:
        response = client.open(url, method=method, headers=admin_headers, data=json.dumps(body) if body else None)
        assert response.get_json() == {"success": True}
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, (method, oct(os.stat(path).st_mode))


def test_delete_kills_the_users_tokens_at_once(client, admin_headers):
    client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "alice", "password": "pw"}))
    alice = client.get("/login", headers={"Username": "alice", "Password": "pw"}).get_json()["token"]
    assert client.get("/accounts", headers={"Authorization": alice}).status_code == 200
    assert client.delete("/accounts?username=alice", headers=admin_headers).get_json() == {"success": True}
    assert client.get("/accounts", headers={"Authorization": alice}).status_code == 401


@pytest.mark.parametrize("query, status, message", [
    ("", 400, "Username not provided!"),
    ("?username=", 400, "Username not provided!"),
    ("?username=ghost", 404, "User does not exist!"),
])
def test_delete_errors(client, admin_headers, query, status, message):
    response = client.delete("/accounts" + query, headers=admin_headers)
    assert (response.status_code, response.get_json()) == (status, {"error": message})


def test_wrong_method_is_405_but_only_after_authentication(client, admin_headers):
    assert client.put("/accounts").status_code == 401
    response = client.put("/accounts", headers=admin_headers)
    assert response.status_code == 405
    assert response.get_json() == {"error": "Only GET, POST, PATCH and DELETE are allowed!"}


def test_concurrent_creations_are_all_kept(app, admin_headers):
    errors = []

    def create(index):
        with app.test_client() as own_client:
            response = own_client.post("/accounts", headers=admin_headers,
                                       data=json.dumps({"username": f"user{index}", "password": "pw"}))
            if response.status_code != 200:
                errors.append(response.get_json())

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert set(users_on_disk(app)) == {"admin", *(f"user{i}" for i in range(20))}


def test_account_changes_are_logged(app, client, admin_headers):
    client.post("/accounts", headers=admin_headers, data=json.dumps({"username": "a", "password": "pw"}))
    client.patch("/accounts?username=a", headers=admin_headers, data=json.dumps({"username": "b", "password": "x"}))
    client.delete("/accounts?username=b", headers=admin_headers)
    with open(app.extensions["octyne"].action_log.path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle][-3:]
    assert [(e["action"], {k: v for k, v in e.items() if k not in ("level", "ts", "msg", "action", "ip", "user")})
            for e in entries] == [
        ("accounts.create", {"newUser": "a"}),
        ("accounts.update", {"updatedUser": "b", "changedPassword": True, "oldUsername": "a"}),
        ("accounts.delete", {"deletedUser": "b"}),
    ]
    assert ADMIN_PASSWORD not in open(app.extensions["octyne"].action_log.path).read()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                          "text/plain", "application/json"])
def test_the_body_is_json_whatever_the_content_type_says(client, admin_headers, content_type):
    response = client.post("/accounts", headers=admin_headers, content_type=content_type,
                           data=json.dumps({"username": "typed", "password": "pw"}))
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert "typed" in client.get("/accounts", headers=admin_headers).get_json()
