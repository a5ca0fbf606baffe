import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot, Stack } from '../src';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

const CLI = join(repoRoot, 'apps', 'cli', 'dist', 'main.js');

/** Runs the built `aether` command to its end. */
function aether(...args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A long-running `aether` command (`events watch`) whose output is read while it runs. */
class Running {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((r) => this.child.once('close', (code) => r(code)));
  }

  /** The complete lines printed so far, each parsed as JSON. */
  get messages(): { event?: { sequence: string; type: string }; gap?: unknown }[] {
    return this.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as { event?: { sequence: string; type: string } });
  }

  /** The sequences of the events printed so far. */
  get sequences(): string[] {
    return this.messages.flatMap((m) => (m.event ? [m.event.sequence] : []));
  }

  async waitFor(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > until || this.child.exitCode !== null)
        throw new Error(`${what}: not seen in time\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('aether events, aether metrics and aether top', () => {
  let stack: Stack;
  const cli = (...args: string[]): Promise<Result> => aether('--config', stack.clientConfigPath, ...args);
  const emit = async (...args: string[]): Promise<string> => {
    const r = await cli('events', 'emit', ...args);
    expect(r).toMatchObject({ status: 0, stderr: '' });
    expect(r.stdout).toMatch(/^\d+\n$/);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
  }, 60_000);
  afterAll(() => stack.close());

  it('emits an event and finds it with events ls and events get', async () => {
    const seq = await emit('clitest.hello', '--subject', 'things/1', '-d', 'who=world', '-d', 'n:=3');

    const ls = await cli('events', 'ls', '--type', 'clitest.hello', '--json');
    expect(ls).toMatchObject({ status: 0, stderr: '' });
    const listed = JSON.parse(ls.stdout) as Record<string, unknown>[];
    expect(listed).toContainEqual(
      expect.objectContaining({
        name: `events/${seq}`,
        sequence: seq,
        type: 'clitest.hello',
        subject: 'things/1',
        data: { who: 'world', n: 3 },
        actor: 'spiffe://aether.local/admin',
      }),
    );

    const text = await cli('events', 'ls', '--from', seq, '--type-prefix', 'clitest');
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^SEQ\s+TIME\s+TYPE\s+SUBJECT\s+SOURCE\s+DATA\n/);
    expect(text.stdout).toMatch(
      new RegExp(`^${seq}\\s+\\d{4}-\\S+Z\\s+clitest\\.hello\\s+things/1\\s+\\S+\\s+who=world n=3$`, 'm'),
    );

    const get = await cli('events', 'get', seq);
    expect(get.status).toBe(0);
    expect(get.stdout).toMatch(/^Type:\s+clitest\.hello$/m);
    expect(get.stdout).toMatch(/^Data:\n {2}\{\n {4}"who": "world",\n {4}"n": 3\n {2}\}\n$/m);
    const json = await cli('events', 'emit', 'clitest.json', '--data', '{"epoch": 2}', '--json');
    expect(json.status).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ type: 'clitest.json', data: { epoch: 2 } });
  });

  it('watches from a sequence, resumes by itself across an aetherd restart, and exits 0 on Ctrl-C', async () => {
    const first = await emit('clitest.watch', '-d', 'step:=1');
    const watch = new Running([
      '--config',
      stack.clientConfigPath,
      'events',
      'watch',
      '--from',
      first,
      '--type-prefix',
      'clitest.watch',
      '--heartbeat',
      '1',
      '--json',
    ]);
    try {
      await watch.waitFor(() => watch.sequences.includes(first), 'the first event');
      const second = await emit('clitest.watch', '-d', 'step:=2');
      await watch.waitFor(() => watch.sequences.includes(second), 'the second event');

      await stack.stop('aetherd');
      await stack.start('aetherd');
      const third = await emit('clitest.watch', '-d', 'step:=3');
      const fourth = await emit('clitest.watch', '-d', 'step:=4');
      await watch.waitFor(() => watch.sequences.includes(fourth), 'the events after the restart');

      expect(watch.sequences).toEqual([first, second, third, fourth]);
      expect(watch.messages.every((m) => m.event?.type === 'clitest.watch')).toBe(true);
      expect(watch.stderr).toMatch(
        /^aether: note: event stream lost \(.+\); resubscribing from sequence \d+$/m,
      );
    } finally {
      watch.child.kill('SIGINT');
    }
    expect(await watch.exited).toBe(0);
  }, 60_000);

  it('prints events as lines, and a watch from now sees only new events', async () => {
    await emit('clitest.old');
    const watch = new Running([
      '--config',
      stack.clientConfigPath,
      'events',
      'watch',
      '--type-prefix',
      'clitest',
    ]);
    try {
      // Whether the watch has subscribed yet cannot be seen from outside: emit until one shows up.
      for (let i = 0; !watch.stdout.includes('clitest.new'); i++) {
        if (i > 40) throw new Error(`no new event seen\n${watch.stdout}\n${watch.stderr}`);
        await emit('clitest.new', '-d', 'x=1');
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(watch.stdout).not.toContain('clitest.old');
      expect(watch.stdout).toMatch(/^ *\d+ {2}\d{4}-\S+Z {2}clitest\.new +- +\S+ +x=1$/m);
    } finally {
      watch.child.kill('SIGINT');
    }
    expect(await watch.exited).toBe(0);
  });

  it('refuses bad data and bad flags with exit 64 and a clear message', async () => {
    const bad = await cli('events', 'emit', 'clitest.bad', '--data', '{not json');
    expect(bad.status).toBe(64);
    expect(bad.stderr).toMatch(/^aether: --data is not valid JSON \(.+\); give an object such as/);
    const array = await cli('events', 'emit', 'clitest.bad', '--data', '[1,2]');
    expect(array).toMatchObject({
      status: 64,
      stderr: `aether: --data must be a JSON object such as '{"epoch": 3}', got an array\n`,
    });
    const field = await cli('events', 'emit', 'clitest.bad', '-d', 'n:=three');
    expect(field.status).toBe(64);
    expect(field.stderr).toContain('-d n:= needs a JSON value');
    const type = await cli('events', 'emit', 'NoDots');
    expect(type.status).toBe(64);
    expect(type.stderr).toContain('must be two or more dotted lowercase segments');
    for (const from of ['0', '-1', 'abc']) {
      const r = await cli('events', 'watch', '--from', from);
      expect(r.status).toBe(64);
      expect(r.stderr).toContain(`--from "${from}" must be a positive whole number`);
    }
    const both = await cli('events', 'watch', '--from', '1', '--since', '10m');
    expect(both).toMatchObject({
      status: 64,
      stderr: 'aether: --from and --since do not mix: choose where to start\n',
    });
    const section = await cli('metrics', '--section', 'jobs,cpu');
    expect(section.status).toBe(64);
    expect(section.stderr).toContain('unknown section "cpu"');
  });

  it('reports a reserved event type as aetherd’s INVALID_ARGUMENT', async () => {
    const r = await cli('events', 'emit', 'job.fake');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^aether: INVALID_ARGUMENT: .*\[EVENT_TYPE_RESERVED\]\n$/);
  });

  it('shows metrics: a summary, JSON with the rpc section, and Prometheus text', async () => {
    await emit('clitest.metrics');
    const json = await cli('metrics', '--json');
    expect(json).toMatchObject({ status: 0, stderr: '' });
    const m = JSON.parse(json.stdout) as { daemon: string; rpc: { methods: { method: string }[] } };
    expect(m.daemon).toBe('aetherd');
    expect(m.rpc.methods.map((x) => x.method)).toContain('/aether.events.v1.EventService/EmitEvent');

    const text = await cli('metrics');
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^aetherd \S+, snapshot at \d{4}-/);
    expect(text.stdout).toMatch(
      /^RPC \(\d+ methods called, \d+ in flight\)\n {2}METHOD\s+CALLS\s+ERRORS\s+P50 MS\s+P99 MS\s+IN FLIGHT$/m,
    );
    expect(text.stdout).toMatch(/^ {2}events\.EmitEvent\s+\d+\s+\d+/m);
    expect(text.stdout).toMatch(/^Process\n/m);

    const only = await cli('metrics', '--section', 'rpc', '--json');
    expect(Object.keys(JSON.parse(only.stdout) as object).sort()).toEqual([
      'daemon',
      'rpc',
      'time',
      'version',
    ]);

    const prom = await cli('metrics', '--prometheus');
    expect(prom.status).toBe(0);
    expect(prom.stdout).toMatch(/^# (HELP|TYPE) aether_/m);
    expect(prom.stdout).toMatch(/^aether_\S+(\{.*\})? \S+$/m);
  });

  it('top --once shows a running job with its state, memory and command', async () => {
    const run = await cli('jobs', 'run', '--', '/bin/sleep', '30');
    expect(run.status).toBe(0);
    const id = run.stdout.trim().slice('jobs/'.length);
    try {
      for (let i = 0; ; i++) {
        const g = await cli('jobs', 'get', '--json', id);
        if ((JSON.parse(g.stdout) as { state: string }).state === 'JOB_STATE_RUNNING') break;
        if (i > 100) throw new Error(`never RUNNING: ${g.stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const top = await cli('top', '--once');
      expect(top.status).toBe(0);
      expect(top.stdout).not.toContain('\x1b[');
      expect(top.stdout).toMatch(/^aether top - \d\d:\d\d:\d\d /);
      expect(top.stdout).toMatch(/^Jobs {5}.*RUNNING [1-9]/m);
      expect(top.stdout).toMatch(/^JOB\s+STATE\s+CPU%\s+MEM\s+PIDS\s+AGE\s+COMMAND$/m);
      expect(top.stdout).toMatch(new RegExp(`^${id}\\s+RUNNING\\s+.*\\s+/bin/sleep 30$`, 'm'));
    } finally {
      await cli('jobs', 'kill', id);
    }
  });

  it('has help with examples on every new command', async () => {
    for (const args of [
      ['events', 'watch'],
      ['events', 'emit'],
      ['events', 'ls'],
      ['events', 'get'],
      ['metrics'],
      ['top'],
    ]) {
      const h = await aether(...args, '--help');
      expect(h.status).toBe(0);
      expect(h.stdout).toContain('Examples:');
    }
  });
});
