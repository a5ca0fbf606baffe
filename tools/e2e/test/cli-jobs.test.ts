import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, Stack } from '../src';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built `aether` command. Asynchronous (not spawnSync) so that this process keeps reading
 * the daemons' log pipes while a command waits for a job.
 */
function aether(...args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'apps', 'cli', 'dist', 'main.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const JOB_NAME = /^jobs\/[0-9a-z]{26}$/;

describe('aether jobs and aether doctor (runc, as root)', () => {
  let stack: Stack;
  const jobs = (...args: string[]): Promise<Result> =>
    aether('--config', stack.clientConfigPath, 'jobs', ...args);

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
  }, 60_000);
  afterAll(() => stack.close());

  let failedJob = '';

  it('run --wait prints a summary and exits with the job’s exit code', async () => {
    const r = await jobs(
      'run',
      '--wait',
      '--memory',
      '256Mi',
      '--cpu',
      '500m',
      '--',
      '/bin/sh',
      '-c',
      'echo hi; exit 3',
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/^Job:\s+jobs\/[0-9a-z]{26}$/m);
    expect(r.stdout).toMatch(/^State:\s+FAILED$/m);
    expect(r.stdout).toMatch(/^Exit:\s+3$/m);
    expect(r.stdout).toMatch(/^Output:\s+3 B stdout, 0 B stderr$/m);
    failedJob = /^Job:\s+(\S+)$/m.exec(r.stdout)![1]!;
    const tail = await jobs('logs', '--tail', '1', failedJob);
    expect(tail).toMatchObject({ status: 0, stdout: 'hi\n' });
  });

  it('run --follow streams the output and exits 0 when the job succeeds', async () => {
    const r = await jobs('run', '--follow', '--', '/bin/echo', 'hello');
    expect(r).toMatchObject({ status: 0, stdout: 'hello\n', stderr: '' });
    const both = await jobs('run', '--follow', '--', '/bin/sh', '-c', 'echo out; echo err >&2; exit 4');
    expect(both.status).toBe(4);
    expect(both.stdout).toBe('out\n');
    expect(both.stderr).toMatch(/^err\naether: jobs\/\S+ ended FAILED/);
  });

  it('runs a job in the background, lists, shows, stops, waits for and deletes it', async () => {
    const run = await jobs('run', '--label', 'cli-test=sleep', '--grace', '1s', '--', '/bin/sleep', '30');
    expect(run.status).toBe(0);
    const name = run.stdout.trim();
    expect(name).toMatch(JOB_NAME);
    const id = name.slice('jobs/'.length);

    // Wait until it runs (the submit returns it STARTING).
    for (let i = 0; ; i++) {
      const g = await jobs('get', '--json', id);
      if ((JSON.parse(g.stdout) as { state: string }).state === 'JOB_STATE_RUNNING') break;
      if (i > 50) throw new Error(`never RUNNING: ${g.stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ls = await jobs('ls', '--state', 'running', '--label', 'cli-test=sleep');
    expect(ls.status).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+STATE\s+AGE\s+DURATION\s+EXIT\s+COMMAND\n/);
    expect(ls.stdout).toMatch(new RegExp(`^${id}\\s+RUNNING\\s+\\S+\\s+\\S+\\s+-\\s+/bin/sleep 30$`, 'm'));
    const lsJson = JSON.parse((await jobs('ls', '--json', '--state', 'running,pending')).stdout) as {
      name: string;
    }[];
    expect(lsJson.map((j) => j.name)).toContain(name);

    const get = await jobs('get', name);
    expect(get.status).toBe(0);
    expect(get.stdout).toMatch(/^State:\s+RUNNING$/m);
    expect(get.stdout).toMatch(/^Actor:\s+spiffe:\/\/aether.local\/admin$/m);
    expect(get.stdout).toMatch(/^Command:\s+\/bin\/sleep 30$/m);
    expect(get.stdout).toMatch(/^Events:\n {2}\S+\s+SUBMITTED/m);

    const stop = await jobs('stop', '--grace', '1s', id);
    expect(stop).toMatchObject({ status: 0, stdout: `stopping ${name}: SIGTERM sent, SIGKILL after 1s\n` });
    // sleep as PID 1 ignores SIGTERM: killed after the grace period.
    const wait = await jobs('wait', '--timeout', '20s', id);
    expect(wait.status).toBe(128 + 9);
    expect(wait.stdout).toMatch(/^State:\s+KILLED$/m);
    expect(wait.stdout).toMatch(/^Exit:\s+SIGKILL$/m);

    const rm = await jobs('rm', id);
    expect(rm).toMatchObject({ status: 0, stdout: `deleted ${name}\n` });
    const gone = await jobs('get', id);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toBe(`aether: NOT_FOUND: ${name} not found [JOB_NOT_FOUND]\n`);
  });

  it('prints JSON that parses, for scripts', async () => {
    const r = await jobs(
      'run',
      '--wait',
      '--json',
      '--env',
      'GREETING=hej',
      '--',
      '/bin/sh',
      '-c',
      'echo $GREETING',
    );
    expect(r.status).toBe(0);
    const job = JSON.parse(r.stdout) as { name: string; state: string; exitStatus: { exitCode: number } };
    expect(job).toMatchObject({ state: 'JOB_STATE_SUCCEEDED', exitStatus: { exitCode: 0 } });
    expect((await jobs('logs', job.name)).stdout).toBe('hej\n');
    const get = JSON.parse((await jobs('get', '--json', job.name)).stdout) as { events: unknown[] };
    expect(get.events.length).toBeGreaterThan(2);
    const submitted = await jobs('run', '--json', '--', '/bin/true');
    expect((JSON.parse(submitted.stdout) as { name: string }).name).toMatch(JOB_NAME);
  });

  it('refuses bad units and names with exit 64 and a clear message, before calling aetherd', async () => {
    const mem = await jobs('run', '--memory', '12XB', '--', '/bin/true');
    expect(mem.status).toBe(64);
    expect(mem.stderr).toContain(
      `aether: option '--memory <size>' argument '12XB' is invalid. memory "12XB" is not a size`,
    );
    expect(mem.stderr).toContain('512Mi');
    const cpu = await jobs('run', '--cpu', 'lots', '--', '/bin/true');
    expect(cpu.status).toBe(64);
    expect(cpu.stderr).toContain(
      'cpu "lots" is not a CPU amount; use millicores like 500m, or cores like 1.5 or 2',
    );
    const timeout = await jobs('run', '--timeout', '10', '--', '/bin/true');
    expect(timeout.status).toBe(64);
    expect(timeout.stderr).toContain('timeout "10" has no unit');
    const state = await jobs('ls', '--state', 'runing');
    expect(state.status).toBe(64);
    expect(state.stderr).toContain('unknown job state "runing"');
    const sig = await jobs('signal', 'x', 'NOPE');
    expect(sig.status).toBe(64);
  });

  it('doctor checks this host and the daemons and exits 0 when jobs can run', async () => {
    const r = await aether('--config', stack.clientConfigPath, 'doctor');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ {2}✓ runtime\s+runc \S+ at \S+runc$/m);
    expect(r.stdout).toMatch(/^ {2}✓ monitor\s+conmon /m);
    expect(r.stdout).toMatch(/^ {2}[✓✗] seccomp\s+/m);
    expect(r.stdout).toMatch(/^ {2}✓ aetherd\s+SERVING/m);
    expect(r.stdout).toMatch(/^ {2}✗ aurorad\s+UNREACHABLE/m);
    const json = JSON.parse(
      (await aether('--config', stack.clientConfigPath, 'doctor', '--json')).stdout,
    ) as {
      ok: boolean;
      features: { name: string }[];
    };
    expect(json.ok).toBe(true);
    expect(json.features.map((f) => f.name)).toEqual(
      expect.arrayContaining(['runtime', 'monitor', 'seccomp']),
    );
  });

  it('has help with examples on every jobs command', async () => {
    const subs = ['run', 'ls', 'get', 'logs', 'wait', 'stop', 'kill', 'signal', 'cancel', 'rm'];
    const helps = await Promise.all(subs.map((sub) => aether('jobs', sub, '--help')));
    for (const h of helps) {
      expect(h.status).toBe(0);
      expect(h.stdout).toContain('Example');
    }
    expect((await aether('doctor', '--help')).stdout).toContain('Examples:');
  });
});
