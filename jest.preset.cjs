// One jest setup for every package: TypeScript through @swc/jest (no type checking here — `typecheck`
// does that), Node environment, unit tests beside the code and integration tests under test/.
const path = require('node:path');

module.exports = (projectDir) => ({
  displayName: path.basename(projectDir),
  rootDir: projectDir,
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.test.ts'],
  testTimeout: 60_000,
  reporters: [
    'default',
    [path.join(__dirname, 'tools/ci/jest-results-reporter.cjs'), { project: path.basename(projectDir) }],
  ],
  // Workspace packages resolve to their sources so unit tests need no prior build.
  moduleNameMapper: { '^@aether/([a-z-]+)$': path.join(__dirname, 'libs/$1/src/index.ts') },
});
