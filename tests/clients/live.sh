#!/usr/bin/env bash
# The clients against the live server `python -m tests.live` started
# (GRAPHQL_URL, GRAPHQL_TOKEN). Each runs even when one before it failed; the status says if any did.
set -uo pipefail
cd "$(dirname "$0")/../.."

failed=()
run() {
  echo "== $1"
  "${@:2}" || failed+=("$1")
}
run "codegen from the live URL" tests/clients/codegen/from-url.sh
run "Apollo Client" node tests/clients/apollo.mjs
run "urql" node tests/clients/urql.mjs
run "Relay's documents on the server" node tests/clients/relay-live.mjs
run "gql (Python)" .venv-clients/bin/python tests/clients/gql_flow.py
run "live updates: graphql-ws and graphql-sse" node tests/clients/live-updates.mjs

if ((${#failed[@]})); then
  echo "clients failed: ${failed[*]}"
  exit 1
fi
echo "clients: all passed"
