"""The server page's CPU and memory charts of the last hour in Chromium, fed by GET /server/{id}/stats/history."""

from __future__ import annotations

import re
import sys
from decimal import ROUND_HALF_UP, Decimal

from playwright.sync_api import expect

from tests.test_dashboard import browser, dashboard_session, wait_until  # noqa: F401  (browser is a fixture)
from tests.test_usage_history import GROWER


def test_the_server_page_charts_the_last_hour_with_units_and_hover(daemon_factory, browser, tmp_path):  # noqa: F811
    (tmp_path / "grow.py").write_text(GROWER)
    daemon = daemon_factory(servers={"grow": {"directory": str(tmp_path), "command": f"{sys.executable} grow.py"}},
                            env={"OCTYNE_STATS_INTERVAL_MS": "500"})
    with dashboard_session(browser, daemon, tmp_path, height=900) as dashboard:
        page = dashboard.page
        dashboard.open("#/server/grow")
        dashboard.login()
        cpu = page.get_by_role("figure", name="CPU")
        memory = page.get_by_role("figure", name="Memory")
        expect(cpu).to_be_visible()
        expect(dashboard.card("grow").locator(".sparkline")).to_have_count(0)  # the charts replace them here

        line = memory.locator(".chart-line")
        wait_until(page, lambda: (line.get_attribute("d") or "").count("L") >= 3, timeout=20)
        expect(memory.locator(".chart-label").filter(has_text=re.compile(r"^\d+(\.\d)? MiB$")).first).to_be_attached()
        expect(cpu.locator(".chart-label").filter(has_text=re.compile(r"^\d+(\.\d)?%$")).first).to_be_attached()
        expect(memory.locator(".chart-label").filter(has_text=re.compile(r"^\d\d:\d\d")).first).to_be_attached()
        summary = re.compile(r"^Memory over the last \d+ minutes: latest .+ MiB, peak .+ MiB$")
        expect(memory.get_by_role("img")).to_have_attribute("aria-label", summary)
        readout = memory.get_by_test_id("readout")
        expect(readout).to_have_text(re.compile(r"^Latest \d\d:\d\d:\d\d.*: \d+(\.\d)? MiB$"))

        # Hovering reads out the sample under the pointer.
        samples = daemon.get("/server/grow/stats/history").json()["samples"]
        overlay = memory.locator(".chart-overlay")
        box = overlay.bounding_box()
        page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
        expect(readout).to_have_text(re.compile(r"^\d\d:\d\d:\d\d.*: \d+(\.\d)? MiB$"))
        expect(memory.locator(".chart-dot")).to_have_attribute("visibility", "visible")
        page.mouse.move(0, 0)  # leaving the chart reads out the latest again
        expect(readout).to_have_text(re.compile(r"^Latest "))
        memory.get_by_role("img").focus()  # the keyboard picks samples too
        page.keyboard.press("Home")
        expect(readout).to_have_text(re.compile(rf": {re.escape(mib_text(samples[0]['memoryUsage']))}$"))
        dashboard.screenshot("server-charts")


def mib_text(value: int) -> str:
    """What format.js's bytes() shows for a MiB-sized value (toFixed rounds a half up)."""
    amount = Decimal(value) / (1 << 20)
    return f"{amount.quantize(Decimal('0.1' if amount < 10 else '1'), ROUND_HALF_UP)} MiB"
