"""The command line, with exactly Octyne's flags so existing scripts and service files keep working."""

from __future__ import annotations

import logging
import sys

from octyne_flask.config import ConfigError, load_config
from octyne_flask.version import API_VERSION, IMPLEMENTATION, IMPLEMENTATION_VERSION

USAGE = """Usage: octyne [--version|-v] [--help|-h] [--config=<path>] [--users=<path>] [--access=<path>]

  --config=<path>  config file (HuJSON), default config.json in the working directory
  --users=<path>   users file, default users.json in the working directory
  --access=<path>  access control file, default access.json beside the users file
  --version, -v    print the version
  --help, -h       print this help
"""


class UsageError(ValueError):
    pass


def parse_arguments(arguments: list[str]) -> dict:
    options = {"config": "config.json", "users": "users.json", "access": None, "version": False, "help": False}
    remaining = list(arguments)
    while remaining:
        argument = remaining.pop(0)
        if argument in ("--version", "-v"):
            options["version"] = True
        elif argument in ("--help", "-h"):
            options["help"] = True
        elif argument.startswith(("--config=", "--users=", "--access=")):
            name, _, value = argument[2:].partition("=")
            options[name] = value
        elif argument in ("--config", "--users", "--access") and remaining:
            options[argument[2:]] = remaining.pop(0)
        else:
            raise UsageError(f"unknown argument: {argument}")
    return options


def configure_logging() -> None:
    """The daemon's own log lines (reloads, Redis outages, ...) on stderr; also used by deploy/gunicorn.conf.py."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(arguments: list[str] | None = None) -> int:
    try:
        options = parse_arguments(sys.argv[1:] if arguments is None else arguments)
    except UsageError as error:
        print(f"octyne: {error}\n\n{USAGE}", file=sys.stderr, end="")
        return 2
    if options["help"]:
        print(USAGE, end="")
        return 0
    if options["version"]:
        print(f"octyne version {API_VERSION} ({IMPLEMENTATION} {IMPLEMENTATION_VERSION})")
        return 0
    configure_logging()
    try:
        config, _ = load_config(options["config"])
    except ConfigError as error:
        print(f"octyne: invalid config: {error}", file=sys.stderr)
        return 1
    return serve(config, options["config"], options["users"], options["access"])


class StartupError(RuntimeError):
    """The daemon cannot start; the message says why in one line."""


def prepare_to_serve(config, config_path: str, users_path: str) -> int:
    """Everything checked or created before anything binds; shared with deploy/gunicorn.conf.py.

    Returns the daemon lock's fd, which must stay open (the worker inherits it) until the daemon exits.
    The malloc settings made here are inherited by the worker too.
    """
    from octyne_flask.allocator import tune_malloc
    from octyne_flask.auth.first_user import ensure_users_file
    from octyne_flask.serving import check_tls_files, isolation_banner
    from octyne_flask.supervisor import DaemonLockError, acquire_daemon_lock, cgroup_tree, instance_name

    try:
        check_tls_files(config)  # a bad pair must not leave anything listening
        lock = acquire_daemon_lock(config_path)
    except (ValueError, DaemonLockError) as error:
        raise StartupError(str(error)) from None
    # SFTP (paramiko) and Redis are loaded only when enabled: this process only supervises the worker.
    if config.sftp.enabled:
        from octyne_flask.sftp.service import SftpUnavailable, check_before_start

        try:
            check_before_start(config.sftp, users_path)  # the host key made here, so the banner can show it
        except SftpUnavailable as error:
            raise StartupError(str(error)) from None
    if config.redis.enabled:
        from octyne_flask.cluster.announce import NodeNameTaken, ensure_name_free

        try:
            ensure_name_free(config.redis.url, config.node.name)
        except NodeNameTaken as error:
            raise StartupError(str(error)) from None
    tune_malloc()
    message = ensure_users_file(users_path)
    if message:
        print(message, flush=True)
    # Chosen here, in the process that forks the worker, so the worker inherits the same choice.
    print("\n".join(isolation_banner(config, cgroup_tree(instance_name(config_path)))), flush=True)
    return lock


def serve(config, config_path: str, users_path: str, access_path: str | None = None) -> int:
    """Check and prepare, then run gunicorn until stopped."""
    from octyne_flask.serving import EmbeddedGunicorn

    try:
        prepare_to_serve(config, config_path, users_path)
    except StartupError as error:
        print(f"octyne: {error}", file=sys.stderr)
        return 1
    EmbeddedGunicorn(config_path, users_path, config, access_path).run()
    return 0
