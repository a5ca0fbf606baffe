// A jest reporter that writes each project's counts to <workspace>/.test-results/<project>.json, so the
// test script can print one total across all projects that nx ran.
const fs = require('node:fs');
const path = require('node:path');

class ResultsReporter {
  constructor(globalConfig, options) {
    this.project = options.project;
  }
  onRunComplete(_contexts, results) {
    const dir = path.join(__dirname, '..', '..', '.test-results');
    fs.mkdirSync(dir, { recursive: true });
    const failures = results.testResults.flatMap((file) =>
      file.testResults.filter((t) => t.status === 'failed').map((t) => t.fullName),
    );
    for (const file of results.testResults) {
      if (file.testExecError)
        failures.push(`${path.basename(file.testFilePath)}: ${file.testExecError.message}`);
    }
    fs.writeFileSync(
      path.join(dir, `${this.project}.json`),
      JSON.stringify({
        project: this.project,
        passed: results.numPassedTests,
        failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
        failures,
      }),
    );
  }
}
module.exports = ResultsReporter;
