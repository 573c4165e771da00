"""One-time tickets: a short-lived, single-use stand-in for a token in a URL."""

from __future__ import annotations

import base64
import secrets
import threading
import time

TICKET_LIFETIME_SECONDS = 30.0


class TicketStore:
    """Tickets bound to a user and the client IP, valid once for 30 seconds."""

    def __init__(self, lifetime: float = TICKET_LIFETIME_SECONDS, clock=time.monotonic):
        self._lifetime = lifetime
        self._clock = clock
        self._tickets: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, user: str, ip: str) -> str:
        ticket = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
        now = self._clock()
        with self._lock:
            self._drop_expired(now)
            self._tickets[ticket] = (user, ip, now)
        return ticket

    def redeem(self, ticket: str, ip: str) -> str | None:
        """The ticket's user if it is fresh and used from the same IP; it is spent either way."""
        with self._lock:
            entry = self._tickets.pop(ticket, None)
        if entry is None:
            return None
        user, issued_ip, issued_at = entry
        if issued_ip != ip or self._clock() - issued_at > self._lifetime:
            return None
        return user

    def _drop_expired(self, now: float) -> None:
        expired = [t for t, (_, _, at) in self._tickets.items() if now - at > self._lifetime]
        for ticket in expired:
            del self._tickets[ticket]
