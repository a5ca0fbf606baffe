import { status as Status } from '@grpc/grpc-js';
import { intentsV1 } from '@aether/proto';
import { InvalidArgumentError, RpcError } from '@aether/rpc';
import type { PlanDraft } from './plan';
import type { ModelPlanner } from './model-planner';
import { expandPlaybook, type PlaybookSet } from './playbooks';

export type PlanOutcome = { ok: true; draft: PlanDraft } | { ok: false; reason: string };

const { Planner: PlannerKind } = intentsV1;

/**
 * Chooses and runs a planner. Structured goals always go to the playbook of that name (an unknown
 * goal or bad parameters are the caller's error); text goes to the requested planner, else the
 * configured default. A planning failure on text is not an RPC error: the intent fails with the reason.
 */
export class Planner {
  constructor(
    private readonly playbooks: () => PlaybookSet,
    private readonly model: ModelPlanner,
    private readonly defaultPlanner: 'playbook' | 'model',
  ) {}

  resolve(p: intentsV1.Planner): intentsV1.Planner {
    if (p !== PlannerKind.PLANNER_UNSPECIFIED) return p;
    return this.defaultPlanner === 'model' ? PlannerKind.PLANNER_MODEL : PlannerKind.PLANNER_PLAYBOOK;
  }

  /** Plans a structured goal now, throwing the caller's errors before anything is recorded. */
  planGoal(goal: intentsV1.Goal, planner: intentsV1.Planner): Promise<PlanOutcome> {
    if (planner === PlannerKind.PLANNER_MODEL)
      throw new InvalidArgumentError([
        {
          field: 'planner',
          description: 'the model planner takes text; a structured goal is planned by its playbook',
        },
      ]);
    const pb = this.playbooks().get(goal.name);
    if (!pb)
      throw new RpcError(
        Status.NOT_FOUND,
        'UNKNOWN_GOAL',
        `no playbook answers the goal "${goal.name}"; known goals: ${this.playbooks()
          .list()
          .map((p) => p.name)
          .join(', ')}`,
        { metadata: { goal: goal.name } },
      );
    const expanded = expandPlaybook(pb, goal.parameters ?? {});
    if (!expanded.ok)
      throw new InvalidArgumentError(
        expanded.problems.map((p) => ({
          field: p.path.startsWith('parameters') ? `goal.${p.path}` : `goal (playbook ${pb.name}: ${p.path})`,
          description: p.message,
        })),
      );
    return Promise.resolve({ ok: true, draft: expanded.draft });
  }

  async planText(
    text: string,
    planner: intentsV1.Planner,
    intentId: string,
    note: (message: string) => void,
  ): Promise<PlanOutcome> {
    if (this.resolve(planner) === PlannerKind.PLANNER_MODEL) return this.model.plan(text, intentId, note);
    const set = this.playbooks();
    const match = set.match(text);
    if (!match)
      return {
        ok: false,
        reason: `no playbook matches "${text.length > 80 ? `${text.slice(0, 79)}…` : text}"; playbooks: ${set
          .list()
          .map((p) => p.name)
          .join(', ')}`,
      };
    const expanded = expandPlaybook(match.playbook, match.captures);
    if (!expanded.ok)
      return {
        ok: false,
        reason: `playbook ${match.playbook.name} could not plan it: ${expanded.problems
          .map((p) => `${p.path}: ${p.message}`)
          .join('; ')}`,
      };
    return expanded.draft.steps.length > 0
      ? { ok: true, draft: expanded.draft }
      : { ok: false, reason: 'the plan is empty' };
  }
}
