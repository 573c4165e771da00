"""Who is asking, and may they: the checks every endpoint runs before its own work.

Order (api.md §2): authenticate (401), authorise the named permission (403),
then look the server up (404). ``@requires`` does all three so endpoints
cannot get the order wrong; the console WebSocket uses the pieces directly
because it reports failures after the upgrade.

Permissions come from one access snapshot taken once per request
(``caller_permissions``), so a request sees one consistent set of rules and
pays a dict lookup per check. A permission refusal depends only on the rules
and the server's name, never on whether the server exists.

A request is local only when it really arrived on the Unix socket: the WSGI
layer (``transport.py``) sets ``octyne.local`` from the accepted socket's address
family, and nothing a client sends can set it.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Callable

from flask import current_app, g, request

from octyne_flask.auth.permissions import split_permission
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
        user = _local_account()
    else:
        user = _user_from_credentials(allow_ticket)
    g.octyne_user = user
    return user


def _local_account() -> str:
    """``@local``; or, when ``unixSocket.accounts`` maps peers, the account of the caller's uid.

    root and the daemon's own uid stay ``@local``; an unmapped peer (or a mapped
    account that no longer exists) is refused.
    """
    daemon = current_daemon()
    mapping = daemon.config.unix_socket.accounts
    if not mapping:
        return LOCAL_USER
    peer = request.environ.get(PEER_ENVIRON_KEY)
    uid = peer[1] if peer is not None else None
    if uid in (0, os.getuid()):
        return LOCAL_USER
    account = mapping.get(uid)
    if account is None or not daemon.authenticator.user_exists(account):
        raise ApiError(403, FORBIDDEN)
    g.octyne_via = "unix"
    return account


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


def caller_permissions(server: str | None = None) -> frozenset:
    """What the authenticated caller holds on ``server`` (its global permissions when None)."""
    return caller_permissions_on()(server)


def caller_permissions_on() -> Callable[[str | None], frozenset]:
    """``caller_permissions`` for many servers in a row: the caller and the rules are looked up once."""
    user = authenticate()
    if "octyne_access" not in g:
        g.octyne_access = current_daemon().access.snapshot
    return functools.partial(g.octyne_access.permissions, user)


def authorize(permission: str, server: str | None = None) -> None:
    """Raise 403 unless the caller holds ``permission``: a global name, or a server one on ``server``."""
    if permission not in caller_permissions(server):
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

    by_method = {"*": permission} if isinstance(permission, str) else permission
    names = {method: split_permission(template) for method, template in by_method.items()}

    def decorate(view):
        @functools.wraps(view)
        def guarded(**kwargs):
            authenticate(allow_ticket=ticket)
            server_id = kwargs.pop("id", None)
            name, per_server = names.get(request.method, names["*"])
            authorize(name, server_id if per_server else None)
            if server_id is not None:
                kwargs["server"] = lookup_server(server_id)
            return view(**kwargs)

        return guarded

    return decorate


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
        via = {"via": g.octyne_via} if "octyne_via" in g else {}
        fields = {**fields, **via, "uid": uid, "pid": pid}
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
