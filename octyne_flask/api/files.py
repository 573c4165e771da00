"""/server/<id>/files, /file and /folder: list, transactions, download, upload, delete, move/copy, new folder.

Thin: parse the request, call ``octyne_flask.files``, log the action, respond.
Path rules, error strings and all file-system work live in ``files/``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from werkzeug.wsgi import FileWrapper, wrap_file

from octyne_flask.api.guard import (
    ANY_METHOD, allow_methods, current_daemon, log_action, read_body, read_json_body, requires)
from octyne_flask.errors import ONLY_POST
from octyne_flask.files.download import content_disposition, open_download
from octyne_flask.files.listing import list_folder
from octyne_flask.files.operations import create_folder, delete_item, move_or_copy
from octyne_flask.files.ownership import Owner
from octyne_flask.files.paths import resolve
from octyne_flask.files.transactions import TransactionRejected, parse_operations, run_transaction, single_operation
from octyne_flask.files.upload import receive_upload
from octyne_flask.request_body import body_of

blueprint = Blueprint("files", __name__)

FILE_METHODS = ("GET", "POST", "PATCH", "DELETE")
FILE_METHODS_MESSAGE = "Only GET, POST, PATCH and DELETE are allowed!"
FILE_PERMISSIONS = {"POST": "server{id}.files.upload", "PATCH": "server{id}.files.modify",
                    "DELETE": "server{id}.files.modify", "*": "server{id}.files.view"}
TRANSACTION_BODY_LIMIT = 8 * 1024 * 1024
RANGE_BUFFER = 1024 * 1024


@blueprint.route("/server/<id>/files", methods=ANY_METHOD)
@requires({"PATCH": "server{id}.files.modify", "*": "server{id}.files.view"})
def files(server):
    allow_methods(("GET", "PATCH"), "Only GET and PATCH are allowed!")
    if request.method == "PATCH":
        return _transaction(server)
    folder = resolve(server.directory, request.args.get("path"), "folder path", follow=True)
    return jsonify(contents=list_folder(folder))


def _transaction(server):
    document = read_json_body(TRANSACTION_BODY_LIMIT)
    try:
        steps = parse_operations(document, server.directory)
    except TransactionRejected as rejected:
        return jsonify(rejected.outcome.body()), rejected.outcome.status
    outcome = run_transaction(steps, server.directory, current_daemon().temporaries, Owner.of(server.config.run_as))
    fields = {"errors": outcome.errors} if outcome.errors else {}
    log_action("server.files.bulk", server=server.name, operations=[step.logged() for step in steps], **fields)
    return jsonify(outcome.body()), outcome.status


@blueprint.route("/server/<id>/file", methods=("GET",))
@requires("server{id}.files.download", ticket=True)
def download(server):
    target = resolve(server.directory, request.args.get("path"), "file path", follow=True)
    handle, info, mime = open_download(target)
    try:
        response = file_response(handle, info, mime, target.request.rsplit("/", 1)[-1])
    except BaseException:  # e.g. 416 for a range beyond the end
        handle.close()
        raise
    log_action("server.files.download", server=server.name, path=target.request)  # only what is answered
    return response


def file_response(handle, info, mime: str, name: str):
    # gunicorn's wrapper streams with sendfile; a Range answer needs one that can seek.
    body = FileWrapper(handle, RANGE_BUFFER) if "Range" in request.headers else wrap_file(request.environ, handle)
    response = current_app.response_class(body, content_type=mime, direct_passthrough=True)
    response.headers["Content-Disposition"] = content_disposition(name)
    response.content_length = info.st_size
    response.last_modified = info.st_mtime
    return response.make_conditional(request.environ, accept_ranges=True, complete_length=info.st_size)


@blueprint.route("/server/<id>/file", methods=tuple(method for method in ANY_METHOD if method != "GET"))
@requires(FILE_PERMISSIONS)
def change_file(server):
    allow_methods(FILE_METHODS, FILE_METHODS_MESSAGE)
    return {"POST": _upload, "PATCH": _move_or_copy, "DELETE": _delete}[request.method](server)


def _upload(server):
    folder = resolve(server.directory, request.args.get("path"), "file path", follow=True)
    daemon = current_daemon()
    body = body_of(request.environ, request.stream)
    saved = receive_upload(body, request.headers.get("Content-Type"), request.content_length, folder,
                           daemon.config.files.upload_limit, daemon.temporaries, Owner.of(server.config.run_as))
    log_action("server.files.upload", server=server.name, path=folder.request, filename=saved.filename)
    return jsonify(success=True)


def _move_or_copy(server):
    step = single_operation(read_body(), server.directory)
    move_or_copy(step.operation, step.source, step.dest, current_daemon().temporaries, Owner.of(server.config.run_as))
    action = "server.files.move" if step.operation == "mv" else "server.files.copy"
    log_action(action, server=server.name, src=step.source.request, dest=step.dest.request)
    return jsonify(success=True)


def _delete(server):
    target = resolve(server.directory, request.args.get("path"), "file path")
    delete_item(target)
    log_action("server.files.delete", server=server.name, path=target.request)
    return jsonify(success=True)


@blueprint.route("/server/<id>/folder", methods=ANY_METHOD)
@requires("server{id}.files.createFolder")
def folder(server):
    allow_methods(("POST",), ONLY_POST)
    target = resolve(server.directory, request.args.get("path"), "folder path")
    create_folder(target, Owner.of(server.config.run_as))
    log_action("server.files.createFolder", server=server.name, path=target.request)
    return jsonify(success=True)
