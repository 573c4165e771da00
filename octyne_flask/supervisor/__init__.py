"""Managed apps: processes, their consoles and stats, the daemon lock. Plain Python, no Flask."""

from .cgroups import cgroup_tree
from .console import ConsoleLog, Subscriber
from .lock import AppsGuard, DaemonLockError, acquire_daemon_lock, apps_guard, instance_name
from .process import CRASHED, RUNNING, STOPPED, ManagedProcess, ServerStats
from .stats import total_memory
from .supervisor import Supervisor

__all__ = [
    "CRASHED", "RUNNING", "STOPPED", "AppsGuard", "ConsoleLog", "DaemonLockError", "ManagedProcess",
    "ServerStats", "Subscriber", "Supervisor", "acquire_daemon_lock", "apps_guard", "cgroup_tree",
    "instance_name", "total_memory",
]
