"""The dashboard on the web-UI port: static files, with Octyne's rewrites for dashboard exports.

Serves the built-in dashboard (``webui/static``) or the folder named by
``webUI.directory`` (e.g. a static export of Ecthelion). Octyne's rules for
such exports: a path without a dot gets ``.html``; ``/dashboard/<server>/...``
comes from ``/dashboard/[server]/...``; anything under
``/dashboard/<server>/files`` from ``/dashboard/[server]/files/[[...path]].html``.
"""

from __future__ import annotations

import os
import posixpath

from werkzeug.security import safe_join
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

BUILT_IN = os.path.join(os.path.dirname(__file__), "static")


def candidate_paths(path: str) -> list[str]:
    """The files a request path may be served from, in order of preference."""
    clean = posixpath.normpath("/" + path.lstrip("/"))
    parts = [p for p in clean.split("/") if p]
    if not parts:
        return ["index.html"]
    candidates = ["/".join(parts)]
    if parts[0] == "dashboard" and len(parts) >= 2:
        if len(parts) >= 3 and parts[2] == "files":
            candidates.append("dashboard/[server]/files/[[...path]].html")
        else:
            candidates.append("/".join(["dashboard", "[server]", *parts[2:]]))
    with_html = []
    for candidate in candidates:
        last = candidate.rsplit("/", 1)[-1]
        if "." not in last:
            with_html += [candidate + ".html", candidate + "/index.html"]
    return candidates + with_html


def resolve(root: str, path: str) -> str | None:
    """The file under ``root`` that serves ``path``, never anything outside ``root``."""
    if "\x00" in path:  # the file system calls below would raise on it
        return None
    for candidate in candidate_paths(path):
        full = safe_join(root, candidate)
        if full is None:
            continue
        real = os.path.realpath(full)
        if os.path.commonpath([real, os.path.realpath(root)]) != os.path.realpath(root):
            continue
        if os.path.isfile(real):
            return real
    return None


class Dashboard:
    """A tiny WSGI app serving one folder."""

    def __init__(self, directory: str = ""):
        self.root = os.path.abspath(directory) if directory else BUILT_IN

    def __call__(self, environ, start_response):
        request = Request(environ)
        found = resolve(self.root, request.path) if request.method in ("GET", "HEAD") else None
        if found is None:
            response = Response('{"error":"Not Found"}', status=404, content_type="application/json")
        else:
            response = send_file(found, environ=environ, conditional=True, max_age=0)
        return response(environ, start_response)
