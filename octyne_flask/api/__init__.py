"""The HTTP API: one blueprint per endpoint group, JSON errors, CORS."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from octyne_flask.api import (access, accounts, archives, auth, backups, config, console, files, history, meta,
                              nodes, schedules, servers, sftp, usage)
from octyne_flask.api.guard import allow_header
from octyne_flask.api.websocket import sock
from octyne_flask.errors import INTERNAL, ApiError
from octyne_flask.openapi import documented_methods

log = logging.getLogger(__name__)

BLUEPRINTS = (meta, auth, config, accounts, access, nodes, servers, usage, console, history, files, archives,
              schedules, backups, sftp)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Username, Password",
    "Access-Control-Allow-Methods": "GET, POST, PUT, HEAD, OPTIONS, PATCH, DELETE",
}


def register_api(app: Flask) -> None:
    """Attach every blueprint, the WebSocket extension, error rendering and CORS."""
    sock.init_app(app)
    for module in BLUEPRINTS:
        app.register_blueprint(module.blueprint)

    @app.errorhandler(ApiError)
    def render_api_error(error: ApiError):
        return jsonify(error.body()), error.status, error.headers

    @app.errorhandler(HTTPException)
    def render_http_error(error: HTTPException):
        # Keep what the status calls for (Allow on a 405, Content-Range on a 416), not the HTML type.
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return jsonify(error=error.name), error.code or 500, headers

    @app.errorhandler(Exception)
    def render_unexpected(error: Exception):
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return jsonify(error=INTERNAL), 500

    @app.before_request
    def answer_options():
        """A CORS preflight: 204 without authentication. A plain OPTIONS: ``Allow`` lists the documented methods
        (routes take every method so that authentication comes before the endpoint's own 405)."""
        if request.method != "OPTIONS":
            return None
        if "Origin" in request.headers:
            return "", 204
        if request.url_rule is None:
            return None  # routing answers it (404)
        response = app.make_default_options_response()
        response.headers["Allow"] = allow_header(documented_methods(request.url_rule.rule))
        return response

    @app.after_request
    def add_cors(response):
        if "Origin" in request.headers:
            response.headers.update(CORS_HEADERS)
        return response
