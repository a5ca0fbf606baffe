import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEntry, AuditRecord } from '../src/index';

const made: string[] = [];

/** A fresh directory under the system temp dir, removed by {@link removeTempDirs}. */
export function tempDir(prefix = 'audit-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes the directories tempDir() made (call in afterAll). */
export function removeTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** The lines of a file as parsed records (every line must be complete). */
export function readRecords(path: string): AuditRecord[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);
}

/** A typical RPC entry. */
export function entry(i: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    actor: 'spiffe://aether.local/aurorad',
    action: 'jobs.SubmitJob',
    requestId: `req-${i}`,
    intentId: `intent-${i % 3}`,
    resource: { type: 'job', id: `jobs/${i}`, attributes: { network: 'none', cpus: 2 } },
    decision: { effect: 'allow', policyIds: ['aurorad-submit'], reason: 'permitted', policySetHash: 'ab12' },
    outcome: 'OK',
    ...over,
  };
}

// Runs a TypeScript file in a child node process, compiled on the fly by @swc/core (as jest does).
const TS_HOOK = `
const swc = require(${JSON.stringify(require.resolve('@swc/core'))});
require.extensions['.ts'] = (m, f) => m._compile(swc.transformFileSync(f, {
  jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' },
}).code, f);
require(process.argv[1]);
`;

/** Spawns `node` on a TypeScript file with arguments; stdout and stderr piped. */
export function spawnTs(file: string, args: string[]): ChildProcess {
  return spawn(process.execPath, ['-e', TS_HOOK, file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}
