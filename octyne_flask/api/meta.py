"""GET / (the Octyne API level this daemon implements) and GET /openapi.json (the API described)."""

from flask import Blueprint, jsonify, request

from octyne_flask.openapi import openapi_document
from octyne_flask.version import API_VERSION, IMPLEMENTATION, IMPLEMENTATION_VERSION

blueprint = Blueprint("meta", __name__)


@blueprint.route("/", methods=["GET"])
def version():
    return jsonify(version=API_VERSION, implementation=IMPLEMENTATION,
                   implementationVersion=IMPLEMENTATION_VERSION)


@blueprint.route("/openapi.json", methods=["GET"])
def openapi():
    return jsonify(openapi_document(request.script_root or "/"))
