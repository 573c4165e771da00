"""gunicorn's gthread worker, hardened against slow and idle clients.

Stock gthread lets a client that sends its request head slowly hold a thread
forever (no read timeout, and the daemon runs with ``timeout = 0``), lets idle
connections hold connection slots for the whole keep-alive time, and stops
accepting on every listener, the Unix socket included, once the slots are
taken. Here:

* a request head (TLS handshake included) must be complete within
  ``REQUEST_HEAD_TIMEOUT`` seconds of a thread starting on it; the loop shuts
  the socket of a late one, which ends the blocked read;
* a new connection waits on the poller, not in a thread, until it sends
  something, so idle connections cost no thread;
* when the TCP slots are full, the oldest idle TCP connections (never spoke,
  or kept alive between requests) are closed to make room;
* the last ``LOCAL_RESERVE`` slots and a thread pool of its own belong to the
  Unix socket, so the local admin always gets in;
* once the head is in, a read of the body or a send of the answer that makes no
  progress for ``STALL_TIMEOUT`` seconds ends the connection: a client that
  stops sending its upload, or stops reading a download or the answers to its
  pipelined requests, does not hold a thread for good (consoles keep their own
  bounds, ``api/console_socket.py``).

And for speed: a plain TCP connection to the API port waits for its next request
in the quick lane (``lane.py``), whose one thread answers status requests itself;
any other kept-alive connection keeps its thread for up to ``KEEPALIVE_LINGER_MS``
in case the client's next request follows, before it goes back to the poller.
Answers go out in one send (``onesend.py``). Requests gunicorn refuses before
the app are answered in JSON (``protocol_errors.py``).
"""

from __future__ import annotations

import itertools
import logging
import os
import resource
import select
import selectors
import socket
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from gunicorn import util
from gunicorn.http.body import LengthReader
from gunicorn.workers.gthread import ThreadWorker

from octyne_flask import onesend, protocol_errors
from octyne_flask.lane import QuickLane

log = logging.getLogger(__name__)

REQUEST_HEAD_TIMEOUT = 10.0
STALL_TIMEOUT = float(os.environ.get("OCTYNE_FLASK_STALL_TIMEOUT", 60))  # like nginx's send and body timeouts
LOCAL_RESERVE = 64  # connection slots TCP clients cannot take
IDLE_HEADROOM = 100  # slots beyond the threads, for kept-alive and not-yet-speaking connections
MIN_IDLE_SECONDS = 2.0  # idle for less, a connection is not closed to make room
KEEPALIVE_LINGER_MS = 50  # a thread waits this long for the next request on its connection
# A blocking read or send gives up after this long without progress; never before a slow head is cut, which the
# loop reports (a timeout there would be logged by gunicorn as an error, with a traceback).
BLOCKING_BOUND = max(STALL_TIMEOUT, REQUEST_HEAD_TIMEOUT)


IN_LANE = object()  # a pool thread's result for a connection it handed to the quick lane


def _finished(result) -> Future:
    future = Future()
    future.set_result(result)
    return future


def connection_slots(threads: int) -> int:
    """gunicorn's ``worker_connections``: every thread busy, room for idle ones, and the Unix socket's reserve."""
    return threads + IDLE_HEADROOM + LOCAL_RESERVE


def is_local(sock: socket.socket) -> bool:
    return sock.family == socket.AF_UNIX


def raise_open_file_limit() -> None:
    """Every connection is a file descriptor: take the hard limit (systemd's soft default is only 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log.warning("Cannot raise the open-file limit from %d to %d: %s", soft, hard, error)


class StallBoundSocket(socket.socket):
    """An accepted connection's socket in this worker: blocking means blocking for at most ``BLOCKING_BOUND``
    at a time, and setting the mode the socket already has makes no system call.

    gunicorn makes the socket blocking before each request and sets and restores a timeout around
    the drain after it, and the stall bound changed the mode again: five ``ioctl`` calls for each
    request of a kept-alive client, each giving up the GIL, which with many clients means a thread
    hand-off each. ``settimeout(None)`` still means no bound (a console sets it on purpose).
    """

    __slots__ = ()

    def setblocking(self, flag):
        self.settimeout(BLOCKING_BOUND if flag else 0.0)

    def settimeout(self, value):
        if value != self.gettimeout():
            super().settimeout(value)


def body_read_to_end(request) -> bool:
    """Whether nothing of ``request``'s body is left on the socket (always so for a request without one)."""
    reader = getattr(request.body, "reader", None)
    return isinstance(reader, LengthReader) and reader.length == 0 and not request.body.failed


class SettledConfig:
    """gunicorn's config as a running worker reads it: each setting looked up once, then a plain attribute.

    gunicorn's ``Config`` resolves every read through its settings table, dozens of times per
    request; in the worker the settings no longer change (a new config means a new worker).
    """

    def __init__(self, cfg):
        self._cfg = cfg

    def __getattr__(self, name):
        value = getattr(self._cfg, name)
        setattr(self, name, value)
        return value


class PoolPerTransport:
    """Two thread pools behind gthread's one: a Unix-socket request never waits behind TCP ones.

    Threads are started on demand, so the local pool costs nothing until it is used.
    """

    def __init__(self, threads: int):
        self._tcp = ThreadPoolExecutor(threads, thread_name_prefix="tcp")
        self._local = ThreadPoolExecutor(threads, thread_name_prefix="local")

    def submit(self, work, conn, *args):
        return (self._local if is_local(conn.sock) else self._tcp).submit(work, conn, *args)

    def shutdown(self, wait: bool = True) -> None:
        self._tcp.shutdown(wait)
        self._local.shutdown(wait)


class GuardedThreadWorker(ThreadWorker):
    """gthread with request-head deadlines, idle eviction under pressure and a reserve for the Unix socket."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cfg = SettledConfig(self.cfg)
        self.tcp_connections = self.worker_connections - LOCAL_RESERVE
        self._listening: set = set()
        self._heads: dict = {}  # connection -> deadline, while a thread reads its request head
        self._heads_lock = threading.Lock()
        self.quick_lane_port: int | None = None  # the API port, set by the subclass that knows it
        self._lane: QuickLane | None = None

    def init_process(self):
        raise_open_file_limit()
        # The two gunicorn module globals the worker replaces in its own process (gunicorn is pinned).
        onesend.install()
        protocol_errors.install()
        super().init_process()

    def run(self):
        if self.quick_lane_port is not None:
            self._lane = QuickLane(self)
            self._lane.start()
        super().run()

    def get_thread_pool(self):
        return PoolPerTransport(self.cfg.threads)

    # -- accepting (main thread) ---------------------------------------------------

    def set_accept_enabled(self, enabled):
        """gthread's verdict counts every slot; each listener has its own limit (see ``_listen``)."""
        self._accepting = enabled
        self._listen()

    def _listen(self) -> None:
        """Poll TCP listeners while TCP has slots left, the Unix socket while any slot is left."""
        for listener in self.sockets:
            limit = self.worker_connections if is_local(listener) else self.tcp_connections
            wanted = self.alive and self.nr_conns < limit
            if wanted and listener not in self._listening:
                listener.setblocking(False)
                self.poller.register(listener, selectors.EVENT_READ, self.accept)
                self._listening.add(listener)
            elif not wanted and listener in self._listening:
                self.poller.unregister(listener)
                self._listening.discard(listener)

    def enqueue_req(self, conn):
        """A new connection gets a thread only once it has sent something."""
        if type(conn.sock) is socket.socket:  # noqa: E721 (not a subclass: TLS wraps it later, in a thread)
            conn.sock.__class__ = StallBoundSocket
        if conn.initialized or conn.data_ready:
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def murder_keepalived(self, force=False):
        """Run by gthread's loop about once a second: also cut late request heads and make room."""
        if not force:
            self._cut_late_heads()
            self._close_idle_under_pressure()
        super().murder_keepalived(force)
        if not force:
            self._listen()

    def _close_idle_under_pressure(self) -> None:
        """TCP slots all taken: close the oldest idle TCP connections, down to nine tenths of the slots.

        Those that never spoke go first; a connection idle for less than ``MIN_IDLE_SECONDS`` (a
        client that has only just connected) and the Unix socket's connections are left alone.
        """
        if self.nr_conns < self.tcp_connections:
            return
        excess = self.nr_conns - self.tcp_connections * 9 // 10
        idle_before = time.monotonic() - MIN_IDLE_SECONDS + self.cfg.keepalive  # compared with conn.timeout
        for queue in (self.pending_conns, self.keepalived_conns):
            idle = [conn for conn in itertools.takewhile(lambda conn: conn.timeout <= idle_before, queue)
                    if not is_local(conn.sock)]
            for conn in idle[:excess]:
                queue.remove(conn)
                self.poller.unregister(conn.sock)
                self.nr_conns -= 1
                conn.close()
            excess -= min(len(idle), excess)

    # -- request heads ---------------------------------------------------------------

    def handle(self, conn):
        """In a pool thread: serve a request on ``conn``, and the client's next ones while they come back to back."""
        return self._after_answer(conn, self.serve_one(conn))

    def _after_answer(self, conn, keep_alive):
        """After an answer on ``conn``: the quick lane takes it, or this thread serves the next request if it
        comes within ``KEEPALIVE_LINGER_MS``, then hands the connection back to the poller or closes it.

        gthread hands a kept-alive connection back to the main loop after each answer, and the
        next request comes back through the poller and the pool's queue: two thread hand-offs
        and five syscalls per request, each a fight for the GIL.
        """
        while keep_alive is True and self.alive:
            if self._lane_takes(conn) and self._lane.adopt(conn):
                return IN_LANE
            if not self._next_request_comes(conn):
                break
            keep_alive = self.serve_one(conn)
        if not keep_alive:
            # gthread would wait for the client's FIN in its main loop, up to 2 s per connection.
            util.close_graceful(conn.sock)
        return keep_alive

    def _lane_takes(self, conn) -> bool:
        """Plain TCP connections to the API port, with nothing of a next request read yet, wait in the lane."""
        return (self._lane is not None and type(conn.sock) is StallBoundSocket  # noqa: E721 (TLS, Unix: not)
                and self.lane_may_answer()
                and not is_local(conn.sock) and conn.server[1] == self.quick_lane_port
                and not conn.parser.unreader.buf.getbuffer().nbytes)

    # -- the quick lane's hand-overs (lane.py) -----------------------------------------

    def lane_may_answer(self) -> bool:
        """Whether the lane may answer status requests now; not while answering one waits on the network (the
        subclass knows), for the lane would make each of its clients wait for the others in turn."""
        return True

    def finish_in_pool(self, conn, unsent: bytes, keep_alive) -> None:
        """From the lane: a pool thread sends the end of an answer the kernel did not take, then goes on as after
        any answer (or closes the connection when ``keep_alive`` is not True)."""
        self._submit(self._finish_answer, conn, unsent, keep_alive)

    def _finish_answer(self, conn, unsent: bytes, keep_alive):
        if unsent:
            conn.sock.settimeout(STALL_TIMEOUT)
            try:
                conn.sock.sendall(unsent)
            except OSError:
                keep_alive = False
        return self._after_answer(conn, keep_alive)

    def return_to_poller(self, conn) -> None:
        """From the lane: an idle connection goes back to the main loop's poller, as after an answer in the pool."""
        self.method_queue.defer(self.finish_request, conn, _finished(True))

    def _submit(self, work, conn, *args) -> None:
        """Run ``work(conn, *args)`` in the pool; its result goes to ``finish_request`` like gthread's own."""
        future = self.tpool.submit(work, conn, *args)
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))

    def serve_one(self, conn):
        """One request: its head is on the clock until ``handle_request`` starts."""
        with self._heads_lock:
            self._heads[conn] = time.monotonic() + REQUEST_HEAD_TIMEOUT
        try:
            return super().handle(conn)
        finally:
            self._stop_clock(conn)

    @staticmethod
    def _next_request_comes(conn) -> bool:
        """Whether the client's next request is buffered already (by the parser or TLS) or arrives within
        ``KEEPALIVE_LINGER``."""
        if conn.parser.unreader.buf.getbuffer().nbytes:  # pipelined, read along with the last one
            return True
        if isinstance(conn.sock, ssl.SSLSocket) and conn.sock.pending():  # decrypted already: poll cannot see it
            return True
        waiting = select.poll()
        waiting.register(conn.sock, select.POLLIN)
        return bool(waiting.poll(KEEPALIVE_LINGER_MS))

    def _keepalive_after(self, conn, keepalive):
        """gunicorn drains what the app left of the body under a deadline; with nothing left there is nothing to do."""
        if keepalive and conn.parser.mesg is not None and body_read_to_end(conn.parser.mesg):
            return True
        return super()._keepalive_after(conn, keepalive)

    def finish_request(self, conn, fs):
        if not fs.cancelled() and fs.exception() is None and fs.result() is IN_LANE:
            return
        if conn.sock.fileno() == -1:  # closed by its thread (above, or by gthread after a TLS EOF)
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

    def handle_request(self, req, conn):
        # The head is in: the app (a console, an upload) takes as long as it takes, but each read and send
        # must make progress. (HTTP/2, which would not come through here, is off: gunicorn's default
        # ``http_protocols`` is h1.)
        self._stop_clock(conn)
        conn.sock.settimeout(STALL_TIMEOUT)  # no syscall when the blocking bound is the stall timeout (the default)
        try:
            return super().handle_request(req, conn)
        except TimeoutError:  # gunicorn would log it with a traceback, as if it were a bug
            log.info("Closed a connection from %s: no progress for %g s", conn.client, STALL_TIMEOUT)
            return False

    def _stop_clock(self, conn) -> None:
        with self._heads_lock:
            self._heads.pop(conn, None)

    def _cut_late_heads(self) -> None:
        now = time.monotonic()
        with self._heads_lock:
            late = [conn for conn, deadline in self._heads.items() if deadline <= now]
            for conn in late:
                del self._heads[conn]
                try:
                    socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS
                except OSError:
                    pass
        if late:
            log.warning("Closed %d connection(s) that took over %g s to send a request head",
                        len(late), REQUEST_HEAD_TIMEOUT)
