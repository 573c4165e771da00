"""The Backups and Schedules tabs in Chromium: create a backup and watch its progress, download and restore it,
run a schedule now. Same browser rules as tests/test_dashboard.py (no console errors, no foreign requests)."""

from __future__ import annotations

import os
import sys

import pytest
from playwright.sync_api import expect

from tests.harness import wait_until
from tests.test_dashboard import browser, dashboard_session  # noqa: F401 - the module-scoped browser fixture

APP = "import sys\nprint('ready', flush=True)\nfor line in sys.stdin:\n    print('got', line.strip(), flush=True)\n"


@pytest.fixture
def dashboard(daemon_factory, browser, tmp_path):  # noqa: F811
    world = tmp_path / "world"
    world.mkdir()
    (world / "app.py").write_text(APP)
    (world / "level.dat").write_text("original\n")
    (world / "region.bin").write_bytes(os.urandom(30 * 1024 * 1024))
    daemon = daemon_factory(servers={"world": {
        "directory": str(world), "command": f"{sys.executable} app.py",
        "backups": {"path": str(tmp_path / "backups"), "before": ["save-off"], "settle": 2, "after": ["save-on"]},
        "schedules": [{"name": "greet", "cron": "0 4 * * *", "action": "command", "command": "say hello"}],
    }})
    with dashboard_session(browser, daemon, world, accept_downloads=True) as dashboard:
        yield dashboard


def test_create_watch_download_restore_a_backup_and_run_a_schedule_now(dashboard):
    page, world, daemon = dashboard.page, dashboard.demo_dir, dashboard.daemon
    wait_until(lambda: daemon.get("/server/world").json()["status"] == 1)
    dashboard.open("#/server/world/backups")
    dashboard.login()
    expect(page.get_by_text("No backups yet.")).to_be_visible()
    page.get_by_role("button", name="Create backup").click()
    progress = page.locator("tr[data-backup] progress")
    expect(progress).to_be_visible()  # the settle time keeps it on screen for 2 s
    dashboard.screenshot("backups-progress")
    row = page.locator("tr[data-backup]").first
    expect(row.get_by_role("button", name="Download")).to_be_visible(timeout=30_000)
    name = row.get_attribute("data-backup")
    expect(row).to_contain_text("Manual")
    with page.expect_download() as download:
        row.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == name

    (world / "level.dat").write_text("griefed\n")
    daemon.post("/server/world", data="KILL")
    row.get_by_role("button", name="Restore").click()
    expect(dashboard.dialog()).to_contain_text(f"Everything in the folder of world is replaced by the content of {name}")
    dashboard.screenshot("backups-restore-confirm")
    dashboard.answer_dialog("Restore")
    expect(page.get_by_text(f"Restored {name}")).to_be_visible(timeout=30_000)
    assert (world / "level.dat").read_text() == "original\n"
    expect(page.locator("tr[data-backup]").filter(has_text="Before a restore")).to_have_count(1)
    dashboard.screenshot("backups")

    daemon.post("/server/world", data="START")
    page.get_by_role("link", name="Schedules").click()
    greet = page.locator('tr[data-schedule="greet"]')
    expect(greet.locator("td.when")).to_have_text("At 04:00 0 4 * * *")
    expect(greet).to_contain_text("Not run yet")
    wait_until(lambda: daemon.get("/server/world").json()["status"] == 1)
    greet.get_by_role("button", name="Run now").click()
    expect(greet.locator("td.outcome")).to_contain_text("ok", timeout=10_000)
    expect(greet.locator("td.outcome")).to_contain_text("command sent")
    expect(page.get_by_role("link", name="edit the config")).to_be_visible()
    dashboard.screenshot("schedules")
