"""The quick lane: one thread that answers kept-alive TCP clients' status requests itself.

A status request (``GET /servers``, ``GET /server/{id}``) costs the worker far
less than the thread hand-offs around it: with 16 or 64 clients each polling,
every request thread wakes from its own ``poll``, and each of its system calls
hands the GIL to another. The lane is one thread with one epoll set over the
connections that sent such a request last. It answers the requests that reach
them one after another, in the order they arrive, with no hand-off at all.

What it takes: a request that waits in the kernel's buffer whole, as one
request head and nothing more, for one of those two paths, without a body, an
upgrade or ``Expect``; and only while answering waits on nothing but the worker
itself (``lane_may_answer``: not while tokens are checked in Redis). Anything
else (another path, a partial or pipelined head, end of stream) goes to the
thread pool as before, and so does a connection idle for ``IDLE_SECONDS`` (to
the main loop's poller, which keeps its keep-alive and idle bounds).

Nothing in the lane waits on a client. Its sockets are non-blocking whatever
gunicorn asks (``LaneSocket``): the head is in the buffer before it is read, and
an answer the kernel does not take at once is finished by a pool thread.
"""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time

log = logging.getLogger(__name__)

IDLE_SECONDS = 1.0  # a connection with no request for this long goes back to the main loop's poller
PEEK_BYTES = 4096  # a longer head is not a status request; gunicorn reads 8 KiB at a time, so one read takes it
QUICK_REQUEST_LINE = re.compile(rb"GET /(?:servers|server/[^/?%\s]+)(?:\?\S*)? HTTP/1\.1\r\n")
BODY_OR_UPGRADE = (b"\r\ncontent-length:", b"\r\ntransfer-encoding:", b"\r\nupgrade:", b"\r\nexpect:")

_unsent: dict[socket.socket, bytearray] = {}  # answers' ends the kernel did not take; only the lane thread uses it


def is_quick(buffered: bytes) -> bool:
    """Whether ``buffered`` (what waits on a connection) is exactly one whole status request without a body."""
    if len(buffered) >= PEEK_BYTES or buffered.find(b"\r\n\r\n") != len(buffered) - 4:
        return False
    if QUICK_REQUEST_LINE.match(buffered) is None:
        return False
    head = buffered.lower()
    return not any(name in head for name in BODY_OR_UPGRADE)


class LaneSocket(socket.socket):
    """A connection's socket while the lane serves it: non-blocking whatever gunicorn asks, and ``sendall`` keeps
    what the kernel does not take at once for a pool thread to send (``take_unsent``)."""

    __slots__ = ()

    def setblocking(self, flag):
        pass

    def settimeout(self, value):
        pass

    def sendall(self, data, flags=0):
        held = _unsent.get(self)
        if held is not None:
            held += data
            return
        try:
            sent = self.send(data, flags)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            _unsent[self] = bytearray(memoryview(data)[sent:])


def take_unsent(sock: socket.socket) -> bytes:
    return bytes(_unsent.pop(sock, b""))


class _Held:
    """A connection in the lane: its descriptor, the class its socket had before, when it last sent a request,
    and whether the lane has given it up."""

    __slots__ = ("conn", "fd", "own_class", "last_request", "released")

    def __init__(self, conn):
        self.conn = conn
        self.fd = conn.sock.fileno()
        self.released = False
        self.own_class = type(conn.sock)
        self.last_request = time.monotonic()


class QuickLane(threading.Thread):
    """The lane's thread and its connections. ``worker`` is the gthread worker (``connections.py``): it serves a
    request (``serve_one``), and takes connections into its pool (``enqueue_req``, ``finish_in_pool``) or back
    into its main loop (``return_to_poller``)."""

    def __init__(self, worker):
        super().__init__(name="quick-lane", daemon=True)
        self._worker = worker
        self._epoll = select.epoll()
        self._lock = threading.Lock()  # _held and _stopped: the answering threads add, the lane removes
        self._held: dict[int, _Held] = {}
        self._stopped = False

    def adopt(self, conn) -> bool:
        """Take a kept-alive connection whose answer has gone out (called by the thread that answered it); False
        once the lane has given its connections back, when the worker stops."""
        with self._lock:  # all of it: a connection taken after the lane's last look would be held by no one
            if self._stopped:
                return False
            conn.sock.setblocking(False)
            held = _Held(conn)
            self._held[held.fd] = held
            conn.sock.__class__ = LaneSocket
            self._epoll.register(conn.sock, select.EPOLLIN)
        return True

    def run(self) -> None:
        next_sweep = time.monotonic() + IDLE_SECONDS
        while self._worker.alive:
            for fd, _ in self._epoll.poll(IDLE_SECONDS / 4):
                with self._lock:
                    held = self._held.get(fd)
                if held is None:
                    continue
                try:
                    self._answer(held)
                except Exception:  # the lane goes on whatever happens on one connection
                    log.exception("The quick lane failed on a connection from %s", held.conn.client)
                    if self._release(held) is not None:
                        self._worker.finish_in_pool(held.conn, b"", False)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + IDLE_SECONDS / 4
                with self._lock:
                    idle = [held for held in self._held.values() if held.last_request <= now - IDLE_SECONDS]
                for held in idle:
                    self._worker.return_to_poller(self._release(held))
        with self._lock:
            self._stopped = True
            remaining = list(self._held.values())
        for held in remaining:  # the worker is stopping: its main loop closes them in its own time
            self._worker.return_to_poller(self._release(held))

    def _answer(self, held: _Held) -> None:
        conn = held.conn
        try:
            buffered = conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            return  # woken for nothing
        except OSError:
            buffered = b""  # the pool's thread meets the error and closes
        if not is_quick(buffered) or not self._worker.lane_may_answer():
            self._worker.enqueue_req(self._release(held))
            return
        held.last_request = time.monotonic()
        try:
            keep_alive = self._worker.serve_one(conn)
        finally:
            unsent = take_unsent(conn.sock)
        if unsent or keep_alive is not True:
            self._worker.finish_in_pool(self._release(held), unsent, keep_alive)
        elif conn.parser.unreader.buf.getbuffer().nbytes:  # the next request came along with this one
            self._worker.enqueue_req(self._release(held))

    def _release(self, held: _Held):
        """Give a connection up (None if the lane no longer holds it): out of the epoll set, its socket's own class
        back, still non-blocking.

        gunicorn closes the socket itself after some failures: the closed file has left the epoll set already, and
        its number may belong to a newer connection by now, whose record and registration stay.
        """
        with self._lock:
            if held.released:
                return None
            held.released = True
            if self._held.get(held.fd) is held:
                del self._held[held.fd]
        if held.conn.sock.fileno() != -1:
            self._epoll.unregister(held.fd)
        held.conn.sock.__class__ = held.own_class
        return held.conn
