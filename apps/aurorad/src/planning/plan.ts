/**
 * A plan as the planners make it, before aurorad checks, stores and runs it: a small DAG of tool calls.
 * Both planners (playbooks and the model planner) produce this shape and pass it through
 * {@link validatePlan} (plan-schema.ts) before it is accepted.
 */

/** Every tool a step may call; see proto/aether/intents/v1/intents.proto for the RPC each maps to. */
export const TOOLS = [
  'jobs.run',
  'jobs.wait',
  'artifacts.register',
  'artifacts.get',
  'memory.add',
  'memory.search',
  'models.infer',
  'models.train',
  'models.generate',
] as const;
export type ToolName = (typeof TOOLS)[number];

export function isTool(name: string): name is ToolName {
  return (TOOLS as readonly string[]).includes(name);
}

/** A JSON value, as a step's arguments and results hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** One step of a plan draft. */
export interface PlannedStep {
  /** 1-64 characters of `[a-z0-9_-]`, unique within the plan. */
  id: string;
  description: string;
  tool: ToolName;
  /**
   * The JSON form of the tool's RPC request. String values may hold `${steps.<id>.outputs.<name>}`
   * references to earlier steps' outputs, resolved when the step runs; a string that is exactly one
   * reference takes the referenced value's type.
   */
  arguments: JsonObject;
  dependsOn: string[];
  /** Names of the outputs the step will produce (keys of its result). */
  outputs: string[];
}

/** What a planner hands back. */
export interface PlanDraft {
  /** The playbook that made it; empty for the model planner. */
  playbook: string;
  steps: PlannedStep[];
}

/** One thing wrong with a plan or a playbook, at a path such as `steps[1].depends_on[0]`. */
export interface PlanProblem {
  path: string;
  message: string;
}

/**
 * The outputs each tool produces (what the runner puts into a step's result); a step's `outputs` must be
 * a subset of its tool's.
 * - jobs.run / jobs.wait: `job` (`jobs/…`), `job_id`, `exit_code` (number), `state` (`SUCCEEDED`…),
 *   `stdout` (the first 64 KiB of its standard output), `artifacts` (names of the artifacts its declared
 *   outputs became), `digests` (their digests), `artifact` and `digest` (the first of each, or "").
 *   A job that does not succeed fails the step.
 * - artifacts.register / artifacts.get: `artifact` (`artifacts/…`), `digest`, `size_bytes`.
 * - memory.add: `entry` (`entries/…`), `version`.
 * - memory.search: `hits` (array of {entry, version, char_start, char_end, snippet, score}),
 *   `citations` (the same hits, cited by the intent), `answer` (the best snippets as text), `top_entry`.
 * - models.infer: `outputs` (tensors as JSON), `model`. models.generate: `text`.
 * - models.train: `run` (`trainingRuns/…`), `model`, `metrics`, `artifacts`.
 */
export const TOOL_OUTPUTS: Record<ToolName, readonly string[]> = {
  'jobs.run': ['job', 'job_id', 'exit_code', 'state', 'stdout', 'artifacts', 'digests', 'artifact', 'digest'],
  'jobs.wait': [
    'job',
    'job_id',
    'exit_code',
    'state',
    'stdout',
    'artifacts',
    'digests',
    'artifact',
    'digest',
  ],
  'artifacts.register': ['artifact', 'digest', 'size_bytes'],
  'artifacts.get': ['artifact', 'digest', 'size_bytes'],
  'memory.add': ['entry', 'version'],
  'memory.search': ['hits', 'citations', 'answer', 'top_entry'],
  'models.infer': ['outputs', 'model'],
  'models.train': ['run', 'model', 'metrics', 'artifacts'],
  'models.generate': ['text'],
};

/**
 * `base.key`, or `base["odd key"]` when the key is not an identifier (map keys such as label names), so
 * that a problem's path always says unambiguously where the value is.
 */
export function fieldPath(base: string, key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return `${base}[${JSON.stringify(key)}]`;
  return base === '' ? key : `${base}.${key}`;
}

/** `base[index]`. */
export function indexPath(base: string, index: number): string {
  return `${base}[${index}]`;
}
