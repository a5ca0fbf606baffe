import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { intentsV1 } from '@aether/proto';
import { repoRoot, Stack } from '../src';

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

const CLI = join(repoRoot, 'apps', 'cli', 'dist', 'main.js');

/**
 * Runs the built `aether` command to its end. Asynchronous (not spawnSync) so that this process keeps
 * reading the daemons' log pipes while a command follows an intent.
 */
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

/** `r`'s exit status, with its output in the failure message when it is not the one expected. */
const show = (r: Result): string => `exit ${r.status}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
const expectExit = (r: Result, status: number): void => {
  if (r.status !== status) throw new Error(`expected exit ${status}, got ${show(r)}`);
};

/** The id that `aether intent` printed in its head (`Intent:  intents/<id>`). */
const idOf = (r: Result): string => {
  const m = /^Intent:\s+intents\/([0-9a-z]{26})$/m.exec(r.stdout);
  if (!m) throw new Error(`no intent id printed: ${show(r)}`);
  return m[1]!;
};

/** A progress line of a watch: `10:00:01  STEP_STARTED  run  message…`. */
const progress = (type: string, step: string, message: string): RegExp =>
  new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\s+${type}\\s+${step}\\s+${message}`, 'm');

const count = (text: string, re: RegExp): number => text.match(new RegExp(re.source, 'gm'))?.length ?? 0;

const ASK_GOAL = ['--goal', 'run-command', '--param', 'timeout_seconds=7200'];

describe('aether intent (real aurorad routing to a real aetherd with runc)', () => {
  let stack: Stack;
  const intent = (...args: string[]): Promise<Result> =>
    aether('--config', stack.clientConfigPath, 'intent', ...args);
  const getJson = async (id: string): Promise<intentsV1.Intent> => {
    const r = await intent('get', id, '--json');
    expectExit(r, 0);
    return intentsV1.Intent.fromJSON(JSON.parse(r.stdout));
  };
  /** Intents submitted by the cases below and the state each ended in, for `ls`. */
  const ended = new Map<string, string>();

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
    await stack.start('aurorad');
  }, 60_000);
  afterAll(() => stack?.close());

  it('--watch runs the demo text: the plan (jobs.run, ALLOW), progress, SUCCEEDED and the output', async () => {
    const r = await intent('--watch', "run python3 -c 'print(42)'");
    expectExit(r, 0);
    expect(r.stderr).toBe('');
    const id = idOf(r);
    expect(r.stdout).toMatch(/^What:\s+run python3 -c 'print\(42\)'$/m);
    expect(r.stdout).toMatch(/^Plan: 1 step from playbook run-command, etag sha256:[0-9a-f]+$/m);
    expect(r.stdout).toMatch(/^\s+STEP\s+TOOL\s+DECISION\s+STATE\s+DESCRIPTION$/m);
    expect(r.stdout).toMatch(/^\s+run\s+jobs\.run\s+ALLOW\s+\S+\s+Run python3 -c print\(42\)$/m);
    expect(r.stdout).toMatch(/^\s+allowed: .*\[aurorad-submit-job\]$/m);
    // Progress: one line per event, in order, none printed twice.
    expect(r.stdout).toMatch(progress('SUBMITTED', '-', 'submitted \\(planner playbook\\)'));
    expect(r.stdout).toMatch(progress('STEP_STARTED', 'run', 'jobs\\.run: '));
    expect(r.stdout).toMatch(progress('STEP_SUCCEEDED', 'run', 'jobs/[0-9a-z]{26} exit 0, stdout "42"'));
    const done = progress('STATE_CHANGED', '-', 'RUNNING -> SUCCEEDED$');
    expect(count(r.stdout, done)).toBe(1);
    expect(r.stdout.search(progress('STEP_STARTED', 'run', ''))).toBeLessThan(r.stdout.search(done));
    // The results.
    expect(r.stdout).toMatch(/^Result:\s+SUCCEEDED in \S+$/m);
    expect(r.stdout).toMatch(/^Steps:\n\s+run\s+SUCCEEDED\s+jobs\.run, 1 attempt/m);
    expect(r.stdout).toMatch(/^\s+job:\s+jobs\/[0-9a-z]{26}, exit 0$/m);
    expect(r.stdout).toMatch(/^\s+stdout:\s+42$/m);
    expect(r.stdout.indexOf('Result:')).toBeGreaterThan(r.stdout.search(done));
    ended.set(id, 'SUCCEEDED');

    // `submit --watch --json`: one JSON line per update, for scripts.
    const json = await intent('submit', '--watch', '--json', 'run echo hello');
    expectExit(json, 0);
    expect(json.stderr).toBe('');
    const lines = json.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => intentsV1.WatchIntentResponse.fromJSON(JSON.parse(l)));
    expect(lines.length).toBeGreaterThan(1);
    const last = lines[lines.length - 1]!.intent!;
    expect(last.state).toBe(intentsV1.IntentState.INTENT_STATE_SUCCEEDED);
    expect(String(last.plan!.steps[0]!.result!['stdout']).trim()).toBe('hello');
    ended.set(last.id, 'SUCCEEDED');
  });

  it('shows a network-asking goal DENIED by aurorad-job-no-network; --watch exits 1', async () => {
    const goal = [
      '--goal',
      'run-command',
      '--param',
      'command=python3 -c "print(1)"',
      '--param',
      'network=NETWORK_MODE_HOST',
    ];
    const r = await intent(...goal);
    // Without --watch the submission itself succeeded: it prints the plan and exits 0.
    expectExit(r, 0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^State:\s+DENIED$/m);
    expect(r.stdout).toMatch(/^Reason:\s+policy denied step run .*aurorad-job-no-network.*; nothing ran$/m);
    expect(r.stdout).toMatch(/^What:\s+goal run-command \{.*"network":"NETWORK_MODE_HOST"\}$/m);
    expect(r.stdout).toMatch(/^\s+run\s+jobs\.run\s+DENY\s+DENIED\s+/m);
    expect(r.stdout).toMatch(/^\s+denied: .*\[aurorad-job-no-network\]$/m);
    expect(r.stdout).toMatch(/^\s+error: PERMISSION_DENIED: .*\[POLICY_DENIED\]/m);
    expect(r.stdout).not.toMatch(/Approve:|follow it with/);
    ended.set(idOf(r), 'DENIED');

    const w = await intent(...goal, '--watch');
    expectExit(w, 1);
    expect(w.stderr).toBe('');
    expect(w.stdout).toMatch(
      progress('POLICY_CHECKED', 'run', 'jobs\\.SubmitJob: DENY \\(aurorad-job-no-network'),
    );
    expect(w.stdout).toMatch(progress('STATE_CHANGED', '-', 'PLANNING -> DENIED$'));
    expect(w.stdout).not.toMatch(progress('STEP_STARTED', 'run', ''));
    expect(w.stdout).toMatch(/^Result:\s+DENIED/m);
    expect(w.stdout).toMatch(/^Reason: .*aurorad-job-no-network/m);
    ended.set(idOf(w), 'DENIED');
  });

  it('an ask step awaits approval; approve runs it and watch ends SUCCEEDED', async () => {
    const r = await intent(...ASK_GOAL, '--param', 'command=python3 -c "print(7)"');
    expectExit(r, 0);
    expect(r.stderr).toBe('');
    const id = idOf(r);
    expect(r.stdout).toMatch(/^State:\s+AWAITING_APPROVAL$/m);
    expect(r.stdout).toMatch(/^\s+run\s+jobs\.run\s+ASK\s+AWAITING_APPROVAL\s+/m);
    expect(r.stdout).toMatch(/^\s+needs approval: .*\[aurorad-submit-job-large\]$/m);
    expect(r.stdout).toMatch(
      /^Needs approval \(1 step\):\n\s+run\s+jobs\.run\s+.*\[aurorad-submit-job-large\]$/m,
    );
    expect(r.stdout).toMatch(/^\s+action: jobs\.SubmitJob as spiffe:\/\/aether\.local\/aurorad$/m);
    expect(r.stdout).toMatch(/^\s+arguments: \{.*"argv":\["python3","-c","print\(7\)"\].*"timeout":"7200s"/m);
    expect(r.stdout).toMatch(new RegExp(`^Approve:\\s+aether intent approve ${id}$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^Reject:\\s+aether intent reject ${id} --reason <text>$`, 'm'));

    const approve = await intent('approve', id);
    expectExit(approve, 0);
    expect(approve.stderr).toBe('');
    // It shows exactly what is approved before approving it.
    expect(approve.stdout).toMatch(
      new RegExp(`^Approving 1 step of intents/${id} \\(plan etag sha256:[0-9a-f]+\\):$`, 'm'),
    );
    expect(approve.stdout).toMatch(/^\s+run\s+jobs\.run\s+.*\[aurorad-submit-job-large\]$/m);
    expect(approve.stdout).toMatch(/^\s+arguments: .*"print\(7\)"/m);
    expect(approve.stdout).toMatch(
      new RegExp(`^approved run; intents/${id} is now (RUNNING|SUCCEEDED)$`, 'm'),
    );

    const w = await intent('watch', id);
    expectExit(w, 0);
    expect(w.stderr).toBe('');
    expect(w.stdout).toMatch(/^\s+approved by spiffe:\/\/aether\.local\/admin at \S+$/m);
    expect(w.stdout).toMatch(progress('APPROVAL_REQUESTED', '-', 'approval needed for run'));
    expect(w.stdout).toMatch(
      progress('APPROVED', 'run', 'approved .*\\(by spiffe://aether\\.local/admin\\)'),
    );
    expect(w.stdout).toMatch(/^Result:\s+SUCCEEDED/m);
    expect(w.stdout).toMatch(/^\s+stdout:\s+7$/m);
    ended.set(id, 'SUCCEEDED');

    // Nothing awaits approval any more: approving again says so and exits 1.
    const again = await intent('approve', id);
    expectExit(again, 1);
    expect(again.stderr).toMatch(new RegExp(`^aether: intents/${id} is SUCCEEDED: no step awaits approval`));
  });

  it('reject needs --reason (exit 64), then ends the intent DENIED with the reason', async () => {
    const r = await intent(...ASK_GOAL, '--param', 'command=echo never');
    expectExit(r, 0);
    const id = idOf(r);
    expect(r.stdout).toMatch(/^State:\s+AWAITING_APPROVAL$/m);

    const bare = await intent('reject', id);
    expectExit(bare, 64);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toContain('--reason <text> is required');

    const reject = await intent('reject', id, '--reason', 'not now');
    expectExit(reject, 0);
    expect(reject.stderr).toBe('');
    expect(reject.stdout).toMatch(new RegExp(`^Rejecting 1 step of intents/${id} `, 'm'));
    expect(reject.stdout).toMatch(new RegExp(`^rejected run; intents/${id} is now DENIED$`, 'm'));

    const get = await intent('get', id);
    expectExit(get, 0);
    expect(get.stdout).toMatch(/^State:\s+DENIED$/m);
    expect(get.stdout).toMatch(/^Reason:\s+.*not now/m);
    expect(get.stdout).toMatch(/^\s+rejection:\s+rejected by spiffe:\/\/aether\.local\/admin .*"not now"$/m);
    const w = await intent('watch', id);
    expectExit(w, 1);
    expect(w.stdout).toMatch(/^Result:\s+DENIED/m);
    expect(w.stdout).toMatch(/^Reason: .*not now/m);
    ended.set(id, 'DENIED');
  });

  it('cancel stops a running intent and its job: CANCELLED', async () => {
    const r = await intent('run sleep 60');
    expectExit(r, 0);
    const id = idOf(r);
    expect(r.stdout).toMatch(/^State:\s+(PLANNING|RUNNING)$/m);
    expect(r.stdout).toMatch(new RegExp(`follow it with: aether intent watch ${id}$`, 'm'));
    // Cancel once its job has started, so that the cancel has a job to stop.
    let job: string | undefined;
    for (let i = 0; !job; i++) {
      if (i > 100)
        throw new Error(
          `the job never started: ${JSON.stringify(intentsV1.Intent.toJSON(await getJson(id)))}`,
        );
      job = (await getJson(id)).plan?.steps[0]?.resources.find((x) => x.startsWith('jobs/'));
      if (!job) await new Promise((res) => setTimeout(res, 100));
    }

    const cancel = await intent('cancel', id, '--reason', 'changed my mind');
    expectExit(cancel, 0);
    expect(cancel).toMatchObject({ stdout: `cancelled intents/${id}\n`, stderr: '' });
    const get = await intent('get', id);
    expect(get.stdout).toMatch(/^State:\s+CANCELLED$/m);
    expect(get.stdout).toMatch(/^\s+run\s+jobs\.run\s+CANCELLED/m);
    expect(get.stdout).toMatch(/^Reason:\s+cancelled by spiffe:\/\/aether\.local\/admin: changed my mind$/m);
    expect(get.stdout).toMatch(
      /\sCANCEL_REQUESTED\s+-\s+changed my mind \(by spiffe:\/\/aether\.local\/admin\)$/m,
    );
    // Cancelling again is harmless (the intent is returned unchanged); one that ended otherwise says so.
    const again = await intent('cancel', id);
    expect(again).toMatchObject({ status: 0, stderr: '' });
    expect(again.stdout).toContain(`intents/${id}`);
    const [succeeded] = [...ended].find(([, s]) => s === 'SUCCEEDED')!;
    const late = await intent('cancel', succeeded);
    expect(late).toMatchObject({
      status: 0,
      stdout: `intents/${succeeded} had already ended (SUCCEEDED)\n`,
    });
    const w = await intent('watch', id);
    expectExit(w, 1);
    expect(w.stdout).toMatch(/^Result:\s+CANCELLED/m);
    ended.set(id, 'CANCELLED');

    const wait = await aether('--config', stack.clientConfigPath, 'jobs', 'wait', '--timeout', '20s', job);
    expect(wait.stdout).toMatch(/^State:\s+(STOPPED|KILLED|CANCELLED)$/m);
  });

  it('ls lists the intents with their states; get --json prints the intent', async () => {
    expect(ended.size).toBeGreaterThan(0);
    const ls = await intent('ls');
    expectExit(ls, 0);
    expect(ls.stderr).toBe('');
    expect(ls.stdout).toMatch(/^ID\s+STATE\s+AGE\s+STEPS\s+WHAT\n/);
    for (const [id, state] of ended)
      expect(ls.stdout).toMatch(new RegExp(`^${id}\\s+${state}\\s+\\S+\\s+\\d+/\\d+\\s+\\S`, 'm'));
    expect(ls.stdout).toMatch(/\s+1\/1\s+run python3 -c 'print\(42\)'$/m);

    const denied = await intent('ls', '--state', 'denied', '--json');
    expectExit(denied, 0);
    const listed = (JSON.parse(denied.stdout) as unknown[]).map((x) => intentsV1.Intent.fromJSON(x));
    expect(listed.every((i) => i.state === intentsV1.IntentState.INTENT_STATE_DENIED)).toBe(true);
    expect(listed.map((i) => i.id).sort()).toEqual(
      [...ended]
        .filter(([, s]) => s === 'DENIED')
        .map(([id]) => id)
        .sort(),
    );

    const [id] = [...ended].find(([, s]) => s === 'SUCCEEDED')!;
    const got = await getJson(id);
    expect(got).toMatchObject({
      name: `intents/${id}`,
      id,
      state: intentsV1.IntentState.INTENT_STATE_SUCCEEDED,
    });
    expect(got.plan!.steps[0]!.tool).toBe('jobs.run');
    expect(got.events.length).toBeGreaterThan(3);
    // The bare id and intents/<id> name the same intent.
    expect((await getJson(`intents/${id}`)).id).toBe(id);
  });

  it('refuses bad input: no text and malformed ids exit 64, an unknown goal exits 1', async () => {
    // Refused before calling aurorad, so run side by side.
    const [empty, none, blank, nope, both, param, state] = await Promise.all([
      intent(''),
      intent(),
      intent('submit', '   '),
      intent('get', 'nope'),
      intent('--goal', 'run-command', 'run true'),
      intent('--param', 'x=1', 'run true'),
      intent('ls', '--state', 'bogus'),
    ]);
    for (const r of [empty, none, blank]) {
      expectExit(r, 64);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^aether: nothing to do: give the intent as text .* or as --goal NAME/);
    }
    expectExit(nope, 64);
    expect(nope.stderr).toMatch(/^aether: "nope" is not an intent: give intents\/<id> or the bare id/);
    expectExit(both, 64);
    expect(both.stderr).toContain('not both');
    expectExit(param, 64);
    expect(param.stderr).toContain('--param goes with --goal NAME');
    expectExit(state, 64);
    expect(state.stderr).toContain('unknown intent state "bogus"');

    const goal = await intent('--goal', 'no-such-goal');
    expectExit(goal, 1);
    expect(goal.stdout).toBe('');
    expect(goal.stderr).toMatch(/^aether: NOT_FOUND: .*"no-such-goal".*run-command.* \[UNKNOWN_GOAL\]$/m);
    expect(goal.stderr).toMatch(/^\s+no playbook has this goal name/m);
    const missing = await intent('get', '01jc7v0m4k3h2g1f0e9d8c7b6a');
    expectExit(missing, 1);
    expect(missing.stderr).toMatch(/^aether: NOT_FOUND: .*\[INTENT_NOT_FOUND\]$/m);
  });
});
