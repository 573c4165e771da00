"""/server/<id>/compress[/v2] and /decompress: thin wrappers over ``octyne_flask.files.archives``.

The archive modules (with tarfile, gzip and the writers, 0.9 MiB) are imported by the first request
that needs them, not by every worker.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from octyne_flask.api.guard import (
    ANY_METHOD, allow_methods, current_daemon, log_action, read_body, read_json_body, requires)
from octyne_flask.errors import ONLY_POST, ApiError
from octyne_flask.files.ownership import Owner
from octyne_flask.files.paths import request_path

blueprint = Blueprint("archives", __name__)

FILE_LIST_LIMIT = 8 * 1024 * 1024


@blueprint.route("/server/<id>/compress", methods=ANY_METHOD)
@blueprint.route("/server/<id>/compress/v2", methods=ANY_METHOD)
@requires("server{id}.files.compress")
def compress(server):
    allow_methods(("GET", "POST"), "Only GET and POST are allowed!")
    if request.method == "GET":
        token = request.args.get("token")
        if not token:
            raise ApiError(400, "No token provided!")
        return jsonify(current_daemon().compressions.status(token))
    from octyne_flask.files.archives import compress as compression

    archive_type, kind = compression.check_options(request.args.get("archiveType"), request.args.get("compress"))
    files = read_json_body(FILE_LIST_LIMIT)
    base_path = request.args.get("basePath") or "/"
    job = compression.prepare(server.directory, request.args.get("path"), base_path, archive_type, kind, files,
                              Owner.of(server.config.run_as))
    fields = {"server": server.name, "path": job.archive.request, "archiveType": archive_type,
              "compression": kind, "basePath": request_path(base_path), "files": files}
    if request.args.get("async") == "true":
        token = current_daemon().compressions.start(job)
        log_action("server.files.compress", **fields)
        return jsonify(token=token)
    current_daemon().compressions.run(job)
    log_action("server.files.compress", **fields)
    return jsonify(success=True)


@blueprint.route("/server/<id>/decompress", methods=ANY_METHOD)
@requires("server{id}.files.decompress")
def decompress(server):
    allow_methods(("POST",), ONLY_POST)
    from octyne_flask.files.archives import extract as extraction

    destination = read_body().decode("utf-8", "surrogateescape")
    archive, target, kind = extraction.prepare(server.directory, request.args.get("path"), destination)
    daemon = current_daemon()
    extraction.extract(archive, target, kind, daemon.config.files.decompress_limit, daemon.temporaries,
                       Owner.of(server.config.run_as), daemon.stopping)
    log_action("server.files.decompress", server=server.name, archive=archive.request, destination=target.request)
    return jsonify(success=True)
