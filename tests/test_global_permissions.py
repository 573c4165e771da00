"""Config, account and access endpoints each name their permission (api.md §11, extensions.md §A); a refusal
(403) comes after authentication and before the endpoint's own 405 and validation (§2)."""

import json

import pytest

from octyne_flask.auth.permissions import GLOBAL_PERMISSIONS
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD

FORBIDDEN = {"error": "You are not allowed to access this resource!"}


def deny(daemon, refused: str) -> None:
    """Give ``tester`` every global permission but ``refused``."""
    granted = [name for name in GLOBAL_PERMISSIONS if name != refused]
    daemon.access_store.patch({"accounts": {"tester": {"permissions": granted}}}, daemon.users.names())


@pytest.fixture
def tester_headers(app, client):
    """Headers of ``tester``, an account that is not an administrator once access control is on."""
    users_path = app.extensions["octyne"].users.path
    with open(users_path, "w") as users:
        json.dump({"admin": ADMIN_HASH, "tester": ADMIN_HASH}, users)
    app.extensions["octyne"].users.reload()
    response = client.get("/login", headers={"Username": "tester", "Password": ADMIN_PASSWORD})
    return {"Authorization": response.get_json()["token"]}


ENDPOINTS = [
    ("GET", "/config", "config.view"),
    ("PATCH", "/config", "config.edit"),
    ("POST", "/config", "config.view"),  # a wrong method: 403 before the 405
    ("GET", "/config/reload", "config.reload"),
    ("GET", "/accounts", "accounts.view"),
    ("POST", "/accounts", "accounts.create"),
    ("PATCH", "/accounts", "accounts.update"),
    ("DELETE", "/accounts", "accounts.delete"),
    ("PUT", "/accounts", "accounts.view"),
    ("GET", "/access", "access.view"),
    ("PATCH", "/access", "access.edit"),
    ("PUT", "/access", "access.view"),
]


@pytest.mark.parametrize("method, path, permission", ENDPOINTS)
def test_each_endpoint_asks_for_its_own_permission_after_authentication(app, client, tester_headers,
                                                                         method, path, permission):
    daemon = app.extensions["octyne"]
    deny(daemon, permission)
    assert client.open(path, method=method, data=b"not valid").status_code == 401
    response = client.open(path, method=method, headers=tester_headers, data=b"not valid")
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)
    deny(daemon, "some.other.permission")
    response = client.open(path, method=method, headers=tester_headers, data=b"not valid")
    assert response.status_code != 403
