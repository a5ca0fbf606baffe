import { createHash } from 'node:crypto';
import { status as Status } from '@grpc/grpc-js';
import type { IntentLimits } from '@aether/config';
import type { Logger } from '@aether/log';
import { dateFromTimestamp, intentsV1, msFromDuration, timestampFromDate } from '@aether/proto';
import {
  AlreadyExistsError,
  ERROR_DOMAIN,
  FailedPreconditionError,
  InvalidArgumentError,
  newId,
  ResourceExhaustedError,
  RpcError,
} from '@aether/rpc';
import type { Json, JsonObject, PlanDraft, PlannedStep, ToolName } from '../planning/plan';
import type { Planner, PlanOutcome } from '../planning/planner';
import { approvalConstraints, withJobDefaults, type StepPolicy } from '../policy/step-policy';
import { ToolFailure, type ToolResult, type Tools } from '../runner/tools';
import { resolveReferences } from '../runner/references';
import { isTerminalIntent, type IntentStore } from './intent-store';

const { IntentState, StepState, IntentEventType, PolicyEffect } = intentsV1;
type Intent = intentsV1.Intent;
type Step = intentsV1.Step;

/** Idempotency keys (and so safe resumption of a step) hold for this long. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600_000;

/** Mints the capability token for an approved step (aetherd's TokenService, as aurorad). */
export type MintApproval = (req: {
  intentId: string;
  stepId: string;
  action: string;
  constraints: Record<string, Json>;
  approver: string;
  daemon: 'aetherd' | 'cfcd';
}) => Promise<{ token: string; id: string }>;

/** Writes the intent's summary entry to memory; returns the entry's name. */
export type WriteSummary = (intent: Intent, text: string) => Promise<string>;

export interface IntentManagerOptions {
  store: IntentStore;
  planner: Planner;
  policy: StepPolicy;
  tools: Pick<Tools, 'run' | 'stop'>;
  mintApproval: MintApproval;
  writeSummary: WriteSummary;
  limits: IntentLimits;
  log: Logger;
  /** Records a step's policy pre-check in aurorad's audit log (every decision, denials durably). */
  auditDecision?: (intent: Intent, step: Step, decision: intentsV1.PolicyDecision) => void;
  /** Told of every state change (for aetherd `intent.*` events and metrics). */
  onStateChange?: (intent: Intent, previous: intentsV1.IntentState) => void;
}

/** A WatchIntent stream: told of each change, then that no more will come. */
interface Watcher {
  update: (intent: Intent, event: intentsV1.IntentEvent) => void;
  end: () => void;
}

/** What aurorad holds in memory for an intent that has not ended. */
interface Active {
  intent: Intent;
  /** Running steps: how to abort their calls and what they started (to stop on cancel). */
  running: Map<string, { abort: AbortController; resources: string[] }>;
  /** Tokens minted for approved steps (not persisted: re-minted after a restart). */
  tokens: Map<string, string>;
  jobsStarted: number;
  timer?: NodeJS.Timeout;
  /** Set once the intent is on its way to a terminal state; nothing new starts. */
  ending: boolean;
  /** Steps whose approval is being minted right now. */
  approving: Set<string>;
}

export interface SubmitInput {
  request: intentsV1.SubmitIntentRequest;
  actor: string;
  /** When the caller's deadline is; planning that runs past it continues in the background. */
  deadlineMs?: number;
}

function ts(): intentsV1.Intent['createTime'] & object {
  return timestampFromDate(new Date());
}

function msOf(t: { seconds: bigint; nanos: number } | undefined): number {
  return t ? dateFromTimestamp(t).getTime() : 0;
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** The plan's etag: a hash of what a human approves (ids, tools, arguments, dependencies). */
export function planEtag(steps: readonly PlannedStep[] | readonly Step[]): string {
  const shape = steps.map((s) => [s.id, s.tool, s.arguments ?? {}, s.dependsOn]);
  return `sha256:${hashOf(shape).slice(0, 32)}`;
}

function stateName(s: intentsV1.IntentState): string {
  return intentsV1.intentStateToJSON(s).replace(/^INTENT_STATE_/, '');
}

function stepStateName(s: intentsV1.StepState): string {
  return intentsV1.stepStateToJSON(s).replace(/^STEP_STATE_/, '');
}

function stepError(err: unknown): intentsV1.StepError {
  if (err instanceof ToolFailure)
    return intentsV1.StepError.fromPartial({
      code: err.code,
      reason: err.reason,
      domain: ERROR_DOMAIN,
      message: err.message,
    });
  const e = RpcError.from(err);
  return intentsV1.StepError.fromPartial({
    code: e.codeName,
    reason: e.reason,
    domain: ERROR_DOMAIN,
    message: e.message,
    metadata: { ...e.metadata },
  });
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      },
      { once: true },
    );
  });

/**
 * The life of every intent: record → plan → check every step against policy → wait for approvals →
 * run the steps (independent ones in parallel) → write the summary → end. Every change is persisted
 * before anyone is told of it, and every change is an event in the intent's history.
 */
export class IntentManager {
  private readonly active = new Map<string, Active>();
  private readonly watchers = new Map<string, Set<Watcher>>();
  private closed = false;

  constructor(private readonly o: IntentManagerOptions) {}

  get(id: string): Intent | undefined {
    return this.active.get(id)?.intent ?? this.o.store.get(id);
  }

  // ---- submit ---------------------------------------------------------------------------------------

  async submit({ request: req, actor, deadlineMs }: SubmitInput): Promise<Intent> {
    const requestHash = hashOf(intentsV1.SubmitIntentRequest.toJSON({ ...req, idempotencyKey: '' }));
    if (req.idempotencyKey) {
      const prior = this.o.store.byIdempotencyKey(actor, req.idempotencyKey, IDEMPOTENCY_WINDOW_MS);
      if (prior) {
        if (prior.requestHash !== requestHash)
          throw new RpcError(
            Status.ALREADY_EXISTS,
            'IDEMPOTENCY_KEY_REUSED',
            `idempotency key ${req.idempotencyKey} was used for a different intent (${prior.intent.name})`,
            { metadata: { intent: prior.intent.name } },
          );
        return this.get(prior.intent.id) ?? prior.intent;
      }
    }
    if (this.active.size >= this.o.limits.maxConcurrentIntents)
      throw new ResourceExhaustedError(
        `${this.active.size} intents are in progress, the most aurorad runs at once (aurora.limits.maxConcurrentIntents); wait for one to end`,
        'TOO_MANY_INTENTS',
        { limit: String(this.o.limits.maxConcurrentIntents) },
      );
    const budget = this.budgetFor(req.budget);
    // A structured goal is resolved before anything is recorded: an unknown goal or bad parameters are
    // the caller's error (NOT_FOUND / INVALID_ARGUMENT), not a failed intent.
    const early =
      req.input?.$case === 'goal' ? this.o.planner.planGoal(req.input.value, req.planner) : undefined;

    const id = newId();
    const now = ts();
    const intent = intentsV1.Intent.fromPartial({
      name: `intents/${id}`,
      id,
      input: req.input,
      state: IntentState.INTENT_STATE_PLANNING,
      actor,
      createTime: now,
      updateTime: now,
      dryRun: req.dryRun,
      labels: req.labels,
      budget,
      planner: this.o.planner.resolve(req.planner),
      events: [],
    });
    const a: Active = {
      intent,
      running: new Map(),
      tokens: new Map(),
      jobsStarted: 0,
      ending: false,
      approving: new Set(),
    };
    this.event(
      a,
      IntentEventType.INTENT_EVENT_TYPE_SUBMITTED,
      `submitted (${intent.dryRun ? 'dry run, ' : ''}planner ${intentsV1
        .plannerToJSON(intent.planner)
        .replace(/^PLANNER_/, '')
        .toLowerCase()})`,
      '',
      actor,
    );
    try {
      this.o.store.insert(intent, req.idempotencyKey, requestHash);
    } catch (err) {
      if (String(err).includes('UNIQUE') && req.idempotencyKey)
        throw new AlreadyExistsError(`idempotency key ${req.idempotencyKey}`);
      throw err;
    }
    this.active.set(id, a);
    this.armTimer(a);

    const planning: Promise<PlanOutcome> =
      early ??
      (req.input?.$case === 'text'
        ? this.o.planner.planText(req.input.value, req.planner, id, (m) => this.planningNote(a, m))
        : Promise.resolve({ ok: false, reason: 'nothing to plan' }));
    const applied = planning.then(
      (outcome) => this.applyPlan(a, outcome),
      (err: unknown) =>
        this.applyPlan(a, { ok: false, reason: `planning failed: ${(err as Error).message}` }),
    );
    if (deadlineMs === undefined) await applied;
    else {
      const margin = Math.max(0, deadlineMs - Date.now() - 500);
      await Promise.race([applied, new Promise((r) => setTimeout(r, margin).unref())]);
    }
    return intent;
  }

  private budgetFor(b: intentsV1.IntentBudget | undefined): intentsV1.IntentBudget {
    const l = this.o.limits;
    const v: { field: string; description: string }[] = [];
    const narrow = (value: number, limit: number, field: string): number => {
      if (value < 0) v.push({ field, description: 'must not be negative' });
      else if (value > limit) v.push({ field, description: `must be at most the configured ${limit}` });
      return value > 0 && value <= limit ? value : limit;
    };
    const durationMs = b?.maxDuration ? msFromDuration(b.maxDuration) : 0;
    const maxMs = l.maxDurationSeconds * 1000;
    const budget = intentsV1.IntentBudget.fromPartial({
      maxSteps: narrow(b?.maxSteps ?? 0, l.maxSteps, 'budget.max_steps'),
      maxJobs:
        b?.maxJobs === undefined || b.maxJobs === 0
          ? l.maxJobs
          : narrow(b.maxJobs, l.maxJobs, 'budget.max_jobs'),
      maxRetries:
        b?.maxRetries === undefined || b.maxRetries === 0
          ? l.maxRetries
          : narrow(b.maxRetries, l.maxRetries, 'budget.max_retries'),
      maxDuration: {
        seconds: BigInt(Math.ceil(narrow(durationMs, maxMs, 'budget.max_duration') / 1000)),
        nanos: 0,
      },
    });
    if (v.length > 0) throw new InvalidArgumentError(v);
    return budget;
  }

  private planningNote(a: Active, message: string): void {
    this.event(a, IntentEventType.INTENT_EVENT_TYPE_PLANNING_FAILED, message);
    this.persist(a);
  }

  private applyPlan(a: Active, outcome: PlanOutcome): void {
    const intent = a.intent;
    if (isTerminalIntent(intent.state) || a.ending) return;
    if (!outcome.ok) {
      this.event(a, IntentEventType.INTENT_EVENT_TYPE_PLANNING_FAILED, outcome.reason);
      this.end(a, IntentState.INTENT_STATE_FAILED, outcome.reason);
      return;
    }
    // Unset job limits are filled in before the check, so policy sees exactly what aetherd will get.
    const draft: PlanDraft = {
      ...outcome.draft,
      steps: outcome.draft.steps.map((s) => ({ ...s, arguments: withJobDefaults(s.tool, s.arguments) })),
    };
    intent.plan = intentsV1.Plan.fromPartial({
      playbook: draft.playbook,
      etag: planEtag(draft.steps),
      createTime: ts(),
      steps: draft.steps.map((s) =>
        intentsV1.Step.fromPartial({
          id: s.id,
          description: s.description,
          tool: s.tool,
          arguments: s.arguments,
          dependsOn: s.dependsOn,
          outputs: s.outputs,
          state: StepState.STEP_STATE_PENDING,
        }),
      ),
    });
    this.event(
      a,
      IntentEventType.INTENT_EVENT_TYPE_PLANNED,
      `${draft.steps.length} step(s) by ${draft.playbook ? `playbook ${draft.playbook}` : 'the model planner'}`,
    );
    const maxSteps = intent.budget!.maxSteps;
    if (draft.steps.length > maxSteps) {
      const reason = `the plan has ${draft.steps.length} steps, over the budget of ${maxSteps} (max_steps); nothing ran`;
      this.event(a, IntentEventType.INTENT_EVENT_TYPE_BUDGET_EXCEEDED, reason);
      for (const s of intent.plan.steps) s.state = StepState.STEP_STATE_SKIPPED;
      this.end(a, IntentState.INTENT_STATE_FAILED, reason);
      return;
    }
    // Policy at the boundary: every step, before anything runs, as the identity aurorad acts with.
    for (const [i, s] of intent.plan.steps.entries()) {
      const { decision } = this.o.policy.check(intent.id, draft.steps[i]!);
      s.decision = decision;
      this.o.auditDecision?.(intent, s, decision);
      const effect = intentsV1.policyEffectToJSON(decision.effect).replace(/^POLICY_EFFECT_/, '');
      this.event(
        a,
        IntentEventType.INTENT_EVENT_TYPE_POLICY_CHECKED,
        `${decision.action || s.tool}: ${effect} (${decision.policyIds.join(', ')}${decision.reason ? `: ${decision.reason}` : ''})`,
        s.id,
      );
    }
    const denied = intent.plan.steps.filter((s) => s.decision!.effect === PolicyEffect.POLICY_EFFECT_DENY);
    if (denied.length > 0) {
      for (const s of intent.plan.steps) {
        if (s.decision!.effect === PolicyEffect.POLICY_EFFECT_DENY) {
          s.state = StepState.STEP_STATE_DENIED;
          s.error = intentsV1.StepError.fromPartial({
            code: 'PERMISSION_DENIED',
            reason: 'POLICY_DENIED',
            domain: ERROR_DOMAIN,
            message: s.decision!.reason,
            metadata: { policy_ids: s.decision!.policyIds.join(',') },
          });
        } else s.state = StepState.STEP_STATE_SKIPPED;
      }
      const reason = `policy denied ${denied
        .map(
          (s) =>
            `step ${s.id} (${s.decision!.action}: ${s.decision!.policyIds.join(', ')}: ${s.decision!.reason})`,
        )
        .join('; ')}; nothing ran`;
      this.end(a, IntentState.INTENT_STATE_DENIED, reason);
      return;
    }
    if (intent.dryRun) {
      for (const s of intent.plan.steps) s.state = StepState.STEP_STATE_SKIPPED;
      this.end(a, IntentState.INTENT_STATE_SUCCEEDED, '');
      return;
    }
    const asks = intent.plan.steps.filter((s) => s.decision!.effect === PolicyEffect.POLICY_EFFECT_ASK);
    if (asks.length > 0) {
      for (const s of asks) s.state = StepState.STEP_STATE_AWAITING_APPROVAL;
      this.event(
        a,
        IntentEventType.INTENT_EVENT_TYPE_APPROVAL_REQUESTED,
        `approval needed for ${asks.map((s) => `${s.id} (${s.decision!.reason})`).join('; ')}`,
      );
      this.setState(a, IntentState.INTENT_STATE_AWAITING_APPROVAL);
      return;
    }
    this.setState(a, IntentState.INTENT_STATE_RUNNING);
    this.drive(a);
  }

  // ---- approvals, rejection, cancel -------------------------------------------------------------------

  private activeOrThrow(name: string, id: string): Active | Intent {
    const a = this.active.get(id);
    if (a) return a;
    const stored = this.o.store.get(id);
    if (!stored) throw intentNotFound(name);
    return stored;
  }

  private awaitingTargets(a: Active, stepIds: string[], planEtag: string): Step[] {
    const intent = a.intent;
    if (intent.state !== IntentState.INTENT_STATE_AWAITING_APPROVAL)
      throw new FailedPreconditionError(
        `${intent.name} is ${stateName(intent.state)}, not awaiting approval`,
        'INTENT_NOT_AWAITING_APPROVAL',
        { state: stateName(intent.state) },
      );
    if (planEtag && planEtag !== intent.plan!.etag)
      throw new RpcError(
        Status.ABORTED,
        'PLAN_CHANGED',
        `the plan changed since it was shown (etag ${planEtag}, now ${intent.plan!.etag}); look at it again`,
        { metadata: { plan_etag: intent.plan!.etag } },
      );
    const steps = intent.plan!.steps;
    if (stepIds.length === 0)
      return steps.filter(
        (s) => s.state === StepState.STEP_STATE_AWAITING_APPROVAL && !a.approving.has(s.id),
      );
    return [...new Set(stepIds)].map((sid) => {
      const s = steps.find((x) => x.id === sid);
      if (!s || s.state !== StepState.STEP_STATE_AWAITING_APPROVAL || a.approving.has(sid))
        throw new FailedPreconditionError(
          s
            ? `step ${sid} is ${stepStateName(s.state)}, not awaiting approval`
            : `${intent.name} has no step ${sid}`,
          'STEP_NOT_AWAITING_APPROVAL',
          { step_id: sid },
        );
      return s;
    });
  }

  async approve(
    name: string,
    id: string,
    r: { stepIds: string[]; planEtag: string; comment: string; actor: string },
  ): Promise<Intent> {
    const found = this.activeOrThrow(name, id);
    if (!('running' in found)) return this.notAwaiting(found);
    const a = found;
    const targets = this.awaitingTargets(a, r.stepIds, r.planEtag);
    for (const s of targets) a.approving.add(s.id);
    try {
      // Mint first: if aetherd cannot mint, nothing is recorded and the caller sees why.
      const minted = await Promise.all(
        targets.map((s) => {
          const access = this.o.policy.access(s);
          return this.o
            .mintApproval({
              intentId: a.intent.id,
              stepId: s.id,
              action: access.action,
              constraints: approvalConstraints(s.tool as ToolName, access),
              approver: r.actor,
              daemon: access.daemon,
            })
            .catch((err: unknown) => {
              const e = RpcError.from(err);
              throw new RpcError(
                e.code === Status.UNAVAILABLE ? Status.UNAVAILABLE : Status.INTERNAL,
                'APPROVAL_TOKEN_FAILED',
                `aetherd did not mint the capability token for step ${s.id}: ${e.message}; nothing was approved`,
                { cause: err },
              );
            });
        }),
      );
      if (a.ending) return a.intent;
      for (const [i, s] of targets.entries()) {
        const m = minted[i]!;
        a.tokens.set(s.id, m.token);
        s.approval = intentsV1.Approval.fromPartial({
          approved: true,
          actor: r.actor,
          time: ts(),
          comment: r.comment,
          tokenId: m.id,
        });
        s.state = StepState.STEP_STATE_PENDING;
        this.event(
          a,
          IntentEventType.INTENT_EVENT_TYPE_APPROVED,
          `approved${r.comment ? `: ${r.comment}` : ''} (token ${m.id})`,
          s.id,
          r.actor,
        );
      }
    } finally {
      for (const s of targets) a.approving.delete(s.id);
    }
    const waiting = a.intent.plan!.steps.some((s) => s.state === StepState.STEP_STATE_AWAITING_APPROVAL);
    if (!waiting) {
      this.setState(a, IntentState.INTENT_STATE_RUNNING);
      this.drive(a);
    } else this.persist(a);
    return a.intent;
  }

  reject(
    name: string,
    id: string,
    r: { stepIds: string[]; planEtag: string; reason: string; actor: string },
  ): Intent {
    const found = this.activeOrThrow(name, id);
    if (!('running' in found)) return this.notAwaiting(found);
    const a = found;
    const targets = this.awaitingTargets(a, r.stepIds, r.planEtag);
    const why = r.reason || 'rejected';
    for (const s of targets) {
      s.state = StepState.STEP_STATE_REJECTED;
      s.approval = intentsV1.Approval.fromPartial({
        approved: false,
        actor: r.actor,
        time: ts(),
        comment: why,
      });
      s.error = intentsV1.StepError.fromPartial({
        code: 'PERMISSION_DENIED',
        reason: 'STEP_REJECTED',
        domain: ERROR_DOMAIN,
        message: `rejected by ${r.actor}: ${why}`,
      });
      this.event(a, IntentEventType.INTENT_EVENT_TYPE_REJECTED, why, s.id, r.actor);
    }
    this.end(
      a,
      IntentState.INTENT_STATE_DENIED,
      `${targets.map((s) => `step ${s.id}`).join(', ')} rejected by ${r.actor}: ${why}`,
    );
    return a.intent;
  }

  private notAwaiting(intent: Intent): never {
    throw new FailedPreconditionError(
      `${intent.name} is ${stateName(intent.state)}, not awaiting approval`,
      'INTENT_NOT_AWAITING_APPROVAL',
      { state: stateName(intent.state) },
    );
  }

  async cancel(name: string, id: string, reason: string, actor: string): Promise<Intent> {
    const found = this.activeOrThrow(name, id);
    if (!('running' in found)) return found; // terminal: unchanged
    const a = found;
    if (a.ending) return a.intent;
    this.event(a, IntentEventType.INTENT_EVENT_TYPE_CANCEL_REQUESTED, reason || 'cancelled', '', actor);
    await this.stopRunning(a, `cancelled by ${actor}${reason ? `: ${reason}` : ''}`);
    this.end(a, IntentState.INTENT_STATE_CANCELLED, `cancelled by ${actor}${reason ? `: ${reason}` : ''}`);
    return a.intent;
  }

  /** Aborts every running step and stops what it started (jobs, training runs); marks them CANCELLED. */
  private async stopRunning(a: Active, why: string): Promise<void> {
    a.ending = true;
    const stops: Promise<void>[] = [];
    for (const [sid, r] of a.running) {
      r.abort.abort();
      for (const res of r.resources)
        stops.push(
          this.o.tools.stop(res, a.intent.id).catch((err: unknown) => {
            this.o.log.warn(
              { intentId: a.intent.id, resource: res, err: (err as Error).message },
              'could not stop',
            );
          }),
        );
      const s = a.intent.plan!.steps.find((x) => x.id === sid)!;
      s.state = StepState.STEP_STATE_CANCELLED;
      s.endTime = ts();
      s.error = intentsV1.StepError.fromPartial({
        code: 'CANCELLED',
        reason: 'STEP_CANCELLED',
        domain: ERROR_DOMAIN,
        message: why,
      });
    }
    a.running.clear();
    for (const s of a.intent.plan?.steps ?? [])
      if (s.state === StepState.STEP_STATE_PENDING || s.state === StepState.STEP_STATE_AWAITING_APPROVAL)
        s.state = StepState.STEP_STATE_CANCELLED;
    await Promise.all(stops);
  }

  // ---- running ------------------------------------------------------------------------------------------

  private drive(a: Active): void {
    const intent = a.intent;
    if (a.ending || intent.state !== IntentState.INTENT_STATE_RUNNING) return;
    const steps = intent.plan!.steps;
    const byId = new Map(steps.map((s) => [s.id, s]));
    let changed = true;
    while (changed) {
      changed = false;
      for (const s of steps) {
        if (s.state !== StepState.STEP_STATE_PENDING) continue;
        const deps = s.dependsOn.map((d) => byId.get(d)!);
        const blocked = deps.find(
          (d) =>
            d.state !== StepState.STEP_STATE_SUCCEEDED &&
            d.state !== StepState.STEP_STATE_PENDING &&
            d.state !== StepState.STEP_STATE_RUNNING,
        );
        if (blocked) {
          s.state = StepState.STEP_STATE_SKIPPED;
          changed = true;
          continue;
        }
        if (deps.every((d) => d.state === StepState.STEP_STATE_SUCCEEDED)) {
          if (!this.start(a, s)) return;
          changed = true;
        }
      }
    }
    if (a.running.size === 0 && steps.every((s) => s.state !== StepState.STEP_STATE_PENDING)) {
      const bad = steps.find(
        (s) => s.state !== StepState.STEP_STATE_SUCCEEDED && s.state !== StepState.STEP_STATE_SKIPPED,
      );
      void this.finish(
        a,
        bad ? IntentState.INTENT_STATE_FAILED : IntentState.INTENT_STATE_SUCCEEDED,
        bad ? `step ${bad.id} ${stepStateName(bad.state)}` : '',
      );
    }
  }

  /** Starts one step; false when a budget ended the intent instead. */
  private start(a: Active, s: Step): boolean {
    const intent = a.intent;
    const startsJob = startsJobTool(s.tool);
    if (startsJob && a.jobsStarted >= intent.budget!.maxJobs) {
      const reason = `step ${s.id} would start job ${a.jobsStarted + 1}, over the budget of ${intent.budget!.maxJobs} (max_jobs)`;
      this.event(a, IntentEventType.INTENT_EVENT_TYPE_BUDGET_EXCEEDED, reason, s.id);
      void this.fail(a, reason);
      return false;
    }
    if (startsJob) a.jobsStarted++;
    const byId = new Map(intent.plan!.steps.map((x) => [x.id, x]));
    let args: JsonObject;
    try {
      args = resolveReferences(s.arguments ?? {}, (stepId, output) => {
        const r = byId.get(stepId)?.result as JsonObject | undefined;
        if (!r || !(output in r)) throw new Error(`step ${stepId} produced no output "${output}"`);
        return r[output]!;
      });
    } catch (err) {
      this.stepFailed(
        a,
        s,
        new ToolFailure((err as Error).message, 'INVALID_ARGUMENT', 'UNRESOLVED_REFERENCE'),
      );
      return false;
    }
    const abort = new AbortController();
    const run = { abort, resources: [] as string[] };
    a.running.set(s.id, run);
    s.state = StepState.STEP_STATE_RUNNING;
    s.startTime = ts();
    s.attempts = 0;
    this.event(
      a,
      IntentEventType.INTENT_EVENT_TYPE_STEP_STARTED,
      `${s.tool}${s.description ? `: ${s.description}` : ''}`,
      s.id,
    );
    this.persist(a);
    void this.attempt(a, s, args, run).then(
      (res) => this.stepSucceeded(a, s, res),
      (err: unknown) => this.stepFailed(a, s, err),
    );
    return true;
  }

  private async attempt(
    a: Active,
    s: Step,
    args: JsonObject,
    run: { abort: AbortController; resources: string[] },
  ): Promise<ToolResult> {
    const maxRetries = a.intent.budget!.maxRetries;
    let backoff = this.o.limits.retryBackoffMs;
    for (;;) {
      s.attempts++;
      let token = a.tokens.get(s.id);
      if (!token && s.approval?.approved) token = await this.remint(a, s);
      try {
        return await this.o.tools.run({
          intentId: a.intent.id,
          stepId: s.id,
          tool: s.tool as ToolName,
          arguments: args,
          ...(token ? { token } : {}),
          signal: run.abort.signal,
          onResource: (name) => {
            if (!run.resources.includes(name)) run.resources.push(name);
            if (!s.resources.includes(name)) s.resources.push(name);
          },
        });
      } catch (err) {
        if (run.abort.signal.aborted) throw err;
        const e = err instanceof ToolFailure ? undefined : RpcError.from(err);
        if (e?.code !== Status.UNAVAILABLE || s.attempts > maxRetries) throw err;
        const wait = Math.min(30_000, backoff * (0.5 + Math.random()));
        backoff *= 2;
        this.event(
          a,
          IntentEventType.INTENT_EVENT_TYPE_STEP_RETRIED,
          `attempt ${s.attempts} failed with UNAVAILABLE (${e.message}); retrying in ${Math.round(wait)} ms`,
          s.id,
        );
        this.persist(a);
        await sleep(wait, run.abort.signal);
      }
    }
  }

  /** After a restart the approval's token is gone from memory; the recorded approval mints a new one. */
  private async remint(a: Active, s: Step): Promise<string> {
    const access = this.o.policy.access(s);
    const m = await this.o.mintApproval({
      intentId: a.intent.id,
      stepId: s.id,
      action: access.action,
      constraints: approvalConstraints(s.tool as ToolName, access),
      approver: s.approval!.actor,
      daemon: access.daemon,
    });
    a.tokens.set(s.id, m.token);
    return m.token;
  }

  private stepSucceeded(a: Active, s: Step, res: ToolResult): void {
    // Shutting down: the step stays RUNNING in the store and resumes at the next start.
    if (this.closed) return;
    if (s.state !== StepState.STEP_STATE_RUNNING) return; // cancelled meanwhile
    a.running.delete(s.id);
    const declared = new Set(s.outputs);
    s.result = Object.fromEntries(
      Object.entries(res.result).filter(([k]) => declared.size === 0 || declared.has(k)),
    );
    for (const r of res.resources) if (!s.resources.includes(r)) s.resources.push(r);
    for (const r of s.resources) if (!a.intent.resources.includes(r)) a.intent.resources.push(r);
    for (const c of res.citations)
      a.intent.citations.push(
        intentsV1.IntentCitation.fromPartial({
          ...c,
          version: BigInt(c.version),
          charStart: BigInt(c.charStart),
          charEnd: BigInt(c.charEnd),
          stepId: s.id,
        }),
      );
    s.state = StepState.STEP_STATE_SUCCEEDED;
    s.endTime = ts();
    this.event(a, IntentEventType.INTENT_EVENT_TYPE_STEP_SUCCEEDED, describeResult(s.tool, res.result), s.id);
    this.persist(a);
    this.drive(a);
  }

  private stepFailed(a: Active, s: Step, err: unknown): void {
    // Shutting down aborts every call; that is no failure, and nothing the step started is stopped.
    if (this.closed) return;
    if (s.state !== StepState.STEP_STATE_RUNNING && s.state !== StepState.STEP_STATE_PENDING) return;
    a.running.delete(s.id);
    s.state = StepState.STEP_STATE_FAILED;
    s.endTime = ts();
    s.error = stepError(err);
    this.event(
      a,
      IntentEventType.INTENT_EVENT_TYPE_STEP_FAILED,
      `${s.error.code}${s.error.reason ? ` ${s.error.reason}` : ''}: ${s.error.message}`,
      s.id,
    );
    void this.fail(a, `step ${s.id} (${s.tool}) failed: ${s.error.message}`);
  }

  private async fail(a: Active, reason: string): Promise<void> {
    if (a.ending) return;
    await this.stopRunning(a, reason);
    // Steps that never started are SKIPPED, not CANCELLED: nobody cancelled them.
    for (const s of a.intent.plan?.steps ?? [])
      if (s.state === StepState.STEP_STATE_CANCELLED && !s.startTime) s.state = StepState.STEP_STATE_SKIPPED;
    await this.finish(a, IntentState.INTENT_STATE_FAILED, reason);
  }

  /**
   * Ends the intent, then writes its summary entry. The outcome is recorded and told first: the summary
   * is bookkeeping (one more round trip to aetherd) and must not hold back the answer. Watchers stay
   * attached until the summary is written, so a watch still ends with `summary_entry` set.
   */
  private async finish(a: Active, state: intentsV1.IntentState, reason: string): Promise<void> {
    a.ending = true;
    const text = this.summaryText(a.intent, state, reason);
    if (text === undefined) {
      this.end(a, state, reason);
      return;
    }
    a.intent.summary = text;
    this.end(a, state, reason, true);
    await this.writeSummaryEntry(a, text);
    this.closeWatchers(a.intent.id);
  }

  /** What the summary entry says; undefined when nothing ran (a dry run, a denial, a plan over budget). */
  private summaryText(intent: Intent, state: intentsV1.IntentState, reason: string): string | undefined {
    if (intent.dryRun || !(intent.plan?.steps ?? []).some((s) => s.startTime)) return undefined;
    const what =
      intent.input?.$case === 'text' ? intent.input.value : `goal ${intent.input?.value.name ?? ''}`;
    const lines = [
      `Intent ${intent.id} (${what}) ended ${stateName(state)}${reason ? `: ${reason}` : ''}.`,
      ...intent.plan!.steps.map(
        (s) =>
          `- ${s.id} (${s.tool}): ${stepStateName(s.state)}${s.result ? `; ${describeResult(s.tool, s.result)}` : ''}${s.error ? `; ${s.error.message}` : ''}`,
      ),
    ];
    if (intent.citations.length > 0)
      lines.push(
        `Citations: ${intent.citations.map((c) => `${c.entry}@${c.version} [${c.charStart},${c.charEnd})`).join(', ')}`,
      );
    if (intent.resources.length > 0) lines.push(`Resources: ${intent.resources.join(', ')}`);
    return lines.join('\n');
  }

  /** The summary entry in memory, referencing the jobs, artifacts and entries the intent used. */
  private async writeSummaryEntry(a: Active, text: string): Promise<void> {
    const intent = a.intent;
    try {
      intent.summaryEntry = await this.o.writeSummary(intent, text);
      if (!intent.resources.includes(intent.summaryEntry)) intent.resources.push(intent.summaryEntry);
      this.event(
        a,
        IntentEventType.INTENT_EVENT_TYPE_SUMMARY_WRITTEN,
        `summary written to ${intent.summaryEntry}`,
      );
      this.persist(a);
    } catch (err) {
      this.o.log.warn(
        { intentId: intent.id, err: RpcError.from(err).message },
        'could not write the intent summary to memory',
      );
    }
  }

  /** The terminal transition: persisted, told to watchers (whose streams then end), timers cleared. */
  private end(a: Active, state: intentsV1.IntentState, reason: string, keepWatchers = false): void {
    a.ending = true;
    const intent = a.intent;
    if (isTerminalIntent(intent.state)) return;
    for (const s of intent.plan?.steps ?? [])
      if (s.state === StepState.STEP_STATE_PENDING || s.state === StepState.STEP_STATE_AWAITING_APPROVAL)
        s.state = StepState.STEP_STATE_SKIPPED;
    intent.failureReason = reason;
    intent.endTime = ts();
    clearTimeout(a.timer);
    this.active.delete(intent.id);
    this.setState(a, state);
    if (!keepWatchers) this.closeWatchers(intent.id);
  }

  private closeWatchers(id: string): void {
    const set = this.watchers.get(id);
    this.watchers.delete(id);
    for (const w of set ?? []) w.end();
  }

  private armTimer(a: Active): void {
    const limitMs = msFromDuration(a.intent.budget!.maxDuration!);
    const left = msOf(a.intent.createTime) + limitMs - Date.now();
    const expire = (): void => {
      if (a.ending || isTerminalIntent(a.intent.state)) return;
      const reason = `the intent ran past its wall-clock budget of ${Math.round(limitMs / 1000)} s (max_duration)`;
      this.event(a, IntentEventType.INTENT_EVENT_TYPE_BUDGET_EXCEEDED, reason);
      void this.fail(a, reason);
    };
    if (left <= 0) {
      setImmediate(expire);
      return;
    }
    a.timer = setTimeout(expire, Math.min(left, 2 ** 31 - 1));
    a.timer.unref();
  }

  // ---- restart ----------------------------------------------------------------------------------------

  /**
   * Picks up what a previous aurorad left: planning cannot be resumed (the planner's state is gone), so
   * those fail; intents awaiting approval keep waiting; running intents resume, re-running each step
   * that was in flight — safe because every call that creates something carries the idempotency key
   * `<intent>:<step>`, so aetherd returns what the first attempt made. Beyond the 24-hour idempotency
   * window that is no longer guaranteed, so such an intent fails with the reason.
   */
  recover(): { resumed: number; failed: number } {
    let resumed = 0;
    let failed = 0;
    for (const intent of this.o.store.active()) {
      const a: Active = {
        intent,
        running: new Map(),
        tokens: new Map(),
        jobsStarted: 0,
        ending: false,
        approving: new Set(),
      };
      this.active.set(intent.id, a);
      if (intent.state === IntentState.INTENT_STATE_PLANNING) {
        this.event(a, IntentEventType.INTENT_EVENT_TYPE_PLANNING_FAILED, 'aurorad restarted while planning');
        this.end(
          a,
          IntentState.INTENT_STATE_FAILED,
          'aurorad restarted while the intent was being planned; submit it again',
        );
        failed++;
        continue;
      }
      const inFlight = (intent.plan?.steps ?? []).filter((s) => s.state === StepState.STEP_STATE_RUNNING);
      if (inFlight.length > 0 && Date.now() - msOf(intent.createTime) > IDEMPOTENCY_WINDOW_MS) {
        for (const s of inFlight) s.state = StepState.STEP_STATE_FAILED;
        this.end(
          a,
          IntentState.INTENT_STATE_FAILED,
          `aurorad restarted with ${inFlight.map((s) => s.id).join(', ')} in flight, too long ago to resume safely (24 h idempotency window)`,
        );
        failed++;
        continue;
      }
      for (const s of inFlight) {
        s.state = StepState.STEP_STATE_PENDING;
        s.startTime = undefined;
      }
      // Jobs of steps that ran before count against the budget; a resumed step counts when it starts.
      a.jobsStarted = (intent.plan?.steps ?? []).filter((s) => startsJobTool(s.tool) && s.startTime).length;
      this.event(
        a,
        IntentEventType.INTENT_EVENT_TYPE_RESUMED,
        inFlight.length > 0
          ? `aurorad restarted; resuming ${inFlight.map((s) => s.id).join(', ')} (idempotent by intent and step id)`
          : `aurorad restarted; ${stateName(intent.state).toLowerCase().replace('_', ' ')} again`,
      );
      this.persist(a);
      this.armTimer(a);
      resumed++;
    }
    for (const a of this.active.values())
      if (a.intent.state === IntentState.INTENT_STATE_RUNNING) this.drive(a);
    return { resumed, failed };
  }

  // ---- watch ------------------------------------------------------------------------------------------

  /**
   * Tells `w` of every later change and then that the intent is done (ended, and its summary written);
   * returns how to stop. Undefined when the intent has already ended.
   */
  watch(id: string, w: Watcher): (() => void) | undefined {
    if (!this.active.has(id)) return undefined;
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(w);
    return () => set.delete(w);
  }

  /** Stops everything in flight without ending intents (they resume at the next start). */
  close(): void {
    this.closed = true;
    for (const a of this.active.values()) {
      clearTimeout(a.timer);
      for (const r of a.running.values()) r.abort.abort();
    }
  }

  // ---- plumbing -----------------------------------------------------------------------------------------

  private setState(a: Active, state: intentsV1.IntentState): void {
    const previous = a.intent.state;
    a.intent.state = state;
    this.event(
      a,
      IntentEventType.INTENT_EVENT_TYPE_STATE_CHANGED,
      `${stateName(previous)} -> ${stateName(state)}`,
    );
    this.persist(a);
    this.o.onStateChange?.(a.intent, previous);
  }

  private pendingEvents = new Map<string, intentsV1.IntentEvent[]>();

  private event(a: Active, type: intentsV1.IntentEventType, message: string, stepId = '', actor = ''): void {
    const e = intentsV1.IntentEvent.fromPartial({ time: ts(), type, stepId, message, actor });
    a.intent.events.push(e);
    let list = this.pendingEvents.get(a.intent.id);
    if (!list) this.pendingEvents.set(a.intent.id, (list = []));
    list.push(e);
  }

  /** Persists the intent, then tells watchers of the events since the last persist. */
  private persist(a: Active): void {
    if (this.closed) return;
    a.intent.updateTime = ts();
    this.o.store.update(a.intent);
    const events = this.pendingEvents.get(a.intent.id) ?? [];
    this.pendingEvents.delete(a.intent.id);
    const set = this.watchers.get(a.intent.id);
    if (set) for (const e of events) for (const w of set) w.update(a.intent, e);
  }
}

function startsJobTool(tool: string): boolean {
  return tool === 'jobs.run' || tool === 'models.train';
}

export function intentNotFound(name: string): RpcError {
  return new RpcError(Status.NOT_FOUND, 'INTENT_NOT_FOUND', `${name} not found`, {
    metadata: { resource: name },
  });
}

/** One line saying what a step produced, for events and the summary. */
export function describeResult(tool: string, r: JsonObject): string {
  const parts: string[] = [];
  if (typeof r['job'] === 'string') parts.push(`${r['job']} exit ${JSON.stringify(r['exit_code'] ?? '?')}`);
  if (typeof r['stdout'] === 'string' && r['stdout'])
    parts.push(`stdout ${JSON.stringify(truncate(r['stdout'].trim(), 80))}`);
  if (typeof r['artifact'] === 'string' && r['artifact'])
    parts.push(`${r['artifact']} ${typeof r['digest'] === 'string' ? r['digest'] : ''}`.trim());
  if (typeof r['entry'] === 'string')
    parts.push(typeof r['version'] === 'number' ? `${r['entry']} v${r['version']}` : r['entry']);
  if (Array.isArray(r['hits'])) parts.push(`${r['hits'].length} hit(s)`);
  if (typeof r['run'] === 'string') parts.push(r['run']);
  if (typeof r['text'] === 'string') parts.push(JSON.stringify(truncate(r['text'], 80)));
  return parts.join(', ') || tool;
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}
