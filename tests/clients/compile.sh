#!/usr/bin/env bash
# The clients' build steps, against the committed schema.graphql (no server): Relay's compiler
# over relay/src, then GraphQL Code Generator's types and tsc over codegen/link-target.ts.
# Everything they write goes to __generated__/ folders (gitignored), made afresh each run.
set -euo pipefail
cd "$(dirname "$0")"
bin=node_modules/.bin

rm -rf relay/__generated__ codegen/__generated__
mkdir -p relay/__generated__
echo '{}' > relay/__generated__/persisted-documents.json  # relay-compiler wants its manifest to exist
(cd relay && "../$bin/relay-compiler")
echo "ok    relay-compiler: $(ls relay/__generated__/*.graphql.js | wc -l) artifacts"

"$bin/graphql-codegen" --config codegen/codegen.yml > /dev/null
"$bin/tsc" -p codegen/tsconfig.json
echo "ok    codegen + tsc: LinkTarget takes exactly one of its keys"
