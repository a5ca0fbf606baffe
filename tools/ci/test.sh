#!/usr/bin/env bash
# The whole test suite, as CI runs it (`npm test`): install what is missing, check the contracts and the
# generated code, then lint, typecheck, build and test every project through nx. Ends with one line
# "tests: N passed, N failed".
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export NX_DAEMON=false NX_NO_CLOUD=true NX_TUI=false FORCE_COLOR=0

bash tools/dev/ensure-deps.sh test

echo "==> contracts: buf lint, generated code up to date"
bash tools/proto/generate.sh --check
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:proto/aether 2>/dev/null; then
  echo "==> contracts: buf breaking (FILE) against the previous commit"
  node_modules/.bin/buf breaking --against ".git#ref=HEAD~1"
fi

rm -rf .test-results
echo "==> format (prettier --check)"
node_modules/.bin/prettier --check --log-level warn . || { echo "formatting differs: run npm run format" >&2; exit 1; }
echo "==> deploy: systemd-analyze verify and security"
bash tools/deploy/verify-units.sh
echo "==> lint, typecheck, build"
node_modules/.bin/nx run-many -t lint typecheck build --parallel=2 --output-style=stream
echo "==> deploy: the Debian package builds and lintian finds no error"
bash tools/deb/build.sh --skip-build --out dist/deb
lintian --fail-on error dist/deb/aether_*.deb
echo "==> tests"
status=0
node_modules/.bin/nx run-many -t test --parallel=1 --skip-nx-cache --output-style=stream || status=$?
node tools/ci/summarize-tests.cjs .test-results || status=1
exit $status
