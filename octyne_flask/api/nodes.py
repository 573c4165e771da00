"""GET /nodes: every node of the cluster, this one included (extensions.md §G); answered from memory."""

from flask import Blueprint, jsonify

from octyne_flask.api.guard import ANY_METHOD, allow_methods, authenticate, current_daemon
from octyne_flask.errors import ONLY_GET

blueprint = Blueprint("nodes", __name__)


@blueprint.route("/nodes", methods=ANY_METHOD)
def nodes():
    authenticate()
    allow_methods(("GET",), ONLY_GET)
    return jsonify([node.to_json() for node in current_daemon().cluster.nodes()])
