"""The config file: JSON5 text in (Octyne's HuJSON is a subset), a frozen ``Config`` out.

Every key is declared once in ``SCHEMA`` (name, type, default, meaning, and
for numbers the allowed range); the parser, the validation messages and the
README's config table all come from that one declaration. Octyne's own keys
keep Octyne's names and defaults; our extensions are named in the same
camelCase style. Unknown keys are ignored, so one file serves both daemons.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import shlex
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import json5

from octyne_flask.runas import RunAs, RunAsError, resolve
from octyne_flask.schedules.entries import (BackupSettings, EntryError, Schedule, parse_backups, parse_schedules,
                                            parse_timezone)


class ConfigError(ValueError):
    """The config text cannot be used; the message names the key or the position."""


@dataclass(frozen=True)
class Key:
    """One config key: where it sits, what it holds, its default and its meaning."""

    path: str
    kind: str  # "bool", "int", "number", "size", "string", "object", "list"
    default: Any
    doc: str
    octyne: bool = True  # False for our own extensions
    bounds: tuple | None = None  # (lowest, highest) allowed, inclusive; required for "int" and "number"

    def __post_init__(self):
        if (self.kind in _NUMERIC) != (self.bounds is not None):
            raise TypeError(f"config key {self.path}: bounds go with, and only with, a numeric kind")

    def check(self, value: Any, where: str = "") -> Any:
        """``value`` if it is of this key's kind (and in range, for numbers); else ConfigError naming the key."""
        if not _KIND_CHECKS[self.kind](value):
            raise ConfigError(f"'{where}{self.path}' must be {_KIND_NAMES[self.kind]}")
        if self.kind == "size":
            value = size_in_bytes(value)
        # A comparison is False for NaN and refuses infinities, without converting huge integers to float.
        if self.bounds is not None and not self.bounds[0] <= value <= self.bounds[1]:
            low, high = self.bounds
            raise ConfigError(f"'{where}{self.path}' must be {_KIND_NAMES[self.kind]} from {low} to {high}")
        return value


NO_LIMIT = object()  # the default of a limit: absent, the value is None ("none" in the README)
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def size_in_bytes(value: Any) -> int | None:
    """Bytes from an integer or a string like ``"128M"`` (binary K/M/G); None if it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = re.fullmatch(r"([0-9]{1,20})([KMG]?)", value.strip().upper()) if isinstance(value, str) else None
    return int(found[1]) * _SIZE_UNITS[found[2]] if found else None


def size_text(size: int) -> str:
    """``size`` bytes the way the config writes it: the largest binary suffix that divides it."""
    for suffix in ("G", "M", "K"):
        if size % _SIZE_UNITS[suffix] == 0:
            return f"{size // _SIZE_UNITS[suffix]}{suffix}"
    return str(size)


_NUMERIC = ("int", "number", "size")
_KIND_CHECKS = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "size": lambda v: size_in_bytes(v) is not None,
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}
_KIND_NAMES = {"bool": "a boolean", "int": "an integer", "number": "a number",
               "size": "a size (bytes, or a number with a K, M or G suffix)",
               "string": "a string", "object": "an object", "list": "a list"}

_PORT = (1, 65535)
_DAY = 24 * 60 * 60  # seconds: the longest wait any key may ask for
_MIB = 1024 * 1024
_TB = 10**12
_GIB = 1024 * _MIB

SCHEMA: tuple[Key, ...] = (
    Key("port", "int", 42069, "TCP port of the API (and the Unix socket's default name).", bounds=_PORT),
    Key("webUI.enabled", "bool", True, "Serve the web dashboard and the API under `/api` on a second port."),
    Key("webUI.port", "int", 7877, "Port of the web dashboard.", bounds=_PORT),
    Key("webUI.directory", "string", "", "Folder of a static dashboard export to serve instead of the built-in dashboard.", False),
    Key("unixSocket.enabled", "bool", True, "Serve the API on a Unix socket without authentication (user `@local`)."),
    Key("unixSocket.location", "string", "", "Socket path; empty means `$TMPDIR/octyne.sock.<port>` (`/tmp` without `TMPDIR`)."),
    Key("unixSocket.group", "string", "", "Group that may use the socket (mode 0660); empty means owner only (0600)."),
    Key("unixSocket.accounts", "object", {}, "Unix user name or uid -> account: such a socket peer acts as that account; when non-empty, unlisted peers other than root and the daemon's own user are refused (see Access control).", False),
    Key("redis.enabled", "bool", False, "Keep users and tokens in Redis so several nodes share logins."),
    Key("redis.url", "string", "redis://localhost", "Redis connection URL."),
    Key("redis.role", "string", "", "`primary` (mirrors users.json into Redis, serves logins) or `secondary` (validates tokens only)."),
    Key("node.name", "string", "", "This node's name in the cluster view (letters, digits, `.`, `_`, `-`; unique among live nodes); empty means the host name, plus `-<port>` when `port` is not 42069.", False),
    Key("node.url", "string", "", "The API URL a browser uses for this node (e.g. `https://b.example.com/api`); empty: not advertised.", False),
    Key("nodes", "object", {}, "Nodes that do not announce themselves (Go Octyne): name -> API URL, listed by `GET /nodes` with their reachability.", False),
    Key("https.enabled", "bool", False, "Serve the API and web-UI ports over TLS."),
    Key("https.cert", "string", "", "Path of the PEM certificate (chain)."),
    Key("https.key", "string", "", "Path of the PEM private key."),
    Key("logging.enabled", "bool", True, "Write the action log."),
    Key("logging.path", "string", "logs", "Folder of the action log (`octyne.log`, rotated at about 1 MB)."),
    Key("logging.actions", "object", {}, "Map of action name to `false` to silence that action."),
    Key("trustedProxies", "list", ["127.0.0.1", "::1"], "Peers (IPs or CIDR ranges) whose `X-Forwarded-For` is believed.", False),
    Key("threads", "int", 512, "Request threads; every open console holds one.", False, (4, 10_000)),
    Key("stopGracePeriod", "number", 10, "Seconds between SIGTERM and SIGKILL when the daemon stops an app.", False, (0, _DAY)),
    Key("console.scrollbackLines", "int", 2500, "Lines of scrollback sent to a console on connect.", False, (1, 1_000_000)),
    Key("console.scrollbackBytes", "int", 2 * _MIB, "Bytes of scrollback kept per server.", False, (_MIB, 1024 * _MIB)),
    Key("console.maxLagBytes", "int", 16 * _MIB, "How far a console client may fall behind before it is cut off.", False,
        (_MIB, 4096 * _MIB)),
    Key("console.idleTimeout", "number", 30, "Seconds a console client may stay silent before it is disconnected.", False,
        (0.1, _DAY)),
    Key("console.history.enabled", "bool", True,
        "Keep every console line on disk (`console.history.path`), searchable and resumable; read at start.", False),
    Key("console.history.path", "string", "console-history",
        "Folder of the console history, one folder per server (relative like `logging.path`); read at start.", False),
    Key("console.history.maxBytes", "int", 64 * _MIB, "Disk space of one server's console history; oldest lines go first.",
        False, (_MIB, _TB)),
    Key("console.history.maxAgeDays", "int", 30, "Days a console line is kept (also for servers removed from the config).",
        False, (1, 36_500)),
    Key("files.uploadLimit", "int", 5_000_000_000, "Largest upload in bytes (413 beyond it).", False, (1, _TB)),
    Key("files.decompressLimit", "int", 20_000_000_000, "Most bytes one decompression may write (bounded by free disk too).", False,
        (1, _TB)),
    Key("timezone", "string", "", "IANA time zone of every schedule's `cron` (e.g. `Europe/Paris`); empty means the system's.", False),
    Key("sftp.enabled", "bool", False, "Serve the servers' files over SFTP (login `<account>.<server>`).", False),
    Key("sftp.port", "int", 2022, "TCP port of the SFTP server.", False, _PORT),
    Key("sftp.hostKey", "string", "", "Host key file (ed25519, OpenSSH format), created 0600 when missing; "
        "empty means `sftp_host_ed25519_key` beside the users file.", False),
    Key("sftp.authorizedKeys", "string", "", "File of `<account>: <OpenSSH public key>` lines that may log in "
        "with that key instead of the password; empty means passwords only.", False),
    Key("sftp.maxSessions", "int", 32, "Logged-in SFTP connections at once; more are refused.", False, (1, 10_000)),
    Key("sftp.idleTimeout", "number", 600, "Seconds an SFTP connection may stay without a request before it is closed.",
        False, (1, _DAY)),
)

SERVER_SCHEMA: tuple[Key, ...] = (
    Key("enabled", "bool", True, "Start the app when the daemon starts."),
    Key("directory", "string", None, "Working directory of the app; file paths are relative to it."),
    Key("command", "string", None, "Command line (split like a POSIX shell, never run by one)."),
    Key("stop.command", "string", "", "Console input that stops the app gracefully, written on TERM before SIGTERM.", False),
    Key("stop.timeout", "number", 30, "Seconds to wait after the stop command before sending SIGTERM.", False, (0, _DAY)),
    Key("env", "object", {}, "Environment variables for the app (names to strings), laid over the inherited ones.", False),
    Key("inheritEnv", "bool", True, "Start from the daemon's environment; `false`: from `PATH`, `HOME` and `LANG` only "
        "(and the daemon's `OCTYNE_FLASK_APPS` mark).", False),
    Key("user", "string", "", "Run the app as this user (name or id; its groups and `HOME`). Needs a root daemon.", False),
    Key("group", "string", "", "Run the app with this primary group (default: the user's). Needs a root daemon.", False),
    Key("limits.memory", "size", NO_LIMIT, "Memory limit of the app's cgroup (`128M` = 134217728 bytes).", False,
        (4 * _MIB, 16384 * _GIB)),
    Key("limits.cpu", "number", NO_LIMIT, "CPU limit of the app's cgroup, in cores (`1.5`).", False, (0.01, 1024)),
    Key("limits.pids", "int", NO_LIMIT, "Most processes and threads in the app's cgroup.", False, (1, 4_194_304)),
    Key("limits.openFiles", "int", NO_LIMIT, "Open-file limit (`RLIMIT_NOFILE`, soft and hard) of the app.", False,
        (16, 1_048_576)),
    Key("schedules", "list", [], "Timed actions: `{name, cron, action, command?, warnings?}` (see Schedules and backups).", False),
    Key("backups.path", "string", "", "Folder of this server's backups, outside its directory; empty means `backups/<name>`.", False),
    Key("backups.keep", "int", 7, "Backups kept after each success (0 = no bound); the oldest go first.", False, (0, 1_000_000)),
    Key("backups.maxBytes", "int", 0, "Total bytes of backups kept after each success (0 = no bound).", False, (0, 1000 * _TB)),
    Key("backups.exclude", "list", [], "gitignore-style patterns, relative to the directory, left out of backups.", False),
    Key("backups.before", "list", [], "Console commands typed before a backup (e.g. `save-off`, `save-all flush`).", False),
    Key("backups.settle", "number", 0, "Seconds between the `before` commands and the archive.", False, (0, _DAY)),
    Key("backups.after", "list", [], "Console commands typed after a backup, whether it succeeded or not.", False),
)

@dataclass(frozen=True)
class StopConfig:
    command: str
    timeout: float


@dataclass(frozen=True)
class Limits:
    """Resource limits of one app; None means no limit."""

    memory: int | None = None  # bytes
    cpu: float | None = None  # cores
    pids: int | None = None
    open_files: int | None = None

    def cgroup_limits(self) -> dict[str, float]:
        """The limits a cgroup applies (openFiles is an rlimit), by config name."""
        named = {"memory": self.memory, "cpu": self.cpu, "pids": self.pids}
        return {name: value for name, value in named.items() if value is not None}


@dataclass(frozen=True)
class ServerConfig:
    name: str
    enabled: bool
    directory: str
    command: str
    stop: StopConfig | None = None
    env: dict = field(default_factory=dict, hash=False)
    inherit_env: bool = True
    run_as: RunAs | None = None
    limits: Limits = Limits()
    schedules: tuple[Schedule, ...] = ()
    backups: BackupSettings | None = None

    def argv(self) -> list[str]:
        """The command split into program and arguments, like a shell would, without one."""
        return shlex.split(self.command)


@dataclass(frozen=True)
class WebUIConfig:
    enabled: bool
    port: int
    directory: str


@dataclass(frozen=True)
class UnixSocketConfig:
    enabled: bool
    location: str
    group: str
    accounts: dict = field(default_factory=dict, hash=False)  # peer uid -> account name


@dataclass(frozen=True)
class RedisConfig:
    enabled: bool
    url: str
    role: str


@dataclass(frozen=True)
class NodeConfig:
    name: str
    url: str
    static: tuple  # (name, url) of every node listed under ``nodes``


@dataclass(frozen=True)
class HttpsConfig:
    enabled: bool
    cert: str
    key: str


@dataclass(frozen=True)
class LoggingConfig:
    enabled: bool
    path: str
    actions: dict = field(hash=False)


@dataclass(frozen=True)
class HistoryConfig:
    enabled: bool
    path: str
    max_bytes: int
    max_age_days: int


@dataclass(frozen=True)
class ConsoleConfig:
    scrollback_lines: int
    scrollback_bytes: int
    max_lag_bytes: int
    idle_timeout: float
    history: HistoryConfig


@dataclass(frozen=True)
class FilesConfig:
    upload_limit: int
    decompress_limit: int


@dataclass(frozen=True)
class SftpConfig:
    enabled: bool
    port: int
    host_key: str  # "" means beside the users file
    authorized_keys: str  # "" means passwords only
    max_sessions: int
    idle_timeout: float


@dataclass(frozen=True)
class Config:
    port: int
    web_ui: WebUIConfig
    unix_socket: UnixSocketConfig
    redis: RedisConfig
    node: NodeConfig
    https: HttpsConfig
    logging: LoggingConfig
    trusted_proxies: tuple
    threads: int
    stop_grace_period: float
    console: ConsoleConfig
    files: FilesConfig
    sftp: SftpConfig
    servers: dict = field(hash=False)
    raw: dict = field(hash=False, repr=False)  # the parsed document, for the action log
    timezone: Any = field(default=None, hash=False)  # the tzinfo every cron is evaluated in

    def socket_path(self) -> str:
        """Where the Unix socket lives: the configured location or Octyne's default."""
        if self.unix_socket.location:
            return self.unix_socket.location
        return os.path.join(os.environ.get("TMPDIR") or "/tmp", f"octyne.sock.{self.port}")


def parse_document(text: str) -> dict:
    """Parse JSON5 text (HuJSON, Octyne's format, is a subset) into a dict, or raise ConfigError naming the position."""
    if not text.strip():
        raise ConfigError("the config is empty")
    try:
        document = json5.loads(text)
    except ValueError as error:
        raise ConfigError(f"syntax error: {_with_line_and_column(error)}") from None
    if not isinstance(document, dict):
        raise ConfigError("the config must be a JSON object")
    return _whole_characters(document)


SURROGATE = re.compile("[\ud800-\udfff]")


def _whole_characters(value: Any) -> Any:
    """Strings with each escaped surrogate pair as the one character it stands for.

    json5 leaves ``"\\ud83d\\ude00"`` (how Python's ``json.dumps`` writes an emoji) as two lone
    halves, which no file name or log can take. A half without its partner becomes U+FFFD,
    as Go's JSON decoder (and so Octyne) reads it.
    """
    if isinstance(value, str):
        if not SURROGATE.search(value):
            return value
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, dict):
        return {_whole_characters(key): _whole_characters(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_characters(item) for item in value]
    return value


def _with_line_and_column(error: ValueError) -> str:
    """json5 says ``<string>:3 Unexpected "}" at column 7``; say ``Unexpected "}": line 3 column 7``."""
    found = re.fullmatch(r"<string>:(\d+) (.*) at column (\d+)", str(error))
    if not found:
        return str(error)
    line, problem, column = found.groups()
    return f"{problem}: line {line} column {column}"


_TOP_KEYS = {key.path: key for key in SCHEMA}
_SERVER_KEYS = {key.path: key for key in SERVER_SCHEMA}
_SERVERS = Key("servers", "object", {}, "The apps by name; each entry holds the `servers.<name>` keys.")


def _value(document: dict, key: Key, where: str = "") -> Any:
    """The value of ``key`` in ``document`` (``where`` prefixes its path in messages), checked, or its default."""
    node: Any = document
    parts = key.path.split(".")
    for depth, part in enumerate(parts):
        if node is None:
            break
        if not isinstance(node, dict):
            parent = where + ".".join(parts[:depth])
            raise ConfigError(f"'{parent}' must be an object")
        node = node.get(part)
    if node is None:
        if key.default is None:
            raise ConfigError(f"'{where}{key.path}' is required")
        return None if key.default is NO_LIMIT else key.default
    return key.check(node, where)


def _parse_server(name: str, entry: Any) -> ServerConfig:
    where = f"servers.{name}."
    if not isinstance(entry, dict):
        raise ConfigError(f"'servers.{name}' must be an object")
    values = {path: _value(entry, key, where) for path, key in _SERVER_KEYS.items()}
    command = values["command"]
    try:
        if not shlex.split(command):
            raise ConfigError(f"'{where}command' is empty")
    except ValueError as error:
        raise ConfigError(f"'{where}command' cannot be split: {error}") from None
    stop = None
    if values["stop.command"]:
        stop = StopConfig(values["stop.command"], float(values["stop.timeout"]))
    try:
        run_as = resolve(values["user"], values["group"])
    except RunAsError as error:
        raise ConfigError(f"'{where}{error.key}' {error}") from None
    directory = os.path.abspath(values["directory"])
    try:
        schedules = parse_schedules(values["schedules"])
        backups = parse_backups(name, directory, {path[len("backups."):]: value for path, value in values.items()
                                                  if path.startswith("backups.")})
    except EntryError as error:
        raise ConfigError(f"'{where}{error.path}' {error.problem}") from None
    return ServerConfig(
        name=name,
        enabled=values["enabled"],
        directory=directory,
        command=command,
        stop=stop,
        env=_environment(values["env"], where),
        inherit_env=values["inheritEnv"],
        run_as=run_as,
        limits=Limits(values["limits.memory"], values["limits.cpu"], values["limits.pids"], values["limits.openFiles"]),
        schedules=schedules,
        backups=backups,
    )


def _socket_accounts(entries: dict) -> dict[int, str]:
    """``unixSocket.accounts`` with every Unix user name resolved to its uid."""
    accounts = {}
    for peer, account in entries.items():
        key = f"'unixSocket.accounts.{peer}'"
        if not isinstance(account, str) or not account:
            raise ConfigError(f"{key} must be an account name")
        if peer.isdigit():
            uid = int(peer)
        else:
            try:
                uid = pwd.getpwnam(peer).pw_uid
            except KeyError:
                raise ConfigError(f"{key}: there is no Unix user called {peer!r}") from None
        accounts[uid] = account
    return accounts


def _environment(env: dict, where: str) -> dict:
    """``env`` checked: names without ``=`` or NUL, string values without NUL."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            raise ConfigError(f"'{where}env' has an invalid variable name {name!r}")
        if not isinstance(value, str) or "\0" in value:
            raise ConfigError(f"'{where}env.{name}' must be a string without NUL characters")
    return dict(env)


def _trusted_proxies(entries: list) -> tuple:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            raise ConfigError(f"'trustedProxies' entry {entry!r} is not an IP address or CIDR range") from None
    return tuple(networks)


NODE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _node_url(url: str, key: str) -> str:
    """An http(s) URL without its trailing slash, or ConfigError naming ``key``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"'{key}' must be an http:// or https:// URL")
    return url.rstrip("/")


def default_node_name(port: int) -> str:
    """The host name; with ``-<port>`` when the port is not Octyne's default, so that nodes sharing a machine
    (which must differ in port) get different names without configuring them."""
    host = socket.gethostname().split(".")[0]
    return host if port == 42069 else f"{host}-{port}"


def _node(values: dict) -> NodeConfig:
    name = values["node.name"] or default_node_name(values["port"])
    if not NODE_NAME.fullmatch(name):
        raise ConfigError("'node.name' may hold only letters, digits, '.', '_' and '-' (at most 64)")
    url = _node_url(values["node.url"], "node.url") if values["node.url"] else ""
    static = []
    for other, other_url in values["nodes"].items():
        if not NODE_NAME.fullmatch(other):
            raise ConfigError(f"'nodes.{other}': a node name may hold only letters, digits, '.', '_' and '-'")
        if not isinstance(other_url, str):
            raise ConfigError(f"'nodes.{other}' must be a string")
        static.append((other, _node_url(other_url, f"nodes.{other}")))
    return NodeConfig(name, url, tuple(static))


def config_from_document(document: dict) -> Config:
    """Validate a parsed document into a Config, or raise ConfigError naming the key."""
    values = {path: _value(document, key) for path, key in _TOP_KEYS.items()}
    servers = {name: _parse_server(name, entry) for name, entry in _value(document, _SERVERS).items()}
    redis = RedisConfig(values["redis.enabled"], values["redis.url"], values["redis.role"])
    if redis.enabled and redis.role not in ("primary", "secondary"):
        raise ConfigError("'redis.role' must be \"primary\" or \"secondary\" when Redis is enabled")
    https = HttpsConfig(values["https.enabled"], values["https.cert"], values["https.key"])
    if https.enabled and not (https.cert and https.key):
        raise ConfigError("'https.cert' and 'https.key' are required when HTTPS is enabled")
    web_ui = WebUIConfig(values["webUI.enabled"], values["webUI.port"], values["webUI.directory"])
    if web_ui.enabled and web_ui.port == values["port"]:
        raise ConfigError("'webUI.port' must differ from 'port'")
    try:
        timezone = parse_timezone(values["timezone"])
    except ValueError as error:
        raise ConfigError(f"'timezone' {error}") from None
    sftp = SftpConfig(values["sftp.enabled"], values["sftp.port"], values["sftp.hostKey"],
                      values["sftp.authorizedKeys"], values["sftp.maxSessions"], float(values["sftp.idleTimeout"]))
    if sftp.enabled and sftp.port in (values["port"], web_ui.port if web_ui.enabled else None):
        raise ConfigError("'sftp.port' must differ from 'port' and 'webUI.port'")
    actions = values["logging.actions"]
    for action, switch in actions.items():
        if not isinstance(switch, bool):
            raise ConfigError(f"'logging.actions.{action}' must be a boolean")
    return Config(
        port=values["port"],
        web_ui=web_ui,
        unix_socket=UnixSocketConfig(
            values["unixSocket.enabled"], values["unixSocket.location"], values["unixSocket.group"],
            _socket_accounts(values["unixSocket.accounts"])),
        redis=redis,
        node=_node(values),
        https=https,
        logging=LoggingConfig(values["logging.enabled"], values["logging.path"], dict(actions)),
        trusted_proxies=_trusted_proxies(values["trustedProxies"]),
        threads=values["threads"],
        stop_grace_period=float(values["stopGracePeriod"]),
        console=ConsoleConfig(
            scrollback_lines=values["console.scrollbackLines"],
            scrollback_bytes=values["console.scrollbackBytes"],
            max_lag_bytes=values["console.maxLagBytes"],
            idle_timeout=float(values["console.idleTimeout"]),
            history=HistoryConfig(values["console.history.enabled"], values["console.history.path"],
                                  values["console.history.maxBytes"], values["console.history.maxAgeDays"]),
        ),
        files=FilesConfig(values["files.uploadLimit"], values["files.decompressLimit"]),
        sftp=sftp,
        servers=servers,
        timezone=timezone,
        raw=document,
    )


def parse_config(text: str) -> Config:
    """HuJSON text to a validated Config; ConfigError says what is wrong."""
    return config_from_document(parse_document(text))


def load_config(path: str) -> tuple[Config, bytes]:
    """Read and validate the config file; returns the Config and the exact bytes on disk."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    try:
        return parse_config(text), data
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def config_reference() -> str:
    """The Markdown table of every key, for the README (kept in sync by a test)."""
    rows = ["| key | type | default | range | meaning |", "|---|---|---|---|---|"]
    for key in SCHEMA:
        rows.append(_row(key.path, key))
    for key in SERVER_SCHEMA:
        rows.append(_row(f"servers.<name>.{key.path}", key))
    return "\n".join(rows)


def _row(path: str, key: Key) -> str:
    if key.default is None or key.default is NO_LIMIT:
        default = "required" if key.default is None else "none"
    else:
        default = f"`{json.dumps(key.default)}`"
    bounds = f"{key.bounds[0]}–{key.bounds[1]}" if key.bounds else ""
    origin = "" if key.octyne else " *(extension)*"
    return f"| `{path}` | {key.kind} | {default} | {bounds} | {key.doc}{origin} |"
