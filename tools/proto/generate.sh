#!/usr/bin/env bash
# Regenerates everything derived from proto/: TypeScript (ts-proto, via buf.gen.yaml) and the complete
# descriptor image that server reflection serves. `--check` fails if the committed output is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
buf=node_modules/.bin/buf
$buf lint
$buf generate
$buf build --as-file-descriptor-set -o libs/proto/descriptors/aether.binpb
# Format so the committed output is stable and readable.
node_modules/.bin/prettier --log-level warn --write 'libs/proto/src/gen/**/*.ts'
if [ "${1:-}" = "--check" ]; then
  if ! git diff --quiet --exit-code -- libs/proto/src/gen libs/proto/descriptors \
     || [ -n "$(git ls-files --others --exclude-standard -- libs/proto/src/gen libs/proto/descriptors)" ]; then
    git status --short -- libs/proto
    echo "generated code is stale: run 'npm run generate' and commit the result" >&2
    exit 1
  fi
fi
