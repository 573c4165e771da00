"""The dashboard's console over the history, in Chromium: scrolling back past the scrollback, search across
a daemon restart with highlights, following live output, the range download, up-arrow after a reload,
and a WebSocket drop that neither loses nor repeats a line."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.test_dashboard import browser, dashboard_session, wait_until  # noqa: F401  (browser is a fixture)

PY = sys.executable
BOOK = """
    import os, sys
    if not os.path.exists("told"):
        open("told", "w").close()
        print("the needle-4711 was printed before the restart", flush=True)
    start = 3000 if os.path.exists("printed") else 0
    open("printed", "w").close()
    sys.stdout.write("".join(f"book line {i}\\n" for i in range(start, start + 3000)))
    sys.stdout.flush()
    for line in sys.stdin:
        print("echo:" + line.rstrip("\\n"), flush=True)
"""
TICKER = """
    import time
    for i in range(100000):
        print(f"tick {i}", flush=True)
        time.sleep(0.02)
"""


@pytest.fixture
def history_dashboard(daemon_factory, browser, tmp_path):  # noqa: F811
    for name, source in (("book.py", BOOK), ("ticker.py", TICKER)):
        (tmp_path / name).write_text(textwrap.dedent(source))
    servers = {"book": {"directory": str(tmp_path), "command": f"{PY} book.py"},
               "ticker": {"directory": str(tmp_path), "command": f"{PY} ticker.py", "enabled": False}}
    with dashboard_session(browser, daemon_factory(servers=servers), tmp_path, height=900, timeout=15_000,
                           accept_downloads=True) as dashboard:
        def restart():
            """Stop the daemon and start it again on the same folder and ports."""
            before = json.loads(dashboard.daemon.config_path.read_text())
            dashboard.daemon.stop()
            dashboard.daemon = daemon_factory(servers=servers, directory=dashboard.daemon.directory,
                                              config={"port": before["port"], "webUI": before["webUI"]})

        dashboard.restart = restart
        yield dashboard


def shown_lines(page) -> list[tuple[int, str]]:
    return [(int(seq), text) for seq, text in page.locator(".terminal .line[data-seq]").evaluate_all(
        "lines => lines.map(line => [line.dataset.seq, line.textContent])")]


def scroll_to_top(terminal) -> None:
    terminal.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")


def test_scrollback_search_across_a_restart_follow_download_and_input_history(history_dashboard):
    dashboard = history_dashboard
    page = dashboard.page
    dashboard.open("#/server/book")
    dashboard.login()
    terminal = page.get_by_role("log")
    expect(terminal).to_contain_text("book line 2999")
    page.get_by_label("Command for book").fill("remember me")
    page.get_by_label("Command for book").press("Enter")
    expect(terminal).to_contain_text("echo:remember me")
    dashboard.problems.expected_network_errors = True  # the restart below
    dashboard.problems.expect_failure(401, "/api/")  # the old login does not survive it
    dashboard.restart()  # the app starts again and prints 3000 more lines: the needle is far beyond the scrollback
    # The page's next request meets the new daemon, which does not know the old login.
    expect(page.get_by_role("heading", name="Session expired")).to_be_visible(timeout=20_000)
    page.get_by_role("button", name="Log in again").click()
    dashboard.login()
    page.reload()
    # The console's reconnection attempts while the daemon was down fail as they should; nothing else may.
    dashboard.problems.messages = [message for message in dashboard.problems.messages
                                   if "ERR_CONNECTION_RESET" not in message[1] or "/console?" not in message[1]]
    expect(terminal).to_contain_text("book line 5999")
    assert "needle-4711" not in terminal.inner_text()

    # Up-arrow recalls what this user typed before the reload (and the restart).
    page.get_by_label("Command for book").press("ArrowUp")
    expect(page.get_by_label("Command for book")).to_have_value("remember me")

    # Search finds the line printed before the restart, shows it and highlights the match.
    search = page.get_by_label("Search the console history")
    search.fill("NEEDLE-4711")
    search.press("Enter")
    expect(page.locator(".search-status")).to_have_text("1 of 1")
    current = page.locator(".terminal .line.current")
    expect(current).to_contain_text("the needle-4711 was printed before the restart")
    expect(current.locator("mark")).to_have_text("needle-4711")
    expect(current).to_be_in_viewport()
    expect(page.get_by_label("Follow live output")).not_to_be_checked()
    assert re.search(r"\d.*· line \d+$", current.get_attribute("title"))  # the time it was printed, on hover
    dashboard.screenshot("console-history-search")

    # Following live output again goes back to the newest lines.
    page.get_by_label("Follow live output").check()
    expect(terminal).to_contain_text("book line 5999")
    assert "needle-4711" not in terminal.inner_text()

    # Scrolling up loads older lines without limit, past the 2500 lines of scrollback, back to the first.
    def scrolled_to_the_start():
        scroll_to_top(terminal)
        return "book line 0" in terminal.inner_text()

    wait_until(page, scrolled_to_the_start, timeout=30)
    lines = shown_lines(page)
    assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1))  # one run, nothing twice
    expect(page.get_by_label("Follow live output")).not_to_be_checked()

    # A time range downloads as text with a time on every line.
    page.locator(".console-download summary").click()
    with page.expect_download() as download_info:
        page.locator(".console-download").get_by_role("button", name="Download").click()
    rows = Path(download_info.value.path()).read_text().splitlines()
    assert any(row.endswith(" the needle-4711 was printed before the restart") for row in rows)
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", row) for row in rows)


def test_a_dropped_websocket_reconnects_without_losing_or_repeating_a_line(history_dashboard):
    dashboard = history_dashboard
    page = dashboard.page
    urls = []

    def relay(route):
        urls.append(route.url)
        server = route.connect_to_server()
        route.on_message(server.send)
        server.on_message(route.send)
        if len(urls) == 1:
            dropped.append(route)

    dropped = []
    page.route_web_socket(re.compile(r"/api/server/ticker/console"), relay)
    dashboard.open("#/server/ticker")
    dashboard.login()
    dashboard.card("ticker").get_by_role("button", name="Start ticker").click()
    terminal = page.get_by_role("log")
    expect(terminal).to_contain_text("tick 30")
    dropped[0].close(code=1011, reason="dropped by the test")
    expect(page.locator(".console-status")).to_contain_text("Reconnecting")
    expect(page.locator(".console-status")).to_have_text("Connected")
    expect(terminal).to_contain_text("tick 200")  # the reconnection waits about a second: plenty went by
    assert len(urls) == 2 and "since=" in urls[1]
    lines = shown_lines(page)
    ticks = [text for _, text in lines if text.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(len(ticks))]
    assert [seq for seq, _ in lines] == list(range(lines[0][0], lines[0][0] + len(lines)))
    expect(page.get_by_label("Follow live output")).to_be_checked()  # it kept following through the drop
    dashboard.screenshot("console-history-reconnected")
    expect(page.get_by_label("Follow live output")).to_be_checked()  # and through the screenshot's resize
    expect(page.get_by_role("button", name="↓ New output")).to_be_hidden()
    dashboard.daemon.post("/server/ticker", data="KILL")
    expect(terminal).to_contain_text("[Octyne] Server ticker has stopped.")
