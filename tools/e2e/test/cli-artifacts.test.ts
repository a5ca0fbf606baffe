import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, Stack, type StackOptions } from '../src';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `aether` command; stdout kept as bytes for `cat`. */
function aether(...args: string[]): Promise<Result & { out: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'apps', 'cli', 'dist', 'main.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => {
      const buf = Buffer.concat(out);
      resolve({ status, stdout: buf.toString(), stderr, out: buf });
    });
  });
}

const NAME = /^artifacts\/[0-9a-z]{26}$/;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('aether artifacts', () => {
  let stack: Stack;
  let importRoot: string;
  const artifacts = (...args: string[]): Promise<Result & { out: Buffer }> =>
    aether('--config', stack.clientConfigPath, 'artifacts', ...args);

  beforeAll(async () => {
    // The import root lives in the stack's directory, which exists once the Stack is constructed.
    const options: StackOptions = {};
    stack = new Stack(options);
    importRoot = join(stack.dir, 'imports');
    mkdirSync(importRoot);
    options.artifacts = { importRoots: [importRoot] };
    await stack.init();
    await stack.start('aetherd');
  }, 60_000);
  afterAll(() => stack.close());

  const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
  let stored = '';

  it('add uploads a file, prints its name, and get shows the metadata', async () => {
    const file = join(stack.dir, 'weights.onnx');
    writeFileSync(file, content);
    const r = await artifacts('add', file, '--type', 'model', '--label', 'stage=eval', '--no-progress');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(NAME);
    expect(r.stderr).toContain(sha(content));
    stored = r.stdout.trim();

    const g = await artifacts('get', stored);
    expect(g.status).toBe(0);
    expect(g.stdout).toMatch(/^Type:\s+model$/m);
    expect(g.stdout).toMatch(/^Media type:\s+application\/onnx$/m);
    expect(g.stdout).toMatch(new RegExp(`^Digest:\\s+${sha(content)}$`, 'm'));
    expect(g.stdout).toMatch(/^Filename:\s+weights\.onnx$/m);
    expect(g.stdout).toMatch(/^Labels:\s+stage=eval$/m);
    const path = /^Path:\s+(.+)$/m.exec(g.stdout)?.[1] ?? '';
    expect(readFileSync(path).equals(content)).toBe(true);

    const j = await artifacts('get', stored.replace('artifacts/', ''), '--json');
    expect((JSON.parse(j.stdout) as { sizeBytes: string }).sizeBytes).toBe(String(content.length));
  });

  it('add --by-path registers a file under an import root; the same content is deduplicated', async () => {
    const file = join(importRoot, 'copy.bin');
    writeFileSync(file, content);
    const r = await artifacts('add', file, '--by-path', '--derived-from', stored, '--no-progress');
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('deduplicated');
    const lineage = await artifacts('lineage', r.stdout.trim(), '--ancestors');
    expect(lineage.stdout).toContain(stored);
  });

  it('cat writes the content byte for byte, whole or as a range, to stdout or a file', async () => {
    const whole = await artifacts('cat', stored);
    expect(whole.status).toBe(0);
    expect(whole.out.equals(content)).toBe(true);
    const part = await artifacts('cat', stored, '--offset', '1000', '--length', '10');
    expect(part.out.equals(content.subarray(1000, 1010))).toBe(true);
    const file = join(stack.dir, 'out.bin');
    const toFile = await artifacts('cat', stored, '-o', file, '--progress');
    expect(toFile.status).toBe(0);
    expect(readFileSync(file).equals(content)).toBe(true);
    expect(toFile.stderr).toMatch(/download\s+100%/);
  });

  it('ls lists with filters; verify reports OK', async () => {
    const ls = await artifacts('ls', '--type', 'model');
    expect(ls.stdout.split('\n')[0]).toMatch(/^ID\s+TYPE\s+SIZE\s+DIGEST\s+AGE\s+FILENAME$/);
    expect(ls.stdout).toContain(stored.replace('artifacts/', ''));
    const none = await artifacts('ls', '--type', 'checkpoint');
    expect(none.stdout.trim().split('\n')).toHaveLength(1);
    const v = await artifacts('verify', stored);
    expect(v.status).toBe(0);
    expect(v.stdout).toContain(`${stored}: OK ${sha(content)}`);
  });

  it('bad input: usage errors exit 64, API errors name the code and reason', async () => {
    const badType = await artifacts('add', '/etc/hostname', '--type', 'weights');
    expect(badType.status).toBe(64);
    expect(badType.stderr).toContain('must be one of dataset, checkpoint, model, report, log, other');
    const missing = await artifacts('add', join(stack.dir, 'nope.bin'));
    expect(missing.status).toBe(64);
    expect(missing.stderr).toContain('cannot read');
    const wrongDigest = await artifacts('add', '/etc/hostname', '--digest', `sha256:${'0'.repeat(64)}`);
    expect(wrongDigest.status).toBe(1);
    expect(wrongDigest.stderr).toMatch(/^aether: INVALID_ARGUMENT: .* \[DIGEST_MISMATCH\]$/m);
    const outside = await artifacts('add', '/etc/hostname', '--by-path');
    expect(outside.status).toBe(1);
    expect(outside.stderr).toContain('[PATH_OUTSIDE_ROOT]');
    const unknown = await artifacts('get', '0'.repeat(26));
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('NOT_FOUND');
  });

  it('rm deletes the record; get then answers NOT_FOUND', async () => {
    const r = await artifacts('rm', stored);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(stored);
    const g = await artifacts('get', stored);
    expect(g.status).toBe(1);
    expect(g.stderr).toContain('[ARTIFACT_NOT_FOUND]');
  });
});
