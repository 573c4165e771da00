"""The SFTP listener inside the daemon: started, switched on reload and stopped with it.

A config change is applied in two steps, like the authenticator's: ``plan``
does what can fail (read or make the host key, bind a new port) before
anything changes, so a change that cannot work is refused whole; ``switch``
then puts it in place. Disabling SFTP closes every connection; a new port
keeps the sessions already open.

Bounds: at most ``sftp.maxSessions`` logged-in connections (one more is told
"resource shortage" and closed), at most ``PENDING_LOGINS`` connections that
have not logged in yet (more are closed at once, each gets ``LOGIN_SECONDS``),
and a connection without a request for ``sftp.idleTimeout`` seconds is closed;
a client that stops reading is one of those.

paramiko (about 16 MiB) is imported only once a connection or a host key is needed:
a daemon with SFTP off never loads it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from octyne_flask.config import SftpConfig
from octyne_flask.netaddr import normalise_ip
from octyne_flask.sftp.hostkey import HostKeyError, describe, host_key_path, load_host_key

if TYPE_CHECKING:
    import paramiko

    from octyne_flask.sftp.connection import Connection

log = logging.getLogger(__name__)

PENDING_LOGINS = 16
WATCH_SECONDS = 1.0
STOP_WAIT_SECONDS = 5.0  # for connections to unwind (discarding their uploads' temporary files) at shutdown
LISTEN_BACKLOG = 64
ACCEPT_RETRY_SECONDS = 0.1  # after a failed accept (e.g. out of file descriptors)


class SftpUnavailable(RuntimeError):
    """The SFTP settings cannot be served (host key unusable, port taken); the message says why."""


def bind_listener(port: int) -> socket.socket:
    """A listening TCP socket on every IPv4 address, like the API's; SftpUnavailable when the port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(LISTEN_BACKLOG)
    except OSError as error:
        listener.close()
        raise SftpUnavailable(f"'sftp.port': cannot listen for SFTP on port {port}: {error.strerror}") from None
    return listener


def usable_host_key(settings: SftpConfig, users_path: str) -> paramiko.PKey:
    """The host key for ``settings`` (made when missing); SftpUnavailable when it cannot be used."""
    try:
        return load_host_key(host_key_path(settings, users_path))
    except HostKeyError as error:
        raise SftpUnavailable(f"'sftp.hostKey': {error}") from None


def check_before_start(settings: SftpConfig, users_path: str) -> paramiko.PKey | None:
    """At start, before anything binds: the host key read (or made) and the port free, when SFTP is on;
    SftpUnavailable otherwise. Returns the key (None when SFTP is off)."""
    if not settings.enabled:
        return None
    key = usable_host_key(settings, users_path)
    bind_listener(settings.port).close()
    return key


@dataclass
class SftpPlan:
    """What ``switch`` will put in place; ``listener`` is a newly bound socket (None: keep or have none)."""

    settings: SftpConfig
    key: paramiko.PKey | None = None
    listener: socket.socket | None = None

    def abandon(self) -> None:
        """The change was not applied after all: release what the plan holds."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None


@dataclass(frozen=True)
class SftpStatus:
    """What the dashboard shows: whether SFTP is served, on which port, with which host key."""

    serving: bool
    port: int
    host_key: str  # "ED25519 SHA256:..." ("" when not serving)


class SftpService:
    """The daemon's SFTP server; serves only once ``begin`` is called (in the process that owns the apps)."""

    def __init__(self, daemon):
        self._daemon = daemon
        self._lock = threading.Lock()
        self._began = False
        self._stopped = False
        self._settings: SftpConfig | None = None
        self._key: paramiko.PKey | None = None
        self._listener: socket.socket | None = None
        self._connections: set[Connection] = set()
        self._sessions = 0
        self._wake = threading.Event()

    # -- lifecycle -----------------------------------------------------------
    def begin(self, settings: SftpConfig) -> None:
        """Start serving ``settings`` (from now on ``plan`` binds ports); SftpUnavailable when it cannot."""
        # paramiko logs every failed handshake (port scanners) as an error with a traceback;
        # the daemon logs what matters about connections itself.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        with self._lock:
            if self._stopped:
                return
            self._began = True
            self._settings = settings
        threading.Thread(target=self._watch, name="sftp-watchdog", daemon=True).start()
        self.switch(self.plan(settings))

    def plan(self, settings: SftpConfig) -> SftpPlan:
        """Do what serving ``settings`` needs and can fail, without changing anything yet."""
        with self._lock:
            if not (settings.enabled and self._began and not self._stopped):
                return SftpPlan(settings)
            keep = self._listener is not None and self._settings.port == settings.port
        key = usable_host_key(settings, self._daemon.users_path)
        return SftpPlan(settings, key, None if keep else bind_listener(settings.port))

    def switch(self, plan: SftpPlan) -> None:
        """Serve what ``plan`` prepared (or stop serving, when it disables SFTP)."""
        closing: list[Connection] = []
        with self._lock:
            if self._stopped:
                plan.abandon()
                return
            self._settings = plan.settings
            old_listener = None
            if plan.settings.enabled and self._began:
                self._key = plan.key
                if plan.listener is not None:
                    old_listener, self._listener = self._listener, plan.listener
                    threading.Thread(target=self._accept, args=(plan.listener,), name="sftp-accept",
                                     daemon=True).start()
                    log.info("SFTP on port %d, host key %s", plan.settings.port, describe(plan.key))
            elif self._listener is not None:
                old_listener, self._listener = self._listener, None
                closing = list(self._connections)
                log.info("SFTP disabled; closing %d connection(s)", len(closing))
        _close_listener(old_listener)
        for connection in closing:
            connection.close()

    def stop(self) -> None:
        """Stop listening and close every connection (their uploads' temporary files are discarded)."""
        with self._lock:
            self._stopped = True
            listener, self._listener = self._listener, None
            connections = list(self._connections)
        self._wake.set()
        _close_listener(listener)
        for connection in connections:
            connection.close()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for connection in connections:
            connection.wait_closed(max(0.0, deadline - time.monotonic()))

    def status(self) -> SftpStatus:
        with self._lock:
            settings = self._settings or self._daemon.config.sftp
            serving = self._listener is not None
            key = describe(self._key) if serving and self._key is not None else ""
        return SftpStatus(serving, settings.port, key)

    # -- connections -----------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, address = listener.accept()
            except OSError as error:
                with self._lock:
                    if listener is not self._listener:
                        return  # closed by a switch or a stop
                log.warning("SFTP accept failed: %s", error.strerror)
                time.sleep(ACCEPT_RETRY_SECONDS)
                continue
            self._admit(sock, normalise_ip(address[0]))

    def _admit(self, sock: socket.socket, ip: str) -> None:
        with self._lock:
            pending = sum(1 for connection in self._connections if connection.session is None)
            if self._stopped or pending >= PENDING_LOGINS:
                sock.close()
                return
            key = self._key
        from octyne_flask.sftp.connection import Connection

        try:
            connection = Connection(sock, ip, self)
        except Exception as error:  # the peer may already be gone
            log.info("SFTP connection from %s dropped at once: %s", ip, error)
            sock.close()
            return
        with self._lock:
            if self._stopped:
                sock.close()
                return
            self._connections.add(connection)
        try:
            connection.start(self._daemon, key)
        except Exception:
            log.exception("Cannot start an SFTP connection from %s", ip)
            connection.close()
            self.forget(connection)

    def take_session_slot(self) -> bool:
        """Count one more logged-in connection, unless ``sftp.maxSessions`` are already in."""
        with self._lock:
            if self._stopped or self._sessions >= self._settings.max_sessions:
                log.warning("SFTP session refused: all %d sessions are in use", self._settings.max_sessions)
                return False
            self._sessions += 1
            return True

    def forget(self, connection: Connection) -> None:
        """A connection ended: drop it and free its session slot."""
        with self._lock:
            if connection in self._connections:
                self._connections.discard(connection)
                if connection.session is not None:
                    self._sessions -= 1

    def _watch(self) -> None:
        """Close connections that stayed idle (or did not log in) too long, once a second."""
        while not self._wake.wait(WATCH_SECONDS):
            now = time.monotonic()
            with self._lock:
                idle_timeout = self._settings.idle_timeout
                overdue = [connection for connection in self._connections if connection.overdue(now, idle_timeout)]
            for connection in overdue:
                connection.close()


def _close_listener(listener: socket.socket | None) -> None:
    """Stop a listening socket; ``shutdown`` first, since ``close`` alone does not wake a thread in ``accept``."""
    if listener is None:
        return
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()
