"""The OpenAPI document: ``api/openapi.yaml``, read once (on its first use), with this release's version filled in."""

from __future__ import annotations

import copy
import functools
import os
import re

from octyne_flask.version import IMPLEMENTATION_VERSION

DOCUMENT_PATH = os.path.join(os.path.dirname(__file__), "api", "openapi.yaml")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def _document() -> dict:
    import yaml  # 1 MiB, not loaded until the document is asked for

    with open(DOCUMENT_PATH, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    document["info"]["version"] = IMPLEMENTATION_VERSION
    return document


def openapi_document(api_root: str = "/") -> dict:
    """The document, its ``servers`` pointing at ``api_root`` (``/api`` on the web-UI port)."""
    return {**copy.deepcopy(_document()), "servers": [{"url": api_root}]}


def openapi_path(rule: str) -> str:
    """A Flask rule written as the document writes paths: ``/server/<id>`` is ``/server/{id}``."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def documented_methods(rule: str) -> tuple[str, ...]:
    """The methods the document lists for the path of a Flask rule."""
    item = _document()["paths"].get(openapi_path(rule), {})
    return tuple(method.upper() for method in item if method in HTTP_METHODS)


def follow(document: dict, node: dict) -> dict:
    """``node`` with its local ``$ref`` (``#/components/...``) followed."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def examples(document: dict, response: dict) -> list[dict]:
    """Every Example Object of a response definition (a bare ``example`` as ``{"value": ...}``), refs followed."""
    found = []
    for media in follow(document, response).get("content", {}).values():
        found += [follow(document, example) for example in media.get("examples", {}).values()]
        if "example" in media:
            found.append({"value": media["example"]})
    return found


def operations(document: dict):
    """``(path, method, operation)`` for every operation the document lists, in its order."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation
