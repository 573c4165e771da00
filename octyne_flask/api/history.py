"""GET /server/{id}/console/history, /console/history.txt and /console/inputs (extensions.md §B).

Thin: parse the query, ask ``octyne_flask.history.search``, answer.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from octyne_flask.api.guard import ANY_METHOD, allow_methods, requires
from octyne_flask.errors import ONLY_GET
from octyne_flask.files.download import content_disposition
from octyne_flask.history.search import (
    DEFAULT_INPUTS_LIMIT, MAX_LIMIT, export_text, find_lines, number_parameter, parse_request, recent_inputs)

blueprint = Blueprint("history", __name__)


@blueprint.route("/server/<id>/console/history", methods=ANY_METHOD)
@requires("server{id}.console.view")
def history(server):
    """A page of console lines, newest or oldest first by the bounds given, optionally searched."""
    allow_methods(("GET",), ONLY_GET)
    lines, more = find_lines(server.console.history, parse_request(request.args))
    return jsonify(lines=[line.as_json() for line in lines], more=more)


@blueprint.route("/server/<id>/console/history.txt", methods=ANY_METHOD)
@requires("server{id}.console.view", ticket=True)
def history_text(server):
    """The console lines of a time range as a text download, each line after its UTC time."""
    allow_methods(("GET",), ONLY_GET)
    time_from, time_to = number_parameter(request.args, "from"), number_parameter(request.args, "to")
    text = export_text(server.console.history, time_from, time_to)
    response = current_app.response_class((chunk.encode() for chunk in text), content_type="text/plain; charset=utf-8")
    response.headers["Content-Disposition"] = content_disposition(f"{server.name}-console.txt")
    return response


@blueprint.route("/server/<id>/console/inputs", methods=ANY_METHOD)
@requires("server{id}.console.write")
def inputs(server):
    """Who typed what into the console, newest first (``user=`` keeps one user's inputs)."""
    allow_methods(("GET",), ONLY_GET)
    limit = number_parameter(request.args, "limit", 1, MAX_LIMIT) or DEFAULT_INPUTS_LIMIT
    return jsonify(recent_inputs(server.console.history, limit, request.args.get("user")))
