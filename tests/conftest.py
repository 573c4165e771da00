"""Shared fixtures: the real daemon as a subprocess, and a Flask test client on a temp directory."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config


@contextlib.contextmanager
def daemons_in(base: Path):
    """``start(servers=..., config=..., users=...)`` -> a RunningDaemon in a folder of ``base``, cleaned up on exit."""
    started: list[RunningDaemon] = []

    def start(servers: dict | None = None, config: dict | None = None, users: dict | None = None,
              directory=None, **kwargs) -> RunningDaemon:
        where = directory or base / f"daemon{len(started)}"
        where.mkdir(parents=True, exist_ok=True)
        full_config = daemon_config(where, servers, **(config or {}))
        daemon = RunningDaemon(where, full_config, users if users is not None else {"admin": ADMIN_HASH}, **kwargs)
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.clean_up()


@pytest.fixture
def daemon_factory(tmp_path):
    """``start(servers=..., config=..., users=...)`` -> a RunningDaemon, stopped after the test."""
    with daemons_in(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_daemon_factory(tmp_path_factory):
    """``daemon_factory`` for daemons that a module's tests share, stopped after the module: only for tests that
    leave nothing another test could see (refused changes, reads)."""
    with daemons_in(tmp_path_factory.mktemp("shared")) as start:
        yield start


@pytest.fixture(scope="module")
def shared_daemon(module_daemon_factory):
    """``daemon`` shared by a module's tests that only read or are refused."""
    return module_daemon_factory()


@pytest.fixture
def redis_server(tmp_path):
    """A real, empty redis-server on a free loopback port, stopped after the test."""
    from tests.services import RedisServer

    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def daemon(daemon_factory):
    """One running daemon with no apps, logged in as admin."""
    return daemon_factory()


@pytest.fixture
def app(tmp_path):
    """The Flask app on a temp config and users file (no apps, nothing listening)."""
    from octyne_flask import create_app

    config = daemon_config(tmp_path)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    users_path = tmp_path / "users.json"
    users_path.write_text(json.dumps({"admin": ADMIN_HASH}))
    app = create_app(str(config_path), str(users_path))
    yield app
    app.extensions["octyne"].shutdown()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers(client):
    """Headers carrying a fresh admin token."""
    response = client.get("/login", headers={"Username": "admin", "Password": ADMIN_PASSWORD})
    return {"Authorization": response.get_json()["token"]}
