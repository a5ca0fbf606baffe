import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, Stack } from '../src';

const aether = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
  spawnSync(process.execPath, [join(repoRoot, 'apps', 'cli', 'dist', 'main.js'), ...args], {
    encoding: 'utf8',
  });

describe('the aether command', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
  });
  afterAll(() => stack.close());

  it('pki init creates a CA and one certificate per identity with private keys 0600', () => {
    const dir = join(stack.dir, 'cli-pki');
    const r = aether('pki', 'init', '--dir', dir);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('spiffe://aether.local/aurorad');
    for (const name of ['aetherd', 'aurorad', 'cfcd', 'admin']) {
      expect(statSync(join(dir, `${name}.key`)).mode & 0o777).toBe(0o600);
    }
    const issued = aether('pki', 'issue', 'alice', '--dir', dir);
    expect(issued.stdout).toContain('spiffe://aether.local/users/alice');
    const shown = aether('pki', 'show', join(dir, 'user-alice.crt'));
    expect(JSON.parse(shown.stdout)).toMatchObject({
      spiffeIds: ['spiffe://aether.local/users/alice'],
      expired: false,
    });
  });

  it('health prints a table, exits 1 when a daemon is down, and prints JSON for scripts', () => {
    const r = aether('--config', stack.clientConfigPath, 'health');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^DAEMON\s+STATUS/);
    expect(r.stdout).toMatch(/aetherd\s+SERVING/);
    expect(r.stdout).toMatch(/aurorad\s+UNREACHABLE/);
    const ok = aether('--config', stack.clientConfigPath, 'health', 'aetherd', '--json');
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual([
      expect.objectContaining({ daemon: 'aetherd', status: 'SERVING' }),
    ]);
  });

  it('rejects an unknown daemon name and an unknown command with a clear message', () => {
    const r = aether('--config', stack.clientConfigPath, 'health', 'nosuchd');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('unknown daemon nosuchd');
    const u = aether('frobnicate');
    expect(u.status).not.toBe(0);
    expect(u.stderr).toContain("unknown command 'frobnicate'");
  });
});
