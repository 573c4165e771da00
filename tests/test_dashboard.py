"""The built-in dashboard in a real browser: Debian's Chromium driven by Playwright against the real daemon.

Every test fails on any browser console message or page error, except the
HTTP errors the test itself provokes and declares with ``expect_failure``
(Chromium logs every 4xx answer as "Failed to load resource").
Screenshots of every page go to ``docs/screenshots/latest/`` (not committed);
three of them are committed one level up as documentation.
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from tests.cgrouphost import V1_CONTROLLERS
from tests.harness import ADMIN_PASSWORD, REPO, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "docs" / "screenshots" / "latest"
expect.set_options(timeout=10_000)  # the machine is shared with other test runs: allow for slow moments
RESOURCE_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")
HOSTILE_NAME = "<img src=x onerror=window.hacked=1>.txt"
RENAME_LABEL = "New name, or a path (starting with / for the server folder)"
COLOURS_APP = (
    'print("\\x1b[1;31mred alert\\x1b[0m then plain \\x1b]0;title\\x07text", flush=True)\n'
    'for n in range(80):\n'
    '    print(f"line {n}", flush=True)\n'
)

class BrowserProblems:
    """Console messages, page errors and HTTP failures of one page, checked against what the test expects."""

    def __init__(self, page: Page, origin: str):
        self.origins = {origin}  # a cluster test adds the other nodes' API origins
        self.foreign_requests: list[str] = []
        self.messages: list[tuple[str, str, str]] = []
        self.errors: list[str] = []
        self.failures: list[tuple[int, str]] = []
        self.expected: list[tuple[int, str]] = []
        self.expected_network_errors = False
        page.on("console", lambda message: self.messages.append(
            (message.type, message.text, message.location.get("url", ""))))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._check_origin)
        page.on("websocket", lambda socket: self._check_origin_of(socket.url))
        page.on("response", lambda response: response.status >= 400 and self.failures.append(
            (response.status, response.url)))

    def _check_origin(self, request) -> None:
        self._check_origin_of(request.url)

    def _check_origin_of(self, url: str) -> None:
        """Every asset and API call must come from the daemon itself (no CDN, no fonts, no telemetry)."""
        if urlsplit(url).netloc not in self.origins:
            self.foreign_requests.append(url)

    def expect_failure(self, status: int, url_part: str) -> None:
        """Declare that answers with ``status`` from URLs containing ``url_part`` are part of the test."""
        self.expected.append((status, url_part))

    def _is_expected(self, status: int, url: str) -> bool:
        return any(status == want and part in url for want, part in self.expected)

    def assert_clean(self) -> None:
        assert self.errors == [], f"page errors: {self.errors}"
        assert self.foreign_requests == [], f"requests to other hosts: {self.foreign_requests}"
        unexpected_failures = [f for f in self.failures if not self._is_expected(*f)]
        assert unexpected_failures == [], f"unexpected HTTP failures: {unexpected_failures}"
        unexpected = []
        for kind, text, url in self.messages:
            match = RESOURCE_ERROR.match(text)
            if match and self._is_expected(int(match.group(1)), url):
                continue
            if self.expected_network_errors and "net::ERR_CONNECTION_REFUSED" in text:
                continue
            unexpected.append((kind, text, url))
        assert unexpected == [], f"browser console messages: {unexpected}"


class Dashboard:
    """One logged-out browser page on one daemon's web-UI port."""

    def __init__(self, daemon, page: Page, demo_dir: Path):
        self.daemon = daemon
        self.page = page
        self.demo_dir = demo_dir
        web_port = json.loads(daemon.config_path.read_text())["webUI"]["port"]
        self.url = f"http://127.0.0.1:{web_port}/"
        self.problems = BrowserProblems(page, f"127.0.0.1:{web_port}")

    def open(self, fragment: str = "") -> None:
        self.page.goto(self.url + fragment)

    def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.get_by_role("button", name="Log out")).to_be_visible()

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def card(self, server: str):
        return self.page.locator(f'[data-server="{server}"]')

    def row(self, name: str):
        return self.page.locator(f'tr[data-name="{name}"]')

    def row_action(self, name: str, action: str) -> None:
        self.page.get_by_label(f"Actions for {name}", exact=True).click()
        self.row(name).get_by_role("button", name=action).click()

    def dialog(self):
        return self.page.locator("dialog[open]")

    def answer_dialog(self, button: str, fields: dict[str, str] | None = None) -> None:
        """Fill the open dialog's fields (by exact label) and press ``button``."""
        dialog = self.dialog()
        for label, value in (fields or {}).items():
            dialog.get_by_label(label, exact=True).fill(value)
        dialog.get_by_role("button", name=button, exact=True).click()
        expect(dialog).to_have_count(0)


def wait_until(page: Page, condition, timeout: float = 10) -> None:
    """Let the browser run until ``condition()`` holds (for state Playwright's ``expect`` can't see)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        page.wait_for_timeout(50)


@contextmanager
def dashboard_session(browser, daemon, folder: Path | None = None, *, height: int = 800, timeout: float = 10_000,
                      **context_options):
    """A fresh browser context on ``daemon``'s dashboard (logged out); on leaving, its page must have logged
    no problem the test did not declare, and the context is closed."""
    context = browser.new_context(viewport={"width": 1280, "height": height}, **context_options)
    context.set_default_timeout(timeout)
    dashboard = Dashboard(daemon, context.new_page(), folder)
    try:
        yield dashboard
        dashboard.problems.assert_clean()
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def dashboard(daemon_factory, browser, tmp_path):
    demo_dir = tmp_path / "demo"
    colours_dir = tmp_path / "colours"
    demo_dir.mkdir()
    colours_dir.mkdir()
    (colours_dir / "colours.py").write_text(COLOURS_APP)
    daemon = daemon_factory(servers={
        "demo": {"directory": str(demo_dir), "command": f"{sys.executable} -u {REPO / 'examples' / 'demo_app.py'}"},
        "colours": {"directory": str(colours_dir), "command": f"{sys.executable} colours.py"},
    })
    with dashboard_session(browser, daemon, demo_dir, accept_downloads=True) as dashboard:
        yield dashboard


def test_login_start_stop_phone_layout_and_logout(dashboard):
    page = dashboard.page
    dashboard.open()
    expect(page.get_by_role("heading", name="Octyne")).to_be_visible()
    dashboard.screenshot("login")
    dashboard.problems.expect_failure(401, "/api/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password!")

    # Keyboard only: the focus lands in the form, Tab moves between fields, Enter submits.
    page.get_by_label("Username").focus()
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    status = dashboard.card("demo").get_by_test_id("status")
    expect(status).to_have_text("Running")
    expect(dashboard.card("colours")).to_be_visible()
    dashboard.card("demo").get_by_role("button", name="Stop demo").click()
    expect(status).to_have_text("Stopped")
    assert dashboard.daemon.get("/server/demo").json()["status"] == 0
    dashboard.card("demo").get_by_role("button", name="Start demo").click()
    expect(status).to_have_text("Running")
    expect(dashboard.card("demo").locator(".sparkline.cpu polyline")).to_have_attribute("points", re.compile(r"\d"))
    dashboard.screenshot("servers")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(status).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    dashboard.screenshot("phone-servers")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You have been logged out.")).to_be_visible()
    assert [c for c in page.context.cookies() if c["name"] == "X-Authentication" and c["value"]] == []


def test_console_shows_scrollback_echo_history_and_colours(dashboard):
    page = dashboard.page
    page.clock.install()  # so the 10 s ping can be fast-forwarded
    sockets = []  # (route, messages the page sent) per console connection

    def relay(route):
        server, sent = route.connect_to_server(), []
        route.on_message(lambda message: (sent.append(message), server.send(message)))
        sockets.append((route, sent))

    page.route_web_socket(re.compile(r"/api/server/demo/console"), relay)
    dashboard.open()
    dashboard.login()
    page.get_by_role("link", name="demo").click()
    terminal = page.get_by_role("log")
    status = page.locator(".console-status")
    expect(status).to_have_text("Connected")
    expect(terminal).to_contain_text("[demo] started")
    page.clock.run_for(10_500)
    wait_until(page, lambda: any(json.loads(message)["type"] == "ping" for message in sockets[0][1]))
    sockets[0][0].close(code=1011, reason="dropped by the test")
    expect(status).to_contain_text("Reconnecting")
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_disabled()  # Enter does nothing until the console is back
    expect(status).to_have_text("Connected")
    expect(send).to_be_enabled()
    assert len(sockets) == 2
    expect(terminal).to_contain_text("[demo] started")
    command = page.get_by_label("Command for demo")
    command.fill("hello from the browser")
    command.press("Enter")
    expect(terminal).to_contain_text("[demo] you said: hello from the browser")
    expect(command).to_have_value("")
    command.press("ArrowUp")
    expect(command).to_have_value("hello from the browser")
    command.press("ArrowDown")
    expect(command).to_have_value("")
    dashboard.screenshot("console")

    dashboard.open("#/server/colours")
    red = page.locator(".terminal span.fg-1.bold")
    expect(red).to_have_text("red alert")
    expect(terminal).to_contain_text("red alert then plain text")
    assert "\x1b" not in terminal.inner_text()

    # Scrolled up, new output leaves the view alone and offers a jump to the end.
    expect(terminal).to_contain_text("line 79")
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 4"
    assert terminal.evaluate(at_bottom)
    terminal.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    dashboard.card("colours").get_by_role("button", name="Start colours").click()
    expect(terminal).to_contain_text("[Octyne] Started server colours")
    jump = page.get_by_role("button", name="↓ New output")
    expect(jump).to_be_visible()
    assert terminal.evaluate("el => el.scrollTop") == 0
    jump.click()
    assert terminal.evaluate(at_bottom)


def test_files_upload_edit_rename_download_folder_compress_delete(dashboard):
    page, demo_dir = dashboard.page, dashboard.demo_dir
    dashboard.open("#/server/demo/files/")
    dashboard.login()
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    expect(page.get_by_role("region", name="SFTP access")).to_have_count(0)  # SFTP is off

    page.locator("input[type=file]").set_input_files([
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"first line\n"},
        {"name": "data.bin", "mimeType": "application/octet-stream", "buffer": bytes(range(256)) * 40},
        {"name": HOSTILE_NAME, "mimeType": "text/plain", "buffer": b"x"},
    ])
    expect(dashboard.row("notes.txt")).to_be_visible()
    expect(dashboard.row("data.bin")).to_be_visible()
    expect(page.locator("td.name").filter(has_text=HOSTILE_NAME)).to_have_count(1)  # shown as text
    assert page.locator("table.files img").count() == 0
    transfer = page.evaluate_handle(
        "() => { const t = new DataTransfer(); t.items.add(new File(['dropped!'], 'dropped.txt')); return t; }")
    page.locator(".drop-zone").dispatch_event("drop", {"dataTransfer": transfer})
    expect(dashboard.row("dropped.txt")).to_be_visible()
    assert (demo_dir / "dropped.txt").read_bytes() == b"dropped!"

    dashboard.row_action("notes.txt", "Edit")
    editor = page.get_by_label("Contents of notes.txt")
    expect(editor).to_have_value("first line\n")
    editor.fill("first line\nsecond line\n")
    dashboard.dialog().get_by_role("button", name="Save").click()
    expect(dashboard.dialog().get_by_role("status")).to_have_text("Saved")
    dashboard.dialog().get_by_role("button", name="Close").click()
    assert (demo_dir / "notes.txt").read_text() == "first line\nsecond line\n"
    dashboard.row_action("data.bin", "Edit")
    expect(page.get_by_text("data.bin is not a text file (application/octet-stream).")).to_be_visible()
    expect(dashboard.dialog()).to_have_count(0)
    page.locator("input[type=file]").set_input_files([
        {"name": "dropped.txt", "mimeType": "text/plain", "buffer": b"replaced"}])
    dashboard.answer_dialog("Replace")
    wait_until(page, lambda: (demo_dir / "dropped.txt").read_bytes() == b"replaced")

    dashboard.row_action("notes.txt", "Rename / move…")
    dashboard.answer_dialog("Move", {RENAME_LABEL: "renamed.txt"})
    expect(dashboard.row("renamed.txt")).to_be_visible()
    assert not (demo_dir / "notes.txt").exists()
    with page.expect_download() as download_info:
        dashboard.row_action("data.bin", "Download")
    assert Path(download_info.value.path()).read_bytes() == (demo_dir / "data.bin").read_bytes()

    page.get_by_role("button", name="New folder…").click()
    dashboard.answer_dialog("Create", {"Folder name or path": "stuff"})
    expect(dashboard.row("stuff")).to_be_visible()
    dashboard.row("renamed.txt").get_by_label("Select renamed.txt").check()
    page.get_by_role("group", name="Selected items").get_by_role("button", name="Copy…").click()
    dashboard.answer_dialog("Copy", {"Into the folder": "/stuff"})
    expect(page.get_by_text("Copied 1 item(s)")).to_be_visible()
    assert (demo_dir / "stuff" / "renamed.txt").read_text() == "first line\nsecond line\n"

    dashboard.row_action("stuff", "Compress…")
    dashboard.dialog().get_by_label("Format").select_option("zip")
    dashboard.answer_dialog("Compress", {"Archive name (the extension is added)": "stuff-backup"})
    expect(dashboard.row("stuff-backup.zip")).to_be_visible()
    with zipfile.ZipFile(io.BytesIO((demo_dir / "stuff-backup.zip").read_bytes())) as archive:
        assert "stuff/renamed.txt" in archive.namelist()
    dashboard.row_action("stuff-backup.zip", "Decompress…")
    dashboard.answer_dialog("Decompress", {"Unpack into folder (created if missing)": "/unpacked"})
    expect(dashboard.row("unpacked")).to_be_visible()
    assert (demo_dir / "unpacked" / "stuff" / "renamed.txt").exists()
    page.get_by_role("link", name="unpacked").click()
    expect(page.get_by_role("navigation", name="Folder")).to_contain_text("unpacked")
    expect(dashboard.row("stuff")).to_be_visible()
    page.get_by_role("navigation", name="Folder").get_by_role("link", name="demo").click()
    expect(dashboard.row("stuff-backup.zip")).to_be_visible()
    page.get_by_role("button", name="Size").click()
    dashboard.screenshot("files")

    dashboard.row_action("stuff", "Delete…")
    dashboard.answer_dialog("Delete")
    expect(dashboard.row("stuff")).to_have_count(0)
    assert not (demo_dir / "stuff").exists()
    page.get_by_label("Select all").check()
    page.get_by_role("group", name="Selected items").get_by_role("button", name="Delete…").click()
    dashboard.answer_dialog("Delete")
    expect(page.get_by_text("This folder is empty.")).to_be_visible()
    assert list(demo_dir.iterdir()) == []
    assert page.evaluate("window.hacked") is None


def test_files_tab_shows_the_sftp_address_login_name_and_host_key(daemon_factory, browser, tmp_path):
    folder = tmp_path / "survival"
    folder.mkdir()
    port = free_port()
    daemon = daemon_factory(servers={"survival": {"directory": str(folder), "command": "sleep 1", "enabled": False}},
                            config={"sftp": {"enabled": True, "port": port}})
    host_key = daemon.get("/server/survival/sftp").json()["hostKey"]
    with dashboard_session(browser, daemon, folder) as dashboard:
        page = dashboard.page
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        dashboard.open("#/server/survival/files/")
        dashboard.login()
        panel = page.get_by_role("region", name="SFTP access")
        address = f"sftp://admin.survival@127.0.0.1:{port}"
        expect(panel.get_by_label("SFTP address")).to_have_value(address)
        panel.get_by_text("Connection details").click()
        for text in ("admin.survival", str(port), host_key):
            expect(panel.locator("dl")).to_contain_text(text)
        panel.get_by_role("button", name="Copy").click()
        expect(page.get_by_text("Copied the SFTP address.")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == address
        dashboard.screenshot("files-sftp")


def test_accounts_create_change_password_and_delete(dashboard):
    page = dashboard.page
    dashboard.open("#/accounts")
    dashboard.login()
    expect(page.locator('[data-account="admin"]')).to_contain_text("you")
    page.get_by_label("Username", exact=True).fill("operator")
    page.get_by_label("Password", exact=True).fill("first-password")
    page.get_by_role("button", name="Create").click()
    row = page.locator('[data-account="operator"]')
    expect(row).to_be_visible()
    row.get_by_role("button", name="Change password of operator").click()
    dashboard.answer_dialog("Change password", {"New password": "second-password", "Repeat the new password": "second-password"})
    expect(page.get_by_text("Changed the password of operator")).to_be_visible()
    login = requests.get(dashboard.daemon.url + "/login", headers={"Username": "operator", "Password": "second-password"})
    assert login.status_code == 200
    dashboard.screenshot("accounts")
    row.get_by_role("button", name="Rename operator").click()
    dashboard.answer_dialog("Rename", {"New username": "night-operator"})
    row = page.locator('[data-account="night-operator"]')
    expect(row).to_be_visible()
    row.get_by_role("button", name="Delete night-operator").click()
    dashboard.answer_dialog("Delete")
    expect(row).to_have_count(0)
    assert sorted(json.loads(dashboard.daemon.users_path.read_text())) == ["admin"]


def test_config_editor_shows_validation_error_and_saves(dashboard):
    page, daemon = dashboard.page, dashboard.daemon
    dashboard.open("#/config")
    dashboard.login()
    original = daemon.config_path.read_text()
    editor = page.get_by_label("config.json", exact=False)
    expect(editor).to_have_value(original)
    dashboard.problems.expect_failure(400, "/api/config")
    editor.fill('{"port": "x", "servers": {}}')
    page.get_by_role("button", name="Save and apply").click()
    problem = page.locator(".config-error")
    expect(problem).to_contain_text("Invalid JSON body!")
    expect(problem.locator(".detail")).to_contain_text("port")
    dashboard.screenshot("config")
    assert daemon.config_path.read_text() == original

    page.get_by_role("button", name="Revert").click()
    edited = original.rstrip().rstrip("}") + ',\n  // saved from the dashboard\n}\n'
    editor.fill(edited)
    page.get_by_role("button", name="Save and apply").click()
    expect(page.get_by_text("Config saved and applied.")).to_be_visible()
    assert "// saved from the dashboard" in daemon.config_path.read_text()
    page.get_by_role("button", name="Reload from disk").click()
    expect(page.get_by_text("Config reloaded from disk.")).to_be_visible()
    expect(editor).to_have_value(daemon.config_path.read_text())


def test_expired_session_and_unreachable_daemon_show_clear_pages(dashboard):
    page = dashboard.page
    dashboard.open()
    dashboard.login()
    expect(dashboard.card("demo")).to_be_visible()
    dashboard.problems.expect_failure(401, "/api/server")
    dashboard.problems.expect_failure(401, "/api/nodes")  # the servers page asks for the cluster's nodes first
    page.context.clear_cookies()
    expect(page.get_by_role("heading", name="Session expired")).to_be_visible()
    page.get_by_role("button", name="Log in again").click()
    dashboard.login()
    expect(dashboard.card("demo")).to_be_visible()

    dashboard.problems.expected_network_errors = True
    dashboard.daemon.stop()
    expect(page.get_by_role("heading", name="Octyne is unreachable")).to_be_visible()


def test_access_page_grants_a_viewer_who_then_sees_only_that_server_read_only(dashboard, browser):
    """The flow of issue #11: viewer on one server for a new account, then operator; controls follow /access/me."""
    page, daemon = dashboard.page, dashboard.daemon
    daemon.post("/accounts", json={"username": "newbie", "password": "newbie-password"})
    dashboard.open("#/access")
    dashboard.login()
    expect(page.get_by_text("Access control is off")).to_be_visible()
    page.get_by_label("newbie is an administrator").uncheck()  # off: every account starts as an administrator
    page.get_by_label("newbie on demo").select_option("viewer")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Access saved.")).to_be_visible()
    expect(page.get_by_text("Access control is on.")).to_be_visible()
    stored = json.loads((daemon.directory / "access.json").read_text())
    assert stored["accounts"] == {"admin": {"admin": True}, "newbie": {"servers": {"demo": "viewer"}}}
    # The daemon's own validation error is shown as it is, and nothing is written.
    dashboard.problems.expect_failure(409, "/api/access")
    page.get_by_label("admin is an administrator").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").filter(has_text="administrator")).to_have_text(
        "At least one administrator must remain!")
    assert json.loads((daemon.directory / "access.json").read_text()) == stored
    page.get_by_role("button", name="Revert").click()
    expect(page.get_by_label("admin is an administrator")).to_be_checked()
    # A custom role, given to new accounts on the other server.
    page.get_by_role("button", name="New role…").click()
    page.get_by_label("Role name", exact=True).fill("moderator")
    page.get_by_role("button", name="Next").click()
    checklist = page.get_by_role("dialog", name="Permissions of the role moderator")
    for permission in ("view", "console.view", "console.write"):
        checklist.get_by_label(permission, exact=True).check()
    checklist.get_by_role("button", name="Set").click()
    expect(page.locator('[data-role="moderator"]')).to_contain_text("view, console.view, console.write")
    page.get_by_label("new accounts on colours").select_option("moderator")
    page.get_by_role("button", name="Save").click()
    wait_until(page, lambda: json.loads((daemon.directory / "access.json").read_text())["defaults"] == {
        "servers": {"colours": "moderator"}})
    assert json.loads((daemon.directory / "access.json").read_text())["roles"] == {
        "moderator": ["view", "console.view", "console.write"]}
    dashboard.screenshot("access")

    with dashboard_session(browser, daemon, dashboard.demo_dir) as viewer:
        viewer.open()
        viewer.login("newbie", "newbie-password")
        expect(viewer.card("demo")).to_be_visible()
        expect(viewer.card("colours")).to_have_count(0)
        expect(viewer.card("demo").get_by_role("button")).to_have_count(0)  # no Start, Stop or Kill
        for hidden in ("Accounts", "Access", "Config"):
            expect(viewer.page.get_by_role("link", name=hidden, exact=True)).to_be_hidden()
        viewer.page.get_by_role("link", name="demo").click()
        expect(viewer.page.locator(".console-status")).to_have_text("Connected")
        expect(viewer.page.locator(".badge.read-only")).to_have_text("read-only")
        expect(viewer.page.get_by_label("Command for demo")).to_be_disabled()
        viewer.screenshot("access-viewer-console")
        viewer.page.get_by_role("link", name="Files").click()
        expect(viewer.page.get_by_role("button", name="Refresh")).to_be_visible()
        expect(viewer.page.get_by_role("button", name="Upload…")).to_have_count(0)

        page.get_by_label("newbie on demo").select_option("operator")
        page.get_by_role("button", name="Save").click()
        wait_until(page, lambda: json.loads((daemon.directory / "access.json").read_text())["accounts"]["newbie"] == {
            "servers": {"demo": "operator"}})
        viewer.open()
        viewer.page.reload()
        expect(viewer.card("demo").get_by_role("button", name="Stop demo")).to_be_enabled()
        viewer.page.get_by_role("link", name="demo").click()
        expect(viewer.page.get_by_label("Command for demo")).to_be_enabled()
        expect(viewer.page.locator(".badge.read-only")).to_be_hidden()


@pytest.mark.skipif(not V1_CONTROLLERS >= {"memory", "cpu", "pids"}, reason="needs root and cgroup v1 memory, cpu, pids")
def test_the_memory_bar_shows_the_limit_and_an_oom_kill_shows_in_the_status(daemon_factory, browser, tmp_path):
    (tmp_path / "hog.py").write_text("hoard = b'x' * (300 << 20)\n")
    (tmp_path / "hold.py").write_text("import time\nkeep = b'x' * (24 << 20)\nprint('holding', flush=True)\ntime.sleep(600)\n")
    daemon = daemon_factory(servers={
        "capped": {"directory": str(tmp_path), "command": f"{sys.executable} hold.py",
                   "limits": {"memory": "64M", "cpu": 0.5, "pids": 32}},
        "hog": {"directory": str(tmp_path), "command": f"{sys.executable} hog.py", "limits": {"memory": "64M"}},
    })
    with dashboard_session(browser, daemon, tmp_path) as dashboard:
        page = dashboard.page
        dashboard.open("#/server/capped")
        dashboard.login()
        card = dashboard.card("capped")
        expect(card.get_by_test_id("status")).to_have_text("Running")
        expect(card.get_by_text(re.compile(r"MiB of 64 MiB limit$"))).to_be_visible()
        bar = card.get_by_role("meter", name="Memory of capped used")
        expect(bar).to_have_js_property("max", 64 << 20)
        wait_until(page, lambda: bar.evaluate("meter => meter.value") >= 24 << 20)
        expect(card.locator(".limits")).to_have_text("memory 64 MiB · CPU 0.5 cores · 32 processes")
        expect(card.get_by_text(re.compile(r"% of 50\.0% limit$"))).to_be_visible()
        dashboard.screenshot("limits")

        wait_until(page, lambda: daemon.get("/server/hog").json()["status"] == 2, timeout=60)
        dashboard.open("#/server/hog")
        hog = dashboard.card("hog")
        expect(hog.get_by_test_id("status")).to_have_text("Crashed · out of memory")
        expect(page.get_by_role("log")).to_contain_text("[Octyne] hog was killed: out of memory (limit 64M)")
        dashboard.screenshot("out-of-memory")
        dashboard.open("#/")
        expect(dashboard.card("hog").get_by_test_id("status")).to_have_text("Crashed · out of memory")
        expect(dashboard.card("capped").get_by_test_id("status")).to_have_text("Running")


# ansi.js itself, inlined as a module (it has no imports), with its parser exposed to the test.
ANSI_MODULE_LOADER = ((REPO / "octyne_flask" / "webui" / "static" / "js" / "ansi.js").read_text()
                      + "\nwindow.parseLine = (line) => parseLine(line, initialState());\n")
ANSI_CASES = [
    # (console line, expected [(text, foreground, bold)])
    ("\x1b[1;31mred\x1b[0m plain", [("red", {"palette": 1}, True), (" plain", None, False)]),
    ("\x1b[38;5;196mcube\x1b[38;2;1;2;3mtrue", [("cube", {"rgb": "rgb(255, 0, 0)"}, False),
                                                ("true", {"rgb": "rgb(1, 2, 3)"}, False)]),
    ("\x1b[2K\x1b[1Gcleared\x1b]0;window title\x07 \x07bell", [("cleared", None, False), (" bell", None, False)]),
    ("progress 10%\rprogress 99%\r", [("progress 99%", None, False)]),
    ("\x1b[92mbright\x1b[39m default", [("bright", {"palette": 10}, False), (" default", None, False)]),
]


@pytest.mark.parametrize(("line", "expected"), ANSI_CASES)
def test_ansi_codes_become_styles_and_other_escapes_disappear(browser, line, expected):
    page = browser.new_page()
    try:
        page.set_content("<html></html>")
        page.add_script_tag(type="module", content=ANSI_MODULE_LOADER)
        page.wait_for_function("window.parseLine !== undefined")
        segments = page.evaluate("line => window.parseLine(line)", line)
    finally:
        page.close()
    assert [(s["text"], s["style"]["fg"], s["style"]["bold"]) for s in segments] == expected
