"""GET /login, /logout and /ott: tokens, cookies and one-time tickets."""

from flask import Blueprint, jsonify, request

from octyne_flask.api.guard import (ANY_METHOD, allow_methods, authenticate, client_ip, current_daemon,
                                    is_local, log_action, presented_token)
from octyne_flask.auth.throttle import LoginThrottled
from octyne_flask.errors import CREDENTIALS_MISSING, ONLY_GET, ApiError

blueprint = Blueprint("auth", __name__)

COOKIE_MAX_AGE = 3 * 31 * 24 * 60 * 60
UNIX_SOCKET_REFUSED = "Auth endpoints cannot be called over Unix socket!"
SECONDARY_NODE = "This node does not support authentication. Authenticate with the primary node!"
TOO_MANY_FAILURES = "Too many failed login attempts! Try again later."


def _refuse_local() -> None:
    if is_local():
        raise ApiError(400, UNIX_SOCKET_REFUSED)


def _refuse_secondary() -> None:
    if not current_daemon().authenticator.supports_login:
        raise ApiError(403, SECONDARY_NODE)


def _header_bytes(name: str) -> bytes:
    """A header's raw bytes: WSGI hands headers over decoded as latin-1."""
    return request.headers.get(name, "").encode("latin-1", errors="replace")


@blueprint.route("/login", methods=ANY_METHOD)
def login():
    _refuse_local()
    _refuse_secondary()
    allow_methods(("GET",), ONLY_GET)
    username_bytes, password = _header_bytes("Username"), _header_bytes("Password")
    if not username_bytes or not password:
        raise ApiError(400, CREDENTIALS_MISSING)
    username = username_bytes.decode("utf-8", errors="replace")
    daemon = current_daemon()
    try:
        token = daemon.throttle.attempt(client_ip(), username,
                                        lambda: daemon.authenticator.login(username, password))
    except LoginThrottled:
        raise ApiError(429, TOO_MANY_FAILURES) from None
    if token is None:
        raise ApiError(401, "Invalid username or password!")
    log_action("auth.login", as_user=username)
    if request.args.get("cookie") == "true":
        response = jsonify(success=True)
        response.headers["Set-Cookie"] = (
            f"X-Authentication={token}; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict")
        return response
    return jsonify(token=token)


@blueprint.route("/logout", methods=ANY_METHOD)
def logout():
    _refuse_local()
    user = authenticate()  # the token is checked first, as on every endpoint (api.md §2, §3)
    _refuse_secondary()
    allow_methods(("GET",), ONLY_GET)
    if not current_daemon().authenticator.logout(presented_token()):
        raise ApiError(401, "Invalid token, failed to logout!")
    log_action("auth.logout", as_user=user)
    response = jsonify(success=True)
    response.headers["Set-Cookie"] = "X-Authentication=; Max-Age=0"
    return response


@blueprint.route("/ott", methods=ANY_METHOD)
def one_time_ticket():
    _refuse_local()
    user = authenticate()
    allow_methods(("GET",), ONLY_GET)
    return jsonify(ticket=current_daemon().tickets.issue(user, client_ip()))
