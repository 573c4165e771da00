"""What the accepted socket says about a request, decided below Flask where no header reaches.

* A request is local (user ``@local``, no token) only when it arrived on an
  ``AF_UNIX`` socket; the caller's pid/uid/gid come from ``SO_PEERCRED``.
* A request that arrived on the web-UI port sees the API under ``/api`` and
  the dashboard everywhere else.
"""

from __future__ import annotations

import socket
import struct
import weakref

from octyne_flask.api.guard import LOCAL_ENVIRON_KEY, PEER_ENVIRON_KEY

API_PREFIX = "/api"
_PEERCRED = struct.Struct("3i")


def accepted_socket(environ) -> socket.socket | None:
    sock = environ.get("gunicorn.socket")
    return sock if isinstance(sock, socket.socket) else None


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    try:
        return _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError:
        return None


def local_port(sock: socket.socket) -> int | None:
    try:
        return sock.getsockname()[1]
    except (OSError, IndexError, TypeError):
        return None


class TransportMiddleware:
    """WSGI middleware: marks local requests and routes the web-UI port."""

    def __init__(self, api_app, dashboard_app, web_ui_port):
        self.api_app = api_app
        self.dashboard_app = dashboard_app
        self.web_ui_port = web_ui_port  # the port bound at start; a reload cannot move it
        # An accepted TCP socket's own port, asked of the kernel once per connection, not per request.
        self._local_ports: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __call__(self, environ, start_response):
        sock = accepted_socket(environ)
        is_unix = sock is not None and sock.family == socket.AF_UNIX
        environ[LOCAL_ENVIRON_KEY] = is_unix
        environ[PEER_ENVIRON_KEY] = peer_credentials(sock) if is_unix else None
        if self.web_ui_port is not None and sock is not None and not is_unix and self._local_port(sock) == self.web_ui_port:
            path = environ.get("PATH_INFO", "")
            if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
                return self.dashboard_app(environ, start_response)
            environ["PATH_INFO"] = path[len(API_PREFIX):] or "/"
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + API_PREFIX
        return self.api_app(environ, start_response)

    def _local_port(self, sock: socket.socket) -> int | None:
        port = self._local_ports.get(sock)
        if port is None:
            port = local_port(sock)
            if port is not None:
                self._local_ports[sock] = port
        return port
