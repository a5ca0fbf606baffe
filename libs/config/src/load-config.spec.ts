import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './config-error';
import { envVarName, loadConfig, type ConfigSources } from './load-config';
import { defaultServerConfig, serverConfigSchema, type ServerConfig } from './schemas';
import { loadClientConfig } from './client-config';

const dir = mkdtempSync(join(tmpdir(), 'aether-config-'));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const load = (over: Partial<ConfigSources<ServerConfig>> = {}): ServerConfig =>
  loadConfig(serverConfigSchema, {
    defaults: defaultServerConfig('aetherd'),
    envPrefix: 'AETHERD',
    env: {},
    ...over,
  });

function issuesOf(fn: () => unknown): ConfigError['issues'] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('accepts a metrics listener only on a Unix socket or loopback, from file or environment', () => {
    expect(load().metrics.listen).toBe('');
    const ok = ['unix:/run/aether/aetherd-metrics.sock', '127.0.0.1:9100', 'localhost:0', '[::1]:9464'];
    for (const listen of ok)
      expect(load({ env: { AETHERD_METRICS_LISTEN: listen } }).metrics.listen).toBe(listen);
    const f = file('metrics.yaml', 'metrics:\n  listen: "0.0.0.0:9100"\n');
    const [open, ...rest] = issuesOf(() => load({ file: f }));
    expect(rest).toEqual([]);
    expect(open).toMatchObject({ path: 'metrics.listen', source: `file ${f}` });
    expect(open!.message).toMatch(/"0\.0\.0\.0" is not loopback/);
    for (const bad of [
      '192.168.1.5:9100',
      '[::]:9100',
      ':9100',
      'unix:relative.sock',
      '127.0.0.1',
      '127.0.0.1:70000',
    ])
      expect(issuesOf(() => load({ env: { AETHERD_METRICS_LISTEN: bad } }))).toEqual([
        expect.objectContaining({ path: 'metrics.listen', source: 'env AETHERD_METRICS_LISTEN' }),
      ]);
  });

  it('uses the packaged defaults when nothing else is given', () => {
    const c = load();
    expect(c.socket).toEqual({ path: '/run/aether/aetherd.sock', mode: '0660', group: 'aether' });
    expect(c.tls.mode).toBe('mtls');
  });

  it('layers file < environment < flags', () => {
    const f = file('layer.yaml', 'socket:\n  path: /tmp/file.sock\nlogLevel: debug\nshutdownGraceMs: 5\n');
    const c = load({
      file: f,
      env: { AETHERD_LOG_LEVEL: 'warn', AETHERD_SHUTDOWN_GRACE_MS: '7' },
      flags: { 'socket.path': '/tmp/flag.sock' },
    });
    expect(c.socket.path).toBe('/tmp/flag.sock');
    expect(c.logLevel).toBe('warn');
    expect(c.shutdownGraceMs).toBe(7);
    expect(c.socket.mode).toBe('0660');
  });

  it('names the field, the value problem and its source for a bad file value', () => {
    const f = file('bad.yaml', 'socket:\n  mode: "0666"\nlogLevel: loud\n');
    const issues = issuesOf(() => load({ file: f }));
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'socket.mode', source: `file ${f}` }),
        expect.objectContaining({ path: 'logLevel', source: `file ${f}` }),
      ]),
    );
    expect(issues.find((i) => i.path === 'socket.mode')?.message).toMatch(/others/);
  });

  it('rejects unknown settings by name, catching typos', () => {
    const f = file('typo.yaml', 'socket:\n  pth: /x.sock\n');
    expect(issuesOf(() => load({ file: f }))).toEqual([
      { path: 'socket.pth', message: 'unknown setting', source: `file ${f}` },
    ]);
  });

  it('names the environment variable that holds a non-number', () => {
    const issues = issuesOf(() => load({ env: { AETHERD_MAX_MESSAGE_BYTES: 'lots' } }));
    expect(issues[0]).toMatchObject({ path: 'maxMessageBytes', source: 'env AETHERD_MAX_MESSAGE_BYTES' });
  });

  it('names the flag that carries a bad value', () => {
    const issues = issuesOf(() =>
      load({ flags: { 'socket.path': 'relative.sock' }, flagNames: { 'socket.path': '--socket' } }),
    );
    expect(issues[0]).toMatchObject({ path: 'socket.path', source: 'flag --socket' });
    expect(issues[0]?.message).toMatch(/absolute/);
  });

  it('reports malformed YAML and a missing required file clearly', () => {
    const f = file('broken.yaml', 'socket: [unclosed\n');
    expect(() => load({ file: f })).toThrow(/not valid YAML/);
    expect(() => load({ file: join(dir, 'absent.yaml'), fileRequired: true })).toThrow(/cannot read/);
    expect(load({ file: join(dir, 'absent.yaml') }).logLevel).toBe('info');
  });

  it('derives environment names from camelCase paths', () => {
    expect(envVarName('AETHERD', 'tls.caFile')).toBe('AETHERD_TLS_CA_FILE');
  });
});

describe('loadClientConfig', () => {
  it('resolves relative paths against the config file directory', () => {
    const f = file('client.yaml', 'aetherd:\n  socket: run/aetherd.sock\n  caFile: pki/ca.crt\n');
    const c = loadClientConfig(f, {});
    expect(c.aetherd.socket).toBe(join(dir, 'run/aetherd.sock'));
    expect(c.aetherd.caFile).toBe(join(dir, 'pki/ca.crt'));
    expect(c.aetherd.serverId).toBe('spiffe://aether.local/aetherd');
  });
});
