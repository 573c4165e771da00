"""The access model of extensions.md §A as one immutable snapshot, and the pure rules that change it.

Every check asks one question, ``AccessSnapshot.permissions(account, server)``,
answered from tables built once per document, so a request pays a dict lookup.
A new document (PATCH /access, a hand edit, Redis) builds a new snapshot that
replaces the old one whole; nothing here does I/O.

Document (the format of ``access.json``)::

    {"roles": {"<role>": ["<server permission>", ...]},
     "accounts": {"<account>": {"admin": bool, "permissions": ["<global>", ...],
                                "servers": {"<server>" | "*": "<role>" | ["<permission or role>", ...]}}},
     "defaults": {"servers": {...}}}
"""

from __future__ import annotations

import copy
import json
import re
from typing import Collection, Iterable, Mapping

from octyne_flask.auth.permissions import BUILT_IN_ROLES, GLOBAL_PERMISSIONS, SERVER_PERMISSIONS
from octyne_flask.auth.users import LOCAL_USER, username_problem

EVERY_SERVER = "*"
LAST_ADMINISTRATOR = "At least one administrator must remain!"
ALL_GLOBAL = frozenset(GLOBAL_PERMISSIONS)
ALL_SERVER = frozenset(SERVER_PERMISSIONS)
NOTHING: frozenset = frozenset()
_ROLE_NAME = re.compile(r"[A-Za-z0-9_\-]+")
_DOCUMENT_KEYS = ("roles", "accounts", "defaults")
_ENTRY_KEYS = ("admin", "permissions", "servers")


class AccessError(ValueError):
    """A document or change that cannot be used; ``key`` is the dotted path of the offending key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key = key


def default_document() -> dict:
    return {"roles": {}, "accounts": {}, "defaults": {"servers": {}}}


def first_document(accounts: Collection[str]) -> dict:
    """The document access control starts from: every existing account an administrator (Octyne 1.4)."""
    document = default_document()
    document["accounts"] = {name: {"admin": True} for name in accounts}
    return document


# -- validation --------------------------------------------------------------------------------

def validate_document(document) -> dict:
    """Check a whole document; returns a canonical deep copy (every top-level key present).

    Server names are not checked against the config: grants may name servers added later.
    """
    if not isinstance(document, dict):
        raise AccessError("(document)", "must be a JSON object")
    for key in document:
        if key not in _DOCUMENT_KEYS:
            raise AccessError(key, "unknown key")
    roles = _object(document.get("roles", {}), "roles")
    for name, permissions in roles.items():
        _check_role(name, permissions)
    known_roles = {**BUILT_IN_ROLES, **roles}
    accounts = _object(document.get("accounts", {}), "accounts")
    for name, entry in accounts.items():
        if username_problem(name):
            raise AccessError(f"accounts.{name}", "not a valid account name")
        _check_entry(entry, f"accounts.{name}", known_roles)
    defaults = document.get("defaults", {"servers": {}})
    _check_entry(defaults, "defaults", known_roles)
    return copy.deepcopy({"roles": roles, "accounts": accounts, "defaults": defaults})


def _object(value, key: str) -> dict:
    if not isinstance(value, dict):
        raise AccessError(key, "must be an object")
    return value


def _check_role(name: str, permissions) -> None:
    key = f"roles.{name}"
    if name in BUILT_IN_ROLES:
        raise AccessError(key, "built-in roles cannot be redefined")
    if not _ROLE_NAME.fullmatch(name) or name in ALL_SERVER:
        raise AccessError(key, "a role name is letters, digits, - and _, and not a permission name")
    if not isinstance(permissions, list):
        raise AccessError(key, "must be a list of server permissions")
    for permission in permissions:
        if permission not in ALL_SERVER:
            raise AccessError(key, f"unknown server permission {permission!r}")


def _check_entry(entry, key: str, roles: Mapping[str, Collection[str]]) -> None:
    _object(entry, key)
    for field in entry:
        if field not in _ENTRY_KEYS:
            raise AccessError(f"{key}.{field}", "unknown key")
    if not isinstance(entry.get("admin", False), bool):
        raise AccessError(f"{key}.admin", "must be true or false")
    permissions = entry.get("permissions", [])
    if not isinstance(permissions, list):
        raise AccessError(f"{key}.permissions", "must be a list of global permissions")
    for permission in permissions:
        if permission not in ALL_GLOBAL:
            raise AccessError(f"{key}.permissions", f"unknown global permission {permission!r}")
    for server, grant in _object(entry.get("servers", {}), f"{key}.servers").items():
        _check_grant(grant, f"{key}.servers.{server}", roles)


def _check_grant(grant, key: str, roles: Mapping[str, Collection[str]]) -> None:
    if isinstance(grant, str):
        if grant not in roles:
            raise AccessError(key, f"unknown role {grant!r} (a list such as [\"view\"] grants single permissions)")
        return
    if not isinstance(grant, list):
        raise AccessError(key, "must be a role name or a list of permission and role names")
    for name in grant:
        if name not in ALL_SERVER and name not in roles:
            raise AccessError(key, f"unknown permission or role {name!r}")


# -- changes -----------------------------------------------------------------------------------

def patched(document: dict, body: dict, accounts: Collection[str]) -> dict:
    """``document`` with a PATCH /access body applied, validated as a whole.

    ``roles``: name -> list, or null to delete; ``defaults``: the new defaults entry;
    ``accounts``: name -> whole new entry, or null to reset it to the (new) defaults.
    """
    for key in body:
        if key not in _DOCUMENT_KEYS:
            raise AccessError(key, "unknown key")
    changed = copy.deepcopy(document)
    for name, permissions in _object(body.get("roles", {}), "roles").items():
        if name in BUILT_IN_ROLES:
            raise AccessError(f"roles.{name}", "built-in roles cannot be redefined")
        if permissions is None:
            if name not in changed["roles"]:
                raise AccessError(f"roles.{name}", "no such role")
            del changed["roles"][name]
        else:
            changed["roles"][name] = permissions
    if "defaults" in body:
        changed["defaults"] = body["defaults"]
    for name, entry in _object(body.get("accounts", {}), "accounts").items():
        if name not in accounts:
            raise AccessError(f"accounts.{name}", "no such account")
        changed["accounts"][name] = copy.deepcopy(changed["defaults"]) if entry is None else entry
    return validate_document(changed)


def with_account_renamed(document: dict, old: str, new: str) -> dict:
    changed = copy.deepcopy(document)
    entry = changed["accounts"].pop(old, None)
    if entry is None:
        changed["accounts"].pop(new, None)  # a stale entry must not outlive a rename onto its name
    else:
        changed["accounts"][new] = entry
    return changed


def with_account_removed(document: dict, name: str) -> dict:
    changed = copy.deepcopy(document)
    changed["accounts"].pop(name, None)
    return changed


def with_defaults_for(document: dict, name: str) -> dict:
    """A new account gets a copy of ``defaults`` (overwriting any stale entry of that name)."""
    changed = copy.deepcopy(document)
    changed["accounts"][name] = copy.deepcopy(changed["defaults"])
    return changed


# -- resolution --------------------------------------------------------------------------------

class Grants:
    """What one account entry grants, resolved: server entries already include the ``*`` entry."""

    __slots__ = ("admin", "global_permissions", "every_server", "servers")

    def __init__(self, entry: dict, roles: Mapping[str, frozenset]):
        self.admin = entry.get("admin") is True
        self.global_permissions = frozenset(entry.get("permissions", ()))
        expanded = {server: _expand(grant, roles) for server, grant in entry.get("servers", {}).items()}
        self.every_server = expanded.pop(EVERY_SERVER, NOTHING)
        self.servers = {server: permissions | self.every_server for server, permissions in expanded.items()}


def _expand(grant, roles: Mapping[str, frozenset]) -> frozenset:
    names = [grant] if isinstance(grant, str) else grant
    permissions: set[str] = set()
    for name in names:
        permissions |= roles.get(name, {name})
    return frozenset(permissions)


class AccessSnapshot:
    """One access document, resolved; ``document=None`` is access control off (Octyne 1.4: all may do all)."""

    def __init__(self, document: dict | None):
        self.enabled = document is not None
        self._document = copy.deepcopy(document)
        rules = self._document if self.enabled else default_document()
        roles = {**BUILT_IN_ROLES, **rules["roles"]}
        self._roles = {name: frozenset(permissions) for name, permissions in roles.items()}
        self._grants = {name: Grants(entry, self._roles) for name, entry in rules["accounts"].items()}
        self._defaults = Grants(rules["defaults"], self._roles)

    def permissions(self, account: str, server: str | None = None) -> frozenset:
        """The permissions ``account`` holds on ``server``, or its global ones when ``server`` is None.

        Off, ``@local`` and administrators hold every permission. An account without an entry
        (added to users.json by hand) has ``defaults``.
        """
        if not self.enabled or account == LOCAL_USER:
            return ALL_GLOBAL if server is None else ALL_SERVER
        grants = self._grants.get(account, self._defaults)
        if grants.admin:
            return ALL_GLOBAL if server is None else ALL_SERVER
        if server is None:
            return grants.global_permissions
        return grants.servers.get(server, grants.every_server)

    def is_admin(self, account: str) -> bool:
        return not self.enabled or account == LOCAL_USER or self._grants.get(account, self._defaults).admin

    def document(self) -> dict:
        """A copy of the document (access control on only)."""
        return copy.deepcopy(self._document)

    def serialized(self) -> str:
        """The document as JSON text, ``null`` when access control is off."""
        return json.dumps(self._document, sort_keys=True, separators=(",", ":"))

    def roles(self) -> dict[str, list[str]]:
        """Built-in and custom roles, each expanded to its server permissions in a stable order."""
        return {name: _in_order(permissions, SERVER_PERMISSIONS) for name, permissions in self._roles.items()}

    def entry(self, account: str) -> dict:
        """The account's entry as stored (``defaults`` when it has none; ``{"admin": true}`` while off)."""
        if not self.enabled:
            return {"admin": True}
        return copy.deepcopy(self._document["accounts"].get(account, self._document["defaults"]))

    def defaults(self) -> dict:
        return copy.deepcopy(self._document["defaults"]) if self.enabled else {"servers": {}}

    def has_administrator(self, accounts: Collection[str]) -> bool:
        """Whether one of ``accounts`` (the existing ones) is an administrator."""
        return any(self.is_admin(name) for name in accounts)

    def overview(self, accounts: Iterable[str]) -> dict:
        """The body of GET /access: every account's entry, the roles expanded, every permission name."""
        return {"enabled": self.enabled, "roles": self.roles(),
                "permissions": {"global": list(GLOBAL_PERMISSIONS), "server": list(SERVER_PERMISSIONS)},
                "accounts": {name: self.entry(name) for name in accounts}, "defaults": self.defaults()}

    def summary(self, account: str, servers: Iterable[str]) -> dict:
        """The body of GET /access/me: what ``account`` may do, on the ``servers`` where it may do anything."""
        on_servers = {server: _in_order(self.permissions(account, server), SERVER_PERMISSIONS) for server in servers}
        return {"username": account, "admin": self.is_admin(account),
                "permissions": _in_order(self.permissions(account), GLOBAL_PERMISSIONS),
                "servers": {server: permissions for server, permissions in on_servers.items() if permissions}}


def _in_order(permissions: frozenset, order: tuple[str, ...]) -> list[str]:
    return [name for name in order if name in permissions]


ACCESS_OFF = AccessSnapshot(None)
