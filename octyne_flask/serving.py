"""Serving: an embedded gunicorn bound to the API port, the Unix socket and the web-UI port.

Exactly one ``gthread`` worker holds the daemon (config, auth, the apps), so
it must never be recycled: no request timeout, no ``max_requests``. The worker
class starts stopping the apps the moment it is told to exit, so open consoles
close and the worker does not sit out gunicorn's graceful timeout.
"""

from __future__ import annotations

import grp
import logging
import os
import threading

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from octyne_flask.config import Config

log = logging.getLogger(__name__)

WORKER_CLASS = "octyne_flask.serving.OctyneWorker"
# On top of the apps' own stop time, for answering the last requests.
SHUTDOWN_MARGIN_SECONDS = 15


def _daemon_of(worker):
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None) or {}
    return extensions.get("octyne")


class OctyneWorker(ThreadWorker):
    """gunicorn's gthread worker that stops the apps as soon as it is asked to exit."""

    def handle_exit(self, sig, frame):
        super().handle_exit(sig, frame)
        daemon = _daemon_of(self)
        if daemon is not None:
            threading.Thread(target=daemon.shutdown, name="daemon-shutdown", daemon=True).start()


def worker_exit(server, worker):
    """gunicorn hook, in the worker: make sure every app is stopped before it exits."""
    daemon = _daemon_of(worker)
    if daemon is not None:
        daemon.shutdown()


def when_ready(server):
    """gunicorn hook, in the master after binding: hand the Unix socket to its group."""
    config = server.app.octyne_config
    if config.unix_socket.enabled and config.unix_socket.group:
        os.chown(config.socket_path(), -1, grp.getgrnam(config.unix_socket.group).gr_gid)


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


def gunicorn_settings(config: Config) -> dict:
    """Every gunicorn setting the daemon needs; shared by the CLI and deploy/gunicorn.conf.py."""
    settings = {
        "bind": bind_addresses(config),
        "workers": 1,
        "worker_class": WORKER_CLASS,
        "threads": config.threads,
        "worker_connections": config.threads + 100,
        "timeout": 0,
        "max_requests": 0,
        "graceful_timeout": config.stop_grace_period + SHUTDOWN_MARGIN_SECONDS,
        "keepalive": 75,
        "umask": socket_umask(config),
        "accesslog": None,
        "worker_exit": worker_exit,
        "when_ready": when_ready,
        "preload_app": False,
    }
    if config.https.enabled:
        settings["certfile"] = config.https.cert
        settings["keyfile"] = config.https.key
    return settings


class EmbeddedGunicorn(BaseApplication):
    """gunicorn run from inside ``python -m octyne_flask``; the app is built in the worker."""

    def __init__(self, config_path: str, users_path: str, config: Config):
        self.config_path = config_path
        self.users_path = users_path
        self.octyne_config = config
        super().__init__()

    def load_config(self):
        for name, value in gunicorn_settings(self.octyne_config).items():
            self.cfg.set(name, value)

    def load(self):
        from octyne_flask import create_app

        return create_app(self.config_path, self.users_path)
