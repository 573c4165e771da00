"""Who is asking, and may they: the checks every endpoint runs before its own work.

Order (api.md §2): authenticate (401), authorise the named permission (403),
then look the server up (404). ``@requires`` does all three so endpoints
cannot get the order wrong; the console WebSocket uses the pieces directly
because it reports failures after the upgrade.

A request is local only when it really arrived on the Unix socket: the WSGI
layer (``transport.py``) sets ``octyne.local`` from the accepted socket's address
family, and nothing a client sends can set it.
"""

from __future__ import annotations

import functools
import json

from flask import current_app, g, request

from octyne_flask.auth.permissions import is_known_permission
from octyne_flask.auth.users import LOCAL_USER
from octyne_flask.errors import FORBIDDEN, INVALID_JSON, NO_SUCH_SERVER, NOT_AUTHENTICATED, ApiError
from octyne_flask.netaddr import client_address

# Routes accept every method so authentication runs before the endpoint's own 405.
ANY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")

LOCAL_ENVIRON_KEY = "octyne.local"
PEER_ENVIRON_KEY = "octyne.peer"  # (pid, uid, gid) of a Unix-socket caller


def current_daemon():
    """The Daemon that owns config, auth, supervisor and the action log."""
    return current_app.extensions["octyne"]


def is_local() -> bool:
    return request.environ.get(LOCAL_ENVIRON_KEY) is True


def client_ip() -> str:
    """The client's IP: the peer, or X-Forwarded-For walked right-to-left past trusted proxies."""
    if "octyne_client_ip" not in g:
        g.octyne_client_ip = client_address(
            request.environ.get("REMOTE_ADDR") or "",
            request.headers.get("X-Forwarded-For"),
            current_daemon().config.trusted_proxies,
        )
    return g.octyne_client_ip


def presented_token() -> str | None:
    """The raw ``Authorization`` header, or else the ``X-Authentication`` cookie.

    An empty header counts as absent, as in Octyne: Ecthelion logged in with a
    cookie sends ``Authorization:`` with no value on every request.
    """
    header = request.headers.get("Authorization")
    if header:
        return header
    return request.cookies.get("X-Authentication")


def authenticate(allow_ticket: bool = False) -> str:
    """The requesting user's name; raises 401 when nobody is authenticated."""
    if "octyne_user" in g:
        return g.octyne_user
    if is_local():
        user = LOCAL_USER
    else:
        user = _user_from_credentials(allow_ticket)
    g.octyne_user = user
    return user


def _user_from_credentials(allow_ticket: bool) -> str:
    daemon = current_daemon()
    ticket = request.args.get("ticket") if allow_ticket else None
    if ticket:
        user = daemon.tickets.redeem(ticket, client_ip())
        if user is not None and daemon.authenticator.user_exists(user):
            return user
    token = presented_token()
    if token:
        user = daemon.authenticator.user_of(token)
        if user is not None:
            return user
    raise ApiError(401, NOT_AUTHENTICATED)


def authorize(user: str, permission: str) -> None:
    """Raise 403 unless ``user`` holds ``permission`` (every user holds all, as in Octyne 1.4)."""
    if not is_known_permission(permission):
        raise RuntimeError(f"endpoint names an unknown permission {permission!r}")
    if not current_daemon().permissions.allows(user, permission):
        raise ApiError(403, FORBIDDEN)


def lookup_server(server_id: str):
    """The managed server called ``server_id``; raises 404 when there is none."""
    server = current_daemon().supervisor.get(server_id)
    if server is None:
        raise ApiError(404, NO_SUCH_SERVER)
    return server


def requires(permission: str | dict[str, str], *, ticket: bool = False):
    """Guard a view: authenticate, authorise ``permission``, and resolve ``<id>`` to ``server``.

    ``permission`` may name the server as ``{id}``, e.g. ``"server{id}.files.view"``.
    Where the permission depends on the method, pass ``{"PATCH": "config.edit",
    "*": "config.view"}``: ``"*"`` covers every method not listed.
    """

    def decorate(view):
        @functools.wraps(view)
        def guarded(**kwargs):
            user = authenticate(allow_ticket=ticket)
            server_id = kwargs.pop("id", None)
            authorize(user, _permission_for_method(permission).format(id=server_id))
            if server_id is not None:
                kwargs["server"] = lookup_server(server_id)
            return view(**kwargs)

        return guarded

    return decorate


def _permission_for_method(permission: str | dict[str, str]) -> str:
    if isinstance(permission, str):
        return permission
    return permission.get(request.method, permission["*"])


def allow_methods(allowed: tuple[str, ...], message: str) -> None:
    """Raise the endpoint's own 405, with the ``Allow`` header, unless the request method is one of ``allowed``."""
    if request.method not in allowed and not (request.method == "HEAD" and "GET" in allowed):
        raise ApiError(405, message, headers={"Allow": allow_header(allowed)})


def allow_header(allowed: tuple[str, ...]) -> str:
    """The ``Allow`` value for an endpoint serving ``allowed`` (HEAD comes with GET, OPTIONS with every path)."""
    implied = ("HEAD",) if "GET" in allowed else ()
    return ", ".join(allowed + implied + ("OPTIONS",))


def log_action(action: str, *, as_user: str | None = None, **fields) -> None:
    """Append ``action`` to the action log as done by the current user from the client IP.

    ``as_user`` names the user where the request carries no credentials yet (login).
    """
    peer = request.environ.get(PEER_ENVIRON_KEY)
    if peer is not None:
        pid, uid, _gid = peer
        fields = {**fields, "uid": uid, "pid": pid}
    user = as_user if as_user is not None else authenticate()
    current_daemon().action_log.record(action, client_ip(), user, **fields)


def read_body(limit: int = 8 * 1024 * 1024) -> bytes:
    """The raw request body, whatever the Content-Type says; 400 when it exceeds ``limit``."""
    data = g.octyne_body if "octyne_body" in g else request.stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(400, INVALID_JSON, detail=f"the body is larger than {limit} bytes")
    g.octyne_body = data
    return data


def read_json_body(limit: int = 1024 * 1024):
    """The body parsed as JSON; 400 ``Invalid JSON body!`` when it is not (or is huge)."""
    try:
        return json.loads(read_body(limit))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, INVALID_JSON) from None
