"""The worker's connection socket: blocking carries a bound, and a mode it already has costs no system call."""

from __future__ import annotations

import fcntl
import os
import socket

import pytest

from octyne_flask.connections import BLOCKING_BOUND, StallBoundSocket


@pytest.fixture
def sock():
    ours, theirs = socket.socketpair()
    ours.__class__ = StallBoundSocket  # as the worker does with each accepted socket
    yield ours
    ours.close()
    theirs.close()


def os_nonblocking(sock: socket.socket) -> bool:
    return bool(fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)


def test_blocking_means_blocking_for_at_most_the_bound(sock):
    sock.setblocking(True)
    assert sock.gettimeout() == BLOCKING_BOUND
    sock.setblocking(False)
    assert sock.gettimeout() == 0.0
    sock.settimeout(None)  # what a console asks for: no bound at all
    assert sock.gettimeout() is None and not os_nonblocking(sock)
    sock.settimeout(2.5)
    assert sock.gettimeout() == 2.5 and os_nonblocking(sock)


def test_setting_the_mode_the_socket_has_makes_no_system_call(sock):
    sock.setblocking(True)
    assert os_nonblocking(sock)  # Python bounds a blocking call with a timeout by polling a non-blocking socket
    flags = fcntl.fcntl(sock.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(sock.fileno(), fcntl.F_SETFL, flags & ~os.O_NONBLOCK)  # behind Python's back, to see any ioctl
    sock.setblocking(True)
    sock.settimeout(BLOCKING_BOUND)
    assert not os_nonblocking(sock)  # untouched: neither call reached the kernel
    sock.settimeout(1.0)
    assert os_nonblocking(sock)  # a real change still does
