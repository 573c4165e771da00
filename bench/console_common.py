"""Shared pieces of the console benchmarks: the real daemon, a lean console-v2 client, percentiles.

The client speaks just enough WebSocket to read server frames (unmasked) and
send masked text frames, so that measuring 50 clients in one Python process
measures the daemon, not the client library. Benchmark data lives under /tmp
(``OCTYNE_BENCH_DIR`` overrides), never in the repository.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config  # noqa: E402

PY = sys.executable
BENCH_ROOT = Path(os.environ.get("OCTYNE_BENCH_DIR", "/tmp"))
OUTPUT_PREFIX = b'{"type":"output","data":"'
SEQ_FIELD = b'","seq":'


def workspace(name: str) -> Path:
    """A fresh folder under /tmp for one benchmark's apps and daemon, removed when the script ends."""
    path = Path(tempfile.mkdtemp(prefix=f"octyne-bench-{name}-", dir=BENCH_ROOT))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def write_app(directory: Path, name: str, source: str) -> str:
    """Write an app script; returns its command line."""
    (directory / name).write_text(textwrap.dedent(source))
    return f"{PY} {name}"


def start_daemon(base: Path, servers: dict, tree: Path | None = None, **config) -> RunningDaemon:
    """The real daemon (embedded gunicorn) with ``servers`` (name -> command), none started.

    ``tree``: run the daemon's code from that checkout instead of this one (to compare two versions).
    """
    entries = {name: {"directory": str(base), "command": command, "enabled": False} for name, command in servers.items()}
    env = {"PYTHONPATH": str(tree)} if tree is not None else None
    return RunningDaemon(base, daemon_config(base, entries, **config), {"admin": ADMIN_HASH}, env=env)


def worker_of(daemon: RunningDaemon) -> psutil.Process:
    """The gunicorn worker: the master's child running the same interpreter (the apps and keeper are its children)."""
    master = psutil.Process(daemon.proc.pid)
    for child in master.children():
        if child.cmdline()[:2] == master.cmdline()[:2]:
            return child
    raise RuntimeError("no worker found")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class RawConsole:
    """A console-v2 connection over a plain socket."""

    def __init__(self, port: int, server: str, token: str, receive_buffer: int | None = None, since: int | None = None):
        self.sock = socket.socket()
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        query = "" if since is None else f"?since={since}"
        self.sock.sendall((f"GET /server/{server}/console{query} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: console-v2\r\nAuthorization: {token}\r\n\r\n").encode())
        self._buffer = bytearray()
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(head.decode(errors="replace"))
        self._buffer = bytearray(rest)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("closed")
        self._buffer += data

    def frame(self) -> tuple[int, bytes]:
        """The next frame: (opcode, payload)."""
        while len(self._buffer) < 2:
            self._fill()
        opcode, size = self._buffer[0] & 0x0F, self._buffer[1] & 0x7F
        start = 2
        if size == 126:
            while len(self._buffer) < 4:
                self._fill()
            size, start = struct.unpack_from("!H", self._buffer, 2)[0], 4
        elif size == 127:
            while len(self._buffer) < 10:
                self._fill()
            size, start = struct.unpack_from("!Q", self._buffer, 2)[0], 10
        while len(self._buffer) < start + size:
            self._fill()
        payload = bytes(self._buffer[start:start + size])
        del self._buffer[:start + size]
        return opcode, payload

    def output(self) -> bytes:
        """The data of the next output message; the benchmarks' lines are plain ASCII, so the only
        JSON escape to undo is the newline between batched lines. (The message ends with its
        ``seq`` field, after the data.)"""
        while True:
            opcode, payload = self.frame()
            if opcode == 8:
                raise ConnectionError("closed by the daemon")
            if payload.startswith(OUTPUT_PREFIX):
                end = payload.rfind(SEQ_FIELD)
                return payload[len(OUTPUT_PREFIX):end if end > 0 else -2].replace(b"\\n", b"\n")

    def send_json(self, message: dict) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        header = bytes((0x81, 0x80 | len(payload))) if len(payload) < 126 else struct.pack("!BBH", 0x81, 0xFE, len(payload))
        self.sock.sendall(header + mask + masked)

    def close(self) -> None:
        self.sock.close()
