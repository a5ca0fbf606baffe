import { spawnSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { healthV1 } from '@aether/proto';
import { Stack } from '../src';

describe('daemon lifecycle and configuration', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await new Stack().init();
  });
  afterAll(() => stack.close());

  it('refuses to start a second daemon on a socket a live daemon answers', async () => {
    await stack.start('aetherd');
    const second = stack.spawn('aetherd');
    expect(await second.exited).toBe(1);
    const fatal = await second.waitForLog((l) => l['level'] === 'fatal');
    expect(String(fatal['msg'])).toMatch(/already serving on .*aetherd\.sock/);
    expect(existsSync(stack.socket('aetherd'))).toBe(true);
  });

  it('goes NOT_SERVING, removes its socket and exits 0 on SIGTERM', async () => {
    const client = stack.client();
    const health = client.healthOf('aetherd');
    const seen: number[] = [];
    const watch = health.watch({ service: '' });
    watch.on('data', (r: healthV1.HealthCheckResponse) => seen.push(r.status));
    watch.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 300));
    const code = await stack.stop('aetherd');
    expect(code).toBe(0);
    expect(seen[0]).toBe(healthV1.HealthCheckResponse_ServingStatus.SERVING);
    expect(seen).toContain(healthV1.HealthCheckResponse_ServingStatus.NOT_SERVING);
    expect(existsSync(stack.socket('aetherd'))).toBe(false);
    client.close();
  });

  it('replaces a stale socket left by a killed process', async () => {
    // A process that binds the socket and is killed -9 leaves the file behind.
    const holder = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stack.socket('aetherd'))}, () => console.log('up'))`,
    ]);
    await new Promise((r) => holder.stdout.once('data', r));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    expect(existsSync(stack.socket('aetherd'))).toBe(true);
    const p = await stack.start('aetherd');
    await p.waitForLog((l) => l['msg'] === 'removed a stale socket left by a previous run');
    expect((await stack.client().health('aetherd')).status).toBe('SERVING');
    await stack.stop('aetherd');
  });

  it('rejects a malformed configuration naming the field, its source and exits 78', () => {
    const bad = join(stack.dir, 'bad.yaml');
    writeFileSync(bad, 'socket:\n  mode: "0666"\nmaxMessageBytes: 12\nlogLevl: info\n');
    const r = spawnSync(
      process.execPath,
      [join(__dirname, '../../../apps/aetherd/dist/main.js'), '--config', bad],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(
      `socket.mode: must not grant access to others (last digit must be 0) (from file ${bad})`,
    );
    expect(r.stderr).toMatch(/maxMessageBytes: .*(from file)/);
    expect(r.stderr).toContain('logLevl: unknown setting');
  });

  it('names a bad environment value and a bad flag', () => {
    const main = join(__dirname, '../../../apps/aetherd/dist/main.js');
    const env = spawnSync(process.execPath, [main, '--config', stack.configPath('aetherd')], {
      encoding: 'utf8',
      env: { ...process.env, AETHERD_SHUTDOWN_GRACE_MS: 'soon' },
    });
    expect(env.status).toBe(78);
    expect(env.stderr).toContain(
      'shutdownGraceMs: "soon" is not a number (from env AETHERD_SHUTDOWN_GRACE_MS)',
    );
    const flag = spawnSync(
      process.execPath,
      [main, '--config', stack.configPath('aetherd'), '--socket', 'rel.sock'],
      {
        encoding: 'utf8',
      },
    );
    expect(flag.status).toBe(78);
    expect(flag.stderr).toContain('socket.path: must be an absolute path (from flag --socket)');
  });

  it('prints help that names every setting and the exit codes', () => {
    const r = spawnSync(process.execPath, [join(__dirname, '../../../apps/cfcd/dist/main.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    for (const flag of [
      '--config',
      '--socket',
      '--insecure-plaintext-socket',
      '--aetherd-socket',
      '--check-config',
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('78 bad configuration');
  });

  it('serves plaintext only when asked explicitly, and says so loudly', async () => {
    const p = stack.spawn('aetherd', [
      '--config',
      stack.configPath('aetherd'),
      '--insecure-plaintext-socket',
    ]);
    stack.daemons.set('aetherd', p);
    const warning = await p.waitForLog((l) => String(l['msg']).startsWith('INSECURE'));
    expect(warning['level']).toBe('warn');
    await p.waitForLog((l) => l['msg'] === 'listening' && l['tls'] === 'insecure-plaintext');
    await stack.stop('aetherd');
  });
});
