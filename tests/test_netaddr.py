"""Which address a request comes from: X-Forwarded-For only from trusted proxies, walked from the right."""

import ipaddress

import pytest

from octyne_flask.netaddr import client_address, normalise_ip

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize("peer, header, expected", [
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),           # untrusted peer: header ignored
    ("127.0.0.2", "1.2.3.4", "127.0.0.2"),               # only exactly 127.0.0.1 is trusted by default
    ("127.0.0.1", None, "127.0.0.1"),
    ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
    ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # forged leftmost entry is skipped
    ("127.0.0.1", "198.51.100.7, 127.0.0.1", "198.51.100.7"),
    ("127.0.0.1", "127.0.0.1, ::1", "127.0.0.1"),        # all trusted: leftmost
    ("::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"),  # mapped IPv6 compared as IPv4
    ("::1", "2001:db8::5", "2001:db8::5"),
    ("127.0.0.1", " , ", "127.0.0.1"),
    ("127.0.0.1", "198.51.100.7:50123", "198.51.100.7"),  # proxies that append the client's port
    ("127.0.0.1", "[2001:db8::5]:443, 127.0.0.1:8080", "2001:db8::5"),
])
def test_client_address(peer, header, expected):
    assert client_address(peer, header, LOOPBACK) == expected


def test_mapped_addresses_are_written_as_ipv4():
    assert normalise_ip("::ffff:10.1.2.3") == "10.1.2.3"
    assert normalise_ip("[::1]") == "::1"
    assert normalise_ip("[::ffff:10.1.2.3]:80") == "10.1.2.3"
    assert normalise_ip("10.1.2.3:80") == "10.1.2.3"
    assert normalise_ip("not-an-ip") == "not-an-ip"
