"""The config file: HuJSON parsing, defaults, and validation messages that name the key."""

import pytest

from octyne_flask.config import SCHEMA, SERVER_SCHEMA, ConfigError, config_reference, load_config, parse_config
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
    ('{"console": {"maxLagBytes": 10}}', "'console.maxLagBytes' must be at least"),
])
def test_invalid_config_is_refused_with_a_message_naming_the_problem(text, fragment):
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert fragment in str(raised.value)


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
