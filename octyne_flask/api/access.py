"""/access and /access/me: read and change who may do what (extensions.md §A).

Thin: the rules, their validation and the file live in ``auth/access.py`` and
``auth/access_store.py``.
"""

from flask import Blueprint, jsonify, request

from octyne_flask.api.guard import (ANY_METHOD, allow_methods, authenticate, current_daemon, log_action,
                                    read_json_body, requires)
from octyne_flask.errors import INVALID_JSON, ONLY_GET, ONLY_GET_AND_PATCH, ApiError

blueprint = Blueprint("access", __name__)

SECONDARY_NODE = ("This node does not support managing access. "
                  "Perform access management on the primary node!")


@blueprint.route("/access", methods=ANY_METHOD)
@requires({"PATCH": "access.edit", "*": "access.view"})
def access():
    allow_methods(("GET", "PATCH"), ONLY_GET_AND_PATCH)
    daemon = current_daemon()
    if request.method == "GET":
        return jsonify(daemon.access.snapshot.overview(daemon.authenticator.account_names()))
    if not daemon.authenticator.manages_users:
        raise ApiError(403, SECONDARY_NODE)
    changes = read_json_body()
    if not isinstance(changes, dict):
        raise ApiError(400, INVALID_JSON)
    daemon.access_store.patch(changes, daemon.users.names())
    log_action("access.edit", changes=changes)
    return jsonify(success=True)


@blueprint.route("/access/me", methods=ANY_METHOD)
def access_me():
    user = authenticate()
    allow_methods(("GET",), ONLY_GET)
    daemon = current_daemon()
    return jsonify(daemon.access.snapshot.summary(user, [name for name, _ in daemon.supervisor.items()]))
