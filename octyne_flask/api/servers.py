"""Placeholder: filled in by the issue that builds this endpoint group."""

from flask import Blueprint

blueprint = Blueprint("servers", __name__)
