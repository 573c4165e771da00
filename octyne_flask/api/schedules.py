"""GET /server/{id}/schedules, POST /server/{id}/schedules/{name}/run (extensions.md §C)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from octyne_flask.api.guard import ANY_METHOD, allow_methods, current_daemon, log_action, requires
from octyne_flask.errors import ONLY_GET, ONLY_POST, ApiError

blueprint = Blueprint("schedules", __name__)

NO_SUCH_SCHEDULE = "This schedule does not exist!"


@blueprint.route("/server/<id>/schedules", methods=ANY_METHOD)
@requires("server{id}.schedules.view")
def list_schedules(server):
    """Each schedule with its next run (ms) and how its last run went."""
    allow_methods(("GET",), ONLY_GET)
    return jsonify(current_daemon().schedules.listing(server.name))


@blueprint.route("/server/<id>/schedules/<name>/run", methods=ANY_METHOD)
@requires("server{id}.schedules.run")
def run_schedule(server, name):
    """Run a schedule now, in the background (a restart's warnings are skipped)."""
    allow_methods(("POST",), ONLY_POST)
    if not current_daemon().schedules.run_now(server.name, name):
        raise ApiError(404, NO_SUCH_SCHEDULE)
    log_action("schedule.run", server=server.name, schedule=name)
    return jsonify(success=True)
