"""Every SFTP request asks the daemon's access rules first (extensions.md §A names, §F mapping).

The daemon runs in this process so each test can grant exactly what it needs through its access
store (what ``PATCH /access`` calls: access.json written, the rules swapped); its SFTP server is
driven with paramiko's real client over a real port.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from octyne_flask.auth.passwords import hash_password
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, daemon_config, free_port, wait_until
from tests.test_sftp import SERVER, login_fails, sftp_session

FILES = ("files.view", "files.download", "files.upload", "files.modify", "files.createFolder")
FORBIDDEN = "You are not allowed to access this resource!"


def grant(daemon, grants: dict[str, tuple[str, ...]]) -> None:
    """Give each account exactly these server permissions on ``survival`` and nothing else (``admin``
    stays an administrator), through access.json as ``PATCH /access`` does."""
    body = {"accounts": {account: {"servers": {SERVER: list(permissions)}} for account, permissions in grants.items()}}
    daemon.access_store.patch(body, daemon.users.names())


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A Daemon in this process serving SFTP; each test grants what it needs with ``grant``."""
    from octyne_flask import create_app

    base = tmp_path_factory.mktemp("sftp-permissions")
    (base / SERVER).mkdir()
    port = free_port()
    config = daemon_config(base, {SERVER: {"directory": str(base / SERVER), "command": "sleep 1", "enabled": False}},
                           sftp={"enabled": True, "port": port})
    (base / "config.json").write_text(json.dumps(config))
    users = {"admin": ADMIN_HASH, **{name: hash_password(ADMIN_PASSWORD.encode()) for name in ("lacking", "only")}}
    (base / "users.json").write_text(json.dumps(users))
    app = create_app(str(base / "config.json"), str(base / "users.json"))
    daemon = app.extensions["octyne"]
    daemon.sftp_port = port
    daemon.root = base / SERVER
    wait_until(lambda: daemon.sftp.status().serving)
    yield daemon
    daemon.shutdown()


@pytest.fixture
def root(daemon):
    for parent, folders, files in os.walk(daemon.root, topdown=False):
        for name in files:
            os.unlink(os.path.join(parent, name))
        for name in folders:
            os.rmdir(os.path.join(parent, name))
    (daemon.root / "world").mkdir()
    (daemon.root / "empty").mkdir()
    (daemon.root / "level.dat").write_bytes(b"level")
    return daemon.root


def state(root) -> list:
    return sorted((os.path.relpath(os.path.join(parent, name), root), stat.S_IMODE(os.lstat(os.path.join(parent, name)).st_mode))
                  for parent, folders, files in os.walk(root) for name in folders + files)


# Each SFTP request, the permission it needs, and what it does.
REQUESTS = {
    "listdir": ("files.view", lambda client: client.listdir("/world")),
    "stat": ("files.view", lambda client: client.stat("/level.dat")),
    "lstat": ("files.view", lambda client: client.lstat("/level.dat")),
    "download": ("files.download", lambda client: client.open("/level.dat").read()),
    "upload": ("files.upload", lambda client: client.open("/new.dat", "wb").close()),
    "chmod": ("files.upload", lambda client: client.chmod("/level.dat", 0o600)),
    "rename": ("files.modify", lambda client: client.rename("/level.dat", "/renamed.dat")),
    "remove": ("files.modify", lambda client: client.remove("/level.dat")),
    "rmdir": ("files.modify", lambda client: client.rmdir("/empty")),
    "mkdir": ("files.createFolder", lambda client: client.mkdir("/new")),
}


@pytest.mark.parametrize("request_name", REQUESTS)
def test_each_request_is_refused_without_its_permission_and_allowed_with_it_alone(daemon, root, request_name):
    permission, run = REQUESTS[request_name]
    grant(daemon, {"lacking": tuple(name for name in FILES if name != permission), "only": (permission,)})
    before = state(root)
    with sftp_session(daemon.sftp_port, f"lacking.{SERVER}") as client:
        with pytest.raises(PermissionError, match=FORBIDDEN):
            run(client)
    assert state(root) == before
    with sftp_session(daemon.sftp_port, f"only.{SERVER}") as client:
        run(client)


def test_a_refusal_never_tells_whether_the_path_exists(daemon, root):
    grant(daemon, {"lacking": ("files.upload",)})
    with sftp_session(daemon.sftp_port, f"lacking.{SERVER}") as client:
        for path in ("/level.dat", "/missing", "/../escape"):
            with pytest.raises(PermissionError, match=FORBIDDEN):
                client.stat(path)


def test_an_account_without_any_file_permission_on_the_server_cannot_log_in(daemon, root):
    grant(daemon, {"lacking": ("view", "console.view", "console.write", "control")})
    assert login_fails(daemon.sftp_port, f"lacking.{SERVER}", ADMIN_PASSWORD) == "Authentication failed."


def test_a_permission_taken_away_applies_to_an_open_session_and_an_open_upload(daemon, root):
    grant(daemon, {"only": FILES})
    with sftp_session(daemon.sftp_port, f"only.{SERVER}") as client:
        upload = client.open("/new.dat", "wb")
        upload.write(b"started while allowed")
        grant(daemon, {"only": ("files.view",)})
        with pytest.raises(PermissionError, match=FORBIDDEN):
            upload.write(b" and continued")
            upload.close()
        assert client.listdir("/world") == []
    wait_until(lambda: sorted(os.listdir(root)) == ["empty", "level.dat", "world"])


def test_every_failed_login_costs_one_password_check_whatever_was_wrong(daemon, root):
    """Same timing class: the password is checked before the server, so no failure answers sooner."""
    grant(daemon, {"lacking": ()})
    checked = []
    real_check = daemon.authenticator.check_password

    def counted(account, password):
        checked.append(account)
        return real_check(account, password)

    daemon.authenticator.check_password = counted
    try:
        for name, password in ((f"admin.{SERVER}", "wrong"), ("admin.no-such-server", ADMIN_PASSWORD),
                               ("nobody.survival", ADMIN_PASSWORD), ("lacking.survival", ADMIN_PASSWORD),
                               ("admin", ADMIN_PASSWORD)):
            login_fails(daemon.sftp_port, name, password)
    finally:
        del daemon.authenticator.check_password
    assert checked == ["admin", "admin", "nobody", "lacking", "admin"]
