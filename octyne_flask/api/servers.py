"""GET /servers, GET /server/{id} (status and stats), POST /server/{id} (START, TERM, KILL, STOP)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from octyne_flask.api.guard import (ANY_METHOD, allow_methods, authenticate, caller_permissions_on, current_daemon,
                                    log_action, read_body, requires)
from octyne_flask.errors import ONLY_GET, ONLY_GET_AND_POST, ApiError
from octyne_flask.supervisor import total_memory

blueprint = Blueprint("servers", __name__)


@blueprint.route("/servers", methods=ANY_METHOD)
def list_servers():
    """Every server the user may view: its status, or status and toDelete with ?extrainfo=true."""
    authenticate()
    allow_methods(("GET",), ONLY_GET)
    extra = request.args.get("extrainfo") == "true"
    servers = {}
    permissions_on = caller_permissions_on()
    for name, server in current_daemon().supervisor.items():
        if "view" in permissions_on(name):
            servers[name] = {"status": server.status, "toDelete": server.to_delete} if extra else server.status
    return jsonify(servers=servers)


@blueprint.route("/server/<id>", methods=ANY_METHOD)
@requires({"POST": "server{id}.control", "*": "server{id}.view"})
def one_server(server):
    """GET: status and stats; POST: a control operation."""
    allow_methods(("GET", "POST"), ONLY_GET_AND_POST)
    if request.method == "POST":
        return control(server)
    stats = server.stats()
    limits = server.limits
    answer = dict(status=stats.status, uptime=stats.uptime_ns, cpuUsage=stats.cpu_percent or 0,
                  memoryUsage=stats.memory_bytes, totalMemory=limits.memory or total_memory(),
                  toDelete=server.to_delete)
    if request.args.get("extrainfo") == "true":  # our addition, like Octyne's GET /servers?extrainfo=true
        answer["limits"] = {"memory": limits.memory, "cpu": limits.cpu, "pids": limits.pids,
                            "openFiles": limits.open_files}
        answer["outOfMemory"] = server.out_of_memory
    return jsonify(**answer)


def control(server):
    """Apply one operation word from the body, case-insensitive."""
    try:
        operation = read_body(1024).decode("utf-8", "replace").strip().upper()
    except ApiError:  # a body far longer than any operation word
        operation = ""
    if operation == "START":
        started = server.start()
        log_action("server.start", server=server.name)
        return jsonify(success=started)
    if operation == "TERM":
        server.term()
        log_action("server.stop", server=server.name)
    elif operation in ("KILL", "STOP"):
        server.kill()
        log_action("server.kill", server=server.name)
    else:
        raise ApiError(400, "Invalid operation requested!")
    return jsonify(success=True)
