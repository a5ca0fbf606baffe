import type { AetherClient } from '@aether/client';
import { intentsV1, jobsV1 } from '@aether/proto';
import { ScriptedModelServer, Stack, type ModelRequest } from '../src';

const { IntentEventType } = intentsV1;

const submit = async (c: AetherClient, text: string): Promise<intentsV1.Intent> =>
  (
    await c.call(
      c.intents,
      'submitIntent',
      intentsV1.SubmitIntentRequest.fromPartial({
        input: { $case: 'text', value: text },
        planner: intentsV1.Planner.PLANNER_MODEL,
      }),
    )
  ).intent!;

const get = async (c: AetherClient, name: string): Promise<intentsV1.Intent> =>
  (await c.call(c.intents, 'getIntent', { name })).intent!;

/** Polls GetIntent until the intent has ended. */
const untilEnded = async (c: AetherClient, name: string, timeoutMs = 60_000): Promise<intentsV1.Intent> => {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const i = await get(c, name);
    if (i.endTime) return i;
    if (Date.now() > until)
      throw new Error(
        `timed out; intent is ${intentsV1.intentStateToJSON(i.state)}: ${JSON.stringify(intentsV1.Intent.toJSON(i)).slice(0, 2000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
};

const jobsOfIntent = async (c: AetherClient, intentId: string): Promise<jobsV1.Job[]> =>
  (await c.call(c.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({ intentId, pageSize: 100 }))).jobs;

const stateOf = (i: intentsV1.Intent): string => intentsV1.intentStateToJSON(i.state);

const planningFailures = (i: intentsV1.Intent): string[] =>
  i.events.filter((e) => e.type === IntentEventType.INTENT_EVENT_TYPE_PLANNING_FAILED).map((e) => e.message);

/** What a model answers: a plan as JSON. */
const plan = (...steps: Record<string, unknown>[]): string => JSON.stringify({ steps });

const printFive = {
  id: 'print',
  description: 'print 5 in the sandbox',
  tool: 'jobs.run',
  arguments: {
    spec: {
      argv: ['python3', '-c', 'print(5)'],
      network: 'NETWORK_MODE_NONE',
      resources: { cpuMillicores: 1000, memoryBytes: '536870912', pidsMax: 256 },
      timeout: '300s',
    },
  },
  depends_on: [],
  outputs: ['job', 'stdout', 'exit_code'],
};

const shellExec = {
  id: 'shell',
  description: 'run it in a shell',
  tool: 'shell.exec',
  arguments: { command: 'python3 -c "print(5)"' },
};

/** The chat messages cfcd forwarded, as the endpoint received them. */
const messagesOf = (r: ModelRequest): { role: string; content: string }[] =>
  r.body['messages'] as { role: string; content: string }[];

/**
 * The model planner end to end: aurorad asks cfcd's Generate for a plan, cfcd asks an OpenAI-compatible
 * HTTP endpoint (a scripted local server), aurorad validates the answer, retries with the problems fed
 * back, and runs the plan on aetherd with runc.
 */
describe('the model planner (aurorad → cfcd → an OpenAI-compatible endpoint)', () => {
  let model: ScriptedModelServer;
  let stack: Stack;
  let admin: AetherClient;

  beforeAll(async () => {
    model = await ScriptedModelServer.start();
    stack = await new Stack({
      aurora: { modelPlanner: { model: 'models/planner', attempts: 3, maxTokens: 1024, timeoutMs: 20_000 } },
      cfcd: {
        generation: {
          endpoints: { planner: { baseUrl: model.baseUrl, model: 'scripted-planner', kind: 'chat' } },
        },
      },
    }).init();
    await stack.startAll();
    admin = stack.client();
  }, 60_000);

  afterAll(async () => {
    admin?.close();
    await stack?.close();
    await model?.close();
  });

  beforeEach(() => {
    model.received.length = 0;
  });

  it('runs a valid plan from the model: no playbook, the job runs, the intent SUCCEEDS', async () => {
    model.script = () => plan(printFive);
    const submitted = await submit(admin, 'print five');
    expect(submitted.planner).toBe(intentsV1.Planner.PLANNER_MODEL);
    const done = await untilEnded(admin, submitted.name);
    expect(stateOf(done)).toBe('INTENT_STATE_SUCCEEDED');
    expect(done.plan!.playbook).toBe('');
    expect(done.plan!.steps.map((s) => [s.id, s.tool])).toEqual([['print', 'jobs.run']]);
    expect(String(done.plan!.steps[0]!.result!['stdout']).trim()).toBe('5');
    expect((await jobsOfIntent(admin, done.id)).map((j) => j.name)).toEqual([
      done.plan!.steps[0]!.result!['job'],
    ]);

    // One request, as cfcd forwarded aurorad's Generate: the chat, JSON output, its token limit.
    expect(model.received).toHaveLength(1);
    const [req] = model.received;
    expect(req!.path).toBe('/v1/chat/completions');
    expect(req!.body).toMatchObject({
      model: 'scripted-planner',
      stream: true,
      max_tokens: 1024,
      temperature: 0,
      response_format: { type: 'json_object' },
    });
    expect(messagesOf(req!).map((m) => m.role)).toEqual(['system', 'user']);
    expect(messagesOf(req!)[1]!.content).toBe('print five');
  }, 60_000);

  it('feeds an invalid plan’s problems back to the model and runs the corrected plan', async () => {
    model.script = (_req, n) => (n === 0 ? plan(shellExec) : plan(printFive));
    const submitted = await submit(admin, 'print five, in a shell');
    const done = await untilEnded(admin, submitted.name);
    expect(stateOf(done)).toBe('INTENT_STATE_SUCCEEDED');
    const notes = planningFailures(done);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /^model plan attempt 1 of 3 is invalid: steps\[0\]\.tool: unknown tool "shell\.exec"/,
    );
    expect(done.plan!.steps.map((s) => s.tool)).toEqual(['jobs.run']);

    expect(model.received).toHaveLength(2);
    const retry = messagesOf(model.received[1]!);
    expect(retry.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(retry[2]!.content).toBe(plan(shellExec));
    expect(retry[3]!.content).toContain('That plan is invalid: steps[0].tool: unknown tool "shell.exec"');
    for (const r of model.received) expect(r.body['response_format']).toEqual({ type: 'json_object' });
  }, 60_000);

  it('fails the intent after the configured attempts when every plan is invalid, and runs nothing', async () => {
    model.script = () => plan(shellExec);
    const submitted = await submit(admin, 'do something only a shell can do');
    const done = await untilEnded(admin, submitted.name);
    expect(stateOf(done)).toBe('INTENT_STATE_FAILED');
    expect(done.failureReason).toMatch(
      /^the model planner gave no valid plan in 3 attempt\(s\); the last was invalid: steps\[0\]\.tool: unknown tool "shell\.exec"/,
    );
    expect(model.received).toHaveLength(3);
    expect(planningFailures(done).filter((m) => m.startsWith('model plan attempt'))).toHaveLength(3);
    expect(done.plan?.steps ?? []).toEqual([]);
    expect(await jobsOfIntent(admin, done.id)).toEqual([]);
  }, 60_000);

  it('fails the intent saying the model could not be asked when the endpoint is down', async () => {
    await model.close();
    const submitted = await submit(admin, 'print five');
    const done = await untilEnded(admin, submitted.name);
    expect(stateOf(done)).toBe('INTENT_STATE_FAILED');
    expect(done.failureReason).toMatch(
      /^the model planner could not ask models\/planner: UNAVAILABLE: models\/planner: endpoint http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions cannot be reached: .*ECONNREFUSED/,
    );
    expect(await jobsOfIntent(admin, done.id)).toEqual([]);
  }, 60_000);
});
