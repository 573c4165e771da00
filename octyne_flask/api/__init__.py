"""The HTTP API: one blueprint per endpoint group, JSON errors, CORS."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from octyne_flask.api import accounts, archives, auth, config, console, files, history, meta, servers
from octyne_flask.api.websocket import sock
from octyne_flask.errors import INTERNAL, ApiError

log = logging.getLogger(__name__)

BLUEPRINTS = (meta, auth, config, accounts, servers, console, history, files, archives)

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
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def render_http_error(error: HTTPException):
        return jsonify(error=error.name), error.code or 500

    @app.errorhandler(Exception)
    def render_unexpected(error: Exception):
        log.exception("Unhandled error in %s %s", request.method, request.path)
        return jsonify(error=INTERNAL), 500

    @app.before_request
    def answer_preflight():
        if request.method == "OPTIONS" and "Origin" in request.headers:
            return "", 204
        return None

    @app.after_request
    def add_cors(response):
        if "Origin" in request.headers:
            response.headers.update(CORS_HEADERS)
        return response
