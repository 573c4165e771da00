"""The scheduler's arithmetic on a fake clock: due times, replacement, missed runs, DST; and config validation."""

import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from octyne_flask.config import ConfigError, parse_config
from octyne_flask.schedules.entries import Schedule, parse_timezone
from octyne_flask.schedules.scheduler import MISSED_AFTER, Scheduler
from tests.harness import REPO

PARIS = ZoneInfo("Europe/Paris")


def every(seconds: float):
    """A job due at each multiple of ``seconds``."""
    return lambda now: (now // seconds + 1) * seconds


def test_a_job_is_due_at_its_time_and_then_at_the_next_one():
    scheduler = Scheduler(fire=None, clock=lambda: 100.0)
    scheduler.replace({"a": ("every 10", every(10))})
    assert scheduler.due_time("a") == 110
    assert scheduler.take_due(109.9) == []
    assert scheduler.take_due(110) == ["a"]
    assert scheduler.due_time("a") == 120


def test_a_run_missed_by_more_than_the_tolerance_is_not_run_late():
    scheduler = Scheduler(fire=None, clock=lambda: 100.0)
    scheduler.replace({"a": ("every 10", every(10))})
    late = 110 + MISSED_AFTER + 5
    assert scheduler.take_due(late) == []
    assert scheduler.due_time("a") == every(10)(late)


def test_changed_and_removed_jobs_take_effect_at_once_and_unchanged_ones_keep_their_time():
    now = [100.0]
    scheduler = Scheduler(fire=None, clock=lambda: now[0])
    scheduler.replace({"a": ("every 10", every(10)), "b": ("every 50", every(50))})
    now[0] = 105.0
    scheduler.replace({"a": ("every 7", every(7)), "b": ("every 50", every(50)), "c": ("every 3", every(3))})
    assert scheduler.due_time("a") == 112  # recomputed from 105
    assert scheduler.due_time("b") == 150
    assert scheduler.due_time("c") == 108
    scheduler.replace({"c": ("every 3", every(3))})
    assert scheduler.due_time("a") is None
    assert scheduler.take_due(150) == ["c"]  # the stale entries of a (112) and b (150) never fire


def test_cron_with_seconds_first_and_five_field_cron():
    start = datetime(2026, 3, 1, 12, 0, 0, tzinfo=PARIS)
    assert Schedule("s", "*/2 * * * * *", "command", "x").next_after(start) == start.replace(second=2)
    assert Schedule("m", "30 4 * * *", "restart").next_after(start) == datetime(2026, 3, 2, 4, 30, tzinfo=PARIS)


def test_dst_spring_forward_in_the_configured_zone():
    # 29 March 2026, Paris: 02:00 -> 03:00. A 02:30 schedule fires once that day, at 03:00 local (the library's rule).
    before = datetime(2026, 3, 29, 1, 0, tzinfo=PARIS)
    fired = Schedule("n", "30 2 * * *", "restart").next_after(before)
    assert fired.date() == before.date()
    assert fired.utcoffset().total_seconds() == 7200  # already summer time
    hourly = Schedule("h", "0 * * * *", "command", "x")
    first = hourly.next_after(before)
    second = hourly.next_after(first)
    assert second.timestamp() - first.timestamp() == 3600  # 02:00 does not exist: 02:00 CET -> 03:00 CEST is one hour


def test_empty_timezone_is_the_systems_and_a_named_zone_is_used():
    assert parse_config('{"timezone": "Asia/Tokyo"}').timezone == ZoneInfo("Asia/Tokyo")
    local = parse_timezone("")
    assert datetime(2026, 1, 1, tzinfo=local).utcoffset() == datetime(2026, 1, 1).astimezone().utcoffset()


SYSTEM_ZONE_CHECK = """
import sys, time
import subprocess
import sys
from datetime import datetime
from octyne_flask.schedules.entries import parse_timezone
zone = parse_timezone("")
for month in (1, 7):  # winter and summer: the C library's offset for the same instant
    instant = datetime(2026, month, 1, 12).timestamp()
    assert datetime.fromtimestamp(instant, zone).utcoffset() == datetime.fromtimestamp(instant).astimezone().utcoffset()
print("dateutil" in sys.modules)
"""


@pytest.mark.parametrize("tz, loads_dateutil", [
    (None, False),  # /etc/localtime
    ("Europe/Paris", False),
    (":America/New_York", False),
    ("/usr/share/zoneinfo/Australia/Sydney", False),
    ("EST5EDT4,M3.2.0,M11.1.0", True),  # POSIX rules: no zone file to read, dateutil reads the C library's
])
def test_the_systems_zone_follows_tz_and_loads_dateutil_only_when_it_must(tz, loads_dateutil):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"} | ({"TZ": tz} if tz is not None else {})
    result = subprocess.run([sys.executable, "-c", SYSTEM_ZONE_CHECK], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(loads_dateutil)


def test_the_systems_zone_is_one_object_so_reloaded_configs_compare_equal():
    assert parse_config("{}").timezone is parse_config("{}").timezone


def server(extra: str) -> str:
    return '{"servers": {"a": {"directory": "/srv/a", "command": "x", ' + extra + '}}}'


@pytest.mark.parametrize("text, message", [
    ('{"timezone": "Mars/Olympus"}', "'timezone' is not a known time zone"),
    (server('"schedules": [{"name": "x", "cron": "* * *", "action": "stop"}]'), "'servers.a.schedules[0].cron'"),
    (server('"schedules": [{"name": "x", "cron": "61 * * * *", "action": "stop"}]'), "'servers.a.schedules[0].cron'"),
    (server('"schedules": [{"name": "x", "cron": "* * * * *", "action": "explode"}]'), "'servers.a.schedules[0].action'"),
    (server('"schedules": [{"name": "x", "cron": "* * * * *", "action": "command"}]'), "'servers.a.schedules[0].command'"),
    (server('"schedules": [{"name": "x", "cron": "* * * * *", "action": "stop"}, '
            '{"name": "x", "cron": "* * * * *", "action": "start"}]'), "'servers.a.schedules[1].name'"),
    (server('"schedules": [{"name": "x", "cron": "* * * * *", "action": "restart", "warnings": [{"before": -1, "command": "c"}]}]'),
     "'servers.a.schedules[0].warnings[0].before'"),
    (server('"schedules": {}'), "'servers.a.schedules' must be a list"),
    (server('"backups": {"path": "/srv/a/backups"}'), "'servers.a.backups.path' must be outside"),
    (server('"backups": {"keep": -1}'), "'servers.a.backups.keep'"),
    (server('"backups": {"before": [3]}'), "'servers.a.backups.before'"),
])
def test_bad_schedules_and_backups_name_the_key(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert message in str(caught.value)


def test_backups_default_to_a_folder_per_server_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_config(server('"enabled": false')).servers["a"].backups.path == str(tmp_path / "backups" / "a")


def test_a_default_backups_folder_inside_the_directory_loads_but_says_why_backups_cannot_be_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config('{"servers": {"a": {"directory": ".", "command": "x"}}}')
    assert "set backups.path" in config.servers["a"].backups.problem


def test_the_thread_sleeps_until_the_next_due_time_instead_of_polling():
    import time

    readings = []

    def clock():
        readings.append(1)
        return time.time()

    scheduler = Scheduler(fire=lambda key: None, clock=clock)
    scheduler.replace({"hourly": ("hourly", lambda now: now + 3600)})
    scheduler.start()
    time.sleep(1)
    woken = len(readings)
    scheduler.close()
    assert woken <= 4  # replace, one pass of the loop and its wait: no tick in between
