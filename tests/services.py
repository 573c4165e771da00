"""Real redis-server, real nginx and real certificates for the deployment tests.

Each service runs as our own child process on a free loopback port, with all
its files in a temporary directory, and is stopped by the test that started
it. ``scripts/test-services.sh`` installs the Debian packages.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import REPO, free_port

DEPLOY = REPO / "deploy"
# An app that echoes every input line back as "echo:<line>", for console round trips.
ECHO_APP = f"{sys.executable} -c 'import sys; [print(\"echo:\" + line.strip(), flush=True) for line in sys.stdin]'"


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class RedisServer:
    """A throw-away redis-server on its own port; without ``persistent`` a restart brings it back empty."""

    def __init__(self, directory: Path, persistent: bool = False, password: str = ""):
        self.directory = directory
        self.persistent = persistent
        self.password = password
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes" if self.persistent else "no", "--appendfsync", "always",
             "--dir", str(self.directory), "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log"),
             *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, password=self.password or None, decode_responses=True)


NGINX_MAIN = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


class Nginx:
    """The real nginx serving ``deploy/nginx.conf`` as shipped, with only its ports substituted."""

    def __init__(self, directory: Path, api_port: int, web_ui_port: int):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        site = (DEPLOY / "nginx.conf").read_text()
        for shipped, ours in (("listen 80;", f"listen 127.0.0.1:{self.port};"),
                              ("listen [::]:80;", ""),
                              ("127.0.0.1:42069", f"127.0.0.1:{api_port}"),
                              ("127.0.0.1:7877", f"127.0.0.1:{web_ui_port}")):
            assert shipped in site, f"deploy/nginx.conf no longer contains {shipped!r}"
            site = site.replace(shipped, ours)
        (directory / "site.conf").write_text(site)
        (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory))
        self.process = subprocess.Popen(
            [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(directory), "-c", str(directory / "nginx.conf"),
             "-e", str(directory / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port, process=self.process)
        except RuntimeError:
            raise RuntimeError(f"nginx did not start: {self.process.stderr.read().decode(errors='replace')}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process.stderr.close()


def self_signed_certificate(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A fresh RSA key and self-signed certificate for ``name`` and 127.0.0.1, made with openssl."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key
