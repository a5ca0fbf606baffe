// Adds up the per-project results written by tools/ci/jest-results-reporter.cjs and prints one line:
// "tests: N passed, N failed". Exits 1 when anything failed or no test ran at all.
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2] ?? '.test-results';
let passed = 0;
let failed = 0;
let files = [];
try {
  files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
} catch {
  // No results directory: nothing ran.
}
for (const f of files) {
  const r = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
  passed += r.passed;
  failed += r.failed;
  for (const name of r.failures) console.log(`FAILED [${r.project}] ${name}`);
}
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
