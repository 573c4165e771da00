"""Serving: an embedded gunicorn bound to the API port, the Unix socket and the web-UI port.

Exactly one ``gthread`` worker holds the daemon (config, auth, the apps), so
it must never be recycled: no request timeout, no ``max_requests``. The worker
class starts stopping the apps the moment it is told to exit, so open consoles
close and the worker does not sit out gunicorn's graceful timeout.

Signals mean what they mean to Octyne, not to gunicorn: SIGHUP reloads the
config inside the worker (gunicorn would restart the worker, and with it every
app), and SIGINT stops as gracefully as SIGTERM. TLS, when enabled, covers the
TCP listeners only; the Unix socket always speaks plain HTTP.
"""

from __future__ import annotations

import functools
import gc
import grp
import logging
import math
import os
import signal
import socket
import ssl
import threading
import time

from gunicorn.app.base import BaseApplication

from octyne_flask.config import Config
from octyne_flask.connections import GuardedThreadWorker, connection_slots
from octyne_flask.errors import ApiError
from octyne_flask.version import API_VERSION, IMPLEMENTATION_VERSION

log = logging.getLogger(__name__)

WORKER_CLASS = "octyne_flask.serving.OctyneWorker"
# On top of the apps' own stop time, for answering the last requests.
SHUTDOWN_MARGIN_SECONDS = 15
STOP_POLL_SECONDS = 0.01  # how often the master looks whether the worker has exited, when stopping


def _daemon_of(worker):
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None) or {}
    return extensions.get("octyne")


class _PlainHttpConfig:
    """The worker's gunicorn config as a Unix-socket connection sees it: the same, minus TLS."""

    is_ssl = False

    def __init__(self, cfg):
        self._cfg = cfg

    def __getattr__(self, name):
        return getattr(self._cfg, name)


class OctyneWorker(GuardedThreadWorker):
    """The guarded gthread worker: stops the apps as soon as it is asked to exit, reloads on SIGHUP."""

    def init_signals(self):
        super().init_signals()
        signal.signal(signal.SIGINT, self.handle_exit)
        signal.signal(signal.SIGHUP, self.handle_reload)
        signal.siginterrupt(signal.SIGHUP, False)

    def load_wsgi(self):
        super().load_wsgi()
        daemon = _daemon_of(self)
        if daemon is not None:  # the API port as bound at start (a reload cannot move it): the quick lane's
            self.quick_lane_port = daemon.config.port

    def lane_may_answer(self) -> bool:
        daemon = _daemon_of(self)
        return daemon is None or daemon.authenticator.checks_tokens_locally  # Redis: a round trip per token

    def enqueue_req(self, conn):
        # gthread wraps every accepted socket in TLS when certfile is set; the Unix socket stays plain.
        if conn.sock.family == socket.AF_UNIX and not isinstance(conn.cfg, _PlainHttpConfig):
            conn.cfg = _PlainHttpConfig(conn.cfg)
        super().enqueue_req(conn)

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        daemon = _daemon_of(self)
        if daemon is not None:
            threading.Thread(target=daemon.shutdown, name="daemon-shutdown", daemon=True).start()

    def handle_reload(self, sig, frame):
        """SIGHUP: re-read config.json like ``GET /config/reload`` (off the signal handler)."""
        daemon = _daemon_of(self)
        if daemon is not None:
            threading.Thread(target=_reload, args=(daemon,), name="config-reload", daemon=True).start()


def _reload(daemon) -> None:
    try:
        daemon.reload_config()
    except ApiError as error:
        log.error("Config reload on SIGHUP failed: %s %s", error.message, error.extra.get("detail", ""))
        return
    log.info("Config reloaded on SIGHUP")


def _forward_hup(arbiter) -> None:
    arbiter.log.info("Hang up: reloading the config in the worker")
    arbiter.kill_workers(signal.SIGHUP)


def _refuse_worker_change(arbiter) -> None:
    arbiter.log.warning("Ignoring TTIN/TTOU: the daemon runs exactly one worker")


def _stop_gracefully(arbiter) -> None:
    raise StopIteration  # what gunicorn's arbiter does for SIGTERM: a graceful halt, exit 0


def stop_promptly(arbiter, gunicorns_stop, graceful: bool = True) -> None:
    """gunicorn's stop, once the worker has exited or the graceful timeout has passed, watched in
    ``STOP_POLL_SECONDS`` steps: gunicorn's own wait looks every 0.1 s and saw the worker gone up to
    0.2 s after it had exited, on every stop and restart. A SIGQUIT meanwhile is left to gunicorn's."""
    arbiter.kill_workers(signal.SIGTERM if graceful else signal.SIGQUIT)
    deadline = time.monotonic() + arbiter.cfg.graceful_timeout
    while arbiter.WORKERS and arbiter.SIG_QUEUE.empty() and time.monotonic() < deadline:
        time.sleep(STOP_POLL_SECONDS)
        arbiter.reap_workers()
    gunicorns_stop(graceful)
    skip_collections_at_exit()


def worker_exit(server, worker):
    """gunicorn hook, in the worker: make sure every app is stopped before it exits."""
    daemon = _daemon_of(worker)
    if daemon is not None:
        daemon.shutdown()
    skip_collections_at_exit()


def skip_collections_at_exit() -> None:
    """Called once a process has nothing left but to exit: the interpreter's garbage collections at exit
    would walk every object once more, for nothing, about 0.1 s of each worker stop (0.03 s of the master's).
    Frozen objects are left to the exit; files are already closed, and the logs are flushed at exit all the same."""
    gc.freeze()


def when_ready_hook(config: Config, users_path: str):
    """The gunicorn hook run in the master after binding: Octyne's signal meanings, a prompt stop, the socket's
    group."""

    def when_ready(server):
        server.handle_hup = lambda: _forward_hup(server)
        server.handle_int = lambda: _stop_gracefully(server)
        server.stop = functools.partial(stop_promptly, server, server.stop)
        # TTIN/TTOU would add a worker (every app started twice) or remove the only one.
        server.handle_ttin = server.handle_ttou = lambda: _refuse_worker_change(server)
        if config.unix_socket.enabled and config.unix_socket.group:
            os.chown(config.socket_path(), -1, grp.getgrnam(config.unix_socket.group).gr_gid)
        print("\n".join(listening_banner(config, users_path)), flush=True)

    return when_ready


def listening_banner(config: Config, users_path: str) -> list[str]:
    """Where the daemon listens, printed once everything is bound (the SFTP host key made at start)."""
    scheme = "https" if config.https.enabled else "http"
    lines = [f"octyne-flask {IMPLEMENTATION_VERSION} (Octyne API {API_VERSION}): "
             f"API on {scheme}://0.0.0.0:{config.port}"]
    if config.unix_socket.enabled:
        lines.append(f"Local API (no login, user @local) on unix socket {config.socket_path()}")
    if config.web_ui.enabled:
        lines.append(f"Web dashboard on {scheme}://0.0.0.0:{config.web_ui.port}")
    if config.sftp.enabled:
        from octyne_flask.sftp.hostkey import describe, host_key_path, load_host_key  # paramiko: only with SFTP

        key = load_host_key(host_key_path(config.sftp, users_path))
        lines.append(f"SFTP on sftp://0.0.0.0:{config.sftp.port} (login <account>.<server>), host key {describe(key)}")
    return lines


def isolation_banner(config: Config, cgroups) -> list[str]:
    """Which cgroups the apps get, and a warning for each app that would run as root."""
    lines = [f"Apps' cgroups: {cgroups.describe()}"]
    if os.geteuid() == 0:
        for name, server in config.servers.items():
            if server.run_as is None or server.run_as.uid == 0:
                lines.append(f"Warning: server {name} runs as root; set servers.{name}.user to run it as another user")
    return lines


def check_tls_files(config: Config) -> None:
    """Raise ValueError with a clear message when HTTPS is on and the cert/key pair cannot be used."""
    if not config.https.enabled:
        return
    for what, path in (("certificate", config.https.cert), ("key", config.https.key)):
        if not os.path.isfile(path):
            raise ValueError(f"HTTPS {what} file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=config.https.cert, keyfile=config.https.key)
    except (OSError, ssl.SSLError) as error:
        raise ValueError(f"cannot use HTTPS certificate {config.https.cert!r} with key "
                         f"{config.https.key!r}: {error}") from None


def socket_umask(config: Config) -> int:
    """0600 for the Unix socket, or 0660 when a group may use it (gunicorn's default is 0777)."""
    return 0o117 if config.unix_socket.group else 0o177


def bind_addresses(config: Config) -> list[str]:
    binds = [f"0.0.0.0:{config.port}"]
    if config.unix_socket.enabled:
        binds.append(f"unix:{config.socket_path()}")
    if config.web_ui.enabled:
        binds.append(f"0.0.0.0:{config.web_ui.port}")
    return binds


def gunicorn_settings(config: Config, users_path: str) -> dict:
    """Every gunicorn setting the daemon needs; shared by the CLI and deploy/gunicorn.conf.py."""
    settings = {
        "bind": bind_addresses(config),
        "workers": 1,
        "worker_class": WORKER_CLASS,
        "threads": config.threads,
        "worker_connections": connection_slots(config.threads),
        "timeout": 0,
        "max_requests": 0,
        "graceful_timeout": math.ceil(config.stop_grace_period) + SHUTDOWN_MARGIN_SECONDS,
        "keepalive": 75,
        "umask": socket_umask(config),
        "accesslog": None,
        "worker_exit": worker_exit,
        "when_ready": when_ready_hook(config, users_path),
        "preload_app": False,
        # gunicorn 27's control socket ($HOME/.gunicorn/gunicorn.ctl) is shared by every daemon of the
        # user and can add workers; the daemon has exactly one worker and its own API.
        "control_socket_disable": True,
    }
    if config.https.enabled:
        settings["certfile"] = config.https.cert
        settings["keyfile"] = config.https.key
    return settings


class EmbeddedGunicorn(BaseApplication):
    """gunicorn run from inside ``python -m octyne_flask``; the app is built in the worker."""

    def __init__(self, config_path: str, users_path: str, config: Config, access_path: str | None = None):
        self.config_path = config_path
        self.users_path = users_path
        self.access_path = access_path
        self.octyne_config = config
        super().__init__()

    def load_config(self):
        for name, value in gunicorn_settings(self.octyne_config, self.users_path).items():
            self.cfg.set(name, value)

    def load(self):
        from octyne_flask import create_app

        return create_app(self.config_path, self.users_path, self.access_path)
