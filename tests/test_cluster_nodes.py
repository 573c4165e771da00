"""The cluster view (extensions.md §G): three real daemons announce themselves through a real redis-server."""

from __future__ import annotations

import json
import os
import signal

import pytest
import requests

from tests.harness import RunningDaemon, free_port, wait_until
from tests.services import RedisServer

NODE_KEYS = {"name", "url", "version", "online", "lastSeen", "self"}


def node_config(redis_server: RedisServer, name: str, role: str = "secondary", **node) -> dict:
    return {"redis": {"enabled": True, "url": redis_server.url, "role": role},
            "node": {"name": name, **node}}


def start_node(daemon_factory, redis_server, name: str, role: str = "secondary", token: str | None = None,
               servers: dict | None = None, **config):
    """A node announcing ``name`` at its API URL; a secondary has no users of its own (and no token unless given)."""
    port = free_port()
    full = {**node_config(redis_server, name, role, url=f"http://127.0.0.1:{port}"), "port": port, **config}
    node = daemon_factory(servers=servers, config=full, users={} if role == "secondary" else None)
    if token:
        node.session.headers["Authorization"] = token
    return node


def listing(node) -> dict[str, dict]:
    response = node.get("/nodes")
    assert response.status_code == 200
    return {entry["name"]: entry for entry in response.json()}


@pytest.fixture
def three_nodes(daemon_factory, redis_server):
    a = start_node(daemon_factory, redis_server, "a", role="primary")
    b = start_node(daemon_factory, redis_server, "b", token=a.token)
    c = start_node(daemon_factory, redis_server, "c", token=a.token)
    return a, b, c


def all_online(node, names) -> bool:
    entries = listing(node)
    return all(name in entries and entries[name]["online"] for name in names)


def test_every_node_lists_all_three_with_the_announced_fields(three_nodes, redis_server):
    for node in three_nodes:
        wait_until(lambda node=node: all_online(node, "abc"), timeout=10)
    a, b, c = three_nodes
    entries = b.get("/nodes").json()
    assert [entry["name"] for entry in entries] == ["b", "a", "c"]  # this node first, then by name
    assert all(set(entry) == NODE_KEYS for entry in entries)
    assert [entry["self"] for entry in entries] == [True, False, False]
    assert entries[1]["url"] == a.url and entries[1]["version"] == "1.4.2"
    announced = json.loads(redis_server.client().get("octyne-node:c"))
    assert set(announced) == {"name", "url", "version", "started"}
    assert announced["url"] == c.url
    assert 10 < redis_server.client().ttl("octyne-node:c") <= 15


def test_a_stopped_node_is_listed_offline_and_comes_back_online(three_nodes, redis_server):
    a, b, c = three_nodes
    wait_until(lambda: all_online(a, "abc"), timeout=10)
    b.stop()
    assert redis_server.client().get("octyne-node:b") is None  # a clean shutdown withdraws at once
    for node in (a, c):
        wait_until(lambda node=node: listing(node)["b"]["online"] is False, timeout=20)
    assert listing(a)["b"]["lastSeen"] > 0
    restarted = RunningDaemon(b.directory, json.loads(b.config_path.read_text()), None, keep_files=True)
    try:
        wait_until(lambda: listing(a)["b"]["online"], timeout=10)
    finally:
        restarted.stop()


def kill(node) -> None:
    """SIGKILL the whole daemon (master and worker): nothing gets to withdraw the announcement."""
    os.killpg(node.proc.pid, signal.SIGKILL)
    node.stop()


def test_a_killed_node_turns_offline_when_its_key_expires(three_nodes, redis_server):
    a, b, _ = three_nodes
    wait_until(lambda: all_online(a, "abc"), timeout=10)
    kill(b)
    assert redis_server.client().get("octyne-node:b") is not None  # nobody withdrew it
    wait_until(lambda: listing(a)["b"]["online"] is False, timeout=20)
    assert "b" in listing(a)


def test_a_killed_node_restarted_at_once_is_not_taken_for_a_live_namesake(three_nodes, redis_server):
    a, b, _ = three_nodes
    store = redis_server.client()
    left_over = wait_until(lambda: store.get("octyne-node:b"), timeout=10)
    kill(b)
    # The left-over key is not refreshed any more: the restarted "b" starts, and announces once it expires.
    restarted = RunningDaemon(b.directory, json.loads(b.config_path.read_text()), None, keep_files=True)
    try:
        wait_until(lambda: store.get("octyne-node:b") not in (None, left_over), timeout=20)
        wait_until(lambda: listing(a)["b"]["online"], timeout=10)
    finally:
        restarted.stop()


def test_a_static_node_is_listed_with_its_reachability(daemon_factory, redis_server):
    go_like = daemon_factory(config={"node": {"name": "go"}})  # no Redis: it never announces
    a = start_node(daemon_factory, redis_server, "a", role="primary",
                   nodes={"go": go_like.url, "nowhere": f"http://127.0.0.1:{free_port()}"})
    wait_until(lambda: listing(a)["go"]["online"], timeout=10)
    entry = listing(a)["go"]
    assert (entry["url"], entry["version"], entry["self"]) == (go_like.url, "1.4.2", False)
    assert listing(a)["nowhere"] == {"name": "nowhere", "url": listing(a)["nowhere"]["url"], "version": "",
                                     "online": False, "lastSeen": None, "self": False}
    go_like.stop()
    wait_until(lambda: listing(a)["go"]["online"] is False, timeout=20)
    assert listing(a)["go"]["lastSeen"] is not None


def test_a_second_live_node_with_the_same_name_refuses_to_start(three_nodes, redis_server, daemon_factory):
    a, *_ = three_nodes
    wait_until(lambda: redis_server.client().get("octyne-node:b"), timeout=10)
    clash = daemon_factory(config=node_config(redis_server, "b"), users={}, wait=False)
    assert clash.proc.wait(30) == 1
    assert "node.name 'b' is already used by a live node" in clash.output()
    assert listing(a)["b"]["online"]


def test_nodes_needs_a_token_and_only_get(three_nodes):
    a, *_ = three_nodes
    response = requests.get(a.url + "/nodes", timeout=10)
    assert (response.status_code, response.json()) == (
        401, {"error": "You are not authenticated to access this resource!"})
    response = a.post("/nodes")
    assert (response.status_code, response.json()) == (405, {"error": "Only GET is allowed!"})
    status, _, body = a.local("GET", "/nodes")
    assert status == 200 and json.loads(body)[0]["name"] == "a"


def test_redis_outage_keeps_local_requests_working_and_nodes_announce_again(three_nodes, redis_server):
    a, b, c = three_nodes
    wait_until(lambda: all_online(a, "abc"), timeout=10)
    redis_server.stop()
    for node in three_nodes:
        status, _, body = node.local("GET", "/nodes")
        assert status == 200 and json.loads(body)[0]["online"]
        assert node.local("GET", "/servers")[0] == 200
    redis_server.start()  # empty: no persistence
    store = redis_server.client()
    wait_until(lambda: all(store.get(f"octyne-node:{name}") for name in "abc"), timeout=15)
    for node in three_nodes:
        assert node.proc.poll() is None
        wait_until(lambda node=node: json.loads(node.local("GET", "/nodes")[2]) and all(
            entry["online"] for entry in json.loads(node.local("GET", "/nodes")[2])), timeout=10)


def test_a_renamed_node_withdraws_its_old_announcement_on_config_edit(daemon_factory, redis_server):
    a = start_node(daemon_factory, redis_server, "a", role="primary")
    store = redis_server.client()
    wait_until(lambda: store.get("octyne-node:a"), timeout=10)
    config = json.loads(a.config_path.read_text())
    config["node"] = {"name": "alpha", "url": "https://alpha.example.com/api"}
    assert a.patch("/config", data=json.dumps(config)).json() == {"success": True}
    assert store.get("octyne-node:a") is None
    announced = wait_until(lambda: store.get("octyne-node:alpha"), timeout=10)
    assert json.loads(announced)["url"] == "https://alpha.example.com/api"
    assert [(entry["name"], entry["url"]) for entry in a.get("/nodes").json()][0] == (
        "alpha", "https://alpha.example.com/api")


def test_a_static_entry_that_does_not_speak_http_is_offline_and_probing_goes_on(daemon_factory):
    """A port that answers garbage (a wrong entry in ``nodes``) must not end the probes of the others."""
    import socket
    import threading

    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen()

    def answer_garbage():
        while True:
            try:
                connection, _ = garbage.accept()
            except OSError:
                return
            with connection:
                connection.recv(1024)
                connection.sendall(b"SSH-2.0-not-http\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        later = daemon_factory(config={"node": {"name": "later"}}, wait=False)
        a = daemon_factory(config={"node": {"name": "a"},
                                   "nodes": {"garbage": f"http://127.0.0.1:{garbage.getsockname()[1]}",
                                             "later": later.url}})
        later.wait_until_ready()
        wait_until(lambda: listing(a)["later"]["online"], timeout=25)
        assert listing(a)["garbage"]["online"] is False
        assert a.proc.poll() is None
    finally:
        garbage.close()
