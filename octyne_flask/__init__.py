"""octyne-flask: an Octyne 1.4 compatible daemon that runs apps and manages them over HTTP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


def create_app(config_path: str = "config.json", users_path: str = "users.json",
               access_path: str | None = None) -> Flask:
    """Build the daemon and its API; start the user watcher and the enabled apps.

    The launchers (``cli.prepare_to_serve``, also used by deploy/gunicorn.conf.py)
    create a missing users file before anything binds. Flask and the rest are
    imported here, not with the package: the gunicorn master imports
    ``octyne_flask.cli`` and only supervises the worker that calls this.
    """
    from flask import Flask

    from octyne_flask.api import register_api
    from octyne_flask.daemon import Daemon
    from octyne_flask.transport import TransportMiddleware
    from octyne_flask.webui import Dashboard

    daemon = Daemon(config_path, users_path, access_path)
    app = Flask(__name__, static_folder=None)  # the API port serves no files of its own
    app.json.sort_keys = False
    app.json.compact = True
    app.extensions["octyne"] = daemon
    register_api(app)
    app.wsgi_app = TransportMiddleware(app.wsgi_app, Dashboard(daemon.config.web_ui.directory),
                                       daemon.config.web_ui.port if daemon.config.web_ui.enabled else None)
    daemon.start()
    daemon.action_log.started(daemon.config.port)
    return app
