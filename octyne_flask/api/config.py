"""GET/PATCH /config and GET /config/reload."""

from flask import Blueprint, Response, jsonify, request

from octyne_flask.api.guard import ANY_METHOD, allow_methods, current_daemon, log_action, read_body, requires
from octyne_flask.errors import INVALID_JSON, ONLY_GET, ONLY_GET_AND_PATCH, ApiError

blueprint = Blueprint("config", __name__)


@blueprint.route("/config", methods=ANY_METHOD)
@requires({"PATCH": "config.edit", "*": "config.view"})
def config():
    allow_methods(("GET", "PATCH"), ONLY_GET_AND_PATCH)
    daemon = current_daemon()
    if request.method != "PATCH":
        data = daemon.read_config_bytes()
        log_action("config.view")
        return Response(data, content_type="application/json")
    try:
        text = read_body().decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, INVALID_JSON, detail="the config is not UTF-8 text") from None
    new_config = daemon.edit_config(text)
    log_action("config.edit", newConfig=new_config.raw)
    return jsonify(success=True)


@blueprint.route("/config/reload", methods=ANY_METHOD)
@requires("config.reload")
def reload():
    allow_methods(("GET",), ONLY_GET)
    current_daemon().reload_config()
    log_action("config.reload")
    return jsonify(success=True)
