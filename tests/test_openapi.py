"""The OpenAPI document: valid OpenAPI 3.1, exactly the routes the daemon serves, served on every listener."""

from __future__ import annotations

import json
import re

import pytest
import requests
from openapi_spec_validator import validate
from werkzeug.exceptions import MethodNotAllowed

from octyne_flask.auth.permissions import split_permission
from octyne_flask.openapi import openapi_document, openapi_path, operations

UNDOCUMENTED_CANDIDATES = ("GET", "POST", "PUT", "PATCH", "DELETE")
SERVER = "scratch"


@pytest.fixture(scope="module")
def document():
    return openapi_document()


def walk(node, where=""):
    """Every ``(location, key, value)`` in a nested document."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield where, key, value
        yield from walk(value, f"{where}/{key}")


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_the_yaml_has_no_accidental_nulls(document):
    # A comma in a plain scalar of a YAML flow mapping silently splits it into a key with a null value.
    assert [(where, key) for where, key, value in walk(document) if value is None] == []


def test_every_permission_named_is_a_real_permission(document):
    named = [operation["x-permission"] for _, _, operation in operations(document) if "x-permission" in operation]
    assert named
    for name in named:
        split_permission(name)  # ValueError for a name that is not a permission


def test_every_error_pattern_matches_its_own_example_and_shows_its_form(document):
    examples = [value for _, _, value in walk(document) if isinstance(value, dict) and "x-pattern" in value]
    assert examples
    for example in examples:
        message = example["value"].get("error") or example["value"]["errors"][0]["message"]
        assert re.fullmatch(example["x-pattern"], message, re.DOTALL), example
        assert "<" in example["summary"], example  # the README shows the form, e.g. "Invalid file name: <name>"


def test_every_route_is_documented_and_every_documented_operation_is_routed(app, document):
    registered = {openapi_path(rule.rule) for rule in app.url_map.iter_rules()}
    assert registered == set(document["paths"])
    adapter = app.url_map.bind("localhost")
    for path, method, _ in operations(document):
        concrete = path.replace("{id}", SERVER)
        try:
            adapter.match(concrete, method=method.upper(), websocket=path.endswith("/console"))
        except MethodNotAllowed:
            pytest.fail(f"{method.upper()} {path} is documented but not routed")


def test_every_path_names_its_405_message(document):
    assert all(item.get("x-method-not-allowed") for item in document["paths"].values())


@pytest.fixture(scope="module")
def scratch_daemon(tmp_path_factory):
    from tests.harness import ADMIN_HASH, RunningDaemon, daemon_config

    where = tmp_path_factory.mktemp("openapi")
    (where / "scratch").mkdir()
    config = daemon_config(where, {SERVER: {"directory": str(where / "scratch"), "command": "cat",
                                            "enabled": False}})
    daemon = RunningDaemon(where, config, {"admin": ADMIN_HASH})
    yield daemon
    daemon.clean_up()


def test_methods_a_path_does_not_list_answer_405_with_its_message_and_allow(scratch_daemon, document):
    checked = 0
    for path, item in document["paths"].items():
        documented = {method.upper() for method in item if method.upper() in UNDOCUMENTED_CANDIDATES}
        for method in set(UNDOCUMENTED_CANDIDATES) - documented:
            response = scratch_daemon.request(method, path.replace("{id}", SERVER))
            assert response.status_code == 405, (method, path, response.text)
            assert response.json() == {"error": item["x-method-not-allowed"]}, (method, path)
            allowed = {name.strip() for name in response.headers["Allow"].split(",")}
            assert documented <= allowed and not allowed & (set(UNDOCUMENTED_CANDIDATES) - documented), (method, path)
            checked += 1
    assert checked > 40


def test_the_document_is_served_without_authentication_on_the_api_port(scratch_daemon, document):
    response = requests.get(scratch_daemon.url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == json.loads(json.dumps(document))
    assert response.json()["servers"] == [{"url": "/"}]


def test_the_web_ui_port_serves_it_under_api_with_servers_pointing_there(scratch_daemon):
    config = json.loads(scratch_daemon.config_path.read_text())
    response = requests.get(f"http://127.0.0.1:{config['webUI']['port']}/api/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json()["servers"] == [{"url": "/api"}]
    assert "/server/{id}/files" in response.json()["paths"]


def test_the_unix_socket_serves_it_too(scratch_daemon):
    status, headers, body = scratch_daemon.local("GET", "/openapi.json")
    assert status == 200
    assert json.loads(body)["paths"]["/"]["get"]["operationId"] == "getVersion"


def test_login_and_the_server_list_refuse_other_methods_like_every_other_endpoint(scratch_daemon):
    from tests.harness import ADMIN_PASSWORD

    login = requests.post(scratch_daemon.url + "/login", timeout=30,
                          headers={"Username": "admin", "Password": ADMIN_PASSWORD})
    assert (login.status_code, login.json()) == (405, {"error": "Only GET is allowed!"})
    assert login.headers["Allow"] == "GET, HEAD, OPTIONS"
    servers = scratch_daemon.post("/servers")
    assert (servers.status_code, servers.json()) == (405, {"error": "Only GET is allowed!"})


def test_the_api_port_serves_no_static_files(scratch_daemon):
    response = scratch_daemon.get("/static/anything.js")
    assert (response.status_code, response.json()) == (404, {"error": "Not Found"})


def test_a_framework_405_keeps_its_allow_header(scratch_daemon):
    response = scratch_daemon.post("/")
    assert (response.status_code, response.json()) == (405, {"error": "Method Not Allowed"})
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
