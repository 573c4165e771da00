"""File endpoints against the real daemon: every status and message of api.md §8, and the action log (§9)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import time
import urllib.parse
import zipfile
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config, wait_until
from tests.test_files_operations import Swapper, assert_nothing_from_outside, big_world, tree_state

UPLOAD_LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One daemon for the module, with two servers side by side (alpha is the one under test)."""
    base = tmp_path_factory.mktemp("files-api")
    servers = {name: {"directory": str(base / name), "command": "sleep 100000"} for name in ("alpha", "beta")}
    for name in servers:
        (base / name).mkdir()
    (base / "beta" / "secret.txt").write_text("beta's secret")
    config = daemon_config(base, servers, files={"uploadLimit": UPLOAD_LIMIT})
    running = RunningDaemon(base, config, {"admin": ADMIN_HASH})
    yield running
    running.clean_up()


@pytest.fixture
def root(daemon):
    """alpha's directory, emptied and refilled for each test."""
    directory = daemon.directory / "alpha"
    for entry in os.listdir(directory):
        path = directory / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (directory / "folder" / "nested").mkdir(parents=True)
    (directory / "a.txt").write_text("alpha text")
    (directory / "folder" / "b.txt").write_text("bravo")
    (directory / "folder" / "nested" / "c.bin").write_bytes(b"\x00binary")
    (directory / "data.json").write_text('{"ok": true}')
    os.symlink(str(daemon.directory / "beta"), directory / "to_beta")
    return directory


def last_log(daemon, action):
    for entry in reversed(daemon.action_log()):
        if entry.get("action") == action:
            return entry
    raise AssertionError(f"no {action} in the action log")


def check_error(response, status, message):
    assert (response.status_code, response.json()["error"]) == (status, message), response.text
    assert response.headers["Content-Type"] == "application/json"


# -- order of checks and 405s ------------------------------------------------------

@pytest.mark.parametrize("method, path, message", [
    ("DELETE", "/files", "Only GET and PATCH are allowed!"),
    ("PUT", "/file", "Only GET, POST, PATCH and DELETE are allowed!"),
    ("GET", "/folder", "Only POST is allowed!"),
    ("DELETE", "/compress", "Only GET and POST are allowed!"),
    ("PUT", "/compress/v2", "Only GET and POST are allowed!"),
    ("GET", "/decompress", "Only POST is allowed!"),
])
def test_authentication_then_server_then_method(daemon, root, method, path, message):
    check_error(requests.request(method, f"{daemon.url}/server/alpha{path}"), 401,
                "You are not authenticated to access this resource!")
    check_error(daemon.request(method, f"/server/ghost{path}"), 404, "This server does not exist!")
    check_error(daemon.request(method, f"/server/alpha{path}"), 405, message)


# -- listing -----------------------------------------------------------------------

def test_listing(daemon, root):
    response = daemon.get("/server/alpha/files", params={"path": "/"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    contents = {item["name"]: item for item in response.json()["contents"]}
    assert set(contents) == {"a.txt", "folder", "data.json", "to_beta"}
    assert contents["a.txt"]["mimeType"] == contents["data.json"]["mimeType"] == "text/plain; charset=utf-8"
    assert contents["to_beta"] == {**contents["to_beta"], "folder": True, "mimeType": "inode/symlink"}
    assert all(set(item) == {"name", "size", "lastModified", "folder", "mimeType"} for item in contents.values())
    assert [item["name"] for item in daemon.get("/server/alpha/files?path=folder/").json()["contents"]] == \
        ["b.txt", "nested"]


@pytest.mark.parametrize("path, status, message", [
    ("../", 400, "Invalid folder path: path escapes from parent"),
    ("..", 400, "Invalid folder path: path escapes from parent"),
    ("to_beta", 400, "Invalid folder path: symlink leads outside the server directory"),
    ("a%00b", 400, "Invalid folder path: invalid path"),
    ("nope", 404, "This folder does not exist!"),
    ("a.txt", 400, "This is not a folder!"),
])
def test_listing_errors(daemon, root, path, status, message):
    check_error(daemon.get(f"/server/alpha/files?path={path}"), status, message)


def test_rooted_paths_stay_in_the_server(daemon, root):
    response = daemon.get("/server/alpha/files?path=/../../")
    assert {item["name"] for item in response.json()["contents"]} == {"a.txt", "folder", "data.json", "to_beta"}
    check_error(daemon.get("/server/alpha/file?path=/etc/passwd"), 404, "This file does not exist!")


# -- download ----------------------------------------------------------------------

def test_download_streams_with_length_type_and_name(daemon, root):
    response = daemon.get("/server/alpha/file?path=/a.txt")
    assert response.status_code == 200 and response.content == b"alpha text"
    assert response.headers["Content-Length"] == "10"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"] == "attachment; filename=a.txt"
    entry = last_log(daemon, "server.files.download")
    assert (entry["server"], entry["path"], entry["user"], entry["ip"]) == ("alpha", "/a.txt", "admin", "127.0.0.1")


def test_download_honours_range_and_quotes_unicode_names(daemon, root):
    (root / "résumé 1.bin").write_bytes(bytes(range(256)) * 40)
    quoted = urllib.parse.quote("résumé 1.bin")
    response = daemon.get(f"/server/alpha/file?path={quoted}", headers={"Range": "bytes=100-199"})
    assert response.status_code == 206 and response.content == (bytes(range(256)) * 40)[100:200]
    assert response.headers["Content-Range"] == "bytes 100-199/10240"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''r%C3%A9sum%C3%A9%201.bin" in disposition


@pytest.mark.parametrize("name, fallback, encoded", [
    ("a\r\nb.txt", "a__b.txt", "a%0D%0Ab.txt"),
    ("bell\x01.txt", "bell_.txt", "bell%01.txt"),
    ("del\x7f.txt", "del_.txt", "del%7F.txt"),
    ('quo"te\\ ✓.txt', 'quo\\"te\\\\ _.txt', "quo%22te%5C%20%E2%9C%93.txt"),
])
def test_download_of_names_with_control_characters_has_a_safe_disposition(daemon, root, name, fallback, encoded):
    (root / name).write_bytes(b"payload " + name.encode())
    response = daemon.get("/server/alpha/file?path=/" + urllib.parse.quote(name))
    assert response.status_code == 200 and response.content == b"payload " + name.encode()
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    assert last_log(daemon, "server.files.download")["path"] == "/" + name


def test_a_download_that_is_not_answered_is_not_logged(daemon, root):
    before = len(daemon.action_log())
    response = daemon.get("/server/alpha/file?path=/a.txt", headers={"Range": "bytes=500-600"})
    assert response.status_code == 416
    assert len(daemon.action_log()) == before


@pytest.mark.parametrize("path, status, message", [
    ("../a.txt", 400, "Invalid file path: path escapes from parent"),
    ("to_beta/secret.txt", 400, "Invalid file path: symlink leads outside the server directory"),
    ("ghost", 404, "This file does not exist!"),
    ("folder", 400, "This is not a file!"),
])
def test_download_errors(daemon, root, path, status, message):
    check_error(daemon.get(f"/server/alpha/file?path={path}"), status, message)


def test_a_ticket_downloads_once_without_a_token(daemon, root):
    ticket = daemon.get("/ott").json()["ticket"]
    url = f"{daemon.url}/server/alpha/file?path=a.txt&ticket={urllib.parse.quote(ticket)}"
    assert requests.get(url).content == b"alpha text"
    check_error(requests.get(url), 401, "You are not authenticated to access this resource!")
    ticket = daemon.get("/ott").json()["ticket"]
    check_error(requests.delete(f"{daemon.url}/server/alpha/file?path=a.txt&ticket={urllib.parse.quote(ticket)}"),
                401, "You are not authenticated to access this resource!")
    assert (root / "a.txt").exists()


# -- upload ------------------------------------------------------------------------

def test_upload_saves_the_base_name_in_the_folder(daemon, root):
    payload = os.urandom(1_500_000)
    response = daemon.post("/server/alpha/file?path=/folder", files={"upload": ("../../evil.bin", payload)})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert (root / "folder" / "evil.bin").read_bytes() == payload
    entry = last_log(daemon, "server.files.upload")
    assert (entry["server"], entry["path"], entry["filename"]) == ("alpha", "/folder", "evil.bin")


def test_upload_overwrites_and_refuses_folders_and_bad_forms(daemon, root):
    assert daemon.post("/server/alpha/file?path=/", files={"upload": ("a.txt", b"new")}).status_code == 200
    assert (root / "a.txt").read_text() == "new"
    check_error(daemon.post("/server/alpha/file?path=/", files={"upload": ("folder", b"x")}), 400, "This is a folder!")
    check_error(daemon.post("/server/alpha/file?path=/", data=b"plain"), 400, "Invalid form sent!")
    check_error(daemon.post("/server/alpha/file?path=/", files={"other": ("x.txt", b"x")}), 400, "Invalid form sent!")
    check_error(daemon.post("/server/alpha/file?path=/", files={"upload": ("..", b"x")}), 400, "Invalid file name: ..")
    check_error(daemon.post("/server/alpha/file?path=../", files={"upload": ("x", b"x")}), 400,
                "Invalid file path: path escapes from parent")
    check_error(daemon.post("/server/alpha/file?path=to_beta", files={"upload": ("secret.txt", b"x")}), 400,
                "Invalid file path: symlink leads outside the server directory")
    assert (daemon.directory / "beta" / "secret.txt").read_text() == "beta's secret"


def test_upload_over_the_limit_is_413(daemon, root):
    response = daemon.post("/server/alpha/file?path=/", files={"upload": ("big.bin", b"x" * (UPLOAD_LIMIT + 1))})
    assert response.status_code == 413 and response.headers["Content-Type"] == "application/json"
    assert "error" in response.json()
    assert not (root / "big.bin").exists()
    assert not [name for name in os.listdir(root) if name.startswith(".octyne-upload-")]


def test_an_upload_killed_halfway_leaves_the_old_file(daemon, root):
    (root / "world.dat").write_text("the previous world")
    boundary = "killedboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"world.dat\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    total = len(head) + 1_900_000 + len(f"\r\n--{boundary}--\r\n")
    with socket.create_connection(("127.0.0.1", daemon.port)) as connection:
        connection.sendall((f"POST /server/alpha/file?path=/ HTTP/1.1\r\nHost: x\r\n"
                            f"Authorization: {daemon.token}\r\nContent-Length: {total}\r\n"
                            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode() + head)
        connection.sendall(os.urandom(1_300_000))  # more than one 1 MiB read, less than the whole
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(n.startswith(".octyne-upload-") for n in os.listdir(root)):
            time.sleep(0.01)
        assert any(name.startswith(".octyne-upload-") for name in os.listdir(root))  # it was being written
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(n.startswith(".octyne-upload-") for n in os.listdir(root)):
        time.sleep(0.05)
    assert not [name for name in os.listdir(root) if name.startswith(".octyne-upload-")]
    assert (root / "world.dat").read_text() == "the previous world"
    assert daemon.get("/server/alpha/files").status_code == 200  # the daemon is fine


def multipart_upload(filename: str, payload: bytes, boundary: str = "pipelinedboundary") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()


def upload_request(daemon, body: bytes, boundary: str = "pipelinedboundary", *, length: int | None = None,
                   extra: str = "", server: str = "alpha") -> bytes:
    """The upload of ``body`` into the server's top folder (``length``: the Content-Length claimed, if not the
    body's; ``extra``: more header lines)."""
    length = len(body) if length is None else length
    return (f"POST /server/{server}/file?path=/ HTTP/1.1\r\nHost: x\r\nAuthorization: {daemon.token}\r\n{extra}"
            f"Content-Length: {length}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
            ).encode() + body


def listing_request(daemon) -> bytes:
    return f"GET /server/alpha/files?path=/ HTTP/1.1\r\nHost: x\r\nAuthorization: {daemon.token}\r\n\r\n".encode()


def upload_leftovers(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".octyne-upload-")]


def read_answers(connection: socket.socket, count: int) -> list[bytes]:
    """``count`` HTTP answers (each with a Content-Length) read from ``connection``."""
    received, answers = b"", []
    while len(answers) < count:
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0:
            head = received[:head_end].decode("latin-1").lower()
            length = int(head.split("content-length:")[1].split("\r\n")[0])
            if len(received) >= head_end + 4 + length:
                answers.append(received[:head_end + 4 + length])
                received = received[head_end + 4 + length:]
                continue
        chunk = connection.recv(65536)
        assert chunk, "closed by the daemon"
        received += chunk
    return answers


@pytest.mark.parametrize("size", [300, 1_500_000])
def test_a_request_pipelined_behind_an_upload_is_answered(daemon, root, size):
    """The upload's body is read from the connection itself: it must stop at the body's end, whether the next
    request arrived with the head (a small body) or behind a large one."""
    payload = os.urandom(size)
    listing = f"GET /server/alpha/files?path=/ HTTP/1.1\r\nHost: x\r\nAuthorization: {daemon.token}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        connection.sendall(upload_request(daemon, multipart_upload("piped.bin", payload)) + listing.encode())
        uploaded, listed = read_answers(connection, 2)
    assert uploaded.startswith(b"HTTP/1.1 200 ") and b'{"success":true}' in uploaded.replace(b" ", b"")
    assert listed.startswith(b"HTTP/1.1 200 ") and b'"piped.bin"' in listed
    assert (root / "piped.bin").read_bytes() == payload


def test_an_upload_sent_in_small_pieces_is_saved_whole(daemon, root):
    payload = os.urandom(200_000)
    request = upload_request(daemon, multipart_upload("slow.bin", payload))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        for start in range(0, len(request), 7_001):
            connection.sendall(request[start:start + 7_001])
            time.sleep(0.002)
        [answer] = read_answers(connection, 1)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert (root / "slow.bin").read_bytes() == payload


def test_uploads_that_stall_hold_no_buffer_memory(daemon, root):
    """Each upload reads into a 2 MiB buffer: its pages are to become resident only as data arrives in them,
    or clients that start uploads and stop sending would hold 2 MiB of the worker's memory each."""
    stalled = 20
    request = upload_request(daemon, multipart_upload("stalled.bin", os.urandom(100_000)))[:-50_000]
    [worker] = psutil.Process(daemon.proc.pid).children()
    before = worker.memory_info().rss
    connections = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(stalled)]
    try:
        for connection in connections:
            connection.sendall(request)
        wait_until(lambda: len(upload_leftovers(root)) == stalled)  # every upload is under way, its buffer made
        grown = worker.memory_info().rss - before
    finally:
        for connection in connections:
            connection.close()
    wait_until(lambda: not upload_leftovers(root))
    assert grown < stalled * (1 << 20) // 2, f"{grown / stalled / (1 << 20):.2f} MiB per stalled upload"


# Request sizes (head and body) where the body ends just before, at and just after gunicorn's first 8 KiB read,
# and at the multipart reader's 1 MiB and 2 MiB marks.
EDGES = [8192 - 1, 8192, 8193, 1 << 20, (1 << 20) + 1, (2 << 20) - 100]


@pytest.mark.parametrize("first, second", [(1000, 1000), *((edge, 1000) for edge in EDGES), (1000, 8192), (8192, 8192)])
def test_uploads_pipelined_back_to_back_are_each_saved(daemon, root, first, second):
    """Each upload's body ends where the next request starts, whether that came with its head, in the same read
    as its end or later, and whether the next request is another upload (read from the connection too)."""
    payloads, pipelined = [], b""
    for number, total in enumerate((first, second)):
        overhead = len(upload_request(daemon, multipart_upload(f"{number}.bin", b"")))
        payloads.append(os.urandom(total - overhead))
        pipelined += upload_request(daemon, multipart_upload(f"{number}.bin", payloads[-1]))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        connection.sendall(pipelined + listing_request(daemon))
        answers = read_answers(connection, 3)
    assert [answer.split(b" ", 2)[1] for answer in answers] == [b"200"] * 3, answers
    assert [(root / f"{number}.bin").read_bytes() for number in (0, 1)] == payloads
    assert upload_leftovers(root) == []


def test_the_bytes_after_the_closing_boundary_are_skipped_not_read_as_the_next_request(daemon, root):
    payload = os.urandom(5_000)
    body = multipart_upload("epilogue.bin", payload) + b"an epilogue, part of the body " * 100
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        connection.sendall(upload_request(daemon, body) + listing_request(daemon))
        uploaded, listed = read_answers(connection, 2)
    assert uploaded.startswith(b"HTTP/1.1 200 ") and listed.startswith(b"HTTP/1.1 200 ")
    assert (root / "epilogue.bin").read_bytes() == payload


@pytest.mark.parametrize("sent", [0, 5_000, 1_200_000])
def test_a_body_that_ends_before_its_length_is_an_invalid_form_answered_to_the_client(daemon, root, sent):
    """The client half-closes (shutdown SHUT_WR) before sending all it announced: 400, and no file is left."""
    body = multipart_upload("short.bin", os.urandom(1_500_000))
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        request = upload_request(daemon, body)
        connection.sendall(request[:len(request) - len(body) + sent])
        connection.shutdown(socket.SHUT_WR)
        [answer] = read_answers(connection, 1)
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b'{"error":"Invalid form sent!"}\n')
    assert not (root / "short.bin").exists()
    wait_until(lambda: not upload_leftovers(root))


def test_an_empty_body_is_an_invalid_form_and_the_next_request_is_answered(daemon, root):
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        connection.sendall(upload_request(daemon, b"") + listing_request(daemon))
        refused, listed = read_answers(connection, 2)
    assert refused.startswith(b"HTTP/1.1 400 ") and b"Invalid form sent!" in refused
    assert listed.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("refusal", ["folder", "too large"])
def test_the_request_behind_an_upload_refused_halfway_is_answered(daemon, root, refusal):
    """The upload is refused after part of its body is read (its name is a folder; the file grows past the
    limit): the rest of the body is skipped, and the next request is read where it starts."""
    (root / "taken").mkdir()
    name, size = ("taken", 20_000) if refusal == "folder" else ("big.bin", UPLOAD_LIMIT + 10)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        connection.sendall(upload_request(daemon, multipart_upload(name, os.urandom(size))) + listing_request(daemon))
        refused, listed = read_answers(connection, 2)
    assert refused.split(b" ", 2)[1] == (b"400" if refusal == "folder" else b"413")
    assert listed.startswith(b"HTTP/1.1 200 ") and b'"taken"' in listed
    assert not (root / "big.bin").exists() and upload_leftovers(root) == []


def test_an_upload_that_expects_100_continue_is_saved(daemon, root):
    payload = os.urandom(300_000)
    body = multipart_upload("continued.bin", payload)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
        connection.sendall(upload_request(daemon, b"", length=len(body), extra="Expect: 100-continue\r\n"))
        assert connection.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.sendall(body + listing_request(daemon))
        uploaded, listed = read_answers(connection, 2)
    assert uploaded.startswith(b"HTTP/1.1 200 ") and listed.startswith(b"HTTP/1.1 200 ")
    assert (root / "continued.bin").read_bytes() == payload


def test_an_upload_over_the_unix_socket_with_a_request_behind_it(daemon, root):
    payload = os.urandom(1_000_000)
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(daemon.socket_path)
        connection.sendall(upload_request(daemon, multipart_upload("local.bin", payload)) + listing_request(daemon))
        uploaded, listed = read_answers(connection, 2)
    assert uploaded.startswith(b"HTTP/1.1 200 ") and listed.startswith(b"HTTP/1.1 200 ")
    assert (root / "local.bin").read_bytes() == payload


@pytest.mark.parametrize("sent", [100, 1_200_000])
def test_an_upload_reset_halfway_leaves_nothing(daemon, root, sent):
    """The client resets the connection (RST, not FIN): the read fails rather than ending."""
    body = multipart_upload("reset.bin", os.urandom(1_500_000))
    request = upload_request(daemon, body)
    connection = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    connection.sendall(request[:len(request) - len(body) + sent])
    if sent > 100:
        wait_until(lambda: upload_leftovers(root), 5)  # the file is being written
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()
    wait_until(lambda: not upload_leftovers(root))
    assert not (root / "reset.bin").exists()
    assert daemon.get("/server/alpha/files").status_code == 200


def test_twenty_uploads_at_once_are_each_saved_whole(daemon, root):
    payloads = [os.urandom(300_000 + number * 7_919) for number in range(20)]

    def upload(number: int) -> bytes:
        request = upload_request(daemon, multipart_upload(f"{number}.bin", payloads[number]))
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as connection:
            for start in range(0, len(request), 50_000):
                connection.sendall(request[start:start + 50_000])
            [answer] = read_answers(connection, 1)
        return answer.split(b" ", 2)[1]

    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(upload, range(20))) == [b"200"] * 20
    assert [(root / f"{number}.bin").read_bytes() for number in range(20)] == payloads
    assert upload_leftovers(root) == []

def test_a_chunked_upload_is_saved(daemon, root):
    """A body without a length (chunked transfer encoding) is read through the server's own reader."""
    payload = os.urandom(1_200_000)
    body = multipart_upload("chunked.bin", payload)
    pieces = (body[start:start + 100_000] for start in range(0, len(body), 100_000))
    response = daemon.post("/server/alpha/file?path=/", data=pieces,
                           headers={"Content-Type": "multipart/form-data; boundary=pipelinedboundary"})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert (root / "chunked.bin").read_bytes() == payload


# -- delete and folder -------------------------------------------------------------

def test_delete(daemon, root):
    assert daemon.delete("/server/alpha/file?path=/folder").json() == {"success": True}
    assert not (root / "folder").exists()
    assert last_log(daemon, "server.files.delete")["path"] == "/folder"
    assert daemon.delete("/server/alpha/file?path=to_beta").json() == {"success": True}
    assert (daemon.directory / "beta" / "secret.txt").exists()
    check_error(daemon.delete("/server/alpha/file?path=ghost"), 404, "This file does not exist!")
    for path in ("", "/", "/folder2/../"):
        check_error(daemon.delete(f"/server/alpha/file?path={path}"), 403,
                    "This operation is dangerous and has been forbidden!")
    assert (root / "a.txt").exists()


def test_create_folder(daemon, root):
    assert daemon.post("/server/alpha/folder?path=/made").json() == {"success": True}
    assert (root / "made").is_dir()
    assert last_log(daemon, "server.files.createFolder")["path"] == "/made"
    check_error(daemon.post("/server/alpha/folder?path=/made"), 400, "This folder already exists!")
    check_error(daemon.post("/server/alpha/folder?path=a.txt"), 400, "This folder already exists!")
    check_error(daemon.post("/server/alpha/folder?path=../x"), 400, "Invalid folder path: path escapes from parent")


# -- move / copy -------------------------------------------------------------------

def test_json_move_and_legacy_copy(daemon, root):
    response = daemon.patch("/server/alpha/file", data='{"operation":"mv","src":"/a.txt","dest":"/folder"}')
    assert response.json() == {"success": True} and (root / "folder" / "a.txt").read_text() == "alpha text"
    entry = last_log(daemon, "server.files.move")
    assert (entry["src"], entry["dest"]) == ("/a.txt", "/folder")
    assert daemon.patch("/server/alpha/file", data="cp\n/folder/a.txt\n/copy.txt").json() == {"success": True}
    assert (root / "copy.txt").read_text() == "alpha text"
    assert last_log(daemon, "server.files.copy")["dest"] == "/copy.txt"


@pytest.mark.parametrize("body, status, message", [
    ("", 400, "Invalid JSON body!"),
    ("{broken", 400, "Invalid JSON body!"),
    ("mv\n/a.txt", 405, "mv operation requires two arguments!"),
    ("cp\n/a.txt\n/b\n/c", 405, "cp operation requires two arguments!"),
    ("zz\n/a.txt", 405, "Invalid operation! Operations available: mv,cp"),
    ('{"operation":"rm","path":"/a.txt"}', 405, "Invalid operation! Operations available: mv,cp"),
    ('{"operation":"rm"}', 405, "Invalid operation! Operations available: mv,cp"),
    ('{"operation":"rm","path":"../x"}', 405, "Invalid operation! Operations available: mv,cp"),
    ("rm\n/a.txt\n/x", 405, "Invalid operation! Operations available: mv,cp"),
    ("zz\n/a.txt\n/x", 400, "Invalid operation! Operations available: mv,cp,rm"),
    ('{"operation":"zz","src":"/a.txt","dest":"/x"}', 400, "Invalid operation! Operations available: mv,cp,rm"),
    ("mv\n../a.txt\n/x", 400, "Invalid source path: path escapes from parent"),
    ("mv\n/\n/x", 400, "Invalid source path: path is the server directory itself"),
    ('{"operation":"cp","src":"","dest":"/x"}', 400, "Invalid source path: path is the server directory itself"),
    ("mv\n/a.txt\n../x", 400, "Invalid destination path: path escapes from parent"),
    ("mv\n/ghost\n/x", 400, "The file specified in src does not exist!"),
    ("cp\n/a.txt\n/data.json", 409, "This file already exists!"),
    ("cp\n/a.txt\n/", 409, "This file already exists!"),
    ("mv\n/a.txt\n/missing/x", 400, "Destination parent folder does not exist!"),
    ("mv\n/a.txt\n/data.json/x", 400, "Destination parent is not a folder!"),
    ("cp\n/a.txt\n/data.json/x/y", 400, "Destination parent folder does not exist!"),  # was a 500 (ENOTDIR)
])
def test_move_copy_errors_change_nothing(daemon, root, body, status, message):
    before = tree_state(root)
    check_error(daemon.patch("/server/alpha/file", data=body.encode()), status, message)
    assert tree_state(root) == before


# -- transactions ------------------------------------------------------------------

def test_transaction_success_and_log(daemon, root):
    operations = [{"operation": "cp", "src": "/a.txt", "dest": "/folder"},
                  {"operation": "rm", "path": "/data.json"}]
    response = daemon.patch("/server/alpha/files", json={"operations": operations})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert (root / "folder" / "a.txt").exists() and not (root / "data.json").exists()
    entry = last_log(daemon, "server.files.bulk")
    assert entry["operations"] == [{"operation": "cp", "src": "/a.txt", "dest": "/folder"},
                                   {"operation": "rm", "path": "/data.json"}] and "errors" not in entry
    assert not [name for name in os.listdir(root) if name.startswith(".octyne-transaction-")]


def test_transaction_rolls_back_at_the_last_of_five(daemon, root):
    before = tree_state(root)
    operations = [{"operation": "cp", "src": "/folder", "dest": "/folder2"},
                  {"operation": "mv", "src": "/a.txt", "dest": "/folder2/moved.txt"},
                  {"operation": "rm", "path": "/data.json"},
                  {"operation": "rm", "path": "/folder/nested"},
                  {"operation": "cp", "src": "/folder/b.txt", "dest": "/folder2/b.txt"}]
    response = daemon.patch("/server/alpha/files", json={"operations": operations})
    assert (response.status_code, response.json()) == (
        409, {"success": False, "errors": [{"index": 4, "message": "This file already exists!"}]})
    assert tree_state(root) == before
    assert last_log(daemon, "server.files.bulk")["errors"] == [{"index": 4, "message": "This file already exists!"}]


def test_transaction_validation_runs_nothing(daemon, root):
    before = tree_state(root)
    operations = [{"operation": "rm", "path": "/a.txt"}, {"operation": "rm", "path": "../x"}]
    response = daemon.patch("/server/alpha/files", json={"operations": operations})
    assert (response.status_code, response.json()) == (
        400, {"success": False, "errors": [{"index": 1, "message": "Invalid source path: path escapes from parent"}]})
    assert tree_state(root) == before
    check_error(daemon.patch("/server/alpha/files", data=b"nope"), 400, "Invalid JSON body!")


def test_the_old_probe_does_not_list(daemon, root):
    response = daemon.patch("/server/alpha/files?path=..", data=b"")
    assert "contents" not in response.json()
    assert daemon.get("/server/alpha/files?path=..").status_code == 400


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "application/json"])
def test_bodies_are_read_raw_whatever_the_content_type(daemon, root, content_type):
    """api.md §1: octynectl and scripts send any Content-Type (or none); the body is parsed as the endpoint expects."""
    headers = {"Content-Type": content_type}
    requests_and_bodies = [
        ("PATCH", "/server/alpha/file", b"cp\n/a.txt\n/legacy.txt"),
        ("PATCH", "/server/alpha/file", b'{"operation":"cp","src":"/a.txt","dest":"/json.txt"}'),
        ("PATCH", "/server/alpha/files", b'{"operations":[{"operation":"cp","src":"/a.txt","dest":"/bulk.txt"}]}'),
        ("POST", "/server/alpha/compress?path=/a.zip", b'["a.txt"]'),
        ("POST", "/server/alpha/decompress?path=/a.zip", b"/unpacked"),
        ("POST", "/server/alpha", b"START"),
    ]
    for method, path, body in requests_and_bodies:
        response = daemon.request(method, path, data=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"success": True}), (path, response.text)
    assert all((root / name).read_text() == "alpha text" for name in ("legacy.txt", "json.txt", "bulk.txt"))
    assert (root / "unpacked" / "a.txt").read_text() == "alpha text"


def test_over_the_unix_socket_the_user_is_local(daemon, root):
    status, _, body = daemon.local("POST", "/server/alpha/folder?path=/by-socket")
    assert status == 200 and (root / "by-socket").is_dir()
    assert last_log(daemon, "server.files.createFolder")["user"] == "@local"


def test_hashes_of_what_was_never_touched(daemon, root):
    """beta (the sibling server) is identical after all the tests above."""
    digest = hashlib.sha256((daemon.directory / "beta" / "secret.txt").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(b"beta's secret").hexdigest()


LINK_OUT = "symlink leads outside the server directory"


@pytest.mark.parametrize("method, url, body, message", [
    ("GET", "/files?path=to_etc", None, f"Invalid folder path: {LINK_OUT}"),
    ("GET", "/files?path=to_beta/", None, f"Invalid folder path: {LINK_OUT}"),
    ("GET", "/file?path=to_etc/passwd", None, f"Invalid file path: {LINK_OUT}"),
    ("GET", "/file?path=to_beta/secret.txt", None, f"Invalid file path: {LINK_OUT}"),
    ("POST", "/file?path=to_etc", "upload", f"Invalid file path: {LINK_OUT}"),
    ("DELETE", "/file?path=to_beta/secret.txt", None, f"Invalid file path: {LINK_OUT}"),
    ("POST", "/folder?path=to_beta/new", None, f"Invalid folder path: {LINK_OUT}"),
    ("POST", "/folder?path=to_etc/new", None, f"Invalid folder path: {LINK_OUT}"),
    ("PATCH", "/file", "mv\n/to_beta/secret.txt\n/stolen.txt", f"Invalid source path: {LINK_OUT}"),
    ("PATCH", "/file", "cp\n/a.txt\n/to_beta/planted.txt", f"Invalid destination path: {LINK_OUT}"),
    ("PATCH", "/file", "cp\n/a.txt\n/to_etc", f"Invalid destination path: {LINK_OUT}"),
    ("POST", "/compress?path=/s.zip", '["to_beta/secret.txt"]', f"Invalid file path to_beta/secret.txt: {LINK_OUT}"),
    ("POST", "/compress?path=/to_beta/s.zip", '["a.txt"]', f"Invalid archive path: {LINK_OUT}"),
    ("POST", "/compress?path=/s.zip&basePath=/to_beta", '["secret.txt"]', f"Invalid base path: {LINK_OUT}"),
    ("POST", "/decompress?path=/to_beta/x.zip", "out", f"Invalid archive path: {LINK_OUT}"),
    ("POST", "/decompress?path=/a.zip", "to_etc", f"Invalid destination path: {LINK_OUT}"),
])
def test_no_endpoint_goes_out_through_a_link(daemon, root, method, url, body, message):
    os.symlink("/etc", root / "to_etc")
    (root / "a.zip").write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    beta_before, etc_before = tree_state(daemon.directory / "beta"), sorted(os.listdir("/etc"))
    kwargs = {"files": {"upload": ("passwd", b"owned")}} if body == "upload" else {"data": body}
    check_error(daemon.request(method, f"/server/alpha{url}", **kwargs), 400, message)
    assert tree_state(daemon.directory / "beta") == beta_before and sorted(os.listdir("/etc")) == etc_before


def test_a_transaction_cannot_remove_through_a_link(daemon, root):
    operations = [{"operation": "rm", "path": "/to_beta/secret.txt"}]
    response = daemon.patch("/server/alpha/files", json={"operations": operations})
    assert response.json() == {"success": False,
                               "errors": [{"index": 0, "message": f"Invalid source path: {LINK_OUT}"}]}
    assert (daemon.directory / "beta" / "secret.txt").exists()


def test_compressing_a_link_stores_the_link_not_what_it_points_to(daemon, root):
    assert daemon.post("/server/alpha/compress?path=/l.zip", data=b'["to_beta"]').json() == {"success": True}
    with zipfile.ZipFile(root / "l.zip") as bundle:
        assert bundle.namelist() == ["to_beta"]
        assert bundle.read("to_beta") == str(daemon.directory / "beta").encode()


def test_a_chunked_upload_streams_too(daemon, root):
    boundary = "chunkedboundary"
    payload = os.urandom(1_200_000)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"chunked.bin\"\r\n\r\n"
            .encode() + payload + f"\r\n--{boundary}--\r\n".encode())
    pieces = (body[start:start + 100_000] for start in range(0, len(body), 100_000))  # no Content-Length
    response = daemon.post("/server/alpha/file?path=/", data=pieces,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.json() == {"success": True}
    assert (root / "chunked.bin").read_bytes() == payload


def test_uploading_into_a_missing_folder_is_a_404_not_octynes_500(daemon, root):
    check_error(daemon.post("/server/alpha/file?path=/missing", files={"upload": ("x.txt", b"x")}), 404,
                "This folder does not exist!")
    assert not (root / "missing").exists()


# -- races, links and paths that cannot name a file (issue #9) -------------------------

def test_a_copy_through_the_api_never_reads_or_writes_outside_while_a_folder_is_swapped(daemon, root, tmp_path):
    """``PATCH /file`` cp of a 2000-file folder while a subfolder flips to a link to outside, on disk."""
    server, outside = big_world(tmp_path)
    for entry in os.listdir(server):
        shutil.move(os.path.join(server, entry), root / entry)
    before = tree_state(outside)
    with Swapper(str(root), outside) as swapper:
        for attempt in range(4):
            response = daemon.patch("/server/alpha/file", data=f"cp\n/src\n/copy{attempt}".encode())
            assert response.status_code in (200, 400, 500), response.text
    assert swapper.swaps > 0
    assert tree_state(outside) == before
    assert_nothing_from_outside(str(root))


def test_moving_a_link_where_it_would_lead_outside_is_refused(daemon, root):
    os.symlink("../../a.txt", root / "folder" / "nested" / "up")
    before = tree_state(root)
    for body in ("mv\n/folder/nested/up\n/", "cp\n/folder/nested\n/n2", "mv\n/to_beta\n/folder/beta"):
        check_error(daemon.patch("/server/alpha/file", data=body.encode()), 400,
                    f"Invalid destination path: {LINK_OUT}")
    response = daemon.patch("/server/alpha/files", json={"operations": [
        {"operation": "mv", "src": "/a.txt", "dest": "/b.txt"},
        {"operation": "cp", "src": "/folder/nested", "dest": "/n2"}]})
    assert (response.status_code, response.json()) == (
        400, {"success": False, "errors": [{"index": 1, "message": f"Invalid destination path: {LINK_OUT}"}]})
    assert tree_state(root) == before


def test_a_transaction_with_a_path_that_cannot_name_a_file_is_a_400_and_moves_nothing(daemon, root):
    (root / "keep.txt").write_text("keep")
    before = tree_state(root)
    body = ('{"operations":[{"operation":"mv","src":"/a.txt","dest":"/b.txt"},'
            '{"operation":"rm","path":"/keep.txt"},{"operation":"rm","path":"/\\ud800"}]}')
    response = daemon.patch("/server/alpha/files", data=body.encode())
    assert (response.status_code, response.json()) == (
        400, {"success": False, "errors": [{"index": 2, "message": "Invalid source path: invalid path"}]})
    assert tree_state(root) == before
    assert not [name for name in os.listdir(root) if name.startswith(".octyne-transaction-")]


@pytest.mark.parametrize("method, url, body, message", [
    ("PATCH", "/file", '{"operation":"mv","src":"/\\ud800","dest":"/x"}', "Invalid source path: invalid path"),
    ("PATCH", "/file", '{"operation":"cp","src":"/a.txt","dest":"/x\\udfff"}', "Invalid destination path: invalid path"),
    ("POST", "/compress?path=/out.zip", '["a.txt", "\\ud800"]', "Invalid file path \ud800: invalid path"),
])
def test_json_paths_that_cannot_name_a_file_are_a_400(daemon, root, method, url, body, message):
    before = tree_state(root)
    check_error(daemon.request(method, f"/server/alpha{url}", data=body.encode()), 400, message)
    assert tree_state(root) == before


@pytest.mark.parametrize("method, url, status", [
    ("GET", "/file?path=/%ED%A0%80", 404),
    ("GET", "/files?path=/%ED%A0%80", 404),
    ("DELETE", "/file?path=/%FF%ED%A0%80", 404),
    ("POST", "/decompress?path=/%ED%A0%80.zip", 400),
])
def test_query_paths_with_bytes_that_are_not_utf8_are_never_a_500(daemon, root, method, url, status):
    assert daemon.request(method, f"/server/alpha{url}").status_code == status


def test_names_that_are_not_utf8_can_be_copied_unpacked_and_logged(daemon, root):
    """Raw bytes in the legacy text body and the decompress body name files byte for byte (like Octyne)."""
    (root / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name")
    response = daemon.patch("/server/alpha/file", data=b"cp\n/caf\xe9.txt\n/copy-\xff.txt")
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert os.path.exists(os.fsencode(root) + b"/copy-\xff.txt")
    assert last_log(daemon, "server.files.copy")["dest"] == "/copy-\udcff.txt"
    assert daemon.post("/server/alpha/compress?path=/a.zip", data=b'["a.txt"]').json() == {"success": True}
    response = daemon.post("/server/alpha/decompress?path=/a.zip", data=b"/out-\xff")
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert os.path.exists(os.fsencode(root) + b"/out-\xff/a.txt")
