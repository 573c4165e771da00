"""The Unix socket as local tools use it: owner-only (or one group), plain HTTP, callers identified by SO_PEERCRED."""

import errno
import grp
import json
import os
import pwd
import secrets
import stat
import subprocess
import sys
import tempfile

import pytest

# Talks to the socket as another user with nothing but the standard library (no venv access needed).
PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as error:
    print("refused", error.errno)
    sys.exit(0)
s.sendall(b"GET /config HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.split(b"\\r\\n", 1)[0].decode())
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating a second local user needs root")


@pytest.fixture
def other_user():
    """A throw-away system user (with its own group), removed afterwards."""
    name = "octyne-t" + secrets.token_hex(4)
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def open_directory():
    """A directory every user may traverse, so only the socket's own mode decides who gets in."""
    directory = tempfile.mkdtemp(prefix="octyne-socket-")
    os.chmod(directory, 0o755)
    yield directory
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def probe_as(user, socket_path: str) -> str:
    result = subprocess.run(["/usr/bin/python3", "-c", PROBE, socket_path], user=user.pw_uid, group=user.pw_gid,
                            extra_groups=[], capture_output=True, text=True, timeout=30, cwd="/")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_socket_is_plain_http_and_logs_the_callers_uid_and_pid(daemon):
    mode = os.stat(daemon.socket_path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    status, _, body = daemon.local("PATCH", "/config", body=daemon.config_path.read_bytes())
    assert (status, json.loads(body)) == (200, {"success": True})
    entry = [e for e in daemon.action_log() if e.get("action") == "config.edit"][-1]
    assert (entry["user"], entry["uid"], entry["pid"]) == ("@local", os.getuid(), os.getpid())
    daemon.get("/config")
    tcp_entry = [e for e in daemon.action_log() if e.get("action") == "config.view"][-1]
    assert tcp_entry["user"] == "admin" and "uid" not in tcp_entry and "pid" not in tcp_entry


@needs_root
def test_another_local_user_cannot_connect(daemon_factory, other_user, open_directory):
    socket_path = os.path.join(open_directory, "octyne.sock")
    daemon = daemon_factory(config={"unixSocket": {"location": socket_path}})
    assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
    assert probe_as(other_user, socket_path) == f"refused {errno.EACCES}"
    # The owner still gets in.
    assert daemon.local("GET", "/servers")[0] == 200


@needs_root
def test_the_socket_group_may_connect_and_is_logged_with_its_uid(daemon_factory, other_user, open_directory):
    socket_path = os.path.join(open_directory, "octyne.sock")
    group = grp.getgrgid(other_user.pw_gid).gr_name
    daemon = daemon_factory(config={"unixSocket": {"location": socket_path, "group": group}})
    info = os.stat(socket_path)
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, other_user.pw_gid)
    assert probe_as(other_user, socket_path) == "HTTP/1.1 200 OK"
    daemon.local("GET", "/config")
    entries = [e for e in daemon.action_log() if e.get("action") == "config.view"]
    assert [(e["user"], e["uid"]) for e in entries] == [("@local", other_user.pw_uid), ("@local", os.getuid())]


def test_a_python_client_in_another_process_is_identified(daemon):
    """The pid logged is the caller's process, not ours: a child process makes the request."""
    code = ("import http.client, socket, sys, os\n"
            "c = http.client.HTTPConnection('localhost')\n"
            "c.sock = socket.socket(socket.AF_UNIX); c.sock.connect(sys.argv[1])\n"
            "c.request('GET', '/config'); c.getresponse().read(); print(os.getpid())\n")
    child = subprocess.run([sys.executable, "-c", code, daemon.socket_path], capture_output=True, text=True,
                           check=True, timeout=30)
    entry = [e for e in daemon.action_log() if e.get("action") == "config.view"][-1]
    assert entry["pid"] == int(child.stdout) and entry["uid"] == os.getuid()


# Sends one request as another user and prints the status code and the body.
REQUEST_PROBE = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(f"GET {sys.argv[2]} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n".encode())
data = b""
while chunk := s.recv(65536):
    data += chunk
head, _, body = data.partition(b"\\r\\n\\r\\n")
print(head.split(b" ")[1].decode(), body.decode())
"""


def request_as(user, socket_path: str, path: str) -> tuple[int, dict]:
    result = subprocess.run(["/usr/bin/python3", "-c", REQUEST_PROBE, socket_path, path], user=user.pw_uid,
                            group=user.pw_gid, extra_groups=[], capture_output=True, text=True, timeout=30, cwd="/")
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.partition(" ")
    return int(status), json.loads(body)


@needs_root
def test_mapped_unix_users_act_as_their_account(daemon_factory, other_user, open_directory, tmp_path):
    from tests.harness import ADMIN_HASH

    socket_path = os.path.join(open_directory, "octyne.sock")
    group = grp.getgrgid(other_user.pw_gid).gr_name
    servers = {name: {"directory": str(tmp_path), "command": "true", "enabled": False} for name in ("lobby", "game")}
    daemon = daemon_factory(servers=servers, users={"admin": ADMIN_HASH, "alice": ADMIN_HASH}, config={
        "unixSocket": {"location": socket_path, "group": group, "accounts": {other_user.pw_name: "alice"}}})
    assert daemon.patch("/access", json={"accounts": {"alice": {"servers": {"lobby": "viewer"}}}}).status_code == 200
    assert request_as(other_user, socket_path, "/access/me") == (200, {
        "username": "alice", "admin": False, "permissions": [],
        "servers": {"lobby": ["view", "console.view", "files.view", "files.download", "backups.view",
                              "schedules.view"]}})
    assert request_as(other_user, socket_path, "/servers") == (200, {"servers": {"lobby": 0}})
    assert request_as(other_user, socket_path, "/config") == (403, {"error": "You are not allowed to access this resource!"})
    assert request_as(other_user, socket_path, "/server/lobby/files")[0] == 200
    assert request_as(other_user, socket_path, "/server/game/files") == request_as(
        other_user, socket_path, "/server/ghost/files") == (403, {"error": "You are not allowed to access this resource!"})
    entry = [e for e in daemon.action_log() if e.get("action") == "config.view"]
    assert entry == []  # refused requests are not logged as done
    daemon.local("GET", "/config")  # root, the daemon's own user, stays @local, an administrator
    entry = [e for e in daemon.action_log() if e.get("action") == "config.view"][-1]
    assert (entry["user"], "via" in entry) == ("@local", False)
    assert daemon.patch("/access", json={"accounts": {"alice": {"permissions": ["config.view"]}}}).status_code == 200
    assert request_as(other_user, socket_path, "/config")[0] == 200
    entry = [e for e in daemon.action_log() if e.get("action") == "config.view"][-1]
    assert (entry["user"], entry["via"], entry["uid"]) == ("alice", "unix", other_user.pw_uid)


@needs_root
def test_an_unmapped_unix_user_is_refused_once_peers_are_mapped(daemon_factory, other_user, open_directory):
    socket_path = os.path.join(open_directory, "octyne.sock")
    group = grp.getgrgid(other_user.pw_gid).gr_name
    unused_uid = str(max(user.pw_uid for user in pwd.getpwall()) + 1000)
    daemon = daemon_factory(config={"unixSocket": {"location": socket_path, "group": group,
                                                   "accounts": {unused_uid: "admin"}}})
    forbidden = (403, {"error": "You are not allowed to access this resource!"})
    for path in ("/servers", "/access/me", "/config", "/server/ghost"):
        assert request_as(other_user, socket_path, path) == forbidden
    assert request_as(other_user, socket_path, "/") == (200, {"version": "1.4.2", **daemon.get("/").json()})
    assert daemon.local("GET", "/servers")[0] == 200  # root is still @local


def test_unix_socket_accounts_must_name_real_unix_users(daemon_factory):
    with pytest.raises(RuntimeError) as refused:
        daemon_factory(config={"unixSocket": {"accounts": {"no-such-unix-user-x": "admin"}}})
    assert "unixSocket.accounts.no-such-unix-user-x" in str(refused.value)
