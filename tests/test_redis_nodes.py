"""Several nodes sharing one login through a real redis-server, with Octyne's exact keys (api.md §10)."""

import hashlib
import json
import os
import sys
import time

import pytest
import requests
import websocket

from octyne_flask.auth.tokens import new_token
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, free_port, wait_until
from tests.services import RedisServer

INTERNAL = {"error": "Internal Server Error!"}
NOT_AUTHENTICATED = {"error": "You are not authenticated to access this resource!"}


def redis_config(server: RedisServer, role: str) -> dict:
    return {"redis": {"enabled": True, "url": server.url, "role": role}}


@pytest.fixture
def nodes(daemon_factory, redis_server):
    """A primary (logged in as admin) and a secondary (empty users.json) on one Redis."""
    primary = daemon_factory(config=redis_config(redis_server, "primary"))
    secondary = daemon_factory(config=redis_config(redis_server, "secondary"), users={})
    secondary.session.headers["Authorization"] = primary.token
    return primary, secondary


def up(daemon) -> bool:
    try:
        return requests.get(daemon.url + "/", timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


def login(daemon, username="admin", password=ADMIN_PASSWORD):
    return requests.get(daemon.url + "/login", headers={"Username": username, "Password": password}, timeout=10)


def test_primary_writes_octyne_keys_and_its_token_works_on_the_secondary(nodes, redis_server):
    primary, secondary = nodes
    store = redis_server.client()
    assert store.get("octyne-user:admin") == ADMIN_HASH
    assert store.get(f"octyne-token:{primary.token}") == "admin"
    assert secondary.get("/config").status_code == 200
    assert secondary.local("GET", "/config")[0] == 200


def test_secondary_refuses_login_and_accounts_with_octynes_messages(nodes):
    _, secondary = nodes
    response = login(secondary)
    assert (response.status_code, response.json()) == (
        403, {"error": "This node does not support authentication. Authenticate with the primary node!"})
    response = secondary.get("/accounts")
    assert (response.status_code, response.json()) == (
        403, {"error": "This node does not support managing users. Perform user management on the primary node!"})
    status, _, body = secondary.local("GET", "/login", headers={"Username": "admin", "Password": "x"})
    assert (status, json.loads(body)) == (400, {"error": "Auth endpoints cannot be called over Unix socket!"})
    # /logout checks the token first like every endpoint, then refuses; the token stays valid.
    response = requests.get(secondary.url + "/logout", timeout=10)
    assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)
    response = secondary.get("/logout")
    assert (response.status_code, response.json()) == (
        403, {"error": "This node does not support authentication. Authenticate with the primary node!"})
    assert secondary.get("/config").status_code == 200


def test_one_time_tickets_work_on_a_secondary(nodes):
    _, secondary = nodes
    ticket = secondary.get("/ott").json()["ticket"]
    url = f"{secondary.url}/server/nope/file?path=a&ticket={requests.utils.quote(ticket, safe='')}"
    # The ticket authenticates (the 404 comes after 401 and 403); a second use finds it spent.
    response = requests.get(url, timeout=10)
    assert (response.status_code, response.json()) == (404, {"error": "This server does not exist!"})
    response = requests.get(url, timeout=10)
    assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)


def test_keys_written_the_way_octyne_writes_them_are_accepted(nodes, redis_server):
    """A Go Octyne primary stores the hash and the token as plain strings; both our nodes accept them."""
    primary, secondary = nodes
    store = redis_server.client()
    token = new_token()
    store.set("octyne-user:admin", ADMIN_HASH)
    store.set(f"octyne-token:{token}", "admin")
    for node in (primary, secondary):
        assert requests.get(node.url + "/config", headers={"Authorization": token}, timeout=10).status_code == 200
    # A token of a user Redis does not know is refused and deleted.
    orphan = new_token()
    store.set(f"octyne-token:{orphan}", "nobody")
    response = requests.get(secondary.url + "/config", headers={"Authorization": orphan}, timeout=10)
    assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)
    assert store.get(f"octyne-token:{orphan}") is None


def test_account_changes_on_the_primary_reach_every_node(nodes, redis_server):
    primary, secondary = nodes
    store = redis_server.client()
    assert primary.post("/accounts", json={"username": "bob", "password": "bob-password"}).json() == {"success": True}
    assert store.get("octyne-user:bob").startswith("$argon2id$")
    bob = login(primary, "bob", "bob-password").json()["token"]
    assert store.get(f"octyne-token:{bob}") == "bob"
    assert requests.get(secondary.url + "/config", headers={"Authorization": bob}, timeout=10).status_code == 200
    assert primary.delete("/accounts", params={"username": "bob"}).json() == {"success": True}
    assert store.get("octyne-user:bob") is None
    for node in (primary, secondary):
        response = requests.get(node.url + "/config", headers={"Authorization": bob}, timeout=10)
        assert (response.status_code, response.json()) == (401, NOT_AUTHENTICATED)
    assert store.get(f"octyne-token:{bob}") is None


def test_primary_mirrors_users_json_replaced_on_disk(nodes, redis_server):
    primary, _ = nodes
    store = redis_server.client()
    store.set("octyne-user:stale", "0" * 64)  # a user that is in Redis but not in users.json
    legacy = hashlib.sha256(b"carol-password").hexdigest()
    replacement = primary.users_path.with_name("users.json.new")
    replacement.write_text(json.dumps({"admin": ADMIN_HASH, "carol": legacy}))
    os.replace(replacement, primary.users_path)
    wait_until(lambda: store.get("octyne-user:carol") == legacy)
    wait_until(lambda: store.get("octyne-user:stale") is None)
    assert login(primary, "carol", "carol-password").status_code == 200


def test_redis_outage_answers_500_quickly_and_recovers_without_a_restart(nodes, redis_server):
    primary, secondary = nodes
    pids = (primary.proc.pid, secondary.proc.pid)
    redis_server.stop()
    for node in (primary, secondary):
        started = time.monotonic()
        response = node.get("/config", timeout=10)
        assert (response.status_code, response.json()) == (500, INTERNAL)
        assert time.monotonic() - started < 3
        assert node.get("/").status_code == 200
        assert node.local("GET", "/config")[0] == 200
    response = login(primary)
    assert (response.status_code, response.json()) == (500, INTERNAL)

    redis_server.start()  # back, but empty: no persistence
    store = redis_server.client()
    wait_until(lambda: store.get("octyne-user:admin") == ADMIN_HASH, timeout=5)
    token = login(primary).json()["token"]
    for node in (primary, secondary):
        assert requests.get(node.url + "/config", headers={"Authorization": token}, timeout=10).status_code == 200
    assert (primary.proc.poll(), secondary.proc.poll()) == (None, None)
    assert (primary.proc.pid, secondary.proc.pid) == pids


def test_primary_restores_users_when_redis_comes_back_empty(nodes, redis_server):
    primary, _ = nodes
    store = redis_server.client()
    store.flushall()
    wait_until(lambda: store.get("octyne-user:admin") == ADMIN_HASH, timeout=4)
    assert login(primary).status_code == 200


def test_secondary_never_writes_users(daemon_factory, redis_server):
    daemon_factory(config=redis_config(redis_server, "secondary"), users={"eve": "1" * 64})
    time.sleep(1.5)
    assert redis_server.client().keys("octyne-user:*") == []


def test_config_switches_between_memory_and_redis_live(daemon_factory, redis_server):
    daemon = daemon_factory()
    memory_token = daemon.token
    config = json.loads(daemon.config_path.read_text())
    store = redis_server.client()

    config["redis"] = {"enabled": True, "url": redis_server.url, "role": "primary"}
    assert daemon.patch("/config", data=json.dumps(config)).json() == {"success": True}
    wait_until(lambda: store.get("octyne-user:admin") == ADMIN_HASH)
    token = daemon.login()
    assert store.get(f"octyne-token:{token}") == "admin"
    assert daemon.get("/config").status_code == 200
    assert requests.get(daemon.url + "/config", headers={"Authorization": memory_token}, timeout=10).status_code == 401

    config["redis"] = {"enabled": False}
    daemon.config_path.write_text(json.dumps(config))
    assert daemon.get("/config/reload").json() == {"success": True}
    assert daemon.get("/config").status_code == 401  # the Redis token does not exist in memory
    daemon.login()
    assert daemon.get("/config").status_code == 200
    assert store.get("octyne-user:admin") == ADMIN_HASH  # leaving Redis deletes nobody


def test_a_switch_to_an_unreachable_redis_is_refused_and_changes_nothing(daemon_factory, redis_server):
    daemon = daemon_factory(config=redis_config(redis_server, "primary"))
    store = redis_server.client()
    before = daemon.config_path.read_bytes()
    config = json.loads(before)
    config["redis"]["url"] = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    response = daemon.patch("/config", data=json.dumps(config))
    assert response.status_code == 400
    assert "Redis" in response.json().get("detail", "")
    assert daemon.config_path.read_bytes() == before
    assert daemon.get("/config").status_code == 200  # the old authenticator and token still work
    assert store.get("octyne-user:admin") == ADMIN_HASH

    # The same switch through config.json and a reload: refused, the running config stays.
    daemon.config_path.write_text(json.dumps(config))
    response = daemon.get("/config/reload")
    assert response.status_code == 500 and "Redis" in response.json().get("detail", "")
    assert response.json()["error"] == "An error occurred while reading config!"
    assert daemon.get("/config").status_code == 200
    time.sleep(1.2)
    assert store.get("octyne-user:admin") == ADMIN_HASH
    assert store.get(f"octyne-token:{daemon.token}") == "admin"


def test_invalid_role_refuses_to_start(daemon_factory, redis_server):
    daemon = daemon_factory(config=redis_config(redis_server, "tertiary"), wait=False)
    assert daemon.proc.wait(15) == 1
    assert "redis.role" in daemon.output()


def test_primary_starts_while_redis_is_down_and_catches_up(daemon_factory, redis_server):
    """Apps must not depend on Redis to start; logins work as soon as Redis is up."""
    redis_server.stop()
    primary = daemon_factory(config=redis_config(redis_server, "primary"), wait=False)
    wait_until(lambda: up(primary), timeout=30)
    response = login(primary)
    assert (response.status_code, response.json()) == (500, INTERNAL)
    assert primary.local("GET", "/config")[0] == 200
    redis_server.start()
    wait_until(lambda: redis_server.client().get("octyne-user:admin") == ADMIN_HASH, timeout=5)
    assert login(primary).status_code == 200


def test_a_user_deleted_while_redis_was_down_is_deleted_when_it_returns(daemon_factory, tmp_path):
    """Redis kept its data (append-only file); the primary's deletion during the outage must still reach it."""
    persistent = RedisServer(tmp_path / "persistent-redis", persistent=True)
    try:
        primary = daemon_factory(config=redis_config(persistent, "primary"))
        secondary = daemon_factory(config=redis_config(persistent, "secondary"), users={})
        assert primary.post("/accounts", json={"username": "bob", "password": "bob-password"}).status_code == 200
        bob = login(primary, "bob", "bob-password").json()["token"]
        persistent.stop()
        primary.local("DELETE", "/accounts?username=bob")
        persistent.start()
        store = persistent.client()
        assert store.get(f"octyne-token:{bob}") == "bob"  # the data survived the restart
        wait_until(lambda: store.get("octyne-user:bob") is None, timeout=5)
        response = requests.get(secondary.url + "/config", headers={"Authorization": bob}, timeout=10)
        assert response.status_code == 401
    finally:
        persistent.stop()


def test_password_protected_redis_and_no_password_in_errors(daemon_factory, tmp_path):
    protected = RedisServer(tmp_path / "protected-redis", password="s3cret-pass")
    try:
        daemon = daemon_factory()
        config = json.loads(daemon.config_path.read_text())
        config["redis"] = {"enabled": True, "url": f"redis://:wrong-pass@127.0.0.1:{protected.port}", "role": "primary"}
        response = daemon.patch("/config", data=json.dumps(config))
        assert response.status_code == 400
        assert "wrong-pass" not in response.text and "redis://:***@127.0.0.1" in response.json()["detail"]
        assert "wrong-pass" not in daemon.output()

        config["redis"]["url"] = f"redis://:s3cret-pass@127.0.0.1:{protected.port}"
        assert daemon.patch("/config", data=json.dumps(config)).json() == {"success": True}
        wait_until(lambda: protected.client().get("octyne-user:admin") == ADMIN_HASH)
        token = daemon.login()
        assert protected.client().get(f"octyne-token:{token}") == "admin"
    finally:
        protected.stop()


# -- access control across nodes (extensions.md §A) ------------------------------------------------

FORBIDDEN = {"error": "You are not allowed to access this resource!"}


@pytest.fixture
def access_nodes(daemon_factory, redis_server, tmp_path):
    """A primary and a secondary serving the same two apps, and a token of ``alice`` (not an administrator)."""
    servers = {"lobby": {"directory": str(tmp_path), "command": f"{sys.executable} -c 'input()'"},
               "game": {"directory": str(tmp_path), "command": "true", "enabled": False}}
    primary = daemon_factory(servers=servers, config=redis_config(redis_server, "primary"),
                             users={"admin": ADMIN_HASH, "alice": ADMIN_HASH})
    secondary = daemon_factory(servers=servers, config=redis_config(redis_server, "secondary"), users={})
    secondary.session.headers["Authorization"] = primary.token
    assert primary.patch("/access", json={"accounts": {"alice": {"servers": {"lobby": "viewer"}}}}).status_code == 200
    return primary, secondary, login(primary, "alice").json()["token"]


def servers_seen_by(node, token) -> dict:
    return requests.get(node.url + "/servers", headers={"Authorization": token}, timeout=10).json()


def test_a_grant_changed_on_the_primary_is_enforced_on_the_secondary_within_two_seconds(access_nodes, redis_server):
    primary, secondary, alice = access_nodes
    wait_until(lambda: servers_seen_by(secondary, alice) == {"servers": {"lobby": 1}}, timeout=2)
    assert json.loads(redis_server.client().get("octyne-access")) == json.loads(
        (primary.directory / "access.json").read_text())
    response = requests.get(secondary.url + "/config", headers={"Authorization": alice}, timeout=10)
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    changed_at = time.monotonic()
    primary.patch("/access", json={"accounts": {"alice": {"servers": {"game": ["view"]}}}})
    wait_until(lambda: servers_seen_by(secondary, alice) == {"servers": {"game": 0}}, timeout=2)
    assert time.monotonic() - changed_at < 2


def test_a_console_on_the_secondary_closes_within_two_seconds_of_a_revocation(access_nodes):
    primary, secondary, alice = access_nodes
    wait_until(lambda: servers_seen_by(secondary, alice) == {"servers": {"lobby": 1}}, timeout=2)
    ws = websocket.create_connection(secondary.ws_url("/server/lobby/console"), timeout=10,
                                     subprotocols=["console-v2"], header=[f"Authorization: {alice}"])
    assert json.loads(ws.recv()) == {"type": "settings", "readOnly": True}
    ws.recv()
    primary.patch("/access", json={"accounts": {"alice": {}}})
    ws.settimeout(2)
    assert json.loads(ws.recv()) == {"type": "error", "message": "This console has been closed."}


def test_the_secondary_shows_the_rules_and_sends_changes_to_the_primary(access_nodes):
    primary, secondary, _ = access_nodes
    wait_until(lambda: secondary.get("/access").json()["enabled"], timeout=2)
    assert secondary.get("/access").json() == primary.get("/access").json()
    response = secondary.patch("/access", json={"accounts": {"alice": {}}})
    assert (response.status_code, response.json()) == (403, {
        "error": "This node does not support managing access. Perform access management on the primary node!"})


def test_rules_lost_by_redis_stay_enforced_and_the_primary_writes_them_again(access_nodes, redis_server):
    primary, secondary, alice = access_nodes
    wait_until(lambda: servers_seen_by(secondary, alice) == {"servers": {"lobby": 1}}, timeout=2)
    store = redis_server.client()
    store.delete("octyne-access")
    assert servers_seen_by(secondary, alice) == {"servers": {"lobby": 1}}  # never "off" meanwhile
    wait_until(lambda: store.get("octyne-access") is not None, timeout=3)
    assert servers_seen_by(secondary, alice) == {"servers": {"lobby": 1}}


def test_without_rules_in_redis_a_secondary_is_octyne(daemon_factory, redis_server):
    """A cluster whose primary never wrote rules (access control off, or a Go Octyne primary): all may do all."""
    primary = daemon_factory(config=redis_config(redis_server, "primary"), users={"admin": ADMIN_HASH, "bob": ADMIN_HASH})
    secondary = daemon_factory(config=redis_config(redis_server, "secondary"), users={})
    wait_until(lambda: redis_server.client().get("octyne-access") == "null", timeout=2)
    bob = login(primary, "bob").json()["token"]
    assert requests.get(secondary.url + "/config", headers={"Authorization": bob}, timeout=10).status_code == 200
