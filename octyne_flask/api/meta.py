"""GET / : the Octyne API level this daemon implements."""

from flask import Blueprint, jsonify

from octyne_flask.version import API_VERSION, IMPLEMENTATION, IMPLEMENTATION_VERSION

blueprint = Blueprint("meta", __name__)


@blueprint.route("/", methods=["GET"])
def version():
    return jsonify(version=API_VERSION, implementation=IMPLEMENTATION,
                   implementationVersion=IMPLEMENTATION_VERSION)
