"""Managed apps: processes, their consoles and stats, the daemon lock. Plain Python, no Flask.

The names below are loaded from their modules on first use: the gunicorn master
takes the daemon lock (``lock``) and picks the cgroups (``cgroups``) before
binding, and must not load the rest (psutil, the consoles, the history) only to
supervise the worker.
"""

from importlib import import_module

_MODULE_OF = {
    "cgroup_tree": "cgroups",
    "ConsoleLog": "console", "Subscriber": "console",
    "AppsGuard": "lock", "DaemonLockError": "lock", "acquire_daemon_lock": "lock", "apps_guard": "lock",
    "instance_name": "lock",
    "CRASHED": "process", "RUNNING": "process", "STOPPED": "process", "ManagedProcess": "process",
    "ServerStats": "process",
    "total_memory": "stats",
    "Supervisor": "supervisor",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
