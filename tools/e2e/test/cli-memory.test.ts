import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, Stack } from '../src';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `aether` command, with `input` on its stdin. */
function aether(args: string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'apps', 'cli', 'dist', 'main.js'), ...args], {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

const ENTRY_NAME = /^entries\/[0-9a-z]{26}$/;

describe('aether memory', () => {
  let stack: Stack;
  const memory = (...args: string[]): Promise<Result> =>
    aether(['--config', stack.clientConfigPath, 'memory', ...args]);

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
  }, 60_000);
  afterAll(() => stack.close());

  it('adds a note, a document from a file and text from stdin, and searches them with citations', async () => {
    const note = await memory(
      'add',
      '--title',
      'Runbook',
      '--tag',
      'ops',
      '--tag',
      'oncall',
      'restart the ingest worker when the queue stalls',
    );
    expect(note.status).toBe(0);
    expect(note.stdout.trim()).toMatch(ENTRY_NAME);
    expect(note.stderr).toBe('note, version 1, 47 characters in 1 passage\n');

    const file = join(stack.dir, 'design.md');
    writeFileSync(
      file,
      `# Design\n\n${'Background paragraph. '.repeat(60)}\n\nThe ingest queue uses a write-ahead log.\n`,
    );
    const doc = await memory('add', '--file', file, '--source-uri', `file://${file}`, '--tag', 'design');
    expect(doc.status).toBe(0);
    expect(doc.stderr).toMatch(/^document, version 1, \d+ characters in [2-9] passages\n$/);

    const piped = await aether(
      ['--config', stack.clientConfigPath, 'memory', 'add', '-'],
      'from stdin: the queue drains at night\n',
    );
    expect(piped.status).toBe(0);

    const hits = await memory('search', 'queue');
    expect(hits.status).toBe(0);
    const lines = hits.stdout.split('\n');
    expect(lines[0]).toMatch(/^1\. entries\/[0-9a-z]{26}@1 {2}chars \d+-\d+ {2}score \d+\.\d{3}/);
    expect(hits.stdout).toContain('[queue]');
    expect(hits.stdout).toMatch(/^ {3}by spiffe:\/\/aether\.local\/admin, .*at \d{4}-/m);
    expect(hits.stderr).toBe('3 hits of 3 matching passages\n');

    const filtered = await memory('search', 'queue', '--tag', 'design', '--json');
    const res = JSON.parse(filtered.stdout) as {
      citations: { entry: string; snippetText: string; provenance: { sourceUri: string } }[];
    };
    expect(res.citations).toHaveLength(1);
    expect(res.citations[0]!.provenance.sourceUri).toBe(`file://${file}`);
    expect(res.citations[0]!.snippetText).toContain('The ingest queue uses a write-ahead log.');

    const ls = await memory('ls', '--tag', 'ops');
    expect(ls.stdout).toMatch(
      /^ID\s+VERSION\s+KIND\s+UPDATED\s+TAGS\s+TITLE\n[0-9a-z]{26}\s+1\s+note\s+\S+\s+ops,oncall\s+Runbook\n$/,
    );
  });

  it('shows, updates, lists versions of and removes an entry', async () => {
    const name = (await memory('add', '--title', 'Draft', 'first draft of the plan')).stdout.trim();
    const id = name.slice('entries/'.length);
    const upd = await memory('update', id, 'second draft of the plan', '--expected-version', '1');
    expect(upd).toMatchObject({ status: 0, stdout: `${name}@2\n` });

    const get = await memory('get', id);
    expect(get.stdout).toMatch(/^Name:\s+entries\/\S+\nVersion:\s+2\nKind:\s+note\nTitle:\s+Draft\n/);
    expect(get.stdout).toMatch(/\n\nsecond draft of the plan\n$/);
    expect((await memory('get', id, '--version', '1', '--text')).stdout).toBe('first draft of the plan');
    const versions = await memory('versions', id);
    expect(versions.stdout).toMatch(/^VERSION\s+UPDATED\s+ACTOR\s+CHARS\s+TITLE\n2\s+.*\n1\s+.*\n$/);

    expect(await memory('rm', id)).toMatchObject({ status: 0, stdout: `deleted ${name}\n` });
    expect((await memory('search', 'draft')).stdout).toBe('');
    const gone = await memory('get', id);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toBe(`aether: NOT_FOUND: ${name} not found [ENTRY_NOT_FOUND]\n`);
    expect((await memory('get', id, '--version', '1', '--text')).stdout).toBe('first draft of the plan');
    expect(await memory('rm', '--purge', id)).toMatchObject({ status: 0, stdout: `purged ${name}\n` });
    expect((await memory('get', id, '--version', '1')).status).toBe(1);
  });

  it('reports a malformed query and bad usage clearly', async () => {
    const bad = await memory('search', 'foo(');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(
      /^aether: INVALID_ARGUMENT: query: unbalanced "\(" at position 3: .* \[INVALID_QUERY\]\n$/,
    );
    const usage = await memory('add');
    expect(usage.status).toBe(64);
    expect(usage.stderr).toContain('nothing to add');
    const kind = await memory('add', '--kind', 'memo', 'x');
    expect(kind.status).toBe(64);
    rmSync(join(stack.dir, 'design.md'), { force: true });
  });
});
