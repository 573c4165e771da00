"""Client addresses: which IP a request comes from, believing only trusted proxies."""

from __future__ import annotations

import ipaddress


def normalise_ip(text: str) -> str:
    """An IP without port or brackets, IPv4-mapped IPv6 written as IPv4; other text as is.

    Some proxies write ``X-Forwarded-For`` entries with the client's port
    (``1.2.3.4:5678``, ``[2001:db8::1]:443``); the port changes per connection,
    so keeping it would break tickets bound to the client IP.
    """
    text = text.strip()
    candidate = text
    if candidate.startswith("["):
        candidate = candidate[1:].partition("]")[0]
    elif candidate.count(":") == 1:
        candidate = candidate.partition(":")[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def is_trusted(ip: str, trusted_networks) -> bool:
    try:
        address = ipaddress.ip_address(normalise_ip(ip))
    except ValueError:
        return False
    return any(address.version == network.version and address in network for network in trusted_networks)


def client_address(peer: str, forwarded_for: str | None, trusted_networks) -> str:
    """The client's IP for tickets, throttling and logs.

    ``X-Forwarded-For`` counts only when the peer is a trusted proxy. It is then
    walked from the right (nginx appends the real address after whatever the
    client sent), skipping trusted proxies; the first untrusted entry is the
    client, and if all are trusted the leftmost one is.
    """
    peer = normalise_ip(peer)
    if not forwarded_for or not is_trusted(peer, trusted_networks):
        return peer
    entries = [normalise_ip(part) for part in forwarded_for.split(",") if part.strip()]
    if not entries:
        return peer
    for entry in reversed(entries):
        if not is_trusted(entry, trusted_networks):
            return entry
    return entries[0]
