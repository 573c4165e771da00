"""The stats sampler with real apps, in process: one shared reading per second, the hour of samples per server,
restarts, the bound, the test hook and the thread's end at shutdown."""

from __future__ import annotations

import os
import threading
import time

from octyne_flask.supervisor import RUNNING, STOPPED, Supervisor
from octyne_flask.supervisor.stats import MAX_AGE, RunStats, TreeUsage
from octyne_flask.supervisor.usage_history import UsageHistory, UsageSampler, sample_interval_ms
from tests.harness import wait_until
from tests.test_supervisor import PY, config_for, lines, script

INTERVAL_MS = 300
BUSY = "print('busy', flush=True)\nwhile True: pass\n"
GROWER = """
import time
hoard = []
print("growing", flush=True)
while True:
    if len(hoard) < 64:
        hoard.append(b"x" * (1 << 20))  # written, so resident
    time.sleep(0.1)
"""


def sampled(tmp_path, servers: dict) -> Supervisor:
    supervisor = Supervisor(config_for(tmp_path, servers), usage_interval_ms=INTERVAL_MS)
    supervisor.start_enabled()
    return supervisor


def samples_of(server) -> list[dict]:
    return server.usage.as_json()["samples"]


def test_concurrent_callers_share_one_reading(tmp_path):
    sup = sampled(tmp_path, {"s": {"command": script(tmp_path, "busy.py", BUSY)}})
    try:
        server = sup.get("s")
        wait_until(lambda: "busy" in lines(server))
        time.sleep(MAX_AGE + 0.1)  # whatever reading there was is stale: the first caller below reads afresh
        barrier = threading.Barrier(16)
        answers = []

        def ask():
            barrier.wait()
            stats = server.stats()
            answers.append((stats.cpu_percent, stats.memory_bytes))

        threads = [threading.Thread(target=ask) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Each caller reading /proc itself would get the CPU percent of the microseconds since the caller before.
        assert len(set(answers)) == 1 and answers[0][0] > 0, answers
    finally:
        sup.shutdown()


def test_a_growing_app_is_sampled_each_interval_oldest_first(tmp_path):
    sup = sampled(tmp_path, {"grow": {"command": script(tmp_path, "grow.py", GROWER)},
                             "idle": {"command": f"{PY} -c pass", "enabled": False}})
    try:
        server = sup.get("grow")
        wait_until(lambda: len(samples_of(server)) >= 6, timeout=20)
        history = server.usage.as_json()
        assert history["interval"] == INTERVAL_MS
        samples = history["samples"]
        times = [sample["time"] for sample in samples]
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert all(INTERVAL_MS / 2 <= gap <= INTERVAL_MS * 4 for gap in gaps), gaps
        memory = [sample["memoryUsage"] for sample in samples]
        assert memory[-1] > memory[0] + (4 << 20), memory
        assert all(later > earlier - (1 << 20) for earlier, later in zip(memory, memory[1:])), memory
        assert all(isinstance(sample["cpuUsage"], float) and sample["cpuUsage"] >= 0 for sample in samples)
        assert abs(times[-1] - time.time() * 1000) < 2000
        assert sup.get("idle").usage.as_json() == {"interval": INTERVAL_MS, "samples": []}
    finally:
        sup.shutdown()


def test_a_stopped_server_keeps_its_samples_and_gets_no_new_ones(tmp_path):
    sup = sampled(tmp_path, {"s": {"command": script(tmp_path, "grow.py", GROWER)}})
    try:
        server = sup.get("s")
        wait_until(lambda: len(samples_of(server)) >= 2, timeout=20)
        server.kill()
        assert server.status == STOPPED
        kept = samples_of(server)
        time.sleep(INTERVAL_MS * 3 / 1000)
        assert samples_of(server) == kept
    finally:
        sup.shutdown()


def test_after_a_restart_cpu_is_measured_from_the_new_run(tmp_path):
    sup = sampled(tmp_path, {"s": {"command": script(tmp_path, "busy.py", BUSY)}})
    try:
        server = sup.get("s")
        time.sleep(2)  # the first run piles up CPU seconds
        wait_until(lambda: samples_of(server))
        server.kill()
        restarted = time.time() * 1000
        assert server.start() and server.status == RUNNING
        wait_until(lambda: [s for s in samples_of(server) if s["time"] > restarted], timeout=10)
        first = next(s for s in samples_of(server) if s["time"] > restarted)
        # Measured from the old run's CPU seconds it would come out negative, shown as 0.
        assert first["cpuUsage"] > 0, first
    finally:
        sup.shutdown()


def test_the_sampler_thread_ends_at_shutdown(tmp_path):
    sup = sampled(tmp_path, {"s": {"command": script(tmp_path, "busy.py", BUSY)}})
    assert "octyne-stats-sampler" in [thread.name for thread in threading.enumerate()]
    sup.shutdown()
    assert "octyne-stats-sampler" not in [thread.name for thread in threading.enumerate()]


def test_one_hour_at_five_seconds_is_720_samples():
    history = UsageHistory(5000)
    run = RunStats(TreeUsage(os.getpid()), os.getpid())  # this test's own process, read for real
    for _ in range(730):
        history.record(run)
    assert len(history.as_json()["samples"]) == 720


def test_the_interval_is_5_s_unless_the_test_hook_says_otherwise():
    assert sample_interval_ms({}) == 5000
    assert sample_interval_ms({"OCTYNE_STATS_INTERVAL_MS": "250"}) == 250
    assert sample_interval_ms({"OCTYNE_STATS_INTERVAL_MS": "5"}) == 100
    assert sample_interval_ms({"OCTYNE_STATS_INTERVAL_MS": "soon"}) == 5000


def test_a_huge_interval_from_the_test_hook_is_an_hour_and_the_sampler_keeps_running():
    """Beyond an hour there is nothing to keep; far beyond, ``Event.wait`` overflows and killed the thread."""
    interval = sample_interval_ms({"OCTYNE_STATS_INTERVAL_MS": "10000000000000"})
    assert interval == 3_600_000
    sampler = UsageSampler(lambda: [], interval)
    try:
        time.sleep(0.2)
        assert "octyne-stats-sampler" in [thread.name for thread in threading.enumerate()]
    finally:
        sampler.close()
