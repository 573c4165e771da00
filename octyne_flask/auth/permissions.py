"""Permission names and the built-in roles (api.md §11, extensions.md §A).

Endpoints name a permission the Octyne way: a global name (``config.view``)
or a per-server one written ``server{id}.<name>`` (``server{id}.files.view``).
The access model (``auth/access.py``) decides who holds which.
"""

GLOBAL_PERMISSIONS = (
    "config.view", "config.edit", "config.reload",
    "accounts.view", "accounts.create", "accounts.update", "accounts.delete",
    "access.view", "access.edit",
)

SERVER_PERMISSIONS = (
    "view", "control", "console.view", "console.write", "files.view", "files.download",
    "files.upload", "files.modify", "files.createFolder", "files.compress", "files.decompress",
    "backups.view", "backups.create", "backups.restore", "backups.delete", "schedules.view", "schedules.run",
)

BUILT_IN_ROLES = {
    "operator": SERVER_PERMISSIONS,
    "viewer": ("view", "console.view", "files.view", "files.download", "backups.view", "schedules.view"),
}


def split_permission(template: str) -> tuple[str, bool]:
    """An endpoint's permission as (name, per server): ``"server{id}.files.view"`` -> ``("files.view", True)``,
    ``"config.view"`` -> ``("config.view", False)``.

    An unknown name is a bug in the endpoint: ValueError, raised when its module is imported.
    """
    server_template = "server{id}."
    if template.startswith(server_template) and template[len(server_template):] in SERVER_PERMISSIONS:
        return template[len(server_template):], True
    if template in GLOBAL_PERMISSIONS:
        return template, False
    raise ValueError(f"endpoint names an unknown permission {template!r}")
