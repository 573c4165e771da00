"""WS /server/{id}/console: console v1 (raw text frames) and console-v2 (JSON messages).

v1 answers authentication failures as plain HTTP errors, so they are checked
in ``before_request``, before flask-sock upgrades the connection. console-v2
upgrades first, then authenticates and looks the server up, reporting failures
as an ``error`` message and close code 4000+status.
"""

from __future__ import annotations

from flask import Blueprint, g, request

from octyne_flask.api.console_session import V2, ConsoleSession, Wakeup, finish, json_frame
from octyne_flask.api.console_socket import ConsoleSocket
from octyne_flask.api.guard import (authenticate, authorize, caller_permissions, current_daemon, log_action,
                                    lookup_server)
from octyne_flask.api.websocket import ConnectionClosed, sock
from octyne_flask.errors import ApiError
from octyne_flask.request_body import bytes_behind_request

blueprint = Blueprint("console", __name__)

MAX_INBOUND_MESSAGE = 1024 * 1024
INVALID_SINCE = "Invalid since: it must be the sequence number of a console line."
CONSOLE_ENDPOINT = "console.console"
SERVER_SOCKET_KEYS = ("werkzeug.socket", "gunicorn.socket")  # where simple-websocket looks, in its order


@blueprint.record_once
def configure_websockets(state) -> None:
    """Offer console-v2, cap inbound messages at 1 MiB, and use the cheap wake-up event on every WebSocket."""
    options = state.app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.update(subprotocols=[V2], max_message_size=MAX_INBOUND_MESSAGE, event_class=Wakeup)


def wants_v2() -> bool:
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    return V2 in [name.strip() for name in offered.split(",")]


@blueprint.before_request
def prepare_upgrade():
    """Console v1: 401/403/404 as HTTP answers, before the upgrade. Then hand simple-websocket a ConsoleSocket."""
    if request.endpoint != CONSOLE_ENDPOINT:
        return
    # Output frames are encoded once and shared by every client, so no per-connection compression.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    if not wants_v2():
        g.console_server = _admit(request.view_args["id"])
    # simple-websocket takes its socket from the WSGI environ (TransportMiddleware has read it already), and
    # would not see frames the client sent before the 101, which gunicorn has read along with the request.
    key = next(key for key in SERVER_SOCKET_KEYS if key in request.environ)
    request.environ[key] = ConsoleSocket(request.environ[key], bytes_behind_request(request.environ))


def _admit(server_id: str):
    """Authenticate (a ticket counts, once), authorise viewing the console, find the server."""
    authenticate(allow_ticket=True)
    authorize("console.view", server_id)
    return lookup_server(server_id)


def refuse(ws, error: ApiError) -> None:
    """console-v2's answer to a failed check: an error message, then close code 4000+status."""
    try:
        ws.sock.sendall(json_frame({"type": "error", "message": error.message}))  # after the queued 101
        ws.close(reason=4000 + error.status, message=error.message)
    except (ConnectionClosed, OSError):
        pass  # the client has gone already
    finish(ws)


@sock.route("/server/<id>/console", bp=blueprint)
def console(ws, id):
    """Admit the client (v2: now; v1: already before the upgrade), log the access, run the session."""
    since = None
    if ws.subprotocol == V2:
        try:
            server = _admit(id)
            since = resume_point()
        except ApiError as error:
            refuse(ws, error)
            return
    else:
        server = g.console_server
    daemon = current_daemon()
    user = authenticate()
    read_only = "console.write" not in caller_permissions(id)
    log_action("server.console.access", server=id)

    def on_input(line: str) -> None:
        if "console.write" not in daemon.access.snapshot.permissions(user, id):
            return  # revoked while open: the console is being closed
        server.write_input(line)
        if server.console.history is not None:
            server.console.history.record_input(user, line)
        log_action("server.console.input", server=id, input=line)

    ConsoleSession(ws, server.console, owner=user, v2=ws.subprotocol == V2, read_only=read_only,
                   idle_timeout=daemon.config.console.idle_timeout, on_input=on_input, since=since).run()


def resume_point() -> int | None:
    """console-v2's ``?since=<seq>``: resume after that line (None: start with the scrollback)."""
    since = request.args.get("since")
    if since is None:
        return None
    if not since.isascii() or not since.isdigit() or len(since) > 18:
        raise ApiError(400, INVALID_SINCE)
    return int(since)
