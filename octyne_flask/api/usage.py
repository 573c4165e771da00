"""GET /server/{id}/stats/history: the last hour of a server's CPU and memory (extensions.md §H)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from octyne_flask.api.guard import ANY_METHOD, allow_methods, requires
from octyne_flask.errors import ONLY_GET

blueprint = Blueprint("usage", __name__)


@blueprint.route("/server/<id>/stats/history", methods=ANY_METHOD)
@requires("server{id}.view")
def stats_history(server):
    """The samples of the last hour, oldest first; empty while the server has not run in that hour."""
    allow_methods(("GET",), ONLY_GET)
    return jsonify(server.usage.as_json())
