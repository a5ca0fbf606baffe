// Pure helpers of `aether intent`: names, parsers of the command line, and the text views of an intent
// (its plan with policy decisions, what awaits approval, progress lines, results, the ls table).
import type { RpcError } from '@aether/client';
import { dateFromTimestamp, intentsV1, msFromDuration } from '@aether/proto';
import { fields, table } from '../output';
import { formatAge, formatDuration, parseKeyValue, resourceName, truncate, UsageError } from '../units';

const { IntentState, StepState, PolicyEffect, Planner, IntentEventType } = intentsV1;

type Timestamp = intentsV1.Intent['createTime'];

/** A lowercase ULID, the form of every intent id. */
const ULID = /^[0-9a-hjkmnp-tv-z]{26}$/;

/** `intents/<id>` from either that or a bare id; the id must be a ULID (case does not matter). */
export function intentName(nameOrId: string): string {
  const name = resourceName('intents', nameOrId.trim(), 'an intent');
  const id = name.slice('intents/'.length).toLowerCase();
  if (!ULID.test(id))
    throw new UsageError(
      `"${nameOrId}" is not an intent: give intents/<id> or the bare id, a 26-character ULID such as 01jc7v0m4k3h2g1f0e9d8c7b6a`,
    );
  return `intents/${id}`;
}

/** The intent id: the part of `intents/<id>` after the slash. */
export const intentIdOf = (intent: Pick<intentsV1.Intent, 'id' | 'name'>): string =>
  intent.id || intent.name.replace(/^intents\//, '');

/** `AWAITING_APPROVAL` from INTENT_STATE_AWAITING_APPROVAL. */
export const intentStateName = (s: intentsV1.IntentState): string =>
  intentsV1.intentStateToJSON(s).replace(/^INTENT_STATE_/, '');

/** `SUCCEEDED` from STEP_STATE_SUCCEEDED. */
export const stepStateName = (s: intentsV1.StepState): string =>
  intentsV1.stepStateToJSON(s).replace(/^STEP_STATE_/, '');

/** `ALLOW`, `DENY`, `ASK`, or `-` before the step was checked. */
export function effectName(d: intentsV1.PolicyDecision | undefined): string {
  if (!d || d.effect === PolicyEffect.POLICY_EFFECT_UNSPECIFIED) return '-';
  return intentsV1.policyEffectToJSON(d.effect).replace(/^POLICY_EFFECT_/, '');
}

/** `STEP_STARTED` from INTENT_EVENT_TYPE_STEP_STARTED. */
export const eventTypeName = (t: intentsV1.IntentEventType): string =>
  intentsV1.intentEventTypeToJSON(t).replace(/^INTENT_EVENT_TYPE_/, '');

/** `PLAYBOOK`, `MODEL`, or `DEFAULT` when the configured one was used. */
export function plannerName(p: intentsV1.Planner): string {
  if (p === Planner.PLANNER_UNSPECIFIED) return 'DEFAULT';
  return intentsV1.plannerToJSON(p).replace(/^PLANNER_/, '');
}

const TERMINAL: ReadonlySet<intentsV1.IntentState> = new Set([
  IntentState.INTENT_STATE_SUCCEEDED,
  IntentState.INTENT_STATE_FAILED,
  IntentState.INTENT_STATE_DENIED,
  IntentState.INTENT_STATE_CANCELLED,
]);

/** Whether an intent in this state has ended (SUCCEEDED, FAILED, DENIED or CANCELLED). */
export const isTerminalIntentState = (s: intentsV1.IntentState): boolean => TERMINAL.has(s);

/** The exit status of `aether intent watch`: 0 when the intent SUCCEEDED, 1 for any other end. */
export const exitCodeOfIntent = (intent: Pick<intentsV1.Intent, 'state'>): number =>
  intent.state === IntentState.INTENT_STATE_SUCCEEDED ? 0 : 1;

/** The states of `--state running,failed` (case-insensitive, with or without the INTENT_STATE_ prefix). */
export function parseIntentStates(text: string): intentsV1.IntentState[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError('--state needs at least one state');
  const valid = Object.values(IntentState)
    .filter(
      (v): v is intentsV1.IntentState =>
        typeof v === 'number' && v !== IntentState.INTENT_STATE_UNSPECIFIED && v !== IntentState.UNRECOGNIZED,
    )
    .map((s) => intentStateName(s).toLowerCase());
  return names.map((n) => {
    const key = n
      .toUpperCase()
      .replace(/^INTENT_STATE_/, '')
      .replace(/-/g, '_');
    const s = intentsV1.intentStateFromJSON(`INTENT_STATE_${key}`);
    if (s === IntentState.UNRECOGNIZED || s === IntentState.INTENT_STATE_UNSPECIFIED)
      throw new UsageError(`unknown intent state "${n}"; choose from ${valid.join(', ')}`);
    return s;
  });
}

/** `--planner playbook|model`. */
export function parsePlanner(text: string): intentsV1.Planner {
  const p = text.trim().toLowerCase();
  if (p === 'playbook') return Planner.PLANNER_PLAYBOOK;
  if (p === 'model') return Planner.PLANNER_MODEL;
  throw new UsageError(`planner "${text}" must be playbook or model`);
}

/** A structured goal's name: 1-128 characters of `[a-z0-9._-]`, as the API accepts. */
export function parseGoalName(text: string): string {
  if (!/^[a-z0-9._-]{1,128}$/.test(text))
    throw new UsageError(
      `goal "${text}" must be 1-128 characters of a-z, 0-9, '.', '_' and '-' (e.g. train-and-report)`,
    );
  return text;
}

/**
 * One `--param key=value`: the value as JSON when it parses as JSON (`epochs=3`, `fast=true`,
 * `tags=["a","b"]`, `name="3"` for the string "3"), else as the string it is (`dataset=artifacts/01…`).
 */
export function parseParam(text: string): [string, unknown] {
  const [key, raw] = parseKeyValue(text, '--param');
  try {
    return [key, JSON.parse(raw) as unknown];
  } catch {
    return [key, raw];
  }
}

/** JSON on one line (Struct values are plain JSON); bigint-safe. */
export function compactJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
}

/** What was asked: the free text, or `goal <name> {parameters}`. */
export function whatText(intent: Pick<intentsV1.Intent, 'input'>): string {
  const input = intent.input;
  if (input?.$case === 'text') return input.value;
  if (input?.$case === 'goal') {
    const params = input.value.parameters;
    const shown = params && Object.keys(params).length > 0 ? ` ${compactJson(params)}` : '';
    return `goal ${input.value.name}${shown}`;
  }
  return '-';
}

const iso = (t: Timestamp): string => (t ? dateFromTimestamp(t).toISOString() : '-');
const ms = (t: Timestamp): number | undefined => (t ? dateFromTimestamp(t).getTime() : undefined);

function when(t: Timestamp, now: number): string | undefined {
  const at = ms(t);
  return at === undefined ? undefined : `${iso(t)} (${formatAge(now - at)} ago)`;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** The policies behind a decision: `[jobs-run, default-deny]`, or empty when none were named. */
const policiesOf = (d: intentsV1.PolicyDecision): string =>
  d.policyIds.length > 0 ? ` [${d.policyIds.join(', ')}]` : '';

/** A decision on one line: `ALLOW: members may run jobs [jobs-run]`. */
export function decisionText(d: intentsV1.PolicyDecision | undefined): string {
  if (!d || d.effect === PolicyEffect.POLICY_EFFECT_UNSPECIFIED) return 'not checked yet';
  return `${effectName(d)}: ${d.reason || 'no reason given'}${policiesOf(d)}`;
}

/** A step error on one line: `UNAVAILABLE: aetherd is restarting [SHUTTING_DOWN]`. */
export function stepErrorText(e: intentsV1.StepError): string {
  const reason = e.reason && e.reason !== e.code ? ` [${e.reason}]` : '';
  const meta = Object.entries(e.metadata)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return `${e.code || 'ERROR'}: ${e.message || 'no message'}${reason}${meta ? ` (${meta})` : ''}`;
}

const indent = (text: string, by: string): string =>
  text
    .split('\n')
    .map((l) => (l === '' ? l : `${by}${l}`))
    .join('\n');

/**
 * The plan with each step's tool, policy decision, state and description, and under each step why
 * policy decided as it did and what it waits for:
 *
 *   Plan: 2 steps from playbook run-command, etag 3f9c…
 *     STEP    TOOL        DECISION  STATE              DESCRIPTION
 *     run     jobs.run    ALLOW     PENDING            Run the command in a sandbox
 *             allowed: members may run jobs [jobs-run]
 */
export function planText(intent: Pick<intentsV1.Intent, 'plan' | 'state' | 'planner'>): string {
  const plan = intent.plan;
  if (!plan) {
    const why = intent.state === IntentState.INTENT_STATE_PLANNING ? 'still planning' : 'no plan was made';
    return `Plan: none (${why})\n`;
  }
  const by = plan.playbook ? `from playbook ${plan.playbook}` : 'from the model planner';
  const head = `Plan: ${plural(plan.steps.length, 'step')} ${by}${plan.etag ? `, etag ${plan.etag}` : ''}\n`;
  if (plan.steps.length === 0) return head;
  const rows = plan.steps.map((s) => [
    s.id,
    s.tool,
    effectName(s.decision),
    stepStateName(s.state),
    s.description,
  ]);
  const lines = table(['STEP', 'TOOL', 'DECISION', 'STATE', 'DESCRIPTION'], rows).trimEnd().split('\n');
  const detailIndent = ' '.repeat(Math.max(4, ...plan.steps.map((s) => s.id.length)) + 2);
  const out = [lines[0] ?? ''];
  plan.steps.forEach((s, i) => {
    out.push(lines[i + 1] ?? '');
    const details: string[] = [];
    const d = s.decision;
    if (d && d.effect !== PolicyEffect.POLICY_EFFECT_UNSPECIFIED)
      details.push(
        `${DECISION_VERB[d.effect] ?? 'decided'}: ${d.reason || 'no reason given'}${policiesOf(d)}`,
      );
    if (s.dependsOn.length > 0) details.push(`after: ${s.dependsOn.join(', ')}`);
    if (s.approval) details.push(approvalLine(s.approval));
    if (s.error) details.push(`error: ${stepErrorText(s.error)}`);
    out.push(...details.map((t) => `${detailIndent}${t}`));
  });
  return `${head}${indent(out.join('\n'), '  ')}\n`;
}

const DECISION_VERB: Partial<Record<intentsV1.PolicyEffect, string>> = {
  [PolicyEffect.POLICY_EFFECT_ALLOW]: 'allowed',
  [PolicyEffect.POLICY_EFFECT_DENY]: 'denied',
  [PolicyEffect.POLICY_EFFECT_ASK]: 'needs approval',
};

function approvalLine(a: intentsV1.Approval): string {
  const verb = a.approved ? 'approved' : 'rejected';
  const comment = a.comment ? `: ${JSON.stringify(a.comment)}` : '';
  return `${verb} by ${a.actor || '-'}${a.time ? ` at ${iso(a.time)}` : ''}${comment}`;
}

/** The steps of the plan that await a human's decision. */
export const stepsAwaitingApproval = (intent: Pick<intentsV1.Intent, 'plan'>): intentsV1.Step[] =>
  (intent.plan?.steps ?? []).filter((s) => s.state === StepState.STEP_STATE_AWAITING_APPROVAL);

/**
 * The steps an approve or reject will decide on: those named by `--step` (each must exist and await
 * approval), or every step that awaits approval. An unknown id is a usage error; a step, or an intent,
 * that awaits no approval is an error that says which steps do.
 */
export function stepsToDecide(intent: intentsV1.Intent, stepIds: readonly string[]): intentsV1.Step[] {
  const awaiting = stepsAwaitingApproval(intent);
  const name = intent.name;
  if (awaiting.length === 0)
    throw new Error(
      `${name} is ${intentStateName(intent.state)}: no step awaits approval${intent.failureReason ? ` (${intent.failureReason})` : ''}`,
    );
  if (stepIds.length === 0) return awaiting;
  const waitingIds = awaiting.map((s) => s.id).join(', ');
  return [...new Set(stepIds)].map((id) => {
    const step = intent.plan?.steps.find((s) => s.id === id);
    if (!step) throw new UsageError(`${name} has no step "${id}"; awaiting approval: ${waitingIds}`);
    if (step.state !== StepState.STEP_STATE_AWAITING_APPROVAL)
      throw new Error(
        `step "${id}" of ${name} is ${stepStateName(step.state)}, not awaiting approval; awaiting: ${waitingIds}`,
      );
    return step;
  });
}

/**
 * Exactly what a human is asked to decide: for each step its tool, the reason policy asks, and its
 * arguments as compact JSON.
 */
export function approvalText(steps: readonly intentsV1.Step[]): string {
  const w = Math.max(0, ...steps.map((s) => s.id.length));
  const tw = Math.max(0, ...steps.map((s) => s.tool.length));
  const pad = ' '.repeat(w + 4);
  return steps
    .map((s) => {
      const d = s.decision;
      const why = d ? `${d.reason || 'policy asks'}${policiesOf(d)}` : 'policy asks';
      const lines = [`  ${s.id.padEnd(w)}  ${s.tool.padEnd(tw)}  ${why}`];
      if (s.description) lines.push(`${pad}${s.description}`);
      if (d?.action) lines.push(`${pad}action: ${d.action}${d.principal ? ` as ${d.principal}` : ''}`);
      lines.push(`${pad}arguments: ${compactJson(s.arguments ?? {})}`);
      return `${lines.join('\n')}\n`;
    })
    .join('');
}

/** The intent's head: name, state (with the reason it ended badly) and what was asked. */
function headText(intent: intentsV1.Intent): string {
  return fields([
    ['Intent', intent.name],
    ['State', `${intentStateName(intent.state)}${intent.dryRun ? ' (dry run)' : ''}`],
    ['Reason', intent.failureReason || undefined],
    ['What', whatText(intent)],
  ]);
}

/** What to do next, for the state the intent is in. */
export function nextStepsText(intent: intentsV1.Intent): string {
  const id = intentIdOf(intent);
  switch (intent.state) {
    case IntentState.INTENT_STATE_AWAITING_APPROVAL: {
      const steps = stepsAwaitingApproval(intent);
      return (
        `Needs approval (${plural(steps.length, 'step')}):\n${approvalText(steps)}\n` +
        `Approve: aether intent approve ${id}\n` +
        `Reject:  aether intent reject ${id} --reason <text>\n`
      );
    }
    case IntentState.INTENT_STATE_PLANNING:
      return `Still planning; follow it with: aether intent watch ${id}\n`;
    case IntentState.INTENT_STATE_RUNNING:
      return `Running; follow it with: aether intent watch ${id}\n`;
    case IntentState.INTENT_STATE_SUCCEEDED:
      return intent.dryRun
        ? 'Dry run: planned and checked against policy; nothing ran.\n'
        : `Done; see the results with: aether intent get ${id}\n`;
    default:
      return '';
  }
}

/** What `aether intent` prints after submitting: the head, the plan with decisions, what comes next. */
export function intentOverview(intent: intentsV1.Intent): string {
  const next = nextStepsText(intent);
  return `${headText(intent)}\n${planText(intent)}${next ? `\n${next}` : ''}`;
}

/** The lines of a step result worth reading: the job and exit code, stdout, artifact, entry, …. */
export function resultDetails(result: { [key: string]: unknown } | undefined): [string, string][] {
  if (!result) return [];
  const r = result;
  const str = (k: string): string | undefined => {
    const v = r[k];
    return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : undefined;
  };
  const out: [string, string][] = [];
  const used = new Set<string>();
  const take = (...keys: string[]): void => keys.forEach((k) => used.add(k));

  const job = str('job') ?? (str('job_id') ? `jobs/${str('job_id')}` : undefined);
  if (job !== undefined || r['exit_code'] !== undefined) {
    const exit = r['exit_code'];
    const state = str('state');
    const parts = [job ?? 'job'];
    if (typeof exit === 'number') parts.push(`exit ${exit}`);
    if (state && state !== 'SUCCEEDED') parts.push(state);
    out.push(['job', parts.join(', ')]);
    take('job', 'job_id', 'exit_code', 'state');
  }
  const stdout = str('stdout');
  if (stdout !== undefined) {
    const lines = stdout.replace(/\n+$/, '').split('\n');
    const shown = lines.slice(0, 3).map((l) => truncate(l, 120));
    if (lines.length > 3) shown.push(`… (${plural(lines.length - 3, 'more line')})`);
    out.push(['stdout', shown.join('\n')]);
    take('stdout');
  }
  const run = str('run');
  if (run !== undefined) out.push(['run', run]);
  const model = str('model');
  if (model !== undefined) out.push(['model', model]);
  take('run', 'model');
  const artifact = str('artifact');
  const digest = str('digest');
  if (artifact !== undefined || digest !== undefined)
    out.push(['artifact', [artifact, digest].filter(Boolean).join(' ')]);
  const artifacts = r['artifacts'];
  if (Array.isArray(artifacts) && artifacts.length > 1)
    out.push(['artifacts', artifacts.map(String).join(', ')]);
  take('artifact', 'digest', 'artifacts', 'digests', 'size_bytes');
  const entry = str('entry');
  if (entry !== undefined) out.push(['entry', str('version') ? `${entry}@${str('version')}` : entry]);
  take('entry', 'version');
  const hits = r['hits'];
  if (Array.isArray(hits))
    out.push(['hits', `${hits.length}${str('top_entry') ? `, top ${str('top_entry')}` : ''}`]);
  const answer = str('answer');
  if (answer !== undefined) out.push(['answer', truncate(answer.replace(/\s+/g, ' ').trim(), 160)]);
  take('hits', 'citations', 'answer', 'top_entry');
  const text = str('text');
  if (text !== undefined) out.push(['text', truncate(text.replace(/\s+/g, ' ').trim(), 160)]);
  take('text');
  const rest = Object.fromEntries(Object.entries(r).filter(([k]) => !used.has(k)));
  if (Object.keys(rest).length > 0) out.push(['result', truncate(compactJson(rest), 160)]);
  return out;
}

/** `key: value` lines under a step, values aligned, continuation lines of a value aligned with it. */
function detailLines(rows: [string, string][], prefix: string): string {
  const w = Math.max(0, ...rows.map(([k]) => k.length)) + 2;
  return rows
    .map(([k, v]) => {
      const [first, ...more] = v.split('\n');
      const cont = more.map((l) => `\n${prefix}${' '.repeat(w)}${l}`).join('');
      return `${prefix}${`${k}:`.padEnd(w)}${first ?? ''}${cont}\n`;
    })
    .join('');
}

/** How long a step ran: `12s`, or undefined before it started. */
function stepDuration(s: intentsV1.Step, now?: number): string | undefined {
  const start = ms(s.startTime);
  if (start === undefined) return undefined;
  const end = ms(s.endTime) ?? now;
  return end === undefined ? undefined : formatDuration(end - start);
}

/** One step's outcome: `train  SUCCEEDED  jobs.run, 1 attempt, 12s` and its result or error below. */
export function stepOutcome(s: intentsV1.Step, idWidth = s.id.length, stateWidth = 9): string {
  const meta = [s.tool];
  if (s.attempts > 0) meta.push(plural(s.attempts, 'attempt'));
  const took = stepDuration(s);
  if (took) meta.push(took);
  const head = `  ${s.id.padEnd(idWidth)}  ${stepStateName(s.state).padEnd(stateWidth)}  ${meta.join(', ')}\n`;
  const rows = resultDetails(s.result);
  if (s.error) rows.push(['error', stepErrorText(s.error)]);
  if (s.approval && !s.approval.approved) rows.push(['rejected', approvalLine(s.approval)]);
  return head + detailLines(rows, ' '.repeat(idWidth + 6));
}

/** A citation: `entries/01…@2 [10,60) "the cited text"  (step search, score 3.142)`. */
export function citationLine(c: intentsV1.IntentCitation): string {
  const snippet = truncate(c.snippetText.replace(/\s+/g, ' ').trim(), 200);
  const from = [c.stepId ? `step ${c.stepId}` : '', c.score ? `score ${c.score.toFixed(3)}` : '']
    .filter(Boolean)
    .join(', ');
  return `${c.entry}@${c.version} [${c.charStart},${c.charEnd}) ${JSON.stringify(snippet)}${from ? `  (${from})` : ''}`;
}

/** How long the intent took from submission to its end, when both are known. */
function intentDuration(intent: intentsV1.Intent): string | undefined {
  const start = ms(intent.createTime);
  const end = ms(intent.endTime);
  return start !== undefined && end !== undefined ? formatDuration(end - start) : undefined;
}

/**
 * The end of `aether intent watch`: the final state (with the reason when it did not succeed), the
 * summary, the citations and each step's outcome.
 */
export function resultsText(intent: intentsV1.Intent): string {
  const took = intentDuration(intent);
  const parts = [
    `Result: ${intentStateName(intent.state)}${intent.dryRun ? ' (dry run)' : ''}${took ? ` in ${took}` : ''}\n`,
  ];
  if (intent.failureReason) parts.push(`Reason: ${intent.failureReason}\n`);
  if (intent.summary) parts.push(`\nSummary:\n${indent(intent.summary.trimEnd(), '  ')}\n`);
  if (intent.summaryEntry) parts.push(`(saved to memory as ${intent.summaryEntry})\n`);
  if (intent.citations.length > 0)
    parts.push(
      `\nCitations:\n${intent.citations.map((c, i) => `  [${i + 1}] ${citationLine(c)}\n`).join('')}`,
    );
  const steps = intent.plan?.steps ?? [];
  if (steps.length > 0) {
    const w = Math.max(...steps.map((s) => s.id.length));
    const sw = Math.max(...steps.map((s) => stepStateName(s.state).length));
    parts.push(`\nSteps:\n${steps.map((s) => stepOutcome(s, w, sw)).join('')}`);
  }
  return parts.join('');
}

/** Widest event type name (APPROVAL_REQUESTED), so progress lines align. */
const TYPE_WIDTH = Math.max(
  ...Object.values(IntentEventType)
    .filter(
      (v): v is intentsV1.IntentEventType => typeof v === 'number' && v !== IntentEventType.UNRECOGNIZED,
    )
    .map((t) => eventTypeName(t).length),
);

/** `10:00:01` (UTC) of an event, or `--:--:--` when it has no time. */
const clock = (t: Timestamp): string => (t ? dateFromTimestamp(t).toISOString().slice(11, 19) : '--:--:--');

/**
 * One progress line of a watch: `10:00:01  STEP_STARTED        train  Train the model (by …)`; the
 * step column is `stepWidth` wide (the longest step id of the plan) and `-` when no step is concerned.
 */
export function progressLine(e: intentsV1.IntentEvent, stepWidth = 0): string {
  const by = e.actor ? ` (by ${e.actor})` : '';
  return `${clock(e.time)}  ${eventTypeName(e.type).padEnd(TYPE_WIDTH)}  ${(e.stepId || '-').padEnd(
    Math.max(1, stepWidth),
  )}  ${e.message}${by}`.trimEnd();
}

function budgetText(b: intentsV1.IntentBudget | undefined): string | undefined {
  if (!b) return undefined;
  const parts: string[] = [];
  if (b.maxSteps) parts.push(`${b.maxSteps} steps`);
  if (b.maxJobs) parts.push(`${b.maxJobs} jobs`);
  if (b.maxRetries) parts.push(`${b.maxRetries} retries per step`);
  if (b.maxDuration && msFromDuration(b.maxDuration) > 0)
    parts.push(`${formatDuration(msFromDuration(b.maxDuration))} in all`);
  return parts.length > 0 ? `at most ${parts.join(', ')}` : undefined;
}

const pairs = (m: Record<string, string>): string | undefined =>
  Object.entries(m)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ') || undefined;

/** One step in full, for `aether intent get`. */
function stepDetail(s: intentsV1.Step, now: number, idWidth: number, toolWidth: number): string {
  const meta = [stepStateName(s.state)];
  if (s.attempts > 0) meta.push(plural(s.attempts, 'attempt'));
  const took = stepDuration(s, s.state === StepState.STEP_STATE_RUNNING ? now : undefined);
  if (took) meta.push(took);
  const d = s.decision;
  const rows: [string, string][] = [];
  if (s.description) rows.push(['what', s.description]);
  rows.push(['decision', decisionText(d)]);
  if (d?.action) rows.push(['checked', `${d.action}${d.principal ? ` as ${d.principal}` : ''}`]);
  if (s.approval) rows.push([s.approval.approved ? 'approval' : 'rejection', approvalLine(s.approval)]);
  if (s.dependsOn.length > 0) rows.push(['after', s.dependsOn.join(', ')]);
  rows.push(['arguments', truncate(compactJson(s.arguments ?? {}), 400)]);
  if (s.error) rows.push(['error', stepErrorText(s.error)]);
  rows.push(...resultDetails(s.result));
  if (s.resources.length > 0) rows.push(['resources', s.resources.join(', ')]);
  return `  ${s.id.padEnd(idWidth)}  ${s.tool.padEnd(toolWidth)}  ${meta.join(', ')}\n${detailLines(rows, '      ')}`;
}

/**
 * The full view of `aether intent get`: the intent's fields, each step (decision, approval, attempts,
 * result or error), the events, the summary and its citations.
 */
export function intentDetail(intent: intentsV1.Intent, now = Date.now()): string {
  const plan = intent.plan;
  const head = fields([
    ['Name', intent.name],
    ['State', `${intentStateName(intent.state)}${intent.dryRun ? ' (dry run)' : ''}`],
    ['Reason', intent.failureReason || undefined],
    ['What', whatText(intent)],
    ['Actor', intent.actor || '-'],
    ['Labels', pairs(intent.labels)],
    ['Planner', `${plannerName(intent.planner)}${plan?.playbook ? ` (playbook ${plan.playbook})` : ''}`],
    ['Plan etag', plan?.etag || undefined],
    ['Budget', budgetText(intent.budget)],
    ['Created', when(intent.createTime, now) ?? '-'],
    ['Updated', when(intent.updateTime, now)],
    ['Ended', when(intent.endTime, now)],
    ['Duration', intentDuration(intent)],
    ['Summary in', intent.summaryEntry || undefined],
    ['Resources', intent.resources.length > 0 ? intent.resources.join(', ') : undefined],
  ]);
  const steps = plan
    ? plan.steps.length > 0
      ? plan.steps
          .map((s, _i, all) =>
            stepDetail(
              s,
              now,
              Math.max(...all.map((x) => x.id.length)),
              Math.max(...all.map((x) => x.tool.length)),
            ),
          )
          .join('')
      : '  (none)\n'
    : `  (no plan${intent.state === IntentState.INTENT_STATE_PLANNING ? ' yet' : ''})\n`;
  const events =
    intent.events.length > 0
      ? indent(
          table(
            ['TIME', 'TYPE', 'STEP', 'MESSAGE'],
            intent.events.map((e) => [
              iso(e.time),
              eventTypeName(e.type),
              e.stepId || '-',
              `${e.message}${e.actor ? ` (by ${e.actor})` : ''}`,
            ]),
          ),
          '  ',
        )
      : '  (none)\n';
  const parts = [head, `\nSteps:\n${steps}`, `\nEvents:\n${events}`];
  if (intent.summary) parts.push(`\nSummary:\n${indent(intent.summary.trimEnd(), '  ')}\n`);
  if (intent.citations.length > 0)
    parts.push(
      `\nCitations:\n${intent.citations.map((c, i) => `  [${i + 1}] ${citationLine(c)}\n`).join('')}`,
    );
  return parts.join('');
}

/** The columns of `aether intent ls`. */
export const LIST_HEADERS = ['ID', 'STATE', 'AGE', 'STEPS', 'WHAT'];

/** `2/3`: steps that succeeded of the steps planned; `-` without a plan. */
export function stepsDone(intent: Pick<intentsV1.Intent, 'plan'>): string {
  const steps = intent.plan?.steps;
  if (!steps) return '-';
  return `${steps.filter((s) => s.state === StepState.STEP_STATE_SUCCEEDED).length}/${steps.length}`;
}

/** One row of `aether intent ls`: ID STATE AGE STEPS WHAT. */
export function listRow(intent: intentsV1.Intent, now = Date.now(), whatWidth = 60): string[] {
  const created = ms(intent.createTime);
  const what = `${intent.dryRun ? '(dry run) ' : ''}${whatText(intent).replace(/\s+/g, ' ').trim()}`;
  return [
    intentIdOf(intent),
    intentStateName(intent.state),
    created === undefined ? '-' : formatAge(now - created),
    stepsDone(intent),
    truncate(what, whatWidth),
  ];
}

/** The `aether intent ls` table. */
export function listTable(intents: readonly intentsV1.Intent[], now = Date.now()): string {
  return table(
    LIST_HEADERS,
    intents.map((i) => listRow(i, now)),
  );
}

/**
 * What an API error says beyond `CODE: message [REASON]`: the field it names, the step, the deciding
 * policies, and what to do for the errors of the intents API that have a remedy. One line each.
 */
export function rpcErrorNotes(err: RpcError, id?: string): string[] {
  const notes: string[] = [];
  const md = err.metadata;
  if (md['field']) notes.push(`field: ${md['field']}`);
  for (const v of err.fieldViolations) notes.push(`field ${v.field}: ${v.description}`);
  if (md['step_id']) notes.push(`step: ${md['step_id']}`);
  if (md['policy_ids']) notes.push(`policies: ${md['policy_ids']}`);
  const show = id ? `aether intent get ${id}` : 'aether intent get <id>';
  switch (err.reason) {
    case 'PLAN_CHANGED':
      notes.push(`the plan changed after it was shown; nothing was decided. Look again: ${show}`);
      break;
    case 'INTENT_NOT_AWAITING_APPROVAL':
    case 'STEP_NOT_AWAITING_APPROVAL':
      notes.push(`see where it stands: ${show}`);
      break;
    case 'UNKNOWN_GOAL':
      notes.push('no playbook has this goal name; give free text instead, or check the playbooks');
      break;
    case 'IDEMPOTENCY_KEY_REUSED':
      notes.push('this --idempotency-key was used for a different request; choose another key');
      break;
    case 'TOO_MANY_INTENTS':
      notes.push('aurorad runs as many intents as it may; try again when some have ended');
      break;
  }
  return notes;
}

/**
 * What a watch prints as updates arrive: the intent's head once, the plan when it is first known (and
 * again if it changes), one progress line per new event, what awaits approval each time that changes,
 * and the results at the end. Each update returns the text to print; events already printed (after a
 * reconnect, whose first message restates the history) are not printed again.
 */
export class WatchView {
  private printedEvents = 0;
  private planEtag: string | undefined;
  private awaiting = '';
  private headShown = false;
  private printed = false;
  private gap = false;

  constructor(private readonly showHead = true) {}

  /** The widest step id of the plan, so the step column of progress lines aligns. */
  private stepWidth(intent: intentsV1.Intent): number {
    return Math.max(1, ...(intent.plan?.steps ?? []).map((s) => s.id.length));
  }

  private block(text: string): string {
    const s = `${this.printed ? '\n' : ''}${text}`;
    this.printed = true;
    this.gap = true;
    return s;
  }

  private line(text: string): string {
    const s = `${this.gap ? '\n' : ''}${text}\n`;
    this.printed = true;
    this.gap = false;
    return s;
  }

  /** The text for one WatchIntent message. */
  update(m: intentsV1.WatchIntentResponse): string {
    const intent = m.intent;
    if (!intent) return '';
    let out = '';
    if (!this.headShown) {
      this.headShown = true;
      if (this.showHead) out += this.block(headText(intent));
    }
    const planFirst = this.printedEvents === 0;
    const plan = (): void => {
      if (intent.plan && intent.plan.etag !== this.planEtag) {
        const changed = this.planEtag !== undefined;
        this.planEtag = intent.plan.etag;
        out += this.block(`${changed ? 'The plan changed.\n' : ''}${planText(intent)}`);
      }
    };
    // A plan already known when the watch starts comes before the history; a new one after its event.
    if (planFirst) plan();
    let fresh: intentsV1.IntentEvent[] = [];
    if (intent.events.length > this.printedEvents) {
      fresh = intent.events.slice(this.printedEvents);
      this.printedEvents = intent.events.length;
    } else if (m.event && intent.events.length === 0) {
      fresh = [m.event];
      this.printedEvents += 1;
    }
    const w = this.stepWidth(intent);
    for (const e of fresh) out += this.line(progressLine(e, w));
    plan();
    const awaiting =
      intent.state === IntentState.INTENT_STATE_AWAITING_APPROVAL
        ? stepsAwaitingApproval(intent)
            .map((s) => s.id)
            .join(',')
        : '';
    if (awaiting !== this.awaiting) {
      this.awaiting = awaiting;
      if (awaiting) out += this.block(nextStepsText(intent));
    }
    return out;
  }

  /** The results block once the intent has ended. */
  finish(intent: intentsV1.Intent): string {
    return this.block(resultsText(intent));
  }
}
