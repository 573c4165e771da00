"""/server/{id}/backups: list, create, download, delete and restore backups (extensions.md §C)."""

from __future__ import annotations

import os

from flask import Blueprint, jsonify, request

from octyne_flask.api.files import file_response
from octyne_flask.api.guard import ANY_METHOD, allow_methods, authorize, current_daemon, log_action, requires
from octyne_flask.errors import ONLY_GET_AND_POST, ONLY_POST

blueprint = Blueprint("backups", __name__)

BACKUP_PERMISSIONS = {"DELETE": "server{id}.backups.delete", "*": "server{id}.backups.view"}


@blueprint.route("/server/<id>/backups", methods=ANY_METHOD)
@requires({"POST": "server{id}.backups.create", "*": "server{id}.backups.view"})
def backups(server):
    """GET: every backup, newest first; POST: start one in the background (202 with its name)."""
    allow_methods(("GET", "POST"), ONLY_GET_AND_POST)
    store = current_daemon().backups
    if request.method in ("GET", "HEAD"):
        return jsonify(backups=store.listing(server))
    name = store.start(server, "manual")
    log_action("server.backups.create", server=server.name, backup=name)
    return jsonify(name=name), 202


@blueprint.route("/server/<id>/backups/<name>", methods=ANY_METHOD)
@requires(BACKUP_PERMISSIONS, ticket=True)
def one_backup(server, name):
    """GET: the archive (``Range`` allowed); DELETE: remove it."""
    allow_methods(("GET", "DELETE"), "Only GET and DELETE are allowed!")
    store = current_daemon().backups
    if request.method in ("GET", "HEAD"):
        authorize("files.download", server.name)
        handle = open(store.path_of(server, name), "rb")
        try:
            response = file_response(handle, os.fstat(handle.fileno()), "application/zstd", name)
        except BaseException:
            handle.close()
            raise
        log_action("server.backups.download", server=server.name, backup=name)
        return response
    store.delete(server, name)
    log_action("server.backups.delete", server=server.name, backup=name)
    return jsonify(success=True)


@blueprint.route("/server/<id>/backups/<name>/restore", methods=ANY_METHOD)
@requires("server{id}.backups.restore")
def restore(server, name):
    """Replace the (stopped) server's directory with the backup, after a ``pre-restore`` backup of it."""
    allow_methods(("POST",), ONLY_POST)
    daemon = current_daemon()
    daemon.backups.restore(server, name, daemon.config.files.decompress_limit)
    log_action("server.backups.restore", server=server.name, backup=name)
    return jsonify(success=True)
