"""Permission names, and the policy that decides them.

Octyne 1.4 grants every permission to every user (and to ``@local``); the
names exist so that a real permission engine can replace ``AllowEveryone``
without touching any endpoint.
"""

GLOBAL_PERMISSIONS = (
    "config.view", "config.edit", "config.reload",
    "accounts.view", "accounts.create", "accounts.update", "accounts.delete",
)

SERVER_PERMISSIONS = (
    "view", "control", "console.view", "console.write", "files.view", "files.modify",
    "files.download", "files.upload", "files.createFolder", "files.compress", "files.decompress",
)


def is_known_permission(permission: str) -> bool:
    """Whether ``permission`` is one of the names above (catches a typo in an endpoint at once)."""
    if permission in GLOBAL_PERMISSIONS:
        return True
    return permission.startswith("server") and any(
        permission.endswith("." + name) and len(permission) > len("server.") + len(name)
        for name in SERVER_PERMISSIONS)


def server_permission(server: str, name: str) -> str:
    """The full name of a per-server permission, e.g. ``serverlobby.files.view``."""
    return f"server{server}.{name}"


class AllowEveryone:
    """The Octyne 1.4 policy: every user may do everything."""

    def allows(self, user: str, permission: str) -> bool:
        return True
