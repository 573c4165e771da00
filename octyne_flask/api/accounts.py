"""/accounts: list, create, update (rename and/or password) and delete users (their access entries follow)."""

from flask import Blueprint, jsonify, request

from octyne_flask.api.guard import ANY_METHOD, allow_methods, current_daemon, log_action, read_json_body, requires
from octyne_flask.errors import CREDENTIALS_MISSING, INVALID_JSON, ApiError

blueprint = Blueprint("accounts", __name__)

SECONDARY_NODE = ("This node does not support managing users. "
                  "Perform user management on the primary node!")
PERMISSIONS = {"GET": "accounts.view", "POST": "accounts.create", "PATCH": "accounts.update",
               "DELETE": "accounts.delete", "*": "accounts.view"}


def _credentials_body() -> tuple[str, str]:
    """``(username, password)`` from a JSON object body; absent fields are empty."""
    body = read_json_body()
    if not isinstance(body, dict):
        raise ApiError(400, INVALID_JSON)
    username, password = body.get("username", ""), body.get("password", "")
    if username is None:
        username = ""
    if password is None:
        password = ""
    if not all(isinstance(value, str) and _is_text(value) for value in (username, password)):
        raise ApiError(400, INVALID_JSON)
    return username, password


def _is_text(value: str) -> bool:
    """False for a string with a lone UTF-16 surrogate (JSON's ``"\\ud800"``): no password or name can hold one."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@blueprint.route("/accounts", methods=ANY_METHOD)
@requires(PERMISSIONS)
def accounts():
    daemon = current_daemon()
    if not daemon.authenticator.manages_users:
        raise ApiError(403, SECONDARY_NODE)
    allow_methods(("GET", "POST", "PATCH", "DELETE"), "Only GET, POST, PATCH and DELETE are allowed!")
    handler = {"GET": _list, "POST": _create, "PATCH": _update, "DELETE": _delete}[request.method]
    return handler(daemon.accounts)


def _list(accounts):
    return jsonify(accounts.names())


def _create(accounts):
    username, password = _credentials_body()
    if not username or not password:
        raise ApiError(400, CREDENTIALS_MISSING)
    accounts.create(username, password)
    log_action("accounts.create", newUser=username)
    return jsonify(success=True)


def _update(accounts):
    new_username, password = _credentials_body()
    old_username = request.args.get("username", "")
    if not old_username:
        # Legacy form: the body names the account and only its password changes.
        old_username, new_username = new_username, ""
    # A rename is asked for whenever the query and the body both name a user, even the same one
    # (then the target is taken: 409, as in Octyne).
    renamed = bool(new_username)
    if not old_username or not (renamed or password):
        raise ApiError(400, CREDENTIALS_MISSING)
    accounts.update(old_username, new_username, password)
    fields = {"updatedUser": new_username if renamed else old_username, "changedPassword": bool(password)}
    if renamed:
        fields["oldUsername"] = old_username
    log_action("accounts.update", **fields)
    return jsonify(success=True)


def _delete(accounts):
    username = request.args.get("username", "")
    if not username:
        raise ApiError(400, "Username not provided!")
    accounts.delete(username)
    log_action("accounts.delete", deletedUser=username)
    return jsonify(success=True)
