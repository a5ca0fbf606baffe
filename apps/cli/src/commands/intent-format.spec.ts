import { status } from '@grpc/grpc-js';
import { RpcError } from '@aether/client';
import { intentsV1, timestampFromDate } from '@aether/proto';
import { UsageError } from '../units';
import {
  approvalText,
  citationLine,
  effectName,
  eventTypeName,
  exitCodeOfIntent,
  intentDetail,
  intentName,
  intentOverview,
  isTerminalIntentState,
  listRow,
  listTable,
  parseGoalName,
  parseIntentStates,
  parseParam,
  parsePlanner,
  planText,
  progressLine,
  resultDetails,
  resultsText,
  rpcErrorNotes,
  stepsToDecide,
  WatchView,
  whatText,
} from './intent-format';

const { IntentState, StepState, PolicyEffect, IntentEventType, Planner } = intentsV1;

const ID = '01jc7v0m4k3h2g1f0e9d8c7b6a';
const at = (iso: string): ReturnType<typeof timestampFromDate> => timestampFromDate(new Date(iso));

const runStep = (over: Partial<intentsV1.Step> = {}): intentsV1.Step =>
  intentsV1.Step.fromPartial({
    id: 'run',
    description: 'Run the command in a sandbox',
    tool: 'jobs.run',
    arguments: { spec: { argv: ['python3', '-c', 'print(42)'] } },
    outputs: ['job', 'exit_code', 'stdout'],
    state: StepState.STEP_STATE_PENDING,
    decision: {
      effect: PolicyEffect.POLICY_EFFECT_ALLOW,
      policyIds: ['members-run-jobs'],
      reason: 'members may run sandboxed jobs',
      action: 'jobs.SubmitJob',
      principal: 'spiffe://aether.local/aurorad',
    },
    ...over,
  });

const publishStep = (over: Partial<intentsV1.Step> = {}): intentsV1.Step =>
  intentsV1.Step.fromPartial({
    id: 'publish',
    description: 'Publish the report',
    tool: 'artifacts.register',
    arguments: { artifact: { path: 'report.md' } },
    dependsOn: ['run'],
    state: StepState.STEP_STATE_AWAITING_APPROVAL,
    decision: {
      effect: PolicyEffect.POLICY_EFFECT_ASK,
      policyIds: ['ask-publish'],
      reason: 'publishing needs a human',
    },
    ...over,
  });

const wipeStep = (over: Partial<intentsV1.Step> = {}): intentsV1.Step =>
  intentsV1.Step.fromPartial({
    id: 'wipe',
    description: 'Delete old entries',
    tool: 'memory.add',
    state: StepState.STEP_STATE_DENIED,
    decision: {
      effect: PolicyEffect.POLICY_EFFECT_DENY,
      policyIds: ['default-deny'],
      reason: 'default-deny',
    },
    ...over,
  });

const intent = (over: Partial<intentsV1.Intent> = {}): intentsV1.Intent =>
  intentsV1.Intent.fromPartial({
    name: `intents/${ID}`,
    id: ID,
    input: { $case: 'text', value: "run python3 -c 'print(42)'" },
    state: IntentState.INTENT_STATE_AWAITING_APPROVAL,
    actor: 'spiffe://aether.local/admin',
    createTime: at('2026-11-21T10:00:00Z'),
    planner: Planner.PLANNER_PLAYBOOK,
    plan: { steps: [runStep(), publishStep()], playbook: 'run-command', etag: 'sha256:9b1e' },
    ...over,
  });

describe('intent names and command-line values', () => {
  it('accepts intents/<id> or a bare id, in any case, and refuses what is not a ULID', () => {
    expect(intentName(ID)).toBe(`intents/${ID}`);
    expect(intentName(`intents/${ID}`)).toBe(`intents/${ID}`);
    expect(intentName(ID.toUpperCase())).toBe(`intents/${ID}`);
    expect(() => intentName('')).toThrow(UsageError);
    expect(() => intentName('intents/')).toThrow(UsageError);
    expect(() => intentName('jobs/01jc7v0m4k3h2g1f0e9d8c7b6a')).toThrow(/is not an intent/);
    expect(() => intentName('01jc7v0m4k3h2g1f0e9d8c7b6u')).toThrow(/26-character ULID/);
    expect(() => intentName('abc')).toThrow(UsageError);
  });

  it('parses --state lists in any case, with or without the prefix', () => {
    expect(parseIntentStates('running,awaiting-approval, INTENT_STATE_DENIED')).toEqual([
      IntentState.INTENT_STATE_RUNNING,
      IntentState.INTENT_STATE_AWAITING_APPROVAL,
      IntentState.INTENT_STATE_DENIED,
    ]);
    expect(() => parseIntentStates('runing')).toThrow(
      /unknown intent state "runing"; choose from planning, awaiting_approval, running/,
    );
    expect(() => parseIntentStates('unspecified')).toThrow(UsageError);
    expect(() => parseIntentStates(',')).toThrow(UsageError);
  });

  it('parses --planner, --goal and --param (JSON when it parses, else a string)', () => {
    expect(parsePlanner('Model')).toBe(Planner.PLANNER_MODEL);
    expect(parsePlanner('playbook')).toBe(Planner.PLANNER_PLAYBOOK);
    expect(() => parsePlanner('llm')).toThrow(/playbook or model/);
    expect(parseGoalName('train-and-report')).toBe('train-and-report');
    expect(() => parseGoalName('Train')).toThrow(UsageError);
    expect(parseParam('epochs=3')).toEqual(['epochs', 3]);
    expect(parseParam('fast=true')).toEqual(['fast', true]);
    expect(parseParam('tags=["a","b"]')).toEqual(['tags', ['a', 'b']]);
    expect(parseParam('name="3"')).toEqual(['name', '3']);
    expect(parseParam('dataset=artifacts/01jc')).toEqual(['dataset', 'artifacts/01jc']);
    expect(parseParam('empty=')).toEqual(['empty', '']);
    expect(() => parseParam('=3')).toThrow(UsageError);
  });

  it('says what was asked: the text, or the goal with its parameters', () => {
    expect(whatText(intent())).toBe("run python3 -c 'print(42)'");
    expect(
      whatText(
        intent({
          input: { $case: 'goal', value: { name: 'train-and-report', parameters: { epochs: 3 } } },
        }),
      ),
    ).toBe('goal train-and-report {"epochs":3}');
  });

  it('names effects and event types in upper case, and knows the ends and their exit codes', () => {
    expect(effectName(runStep().decision)).toBe('ALLOW');
    expect(effectName(undefined)).toBe('-');
    expect(eventTypeName(IntentEventType.INTENT_EVENT_TYPE_APPROVAL_REQUESTED)).toBe('APPROVAL_REQUESTED');
    expect(isTerminalIntentState(IntentState.INTENT_STATE_AWAITING_APPROVAL)).toBe(false);
    expect(isTerminalIntentState(IntentState.INTENT_STATE_DENIED)).toBe(true);
    expect(exitCodeOfIntent({ state: IntentState.INTENT_STATE_SUCCEEDED })).toBe(0);
    for (const s of [
      IntentState.INTENT_STATE_FAILED,
      IntentState.INTENT_STATE_DENIED,
      IntentState.INTENT_STATE_CANCELLED,
    ])
      expect(exitCodeOfIntent({ state: s })).toBe(1);
  });
});

describe('the plan', () => {
  it('shows each step with its tool, decision and state, and why policy allowed, denied or asked', () => {
    const i = intent({
      state: IntentState.INTENT_STATE_DENIED,
      plan: {
        steps: [runStep(), publishStep(), wipeStep()],
        playbook: 'run-command',
        etag: 'sha256:9b1e',
      },
    });
    expect(planText(i)).toBe(
      'Plan: 3 steps from playbook run-command, etag sha256:9b1e\n' +
        '  STEP     TOOL                DECISION  STATE              DESCRIPTION\n' +
        '  run      jobs.run            ALLOW     PENDING            Run the command in a sandbox\n' +
        '           allowed: members may run sandboxed jobs [members-run-jobs]\n' +
        '  publish  artifacts.register  ASK       AWAITING_APPROVAL  Publish the report\n' +
        '           needs approval: publishing needs a human [ask-publish]\n' +
        '           after: run\n' +
        '  wipe     memory.add          DENY      DENIED             Delete old entries\n' +
        '           denied: default-deny [default-deny]\n',
    );
  });

  it('says when there is no plan yet, and names the model planner', () => {
    expect(planText(intent({ state: IntentState.INTENT_STATE_PLANNING, plan: undefined }))).toBe(
      'Plan: none (still planning)\n',
    );
    expect(planText(intent({ plan: { steps: [runStep()], playbook: '', etag: 'e1' } })).split('\n')[0]).toBe(
      'Plan: 1 step from the model planner, etag e1',
    );
  });

  it('shows exactly what awaits approval and the command that approves it', () => {
    expect(intentOverview(intent())).toBe(
      `Intent:  intents/${ID}\n` +
        'State:   AWAITING_APPROVAL\n' +
        "What:    run python3 -c 'print(42)'\n" +
        '\n' +
        'Plan: 2 steps from playbook run-command, etag sha256:9b1e\n' +
        '  STEP     TOOL                DECISION  STATE              DESCRIPTION\n' +
        '  run      jobs.run            ALLOW     PENDING            Run the command in a sandbox\n' +
        '           allowed: members may run sandboxed jobs [members-run-jobs]\n' +
        '  publish  artifacts.register  ASK       AWAITING_APPROVAL  Publish the report\n' +
        '           needs approval: publishing needs a human [ask-publish]\n' +
        '           after: run\n' +
        '\n' +
        'Needs approval (1 step):\n' +
        '  publish  artifacts.register  publishing needs a human [ask-publish]\n' +
        '           Publish the report\n' +
        '           arguments: {"artifact":{"path":"report.md"}}\n' +
        '\n' +
        `Approve: aether intent approve ${ID}\n` +
        `Reject:  aether intent reject ${ID} --reason <text>\n`,
    );
  });

  it('points a running intent to watch and a dry run to its meaning', () => {
    expect(intentOverview(intent({ state: IntentState.INTENT_STATE_RUNNING }))).toMatch(
      new RegExp(`\nRunning; follow it with: aether intent watch ${ID}\n$`),
    );
    expect(intentOverview(intent({ state: IntentState.INTENT_STATE_SUCCEEDED, dryRun: true }))).toContain(
      'State:   SUCCEEDED (dry run)\n',
    );
  });
});

describe('approving', () => {
  it('decides on every step awaiting approval, or on the ones named', () => {
    const i = intent({
      plan: {
        steps: [runStep(), publishStep(), publishStep({ id: 'notify', tool: 'memory.add' })],
        etag: 'e',
        playbook: 'p',
      },
    });
    expect(stepsToDecide(i, []).map((s) => s.id)).toEqual(['publish', 'notify']);
    expect(stepsToDecide(i, ['notify', 'notify']).map((s) => s.id)).toEqual(['notify']);
    expect(() => stepsToDecide(i, ['nope'])).toThrow(UsageError);
    expect(() => stepsToDecide(i, ['nope'])).toThrow(
      /has no step "nope"; awaiting approval: publish, notify/,
    );
    expect(() => stepsToDecide(i, ['run'])).toThrow(/step "run" .* is PENDING, not awaiting approval/);
    expect(() =>
      stepsToDecide(
        intent({
          state: IntentState.INTENT_STATE_RUNNING,
          plan: { steps: [runStep()], etag: 'e', playbook: 'p' },
        }),
        [],
      ),
    ).toThrow(`intents/${ID} is RUNNING: no step awaits approval`);
  });

  it('prints each step with its tool, why policy asks, what is checked and its arguments', () => {
    const step = publishStep({
      decision: {
        effect: PolicyEffect.POLICY_EFFECT_ASK,
        policyIds: ['ask-publish'],
        reason: 'publishing needs a human',
        action: 'artifacts.CreateArtifact',
        principal: 'spiffe://aether.local/aurorad',
        policySetHash: '',
      },
    });
    expect(approvalText([step, runStep({ id: 'r' })])).toBe(
      '  publish  artifacts.register  publishing needs a human [ask-publish]\n' +
        '           Publish the report\n' +
        '           action: artifacts.CreateArtifact as spiffe://aether.local/aurorad\n' +
        '           arguments: {"artifact":{"path":"report.md"}}\n' +
        '  r        jobs.run            members may run sandboxed jobs [members-run-jobs]\n' +
        '           Run the command in a sandbox\n' +
        '           action: jobs.SubmitJob as spiffe://aether.local/aurorad\n' +
        '           arguments: {"spec":{"argv":["python3","-c","print(42)"]}}\n',
    );
  });
});

describe('progress lines', () => {
  it('give the time (UTC), the event type, the step and the message, aligned', () => {
    const e = (type: intentsV1.IntentEventType, stepId: string, message: string, actor = '') =>
      intentsV1.IntentEvent.fromPartial({
        time: at('2026-11-21T10:00:02.345Z'),
        type,
        stepId,
        message,
        actor,
      });
    expect(
      progressLine(e(IntentEventType.INTENT_EVENT_TYPE_STEP_STARTED, 'run', 'started jobs.run'), 7),
    ).toBe('10:00:02  STEP_STARTED        run      started jobs.run');
    expect(
      progressLine(e(IntentEventType.INTENT_EVENT_TYPE_STATE_CHANGED, '', 'RUNNING -> SUCCEEDED'), 7),
    ).toBe('10:00:02  STATE_CHANGED       -        RUNNING -> SUCCEEDED');
    expect(
      progressLine(
        e(IntentEventType.INTENT_EVENT_TYPE_APPROVED, 'publish', 'approved', 'spiffe://aether.local/admin'),
        7,
      ),
    ).toBe('10:00:02  APPROVED            publish  approved (by spiffe://aether.local/admin)');
  });

  it('has one line for every event type, with the type in upper case and the columns in place', () => {
    const types = Object.values(IntentEventType).filter(
      (v): v is intentsV1.IntentEventType =>
        typeof v === 'number' &&
        v !== IntentEventType.UNRECOGNIZED &&
        v !== IntentEventType.INTENT_EVENT_TYPE_UNSPECIFIED,
    );
    expect(types).toHaveLength(16);
    for (const type of types) {
      const line = progressLine(
        intentsV1.IntentEvent.fromPartial({
          time: at('2026-11-21T10:00:00Z'),
          type,
          stepId: 's1',
          message: 'm',
        }),
        4,
      );
      const name = eventTypeName(type);
      expect(name).toMatch(/^[A-Z_]+$/);
      expect(line).toBe(`10:00:00  ${name.padEnd(18)}  s1    m`);
    }
    expect(
      progressLine(intentsV1.IntentEvent.fromPartial({ type: IntentEventType.INTENT_EVENT_TYPE_RESUMED })),
    ).toBe('--:--:--  RESUMED             -');
  });
});

describe('a watch', () => {
  const events = [
    {
      time: at('2026-11-21T10:00:00Z'),
      type: IntentEventType.INTENT_EVENT_TYPE_SUBMITTED,
      message: 'submitted',
    },
    {
      time: at('2026-11-21T10:00:01Z'),
      type: IntentEventType.INTENT_EVENT_TYPE_PLANNED,
      message: 'planned by playbook run-command',
    },
  ];

  it('prints the head and plan once, the history, then only the new events', () => {
    const view = new WatchView();
    const running = intent({
      state: IntentState.INTENT_STATE_RUNNING,
      plan: { steps: [runStep()], playbook: 'run-command', etag: 'e1' },
      events: events.map((e) => intentsV1.IntentEvent.fromPartial(e)),
    });
    const first = view.update({ intent: running, event: undefined });
    expect(first).toBe(
      `Intent:  intents/${ID}\nState:   RUNNING\nWhat:    run python3 -c 'print(42)'\n` +
        '\n' +
        'Plan: 1 step from playbook run-command, etag e1\n' +
        '  STEP  TOOL      DECISION  STATE    DESCRIPTION\n' +
        '  run   jobs.run  ALLOW     PENDING  Run the command in a sandbox\n' +
        '        allowed: members may run sandboxed jobs [members-run-jobs]\n' +
        '\n' +
        '10:00:00  SUBMITTED           -    submitted\n' +
        '10:00:01  PLANNED             -    planned by playbook run-command\n',
    );
    const started = intentsV1.IntentEvent.fromPartial({
      time: at('2026-11-21T10:00:02Z'),
      type: IntentEventType.INTENT_EVENT_TYPE_STEP_STARTED,
      stepId: 'run',
      message: 'started jobs.run',
    });
    const next = { ...running, events: [...running.events, started] };
    expect(view.update({ intent: next, event: started })).toBe(
      '10:00:02  STEP_STARTED        run  started jobs.run\n',
    );
    // A reconnect restates the history: nothing is printed twice.
    expect(view.update({ intent: next, event: undefined })).toBe('');
    // Updates that carry only the event (no history) still print it.
    const done = intentsV1.IntentEvent.fromPartial({
      time: at('2026-11-21T10:00:03Z'),
      type: IntentEventType.INTENT_EVENT_TYPE_STEP_SUCCEEDED,
      stepId: 'run',
      message: 'succeeded',
    });
    expect(view.update({ intent: { ...next, events: [] }, event: done })).toBe(
      '10:00:03  STEP_SUCCEEDED      run  succeeded\n',
    );
  });

  it('prints a plan made later after its event, and what awaits approval when that changes', () => {
    const view = new WatchView(false);
    const planning = intent({
      state: IntentState.INTENT_STATE_PLANNING,
      plan: undefined,
      events: [intentsV1.IntentEvent.fromPartial(events[0]!)],
    });
    expect(view.update({ intent: planning, event: undefined })).toBe(
      '10:00:00  SUBMITTED           -  submitted\n',
    );
    const planned = intentsV1.IntentEvent.fromPartial(events[1]!);
    const awaiting = intent({ events: [...planning.events, planned] });
    const out = view.update({ intent: awaiting, event: planned });
    expect(out).toMatch(/^10:00:01 {2}PLANNED {13}- {8}planned by playbook run-command\n\nPlan: 2 steps/);
    expect(out).toContain(
      '\nNeeds approval (1 step):\n  publish  artifacts.register  publishing needs a human',
    );
    expect(out).toContain(`Approve: aether intent approve ${ID}\n`);
    // The same steps still awaiting: not repeated.
    expect(view.update({ intent: awaiting, event: undefined })).toBe('');
  });
});

describe('results', () => {
  const ended = intent({
    state: IntentState.INTENT_STATE_FAILED,
    failureReason: 'step search failed: UNAVAILABLE: aetherd is restarting',
    createTime: at('2026-11-21T10:00:00Z'),
    endTime: at('2026-11-21T10:00:42Z'),
    summary: 'Ran the command; it printed 42.\nThe search failed.',
    summaryEntry: 'entries/01s',
    citations: [
      intentsV1.IntentCitation.fromPartial({
        entry: 'entries/01e',
        version: 2n,
        charStart: 10n,
        charEnd: 24n,
        snippetText: 'forty two\n  indeed',
        score: 3.14159,
        stepId: 'search',
      }),
    ],
    plan: {
      etag: 'e',
      playbook: 'run-command',
      steps: [
        runStep({
          state: StepState.STEP_STATE_SUCCEEDED,
          attempts: 1,
          startTime: at('2026-11-21T10:00:01Z'),
          endTime: at('2026-11-21T10:00:13Z'),
          result: {
            job: 'jobs/01j',
            job_id: '01j',
            exit_code: 0,
            state: 'SUCCEEDED',
            stdout: '42\nline 2\nline 3\nline 4\nline 5\n',
            artifact: 'artifacts/01a',
            digest: 'sha256:abc',
          },
        }),
        intentsV1.Step.fromPartial({
          id: 'search',
          tool: 'memory.search',
          state: StepState.STEP_STATE_FAILED,
          attempts: 3,
          error: {
            code: 'UNAVAILABLE',
            reason: 'SHUTTING_DOWN',
            domain: 'aether.dev',
            message: 'aetherd is restarting',
          },
        }),
        publishStep({ state: StepState.STEP_STATE_SKIPPED }),
      ],
    },
  });

  it('end with the state and reason, the summary, the citations and each step’s outcome', () => {
    expect(resultsText(ended)).toBe(
      'Result: FAILED in 42s\n' +
        'Reason: step search failed: UNAVAILABLE: aetherd is restarting\n' +
        '\n' +
        'Summary:\n' +
        '  Ran the command; it printed 42.\n' +
        '  The search failed.\n' +
        '(saved to memory as entries/01s)\n' +
        '\n' +
        'Citations:\n' +
        '  [1] entries/01e@2 [10,24) "forty two indeed"  (step search, score 3.142)\n' +
        '\n' +
        'Steps:\n' +
        '  run      SUCCEEDED  jobs.run, 1 attempt, 12s\n' +
        '             job:      jobs/01j, exit 0\n' +
        '             stdout:   42\n' +
        '                       line 2\n' +
        '                       line 3\n' +
        '                       … (2 more lines)\n' +
        '             artifact: artifacts/01a sha256:abc\n' +
        '  search   FAILED     memory.search, 3 attempts\n' +
        '             error: UNAVAILABLE: aetherd is restarting [SHUTTING_DOWN]\n' +
        '  publish  SKIPPED    artifacts.register\n',
    );
  });

  it('cite entry@version [start,end) "snippet"', () => {
    expect(
      citationLine(
        intentsV1.IntentCitation.fromPartial({
          entry: 'entries/x',
          version: 1n,
          charStart: 0n,
          charEnd: 5n,
          snippetText: 'hello',
        }),
      ),
    ).toBe('entries/x@1 [0,5) "hello"');
  });

  it('summarise the other tools’ outputs and keep unknown ones as JSON', () => {
    expect(resultDetails({ entry: 'entries/01e', version: '3' })).toEqual([['entry', 'entries/01e@3']]);
    expect(resultDetails({ run: 'trainingRuns/01r', model: 'models/m', metrics: { loss: 0.2 } })).toEqual([
      ['run', 'trainingRuns/01r'],
      ['model', 'models/m'],
      ['result', '{"metrics":{"loss":0.2}}'],
    ]);
    expect(resultDetails({ text: 'a\nb' })).toEqual([['text', 'a b']]);
    expect(resultDetails({ job: 'jobs/x', exit_code: 3, state: 'FAILED' })).toEqual([
      ['job', 'jobs/x, exit 3, FAILED'],
    ]);
    expect(resultDetails(undefined)).toEqual([]);
  });

  it('are all in the full view, with each step’s decision, approval and arguments, and the events', () => {
    const text = intentDetail(
      {
        ...ended,
        labels: { team: 'ml' },
        budget: { maxSteps: 10, maxJobs: 5, maxRetries: 0, maxDuration: undefined },
        events: [
          intentsV1.IntentEvent.fromPartial({
            time: at('2026-11-21T10:00:00Z'),
            type: IntentEventType.INTENT_EVENT_TYPE_SUBMITTED,
            message: 'submitted',
            actor: 'spiffe://aether.local/admin',
          }),
        ],
      },
      Date.parse('2026-11-21T10:05:00Z'),
    );
    expect(text).toContain(`Name:        intents/${ID}\nState:       FAILED\n`);
    expect(text).toContain('Planner:     PLAYBOOK (playbook run-command)\nPlan etag:   e\n');
    expect(text).toContain('Budget:      at most 10 steps, 5 jobs\n');
    expect(text).toContain('Created:     2026-11-21T10:00:00.000Z (5m ago)\n');
    expect(text).toContain(
      '  run      jobs.run            SUCCEEDED, 1 attempt, 12s\n' +
        '      what:      Run the command in a sandbox\n' +
        '      decision:  ALLOW: members may run sandboxed jobs [members-run-jobs]\n' +
        '      checked:   jobs.SubmitJob as spiffe://aether.local/aurorad\n' +
        '      arguments: {"spec":{"argv":["python3","-c","print(42)"]}}\n' +
        '      job:       jobs/01j, exit 0\n',
    );
    expect(text).toContain('      decision:  ASK: publishing needs a human [ask-publish]\n');
    expect(text).toContain('      error:     UNAVAILABLE: aetherd is restarting [SHUTTING_DOWN]\n');
    expect(text).toContain(
      'Events:\n  TIME                      TYPE       STEP  MESSAGE\n' +
        '  2026-11-21T10:00:00.000Z  SUBMITTED  -     submitted (by spiffe://aether.local/admin)\n',
    );
    expect(text).toContain('\nCitations:\n  [1] entries/01e@2 [10,24) "forty two indeed"');
  });
});

describe('the ls table', () => {
  it('has ID, STATE, AGE, STEPS done/total and WHAT, truncated', () => {
    const now = Date.parse('2026-11-21T12:00:00Z');
    const rows = [
      intent({
        state: IntentState.INTENT_STATE_RUNNING,
        plan: {
          steps: [
            runStep({ state: StepState.STEP_STATE_SUCCEEDED }),
            publishStep({ state: StepState.STEP_STATE_RUNNING }),
          ],
          etag: 'e',
          playbook: 'p',
        },
      }),
      intent({
        id: '01jc7v0m4k3h2g1f0e9d8c7b6b',
        state: IntentState.INTENT_STATE_PLANNING,
        createTime: at('2026-11-21T11:59:30Z'),
        plan: undefined,
        dryRun: true,
        input: {
          $case: 'goal',
          value: { name: 'train-and-report', parameters: { dataset: 'x'.repeat(80) } },
        },
      }),
    ];
    expect(listTable(rows, now)).toBe(
      'ID                          STATE     AGE  STEPS  WHAT\n' +
        `${ID}  RUNNING   2h   1/2    run python3 -c 'print(42)'\n` +
        `01jc7v0m4k3h2g1f0e9d8c7b6b  PLANNING  30s  -      (dry run) goal train-and-report {"dataset":"${'x'.repeat(15)}…\n`,
    );
    expect(listRow(rows[1]!, now)[4]).toHaveLength(60);
    expect(listRow(rows[0]!, now)[3]).toBe('1/2');
  });
});

describe('API errors', () => {
  it('add the field, the step, the policies and a remedy to the code and message', () => {
    const invalid = new RpcError(status.INVALID_ARGUMENT, 'INVALID_FIELD', 'must be a number', {
      metadata: { field: 'goal.parameters.epochs' },
    });
    expect(rpcErrorNotes(invalid)).toEqual(['field: goal.parameters.epochs']);
    const changed = new RpcError(status.ABORTED, 'PLAN_CHANGED', 'the plan changed');
    expect(rpcErrorNotes(changed, ID)).toEqual([
      `the plan changed after it was shown; nothing was decided. Look again: aether intent get ${ID}`,
    ]);
    const step = new RpcError(status.FAILED_PRECONDITION, 'STEP_NOT_AWAITING_APPROVAL', 'no', {
      metadata: { step_id: 'publish' },
    });
    expect(rpcErrorNotes(step, ID)).toEqual([
      'step: publish',
      `see where it stands: aether intent get ${ID}`,
    ]);
    const denied = new RpcError(status.PERMISSION_DENIED, 'POLICY_DENIED', 'no', {
      metadata: { policy_ids: 'approvers-only' },
    });
    expect(rpcErrorNotes(denied)).toEqual(['policies: approvers-only']);
  });
});
