import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildOciConfig,
  DEFAULT_PROFILE,
  prepareRootfs,
  removeCgroup,
  type HostFacts,
  type JobSandbox,
} from '../src/index';

/** The unprivileged ids jobs run as in these tests (nobody:nogroup on Debian). */
export const JOB_UID = 65534;
export const JOB_GID = 65534;

/** Host paths bound read-only into test containers (the merged-/usr links become symlinks). */
export const SYSTEM_BINDS = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/etc'];

const tempDirs: string[] = [];

/** A fresh directory under os.tmpdir(), removed by {@link removeTempDirs}. */
export function tempDir(prefix = 'aether-sandbox-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The job's work directory on the host (bound at /work). */
  workDir: string;
  id: string;
}

/** Overrides for one test container's JobSandbox. */
export type JobOverrides = Partial<Omit<JobSandbox, 'resources'>> & {
  resources?: Partial<JobSandbox['resources']>;
};

/**
 * Builds a bundle for `argv` with prepareRootfs + buildOciConfig, runs it with `runc run` (no
 * terminal: runc hands the container its own stdio, so the pipes here are the job's), then deletes
 * the container, its cgroup and the bundle.
 */
export async function runJob(
  host: HostFacts,
  runtimeRoot: string,
  argv: string[],
  overrides: JobOverrides = {},
): Promise<RunResult> {
  const id = `aether-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  const bundle = tempDir('aether-bundle-');
  const rootfsDir = join(bundle, 'rootfs');
  const workDir = join(bundle, 'work');
  mkdirSync(workDir, { mode: 0o755 });
  chownSync(workDir, JOB_UID, JOB_GID);
  const { resources, ...rest } = overrides;
  const job: JobSandbox = {
    id,
    argv,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/work', LANG: 'C.UTF-8' },
    cwd: '/work',
    uid: JOB_UID,
    gid: JOB_GID,
    hostname: 'job',
    rootfsDir,
    workDir,
    systemBinds: SYSTEM_BINDS,
    extraMounts: [],
    network: 'none',
    resources: {
      cpuMillicores: 1000,
      cpuWeight: 100,
      memoryBytes: 256 * 1024 * 1024,
      memorySwapBytes: 0,
      pidsMax: 128,
      ioReadBps: 0,
      ioWriteBps: 0,
      tmpSizeBytes: 16 * 1024 * 1024,
      ...resources,
    },
    devices: [],
    cgroupsPath: `/aether-test/${id}`,
    profile: DEFAULT_PROFILE,
    ...rest,
  };
  prepareRootfs(job.rootfsDir, job.systemBinds);
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(buildOciConfig(job, host), null, 2));
  try {
    return await new Promise<RunResult>((resolve, reject) => {
      const child = spawn('runc', ['--root', runtimeRoot, 'run', '--bundle', bundle, id], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, workDir, id });
      });
    });
  } finally {
    spawnSync('runc', ['--root', runtimeRoot, 'delete', '--force', id], { stdio: 'ignore', timeout: 5_000 });
    await removeCgroup(job.cgroupsPath, { removeEmptyParents: true });
  }
}

/** `key=value` lines of a script's output. */
export function keyValues(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Writes nothing; a unique scratch name for files a failing sandbox might leave on the host. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
}
