import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aetherdConfigSchema, defaultAetherdConfig, type AetherdConfig } from './aetherd';
import { ConfigError } from './config-error';
import { loadConfig } from './load-config';

const dir = mkdtempSync(join(tmpdir(), 'aether-config-jobs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const load = (over: { file?: string; env?: NodeJS.ProcessEnv } = {}): AetherdConfig =>
  loadConfig(aetherdConfigSchema, {
    defaults: defaultAetherdConfig(),
    envPrefix: 'AETHERD',
    env: over.env ?? {},
    ...(over.file ? { file: over.file } : {}),
  });

const yaml = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

function issuesOf(fn: () => unknown): ConfigError['issues'] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('jobs.gpu', () => {
  it('looks for GPU nodes in /dev and discovers the driver by default', () => {
    expect(load().jobs.gpu).toEqual({ deviceDir: '/dev', driverPaths: 'auto' });
  });

  it('takes a device directory and a list of driver paths from the file or the environment', () => {
    const f = yaml(
      'gpu.yaml',
      'jobs:\n  gpu:\n    deviceDir: /srv/gpu-dev\n    driverPaths: [/opt/nvidia/lib64, /usr/local/bin/nvidia-smi]\n',
    );
    expect(load({ file: f }).jobs.gpu).toEqual({
      deviceDir: '/srv/gpu-dev',
      driverPaths: ['/opt/nvidia/lib64', '/usr/local/bin/nvidia-smi'],
    });
    expect(
      load({ file: yaml('none.yaml', 'jobs:\n  gpu:\n    driverPaths: []\n') }).jobs.gpu.driverPaths,
    ).toEqual([]);
    expect(
      load({
        env: { AETHERD_JOBS_GPU_DRIVER_PATHS: '/opt/a.so,/opt/b.so', AETHERD_JOBS_GPU_DEVICE_DIR: '/d' },
      }).jobs.gpu,
    ).toEqual({ deviceDir: '/d', driverPaths: ['/opt/a.so', '/opt/b.so'] });
    expect(load({ env: { AETHERD_JOBS_GPU_DRIVER_PATHS: 'auto' } }).jobs.gpu.driverPaths).toBe('auto');
  });

  it('names each bad value with its path and where it came from', () => {
    const f = yaml(
      'bad.yaml',
      'jobs:\n  gpu:\n    deviceDir: dev\n    driverPaths: [/ok/lib.so, lib.so, /proc/driver, /work/x, /a/../b]\n',
    );
    const issues = issuesOf(() => load({ file: f }));
    const source = `file ${f}`;
    const inSandbox =
      'must not be / or under /proc, /sys, /dev or /work (it is bound at the same path inside the sandbox)';
    expect(issues).toEqual([
      { path: 'jobs.gpu.deviceDir', message: 'must be an absolute path', source },
      { path: 'jobs.gpu.driverPaths.1', message: 'must be an absolute path', source },
      { path: 'jobs.gpu.driverPaths.2', message: inSandbox, source },
      { path: 'jobs.gpu.driverPaths.3', message: inSandbox, source },
      { path: 'jobs.gpu.driverPaths.4', message: 'must not contain ".." or NUL', source },
    ]);
    const num = yaml('num.yaml', 'jobs:\n  gpu:\n    driverPaths: 3\n');
    expect(issuesOf(() => load({ file: num }))).toEqual([
      {
        path: 'jobs.gpu.driverPaths',
        message: 'must be "auto" (discover the driver when aetherd starts) or a list of absolute host paths',
        source: `file ${num}`,
      },
    ]);
    const extra = yaml('extra.yaml', 'jobs:\n  gpu:\n    count: 2\n');
    expect(issuesOf(() => load({ file: extra }))).toEqual([
      { path: 'jobs.gpu.count', message: 'unknown setting', source: `file ${extra}` },
    ]);
  });
});
