#!/usr/bin/env bash
# Codegen from the live server's introspection (codegen-url.yml, with oneOf: true) makes the same
# types as from schema.graphql (compile.sh made those), descriptions aside: @oneOf included.
set -euo pipefail
cd "$(dirname "$0")/.."
node_modules/.bin/graphql-codegen --config codegen/codegen-url.yml > /dev/null
code() { grep -v '^ *//\|^ */\*\*' "codegen/__generated__/$1"; }
diff <(code schema-types.ts) <(code schema-types-from-url.ts)
grep -q "^  { createNew: Scalars\['Boolean'\]\['input'\]; existingIncidentId?: never; }" \
  codegen/__generated__/schema-types-from-url.ts
echo "ok    codegen from the live URL (oneOf: true): the same types, LinkTarget a union"
