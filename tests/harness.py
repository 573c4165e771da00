"""The real daemon for integration tests: started as users start it, on free ports and a real Unix socket."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "admin-password-for-tests"
# Argon2id with a 1 MiB cost: nearly every test logs in, and a check at Octyne's cost (50 MiB, 4 lanes) takes
# 0.1 s of this machine's two cores. Hashes the daemon writes keep Octyne's cost (test_passwords.py).
ADMIN_HASH = ("$argon2id$v=19$m=1024,t=1,p=1$YzJGc2RFWnZjbFJsYzNSeg"
              "$nlkyyjKF9eQpFSWo+m4Wl8XzsZ++6mJc2oiwmgjXCsE")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll ``predicate`` until it is truthy and return its value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_for_exit(proc: subprocess.Popen, timeout: float) -> int:
    """``proc.wait(timeout)``, woken by the exit itself: Popen's timed wait sleeps in steps of up to 50 ms.

    Raises ``subprocess.TimeoutExpired`` if the process still runs after ``timeout`` seconds.
    """
    if proc.poll() is None:
        pidfd = os.pidfd_open(proc.pid)
        try:
            select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
    return proc.wait(0)


def is_listening_on(port: int) -> bool:
    """Whether a TCP socket listens on ``port``, read from /proc: a probe connection would be a client to the
    daemon (an SFTP session, a failed login)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    return True
    return False


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, never one this test run has handed out before.

    The kernel may give the same ephemeral port to two probes in a row, so two calls made for
    one config (API and web UI ports) could otherwise collide (a CI failure).
    """
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket, the way octynectl talks to the daemon."""

    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class RunningDaemon:
    """One daemon subprocess and the ways to talk to it."""

    def __init__(self, directory: Path, config: dict, users: dict | None, env: dict | None = None,
                 args: list[str] | None = None, wait: bool = True, config_text: str | None = None,
                 keep_files: bool = False):
        """``keep_files``: start on the config and users files already in ``directory`` (a restart)."""
        self.directory = directory
        self.port = config["port"]
        self.ports = {self.port, config.get("webUI", {}).get("port")}
        sftp = config.get("sftp", {})
        self.sftp_port = sftp.get("port") if sftp.get("enabled") else None
        self.config_path = directory / "config.json"
        self.users_path = directory / "users.json"
        self.socket_path = config.get("unixSocket", {}).get("location", "")
        self.log_path = directory / "logs" / "octyne.log"
        if not keep_files:
            self.config_path.write_text(config_text if config_text is not None else json.dumps(config, indent=2))
        if users is not None and not keep_files:
            self.users_path.write_text(json.dumps(users, indent=2))
        self.stdout_path = directory / "daemon.out"
        self._stdout = open(self.stdout_path, "wb")
        command = args if args is not None else [
            sys.executable, "-m", "octyne_flask",
            f"--config={self.config_path}", f"--users={self.users_path}"]
        self.proc = subprocess.Popen(
            command, cwd=directory, stdout=self._stdout, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.token = None
        if wait:
            self.wait_until_ready()

    # -- lifecycle -------------------------------------------------------
    def wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            try:
                requests.get(self.url + "/", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # bound but the worker still booting
                time.sleep(0.01)
        else:
            raise RuntimeError(f"daemon did not start:\n{self.output()}")
        if self.sftp_port:  # SFTP starts beside the worker, once no earlier worker's apps run
            wait_until(lambda: is_listening_on(self.sftp_port), max(deadline - time.monotonic(), 1))
        if self.users_path.exists() and ADMIN_HASH in self.users_path.read_text():
            self.login()

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        response = requests.get(self.url + "/login", headers={"Username": username, "Password": password})
        response.raise_for_status()
        self.token = response.json()["token"]
        self.session.headers["Authorization"] = self.token
        return self.token

    def output(self) -> str:
        self._stdout.flush()
        return self.stdout_path.read_text(errors="replace")

    def close_connections(self) -> None:
        """Close the session's kept-alive connections, on which gunicorn lingers for 2 s at shutdown.

        ``Session.close`` alone leaves them open: urllib3 closes a pool's connections only once the
        pool is garbage, and every response a test still holds keeps its pool alive.
        """
        for adapter in self.session.adapters.values():
            pools = adapter.poolmanager.pools
            for key in pools.keys():
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        self.session.close()

    def hang_up_clients(self) -> None:
        """Close every TCP connection this test process still has open to the daemon, the WebSockets a test
        left open included: each held the daemon's stop 1-2 s (an open console ~1 s, a kept-alive connection
        gunicorn's 2 s linger). Only for the cleanup after a test, never inside one.
        """
        self.close_connections()
        for connection in psutil.Process().net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port in self.ports and connection.fd != -1:
                with contextlib.suppress(OSError), socket.socket(fileno=os.dup(connection.fd)) as duplicate:
                    duplicate.shutdown(socket.SHUT_RDWR)  # reaches the connection; the test's own object is left

    def clean_up(self) -> None:
        """A fixture's cleanup once its tests are done: hang up on the daemon, then stop it."""
        self.hang_up_clients()
        self.stop()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.close_connections()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                wait_for_exit(self.proc, timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._stdout.close()
        return self.proc.returncode

    def wait_for_running(self, *names: str) -> None:
        """Wait until these servers run: the daemon answers before its enabled apps have been spawned."""
        wait_until(lambda: all(self.get("/servers").json()["servers"].get(name) == 1 for name in names))

    # -- requests --------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def local(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """A request over the Unix socket: ``(status, headers, body bytes)``."""
        connection = UnixHTTPConnection(self.socket_path)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def action_log(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        # One object per "\n": str.splitlines() would also split inside values holding U+2028 or U+0085.
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").split("\n") if line.strip()]


def daemon_config(directory: Path, servers: dict | None = None, **extra) -> dict:
    """A config on free ports with the socket inside ``directory``."""
    config = {
        "port": free_port(),
        "webUI": {"enabled": True, "port": free_port()},
        "unixSocket": {"enabled": True, "location": str(directory / "octyne.sock")},
        "logging": {"enabled": True, "path": str(directory / "logs")},
        "console": {"history": {"path": str(directory / "console-history")}},
        "servers": servers or {},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config
