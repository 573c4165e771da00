"""Config and account endpoints each name their permission (api.md §11); a refusal (403) comes after
authentication and before the endpoint's own 405 and validation (§2)."""

import pytest

FORBIDDEN = {"error": "You are not allowed to access this resource!"}


class Deny:
    """A permission policy refusing exactly one permission name."""

    def __init__(self, refused: str):
        self.refused = refused

    def allows(self, user: str, permission: str) -> bool:
        return permission != self.refused


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
]


@pytest.mark.parametrize("method, path, permission", ENDPOINTS)
def test_each_endpoint_asks_for_its_own_permission_after_authentication(app, client, admin_headers,
                                                                         method, path, permission):
    daemon = app.extensions["octyne"]
    daemon.permissions = Deny(permission)
    assert client.open(path, method=method, data=b"not valid").status_code == 401
    response = client.open(path, method=method, headers=admin_headers, data=b"not valid")
    assert (response.status_code, response.get_json()) == (403, FORBIDDEN)
    daemon.permissions = Deny("some.other.permission")
    response = client.open(path, method=method, headers=admin_headers, data=b"not valid")
    assert response.status_code != 403
