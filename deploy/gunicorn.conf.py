"""gunicorn settings for ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Exactly the settings ``python -m octyne_flask`` uses (one gthread worker that
is never recycled, the API port, the Unix socket, the web-UI port, TLS, the
socket's mode, Octyne's signal meanings), computed from the same config file:
``OCTYNE_CONFIG`` (default ``config.json``); ``wsgi.py`` reads the same
variable and ``OCTYNE_USERS`` (default ``users.json``). Run it from the
repository root, or anywhere with the package importable.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from octyne_flask.cli import configure_logging  # noqa: E402
from octyne_flask.config import ConfigError, load_config  # noqa: E402
from octyne_flask.serving import check_tls_files, gunicorn_settings  # noqa: E402

configure_logging()

try:
    _config, _ = load_config(os.environ.get("OCTYNE_CONFIG", "config.json"))
    check_tls_files(_config)
except (ConfigError, ValueError) as _error:
    sys.exit(f"octyne: {_error}")

globals().update(gunicorn_settings(_config))
