"""Regressions for what schemathesis found (tests/test_schemathesis.py), each with the request it failed on."""

from __future__ import annotations

import pytest

from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config

SERVER = "scratch"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp("findings")
    (base / SERVER).mkdir()
    config = daemon_config(base, {SERVER: {"directory": str(base / SERVER), "command": "cat", "enabled": False}})
    running = RunningDaemon(base, config, {"admin": ADMIN_HASH})
    yield running
    running.clean_up()


@pytest.fixture
def scratch(daemon):
    folder = daemon.directory / SERVER
    (folder / "server.properties").write_text("motd=hello\n")
    return folder


def check_error(response, status, message):
    assert (response.status_code, response.json()) == (status, {"error": message}), response.text
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("path, allowed", [
    ("/config", {"GET", "PATCH", "HEAD", "OPTIONS"}),
    ("/login", {"GET", "HEAD", "OPTIONS"}),
    (f"/server/{SERVER}/file", {"GET", "POST", "PATCH", "DELETE", "HEAD", "OPTIONS"}),
    (f"/server/{SERVER}/folder", {"POST", "OPTIONS"}),
])
def test_options_lists_only_the_methods_the_path_serves(daemon, path, allowed):
    # Found as: OPTIONS /config answered Allow: DELETE, PATCH, HEAD, PUT, POST, GET, OPTIONS.
    response = daemon.request("OPTIONS", path)
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) == allowed


def test_a_cors_preflight_is_still_204_without_authentication(daemon):
    response = daemon.request("OPTIONS", "/config", headers={"Origin": "http://example.test", "Authorization": ""})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_upload_into_a_file_is_400_not_500(daemon, scratch):
    # Found with: POST /server/scratch/file?path=/plugins (no such folder) -> 500; test_files_api.py has that one.
    response = daemon.post(f"/server/{SERVER}/file?path=/server.properties", files={"upload": ("upload", b"x")})
    check_error(response, 400, "This is not a folder!")
    assert (scratch / "server.properties").read_text() == "motd=hello\n"


def test_creating_a_folder_whose_parent_is_missing_is_400_not_500(daemon, scratch):
    # Found as: POST /server/scratch/folder?path=/plugins/config -> 500 {"detail": "No such file or directory"}.
    response = daemon.post(f"/server/{SERVER}/folder?path=/plugins/config")
    check_error(response, 400, "Destination parent folder does not exist!")
    assert not (scratch / "plugins").exists()


def test_creating_a_folder_inside_a_file_is_400_not_500(daemon, scratch):
    response = daemon.post(f"/server/{SERVER}/folder?path=/server.properties/config")
    check_error(response, 400, "Destination parent is not a folder!")


def test_a_config_string_with_a_lone_surrogate_is_saved_and_logged_not_500(daemon):
    # Found as: PATCH /config with a generated body holding "\udafe" -> 500 after the config was already
    # written and applied (the action log could not encode the parsed config as UTF-8).
    original = daemon.config_path.read_text()
    edited = original.rstrip().removesuffix("}") + ', "note": "\\udafe\u2028"}'
    try:
        assert daemon.patch("/config", data=edited.encode()).json() == {"success": True}
        entry = [line for line in daemon.action_log() if line.get("action") == "config.edit"][-1]
        assert entry["newConfig"]["note"] == "\ufffd\u2028"  # a lone half reads as U+FFFD, as in Go (Octyne)
    finally:
        daemon.patch("/config", data=original.encode()).raise_for_status()


@pytest.mark.parametrize("method, query, body", [
    ("POST", "", b'{"username": "bob", "password": "\\ud800"}'),
    ("PATCH", "?username=admin", b'{"password": "x\\udfff"}'),
])
def test_a_password_with_a_lone_surrogate_is_400_not_500(daemon, method, query, body):
    # Found as: POST /accounts {"username": "bob", "password": "\ud800"} -> 500 (it cannot be hashed as UTF-8).
    check_error(daemon.request(method, "/accounts" + query, data=body), 400, "Invalid JSON body!")
    assert daemon.get("/accounts").json() == ["admin"]
    assert daemon.login()  # the admin password is unchanged


LONG = "a" * 300  # over the 255 bytes a file name may have


@pytest.mark.parametrize("method, path, kwargs, message", [
    ("DELETE", f"/server/{SERVER}/file?path=/{LONG}", {}, "Invalid file path: name too long"),
    ("POST", f"/server/{SERVER}/folder?path=/{LONG}", {}, "Invalid folder path: name too long"),
    ("GET", f"/server/{SERVER}/files?path=/{LONG}", {}, "Invalid folder path: name too long"),
    ("POST", f"/server/{SERVER}/decompress?path=/{LONG}.zip", {}, "Invalid archive path: name too long"),
    ("POST", f"/server/{SERVER}/compress?path=/{LONG}.zip", {"data": '["server.properties"]'},
     "Invalid archive path: name too long"),
    ("PATCH", f"/server/{SERVER}/file", {"data": f'{{"operation": "cp", "src": "/server.properties", "dest": "/{LONG}"}}'},
     "Invalid destination path: name too long"),
    ("PATCH", f"/server/{SERVER}/file", {"data": f'{{"operation": "cp", "src": "/server.properties", "dest": "/{"d/" * 2100}x"}}'},
     "Invalid destination path: name too long"),  # each name short, the whole path over 4095 bytes
])
def test_a_name_longer_than_the_os_allows_is_400_not_500(daemon, scratch, method, path, kwargs, message):
    check_error(daemon.request(method, path, **kwargs), 400, message)


def test_compressing_into_a_missing_folder_is_400_not_500(daemon, scratch):
    response = daemon.post(f"/server/{SERVER}/compress?path=/missing/a.zip", data='["server.properties"]')
    check_error(response, 400, "Invalid archive path: parent folder does not exist")
    assert not (scratch / "missing").exists()
