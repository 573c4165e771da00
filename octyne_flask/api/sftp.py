"""GET /server/{id}/sftp: how to reach this server's files over SFTP (for the dashboard's panel)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from octyne_flask.api.guard import ANY_METHOD, allow_methods, authenticate, current_daemon, requires
from octyne_flask.auth.users import LOCAL_USER
from octyne_flask.errors import ONLY_GET
from octyne_flask.sftp.login import login_name

blueprint = Blueprint("sftp", __name__)


@blueprint.route("/server/<id>/sftp", methods=ANY_METHOD)
@requires("server{id}.files.view")
def sftp_access(server):
    """``enabled`` (served now), ``port``, the caller's ``username`` for this server (null for ``@local``,
    who has no password) and the ``hostKey`` fingerprint clients show on first connection."""
    allow_methods(("GET",), ONLY_GET)
    user = authenticate()
    status = current_daemon().sftp.status()
    return jsonify(enabled=status.serving, port=status.port,
                   username=None if user == LOCAL_USER else login_name(user, server.name),
                   hostKey=status.host_key or None)
