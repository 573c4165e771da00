"""For ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``: the daemon as a WSGI app.

Paths come from ``OCTYNE_CONFIG`` and ``OCTYNE_USERS`` (default ``config.json``
and ``users.json`` in the working directory) and ``OCTYNE_ACCESS`` (default
``access.json`` beside the users file).
"""

import os

from octyne_flask import create_app

app = create_app(os.environ.get("OCTYNE_CONFIG", "config.json"), os.environ.get("OCTYNE_USERS", "users.json"),
                 os.environ.get("OCTYNE_ACCESS"))
