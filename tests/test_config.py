"""The config file: HuJSON parsing, defaults, and validation messages that name the key."""

import json
import math
import os
import pwd
import subprocess
import sys

import pytest

from octyne_flask.config import (
    SCHEMA, SERVER_SCHEMA, ConfigError, Key, Limits, config_from_document, config_reference, load_config, parse_config,
)
from octyne_flask.runas import RunAs
from tests.harness import REPO


def test_empty_object_takes_every_octyne_default():
    config = parse_config("{}")
    assert config.port == 42069
    assert (config.web_ui.enabled, config.web_ui.port) == (True, 7877)
    assert (config.unix_socket.enabled, config.unix_socket.location, config.unix_socket.group) == (True, "", "")
    assert (config.redis.enabled, config.redis.url) == (False, "redis://localhost")
    assert config.https.enabled is False
    assert (config.logging.enabled, config.logging.path, config.logging.actions) == (True, "logs", {})
    assert config.servers == {}
    assert config.console.scrollback_lines == 2500


def test_comments_and_trailing_commas_are_accepted():
    config = parse_config('{\n // comment\n "port": 1234, /* block */\n "servers": {"a": {"directory": "/srv/a", "command": "java -jar x.jar",},},\n}')
    assert config.port == 1234
    assert config.servers["a"].argv() == ["java", "-jar", "x.jar"]


def test_escaped_surrogate_pairs_read_as_one_character_and_a_lone_half_as_a_replacement():
    """``json.dumps`` writes an emoji as ``"\\ud83d\\ude00"``; json5 alone would leave two halves no
    file name can take (the daemon crashed at start); a lone half reads as U+FFFD, as in Go (Octyne)."""
    document = {"servers": {"🙂 world": {"directory": "/srv/🙂", "command": "run ✓"}},
                "logging": {"path": "logs-\ud800"}}
    config = parse_config(json.dumps(document))
    assert list(config.servers) == ["🙂 world"]
    assert config.servers["🙂 world"].directory.endswith("/srv/🙂")
    assert config.servers["🙂 world"].argv() == ["run", "✓"]
    assert config.logging.path.endswith("logs-\ufffd")


def test_command_is_split_like_a_shell_without_one():
    config = parse_config('{"servers": {"a": {"directory": "/x", "command": "sh -c \'echo hi; exit 3\' \\"two words\\""}}}')
    assert config.servers["a"].argv() == ["sh", "-c", "echo hi; exit 3", "two words"]


def test_relative_server_directory_resolves_against_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config('{"servers": {"a": {"directory": "apps/a", "command": "x"}}}')
    assert config.servers["a"].directory == str(tmp_path / "apps" / "a")


def test_unknown_keys_are_ignored():
    assert parse_config('{"futureKey": {"x": 1}, "port": 5}').port == 5


def test_unix_socket_defaults_to_tmpdir_and_port(monkeypatch):
    monkeypatch.setenv("TMPDIR", "/var/tmp/x")
    assert parse_config('{"port": 4000}').socket_path() == "/var/tmp/x/octyne.sock.4000"
    monkeypatch.delenv("TMPDIR")
    assert parse_config('{"port": 4000}').socket_path() == "/tmp/octyne.sock.4000"
    assert parse_config('{"unixSocket": {"location": "/run/o.sock"}}').socket_path() == "/run/o.sock"


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    ("[]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
    ('{"port": "x"}', "'port' must be an integer"),
    ('{"port": 70000}', "'port'"),
    ('{"port": true}', "'port' must be an integer"),
    ('{"servers": []}', "'servers' must be an object"),
    ('{"servers": {"a": {"command": "x"}}}', "'servers.a.directory' is required"),
    ('{"servers": {"a": {"directory": "/x"}}}', "'servers.a.command' is required"),
    ('{"servers": {"a": {"directory": "/x", "command": ""}}}', "'servers.a.command' is empty"),
    ('{"servers": {"a": {"directory": "/x", "command": "a \'b"}}}', "'servers.a.command' cannot be split"),
    ('{"servers": {"a": {"directory": 5, "command": "x"}}}', "'servers.a.directory' must be a string"),
    ('{"servers": {"a": "x"}}', "'servers.a' must be an object"),
    ('{"webUI": 5}', "'webUI' must be an object"),
    ('{"webUI": {"port": 42069}}', "'webUI.port' must differ from 'port'"),
    ('{"redis": {"enabled": true}}', "'redis.role'"),
    ('{"redis": {"enabled": true, "role": "boss"}}', "'redis.role'"),
    ('{"https": {"enabled": true}}', "'https.cert'"),
    ('{"logging": {"actions": {"auth.login": "no"}}}', "'logging.actions.auth.login' must be a boolean"),
    ('{"trustedProxies": ["nonsense"]}', "'trustedProxies'"),
    ('{"node": {"name": "a b"}}', "'node.name' may hold only"),
    ('{"node": {"url": "ftp://x"}}', "'node.url' must be an http:// or https:// URL"),
    ('{"nodes": {"go": 5}}', "'nodes.go' must be a string"),
    ('{"nodes": {"go": "b.example.com"}}', "'nodes.go' must be an http:// or https:// URL"),
    ('{"nodes": {"a/b": "http://b"}}', "'nodes.a/b'"),
    ('{"console": {"maxLagBytes": 10}}', "'console.maxLagBytes' must be an integer from 1048576 to"),
])
def test_invalid_config_is_refused_with_a_message_naming_the_problem(text, fragment):
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert fragment in str(raised.value)


def document_with(key: Key, value, server: bool) -> dict:
    """A minimal document holding ``value`` at ``key``'s path (inside one server for server keys)."""
    document = node = {}
    if server:
        node = document.setdefault("servers", {}).setdefault("a", {"directory": "/srv/a", "command": "run"})
    *parents, last = key.path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return document


NUMERIC_KEYS = ([(key, False) for key in SCHEMA if key.kind in ("int", "number", "size")]
                + [(key, True) for key in SERVER_SCHEMA if key.kind in ("int", "number", "size")])


@pytest.mark.parametrize("key, server", NUMERIC_KEYS, ids=[key.path for key, _ in NUMERIC_KEYS])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e999, 1e10 ** 30, 10 ** 400, True, False, "1"],
                         ids=["NaN", "Infinity", "-Infinity", "1e999", "1e300", "10**400", "true", "false", "string"])
def test_every_number_must_be_finite_and_in_its_declared_range(key, server, value):
    """Checked on the parsed document, so a parser that reads NaN or Infinity literals changes nothing."""
    with pytest.raises(ConfigError) as raised:
        config_from_document(document_with(key, value, server))
    assert f"'{'servers.a.' if server else ''}{key.path}' must be" in str(raised.value)


@pytest.mark.parametrize("key, server", NUMERIC_KEYS, ids=[key.path for key, _ in NUMERIC_KEYS])
def test_the_edges_of_each_range_are_allowed_and_beyond_them_refused(key, server):
    low, high = key.bounds
    for edge in (low, high):
        config_from_document(document_with(key, edge, server))
    step = 0.001 if key.kind == "number" else 1
    for outside in (low - step, high + step):
        with pytest.raises(ConfigError) as raised:
            config_from_document(document_with(key, outside, server))
        assert f"from {low} to {high}" in str(raised.value)


@pytest.mark.parametrize("text, fragment", [
    ('{"stopGracePeriod": 1e999}', "'stopGracePeriod' must be a number from 0 to 86400"),
    ('{"stopGracePeriod": -1}', "'stopGracePeriod' must be a number from 0 to 86400"),
    ('{"port": 0}', "'port' must be an integer from 1 to 65535"),
    ('{"servers": {"a": {"directory": "/x", "command": "x", "stop": {"timeout": 1e10}}}}',
     "'servers.a.stop.timeout' must be a number from 0 to 86400"),
])
def test_out_of_range_numbers_in_the_text_name_the_key_and_the_range(text, fragment):
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert fragment in str(raised.value)


def test_a_numeric_key_cannot_be_declared_without_a_range():
    with pytest.raises(TypeError):
        Key("some.number", "number", 1, "A number nobody bounded.")
    with pytest.raises(TypeError):
        Key("some.text", "string", "", "A string with a range.", bounds=(0, 1))


def test_comment_markers_inside_strings_are_text():
    config = parse_config('{"servers": {"a": {"directory": "/srv//a", "command": "echo /* not, a comment */",},},}')
    assert (config.servers["a"].directory, config.servers["a"].command) == ("/srv/a", "echo /* not, a comment */")


@pytest.mark.parametrize("text", [
    '{port: 1}', "{'port': 1}", '{"port": 0x10}', '{"port": +1}',
    '// an Octyne HuJSON file\n{"port": 1, /* inline */ "servers": {},}',
])
def test_json5_and_octynes_hujson_are_both_read(text):
    """The parser is json5, and HuJSON (comments, trailing commas: Octyne's format) is a subset of JSON5."""
    assert parse_config(text).port in (1, 16)


@pytest.mark.parametrize("text", [
    '{,}', '{"servers": {"a": {},,}}', '{"port": 1 /* unterminated', '{"port": 1} trailing', '[1, 2]x',
])
def test_text_that_is_not_json5_is_a_syntax_error(text):
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert "syntax error" in str(raised.value)


def test_syntax_error_names_line_and_column():
    with pytest.raises(ConfigError) as raised:
        parse_config('{\n  "port": 1,\n  "x": nope\n}')
    assert "line 3" in str(raised.value) and "column" in str(raised.value)


def test_load_config_names_the_file_and_returns_exact_bytes(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes(b'{"port": 1, // hi\n}')
    config, data = load_config(str(path))
    assert config.port == 1 and data == b'{"port": 1, // hi\n}'
    with pytest.raises(ConfigError) as raised:
        load_config(str(tmp_path / "missing.json"))
    assert "missing.json" in str(raised.value)


def test_readme_documents_every_config_key():
    with open(REPO / "README.md", encoding="utf-8") as handle:
        readme = handle.read()
    for row in config_reference().splitlines()[2:]:
        assert row in readme, f"README.md lacks the config row: {row}"
    assert len(SCHEMA) + len(SERVER_SCHEMA) == len(config_reference().splitlines()) - 2


def server_entry(**entry) -> str:
    return json.dumps({"servers": {"a": {"directory": "/srv/a", "command": "run", **entry}}})


@pytest.mark.parametrize("memory, expected", [
    (134217728, 134217728), ("128M", 134217728), ("128m", 134217728), ("4096K", 4 << 20), ("2G", 2 << 30),
    ("67108864", 67108864),
])
def test_memory_limits_are_bytes_or_binary_suffixed_sizes(memory, expected):
    assert parse_config(server_entry(limits={"memory": memory})).servers["a"].limits.memory == expected


@pytest.mark.parametrize("memory", ["1.5G", "12X", "G", "-1M", "128 MB", "1T", 1.5, True])
def test_a_memory_limit_that_is_no_size_names_the_key(memory):
    with pytest.raises(ConfigError) as raised:
        parse_config(server_entry(limits={"memory": memory}))
    assert "'servers.a.limits.memory' must be a size (bytes, or a number with a K, M or G suffix)" in str(raised.value)


def test_without_limits_env_or_user_an_app_runs_as_before():
    server = parse_config(server_entry()).servers["a"]
    assert server.limits == Limits() and server.limits.cgroup_limits() == {}
    assert (server.env, server.inherit_env, server.run_as) == ({}, True, None)


def test_limits_env_and_inheritance_are_read():
    server = parse_config(server_entry(env={"JAVA_OPTS": "-Xmx2G"}, inheritEnv=False,
                                       limits={"memory": "2G", "cpu": 1.5, "pids": 512, "openFiles": 4096})).servers["a"]
    assert server.limits == Limits(memory=2 << 30, cpu=1.5, pids=512, open_files=4096)
    assert server.limits.cgroup_limits() == {"memory": 2 << 30, "cpu": 1.5, "pids": 512}
    assert (server.env, server.inherit_env) == ({"JAVA_OPTS": "-Xmx2G"}, False)


@pytest.mark.parametrize("env, fragment", [
    ({"A": 1}, "'servers.a.env.A' must be a string"),
    ({"A": "x\0y"}, "'servers.a.env.A' must be a string without NUL"),
    ({"A=B": "x"}, "'servers.a.env' has an invalid variable name 'A=B'"),
    ({"": "x"}, "'servers.a.env' has an invalid variable name ''"),
])
def test_bad_environment_variables_name_the_key(env, fragment):
    with pytest.raises(ConfigError) as raised:
        parse_config(server_entry(env=env))
    assert fragment in str(raised.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="user and group need a root daemon")
def test_user_and_group_resolve_to_ids_groups_and_home():
    nobody = pwd.getpwnam("nobody")
    server = parse_config(server_entry(user="nobody")).servers["a"]
    assert server.run_as == RunAs(nobody.pw_uid, nobody.pw_gid, tuple(os.getgrouplist("nobody", nobody.pw_gid)),
                                  nobody.pw_dir)
    by_id = parse_config(server_entry(user=str(nobody.pw_uid), group="0")).servers["a"].run_as
    assert (by_id.uid, by_id.gid) == (nobody.pw_uid, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="user and group need a root daemon")
@pytest.mark.parametrize("entry, fragment", [
    ({"user": "no-such-user-here"}, "'servers.a.user' names no user on this system"),
    ({"user": "nobody", "group": "no-such-group-here"}, "'servers.a.group' names no group on this system"),
    ({"user": "nobody\0root"}, "'servers.a.user' names no user on this system"),
    ({"user": "99999999999999999999"}, "'servers.a.user' names no user on this system"),
])
def test_an_unknown_user_or_group_names_the_key(entry, fragment):
    with pytest.raises(ConfigError) as raised:
        parse_config(server_entry(**entry))
    assert fragment in str(raised.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to check as another user")
@pytest.mark.parametrize("key", ["user", "group"])
def test_user_or_group_in_a_daemon_that_is_not_root_names_the_key(key):
    """Checked in a process that gave up root after its imports (Python itself lives under /root here)."""
    text = server_entry(**{key: "nobody" if key == "user" else "nogroup"})
    check = f"import os; from octyne_flask.config import parse_config; os.seteuid(65534); parse_config({text!r})"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO)}, timeout=30)
    assert done.returncode == 1
    assert f"ConfigError: 'servers.a.{key}' needs the daemon to run as root" in done.stderr
def test_node_defaults_to_the_host_name_and_urls_lose_their_trailing_slash():
    import socket

    node = parse_config('{"node": {"url": "https://a.example.com/api/"}, "nodes": {"go": "http://go:42069/"}}').node
    host = socket.gethostname().split(".")[0]
    assert node.name == host
    assert parse_config('{"port": 4000}').node.name == f"{host}-4000"  # a second node on the same machine
    assert (node.url, node.static) == ("https://a.example.com/api", (("go", "http://go:42069"),))
