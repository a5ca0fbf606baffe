/**
 * The plan schema: the one gate every plan passes before aurorad accepts it, whether the model planner
 * wrote it as JSON or a playbook expanded into it. Everything is checked up front and every problem is
 * reported with its path, so a model can be asked again with the full list, and a playbook author sees
 * all mistakes at once.
 */
import {
  TOOLS,
  TOOL_OUTPUTS,
  fieldPath,
  indexPath,
  isTool,
  type Json,
  type JsonObject,
  type PlanDraft,
  type PlannedStep,
  type PlanProblem,
  type ToolName,
} from './plan';
import { checkArguments } from './tool-arguments';

export const STEP_ID_PATTERN = /^[a-z0-9_-]{1,64}$/;
export const DEFAULT_MAX_STEPS = 64;

export interface ValidatePlanOptions {
  /** Most steps allowed; default {@link DEFAULT_MAX_STEPS}. */
  maxSteps?: number;
}

export type PlanValidation = { ok: true; plan: PlanDraft } | { ok: false; problems: PlanProblem[] };

/**
 * Checks a plan given as `{"steps": [{"id", "description", "tool", "arguments", "depends_on",
 * "outputs"}]}` (`dependsOn` is accepted for `depends_on`) and returns it with its steps in a topological
 * order (the given order where it already is one), or every problem found. `playbook` is empty: the
 * caller that expanded a playbook names it.
 */
export function validatePlan(input: unknown, options: ValidatePlanOptions = {}): PlanValidation {
  const { steps, problems } = checkPlanStructure(input, {
    maxSteps: options.maxSteps ?? DEFAULT_MAX_STEPS,
    deferred: containsStepReference,
  });
  if (problems.length > 0 || !steps) return { ok: false, problems };
  return { ok: true, plan: { playbook: '', steps } };
}

// ---- step references -----------------------------------------------------------------------------------

/** One `${steps.<id>.outputs.<name>}` in a string, or a malformed `${steps.…` (then `stepId` is undefined). */
export interface StepReference {
  /** The reference as written, e.g. `${steps.run.outputs.job}`. */
  text: string;
  stepId?: string;
  output?: string;
}

const REFERENCE_BODY = /^([a-z0-9_-]{1,64})\.outputs\.([a-z_][a-z0-9_]*)$/;

/** Every step reference in `text`, in order, malformed ones included. */
export function findStepReferences(text: string): StepReference[] {
  const found: StepReference[] = [];
  for (let at = text.indexOf('${steps.'); at >= 0; at = text.indexOf('${steps.', at + 1)) {
    const end = text.indexOf('}', at);
    if (end < 0) {
      found.push({ text: text.slice(at) });
      break;
    }
    const body = REFERENCE_BODY.exec(text.slice(at + '${steps.'.length, end));
    found.push({
      text: text.slice(at, end + 1),
      ...(body ? { stepId: body[1]!, output: body[2]! } : {}),
    });
  }
  return found;
}

/** Whether a JSON value is a string holding a `${steps.` reference (resolved only when the step runs). */
export function containsStepReference(value: Json): boolean {
  return typeof value === 'string' && value.includes('${steps.');
}

// ---- the structural check (shared with the playbook loader) -----------------------------------------

export interface PlanStructureOptions {
  maxSteps: number;
  /**
   * Argument values (object fields or array elements) left out of the strict argument check because
   * they are only known later: `${steps.…}` references (run time), and for a playbook before expansion
   * also `${params.…}` templates.
   */
  deferred: (value: Json) => boolean;
}

const STEP_KEYS = ['id', 'description', 'tool', 'arguments', 'depends_on', 'dependsOn', 'outputs'];

/**
 * Every check of {@link validatePlan}, with the deferred values chosen by the caller. Returns the steps
 * in topological order when there is no problem.
 */
export function checkPlanStructure(
  input: unknown,
  options: PlanStructureOptions,
): { steps?: PlannedStep[]; problems: PlanProblem[] } {
  const problems: PlanProblem[] = [];
  if (!isPlainObject(input)) {
    return {
      problems: [{ path: '', message: `expected a plan object {"steps": [...]}, got ${describe(input)}` }],
    };
  }
  for (const key of Object.keys(input))
    if (key !== 'steps')
      problems.push({
        path: fieldPath('', key),
        message: `unknown key "${key}"; a plan is {"steps": [...]}`,
      });
  const rawSteps = input['steps'];
  if (!Array.isArray(rawSteps)) {
    problems.push({
      path: 'steps',
      message:
        rawSteps === undefined
          ? 'required: the array of steps'
          : `expected an array of steps, got ${describe(rawSteps)}`,
    });
    return { problems };
  }
  if (rawSteps.length === 0) problems.push({ path: 'steps', message: 'a plan needs at least one step' });
  if (rawSteps.length > options.maxSteps) {
    problems.push({
      path: 'steps',
      message: `${rawSteps.length} steps; at most ${options.maxSteps} are allowed`,
    });
    return { problems };
  }

  // Shape of each step; what cannot be read is left out of the checks that follow.
  const steps: (PlannedStep | undefined)[] = rawSteps.map((raw: unknown, i) =>
    readStep(raw, `steps[${i}]`, problems),
  );

  const firstIndex = new Map<string, number>();
  // Ids are read from the raw steps, so that a step with another mistake is not also "unknown" to others.
  rawSteps.forEach((raw: unknown, i) => {
    const id = isPlainObject(raw) ? raw['id'] : undefined;
    if (typeof id !== 'string' || !STEP_ID_PATTERN.test(id)) return;
    const earlier = firstIndex.get(id);
    if (earlier !== undefined)
      problems.push({
        path: `steps[${i}].id`,
        message: `duplicate step id "${id}" (also steps[${earlier}])`,
      });
    else firstIndex.set(id, i);
  });

  steps.forEach((step, i) => {
    if (!step) return;
    const at = `steps[${i}]`;
    const deps = new Set<string>();
    step.dependsOn.forEach((dep, j) => {
      const depPath = indexPath(`${at}.depends_on`, j);
      if (dep === step.id)
        problems.push({ path: depPath, message: `step "${step.id}" cannot depend on itself` });
      else if (!firstIndex.has(dep))
        problems.push({
          path: depPath,
          message: `unknown step "${dep}"; steps: ${[...firstIndex.keys()].join(', ')}`,
        });
      else if (deps.has(dep)) problems.push({ path: depPath, message: `"${dep}" is listed twice` });
      deps.add(dep);
    });
    const outputs = new Set<string>();
    step.outputs.forEach((output, j) => {
      const outputPath = indexPath(`${at}.outputs`, j);
      const known = TOOL_OUTPUTS[step.tool];
      if (!known.includes(output))
        problems.push({
          path: outputPath,
          message: `${step.tool} has no output "${output}"; its outputs: ${known.join(', ')}`,
        });
      else if (outputs.has(output))
        problems.push({ path: outputPath, message: `"${output}" is listed twice` });
      outputs.add(output);
    });
    checkReferences(step, `${at}.arguments`, step.arguments, steps, firstIndex, problems);
    problems.push(...checkArguments(step.tool, step.arguments, `${at}.arguments`, options.deferred));
  });

  const cycle = findCycle(steps, firstIndex);
  if (cycle) problems.push(cycle);
  if (problems.length > 0) return { problems };
  return { steps: topologicalOrder(steps as PlannedStep[]), problems };
}

function readStep(raw: unknown, at: string, problems: PlanProblem[]): PlannedStep | undefined {
  if (!isPlainObject(raw)) {
    problems.push({
      path: at,
      message: `expected a step object {"id", "description", "tool", "arguments", "depends_on", "outputs"}, got ${describe(raw)}`,
    });
    return undefined;
  }
  const before = problems.length;
  for (const key of Object.keys(raw))
    if (!STEP_KEYS.includes(key))
      problems.push({
        path: fieldPath(at, key),
        message: `unknown key "${key}"; a step has ${STEP_KEYS.filter((k) => k !== 'dependsOn').join(', ')}`,
      });

  const id = raw['id'];
  if (typeof id !== 'string') problems.push({ path: `${at}.id`, message: requiredString(id) });
  else if (!STEP_ID_PATTERN.test(id))
    problems.push({ path: `${at}.id`, message: `"${id}" is not a step id: 1-64 characters of [a-z0-9_-]` });

  const description = raw['description'] ?? '';
  if (typeof description !== 'string')
    problems.push({ path: `${at}.description`, message: `expected a string, got ${describe(description)}` });

  const tool = raw['tool'];
  if (typeof tool !== 'string') problems.push({ path: `${at}.tool`, message: requiredString(tool) });
  else if (!isTool(tool))
    problems.push({
      path: `${at}.tool`,
      message: `unknown tool "${tool}"; known tools: ${TOOLS.join(', ')}`,
    });

  const args = raw['arguments'];
  if (args === undefined)
    problems.push({
      path: `${at}.arguments`,
      message: "required: an object, the JSON form of the tool's request",
    });
  else if (!isPlainObject(args))
    problems.push({ path: `${at}.arguments`, message: `expected an object, got ${describe(args)}` });
  else jsonProblems(args, `${at}.arguments`, problems);

  if (raw['depends_on'] !== undefined && raw['dependsOn'] !== undefined)
    problems.push({ path: `${at}.dependsOn`, message: 'give depends_on or dependsOn, not both' });
  const dependsOnKey = raw['depends_on'] !== undefined ? 'depends_on' : 'dependsOn';
  const dependsOn = stringList(raw[dependsOnKey], `${at}.${dependsOnKey}`, problems);
  const outputs = stringList(raw['outputs'], `${at}.outputs`, problems);

  if (problems.length > before) return undefined;
  return {
    id: id as string,
    description: description as string,
    tool: tool as ToolName,
    arguments: args as JsonObject,
    dependsOn,
    outputs,
  };
}

function stringList(value: unknown, at: string, problems: PlanProblem[]): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.push({ path: at, message: `expected an array of strings, got ${describe(value)}` });
    return [];
  }
  value.forEach((v, i) => {
    if (typeof v !== 'string')
      problems.push({ path: indexPath(at, i), message: `expected a string, got ${describe(v)}` });
  });
  return value.filter((v): v is string => typeof v === 'string');
}

/** Arguments come from JSON or YAML; anything JSON cannot carry (a date, NaN) would not survive storage. */
function jsonProblems(value: unknown, at: string, problems: PlanProblem[]): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) problems.push({ path: at, message: `${value} is not a JSON number` });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => jsonProblems(v, indexPath(at, i), problems));
    return;
  }
  if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) jsonProblems(v, fieldPath(at, k), problems);
    return;
  }
  problems.push({ path: at, message: `${describe(value)} is not a JSON value` });
}

/** Each `${steps.<id>.outputs.<name>}` must name a direct dependency and an output it declares. */
function checkReferences(
  step: PlannedStep,
  at: string,
  value: Json,
  steps: readonly (PlannedStep | undefined)[],
  firstIndex: ReadonlyMap<string, number>,
  problems: PlanProblem[],
): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkReferences(step, indexPath(at, i), v, steps, firstIndex, problems));
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value))
      checkReferences(step, fieldPath(at, k), v, steps, firstIndex, problems);
    return;
  }
  if (typeof value !== 'string') return;
  for (const ref of findStepReferences(value)) {
    if (ref.stepId === undefined || ref.output === undefined) {
      problems.push({
        path: at,
        message: `malformed step reference "${ref.text}"; write \${steps.<step id>.outputs.<output>}`,
      });
      continue;
    }
    const index = firstIndex.get(ref.stepId);
    const target = index === undefined ? undefined : steps[index];
    if (index === undefined) {
      problems.push({ path: at, message: `${ref.text} refers to unknown step "${ref.stepId}"` });
    } else if (!step.dependsOn.includes(ref.stepId)) {
      problems.push({
        path: at,
        message: `${ref.text} refers to step "${ref.stepId}", which is not in this step's depends_on`,
      });
    } else if (target && !target.outputs.includes(ref.output)) {
      problems.push({
        path: at,
        message: `${ref.text}: step "${ref.stepId}" does not declare output "${ref.output}" (its outputs: ${target.outputs.join(', ') || 'none'})`,
      });
    }
  }
}

/** The first dependency cycle, as a problem at the depends_on of a step on it. */
function findCycle(
  steps: readonly (PlannedStep | undefined)[],
  firstIndex: ReadonlyMap<string, number>,
): PlanProblem | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const trail: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...trail.slice(trail.indexOf(id)), id];
    state.set(id, 'visiting');
    trail.push(id);
    const step = steps[firstIndex.get(id)!];
    for (const dep of step?.dependsOn ?? []) {
      if (!firstIndex.has(dep) || dep === id) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    trail.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const id of firstIndex.keys()) {
    const cycle = visit(id);
    if (cycle)
      return {
        path: `steps[${firstIndex.get(cycle[0]!)!}].depends_on`,
        message: `dependency cycle: ${cycle.join(' -> ')} (each step depends on the next)`,
      };
  }
  return undefined;
}

/** Kahn's algorithm, always taking the earliest ready step, so a valid given order is kept. */
function topologicalOrder(steps: readonly PlannedStep[]): PlannedStep[] {
  const placed = new Set<string>();
  const remaining = [...steps];
  const order: PlannedStep[] = [];
  while (remaining.length > 0) {
    const next = remaining.findIndex((s) => s.dependsOn.every((d) => placed.has(d)));
    const [step] = remaining.splice(next, 1);
    order.push(step!);
    placed.add(step!.id);
  }
  return order;
}

// ---- helpers -------------------------------------------------------------------------------------------

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function requiredString(value: unknown): string {
  return value === undefined ? 'required: a string' : `expected a string, got ${describe(value)}`;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'bigint') return `the integer ${value}`;
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
