"""GET /server/{id}/stats/history (extensions.md §H) and GET /server/{id}'s live figures against the real daemon,
with a real app whose memory grows."""

from __future__ import annotations

import sys
import time

import pytest

from tests.harness import ADMIN_HASH, wait_until
from tests.test_access_api import FORBIDDEN, as_user, token_of
from tests.test_usage_history import GROWER

INTERVAL_MS = 400  # through the test hook OCTYNE_STATS_INTERVAL_MS; the daemon's own is 5000


@pytest.fixture
def growing(daemon_factory, tmp_path):
    """A daemon sampling every 400 ms, a growing app ``grow``, a never-started ``idle`` and the account ``alice``."""
    (tmp_path / "grow.py").write_text(GROWER)
    return daemon_factory(servers={
        "grow": {"directory": str(tmp_path), "command": f"{sys.executable} grow.py"},
        "idle": {"directory": str(tmp_path), "command": f"{sys.executable} grow.py", "enabled": False},
    }, users={"admin": ADMIN_HASH, "alice": ADMIN_HASH}, env={"OCTYNE_STATS_INTERVAL_MS": str(INTERVAL_MS)})


def test_the_history_of_a_growing_app_rises_oldest_first_at_the_interval(growing):
    wait_until(lambda: len(growing.get("/server/grow/stats/history").json()["samples"]) >= 6, timeout=30)
    body = growing.get("/server/grow/stats/history").json()
    assert list(body) == ["interval", "samples"] and body["interval"] == INTERVAL_MS
    samples = body["samples"]
    assert all(list(sample) == ["time", "cpuUsage", "memoryUsage"] for sample in samples)
    times = [sample["time"] for sample in samples]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert all(INTERVAL_MS / 2 <= gap <= INTERVAL_MS * 4 for gap in gaps), gaps
    memory = [sample["memoryUsage"] for sample in samples]
    assert all(type(value) is int for value in memory)
    assert memory[-1] > memory[0] + (4 << 20), memory
    assert all(later > earlier - (1 << 20) for earlier, later in zip(memory, memory[1:])), memory
    assert all(type(sample["cpuUsage"]) is float and sample["cpuUsage"] >= 0 for sample in samples)


def test_a_server_that_has_not_run_has_no_samples(growing):
    assert growing.get("/server/idle/stats/history").json() == {"interval": INTERVAL_MS, "samples": []}


def test_the_interval_on_the_wire_is_the_real_one(daemon_factory, tmp_path):
    daemon = daemon_factory(servers={"idle": {"directory": str(tmp_path), "command": "true", "enabled": False}})
    assert daemon.get("/server/idle/stats/history").json() == {"interval": 5000, "samples": []}


def test_unknown_server_wrong_method_and_a_viewer_without_view(growing):
    response = growing.get("/server/nope/stats/history")
    assert (response.status_code, response.json()) == (404, {"error": "This server does not exist!"})
    response = growing.post("/server/grow/stats/history")
    assert (response.status_code, response.json()) == (405, {"error": "Only GET is allowed!"})
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    growing.patch("/access", json={"accounts": {"alice": {"servers": {"idle": "viewer"}}}})
    alice = token_of(growing, "alice")
    response = as_user(growing, alice, "GET", "/server/grow/stats/history")
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert as_user(growing, alice, "GET", "/server/idle/stats/history").status_code == 200


def test_the_live_figures_follow_the_app_within_a_second(growing):
    wait_until(lambda: growing.get("/server/grow").json()["memoryUsage"] > 8 << 20, timeout=20)
    first = growing.get("/server/grow").json()["memoryUsage"]
    time.sleep(1.5)  # past the 1 s a reading may be reused
    assert growing.get("/server/grow").json()["memoryUsage"] > first + (4 << 20)
