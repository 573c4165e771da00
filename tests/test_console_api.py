"""WS /server/{id}/console against the real daemon: v1 and console-v2, auth, limits, scrollback, output decoding."""

from __future__ import annotations

import json
import struct
import sys
import textwrap
import threading
import time
from urllib.parse import quote

import pytest
import requests
import websocket
from werkzeug.serving import make_server

from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config, free_port, wait_until

PY = sys.executable
MIB = 1024 * 1024
IDLE_TIMEOUT = 3

APPS = {
    "echo.py": """
        import sys
        print("ready", flush=True)
        for line in sys.stdin:
            print("echo:" + line.rstrip("\\n"), flush=True)
    """,
    "many.py": """
        import sys, time
        sys.stdout.write("".join(f"line {i}\\n" for i in range(3000)))
        sys.stdout.flush()
        time.sleep(120)
    """,
    "wide.py": """
        import sys, time
        sys.stdout.write("".join(f"{i:05d}" + "w" * 1018 + "\\n" for i in range(2000)))
        sys.stdout.flush()
        time.sleep(120)
    """,
    "odd.py": """
        import sys, time
        time.sleep(0.5)
        out = sys.stdout.buffer
        out.write(b"a" * (3 * 1024 * 1024) + b"\\n")
        out.write(b"bad \\xff\\xfe bytes \\xe2\\x82\\n")
        out.write("caf\\u00e9 \\u2713\\n".encode())
        out.flush()
    """,
}


def write_apps(directory):
    for name, body in APPS.items():
        (directory / name).write_text(textwrap.dedent(body))


def servers_in(directory) -> dict:
    def server(script, enabled=True):
        return {"directory": str(directory), "command": f"{PY} {script}", "enabled": enabled}
    return {"echo": server("echo.py"), "many": server("many.py", False), "wide": server("wide.py", False),
            "odd": server("odd.py", False)}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("console")
    write_apps(tmp_path)
    config = daemon_config(tmp_path, servers_in(tmp_path),
                           console={"idleTimeout": IDLE_TIMEOUT, "scrollbackBytes": MIB})
    running = RunningDaemon(tmp_path, config, {"admin": ADMIN_HASH})
    # Apps start beside the worker: tests read echo's scrollback from its start line to its "ready".
    wait_until(lambda: running.get("/servers").json()["servers"]["echo"] == 1)
    ws = connect(running)
    receive(ws)  # settings
    output_until(ws, "ready")
    ws.close()
    yield running
    running.clean_up()


def connect(daemon, server="echo", v2=True, token="admin", query="", url=None):
    headers = [f"Authorization: {daemon.token if token == 'admin' else token}"] if token else []
    return websocket.create_connection(
        url or daemon.ws_url(f"/server/{server}/console{query}"), timeout=10,
        subprotocols=["console-v2"] if v2 else None, header=headers)


def receive(ws) -> dict:
    return json.loads(ws.recv())


def output_until(ws, needle: str, v2: bool = True) -> list[str]:
    """Collect output lines (splitting batched messages) until one contains ``needle``."""
    lines = []
    while not any(needle in line for line in lines):
        if v2:
            message = receive(ws)
            assert message["type"] == "output", message
            lines.extend(message["data"].split("\n"))
        else:
            lines.append(ws.recv())
    return lines


def close_of(ws) -> tuple[int, str]:
    """Read until the server's close frame; its code and reason."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", data[:2])[0], data[2:].decode()


def test_v2_settings_then_scrollback_then_live_output(daemon):
    ws = connect(daemon)
    assert ws.subprotocol == "console-v2"
    assert receive(ws) == {"type": "settings", "readOnly": False}
    scrollback = receive(ws)
    assert scrollback["type"] == "output"
    assert scrollback["data"].startswith("\n[Octyne] Started server echo\n")
    ws.send(json.dumps({"type": "input", "data": "hello v2"}))
    assert "echo:hello v2" in output_until(ws, "echo:hello v2")
    ws.close()


def test_v2_ping_errors_and_empty_input_keep_the_connection(daemon):
    ws = connect(daemon)
    receive(ws), receive(ws)
    ws.send(json.dumps({"type": "ping", "id": "abc"}))
    assert receive(ws) == {"type": "pong", "id": "abc"}
    ws.send("{not json")
    assert receive(ws) == {"type": "error", "message": "Invalid message format"}
    ws.send(json.dumps({"type": "shout", "data": "x"}))
    assert receive(ws) == {"type": "error", "message": "Invalid message type: shout"}
    ws.send(json.dumps({"type": "ping"}))
    assert receive(ws) == {"type": "pong", "id": ""}  # the id is always a string
    ws.send(json.dumps({"type": "ping", "id": 7}))
    assert receive(ws) == {"type": "error", "message": "Invalid message format"}
    ws.send(json.dumps({"data": "no type"}))
    assert receive(ws) == {"type": "error", "message": "Invalid message type: "}
    ws.send(json.dumps({"type": "input"}))  # no data: ignored like empty data
    ws.send(json.dumps({"type": "input", "data": ""}))  # ignored
    ws.send(json.dumps({"type": "input", "data": "after"}))
    lines = output_until(ws, "echo:after")
    assert "echo:" not in lines
    ws.close()


def test_v2_logs_access_and_input(daemon):
    ws = connect(daemon)
    receive(ws), receive(ws)
    ws.send(json.dumps({"type": "input", "data": "logged line"}))
    output_until(ws, "echo:logged line")
    ws.close()
    entries = daemon.action_log()
    assert any(e.get("action") == "server.console.access" and e["server"] == "echo" and e["user"] == "admin" for e in entries)
    assert any(e.get("action") == "server.console.input" and e["server"] == "echo" and e["input"] == "logged line"
               for e in entries)


@pytest.mark.parametrize("token, server, code, message", [
    (None, "echo", 4401, "You are not authenticated to access this resource!"),
    ("x" * 128, "nope", 4401, "You are not authenticated to access this resource!"),  # auth before lookup
    ("admin", "nope", 4404, "This server does not exist!"),
])
def test_v2_failures_come_after_the_upgrade_with_4000_plus_status(daemon, token, server, code, message):
    ws = connect(daemon, server=server, token=token)
    assert ws.subprotocol == "console-v2"
    assert receive(ws) == {"type": "error", "message": message}
    assert close_of(ws) == (code, message)


@pytest.mark.parametrize("token, server, status, message", [
    (None, "echo", 401, "You are not authenticated to access this resource!"),
    ("admin", "nope", 404, "This server does not exist!"),
])
def test_v1_failures_are_plain_http_answers_before_the_upgrade(daemon, token, server, status, message):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(daemon, server=server, token=token, v2=False)
    assert refused.value.status_code == status
    assert json.loads(refused.value.resp_body) == {"error": message}
    assert refused.value.resp_headers["content-type"] == "application/json"


def test_v1_scrollback_then_one_frame_per_line_and_input_lines(daemon):
    ws = connect(daemon, v2=False)
    assert ws.subprotocol is None
    assert ws.recv().startswith("\n[Octyne] Started server echo\nready")
    ws.send("first")
    ws.send("second")
    assert ws.recv() == "echo:first"
    assert ws.recv() == "echo:second"
    ws.close()


def test_upgrade_answer_has_exactly_connection_upgrade(daemon):
    ws = connect(daemon)
    assert ws.getheaders()["connection"] == "Upgrade"
    ws.close()


def test_a_ticket_opens_one_console_once(daemon):
    for v2 in (True, False):
        ticket = daemon.get("/ott").json()["ticket"]
        query = f"?ticket={quote(ticket, safe='')}"
        ws = connect(daemon, token=None, v2=v2, query=query)
        first = receive(ws)["type"] if v2 else ws.recv()
        assert first == "settings" or first.startswith("\n[Octyne]")
        ws.close()
        if v2:
            again = connect(daemon, token=None, query=query)
            assert receive(again)["type"] == "error"
            assert close_of(again)[0] == 4401
        else:
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                connect(daemon, token=None, v2=False, query=query)
            assert refused.value.status_code == 401


def test_idle_v2_clients_are_disconnected_and_pings_keep_them(daemon):
    quiet, pinging = connect(daemon), connect(daemon)
    for ws in (quiet, pinging):
        receive(ws), receive(ws)
    started = time.monotonic()
    for beat in range(5):
        time.sleep(IDLE_TIMEOUT / 3)
        pinging.send(json.dumps({"type": "ping", "id": str(beat)}))
    code, _ = close_of(quiet)
    assert code == 1000 and IDLE_TIMEOUT - 0.5 < time.monotonic() - started
    assert close_of_or_pong(pinging) == "pong"
    pinging.close()


def close_of_or_pong(ws) -> str:
    """After the pings, the pinging client still gets answers (skip any output in between)."""
    ws.send(json.dumps({"type": "ping", "id": "last"}))
    while True:
        message = receive(ws)
        if message["type"] == "pong" and message["id"] == "last":
            return "pong"


def test_inbound_messages_over_one_mebibyte_close_the_connection(daemon):
    ws = connect(daemon)
    receive(ws), receive(ws)
    ws.send("x" * (MIB // 2))
    assert receive(ws) == {"type": "error", "message": "Invalid message format"}
    ws.send("x" * (MIB + 1))
    assert close_of(ws)[0] == 1009


def test_scrollback_keeps_the_last_2500_lines(daemon):
    daemon.post("/server/many", data="START")
    ws = connect(daemon, server="many")
    receive(ws)
    deadline = time.monotonic() + 10
    while True:
        lines = receive(ws)["data"].split("\n")[1:]
        if lines[-1] == "line 2999" or time.monotonic() > deadline:
            break
        ws.close()
        ws = connect(daemon, server="many")
        receive(ws)
    assert len(lines) == 2500 and lines[0] == "line 500"
    ws.close()
    daemon.post("/server/many", data="KILL")


def test_a_quiet_apps_scrollback_and_resume_read_back_the_same_once_its_text_is_compressed(daemon):
    """A second after the app's output stops, its console text is compressed (``supervisor/linetext.py``)."""
    daemon.post("/server/many", data="START")
    while True:
        ws = connect(daemon, server="many")
        receive(ws)
        message = receive(ws)
        ws.close()
        if message["data"].endswith("line 2999"):
            break
    first_seq, fresh = message["seq"], message["data"].split("\n")[1:]
    time.sleep(2.5)  # quiet for over a second: compressed
    ws = connect(daemon, server="many")
    receive(ws)
    later = receive(ws)
    ws.close()
    assert (later["seq"], later["data"].split("\n")[1:]) == (first_seq, fresh)
    assert len(fresh) == 2500 and fresh[0] == "line 500"
    ws = connect(daemon, server="many", query=f"?since={first_seq + 99}")
    receive(ws)
    resumed = output_until(ws, "line 2999")
    ws.close()
    assert resumed == fresh[100:]
    daemon.post("/server/many", data="KILL")


def test_scrollback_is_bounded_in_bytes(daemon):
    daemon.post("/server/wide", data="START")
    ws = connect(daemon, server="wide", v2=False)
    output_until(ws, "01999", v2=False)
    ws.close()
    ws = connect(daemon, server="wide", v2=False)
    scrollback = ws.recv()
    assert len(scrollback.encode()) <= MIB
    assert scrollback.split("\n")[-1].startswith("01999") and len(scrollback.split("\n")) > 1000
    ws.close()
    daemon.post("/server/wide", data="KILL")


def test_a_3_mib_line_is_split_and_invalid_utf8_is_replaced(daemon):
    ws = connect(daemon, server="odd")
    receive(ws), receive(ws)
    daemon.post("/server/odd", data="START")
    lines = output_until(ws, "has stopped.")
    pieces = [line for line in lines if line and set(line) == {"a"}]
    assert [len(piece) for piece in pieces] == [MIB, MIB, MIB]
    assert "bad \ufffd\ufffd bytes \ufffd" in lines
    assert "caf\u00e9 \u2713" in lines
    ws.close()


def test_the_console_of_a_removed_server_closes_after_the_removal_line(daemon_factory, tmp_path):
    write_apps(tmp_path)
    running = daemon_factory(servers={"echo": servers_in(tmp_path)["echo"]})
    ws = connect(running)
    receive(ws), receive(ws)
    config = json.loads(running.config_path.read_text())
    config["servers"] = {}
    running.patch("/config", data=json.dumps(config))
    running.post("/server/echo", data="TERM")
    lines = output_until(ws, "has now been removed.")
    assert lines[-1] == "[Octyne] Server echo was marked for deletion, stopped/crashed, and has now been removed."
    removed_at = time.monotonic()
    ws.settimeout(15)
    close_of(ws)
    assert 4 < time.monotonic() - removed_at < 8


@pytest.fixture
def in_process_app(tmp_path):
    """The app served in-process (real sockets, Werkzeug), so a test can set its access rules directly."""
    from octyne_flask import create_app

    write_apps(tmp_path)
    config = daemon_config(tmp_path, {"echo": servers_in(tmp_path)["echo"]})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "users.json").write_text(json.dumps({"admin": ADMIN_HASH}))
    app = create_app(str(tmp_path / "config.json"), str(tmp_path / "users.json"))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = requests.get(f"http://127.0.0.1:{port}/login",
                         headers={"Username": "admin", "Password": ADMIN_PASSWORD}).json()["token"]
    yield port, token, app
    server.shutdown()
    app.extensions["octyne"].shutdown()


def reader_token(port: int, app, servers: dict) -> str:
    """A token of the new account ``reader``, whose only access rules are ``servers`` (extensions.md §A)."""
    daemon = app.extensions["octyne"]
    daemon.accounts.create("reader", "reader-password")
    daemon.access_store.patch({"accounts": {"reader": {"servers": servers}}}, daemon.users.names())
    return requests.get(f"http://127.0.0.1:{port}/login",
                        headers={"Username": "reader", "Password": "reader-password"}).json()["token"]


def test_input_from_a_read_only_user_is_dropped_silently(in_process_app):
    port, _, app = in_process_app
    token = reader_token(port, app, {"echo": ["view", "console.view"]})
    url = f"ws://127.0.0.1:{port}/server/echo/console"
    ws = websocket.create_connection(url, subprotocols=["console-v2"], header=[f"Authorization: {token}"], timeout=10)
    assert receive(ws) == {"type": "settings", "readOnly": True}
    receive(ws)
    ws.send(json.dumps({"type": "input", "data": "should not arrive"}))
    ws.send(json.dumps({"type": "ping", "id": "1"}))
    assert receive(ws) == {"type": "pong", "id": "1"}
    v1 = websocket.create_connection(url, header=[f"Authorization: {token}"], timeout=10)
    v1.recv()
    v1.send("nor this")
    time.sleep(0.5)
    server = app.extensions["octyne"].supervisor.get("echo")
    assert not any(line.startswith("echo:") for line in server.console.scrollback())
    ws.close()
    v1.close()


def test_a_user_without_console_view_is_refused_before_the_server_lookup(in_process_app):
    port, _, app = in_process_app
    every_but_the_console = ["view", "control", "files.view", "console.write"]
    token = reader_token(port, app, {"echo": every_but_the_console, "nope": every_but_the_console})
    forbidden = "You are not allowed to access this resource!"
    for server in ("echo", "nope"):
        url = f"ws://127.0.0.1:{port}/server/{server}/console"
        ws = websocket.create_connection(url, subprotocols=["console-v2"], header=[f"Authorization: {token}"],
                                         timeout=10)
        assert receive(ws) == {"type": "error", "message": forbidden}
        assert close_of(ws) == (4403, forbidden)
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, header=[f"Authorization: {token}"], timeout=10)
        assert refused.value.status_code == 403 and json.loads(refused.value.resp_body) == {"error": forbidden}
    assert not any(e.get("action") == "server.console.access" for e in read_log(app))


def read_log(app) -> list[dict]:
    """The in-process app's action log entries."""
    with open(app.extensions["octyne"].action_log.path) as log:
        return [json.loads(line) for line in log]


def test_deleting_a_user_closes_their_consoles(daemon):
    assert daemon.post("/accounts", json={"username": "temp", "password": "temp-password-1"}).json() == {"success": True}
    token = requests.get(daemon.url + "/login", headers={"Username": "temp", "Password": "temp-password-1"}).json()["token"]
    theirs, mine = connect(daemon, token=token), connect(daemon)
    for ws in (theirs, mine):
        receive(ws), receive(ws)
    assert daemon.delete("/accounts?username=temp").json() == {"success": True}
    assert receive(theirs) == {"type": "error", "message": "This console has been closed."}
    assert close_of(theirs)[0] == 1000
    mine.send(json.dumps({"type": "ping", "id": "still"}))
    assert close_of_or_pong(mine) == "pong"
    mine.close()


def test_removing_a_user_from_users_json_closes_their_consoles(daemon):
    assert daemon.post("/accounts", json={"username": "gone", "password": "gone-password-1"}).json() == {"success": True}
    token = requests.get(daemon.url + "/login", headers={"Username": "gone", "Password": "gone-password-1"}).json()["token"]
    ws = connect(daemon, token=token)
    receive(ws), receive(ws)
    users = json.loads(daemon.users_path.read_text())
    del users["gone"]
    daemon.users_path.write_text(json.dumps(users))
    ws.settimeout(10)
    assert receive(ws) == {"type": "error", "message": "This console has been closed."}
    assert close_of(ws)[0] == 1000


def test_v1_console_over_the_unix_socket_the_way_octynectl_connects(daemon):
    """No token (the socket is @local), lower-case headers, no User-Agent, Host set to the hex-encoded path."""
    import socket as sockets

    client = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    client.settimeout(10)
    client.connect(daemon.socket_path)
    host = daemon.socket_path.encode().hex() + ":0"
    client.sendall((f"GET /server/echo/console HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\n"
                    f"connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    f"sec-websocket-version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += client.recv(4096)
    head, _, rest = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 101")
    assert "Connection: Upgrade" in lines
    while not rest:
        rest += client.recv(65536)
    assert rest[0] == 0x81  # the scrollback arrives as a final text frame
    client.close()
    assert any(e.get("action") == "server.console.access" and e.get("user") == "@local" for e in daemon.action_log())


def masked_text_frame(text: str) -> bytes:
    """A client's WebSocket text frame (under 126 bytes), masked as RFC 6455 requires."""
    data, mask = text.encode(), b"\x01\x02\x03\x04"
    return bytes([0x81, 0x80 | len(data)]) + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


def v1_upgrade_head(daemon, extra: str = "") -> bytes:
    return (f"GET /server/echo/console HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: {daemon.token}\r\n{extra}\r\n").encode()


def received_until(client, needle: bytes) -> bytes:
    """Everything the daemon sends on ``client`` until ``needle`` (the socket's timeout is the deadline)."""
    received = b""
    while needle not in received:
        chunk = client.recv(65536)
        assert chunk, received
        received += chunk
    return received


@pytest.mark.parametrize("pipelined_request, body", [
    (False, ""),  # input sent right behind the upgrade request, before the 101 arrives
    (True, ""),  # an upgrade pipelined behind a request on the same connection, then input
    (False, "abcde"),  # an upgrade with a body: the body is HTTP's, what follows it is input
], ids=["behind-upgrade", "pipelined-upgrade", "upgrade-with-body"])
def test_input_sent_in_the_same_write_as_the_upgrade_reaches_the_console(daemon, pipelined_request, body):
    import socket as sockets

    marker = f"early {pipelined_request} {body}"
    before = f"GET /servers HTTP/1.1\r\nHost: x\r\nAuthorization: {daemon.token}\r\n\r\n".encode() if pipelined_request else b""
    head = v1_upgrade_head(daemon, f"Content-Length: {len(body)}\r\n" if body else "")
    with sockets.create_connection(("127.0.0.1", daemon.port), timeout=10) as client:
        client.sendall(before + head + body.encode() + masked_text_frame(marker))
        received = received_until(client, f"echo:{marker}".encode())
    if pipelined_request:
        assert received.startswith(b"HTTP/1.1 200 OK") and b'{"servers":' in received
    assert b"HTTP/1.1 101 Switching Protocols" in received
