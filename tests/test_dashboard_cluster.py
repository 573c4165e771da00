"""The dashboard of one node runs the servers of three (issue #16): real redis-server, three daemons, Chromium."""

from __future__ import annotations

import json

import pytest
import requests
from playwright.sync_api import expect

from tests.harness import REPO, wait_until
from tests.services import ECHO_APP
from tests.test_cluster_nodes import all_online, start_node
from tests.test_dashboard import browser, dashboard_session  # noqa: F401  (the module's Chromium fixture)

SCREENSHOT = REPO / "docs" / "screenshots" / "cluster.png"


@pytest.fixture
def cluster(daemon_factory, redis_server, tmp_path):
    folders = {name: tmp_path / name for name in ("alpha", "bravo", "charlie")}
    for folder in folders.values():
        folder.mkdir()
    (folders["charlie"] / "notes.txt").write_text("kept on node c\n")
    app = {"command": ECHO_APP}
    a = start_node(daemon_factory, redis_server, "a", role="primary",
                   servers={"alpha": {**app, "directory": str(folders["alpha"])}})
    b = start_node(daemon_factory, redis_server, "b", servers={"bravo": {**app, "directory": str(folders["bravo"])}})
    c = start_node(daemon_factory, redis_server, "c",
                   servers={"charlie": {**app, "directory": str(folders["charlie"]), "enabled": False}})
    # Logging in before node a has seen the others gives no token for them (the next test).
    wait_until(lambda: all_online(a, ["a", "b", "c"]), timeout=15)
    return a, b, c


def test_one_login_on_node_a_runs_the_servers_of_a_b_and_c(cluster, browser):  # noqa: F811
    a, b, c = cluster
    with dashboard_session(browser, a) as dashboard:
        page = dashboard.page
        dashboard.problems.origins |= {f"127.0.0.1:{b.port}", f"127.0.0.1:{c.port}"}
        dashboard.open()
        dashboard.login()
        for node, server in (("a", "alpha"), ("b", "bravo"), ("c", "charlie")):
            card = page.locator(f'[data-server="{server}"]')
            expect(card.get_by_test_id("node")).to_have_text(node)
        expect(page.locator('[data-server="charlie"]').get_by_test_id("status")).to_have_text("Stopped")

        page.get_by_role("button", name="Start charlie on c").click()
        expect(page.locator('[data-server="charlie"]').get_by_test_id("status")).to_have_text("Running")
        assert json.loads(c.local("GET", "/server/charlie")[2])["status"] == 1
        page.get_by_label("Node", exact=True).select_option("c")
        expect(page.locator('[data-server="alpha"]')).to_be_hidden()
        page.get_by_label("Node", exact=True).select_option("")
        expect(page.locator('[data-server="alpha"]')).to_be_visible()

        page.get_by_role("link", name="charlie").click()
        expect(page).to_have_url(f"{dashboard.url}#/node/c/server/charlie")
        command = page.get_by_label("Command for charlie")
        expect(page.get_by_role("button", name="Send")).to_be_enabled()  # node c's console is connected
        command.fill("hello node c")
        command.press("Enter")
        expect(page.locator(".terminal")).to_contain_text("echo:hello node c")
        page.get_by_role("link", name="Files").click()
        expect(page.locator('tr[data-name="notes.txt"]')).to_contain_text("15 B")
        dashboard.screenshot("cluster-files")

        page.get_by_role("link", name="Servers").first.click()
        expect(page.locator('[data-server="bravo"]').get_by_test_id("status")).to_have_text("Running")
        dashboard.problems.expected_network_errors = True
        b.stop()
        bravo = page.locator('[data-server="bravo"]')
        expect(bravo.get_by_test_id("status")).to_have_text("Node offline", timeout=20_000)
        expect(bravo).to_have_class("server-card offline")
        expect(page.locator('.node-state[data-node="b"]')).to_have_text("b: offline", timeout=20_000)
        dashboard.screenshot("cluster-offline")
        page.screenshot(path=str(SCREENSHOT), full_page=True)  # committed: the README shows it

        # The second token, the one the other nodes accept, ends with the session.
        token = page.evaluate("localStorage.getItem('octyne.clusterToken')")
        assert requests.get(c.url + "/servers", headers={"Authorization": token}, timeout=10).status_code == 200
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_text("You have been logged out.")).to_be_visible()
        assert requests.get(c.url + "/servers", headers={"Authorization": token}, timeout=10).status_code == 401
        assert page.evaluate("localStorage.getItem('octyne.clusterToken')") is None


def test_a_node_joining_after_login_tags_the_cards_and_asks_for_a_new_login(daemon_factory, redis_server, browser, tmp_path):  # noqa: F811
    folder = tmp_path / "alpha"
    folder.mkdir()
    a = start_node(daemon_factory, redis_server, "a", role="primary",
                   servers={"alpha": {"command": ECHO_APP, "directory": str(folder)}})
    with dashboard_session(browser, a) as dashboard:
        page = dashboard.page
        dashboard.open()
        dashboard.login()
        alpha = page.locator('[data-server="alpha"]')
        expect(alpha.get_by_test_id("status")).to_have_text("Running")
        expect(alpha.get_by_test_id("node")).to_be_hidden()
        notice = page.get_by_text("Log out and in again to see the servers of the other nodes.")
        expect(notice).to_be_hidden()

        start_node(daemon_factory, redis_server, "b")
        expect(alpha.get_by_test_id("node")).to_have_text("a", timeout=15_000)  # nodes are rescanned every 2 s
        expect(notice).to_be_visible()
