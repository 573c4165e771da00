"""The SFTP subsystem of one channel: paramiko's ``SFTPServer`` with the daemon's answers and bounds.

Three things differ from paramiko's own loop (which it exposes only through
its ``_process``/``_read_packet`` internals; paramiko is pinned):
* a refused request is answered with its own status code and message (``Refused``);
* closing a file being written puts it in place, and a failure to do so is
  reported to the client (paramiko answers OK to every close);
* a packet may be at most ``MAX_PACKET`` bytes (paramiko would buffer 16 MiB per channel),
  and every request marks the connection active for the idle timeout.
"""

from __future__ import annotations

import logging
import struct

from paramiko import SFTPServer
from paramiko.sftp import CMD_CLOSE, SFTP_BAD_MESSAGE, SFTP_FAILURE, SFTP_OK, SFTP_PERMISSION_DENIED, SFTPError

from octyne_flask.files.paths import INVALID
from octyne_flask.sftp.inbound import ChunkedPipe
from octyne_flask.sftp.refusals import Refused
from octyne_flask.sftp.view import ServerFilesView

log = logging.getLogger(__name__)

MAX_PACKET = 256 * 1024 + 1024  # a 256 KiB write and its header, OpenSSH's own limit


class SftpChannel(SFTPServer):
    """Serves one SFTP channel of a logged-in connection (``gate`` is its ``SessionGate``)."""

    def __init__(self, channel, name, gate, *args, **kwargs):
        super().__init__(channel, name, gate, ServerFilesView, *args, **kwargs)
        self._connection = gate.connection
        # Made in the transport thread before the subsystem's reply: nothing feeds the channel meanwhile.
        channel.in_buffer = ChunkedPipe.replacing(channel.in_buffer)

    def start_subsystem(self, name, transport, channel):
        try:
            super().start_subsystem(name, transport, channel)
        finally:
            self._connection.channel_ended()

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
