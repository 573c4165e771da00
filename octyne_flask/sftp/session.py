"""Who an SFTP connection is: an account working on one server, from one IP, and what it may do there.

The daemon's access rules, supervisor and action log are read at each use,
never kept: access-control changes, reloads and removed servers apply to open
sessions at their next request, as they do to HTTP requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from octyne_flask.files.ownership import KEEP, Owner

# The server permissions SFTP operations need (extensions.md §F); an account with none of them cannot log in.
FILE_PERMISSIONS = ("files.view", "files.download", "files.upload", "files.modify", "files.createFolder")


@dataclass(frozen=True)
class Session:
    """``account`` logged in as ``<account>.<server>`` from ``ip``, served by ``daemon``."""

    daemon: Any  # the Daemon (access rules, supervisor, action log, journal, config)
    account: str
    server: str
    ip: str

    def may(self, permission: str) -> bool:
        """Whether the account holds the server permission ``permission`` (e.g. ``files.view``) now.

        The one question every SFTP operation asks, answered by the same access rules as the HTTP API's.
        """
        return permission in self.daemon.access.snapshot.permissions(self.account, self.server)

    def may_log_in(self) -> bool:
        """The server exists and the account may do at least one thing with its files."""
        return self.directory() is not None and any(self.may(name) for name in FILE_PERMISSIONS)

    def directory(self) -> str | None:
        """The server's directory from the current config; None once the server is gone."""
        server = self.daemon.supervisor.get(self.server)
        return None if server is None else server.directory

    def owner(self) -> Owner:
        """Who what this session creates belongs to: the user the server runs as (the current config's)."""
        server = self.daemon.supervisor.get(self.server)
        return KEEP if server is None else Owner.of(server.config.run_as)

    def log(self, action: str, **fields) -> None:
        """Write ``action`` to the action log as this account, from this IP, on this server."""
        self.daemon.action_log.record(action, self.ip, self.account, server=self.server, **fields)
