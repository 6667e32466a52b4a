"""Every operation the console sends is valid against the committed schema, without a browser.

The documents are read from app/static/js/api.js by Node (its template strings are evaluated as
the browser evaluates them), so a field the console asks for and the API does not have fails here
by name, rather than as a timeout in a browser test.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from graphql import build_schema, parse, validate

from app.config import ROOT
from app.web import STATIC

EXPORTS = """
const api = await import(process.argv[1]);
const documents = Object.entries(api).filter(([, v]) => typeof v === "string" && /^(query|mutation) /.test(v));
console.log(JSON.stringify(Object.fromEntries(documents)));
"""


def console_documents() -> dict[str, str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node is not installed")
    url = (STATIC / "js" / "api.js").as_uri()
    out = subprocess.run(
        [node, "--input-type=module", "-e", EXPORTS, url], capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(out.stdout)


def test_every_console_operation_is_valid_against_the_schema():
    schema = build_schema((ROOT / "schema.graphql").read_text())
    documents = console_documents()
    assert {"LINK_ALERTS", "MERGE_INCIDENTS", "REVERT_MOVE", "MOVE_PAGE", "ACTIVITY_LOG"} <= documents.keys()
    problems = {name: [e.message for e in validate(schema, parse(text))] for name, text in documents.items()}
    assert {name: errors for name, errors in problems.items() if errors} == {}
