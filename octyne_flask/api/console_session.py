"""One open console: the single thread that writes to its WebSocket, and the wire formats.

simple-websocket is not thread-safe, so a socket has one writer at a time: the
thread running ``ConsoleSession.run`` (output, pongs, errors, the close, and
what simple-websocket's reader queued on the ``ConsoleSocket``), or, while that
thread is parked, the thread appending output to the console log.
The appender hands new output straight to every caught-up client with
non-blocking sends (no thread wake-up per client, which with hundreds of open
consoles would cost more than the sends); anything that does not fit at once
is left to the session's own thread, so the appender never waits for a
client. The session thread waits on the socket's own event, which
simple-websocket sets when a message arrives or the peer goes away, so a
connection costs no extra thread. Output frames are built once per batch
(server frames are unmasked, hence identical for every client at the same
position) and written straight to the socket.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from typing import Callable

from octyne_flask.api.websocket import ConnectionClosed
from octyne_flask.supervisor.console import LAGGED, ConsoleLog, Scrollback

log = logging.getLogger(__name__)

V2 = "console-v2"
NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
CUT_GRACE = 2.0  # seconds a cut-off writer may finish its current send before the socket is shut
CLOSE_REPLY_WAIT = 1.0  # seconds to wait for the client's close reply before shutting the socket
LAG_MESSAGE = "Console output fell too far behind; reconnect to continue."
CLOSED_MESSAGE = "This console has been closed."
IDLE_MESSAGE = "Connection idle for too long."
MESSAGE_FIELDS = ("type", "data", "id")  # the console-v2 fields a client message may carry


class Wakeup:
    """A cheap stand-in for ``threading.Event`` (set/clear/wait), built on one lock.

    Every open console's socket gets one (simple-websocket takes its event class as a
    parameter); the console log sets it on every output line, so with hundreds of consoles
    the Condition-based ``threading.Event`` costs the whole process noticeable time.
    The lock is held while the flag is clear; ``set`` releases it (any thread may release
    a plain Lock); ``wait`` acquires and releases it again, leaving the flag set.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:
            pass  # already set

    def clear(self) -> None:
        self._lock.acquire(blocking=False)

    def is_set(self) -> bool:
        return not self._lock.locked()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return False
        self.set()
        return True


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


def json_frame(message: dict) -> bytes:
    return text_frame(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def v1_frames(lines: list[str], seq: int | None = None) -> bytes:
    """Console v1: one text frame per line (v1 carries no sequence numbers)."""
    return b"".join([text_frame(line.encode()) for line in lines])


def output_message(data: str, seq: int | None = None, missed: int = 0) -> dict:
    """A console-v2 output message; ``seq`` numbers its first line, ``missed`` counts lines skipped before it."""
    message = {"type": "output", "data": data}
    if seq is not None:
        message["seq"] = seq
    if missed > 0:
        message["missed"] = missed
    return message


def v2_frames(lines: list[str], seq: int | None = None) -> bytes:
    """Console v2: the lines of a batch joined into one output message."""
    return json_frame(output_message("\n".join(lines), seq))


def finish(ws) -> None:
    """End the connection for good: send what is queued, wait briefly for the client's close reply, shut the socket.

    simple-websocket's reader thread is not a daemon thread; a client that never answers the
    close (a stalled one) would otherwise keep it, and with it the worker's exit, waiting.
    """
    try:
        ws.sock.sendall()  # the answer to the client's close, or our own
    except OSError:
        pass
    ws.sock.end()
    ws.thread.join(CLOSE_REPLY_WAIT)
    if ws.thread.is_alive():
        ws.sock.shutdown()


def scrollback_text(scrollback: Scrollback) -> str:
    """The scrollback as Octyne sends it: every line preceded by a newline."""
    return "\n" + scrollback.text() if scrollback.count else ""


class ConsoleSession:
    """Drive one console connection until either side ends it."""

    def __init__(self, ws, log: ConsoleLog, *, owner: str, v2: bool, read_only: bool, idle_timeout: float,
                 on_input: Callable[[str], None], since: int | None = None):
        """``since``: console-v2 resume, continue after that line instead of sending the scrollback."""
        self._ws = ws
        self._since = since
        self._socket = ws.sock  # a ConsoleSocket
        self._socket.watch(ws)
        self._log = log
        self._owner = owner
        self._v2 = v2
        self._read_only = read_only
        self._idle_timeout = idle_timeout if v2 else None
        self._on_input = on_input
        self._encode = v2_frames if v2 else v1_frames
        self._state = threading.Lock()  # guards _sending and _cut between the writer and the cutter
        self._sending = False
        self._cut: str | None = None
        self._writing = threading.Lock()  # held by whichever thread writes to the socket now
        self._subscriber = None
        # A TLS socket cannot take a non-blocking send (nor a partial one) from another thread.
        self._direct = not self._socket.tls

    def run(self) -> None:
        self._writing.acquire()  # held for good once the session ends: nobody writes after the close
        if self._since is None:
            subscriber, scrollback = self._log.subscribe(self._owner, self._deliver, self._on_cut)
        else:
            subscriber, older = self._log.resume(self._owner, self._deliver, self._on_cut, self._since)
        self._subscriber = subscriber
        if subscriber.cut is not None:  # the log was closed already (its server has just been removed)
            self._cut = subscriber.cut
            self._ws.event.set()
        try:
            if self._v2:
                self._send(json_frame({"type": "settings", "readOnly": self._read_only}))
            if self._since is not None:
                self._catch_up(subscriber, older)
            else:
                self._send_scrollback(scrollback, subscriber.cursor - scrollback.count)
            self._loop(subscriber)
        except (ConnectionClosed, OSError):
            pass  # the client went away
        finally:
            self._log.unsubscribe(subscriber)
            finish(self._ws)

    def _send_scrollback(self, scrollback: Scrollback, seq: int) -> None:
        text = scrollback_text(scrollback)
        if self._v2:
            self._send(json_frame(output_message(text, seq if scrollback.count else None)))
        else:
            self._send(text_frame(text.encode()))

    def _catch_up(self, subscriber, older) -> None:
        """Resume: the lines after ``since`` from the history, then, if lines are missing
        before what the log holds, its first batch marked with how many."""
        expected = self._since + 1
        for seq, lines in older:
            self._send(json_frame(output_message("\n".join(lines), seq, seq - expected)))
            expected = seq + len(lines)
        if subscriber.cursor > expected and (batch := self._log.read(subscriber)) is not None:
            self._send(json_frame(output_message("\n".join(batch.lines), batch.start, batch.start - expected)))
        while (batch := self._log.read(subscriber)) is not None:  # what the log holds after since
            self._send(batch.encoded(self._encode))

    def _loop(self, subscriber) -> None:
        last_heard = time.monotonic()
        while True:
            wait = None if self._idle_timeout is None else self._idle_timeout - (time.monotonic() - last_heard)
            if wait is not None and wait <= 0:
                self._close(NORMAL_CLOSURE, IDLE_MESSAGE)
                return
            self._writing.release()
            self._ws.event.wait(wait)
            self._writing.acquire()
            self._ws.event.clear()
            while self._ws.input_buffer or not self._ws.connected:  # cheap check before receive()
                message = self._ws.receive(timeout=0)  # raises ConnectionClosed once the peer is gone
                if message is None:
                    break
                last_heard = time.monotonic()
                self._handle(message)
            self._socket.taken()
            if self._cut is not None:
                self._end_cut()
                return
            if self._socket.queued:  # what a direct delivery left, or the reader's replies
                self._send(b"")
            while (batch := self._log.read(subscriber)) is not None:
                self._send(batch.encoded(self._encode))

    def _deliver(self) -> None:
        """Called by the appending thread: send new output now if the session thread is parked.

        Never raises: an error here would stop the app's output reader.
        """
        if not self._direct or not self._writing.acquire(blocking=False):
            self._ws.event.set()  # the session thread sends it (it is busy, or the socket is TLS)
            return
        try:
            if not self._socket.queued and self._cut is None and self._send_without_waiting():
                return
        except Exception:
            log.exception("Console delivery failed; leaving it to the session thread")
        finally:
            self._writing.release()
        self._ws.event.set()

    def _send_without_waiting(self) -> bool:
        """Send every batch the client has not had; False when one does not fit (the socket keeps its end)."""
        while (batch := self._log.read(self._subscriber)) is not None:
            try:
                if not self._socket.send_now(batch.encoded(self._encode)):
                    return False
            except OSError:
                return False  # the session thread finds out the client is gone
        return True

    def _handle(self, message) -> None:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        if not self._v2:
            self._input(text)
            return
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        # Octyne reads a message as an object of strings; a missing field is "" (so a pong's id is a string).
        if not isinstance(parsed, dict) or not all(isinstance(parsed.get(key, ""), str) for key in MESSAGE_FIELDS):
            self._send(json_frame({"type": "error", "message": "Invalid message format"}))
            return
        kind = parsed.get("type", "")
        if kind == "input":
            if parsed.get("data"):  # empty or missing data is ignored
                self._input(parsed["data"])
        elif kind == "ping":
            self._send(json_frame({"type": "pong", "id": parsed.get("id", "")}))
        else:
            self._send(json_frame({"type": "error", "message": f"Invalid message type: {kind}"}))

    def _input(self, line: str) -> None:
        if not self._read_only:
            self._on_input(line)

    def _end_cut(self) -> None:
        lagged = self._cut == LAGGED
        message = LAG_MESSAGE if lagged else CLOSED_MESSAGE
        if self._v2:
            self._send(json_frame({"type": "error", "message": message}))
        self._close(POLICY_VIOLATION if lagged else NORMAL_CLOSURE, message)

    def _close(self, code: int, message: str) -> None:
        self._ws.close(code, message)  # queued on the socket
        self._send(b"")

    def _send(self, data: bytes) -> None:
        """Send (after anything queued); once cut off, a send that stalls is ended by shutting the socket."""
        with self._state:
            self._sending = True
            cut = self._cut is not None
        if cut:
            self._arm_shutdown()
        try:
            self._socket.sendall(data)
        finally:
            self._sending = False  # a plain store; the cutter reads it under the lock

    def _on_cut(self, reason: str) -> None:
        """Called by the console log (another thread): make the writer stop, even mid-send."""
        with self._state:
            self._cut = reason
            sending = self._sending
        self._ws.event.set()
        if sending:
            self._arm_shutdown()

    def _arm_shutdown(self) -> None:
        timer = threading.Timer(CUT_GRACE, self._shut_if_still_sending)
        timer.daemon = True
        timer.start()

    def _shut_if_still_sending(self) -> None:
        with self._state:
            if not self._sending:
                return
        self._socket.shutdown()
