"""The SFTP subsystem of one channel: paramiko's ``SFTPServer`` with the daemon's answers and bounds.

What differs from paramiko's own loop (which it exposes only through its
``_process``/``_read_packet``/``_send_server_version`` internals; paramiko is pinned):
* a refused request is answered with its own status code and message (``Refused``);
* closing a file being written puts it in place, and a failure to do so is
  reported to the client (paramiko answers OK to every close);
* a packet may be at most ``MAX_PACKET`` bytes (paramiko would buffer 16 MiB per channel),
  and every request marks the connection active for the idle timeout;
* the server offers OpenSSH's ``limits@openssh.com`` extension, which tells clients they may
  read and write 256 KiB per request: OpenSSH's ``sftp`` then moves eight times fewer, larger
  requests than the 32 KiB it falls back to, and each request costs Python work here.
"""

from __future__ import annotations

import logging
import struct

from paramiko import Message, SFTPServer
from paramiko.sftp import (_VERSION, CMD_CLOSE, CMD_EXTENDED, CMD_EXTENDED_REPLY, CMD_INIT, CMD_VERSION,
                           SFTP_BAD_MESSAGE, SFTP_FAILURE, SFTP_OK, SFTP_PERMISSION_DENIED, SFTPError)

from octyne_flask.files.paths import INVALID
from octyne_flask.sftp.handles import MAX_READ
from octyne_flask.sftp.inbound import ChunkedPipe, InboundWindow
from octyne_flask.sftp.refusals import Refused
from octyne_flask.sftp.view import ServerFilesView

log = logging.getLogger(__name__)

MAX_PACKET = 256 * 1024 + 1024  # a 256 KiB write and its header, OpenSSH's own limit
MAX_WRITE = MAX_PACKET - 1024
LIMITS = "limits@openssh.com"  # OpenSSH's PROTOCOL, 4.8
# name and version of each extension announced in the version reply (paramiko's own, and the limits)
EXTENSIONS = ("check-file", "md5,sha1", LIMITS, "1")


class SftpChannel(SFTPServer):
    """Serves one SFTP channel of a logged-in connection (``gate`` is its ``SessionGate``)."""

    def __init__(self, channel, name, gate, *args, **kwargs):
        super().__init__(channel, name, gate, ServerFilesView, *args, **kwargs)
        self._connection = gate.connection
        # Made in the transport thread before the subsystem's reply: nothing feeds the channel meanwhile.
        # A client keeping to its window never has more than the window and one packet unread, data and
        # stderr (extended data, which nobody reads) together: the same window bounds both.
        window = InboundWindow(channel.in_window_size + channel.in_max_packet_size)
        channel.in_buffer = ChunkedPipe.replacing(channel.in_buffer, window)
        channel.in_stderr_buffer = ChunkedPipe.replacing(channel.in_stderr_buffer, window)

    def start_subsystem(self, name, transport, channel):
        try:
            super().start_subsystem(name, transport, channel)
        finally:
            self._connection.channel_ended()

    def _send_server_version(self):
        """Answer the client's INIT with our version and extensions."""
        t, data = self._read_packet()
        if t != CMD_INIT:
            raise SFTPError("Incompatible sftp protocol")
        reply = Message()
        reply.add_int(_VERSION)
        reply.add(*EXTENSIONS)
        self._send_packet(CMD_VERSION, reply)
        return struct.unpack(">I", data[:4])[0]

    def _send_limits(self, request_number) -> None:
        """The packet, read and write lengths we take, and no limit of our own on open handles (0)."""
        reply = Message()
        reply.add_int(request_number)
        for value in (MAX_PACKET, MAX_READ, MAX_WRITE, 0):
            reply.add_int64(value)
        self._send_packet(CMD_EXTENDED_REPLY, reply)

    def _read_packet(self):
        header = self._read_all(4)
        size = struct.unpack(">I", header)[0]
        if size > MAX_PACKET:
            raise SFTPError(f"packet of {size} bytes refused")
        data = self._read_all(size)
        return (data[0], data[1:]) if size else (0, b"")

    def _process(self, t, request_number, msg):
        self._connection.touch()
        try:
            if t == CMD_CLOSE:
                self._close(request_number, msg.get_binary())
            elif t == CMD_EXTENDED and _extension_name(msg) == LIMITS.encode():
                self._send_limits(request_number)
            else:
                super()._process(t, request_number, msg)
        except Refused as refusal:
            self._send_status(request_number, refusal.code, refusal.message)
        except UnicodeDecodeError:  # a path that is not UTF-8 text names no file here
            self._send_status(request_number, SFTP_PERMISSION_DENIED, f"Invalid file path: {INVALID}")
        except Exception:
            if self.sock.closed:  # the connection went away mid-answer: the session ends
                raise
            # a bug: say so in the daemon's log, answer a plain failure, keep serving
            log.exception("SFTP request %d of %s failed", t, self._connection.describe())
            self._send_status(request_number, SFTP_FAILURE)
        self._connection.touch()

    def _close(self, request_number, handle) -> None:
        """CLOSE: an upload is put in place now (``finish``); its failure is the answer."""
        if handle in self.folder_table:
            del self.folder_table[handle]
        elif handle in self.file_table:
            self.file_table.pop(handle).finish()
        else:
            self._send_status(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
            return
        self._send_status(request_number, SFTP_OK)


def _extension_name(msg: Message) -> bytes:
    """The name an EXTENDED request starts with, leaving ``msg`` where it was for paramiko's own handling."""
    start = msg.packet.tell()
    name = msg.get_binary()
    msg.packet.seek(start)
    return name
