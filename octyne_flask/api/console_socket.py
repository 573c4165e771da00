"""A console WebSocket's socket, shared by simple-websocket's reader thread and the session's one writer.

simple-websocket's reader thread also writes on its own: the 101 answer, pongs
to protocol pings, the reply to a close, the close of a message over the size
limit. Such a write could land inside a frame the session is sending, and it
would block the reader on a client that does not read. Here the reader's writes
are only queued, and the thread writing for the session sends them between
whole frames. Two bounds keep one client from costing unbounded memory or a
thread for good:

* the reader stops reading while the session has not taken what it already
  received (``MAX_QUEUED_MESSAGES`` / ``MAX_QUEUED_CHARS``): a client that
  sends faster than it is served waits on TCP, like any sender to a busy peer;
* a send that makes no progress for ``SEND_STALL_TIMEOUT`` seconds fails, and
  so does queueing replies beyond ``MAX_QUEUED_REPLY_BYTES``: a client that
  does not read what it asked for is cut off.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time

MAX_QUEUED_MESSAGES = 100
MAX_QUEUED_CHARS = 1024 * 1024  # one message of the largest size a client may send
MAX_QUEUED_REPLY_BYTES = 64 * 1024  # protocol pongs are at most 127 bytes
SEND_STALL_TIMEOUT = 10.0
SEND_WAIT = 1  # seconds a blocked send waits before it looks at the clock
SEND_CHUNK = 256 * 1024  # a TLS send reports no partial progress, so send in pieces


class ConsoleSocket:
    """The accepted socket as simple-websocket sees it (``recv``/``send``/``close``), plus the session's writer side."""

    def __init__(self, sock: socket.socket, received: bytes = b""):
        """``received``: what the client sent behind the upgrade request, read already with its head."""
        self._sock = sock
        self._received = received
        self.tls = isinstance(sock, ssl.SSLSocket)
        if self.tls:  # a blocking TLS send retries a full socket forever; a timeout also wakes reads (see recv)
            sock.settimeout(SEND_WAIT)
        else:  # only sends time out; reads block (however long the client is silent), MSG_DONTWAIT sends return
            sock.settimeout(None)  # not the request's stall timeout (connections.py): sends wait SEND_WAIT at a time
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_WAIT, 0))
        self._ws = None
        self._replies = bytearray()
        self._replies_lock = threading.Lock()
        self._rest = b""  # the end of a frame sent without waiting, which must go out before anything else
        self._room = threading.Event()
        self._ended = False

    def watch(self, ws) -> None:
        """Bound ``ws``'s received messages, and wake its session when a reply is queued."""
        self._ws = ws

    # -- simple-websocket's reader thread ------------------------------------------------

    def recv(self, size: int) -> bytes:
        while True:
            while self._inbox_full():
                self._room.clear()
                if self._inbox_full():
                    self._room.wait(1.0)  # and now and then check whether the connection is over
                if self._ended or self._sock.fileno() == -1:
                    raise OSError("console connection ended")
            if self._received:
                data, self._received = self._received[:size], self._received[size:]
                return data
            try:
                return self._sock.recv(size)
            except TimeoutError:  # TLS: the client has nothing to say yet
                continue

    def send(self, data: bytes) -> int:
        with self._replies_lock:
            if len(self._replies) + len(data) > MAX_QUEUED_REPLY_BYTES:
                self.shutdown()
                raise OSError("the console client does not read its replies")
            self._replies += data
        if self._ws is not None:
            self._ws.event.set()
        return len(data)

    def close(self) -> None:
        """The reader is done; the session still sends what is queued, and gunicorn closes the socket."""

    def _inbox_full(self) -> bool:
        inbox = self._ws.input_buffer if self._ws is not None else ()
        return len(inbox) >= MAX_QUEUED_MESSAGES or sum(len(message) for message in inbox) >= MAX_QUEUED_CHARS

    # -- the session's writer (one thread at a time) -----------------------------------

    def sendall(self, data: bytes = b"") -> None:
        """Send the rest of an unfinished frame, the queued replies, then ``data``."""
        with self._replies_lock:
            replies, self._replies = self._replies, bytearray()
        try:
            for part in (self._rest, replies, data):
                self._send_all(memoryview(part))
        except OSError:
            self.shutdown()  # stalled or broken, perhaps mid-frame: cut off, so later sends fail at once
            raise
        finally:
            self._rest = b""

    def _send_all(self, view: memoryview) -> None:
        progress_at = time.monotonic()
        while view:
            try:
                view = view[self._sock.send(view[:SEND_CHUNK]):]
                progress_at = time.monotonic()
            except (BlockingIOError, TimeoutError):  # SEND_WAIT passed without room for a byte
                if time.monotonic() - progress_at >= SEND_STALL_TIMEOUT:
                    raise TimeoutError("the console client stopped reading") from None

    def send_now(self, data: bytes) -> bool:
        """Send what fits without waiting (plain sockets only); True if all of it did. Call with nothing queued."""
        try:
            sent = self._sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        self._rest = data[sent:]
        return not self._rest

    @property
    def queued(self) -> bool:
        return bool(self._rest or self._replies)

    def taken(self) -> None:
        """The session took the received messages: the reader may read on."""
        if not self._room.is_set():  # a plain read; set() takes a lock, and the reader rarely waits
            self._room.set()

    def end(self) -> None:
        self._ended = True
        self._room.set()

    def shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
