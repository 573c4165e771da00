"""One SFTP client connection: its SSH transport, its login, its channels, and when it was last active.

paramiko runs each connection in its own thread (the transport) and each SFTP
channel in another, so a client that stops reading blocks only its own
threads; the service's watchdog closes it once it has been idle too long.
"""

from __future__ import annotations

import socket
import threading
import time

import paramiko
from paramiko import (AUTH_FAILED, AUTH_SUCCESSFUL, OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
                      OPEN_FAILED_RESOURCE_SHORTAGE, OPEN_SUCCEEDED)

from octyne_flask.sftp.channel import SftpChannel
from octyne_flask.sftp.login import key_login, password_login
from octyne_flask.sftp.session import Session

LOGIN_SECONDS = 30  # from connecting to logging in
MAX_CHANNELS = 4  # SFTP channels open at once on one connection (clients use one)
MAX_CHANNEL_OPENS = 256  # channels over one connection's life
# A 32 KiB SFTP write with its header fits one channel packet: at paramiko's 32 KiB default the client
# splits each in two, and uploads ran at half the speed (bench/sftp_transfer.py).
CHANNEL_MAX_PACKET = 64 * 1024


class Connection:
    """A client connection, from accept to close; ``service`` keeps the count of sessions."""

    def __init__(self, sock: socket.socket, ip: str, service):
        self.ip = ip
        self.session: Session | None = None  # set when its first channel opens after the login
        self.refused = False  # logged in while every session slot was taken: closed by the watchdog
        self._service = service
        self._lock = threading.Lock()
        self._opened = self._last_active = time.monotonic()
        self._channels = 0
        self._channel_opens = 0
        self.transport = _Transport(sock, self._ended)

    def start(self, daemon, host_key: paramiko.PKey) -> None:
        """Begin the SSH handshake in the transport's own thread."""
        transport = self.transport
        transport.add_server_key(host_key)
        transport.set_subsystem_handler("sftp", SftpChannel)
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = LOGIN_SECONDS
        transport.start_server(event=threading.Event(), server=SessionGate(self, daemon))

    def describe(self) -> str:
        session = self.session
        return f"{session.account}.{session.server} from {self.ip}" if session else self.ip

    # -- activity ----------------------------------------------------------
    def touch(self) -> None:
        self._last_active = time.monotonic()

    def overdue(self, now: float, idle_timeout: float) -> bool:
        """Whether the watchdog should close this connection now."""
        if self.refused:
            return True
        if self.session is None:
            return now - self._opened > LOGIN_SECONDS
        return now - self._last_active > idle_timeout

    def close(self) -> None:
        self.transport.close()

    def wait_closed(self, timeout: float) -> None:
        if self.transport.is_alive():
            self.transport.join(timeout)

    # -- sessions and channels ---------------------------------------------
    def begin_session(self, approved: Session | None) -> bool:
        """The first channel after the login takes a session slot; False when none is free."""
        with self._lock:
            if self.session is not None:
                return True
            if approved is None or not self._service.take_session_slot():
                self.refused = True
                return False
            self.session = approved
        self.touch()
        approved.log("auth.login", via="sftp")
        return True

    def channel_opened(self) -> bool:
        with self._lock:
            self._channel_opens += 1
            return self._channel_opens <= MAX_CHANNEL_OPENS

    def channel_started(self) -> bool:
        """An SFTP channel is about to be served; False when this connection already has enough."""
        with self._lock:
            if self._channels >= MAX_CHANNELS:
                return False
            self._channels += 1
            return True

    def channel_ended(self) -> None:
        with self._lock:
            self._channels -= 1

    def _ended(self) -> None:
        """The transport's thread is finishing: free the session slot and forget this connection."""
        self._service.forget(self)


class SessionGate(paramiko.ServerInterface):
    """paramiko's questions about one connection: may this login in, may this channel open."""

    def __init__(self, connection: Connection, daemon):
        self.connection = connection
        self._daemon = daemon
        self._approved: Session | None = None  # the last login paramiko was told to accept

    @property
    def session(self) -> Session | None:
        return self.connection.session

    def get_allowed_auths(self, username):
        return "password,publickey" if self._daemon.config.sftp.authorized_keys else "password"

    def check_auth_password(self, username, password):
        return self._approve(password_login(self._daemon, username, password, self.connection.ip))

    def check_auth_publickey(self, username, key):
        # paramiko asks before verifying the client's signature too: approval alone logs nobody in.
        return self._approve(key_login(self._daemon, username, key.get_name(), key.asbytes(), self.connection.ip))

    def _approve(self, session: Session | None) -> int:
        if session is None:
            return AUTH_FAILED
        self._approved = session
        return AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        # paramiko refuses channels before the login; asked again so that an approved key whose
        # signature then failed can never count as a login here.
        authenticated = self.connection.transport.is_authenticated()
        if kind != "session" or not authenticated or not self.connection.channel_opened():
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if not self.connection.begin_session(self._approved):
            return OPEN_FAILED_RESOURCE_SHORTAGE
        return OPEN_SUCCEEDED

    def check_channel_subsystem_request(self, channel, name):
        if name != "sftp" or not self.connection.channel_started():
            return False
        try:
            return super().check_channel_subsystem_request(channel, name)
        except BaseException:
            self.connection.channel_ended()
            raise


class _Transport(paramiko.Transport):
    """paramiko's transport, telling the connection when its thread ends (however it ends)."""

    def __init__(self, sock: socket.socket, on_end):
        super().__init__(sock, default_max_packet_size=CHANNEL_MAX_PACKET)
        self._on_end = on_end

    def run(self):
        try:
            super().run()
        finally:
            self._on_end()
