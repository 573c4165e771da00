"""Managed apps: processes, their consoles and stats, the daemon lock. Plain Python, no Flask."""

from .console import ConsoleLog, Subscriber
from .lock import AppsGuard, DaemonLockError, acquire_daemon_lock, apps_guard
from .process import CRASHED, RUNNING, STOPPED, ManagedProcess, ServerStats
from .stats import total_memory
from .supervisor import Supervisor

__all__ = [
    "CRASHED", "RUNNING", "STOPPED", "AppsGuard", "ConsoleLog", "DaemonLockError", "ManagedProcess",
    "ServerStats", "Subscriber", "Supervisor", "acquire_daemon_lock", "apps_guard", "total_memory",
]
