"""The real daemon, started as users start it: TCP port, Unix socket, first start, crash safety."""

import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.harness import REPO, RunningDaemon, daemon_config

FIXTURES = REPO.parent / "shared" / "fixtures" / "octyne-1.4.2"
OCTYNE_PASSWORDS = {
    "admin": "NUg7obDaZl16ml26",
    "alice": "correct horse battery staple",
    "bob-2_x@y": "p@ss wörd ✓",
    "legacy": "legacy-password",
}


def test_first_start_generates_admin_owner_only_and_prints_the_password(tmp_path):
    daemon = RunningDaemon(tmp_path, daemon_config(tmp_path), users=None)
    try:
        assert stat.S_IMODE(os.stat(daemon.users_path).st_mode) == 0o600  # it holds a password hash
        match = re.search(r"The file (.+) has been generated with the default user 'admin' and password '([^']+)'\.",
                          daemon.output())
        assert match and match.group(1) == str(daemon.users_path)
        password = match.group(2)
        assert len(password) == 16 and "=" not in password
        daemon.login("admin", password)
        response = daemon.get("/config")
        assert response.status_code == 200
        assert response.content == daemon.config_path.read_bytes()
    finally:
        daemon.stop()


def test_users_written_by_octyne_log_in_with_raw_utf8_passwords(daemon_factory):
    users = json.loads((FIXTURES / "users.json").read_text())
    daemon = daemon_factory(users=users)
    for user, password in OCTYNE_PASSWORDS.items():
        response = requests.get(daemon.url + "/login", headers={"Username": user, "Password": password.encode("utf-8")})
        assert response.status_code == 200, user
        assert len(response.json()["token"]) == 128


def test_unix_socket_is_local_without_a_token_and_owner_only(daemon):
    mode = stat.S_IMODE(os.stat(daemon.socket_path).st_mode)
    assert mode == 0o600
    status, headers, body = daemon.local("GET", "/accounts")
    assert status == 200 and json.loads(body) == ["admin"]
    assert headers["Content-Type"] == "application/json"
    status, _, body = daemon.local("GET", "/login", headers={"Username": "admin", "Password": "x"})
    assert (status, json.loads(body)) == (400, {"error": "Auth endpoints cannot be called over Unix socket!"})
    for path in ("/logout", "/ott"):
        assert daemon.local("GET", path)[0] == 400


def test_socket_requests_are_logged_as_local_with_peer_credentials(daemon):
    daemon.local("GET", "/config")
    entry = [e for e in daemon.action_log() if e.get("action") == "config.view"][-1]
    assert entry["user"] == "@local"
    assert entry["uid"] == os.getuid()
    assert isinstance(entry["pid"], int) and entry["pid"] > 0


FORGERY_HEADERS = [
    {"X-Forwarded-For": "127.0.0.1"},
    {"X-Real-IP": "127.0.0.1"},
    {"Forwarded": "for=unix"},
    {"Host": "localhost"},
    {"Host": "2f746d702f6f6374796e652e736f636b:0"},
    {"X-Forwarded-Proto": "unix"},
    {"Remote-Addr": ""},
    {"X-Octyne-Local": "true"},
    {"Octyne.local": "1"},
]


@pytest.mark.parametrize("headers", FORGERY_HEADERS)
def test_no_header_makes_a_tcp_request_local(shared_daemon, headers):
    response = requests.get(shared_daemon.url + "/accounts", headers=headers)
    assert response.status_code == 401


def test_proxy_protocol_preamble_does_not_make_a_request_local(shared_daemon):
    with socket.create_connection(("127.0.0.1", shared_daemon.port)) as connection:
        connection.sendall(b"PROXY UNKNOWN\r\nGET /accounts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = connection.recv(65536)
    assert not reply.startswith(b"HTTP/1.1 200")


def test_a_stale_socket_file_is_replaced(tmp_path):
    config = daemon_config(tmp_path)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(config["unixSocket"]["location"])
    stale.close()
    daemon = RunningDaemon(tmp_path, config, users={"admin": "x" * 64})
    try:
        assert daemon.local("GET", "/accounts")[0] == 200
    finally:
        daemon.stop()


def test_connection_upgrade_without_upgrade_header_is_an_ordinary_request(daemon):
    response = daemon.get("/accounts", headers={"Connection": "Upgrade"})
    assert response.status_code == 200 and response.json() == ["admin"]


def test_keep_alive_connections_serve_many_requests(daemon):
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Content-Length")
            assert json.loads(response.read())["version"] == "1.4.2"
            assert not response.will_close
    finally:
        connection.close()


def test_cors_headers_on_errors_over_tcp(daemon):
    response = requests.get(daemon.url + "/accounts", headers={"Origin": "https://dash.example"})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_startup_line_in_the_action_log(daemon):
    first = daemon.action_log()[0]
    assert (first["msg"], first["port"], first["level"]) == ("started octyne", daemon.port, "info")


def test_users_file_edits_on_disk_apply_within_seconds_and_broken_files_are_ignored(daemon):
    users = json.loads(daemon.users_path.read_text())
    replacement = daemon.users_path.with_name("users.new")
    replacement.write_text(json.dumps({**users, "legacy": "6bed82f7da9a703f86f1d89288910edc2681b26d010db89c3666807d364e68a6"}))
    os.replace(replacement, daemon.users_path)  # a new inode, like editors and config tools write
    deadline = time.monotonic() + 5
    while daemon.get("/accounts").json() != ["admin", "legacy"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    daemon.users_path.write_text("{ not json")
    time.sleep(2)
    assert daemon.get("/accounts").json() == ["admin", "legacy"]
    assert requests.get(daemon.url + "/login", headers={"Username": "legacy", "Password": "legacy-password"}).ok


def test_twenty_concurrent_account_creations_over_http(daemon):
    def create(index):
        return daemon.post("/accounts", data=json.dumps({"username": f"u{index}", "password": "pw"})).status_code

    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(create(i))) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 20
    assert set(json.loads(daemon.users_path.read_text())) == {"admin", *(f"u{i}" for i in range(20))}


def test_kill_9_during_writes_never_leaves_a_truncated_file(daemon):
    config_text = daemon.config_path.read_text()
    stop = threading.Event()

    def hammer(kind):
        index = 0
        while not stop.is_set():
            index += 1
            try:
                if kind == "users":
                    daemon.post("/accounts", data=json.dumps({"username": f"k{index}", "password": "pw"}), timeout=5)
                else:
                    daemon.patch("/config", data=config_text + f"\n// edit {index}\n" + "/* padding */" * 2000, timeout=5)
            except requests.RequestException:
                return

    workers = [threading.Thread(target=hammer, args=(kind,)) for kind in ("users", "config", "config")]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join()
    users = json.loads(daemon.users_path.read_text())
    assert "admin" in users
    assert daemon.config_path.read_text().startswith(config_text.strip())


def run_cli(*arguments, cwd):
    return subprocess.run([sys.executable, "-m", "octyne_flask", *arguments], cwd=cwd, capture_output=True,
                          text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_flag(tmp_path, flag):
    result = run_cli(flag, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("octyne version 1.4.2")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_flag(tmp_path, flag):
    result = run_cli(flag, cwd=tmp_path)
    assert result.returncode == 0 and "--config=<path>" in result.stdout and "--users=<path>" in result.stdout


def test_missing_default_config_exits_1_naming_the_file(tmp_path):
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 1 and "config.json" in result.stderr
    assert not (tmp_path / "users.json").exists()


def test_broken_config_exits_1_with_line_and_column(tmp_path):
    (tmp_path / "mine.json").write_text('{\n  "port": 1,\n  "x": oops\n}')
    result = run_cli("--config=mine.json", cwd=tmp_path)
    assert result.returncode == 1
    assert "mine.json" in result.stderr and "line 3" in result.stderr and "column" in result.stderr


def test_wrong_type_in_config_exits_1_naming_the_key(tmp_path):
    (tmp_path / "config.json").write_text('{"port": "x"}')
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 1 and "'port' must be an integer" in result.stderr


@pytest.mark.parametrize("text, message", [
    ('{"stopGracePeriod": 1e999}', "'stopGracePeriod' must be a number from 0 to 86400"),
    ('{"servers": {"a": {"directory": ".", "command": "x", "stop": {"command": "stop", "timeout": 1e10}}}}',
     "'servers.a.stop.timeout' must be a number from 0 to 86400"),
    ('{"threads": -4}', "'threads' must be an integer from 4 to 10000"),
])
def test_a_number_out_of_range_exits_1_naming_the_key(tmp_path, text, message):
    (tmp_path / "config.json").write_text(text)
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "users.json").exists()


def test_default_paths_resolve_against_the_working_directory(tmp_path):
    config = daemon_config(tmp_path)
    config["logging"]["path"] = "relative-logs"
    daemon = RunningDaemon(tmp_path, config, users=None, args=[sys.executable, "-m", "octyne_flask"])
    try:
        assert (tmp_path / "users.json").exists()
        assert (tmp_path / "relative-logs" / "octyne.log").exists()
    finally:
        daemon.stop()


def test_unix_socket_and_web_ui_can_be_switched_off(daemon_factory):
    daemon = daemon_factory(config={"unixSocket": {"enabled": False}, "webUI": {"enabled": False}})
    web_ui_port = json.loads(daemon.config_path.read_text())["webUI"]["port"]
    assert daemon.get("/accounts").json() == ["admin"]
    assert not os.path.exists(daemon.socket_path)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web_ui_port), timeout=5).close()
