"""A request body of known length read straight from the connection into the caller's buffer.

gunicorn's body reader hands out each piece of a body as a new ``bytes`` object,
copied through two ``BytesIO`` buffers on the way (receive, keep the surplus,
slice): several fresh megabyte-sized blocks per megabyte uploaded. glibc serves
such blocks from its arenas, where they fragment (``docs/benchmarks.md``, "Soak"),
or, with its mmap threshold held low (``allocator.py``), maps and faults each one
in afresh. Reading with ``recv_into`` into one buffer the reader keeps for the
whole body allocates nothing per piece.

Only gunicorn's own body of known length (``Content-Length``) is read this way;
anything else (a chunked body, another server) is read through its ``read``.
"""

from __future__ import annotations

from gunicorn.http.body import LengthReader


class ConnectionBody:
    """``readinto`` over what gunicorn has buffered of the body, then the socket; keeps gunicorn's count
    of the body's remaining bytes, so the connection's next request starts where it should."""

    def __init__(self, body):
        self._body = body  # gunicorn.http.body.Body over a LengthReader
        self._reader = body.reader
        unreader = self._reader.unreader
        self._sock = unreader.sock
        # Bytes gunicorn read along with the head or an earlier read: its Body's own buffer holds body bytes
        # already counted off the reader's length; the unreader's may run past the body (a pipelined request).
        held = body.buf.getvalue()
        body.buf.seek(0)
        body.buf.truncate()
        ahead = unreader.take_buffered()
        take = min(len(ahead), self._reader.length)
        if take < len(ahead):
            unreader.unread(ahead[take:])
        self._reader.length -= take
        self._held = memoryview(held + ahead[:take])

    def readinto(self, buffer) -> int:
        """Fill up to ``len(buffer)`` bytes of ``buffer``; 0 at the end of the body (or if the client went away)."""
        view = memoryview(buffer).cast("B")
        if self._held:
            size = min(len(view), len(self._held))
            view[:size] = self._held[:size]
            self._held = self._held[size:]
            return size
        size = min(len(view), self._reader.length)
        if size == 0:
            return 0
        try:
            got = self._sock.recv_into(view[:size])
        except Exception:
            self._body.failed = True  # where the next request starts is unknown: gunicorn closes the connection
            raise
        self._reader.length -= got
        return got


def body_of(environ: dict, otherwise):
    """The request body read from the connection itself when it is gunicorn's of known length, else ``otherwise``
    (the framework's stream)."""
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    if isinstance(reader, LengthReader) and hasattr(reader.unreader, "sock"):
        return ConnectionBody(body)
    return otherwise


def bytes_behind_request(environ: dict) -> bytes:
    """What the client sent behind this request, read already along with its head: after an upgrade, the first
    bytes of the new protocol. The request's own body, if it declared one, is read and dropped first.

    Empty when the server is not gunicorn (its buffer is not reachable) or nothing came early.
    """
    body = environ.get("wsgi.input")
    unreader = getattr(getattr(body, "reader", None), "unreader", None)
    if unreader is None:
        return b""
    while body.read(1 << 16):
        pass
    return unreader.take_buffered()
