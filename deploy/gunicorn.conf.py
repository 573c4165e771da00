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

from octyne_flask.cli import StartupError, configure_logging, prepare_to_serve  # noqa: E402
from octyne_flask.config import ConfigError, load_config  # noqa: E402
from octyne_flask.serving import gunicorn_settings  # noqa: E402

configure_logging()
_config_path = os.environ.get("OCTYNE_CONFIG", "config.json")
_users_path = os.environ.get("OCTYNE_USERS", "users.json")
try:
    _config, _ = load_config(_config_path)
    # TLS pair checked, the one-daemon-per-config lock taken (kept by this master), users.json created,
    # the SFTP host key made and its port checked.
    _daemon_lock = prepare_to_serve(_config, _config_path, _users_path)
except (ConfigError, StartupError) as _error:
    sys.exit(f"octyne: {_error}")

globals().update(gunicorn_settings(_config, _users_path))
