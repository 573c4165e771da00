"""The access model and access.json (extensions.md §A), without HTTP: resolution, validation, the file."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from octyne_flask.auth.access import (
    ACCESS_OFF, ALL_GLOBAL, ALL_SERVER, AccessError, AccessSnapshot, patched, validate_document)
from octyne_flask.auth.access_store import AccessStore
from octyne_flask.auth.accounts import Accounts
from octyne_flask.auth.permissions import BUILT_IN_ROLES, SERVER_PERMISSIONS
from octyne_flask.auth.users import UserStore
from octyne_flask.errors import ApiError
from tests.harness import ADMIN_HASH, wait_until

EXAMPLE = {
    "roles": {"moderator": ["view", "console.view", "console.write"]},
    "accounts": {
        "admin": {"admin": True},
        "alice": {
            "permissions": ["accounts.view"],
            "servers": {"survival": "operator", "creative": ["view", "console.view"], "*": "viewer"},
        },
        "bob": {"servers": {"lobby": ["moderator", "files.view"]}},
    },
    "defaults": {"servers": {"lobby": "viewer"}},
}


def snapshot(document=EXAMPLE) -> AccessSnapshot:
    return AccessSnapshot(validate_document(document))


def test_off_and_local_and_administrators_hold_everything():
    for account in ("anyone", "@local"):
        assert ACCESS_OFF.permissions(account) == ALL_GLOBAL
        assert ACCESS_OFF.permissions(account, "lobby") == ALL_SERVER
    rules = snapshot()
    assert rules.permissions("@local", "x") == ALL_SERVER and rules.permissions("@local") == ALL_GLOBAL
    assert rules.permissions("admin", "anything") == ALL_SERVER and rules.permissions("admin") == ALL_GLOBAL


def test_a_server_entry_is_the_union_of_star_and_its_own_entry():
    rules = snapshot()
    viewer = frozenset(BUILT_IN_ROLES["viewer"])
    assert rules.permissions("alice", "survival") == ALL_SERVER
    assert rules.permissions("alice", "creative") == viewer | {"view", "console.view"}
    assert rules.permissions("alice", "not-yet-configured") == viewer
    assert rules.permissions("alice") == {"accounts.view"}


def test_roles_and_permissions_mix_in_a_list():
    rules = snapshot()
    assert rules.permissions("bob", "lobby") == {"view", "console.view", "console.write", "files.view"}
    assert rules.permissions("bob", "survival") == frozenset()
    assert rules.permissions("bob") == frozenset()


def test_an_account_without_an_entry_has_the_defaults():
    rules = snapshot()
    assert rules.permissions("carol", "lobby") == frozenset(BUILT_IN_ROLES["viewer"])
    assert rules.permissions("carol", "survival") == frozenset()
    assert rules.entry("carol") == {"servers": {"lobby": "viewer"}}


def test_roles_are_listed_expanded():
    roles = snapshot().roles()
    assert roles["operator"] == list(SERVER_PERMISSIONS)
    assert roles["viewer"] == list(BUILT_IN_ROLES["viewer"])
    assert roles["moderator"] == ["view", "console.view", "console.write"]


@pytest.mark.parametrize("document, key", [
    ({"roles": {"viewer": ["view"]}}, "roles.viewer"),
    ({"roles": {"ops": ["view", "files.delete"]}}, "roles.ops"),
    ({"roles": {"view": ["view"]}}, "roles.view"),
    ({"roles": []}, "roles"),
    ({"accounts": {"alice": {"servers": {"lobby": "moderator"}}}}, "accounts.alice.servers.lobby"),
    ({"accounts": {"alice": {"servers": {"lobby": ["view", "nope"]}}}}, "accounts.alice.servers.lobby"),
    ({"accounts": {"alice": {"servers": {"lobby": 3}}}}, "accounts.alice.servers.lobby"),
    ({"accounts": {"alice": {"permissions": ["config.veiw"]}}}, "accounts.alice.permissions"),
    ({"accounts": {"alice": {"admin": "yes"}}}, "accounts.alice.admin"),
    ({"accounts": {"alice": {"colour": "red"}}}, "accounts.alice.colour"),
    ({"accounts": {"bad name": {}}}, "accounts.bad name"),
    ({"defaults": {"servers": {"*": "nobody"}}}, "defaults.servers.*"),
    ({"enabled": True}, "enabled"),
])
def test_an_invalid_document_names_the_offending_key(document, key):
    with pytest.raises(AccessError) as refused:
        validate_document(document)
    assert refused.value.key == key and str(refused.value).startswith(key + ": ")


def test_a_patch_replaces_entries_resets_to_defaults_and_deletes_roles():
    document = validate_document(EXAMPLE)
    changed = patched(document, {"accounts": {"alice": None, "bob": {"servers": {"*": "viewer"}}},
                                 "roles": {"moderator": None}}, ["admin", "alice", "bob"])
    assert changed["accounts"]["alice"] == {"servers": {"lobby": "viewer"}}
    assert changed["accounts"]["bob"] == {"servers": {"*": "viewer"}}
    assert changed["roles"] == {}
    assert document == validate_document(EXAMPLE)  # the input is untouched


@pytest.mark.parametrize("body, key", [
    ({"accounts": {"mallory": {}}}, "accounts.mallory"),
    ({"roles": {"operator": None}}, "roles.operator"),
    ({"roles": {"ghost": None}}, "roles.ghost"),
    ({"roles": {"moderator": None}}, "accounts.bob.servers.lobby"),  # still used: validated as a whole
    ({"accounts": []}, "accounts"),
    ({"servers": {}}, "servers"),
])
def test_a_bad_patch_names_the_offending_key(body, key):
    with pytest.raises(AccessError) as refused:
        patched(validate_document(EXAMPLE), body, ["admin", "alice", "bob"])
    assert refused.value.key == key


@pytest.fixture
def files(tmp_path):
    users_path = tmp_path / "users.json"
    users_path.write_text(json.dumps({"admin": ADMIN_HASH, "alice": ADMIN_HASH}))
    users = UserStore(str(users_path))
    access = AccessStore(str(tmp_path / "access.json"))
    yield users, access, tmp_path / "access.json"
    access.stop_watching()


def test_the_first_patch_creates_the_file_with_every_account_an_administrator(files):
    users, access, path = files
    assert not access.snapshot.enabled and not path.exists()
    access.patch({"accounts": {"alice": {"servers": {"lobby": "viewer"}}}}, users.names())
    assert json.loads(path.read_text()) == {
        "roles": {}, "accounts": {"admin": {"admin": True}, "alice": {"servers": {"lobby": "viewer"}}},
        "defaults": {"servers": {}}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert access.snapshot.permissions("alice", "lobby") == frozenset(BUILT_IN_ROLES["viewer"])
    assert [name for name in os.listdir(path.parent) if name.startswith(".access")] == []


def test_refused_changes_leave_the_file_byte_identical(files):
    users, access, path = files
    access.patch({"accounts": {"alice": {}}}, users.names())
    before = path.read_bytes()
    with pytest.raises(ApiError) as refused:
        access.patch({"accounts": {"admin": {"admin": False}}}, users.names())
    assert (refused.value.status, refused.value.message) == (409, "At least one administrator must remain!")
    with pytest.raises(ApiError) as refused:
        access.patch({"accounts": {"alice": {"servers": {"x": "nope"}}}}, users.names())
    assert refused.value.status == 400 and refused.value.extra == {"key": "accounts.alice.servers.x"}
    assert path.read_bytes() == before


def test_account_changes_keep_the_access_entries_in_step(files):
    users, access, path = files
    accounts = Accounts(users, access)
    access.patch({"defaults": {"servers": {"*": "viewer"}}, "accounts": {"alice": {"servers": {"a": "operator"}}}},
                 users.names())
    accounts.create("carol", "carol-password")
    assert json.loads(path.read_text())["accounts"]["carol"] == {"servers": {"*": "viewer"}}
    accounts.update("alice", "alicia", "")
    stored = json.loads(path.read_text())["accounts"]
    assert "alice" not in stored and stored["alicia"] == {"servers": {"a": "operator"}}
    accounts.delete("carol")
    assert "carol" not in json.loads(path.read_text())["accounts"]
    with pytest.raises(ApiError) as refused:
        accounts.delete("admin")
    assert refused.value.status == 409 and users.exists("admin")
    with pytest.raises(ApiError) as refused:
        accounts.delete("nobody")
    assert refused.value.status == 404


def test_account_changes_while_off_write_no_file(files):
    users, access, path = files
    accounts = Accounts(users, access)
    accounts.create("carol", "carol-password")
    accounts.update("carol", "caroline", "")
    accounts.delete("caroline")
    accounts.delete("admin")  # off: Octyne lets the last account go
    assert not path.exists()


def test_hand_edits_are_picked_up_and_a_broken_one_keeps_the_last_good_rules(files, caplog):
    users, access, path = files
    AccessStore.POLL_SECONDS = 0.05
    try:
        access.start_watching()
        path.write_text(json.dumps({"accounts": {"alice": {"servers": {"lobby": "viewer"}}}}))
        wait_until(lambda: access.snapshot.enabled)
        assert access.snapshot.permissions("alice", "lobby") == frozenset(BUILT_IN_ROLES["viewer"])
        with caplog.at_level(logging.ERROR):
            path.write_text('{"accounts": {"alice": {"servers": {"lobby": "nope"}}}, "extra": 1}')
            wait_until(lambda: "keeping the previous access rules" in caplog.text)
        assert "extra: unknown key" in caplog.text
        assert access.snapshot.permissions("alice", "lobby") == frozenset(BUILT_IN_ROLES["viewer"])
        path.unlink()
        wait_until(lambda: not access.snapshot.enabled)
    finally:
        AccessStore.POLL_SECONDS = 1.0


def test_listeners_see_the_old_and_the_new_rules(files):
    users, access, _ = files
    seen = []
    access.on_change(lambda old, new: seen.append((old.enabled, new.permissions("alice", "lobby"))))
    access.patch({"accounts": {"alice": {"servers": {"lobby": ["view"]}}}}, users.names())
    assert seen == [(False, frozenset({"view"}))]
