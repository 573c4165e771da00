"""The README's API section is generated from the OpenAPI document, and a stale one is caught."""

from __future__ import annotations

import subprocess
import sys

from octyne_flask.openapi import openapi_document, operations
from tests.harness import REPO

SCRIPT = REPO / "scripts" / "gen-readme-api.py"


def generate(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)], capture_output=True, text=True,
                          timeout=60)


def test_the_readme_api_section_is_what_the_document_generates():
    result = generate("--check")
    assert result.returncode == 0, result.stderr


def test_a_stale_section_fails_the_check_and_is_rewritten(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace("| `GET /ott` | token |", "| `GET /ott` | nobody |"), encoding="utf-8")
    assert stale.read_text(encoding="utf-8") != readme

    check = generate("--check", stale)
    assert check.returncode == 1 and "stale" in check.stderr

    assert generate(stale).returncode == 0
    assert stale.read_text(encoding="utf-8") == readme


def test_every_documented_operation_has_a_row():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for path, method, operation in operations(openapi_document()):
        verb = "WS" if "101" in operation["responses"] else method.upper()
        assert f"| `{verb} {path}` |" in readme
