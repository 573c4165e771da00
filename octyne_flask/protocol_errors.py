"""Requests gunicorn refuses before the app sees them answered in JSON, like every other error of the API.

A request line over gunicorn's limit, oversized or malformed headers, a bad
chunked body: gunicorn answers these itself with a small HTML page. Clients of
this API parse ``{"error": "..."}`` whatever the status, so the worker answers
them with the same status and a JSON body instead. gunicorn writes these pages
through one module function, which this replaces in the worker's process.
"""

from __future__ import annotations

import json

from gunicorn import util


def write_json_error(sock, status_int: int, reason: str, message: str) -> None:
    """gunicorn's ``write_error`` with a JSON body: ``{"error": <what was wrong, or the reason phrase>}``."""
    body = json.dumps({"error": message or reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1", "replace")
    util.write_nonblock(sock, head + body)


def install() -> None:
    util.write_error = write_json_error
