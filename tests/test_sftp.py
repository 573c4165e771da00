"""SFTP against the real daemon: paramiko's client and OpenSSH's ``sftp``, logins, path rules, uploads, limits.

extensions.md §F: ``<account>.<server>`` with the account's password (same check and throttle as
``/login``), the server's directory as root with the file API's path rules, the action log.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import paramiko
import pytest
import requests

from octyne_flask.auth.passwords import hash_password
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config, free_port, wait_until

SERVER = "survival"
ALICE_PASSWORD = "alice-password-for-tests"
OUTSIDE_SECRET = b"outside the server directory"


@contextmanager
def sftp_session(port: int, username: str = f"admin.{SERVER}", password: str = ADMIN_PASSWORD):
    """A logged-in paramiko SFTP client; the connection is closed on leaving."""
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=username, password=password)
        yield paramiko.SFTPClient.from_transport(transport)
    finally:
        transport.close()


def login_fails(port: int, username: str, password: str) -> str:
    """The failure a login with these credentials ends in (it must fail)."""
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        with pytest.raises(paramiko.AuthenticationException) as failure:
            transport.connect(username=username, password=password)
        return str(failure.value)
    finally:
        transport.close()


def sftp_config(port: int, **extra) -> dict:
    return {"sftp": {"enabled": True, "port": port, **extra}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A daemon serving SFTP with the servers ``survival`` and ``creative`` side by side, and an outside folder."""
    base = tmp_path_factory.mktemp("sftp")
    for name in (SERVER, "creative", "outside"):
        (base / name).mkdir()
    (base / "outside" / "secret.txt").write_bytes(OUTSIDE_SECRET)
    (base / "creative" / "theirs.txt").write_text("creative's file")
    servers = {name: {"directory": str(base / name), "command": "sleep 100000", "enabled": False}
               for name in (SERVER, "creative")}
    port = free_port()
    config = daemon_config(base, servers, **sftp_config(port), files={"uploadLimit": 64 * 1024 * 1024})
    daemon = RunningDaemon(base, config, {"admin": ADMIN_HASH, "alice": hash_password(ALICE_PASSWORD.encode())})
    daemon.sftp_port = port
    yield daemon
    daemon.stop()


@pytest.fixture
def root(world) -> Path:
    """survival's directory, emptied and refilled for each test."""
    directory = world.directory / SERVER
    subprocess.run(["find", str(directory), "-mindepth", "1", "-delete"], check=True)
    (directory / "world").mkdir()
    (directory / "world" / "level.dat").write_bytes(b"level data")
    (directory / "server.properties").write_text("motd=hello\n")
    return directory


def entries_of(world, action: str) -> list[dict]:
    return [entry for entry in world.action_log() if entry.get("action") == action]


# -- logins ------------------------------------------------------------------------------------------

def test_login_as_account_dot_server_roots_the_session_in_that_servers_directory(world, root):
    with sftp_session(world.sftp_port) as client:
        assert sorted(client.listdir("/")) == ["server.properties", "world"]
        assert client.normalize(".") == "/"
        assert client.listdir("/world") == ["level.dat"]
    with sftp_session(world.sftp_port, "alice.creative", ALICE_PASSWORD) as client:
        assert client.listdir("/") == ["theirs.txt"]
    login = entries_of(world, "auth.login")[-1]
    assert (login["user"], login["server"], login["via"], login["ip"]) == ("alice", "creative", "sftp", "127.0.0.1")


@pytest.mark.parametrize("username, password", [  # alice's: the module's other tests log in as admin
    (f"alice.{SERVER}", "wrong password"),
    ("nobody.survival", ALICE_PASSWORD),
    ("alice.no-such-server", ALICE_PASSWORD),
    ("alice", ALICE_PASSWORD),
    (f"alice.{SERVER}.", ALICE_PASSWORD),
    (".survival", ALICE_PASSWORD),
])
def test_wrong_password_unknown_account_or_unknown_server_fail_alike(world, username, password):
    assert login_fails(world.sftp_port, username, password) == "Authentication failed."


def test_the_banner_shows_the_host_key_the_client_sees(world):
    transport = paramiko.Transport(("127.0.0.1", world.sftp_port))
    try:
        transport.start_client()
        key = transport.get_remote_server_key()
    finally:
        transport.close()
    assert key.get_name() == "ssh-ed25519"
    assert f"host key ED25519 {key.fingerprint}" in world.output()
    assert f"sftp://0.0.0.0:{world.sftp_port}" in world.output()


# -- file operations ---------------------------------------------------------------------------------

def test_upload_download_rename_mkdir_remove_rmdir_stat_and_their_log_lines(world, root):
    data = os.urandom(3 * 1024 * 1024 + 17)
    with sftp_session(world.sftp_port) as client:
        with client.open("/plugins.jar", "wb") as handle:
            handle.write(data)
        assert (root / "plugins.jar").read_bytes() == data
        with client.open("/plugins.jar", "rb") as handle:
            assert handle.read() == data
        attributes = client.stat("/plugins.jar")
        assert attributes.st_size == len(data) and stat.S_ISREG(attributes.st_mode)
        assert stat.S_ISDIR(client.stat("/world").st_mode)
        client.mkdir("/plugins")
        client.rename("/plugins.jar", "/plugins/p.jar")
        assert client.listdir("/plugins") == ["p.jar"]
        client.remove("/plugins/p.jar")
        client.rmdir("/plugins")
    assert sorted(os.listdir(root)) == ["server.properties", "world"]
    lines = {entry["action"]: entry for entry in world.action_log()[-6:]}
    for action, fields in [("upload", {"path": "/plugins.jar"}), ("download", {"path": "/plugins.jar"}),
                           ("mkdir", {"path": "/plugins"}), ("rename", {"src": "/plugins.jar", "dest": "/plugins/p.jar"})]:
        entry = lines[f"server.files.sftp.{action}"]
        assert {key: entry[key] for key in ("user", "server", "ip", *fields)} == {
            "user": "admin", "server": SERVER, "ip": "127.0.0.1", **fields}
    deletes = [entry["path"] for entry in entries_of(world, "server.files.sftp.delete")[-2:]]
    assert deletes == ["/plugins/p.jar", "/plugins"]


def test_refusals_keep_the_sftp_meaning(world, root):
    with sftp_session(world.sftp_port) as client:
        with pytest.raises(FileNotFoundError):
            client.stat("/missing")
        with pytest.raises(IOError, match="This file already exists!"):
            client.rename("/server.properties", "/world")  # never over something that exists
        with pytest.raises(IOError, match="This is a folder!"):
            client.remove("/world")
        with pytest.raises(IOError, match="not empty"):
            client.rmdir("/world")
        with pytest.raises(IOError, match="This folder already exists!"):
            client.mkdir("/world")
        with pytest.raises(IOError, match="server directory itself"):
            client.rmdir("/")
        with pytest.raises(IOError, match="not supported"):
            client.symlink("/server.properties", "/link")
        with pytest.raises(IOError, match="already exists"):
            client.open("/server.properties", "wx")  # O_EXCL
        with pytest.raises(FileNotFoundError, match="This folder does not exist!"):
            client.open("/missing/new.txt", "w")
        with pytest.raises(IOError, match="This is not a folder!"):
            client.open("/server.properties/new.txt", "w")
    assert (root / "world" / "level.dat").exists()
    assert sorted(os.listdir(root)) == ["server.properties", "world"]


def test_writing_at_offsets_appending_and_resuming_keep_the_existing_content(world, root):
    with sftp_session(world.sftp_port) as client:
        with client.open("/server.properties", "r+") as handle:  # no truncation: written into the middle
            handle.seek(5)
            handle.write(b"HELLO")
        with client.open("/server.properties", "a") as handle:
            handle.write(b"pvp=false\n")
        client.chmod("/server.properties", 0o4755)
        client.utime("/server.properties", (1_000_000_000, 1_000_000_000))
    assert (root / "server.properties").read_bytes() == b"motd=HELLO\npvp=false\n"
    info = os.stat(root / "server.properties")
    assert stat.S_IMODE(info.st_mode) == 0o755  # never setuid: the daemon may run as root
    assert info.st_mtime == 1_000_000_000
    chmod, utime = entries_of(world, "server.files.sftp.setstat")[-2:]
    assert (chmod["path"], chmod["mode"], utime["mtime"]) == ("/server.properties", "0755", 1_000_000_000)


def test_modes_never_lock_the_owner_out_and_the_server_directory_keeps_its_own(world, root):
    with sftp_session(world.sftp_port) as client:
        client.chmod("/server.properties", 0o000)
        client.chmod("/world", 0o000)
        with pytest.raises(PermissionError, match="server directory itself"):
            client.chmod("/", 0o000)
        with client.open("/script.sh", "wb") as handle:
            handle.chmod(0o4711)
            handle.write(b"#!/bin/sh\n")
        assert client.listdir("/world") == ["level.dat"]
    assert stat.S_IMODE(os.stat(root / "server.properties").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(root / "world").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "script.sh").st_mode) == 0o711


def test_names_that_are_not_utf8_are_left_out_of_listings_and_such_paths_refused(world, root):
    (root / "world").joinpath(os.fsdecode(b"\xff\xfe.dat")).write_bytes(b"odd name")
    with sftp_session(world.sftp_port) as client:
        assert client.listdir("/world") == ["level.dat"]
        with pytest.raises(PermissionError, match="Invalid file path: invalid path"):
            client.stat(b"/world/\xff\xfe.dat")
        assert client.listdir("/") is not None  # the session goes on


def test_an_upload_is_put_in_place_only_on_close(world, root):
    with sftp_session(world.sftp_port) as client:
        handle = client.open("/server.properties", "wb")
        handle.write(b"new content, not complete yet")
        handle.flush()
        assert (root / "server.properties").read_text() == "motd=hello\n"  # readers still see the old file
        assert client.open("/server.properties").read() == b"motd=hello\n"
        handle.close()
        assert (root / "server.properties").read_text() == "new content, not complete yet"


@pytest.mark.parametrize("existing", [True, False])
def test_a_connection_dropped_mid_upload_leaves_nothing_under_the_real_name(world, root, existing):
    name = "server.properties" if existing else "new.jar"
    before = (root / name).read_bytes() if existing else None
    transport = paramiko.Transport(("127.0.0.1", world.sftp_port))
    transport.connect(username=f"admin.{SERVER}", password=ADMIN_PASSWORD)
    handle = paramiko.SFTPClient.from_transport(transport).open(f"/{name}", "wb")
    handle.write(os.urandom(1024 * 1024))
    handle.flush()
    assert [entry for entry in os.listdir(root) if entry.startswith(".octyne-upload-")]  # it is being written
    transport.sock.shutdown(socket.SHUT_RDWR)  # the network goes away; no close request ever comes
    transport.close()
    journal = world.directory / ".config.json.temporaries"
    wait_until(lambda: json.loads(journal.read_text()) == [])  # unlisted once removed
    assert not [entry for entry in os.listdir(root) if entry.startswith(".octyne-")]
    if existing:
        assert (root / name).read_bytes() == before
    else:
        assert not (root / name).exists()


def test_a_50_mb_file_comes_back_byte_identical(world, root, tmp_path):
    local = tmp_path / "big.bin"
    with open(local, "wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(1024 * 1024))
    with sftp_session(world.sftp_port) as client:
        client.put(str(local), "/big.bin")
        client.get("/big.bin", str(tmp_path / "back.bin"))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    assert hashlib.sha256((root / "big.bin").read_bytes()).hexdigest() == digest
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest


class RawSftp:
    """SFTP spoken packet by packet over a logged-in channel, for what paramiko's client never sends."""

    def __init__(self, transport: paramiko.Transport):
        self.channel = transport.open_session()
        self.channel.invoke_subsystem("sftp")
        self.channel.settimeout(30)

    def send(self, kind: int, payload: bytes) -> None:
        self.channel.sendall(struct.pack(">IB", len(payload) + 1, kind) + payload)

    def receive(self) -> tuple[int, bytes]:
        size = struct.unpack(">I", self._read(4))[0]
        body = self._read(size)
        return body[0], body[1:]

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.channel.recv(n - len(out))
            if not chunk:
                raise EOFError("the server closed the channel")
            out += chunk
        return out


def sftp_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def sftp_strings(data: bytes) -> list[bytes]:
    found = []
    while data:
        size = struct.unpack(">I", data[:4])[0]
        found.append(data[4:4 + size])
        data = data[4 + size:]
    return found


@contextmanager
def raw_sftp(port: int):
    """A raw SFTP channel past INIT, and the extensions the server's VERSION announced."""
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=f"admin.{SERVER}", password=ADMIN_PASSWORD)
        raw = RawSftp(transport)
        raw.send(1, struct.pack(">I", 3))  # INIT, version 3
        kind, body = raw.receive()
        assert kind == 2 and struct.unpack(">I", body[:4])[0] == 3  # VERSION 3
        names_and_versions = sftp_strings(body[4:])
        yield raw, dict(zip(names_and_versions[::2], names_and_versions[1::2]))
    finally:
        transport.close()


def test_the_server_offers_openssh_limits_and_takes_256_kib_per_write_and_read(world, root):
    """OpenSSH's PROTOCOL 4.8: clients that see these limits send 256 KiB requests instead of 32 KiB."""
    data = os.urandom(256 * 1024)
    with raw_sftp(world.sftp_port) as (raw, extensions):
        assert extensions[b"limits@openssh.com"] == b"1"
        raw.send(200, struct.pack(">I", 7) + sftp_string(b"limits@openssh.com"))  # EXTENDED
        kind, body = raw.receive()
        assert kind == 201  # EXTENDED_REPLY
        assert struct.unpack(">IQQQQ", body) == (7, 256 * 1024 + 1024, 256 * 1024, 256 * 1024, 0)
        raw.send(3, struct.pack(">I", 8) + sftp_string(b"/big.bin") + struct.pack(">II", 0x1A, 0))  # OPEN w/creat/trunc
        kind, body = raw.receive()
        assert kind == 102  # HANDLE
        handle = sftp_strings(body[4:])[0]
        raw.send(6, struct.pack(">I", 9) + sftp_string(handle) + struct.pack(">Q", 0) + sftp_string(data))  # WRITE
        assert raw.receive() == (101, struct.pack(">II", 9, 0) + sftp_string(b"Success") + sftp_string(b""))
        raw.send(4, struct.pack(">I", 10) + sftp_string(handle))  # CLOSE: put in place
        assert raw.receive()[0] == 101
        assert (root / "big.bin").read_bytes() == data
        raw.send(3, struct.pack(">I", 11) + sftp_string(b"/big.bin") + struct.pack(">II", 0x1, 0))  # OPEN to read
        handle = sftp_strings(raw.receive()[1][4:])[0]
        raw.send(5, struct.pack(">I", 12) + sftp_string(handle) + struct.pack(">QI", 0, len(data)))  # READ
        kind, body = raw.receive()
        assert kind == 103 and sftp_strings(body[4:]) == [data]  # DATA, all of it in one answer
        raw.send(200, struct.pack(">I", 13) + sftp_string(b"no-such-extension@example.com"))
        kind, body = raw.receive()
        assert kind == 101 and struct.unpack(">II", body[:8]) == (13, 8)  # others: paramiko's OP_UNSUPPORTED


def test_a_packet_beyond_the_announced_limit_ends_the_session(world, root):
    with raw_sftp(world.sftp_port) as (raw, _):
        raw.channel.sendall(struct.pack(">IB", 256 * 1024 + 1025, 6) + b"\0" * 1024)
        with pytest.raises((EOFError, OSError)):
            raw.receive()
    assert session_works(world.sftp_port)


def stalled_channel(transport: paramiko.Transport) -> RawSftp:
    """A raw SFTP channel whose server thread waits for us to read 8 MiB of answers (``/big.bin`` must exist)."""
    raw = RawSftp(transport)
    raw.send(1, struct.pack(">I", 3))
    raw.receive()
    raw.send(3, struct.pack(">I", 1) + sftp_string(b"/big.bin") + struct.pack(">II", 0x1, 0))
    handle = sftp_strings(raw.receive()[1][4:])[0]
    for number in range(32):
        raw.send(5, struct.pack(">I", 100 + number) + sftp_string(handle) + struct.pack(">QI", number << 18, 1 << 18))
    time.sleep(0.5)
    return raw


def send_ignoring_the_window(transport: paramiko.Transport, raw: RawSftp, packets: int, stderr: bool = False) -> None:
    """``packets`` of 64 KiB channel data (or stderr data), whatever window the server gave."""
    for _ in range(packets):
        message = paramiko.Message()
        message.add_byte(bytes([95 if stderr else 94]))  # SSH_MSG_CHANNEL_EXTENDED_DATA, SSH_MSG_CHANNEL_DATA
        message.add_int(raw.channel.remote_chanid)
        if stderr:
            message.add_int(1)  # SSH_EXTENDED_DATA_STDERR
        message.add_string(b"\0" * 65536)
        try:
            transport._send_user_message(message)
        except (EOFError, OSError):
            return  # the server has closed the connection meanwhile


@pytest.mark.parametrize("stderr_packets, data_packets", [(0, 64), (24, 24)], ids=["data", "stderr-and-data"])
def test_a_client_sending_beyond_its_window_while_not_reading_is_cut_off(world, root, stderr_packets, data_packets):
    """paramiko takes whatever a client sends; a channel's buffers hold at most its window and a packet, data
    and stderr together (1.5 MiB of each is within the 2 MiB window for either alone, not for both)."""
    (root / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    transport = paramiko.Transport(("127.0.0.1", world.sftp_port))
    try:
        transport.connect(username=f"admin.{SERVER}", password=ADMIN_PASSWORD)
        raw = stalled_channel(transport)
        send_ignoring_the_window(transport, raw, stderr_packets, stderr=True)
        send_ignoring_the_window(transport, raw, data_packets)
        wait_until(lambda: not transport.is_active(), timeout=10)
    finally:
        transport.close()
    assert session_works(world.sftp_port)


def test_uploads_beyond_the_upload_limit_are_refused_and_discarded(world, root):
    with sftp_session(world.sftp_port) as client:
        handle = client.open("/huge.bin", "wb")
        with pytest.raises(IOError, match="larger than the limit"):
            handle.write(b"x")
            handle.seek(64 * 1024 * 1024)
            handle.write(b"y")
            handle.close()
    wait_until(lambda: sorted(os.listdir(root)) == ["server.properties", "world"])


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs a root daemon")
def test_what_sftp_creates_belongs_to_the_servers_user(daemon_factory, tmp_path):
    nobody = pwd.getpwnam("nobody")
    port = free_port()
    apps = {name: tmp_path / name for name in ("confined", "plain")}
    for root in apps.values():
        root.mkdir()
        (root / "existing.txt").write_text("the daemon's")
        (root / "kept.txt").write_text("the daemon's")
    servers = {"confined": {"directory": str(apps["confined"]), "command": "true", "enabled": False, "user": "nobody"},
               "plain": {"directory": str(apps["plain"]), "command": "true", "enabled": False}}
    daemon_factory(servers=servers, config=sftp_config(port))
    for name in apps:
        with sftp_session(port, f"admin.{name}") as client:
            with client.open("/uploaded.txt", "wb") as handle:
                handle.write(b"new")
            with client.open("/existing.txt", "wb") as handle:
                handle.write(b"replaced")
            client.mkdir("/made")
            with client.open("/made/inner.txt", "wb") as handle:
                handle.write(b"inner")
    created = ["uploaded.txt", "existing.txt", "made", "made/inner.txt"]
    for name, owner in (("confined", (nobody.pw_uid, nobody.pw_gid)), ("plain", (os.geteuid(), os.getegid()))):
        found = {path: (os.lstat(apps[name] / path).st_uid, os.lstat(apps[name] / path).st_gid) for path in created}
        assert found == {path: owner for path in created}
        assert os.lstat(apps[name] / "kept.txt").st_uid == os.geteuid()  # what SFTP did not write keeps its owner


# -- path rules ----------------------------------------------------------------------------------------

def test_paths_never_leave_the_servers_directory(world, root):
    outside = world.directory / "outside"
    os.symlink(outside, root / "to_outside")
    os.symlink(outside / "secret.txt", root / "secret_link")
    os.symlink(root / "world", root / "to_world")  # a link that stays inside is followed
    with sftp_session(world.sftp_port) as client:
        for path in ("../outside/secret.txt", "world/../../outside/secret.txt"):
            with pytest.raises(PermissionError, match="path escapes from parent"):
                client.open(path)
        with pytest.raises(FileNotFoundError):
            client.open(f"/{world.directory}/outside/secret.txt")  # absolute paths start at the server directory
        assert client.listdir("/../../..") == client.listdir("/")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.listdir("/to_outside")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.open("/to_outside/secret.txt")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.open("/secret_link")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.stat("/secret_link")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.readlink("/to_outside")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.open("/to_outside/planted.txt", "wb")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.open("/secret_link", "wb")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.mkdir("/to_outside/new")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.rename("/server.properties", "/to_outside/stolen")
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.chmod("/secret_link", 0o777)
        assert stat.S_ISLNK(client.lstat("/to_outside").st_mode)  # listed as a link, not followed
        assert client.readlink("/to_world") == "/world"
        assert client.listdir("/to_world") == ["level.dat"]
        client.remove("/secret_link")  # removes the link, never its target
    assert (outside / "secret.txt").read_bytes() == OUTSIDE_SECRET
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_a_folder_swapped_for_a_link_during_a_transfer_never_leads_it_outside(world, root):
    outside = world.directory / "outside"
    (root / "plugins").mkdir()
    (root / "plugins" / "old.jar").write_bytes(b"old plugin")
    with sftp_session(world.sftp_port) as client:
        upload = client.open("/plugins/new.jar", "wb")
        upload.write(b"first half ")
        download = client.open("/plugins/old.jar", "rb")
        os.rename(root / "plugins", root / "plugins-parked")
        os.symlink(outside, root / "plugins")  # swapped while both transfers are open
        upload.write(b"second half")
        upload.close()
        assert download.read() == b"old plugin"
        with pytest.raises(PermissionError, match="symlink leads outside"):
            client.open("/plugins/secret.txt")
    assert (root / "plugins-parked" / "new.jar").read_bytes() == b"first half second half"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_a_folder_swapped_back_and_forth_meanwhile_never_leaks_or_plants_anything(world, root):
    """A race, bounded in time: every request either works inside or is refused; none reaches outside."""
    outside = world.directory / "outside"
    (root / "plugins").mkdir()
    (root / "plugins" / "secret.txt").write_bytes(b"inside")
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            os.rename(root / "plugins", root / "plugins-parked")
            os.symlink(outside, root / "plugins")
            os.unlink(root / "plugins")
            os.rename(root / "plugins-parked", root / "plugins")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    read = set()
    try:
        with sftp_session(world.sftp_port) as client:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                for request in (lambda: read.add(client.open("/plugins/secret.txt").read()),
                                lambda: client.open("/plugins/planted.txt", "wb").close(),
                                lambda: read.update(name.encode() for name in client.listdir("/plugins")),
                                lambda: client.stat("/plugins/secret.txt")):
                    try:
                        request()
                    except IOError:
                        pass
    finally:
        stop.set()
        swapper.join()
    assert OUTSIDE_SECRET not in read
    assert sorted(os.listdir(outside)) == ["secret.txt"]


# -- throttling, limits -------------------------------------------------------------------------------

def test_failed_sftp_logins_count_against_login_over_http_too(daemon_factory):
    port = free_port()
    daemon = daemon_factory(servers={SERVER: {"directory": ".", "command": "sleep 1", "enabled": False}},
                            config=sftp_config(port))
    for _ in range(10):
        login_fails(port, f"admin.{SERVER}", "wrong password")
    answer = requests.get(daemon.url + "/login", headers={"Username": "admin", "Password": ADMIN_PASSWORD})
    assert answer.status_code == 429
    login_fails(port, f"admin.{SERVER}", ADMIN_PASSWORD)  # the right password too, while throttled


def test_sessions_beyond_the_limit_are_refused_and_a_freed_slot_is_usable(daemon_factory, tmp_path):
    port = free_port()
    daemon_factory(servers={SERVER: {"directory": str(tmp_path), "command": "sleep 1", "enabled": False}},
                   config=sftp_config(port, maxSessions=2))
    with sftp_session(port), sftp_session(port):
        with pytest.raises(paramiko.ChannelException, match="Resource shortage"):
            with sftp_session(port):
                pass
    wait_until(lambda: session_works(port))  # the slots are free again once the server saw the disconnections


def session_works(port: int) -> bool:
    try:
        with sftp_session(port) as client:
            client.listdir("/")
    except paramiko.ChannelException:
        return False
    return True


def test_an_idle_connection_is_closed(daemon_factory, tmp_path):
    port = free_port()
    daemon_factory(servers={SERVER: {"directory": str(tmp_path), "command": "sleep 1", "enabled": False}},
                   config=sftp_config(port, idleTimeout=1))
    transport = paramiko.Transport(("127.0.0.1", port))
    try:
        transport.connect(username=f"admin.{SERVER}", password=ADMIN_PASSWORD)
        client = paramiko.SFTPClient.from_transport(transport)
        client.listdir("/")
        wait_until(lambda: not transport.is_active(), timeout=10)
    finally:
        transport.close()


def test_a_client_that_stops_reading_does_not_stall_ten_others(daemon_factory, tmp_path):
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    (server_dir / "big.bin").write_bytes(os.urandom(32 * 1024 * 1024))
    port = free_port()
    daemon_factory(servers={SERVER: {"directory": str(server_dir), "command": "sleep 1", "enabled": False}},
                   config=sftp_config(port))
    stalled = subprocess.Popen(
        ["sftp", "-P", str(port), "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'known'}",
         "-o", "PubkeyAuthentication=no", f"admin.{SERVER}@127.0.0.1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, **askpass_env(tmp_path, ADMIN_PASSWORD)})
    sessions = []
    try:
        stalled.stdin.write(f"get /big.bin {tmp_path / 'stalled.bin'}\n".encode())
        stalled.stdin.flush()
        wait_until(lambda: (tmp_path / "stalled.bin").exists(), timeout=20)
        os.killpg(stalled.pid, signal.SIGSTOP)  # the client (and its ssh) stop reading mid-download
        for _ in range(10):  # logged in one after another: concurrent logins count as guesses in flight
            transport = paramiko.Transport(("127.0.0.1", port))
            sessions.append(transport)
            transport.connect(username=f"admin.{SERVER}", password=ADMIN_PASSWORD)
        payload = os.urandom(2 * 1024 * 1024)
        failures = []

        def transfer(number: int, transport: paramiko.Transport) -> None:
            try:
                client = paramiko.SFTPClient.from_transport(transport)
                with client.open(f"/parallel{number}.bin", "wb") as handle:
                    handle.write(payload)
                with client.open(f"/parallel{number}.bin", "rb") as handle:
                    assert handle.read() == payload
            except Exception as error:  # reported below
                failures.append(error)

        workers = [threading.Thread(target=transfer, args=pair) for pair in enumerate(sessions)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers) and failures == []
    finally:
        for transport in sessions:
            transport.close()
        os.killpg(stalled.pid, signal.SIGKILL)
        stalled.wait()


# -- OpenSSH's sftp ---------------------------------------------------------------------------------------

def askpass_env(folder: Path, password: str) -> dict:
    """Environment for OpenSSH to read the password from a helper script instead of a terminal."""
    script = folder / "askpass.sh"
    script.write_text(f"#!/bin/sh\necho '{password}'\n")
    script.chmod(0o700)
    return {"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}


def openssh_sftp(port: int, folder: Path, commands: str, *options: str, env: dict | None = None):
    known_hosts = folder / "known_hosts"
    return subprocess.run(
        ["sftp", "-P", str(port), "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "IdentitiesOnly=yes", *options, f"admin.{SERVER}@127.0.0.1"],
        input=commands, text=True, capture_output=True, timeout=60, start_new_session=True,
        env={**os.environ, **(env or {})})


def test_openssh_sftp_in_batch_mode_with_an_authorized_key(daemon_factory, tmp_path):
    server_dir, local = tmp_path / "server", tmp_path / "local"
    server_dir.mkdir()
    local.mkdir()
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    keys = tmp_path / "sftp_keys"
    keys.write_text(f"# who may log in with a key\nalice: {other.with_suffix('.pub').read_text()}"
                    f"admin: {key.with_suffix('.pub').read_text()}")
    port = free_port()
    daemon_factory(servers={SERVER: {"directory": str(server_dir), "command": "sleep 1", "enabled": False}},
                   config=sftp_config(port, authorizedKeys=str(keys)))
    (local / "mod.jar").write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    batch = (f"put {local / 'mod.jar'} /mod.jar\nmkdir mods\nrename mod.jar mods/mod.jar\n"
             f"get mods/mod.jar {local / 'back.jar'}\nls -l mods\nrm mods/mod.jar\nrmdir mods\n")
    result = openssh_sftp(port, tmp_path, batch, "-i", str(key), "-b", "-", "-vvv")
    # OpenSSH's own 256 KiB limit less a header: eight times its 32 KiB without the limits extension
    assert "using 261120 / 261120" in result.stderr
    assert result.returncode == 0, result.stderr
    assert (local / "back.jar").read_bytes() == (local / "mod.jar").read_bytes()
    assert os.listdir(server_dir) == []
    refused = openssh_sftp(port, tmp_path, "ls\n", "-i", str(other), "-b", "-")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr  # alice's key is not admin's


def test_openssh_sftp_with_a_password(world, root, tmp_path):
    result = openssh_sftp(world.sftp_port, tmp_path, f"put {root / 'server.properties'} /copy.properties\nls\n",
                          "-o", "PubkeyAuthentication=no", env=askpass_env(tmp_path, ADMIN_PASSWORD))
    assert result.returncode == 0, result.stderr
    assert (root / "copy.properties").read_text() == "motd=hello\n"


# -- config: reload, host key, start -------------------------------------------------------------------

def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_reload_enables_moves_and_disables_sftp(daemon_factory, tmp_path):
    daemon = daemon_factory(servers={SERVER: {"directory": str(tmp_path), "command": "sleep 1", "enabled": False}})
    config = json.loads(daemon.config_path.read_text())
    first, second = free_port(), free_port()
    assert refuses_connections(first)

    config["sftp"] = {"enabled": True, "port": first}
    assert daemon.patch("/config", data=json.dumps(config)).status_code == 200
    with sftp_session(first) as client:
        assert client.listdir("/") is not None
        config["sftp"]["port"] = second
        daemon.config_path.write_text(json.dumps(config))
        assert daemon.get("/config/reload").status_code == 200
        assert refuses_connections(first)
        client.listdir("/")  # a session open on the old port goes on
    with sftp_session(second) as client:
        config["sftp"]["enabled"] = False
        assert daemon.patch("/config", data=json.dumps(config)).status_code == 200
        wait_until(lambda: not client.get_channel().get_transport().is_active())  # disabling closes sessions
    assert refuses_connections(second)


def test_a_config_whose_sftp_port_is_taken_is_refused_whole(daemon_factory, tmp_path):
    daemon = daemon_factory(servers={SERVER: {"directory": str(tmp_path), "command": "sleep 1", "enabled": False}})
    before = daemon.config_path.read_text()
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        config = {**json.loads(before), "sftp": {"enabled": True, "port": taken.getsockname()[1]}}
        answer = daemon.patch("/config", data=json.dumps(config))
    assert answer.status_code == 400 and answer.json()["error"] == "Invalid JSON body!"
    assert "'sftp.port'" in answer.json()["detail"]
    assert daemon.config_path.read_text() == before


def test_the_host_key_is_made_private_once_and_kept_across_restarts(daemon_factory, tmp_path):
    port = free_port()
    where = tmp_path / "state"
    servers = {SERVER: {"directory": str(tmp_path), "command": "sleep 1", "enabled": False}}
    daemon = daemon_factory(servers=servers, config=sftp_config(port), directory=where)
    key_file = where / "sftp_host_ed25519_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    fingerprint = paramiko.PKey.from_path(key_file).fingerprint
    assert fingerprint in daemon.output()
    daemon.stop()
    again = daemon_factory(servers=servers, config=sftp_config(port), directory=where)
    assert fingerprint in again.output()
    again.stop()

    key_file.chmod(0o644)
    refused = daemon_factory(servers=servers, config=sftp_config(port), directory=where, wait=False)
    assert refused.proc.wait(30) == 1
    assert "may be read by other users" in refused.output() and "'sftp.hostKey'" in refused.output()


def test_the_daemon_does_not_start_when_the_sftp_port_is_taken(daemon_factory, tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        daemon = daemon_factory(servers={SERVER: {"directory": str(tmp_path), "command": "sleep 1"}},
                                config=sftp_config(taken.getsockname()[1]), wait=False)
        assert daemon.proc.wait(30) == 1
    assert "cannot listen for SFTP" in daemon.output()


# -- GET /server/{id}/sftp ---------------------------------------------------------------------------------

def test_the_sftp_endpoint_tells_the_dashboard_how_to_connect(world):
    answer = world.get(f"/server/{SERVER}/sftp")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert body == {"enabled": True, "port": world.sftp_port, "username": f"admin.{SERVER}",
                    "hostKey": body["hostKey"]}
    assert body["hostKey"].startswith("ED25519 SHA256:") and body["hostKey"] in world.output()
    status, _, local = world.local("GET", f"/server/{SERVER}/sftp")
    assert status == 200 and json.loads(local)["username"] is None  # @local has no password to log in with
    assert requests.get(f"{world.url}/server/{SERVER}/sftp").status_code == 401
    assert world.get("/server/nope/sftp").json() == {"error": "This server does not exist!"}
    assert world.post(f"/server/{SERVER}/sftp").json() == {"error": "Only GET is allowed!"}
