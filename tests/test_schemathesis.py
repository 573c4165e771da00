"""schemathesis against a real daemon: every documented operation, a bounded number of generated requests each.

Checks: no 5xx, status codes, content types and bodies as documented (plus the
other built-in checks that apply, and exact error messages: every ``error`` of
a 4xx/5xx answer is one of that response's documented examples).

The daemon runs as a subprocess with one app (``cat``) in a scratch folder,
and the run is authenticated as ``admin``. So that the run cannot saw off the
branch it sits on, requests that delete or rename ``admin`` are not sent (the
daemon rightly allows both) and ``/logout`` gets a spare token of its own. A
successful ``PATCH /config`` is undone at once, a ``PATCH /access`` that turned
access control on is undone by removing ``access.json``, and the scratch folder is
emptied when archives of archives grow it past a few MiB.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis

from octyne_flask.openapi import examples, openapi_document
from tests.harness import ADMIN_HASH, ADMIN_PASSWORD, RunningDaemon, daemon_config, wait_until

SERVER = "scratch"
OWN_ACCOUNT = "admin"
SCRATCH_LIMIT_BYTES = 4 * 1024 * 1024
MAX_EXAMPLES = 25
SPARE_TOKENS = 6
STATEFUL_SCENARIOS = 15

SETTINGS = {
    # Deterministic: the suite gates merges, so every run sends the same requests and a failure reproduces.
    # No shrinking: replaying a failure against a daemon whose state has moved on says little and takes long.
    "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "deterministic": True, "no-shrink": True},
    "request-timeout": 30,
    # Octyne answers 400 to many requests whose validity depends on state, not on their shape (a missing
    # file, an archive already there, an account with nothing to change), so a schema-valid request may
    # rightly be refused: this check's premise does not hold for this API.
    "checks": {"positive_data_acceptance": {"enabled": False}},
    # Hypothesis' health checks judge the generator's speed on a busy machine, not the daemon.
    "suppress-health-check": ["all"],
}


@schemathesis.check
def documented_error_message(ctx, response, case):
    """An error's message is one of the documented examples (``x-pattern`` for messages that quote input)."""
    if response.status_code < 400 or "json" not in response.headers.get("content-type", [""])[0]:
        return None
    try:
        message = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return None
    if message is None:
        return None
    definition = case.operation.definition.raw["responses"].get(str(response.status_code))
    if definition is None:
        return None  # status_code_conformance reports it
    allowed = documented_messages(case.operation.schema.raw_schema, definition)
    if not any(re.fullmatch(pattern, message, re.DOTALL) for pattern in allowed):
        raise AssertionError(f"{response.status_code} {message!r} is none of the documented error messages")
    return None


def documented_messages(document: dict, response: dict) -> list[str]:
    """Regular expressions for every documented ``error`` of a response definition."""
    return [example.get("x-pattern") or re.escape(example["value"]["error"])
            for example in examples(document, response)
            if isinstance(example.get("value"), dict) and "error" in example["value"]]


def seed_scratch_folder(folder: Path) -> None:
    (folder / "world").mkdir(parents=True, exist_ok=True)
    (folder / "world" / "level.dat").write_bytes(b"\x1f\x8b level")
    (folder / "server.properties").write_text("motd=hello\n")
    (folder / "logs").mkdir(exist_ok=True)
    (folder / "logs" / "old.log").write_text("old\n")


def folder_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class Run:
    """The daemon under test, and what keeps a long run of generated requests usable."""

    def __init__(self, directory: Path):
        self.scratch = directory / "servers" / SERVER
        self.scratch.mkdir(parents=True)
        seed_scratch_folder(self.scratch)
        config = daemon_config(directory, {SERVER: {"directory": str(self.scratch), "command": "cat"}})
        self.daemon = RunningDaemon(directory, config, {OWN_ACCOUNT: ADMIN_HASH})
        self.original_config = self.daemon.config_path.read_text()
        self.spare_tokens = [self._login() for _ in range(SPARE_TOKENS)]

    def _login(self) -> str:
        response = requests.get(self.daemon.url + "/login", timeout=30,
                                headers={"Username": OWN_ACCOUNT, "Password": ADMIN_PASSWORD})
        response.raise_for_status()
        return response.json()["token"]

    def call_kwargs(self, case) -> dict:
        """Where and as whom to send ``case``: /logout gets a spare token, so the run's own stays valid."""
        if case.path != "/logout":
            token = self.daemon.token
        else:
            token = self.spare_tokens.pop() if len(self.spare_tokens) > 1 else self.spare_tokens[0]
        return {"base_url": self.daemon.url, "headers": {"Authorization": token}}

    def after(self, case) -> None:
        """Undo a config or access change at once; empty the scratch folder when archives of archives grow it."""
        if case.path == "/config" and case.method == "PATCH" and \
                self.daemon.config_path.read_text() != self.original_config:
            self.daemon.patch("/config", data=self.original_config.encode()).raise_for_status()
        access_file = self.daemon.directory / "access.json"
        if case.path == "/access" and case.method == "PATCH" and access_file.exists():
            access_file.unlink()  # access control off again: admin holds everything, as at the start
            wait_until(lambda: not self.daemon.get("/access").json()["enabled"])
        if folder_size(self.scratch) > SCRATCH_LIMIT_BYTES:
            shutil.rmtree(self.scratch)
            self.scratch.mkdir()
            seed_scratch_folder(self.scratch)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = Run(tmp_path_factory.mktemp("schemathesis"))
    yield run
    run.daemon.stop()


# The package's document (test_openapi.py proves the daemon serves exactly this one); pytest 9 breaks
# schemathesis' fixture-loaded schemas, so it is loaded at import and pointed at the daemon per call.
schema = schemathesis.openapi.from_dict(openapi_document(), config=schemathesis.Config.from_dict(SETTINGS))


def targets_own_account(case) -> bool:
    """A DELETE or a rename of the run's own account: not sent (the daemon rightly allows both)."""
    if case.path != "/accounts" or case.method not in ("DELETE", "PATCH"):
        return False
    named = (case.query or {}).get("username")
    if case.method == "DELETE":
        return named == OWN_ACCOUNT
    new_name = case.body.get("username") if isinstance(case.body, dict) else None
    return named == OWN_ACCOUNT and bool(new_name)


def call_and_validate(run, case) -> None:
    response = case.call(**run.call_kwargs(case))
    try:
        case.validate_response(response)
    finally:
        run.after(case)


@schema.parametrize()
def test_every_operation_behaves_as_documented(case, run):
    if targets_own_account(case):
        return
    if "id" in (case.path_parameters or {}):
        case.path_parameters["id"] = SERVER  # a generated name would only ever meet the 404
    call_and_validate(run, case)


def test_accounts_follow_their_links_create_update_delete(run):
    """Stateful: an account created by POST /accounts is then renamed or re-passworded and deleted."""

    class AccountWorkflow(schema.include(path="/accounts").as_state_machine()):
        def step(self, input):
            if targets_own_account(input.case):
                return None
            return super().step(input)

        def get_call_kwargs(self, case):
            return run.call_kwargs(case)

        def after_call(self, response, case):
            super().after_call(response, case)
            run.after(case)

        def teardown(self):
            # Every scenario starts from the same accounts, so Hypothesis can replay and shrink it.
            for name in run.daemon.get("/accounts").json():
                if name != OWN_ACCOUNT:
                    run.daemon.delete("/accounts", params={"username": name}).raise_for_status()

    before = len(run.daemon.action_log())
    AccountWorkflow.run(settings=hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS, stateful_step_count=6, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck)))
    log = run.daemon.action_log()[before:]
    created = {entry["newUser"] for entry in log if entry.get("action") == "accounts.create"}
    changed = {entry.get("oldUsername", entry.get("updatedUser")) for entry in log
               if entry.get("action") == "accounts.update"}
    assert created & changed, "no PATCH followed the link from a POST /accounts"
