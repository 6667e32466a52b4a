"""The committed schema.graphql is what the code exports (`make schema` regenerates it)."""

from app.api.schema import build_schema
from app.config import ROOT


def test_committed_schema_matches_the_code():
    committed = (ROOT / "schema.graphql").read_text()
    exported = build_schema().as_str() + "\n"
    assert committed == exported, "schema.graphql is stale: run `make schema` and commit it"
