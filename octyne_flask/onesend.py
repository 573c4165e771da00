"""gunicorn responses whose head leaves with the body: one ``send`` per small answer.

gunicorn's HTTP/1 ``Response`` writes the status line and headers with one
``sendall`` and each body chunk with another. For a small JSON answer that is
two syscalls, each a release and a fight to re-take the GIL in a worker whose
threads share it, and two segments for the client to wake up for. Here the
head waits for the first body chunk and the two go out together, unless the
chunk is large (then copying it would cost more than the syscall saved) or the
body is chunked or sent with ``sendfile``; those still go out head first.
"""

from __future__ import annotations

from gunicorn.http import wsgi

JOIN_LIMIT = 64 * 1024  # a first chunk up to this size is sent together with the head


class _HeadCapture:
    """Stands in for the socket while gunicorn writes the head, and keeps the bytes."""

    def __init__(self):
        self.data = b""

    def sendall(self, data: bytes) -> None:
        self.data += data


class OneSendResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, the head held back until the first body chunk (or the end)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._held_head = b""

    def send_headers(self):
        if self.headers_sent:
            return
        sock, capture = self.sock, _HeadCapture()
        self.sock = capture
        try:
            super().send_headers()
        finally:
            self.sock = sock
        self._held_head = capture.data

    def _emit_body(self, data):
        if self._held_head and not self.chunked and len(data) <= JOIN_LIMIT:
            head, self._held_head = self._held_head, b""
            self.sock.sendall(head + data)
            return
        self._send_held_head()
        super()._emit_body(data)

    def sendfile(self, respiter):
        self.send_headers()
        self._send_held_head()
        return super().sendfile(respiter)

    def close(self):
        self.send_headers()
        self._send_held_head()  # no body (HEAD, 204, an empty answer)
        super().close()

    def _send_held_head(self) -> None:
        if self._held_head:
            head, self._held_head = self._held_head, b""
            self.sock.sendall(head)


def install() -> None:
    """Make gunicorn build HTTP/1 responses as ``OneSendResponse`` in this process (the worker).

    gunicorn takes a response class only from its HTTP/2 path; its HTTP/1 worker uses the
    module's ``Response``, which this replaces.
    """
    wsgi.Response = OneSendResponse
