#!/usr/bin/env bash
# Creates the standard files of a workspace package (libs/NAME or apps/NAME):
#   new-package.sh libs/rpc "@aether/rpc" "libs/proto libs/log"
# Every package has the same shape: src/ compiled to dist/ by tsconfig.lib.json, tests in src/**/*.spec.ts
# (unit) and test/**/*.test.ts (integration), run by jest through @swc/jest.
set -euo pipefail
dir=$1 name=$2 deps=${3:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$root/$dir/src"
cd "$root/$dir"
rel=$(realpath --relative-to="$root/$dir" "$root")
refs=""
for d in $deps; do refs="$refs{\"path\":\"$rel/$d/tsconfig.lib.json\"},"; done
refs="[${refs%,}]"
[ -f package.json ] || cat > package.json <<JSON
{
  "name": "$name",
  "version": "0.1.0",
  "private": true,
  "main": "dist/index.js",
  "types": "dist/index.d.ts"
}
JSON
cat > tsconfig.json <<JSON
{
  "extends": "$rel/tsconfig.base.json",
  "files": [],
  "references": [{ "path": "./tsconfig.lib.json" }, { "path": "./tsconfig.spec.json" }]
}
JSON
cat > tsconfig.lib.json <<JSON
{
  "extends": "$rel/tsconfig.base.json",
  "compilerOptions": { "rootDir": "src", "outDir": "dist", "tsBuildInfoFile": "dist/tsconfig.lib.tsbuildinfo" },
  "include": ["src/**/*.ts"],
  "exclude": ["src/**/*.spec.ts"],
  "references": $refs
}
JSON
cat > tsconfig.spec.json <<JSON
{
  "extends": "$rel/tsconfig.base.json",
  "compilerOptions": {
    "outDir": "out-tsc/spec",
    "types": ["jest", "node"],
    "tsBuildInfoFile": "out-tsc/spec/tsconfig.spec.tsbuildinfo"
  },
  "include": ["src/**/*.spec.ts", "test/**/*.ts"],
  "references": [{ "path": "./tsconfig.lib.json" }]
}
JSON
cat > jest.config.cjs <<JSON
module.exports = require('$rel/jest.preset.cjs')(__dirname);
JSON
