"""Tickets, the login throttle, the users file store and the action log, tested directly."""

import json
import os
import threading
import time
import tracemalloc

import pytest

from octyne_flask.actionlog import ROTATE_AT_BYTES, ActionLog
from octyne_flask.auth.first_user import ensure_users_file
from octyne_flask.auth.throttle import LoginThrottle, LoginThrottled
from octyne_flask.auth.tickets import TicketStore
from octyne_flask.auth.users import UserStore
from octyne_flask.config import LoggingConfig
from octyne_flask.errors import ApiError


class FakeClock:
    """Time that moves only when told to (the one fake here: waiting 30 real seconds tests nothing more)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_ticket_is_valid_once_for_the_same_ip():
    tickets = TicketStore()
    ticket = tickets.issue("alice", "10.0.0.1")
    assert tickets.redeem(ticket, "10.0.0.1") == "alice"
    assert tickets.redeem(ticket, "10.0.0.1") is None


def test_ticket_from_another_ip_is_refused_and_spent():
    tickets = TicketStore()
    ticket = tickets.issue("alice", "10.0.0.1")
    assert tickets.redeem(ticket, "10.0.0.2") is None
    assert tickets.redeem(ticket, "10.0.0.1") is None


def test_ticket_expires_after_30_seconds():
    clock = FakeClock()
    tickets = TicketStore(clock=clock)
    fresh, stale = tickets.issue("a", "ip"), tickets.issue("a", "ip")
    clock.now += 29.9
    assert tickets.redeem(fresh, "ip") == "a"
    clock.now += 0.2
    assert tickets.redeem(stale, "ip") is None


def wrong_guess():
    return None


def test_throttle_window_slides():
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(10):
        throttle.attempt("1.1.1.1", "bob", wrong_guess)
    with pytest.raises(LoginThrottled):
        throttle.attempt("2.2.2.2", "bob", wrong_guess)
    assert throttle.attempt("1.1.1.1", "alice", lambda: "token") == "token"
    clock.now += 601
    assert throttle.attempt("1.1.1.1", "bob", lambda: "token") == "token"


def test_throttle_takes_back_guesses_that_succeed_or_fail_without_a_verdict():
    throttle = LoginThrottle(clock=FakeClock())
    for _ in range(20):
        assert throttle.attempt("1.1.1.1", "bob", lambda: "token") == "token"
        with pytest.raises(ConnectionError):
            throttle.attempt("1.1.1.1", "bob", _redis_down)
    for _ in range(10):
        throttle.attempt("1.1.1.1", "bob", wrong_guess)
    with pytest.raises(LoginThrottled):
        throttle.attempt("1.1.1.1", "bob", lambda: "token")


def _redis_down():
    raise ConnectionError("Redis is down")


def test_concurrent_guesses_are_counted_before_any_is_checked():
    throttle = LoginThrottle()
    checked, throttled = [], []
    all_started = threading.Barrier(100, timeout=10)

    def guess(number: int) -> None:
        all_started.wait()
        try:
            throttle.attempt("1.1.1.1", "bob", lambda: checked.append(number) or time.sleep(0.2))
        except LoginThrottled:
            throttled.append(number)

    threads = [threading.Thread(target=guess, args=(number,)) for number in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert (len(checked), len(throttled)) == (10, 90)


def write_users(path, users):
    path.write_text(json.dumps(users))


def test_guesses_with_8_kb_usernames_from_many_addresses_keep_no_copy_of_the_names():
    throttle = LoginThrottle()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(2000):  # 40 addresses x 50 guesses, each a new 8 KB name (the header limit)
            throttle.attempt(f"127.0.1.{index // 50}", f"{index}-" + "u" * 8000, lambda: None)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2000 * 2048  # the names themselves would be 16 MB


def test_store_ignores_invalid_names_and_keeps_last_good_users(tmp_path):
    path = tmp_path / "users.json"
    write_users(path, {"ok": "a" * 64, "bad name": "b" * 64, "@local": "c" * 64, "num": 5})
    store = UserStore(str(path))
    assert store.names() == ["ok"]
    path.write_text("{broken")
    assert store.reload() is False
    assert store.names() == ["ok"]


def test_entries_the_store_ignores_survive_account_changes(tmp_path):
    path = tmp_path / "users.json"
    write_users(path, {"ok": "a" * 64, "bad name": "b" * 64, "num": 5})
    store = UserStore(str(path))
    store.create("alice", "pw")
    store.delete("ok")
    on_disk = json.loads(path.read_text())
    assert (on_disk["bad name"], on_disk["num"]) == ("b" * 64, 5)
    assert set(on_disk) == {"alice", "bad name", "num"} and store.names() == ["alice"]
    store.create("num", "pw")  # a usable user replaces the unusable entry of the same name
    assert json.loads(path.read_text())["num"].startswith("$argon2id$")


def test_store_changes_are_atomic_and_notify(tmp_path):
    path = tmp_path / "users.json"
    write_users(path, {"admin": "a" * 64})
    store = UserStore(str(path))
    seen = []
    store.on_change(lambda users: seen.append(sorted(users)))
    store.create("alice", "pw")
    store.update("alice", "alicia", "")
    with pytest.raises(ApiError) as raised:
        store.update("ghost", "", "pw")
    assert raised.value.status == 404
    store.delete("alicia")
    assert seen == [["admin", "alice"], ["admin", "alicia"], ["admin"]]
    assert json.loads(path.read_text()) == {"admin": "a" * 64}
    assert not os.path.exists(str(path) + "~")


def test_failed_write_leaves_file_and_live_users_alone(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "users.json"
    write_users(path, {"admin": "a" * 64})
    store = UserStore(str(path))
    (folder / "users.json~").mkdir()  # the temp name is taken: the write must fail
    with pytest.raises(OSError):
        store.create("alice", "pw")
    assert store.names() == ["admin"]
    assert json.loads(path.read_text()) == {"admin": "a" * 64}


def test_ensure_users_file_only_when_missing(tmp_path):
    path = tmp_path / "users.json"
    message = ensure_users_file(str(path))
    assert "default user 'admin'" in message and list(json.loads(path.read_text())) == ["admin"]
    assert ensure_users_file(str(path)) is None


def test_action_log_switches_and_rotation(tmp_path):
    log = ActionLog(LoggingConfig(True, str(tmp_path), {"auth.logout": False}))
    log.record("auth.login", "1.2.3.4", "alice")
    log.record("auth.logout", "1.2.3.4", "alice")
    log.record("made.up", "1.2.3.4", "alice", extra=1)
    entries = [json.loads(line) for line in open(log.path)]
    assert [e["action"] for e in entries] == ["auth.login", "made.up"]
    assert entries[1]["extra"] == 1
    with open(log.path, "a") as handle:
        handle.write("x" * ROTATE_AT_BYTES)
    log.record("auth.login", "1.2.3.4", "alice")
    assert len(open(log.path).readlines()) == 1
    assert len(os.listdir(tmp_path)) == 2


def test_a_new_action_log_file_is_readable_by_the_daemons_user_only(tmp_path):
    old_umask = os.umask(0o022)
    try:
        log = ActionLog(LoggingConfig(True, str(tmp_path), {}))
        log.record("auth.login", "1.2.3.4", "alice")
        with open(log.path, "a") as handle:
            handle.write("x" * ROTATE_AT_BYTES)
        log.record("auth.login", "1.2.3.4", "alice")  # rotated: a new file again
    finally:
        os.umask(old_umask)
    assert sorted(oct(os.stat(tmp_path / name).st_mode & 0o777) for name in os.listdir(tmp_path)) == ["0o600"] * 2


def test_action_log_disabled_writes_nothing(tmp_path):
    log = ActionLog(LoggingConfig(False, str(tmp_path / "logs"), {}))
    log.started(1)
    log.record("auth.login", "ip", "u")
    assert not (tmp_path / "logs").exists()


def test_endpoint_permissions_are_known_and_typos_are_not():
    from octyne_flask.auth.permissions import GLOBAL_PERMISSIONS, SERVER_PERMISSIONS, split_permission

    assert all(split_permission(name) == (name, False) for name in GLOBAL_PERMISSIONS)
    assert all(split_permission("server{id}." + name) == (name, True) for name in SERVER_PERMISSIONS)
    for typo in ("config.veiw", "server{id}.files.veiw", "server.view", "serverlobby.view", "{id}.view", ""):
        with pytest.raises(ValueError):
            split_permission(typo)


def test_an_unknown_username_costs_an_argon2_check_like_a_known_one(tmp_path, monkeypatch):
    """Answer time must not tell which accounts exist: both paths run exactly one Argon2id verification."""
    from argon2 import low_level

    from tests.harness import ADMIN_HASH

    path = tmp_path / "users.json"
    path.write_text(json.dumps({"admin": ADMIN_HASH}))
    store = UserStore(str(path))
    verifications = []
    real_verify = low_level.verify_secret
    monkeypatch.setattr(low_level, "verify_secret", lambda *args: verifications.append(1) or real_verify(*args))
    store.check_password("admin", b"wrong")
    store.check_password("admin", b"wrong")  # the decoy hash is made once, on first use: count after it exists
    known = len(verifications)
    assert store.check_password("nobody-by-this-name", b"wrong") is False
    store.check_password("nobody-by-this-name", b"wrong")
    assert len(verifications) - known == 2 and known == 2
