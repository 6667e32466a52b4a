#!/usr/bin/env bash
# Fuzz the live API (GRAPHQL_URL, GRAPHQL_TOKEN set by `python -m tests.live`) with schemathesis.
# FUZZ_EXAMPLES test cases per operation (7 operations); the run fails on any failed check.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/../../.venv-fuzz/bin/schemathesis" --config-file "$here/schemathesis.toml" run \
  "$here/../../schema.graphql" --url "$GRAPHQL_URL" \
  -H "Authorization: Bearer $GRAPHQL_TOKEN" \
  --max-examples "${FUZZ_EXAMPLES:-200}" --seed "${FUZZ_SEED:-20261127}" \
  --generation-database none --no-color --report junit --report-dir "$here/../../.data/fuzz-report"
