"""GET /login, /logout, /ott and token handling (api.md §3), through the Flask test client."""

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.harness import ADMIN_HASH, ADMIN_PASSWORD

NOT_AUTHENTICATED = {"error": "You are not authenticated to access this resource!"}


def login(client, username="admin", password=ADMIN_PASSWORD, **kwargs):
    return client.get("/login", headers={"Username": username, "Password": password}, **kwargs)


def test_login_returns_a_128_character_base64_token(client):
    response = login(client)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    token = response.get_json()["token"]
    assert len(token) == 128 and len(base64.b64decode(token, validate=True)) == 96


@pytest.mark.parametrize("headers", [{}, {"Username": "admin"}, {"Password": "x"},
                                     {"Username": "", "Password": "x"}, {"Username": "admin", "Password": ""}])
def test_login_without_credentials_is_400(client, headers):
    response = client.get("/login", headers=headers)
    assert response.status_code == 400
    assert response.get_json() == {"error": "Username or password not provided!"}


@pytest.mark.parametrize("username, password", [("admin", "wrong"), ("nobody", ADMIN_PASSWORD)])
def test_wrong_credentials_are_401(client, username, password):
    response = login(client, username, password)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Invalid username or password!"}


def test_cookie_login_sets_octynes_cookie(client):
    response = login(client, query_string={"cookie": "true"})
    assert response.get_json() == {"success": True}
    cookie = response.headers["Set-Cookie"]
    token = cookie.split(";")[0].removeprefix("X-Authentication=")
    assert len(token) == 128
    assert cookie == f"X-Authentication={token}; Max-Age=8035200; HttpOnly; SameSite=Strict"
    assert client.get("/accounts", headers={"Cookie": f"X-Authentication={token}"}).status_code == 200


@pytest.mark.parametrize("token", ["", "x", "A" * 127, "A" * 129, "!" * 128, "Bearer " + "A" * 128, "A" * 128])
def test_malformed_or_unknown_tokens_are_simply_401(client, token):
    response = client.get("/accounts", headers={"Authorization": token})
    assert response.status_code == 401 and response.get_json() == NOT_AUTHENTICATED


def test_authorization_header_wins_over_cookie(client, admin_headers):
    headers = {**admin_headers, "Cookie": "X-Authentication=" + "A" * 128}
    assert client.get("/accounts", headers=headers).status_code == 200
    headers = {"Authorization": "A" * 128, "Cookie": "X-Authentication=" + admin_headers["Authorization"]}
    assert client.get("/accounts", headers=headers).status_code == 401


def test_an_empty_authorization_header_falls_back_to_the_cookie(client):
    """Ecthelion after a cookie login sends ``Authorization:`` empty on every request, as Octyne accepts."""
    login(client, query_string={"cookie": "true"})  # the test client keeps the cookie
    assert client.get("/accounts", headers={"Authorization": ""}).status_code == 200
    response = client.get("/logout", headers={"Authorization": ""})
    assert (response.status_code, response.get_json()) == (200, {"success": True})
    assert client.get("/accounts", headers={"Authorization": ""}).status_code == 401


def test_logout_invalidates_the_token_and_clears_the_cookie(client, admin_headers):
    response = client.get("/logout", headers=admin_headers)
    assert response.get_json() == {"success": True}
    assert response.headers["Set-Cookie"].startswith("X-Authentication=; Max-Age=0")
    assert client.get("/accounts", headers=admin_headers).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "nonsense"}, {"Authorization": "A" * 128}])
def test_logout_without_a_valid_token_is_the_normal_401(client, headers):
    response = client.get("/logout", headers=headers)
    assert response.status_code == 401 and response.get_json() == NOT_AUTHENTICATED


def test_tickets_are_16_random_bytes_and_need_auth(client, admin_headers):
    assert client.get("/ott").status_code == 401
    ticket = client.get("/ott", headers=admin_headers).get_json()["ticket"]
    assert len(base64.b64decode(ticket)) == 16


def test_login_throttle_is_per_username_and_never_before_ten_failures(client):
    for attempt in range(10):
        assert login(client, "admin", f"wrong{attempt}").status_code == 401
    blocked = login(client, "admin", "wrong-again")
    assert blocked.status_code == 429
    assert "error" in blocked.get_json()
    # Even the right password is refused while throttled, and the limit is per username.
    assert login(client).status_code == 429
    assert login(client, "someone-else", "x").status_code == 401


def test_login_throttle_per_ip_allows_fifty_failures(client):
    for attempt in range(50):
        assert login(client, f"user{attempt}", "x").status_code == 401
    assert login(client, "user-final", "x").status_code == 429
    other_ip = login(client, "user-final", "x", environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert other_ip.status_code == 401


def parallel_logins(daemon, usernames):
    """One wrong-password login per name, all at once from one client IP; their statuses in order."""
    def attempt(username):
        return requests.get(daemon.url + "/login", headers={"Username": username, "Password": "wrong"},
                            timeout=30).status_code

    with ThreadPoolExecutor(max_workers=len(usernames)) as pool:
        return list(pool.map(attempt, usernames))


def test_parallel_wrong_logins_for_one_account_check_at_most_ten(daemon_factory):
    daemon = daemon_factory()
    statuses = parallel_logins(daemon, ["admin"] * 100)
    assert (statuses.count(401), statuses.count(429)) == (10, 90)
    assert requests.get(daemon.url + "/login", headers={"Username": "admin", "Password": ADMIN_PASSWORD},
                        timeout=30).status_code == 429


def test_parallel_wrong_logins_from_one_ip_check_at_most_fifty(daemon_factory):
    accounts = [f"user{number}" for number in range(20)]
    daemon = daemon_factory(users={name: ADMIN_HASH for name in ["admin", *accounts]})
    statuses = parallel_logins(daemon, accounts * 5)  # 5 per account: only the per-IP bound can stop them
    assert (statuses.count(401), statuses.count(429)) == (50, 50)


def test_login_logs_the_action_without_the_password(app, client):
    login(client)
    daemon = app.extensions["octyne"]
    with open(daemon.action_log.path, encoding="utf-8") as handle:
        entries = [json.loads(line) for line in handle]
        handle.seek(0)
        assert ADMIN_PASSWORD not in handle.read()
    entry = entries[-1]
    assert list(entry)[:6] == ["level", "ts", "msg", "action", "ip", "user"]
    assert (entry["action"], entry["user"], entry["ip"], entry["msg"]) == (
        "auth.login", "admin", "127.0.0.1", "user performed action")
    assert isinstance(entry["ts"], float)


def test_logout_is_logged_as_the_user_who_logged_out(app, client, admin_headers):
    client.get("/logout", headers=admin_headers)
    with open(app.extensions["octyne"].action_log.path, encoding="utf-8") as handle:
        entry = [json.loads(line) for line in handle][-1]
    assert list(entry) == ["level", "ts", "msg", "action", "ip", "user"]
    assert (entry["action"], entry["user"], entry["ip"]) == ("auth.logout", "admin", "127.0.0.1")
