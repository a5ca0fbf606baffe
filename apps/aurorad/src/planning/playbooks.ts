/**
 * The playbook planner: declarative YAML files that match an intent (by structured goal name, or by a
 * text pattern with named captures) and expand into a plan of parameterised steps. It is deterministic
 * and offline, so the same intent always gets the same plan, and everything a playbook can do is
 * reviewable in the file.
 *
 * Templates: `${params.<name>}` in any string of a step's `arguments` or `description`. A string that is
 * exactly one template takes the parameter's value with its type (an argv stays an array, an integer a
 * number); in an array, an element that is exactly one template of an `argv` or `strings` parameter is
 * replaced by the parameter's elements (spliced), so a command can be appended to a fixed prefix. Any
 * other template is interpolated as text (arrays joined with spaces). An optional parameter that has no
 * value and no default makes an exact template disappear (the field or element is omitted) and
 * interpolates as "". `${steps.<id>.outputs.<name>}` references are left for the runner.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import {
  fieldPath,
  indexPath,
  type Json,
  type JsonObject,
  type PlanDraft,
  type PlanProblem,
  type ToolName,
} from './plan';
import { checkPlanStructure, validatePlan, type ValidatePlanOptions } from './plan-schema';
import { ShellWordsError, shellWords } from './shell-words';

// ---- types ---------------------------------------------------------------------------------------------

export const PARAMETER_TYPES = ['string', 'integer', 'number', 'boolean', 'argv', 'strings'] as const;
export type ParameterType = (typeof PARAMETER_TYPES)[number];

/** A parameter's value once converted to its type. */
export type ParameterValue = string | number | boolean | string[];

export interface ParameterSpec {
  type: ParameterType;
  required: boolean;
  /** Already converted to `type` and checked against the spec at load time. */
  default?: ParameterValue;
  description: string;
  /** Allowed values (string, integer and number parameters). */
  enum?: readonly (string | number)[];
  /** The regex every string (or every element of a `strings` parameter) must match, implicitly anchored. */
  pattern?: string;
  minimum?: number;
  maximum?: number;
  /** Most characters (code points) of a string, or most elements of an argv or strings parameter. */
  maxLength?: number;
}

export interface PlaybookStep {
  id: string;
  /** May hold `${params.…}` templates. */
  description: string;
  tool: ToolName;
  /** The tool request's JSON form, with `${params.…}` templates and `${steps.…}` references. */
  arguments: JsonObject;
  dependsOn: string[];
  outputs: string[];
}

export interface Playbook {
  /** Unique; also the structured goal name it answers. */
  name: string;
  description: string;
  /** Higher is tried first when matching text; ties go by name. */
  priority: number;
  /** The file it was loaded from ('' when parsed from a string without one). */
  file: string;
  /** The `match.text` regexes as written. */
  textPatterns: readonly string[];
  /** The same, compiled: case-insensitive, Unicode, `.` matching newlines, anchored to the whole text. */
  textMatchers: readonly RegExp[];
  parameters: Readonly<Record<string, ParameterSpec>>;
  steps: readonly PlaybookStep[];
}

/** One problem of a playbook file, at a path within it such as `steps[0].tool`. */
export interface PlaybookProblem {
  file: string;
  path: string;
  message: string;
}

/** Formats problems as `file: path: message`, one per line. */
export function formatPlaybookProblems(problems: readonly PlaybookProblem[]): string {
  return problems.map((p) => [p.file, p.path, p.message].filter((s) => s !== '').join(': ')).join('\n');
}

/** The playbooks could not be loaded; nothing of them is in force. `problems` lists every problem found. */
export class PlaybookLoadError extends Error {
  override readonly name = 'PlaybookLoadError';

  constructor(readonly problems: readonly PlaybookProblem[]) {
    super(
      `cannot load playbooks (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${formatPlaybookProblems(problems)}`,
    );
  }
}

// ---- the file schema -----------------------------------------------------------------------------------

const PLAYBOOK_NAME = /^[a-z0-9._-]{1,128}$/;
const PARAMETER_NAME = /^[a-z_][a-z0-9_]*$/;
/** More steps than any playbook sensibly has; the intent's own limit applies when it is expanded. */
const MAX_PLAYBOOK_STEPS = 256;

const parameterSchema = z.strictObject({
  type: z.enum(PARAMETER_TYPES, { error: `must be one of ${PARAMETER_TYPES.join(', ')}` }),
  required: z.boolean().optional(),
  default: z
    .union([z.string(), z.number(), z.boolean(), z.array(z.string())], {
      error: 'expected a string, a number, a boolean or an array of strings',
    })
    .optional(),
  description: z.string().optional(),
  enum: z
    .array(z.union([z.string(), z.number()], { error: 'expected a string or a number' }))
    .min(1)
    .optional(),
  pattern: z.string().min(1).optional(),
  minimum: z.number().optional(),
  maximum: z.number().optional(),
  max_length: z.number().int().min(1).optional(),
});

const stepSchema = z.strictObject({
  id: z.string(),
  description: z.string(),
  tool: z.string(),
  depends_on: z.array(z.string()).optional(),
  arguments: z.record(z.string(), z.unknown()),
  outputs: z.array(z.string()).optional(),
});

const playbookSchema = z.strictObject({
  name: z.string().regex(PLAYBOOK_NAME, { error: 'must be 1-128 characters of [a-z0-9._-]' }),
  description: z.string().min(1),
  priority: z.number().int().optional(),
  match: z.strictObject({ text: z.array(z.string().min(1)).min(1).optional() }).optional(),
  parameters: z
    .record(
      z.string().regex(PARAMETER_NAME, { error: 'a parameter name is [a-z_][a-z0-9_]*' }),
      parameterSchema,
    )
    .optional(),
  steps: z.array(stepSchema).min(1),
});
type PlaybookFile = z.infer<typeof playbookSchema>;

function zodPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (at, key) => (typeof key === 'number' ? indexPath(at, key) : fieldPath(at, String(key))),
    '',
  );
}

function zodProblems(error: z.ZodError): PlanProblem[] {
  return error.issues.flatMap((issue): PlanProblem[] => {
    const at = zodPath(issue.path);
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((key) => ({ path: fieldPath(at, key), message: `unknown key "${key}"` }));
    if (issue.code === 'invalid_key')
      return [{ path: at, message: `invalid key: ${issue.issues.map((i) => i.message).join('; ')}` }];
    return [{ path: at, message: issue.message.replace(/^Invalid input: /, '') }];
  });
}

// ---- loading -------------------------------------------------------------------------------------------

/**
 * Reads every `*.yaml` / `*.yml` file of each directory (in name order) and checks it completely: the
 * schema, the regexes and their named groups, the parameter specs and defaults, the templates, and the
 * steps (tools, dependencies, outputs, references, argument fields). Throws {@link PlaybookLoadError}
 * listing every problem of every file, so that a broken playbook never replaces working ones.
 */
export function loadPlaybooks(dirs: readonly string[]): Playbook[] {
  const problems: PlaybookProblem[] = [];
  const playbooks: Playbook[] = [];
  const byName = new Map<string, Playbook>();
  for (const dir of dirs) {
    let names: string[];
    try {
      if (!statSync(dir).isDirectory()) {
        problems.push({
          file: dir,
          path: '',
          message: 'not a directory (a playbook directory was expected)',
        });
        continue;
      }
      names = readdirSync(dir)
        .filter((n) => /\.ya?ml$/.test(n))
        .sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({
        file: dir,
        path: '',
        message:
          code === 'ENOENT'
            ? 'the playbook directory does not exist'
            : `cannot read the playbook directory: ${String(err)}`,
      });
      continue;
    }
    for (const name of names) {
      const file = join(dir, name);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        problems.push({ file, path: '', message: `cannot read: ${String(err)}` });
        continue;
      }
      const parsed = parsePlaybook(text, file);
      problems.push(...parsed.problems);
      if (!parsed.playbook) continue;
      const earlier = byName.get(parsed.playbook.name);
      if (earlier) {
        problems.push({
          file,
          path: 'name',
          message: `playbook "${parsed.playbook.name}" is already defined in ${earlier.file}`,
        });
        continue;
      }
      byName.set(parsed.playbook.name, parsed.playbook);
      playbooks.push(parsed.playbook);
    }
  }
  if (problems.length > 0) throw new PlaybookLoadError(problems);
  return playbooks;
}

/** Parses and checks one playbook's YAML text; `file` only labels the problems. */
export function parsePlaybook(text: string, file = ''): { playbook?: Playbook; problems: PlaybookProblem[] } {
  const withFile = (list: readonly PlanProblem[]): PlaybookProblem[] => list.map((p) => ({ file, ...p }));
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    return {
      problems: withFile(
        doc.errors.map((e) => ({
          path: '',
          message: `invalid YAML: ${e.message.split('\n')[0]!.replace(/:$/, '')}`,
        })),
      ),
    };
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // e.g. too many alias expansions (a "billion laughs" document)
    return { problems: withFile([{ path: '', message: `invalid YAML: ${(err as Error).message}` }]) };
  }
  const parsed = playbookSchema.safeParse(data);
  if (!parsed.success) return { problems: withFile(zodProblems(parsed.error)) };
  const { playbook, problems } = checkPlaybook(parsed.data, file);
  return problems.length > 0 ? { problems: withFile(problems) } : { playbook: playbook!, problems: [] };
}

/** The checks beyond the schema, and the compiled playbook when there is no problem. */
function checkPlaybook(data: PlaybookFile, file: string): { playbook?: Playbook; problems: PlanProblem[] } {
  const problems: PlanProblem[] = [];

  const parameters: Record<string, ParameterSpec> = {};
  for (const [name, raw] of Object.entries(data.parameters ?? {})) {
    const spec = checkParameterSpec(raw, fieldPath('parameters', name), problems);
    if (spec) parameters[name] = spec;
  }
  const known = Object.keys(data.parameters ?? {});

  const textPatterns = data.match?.text ?? [];
  const textMatchers: RegExp[] = [];
  textPatterns.forEach((source, i) => {
    const at = indexPath('match.text', i);
    const matcher = compileAnchored(source, at, problems);
    if (!matcher) return;
    textMatchers.push(matcher);
    const groups = groupNames(source);
    for (const group of groups)
      if (!known.includes(group))
        problems.push({
          path: at,
          message: `named group "${group}" is not a declared parameter; parameters: ${known.join(', ') || 'none'}`,
        });
    for (const [name, spec] of Object.entries(parameters))
      if (spec.required && !groups.includes(name))
        problems.push({
          path: at,
          message: `does not capture the required parameter "${name}" (add a group (?<${name}>…))`,
        });
  });

  const steps: PlaybookStep[] = data.steps.map((s) => ({
    id: s.id,
    description: s.description,
    tool: s.tool as ToolName,
    arguments: s.arguments as JsonObject,
    dependsOn: s.depends_on ?? [],
    outputs: s.outputs ?? [],
  }));
  steps.forEach((step, i) => {
    checkTemplates(step.description, `steps[${i}].description`, known, problems);
    checkTemplates(step.arguments, `steps[${i}].arguments`, known, problems);
  });

  // The plan checks, with templated values left for the check after expansion.
  const structure = checkPlanStructure(
    { steps: data.steps },
    {
      maxSteps: MAX_PLAYBOOK_STEPS,
      deferred: (v) => typeof v === 'string' && /\$\{(?:params|steps)\./.test(v),
    },
  );
  problems.push(...structure.problems);
  if (problems.length > 0) return { problems };

  const playbook: Playbook = {
    name: data.name,
    description: data.description,
    priority: data.priority ?? 0,
    file,
    textPatterns,
    textMatchers,
    parameters,
    steps,
  };
  // A trial expansion with sample values catches a template whose value type the field cannot take.
  const trial = expandWithValues(playbook, sampleParameters(parameters), { maxSteps: MAX_PLAYBOOK_STEPS });
  if (!trial.ok)
    return {
      problems: trial.problems.map((p) => ({
        path: p.path,
        message: `${p.message} (in a trial expansion with each parameter's default, or a sample value of its type)`,
      })),
    };
  return { playbook, problems };
}

function checkParameterSpec(
  raw: z.infer<typeof parameterSchema>,
  at: string,
  problems: PlanProblem[],
): ParameterSpec | undefined {
  const before = problems.length;
  const { type } = raw;
  const numeric = type === 'integer' || type === 'number';
  if ((raw.minimum !== undefined || raw.maximum !== undefined) && !numeric)
    problems.push({
      path: `${at}.${raw.minimum !== undefined ? 'minimum' : 'maximum'}`,
      message: `only integer and number parameters have bounds, not ${type}`,
    });
  if (raw.minimum !== undefined && raw.maximum !== undefined && raw.minimum > raw.maximum)
    problems.push({
      path: `${at}.minimum`,
      message: `minimum ${raw.minimum} is above maximum ${raw.maximum}`,
    });
  if (raw.pattern !== undefined && type !== 'string' && type !== 'strings')
    problems.push({
      path: `${at}.pattern`,
      message: `only string and strings parameters have a pattern, not ${type}`,
    });
  if (raw.max_length !== undefined && (numeric || type === 'boolean'))
    problems.push({
      path: `${at}.max_length`,
      message: `only string, argv and strings parameters have a max_length, not ${type}`,
    });
  if (raw.enum !== undefined) {
    if (type !== 'string' && !numeric)
      problems.push({
        path: `${at}.enum`,
        message: `only string, integer and number parameters have an enum, not ${type}`,
      });
    else
      raw.enum.forEach((v, i) => {
        const ok =
          type === 'string'
            ? typeof v === 'string'
            : type === 'integer'
              ? Number.isSafeInteger(v)
              : typeof v === 'number';
        if (!ok)
          problems.push({
            path: indexPath(`${at}.enum`, i),
            message: `${JSON.stringify(v)} is not ${type === 'integer' ? 'an integer' : `a ${type}`}`,
          });
      });
  }
  if (raw.pattern !== undefined) compileAnchored(raw.pattern, `${at}.pattern`, problems, PATTERN_FLAGS);
  if (raw.required && raw.default !== undefined)
    problems.push({
      path: `${at}.default`,
      message: 'a required parameter cannot have a default (drop required or default)',
    });
  if (problems.length > before) return undefined;

  const spec: ParameterSpec = {
    type,
    required: raw.required ?? false,
    description: raw.description ?? '',
    ...(raw.enum !== undefined ? { enum: raw.enum } : {}),
    ...(raw.pattern !== undefined ? { pattern: raw.pattern } : {}),
    ...(raw.minimum !== undefined ? { minimum: raw.minimum } : {}),
    ...(raw.maximum !== undefined ? { maximum: raw.maximum } : {}),
    ...(raw.max_length !== undefined ? { maxLength: raw.max_length } : {}),
  };
  if (raw.default !== undefined) {
    const converted = convertParameter(spec, raw.default);
    if (!converted.ok) {
      problems.push({ path: `${at}.default`, message: converted.message });
      return undefined;
    }
    spec.default = converted.value;
  }
  return spec;
}

/** Flags of `match.text` regexes: case-insensitive, `.` spans lines, Unicode. */
const TEXT_FLAGS = 'isu';
/** Flags of parameter patterns: as text patterns, but case matters (values are passed on as they are). */
const PATTERN_FLAGS = 'su';

/** Compiles a playbook regex as it is used: anchored to the whole text. */
function compileAnchored(
  source: string,
  at: string,
  problems: PlanProblem[],
  flags = TEXT_FLAGS,
): RegExp | undefined {
  try {
    return new RegExp(`^(?:${source})$`, flags);
  } catch (err) {
    problems.push({ path: at, message: `invalid regular expression: ${(err as Error).message}` });
    return undefined;
  }
}

/** The names of a regex's named groups (an empty alternative makes it match "" with every group listed). */
function groupNames(source: string): string[] {
  return Object.keys(new RegExp(`(?:${source})|`, 'su').exec('')?.groups ?? {});
}

const TEMPLATE = /\$\{params\.([^}]*)\}/g;

/** Every `${params.x}` must name a declared parameter; keys cannot hold templates. */
function checkTemplates(value: unknown, at: string, known: readonly string[], problems: PlanProblem[]): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkTemplates(v, indexPath(at, i), known, problems));
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k.includes('${params.'))
        problems.push({ path: fieldPath(at, k), message: 'a key cannot hold a template; only values can' });
      checkTemplates(v, fieldPath(at, k), known, problems);
    }
    return;
  }
  if (typeof value !== 'string') return;
  const closed = [...value.matchAll(TEMPLATE)];
  if (closed.length !== value.split('${params.').length - 1)
    problems.push({ path: at, message: 'unterminated template "${params." (missing "}")' });
  for (const [text, name] of closed) {
    if (!PARAMETER_NAME.test(name!))
      problems.push({ path: at, message: `malformed template "${text}"; write \${params.<name>}` });
    else if (!known.includes(name!))
      problems.push({
        path: at,
        message: `template "${text}" names an undeclared parameter; parameters: ${known.join(', ') || 'none'}`,
      });
  }
}

/** A value of each parameter's type (its default where it has one), constraints aside. */
function sampleParameters(parameters: Readonly<Record<string, ParameterSpec>>): Map<string, ParameterValue> {
  const sample = new Map<string, ParameterValue>();
  for (const [name, spec] of Object.entries(parameters)) {
    const numeric = spec.type === 'integer' || spec.type === 'number';
    const list = spec.type === 'argv' || spec.type === 'strings';
    const placeholder: ParameterValue = numeric
      ? (spec.minimum ?? spec.maximum ?? 1)
      : spec.type === 'boolean'
        ? false
        : list
          ? ['sample']
          : 'sample';
    sample.set(name, spec.default ?? spec.enum?.[0] ?? placeholder);
  }
  return sample;
}

// ---- matching ------------------------------------------------------------------------------------------

/** The loaded playbooks, looked up by goal name or matched against free text. */
export class PlaybookSet {
  private readonly byName = new Map<string, Playbook>();
  /** By priority (highest first), then name: the order text is matched in. */
  private readonly matchOrder: Playbook[];

  constructor(playbooks: readonly Playbook[]) {
    for (const playbook of playbooks) {
      const earlier = this.byName.get(playbook.name);
      if (earlier)
        throw new Error(
          `duplicate playbook name "${playbook.name}" (${earlier.file || 'unnamed'} and ${playbook.file || 'unnamed'})`,
        );
      this.byName.set(playbook.name, playbook);
    }
    this.matchOrder = [...playbooks].sort((a, b) => b.priority - a.priority || compare(a.name, b.name));
  }

  /** The playbook answering structured goal `name`. */
  get(name: string): Playbook | undefined {
    return this.byName.get(name);
  }

  /**
   * The first playbook (by priority, then name) with a text pattern matching the whole trimmed text,
   * with its named captures (trimmed; groups that did not take part are left out).
   */
  match(text: string): { playbook: Playbook; captures: Record<string, string> } | undefined {
    const trimmed = text.trim();
    for (const playbook of this.matchOrder) {
      for (const matcher of playbook.textMatchers) {
        const m = matcher.exec(trimmed);
        if (!m) continue;
        const captures: Record<string, string> = {};
        for (const [name, value] of Object.entries(m.groups ?? {}))
          if (value !== undefined) captures[name] = value.trim();
        return { playbook, captures };
      }
    }
    return undefined;
  }

  /** Every playbook, by name. */
  list(): Playbook[] {
    return [...this.byName.values()].sort((a, b) => compare(a.name, b.name));
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- expansion -----------------------------------------------------------------------------------------

/**
 * Turns a playbook and its parameters (from a structured goal, or text captures as strings) into a plan
 * draft: each parameter is converted to its type and checked against its spec (paths
 * `parameters.<name>`), defaults are applied, templates substituted, and the result must pass
 * {@link validatePlan} with strict argument checks.
 */
export function expandPlaybook(
  pb: Playbook,
  params: Record<string, unknown>,
  options: ValidatePlanOptions = {},
): { ok: true; draft: PlanDraft } | { ok: false; problems: PlanProblem[] } {
  const problems: PlanProblem[] = [];
  const known = Object.keys(pb.parameters);
  for (const name of Object.keys(params))
    if (!Object.hasOwn(pb.parameters, name))
      problems.push({
        path: fieldPath('parameters', name),
        message: `unknown parameter; known: ${known.join(', ') || `none (${pb.name} takes no parameters)`}`,
      });

  const values = new Map<string, ParameterValue>();
  for (const [name, spec] of Object.entries(pb.parameters)) {
    const given = Object.hasOwn(params, name) ? params[name] : undefined;
    if (given === undefined || given === null) {
      if (spec.default !== undefined) values.set(name, spec.default);
      else if (spec.required)
        problems.push({
          path: fieldPath('parameters', name),
          message: `missing required parameter${spec.description ? ` (${spec.description})` : ''}`,
        });
      continue;
    }
    const converted = convertParameter(spec, given);
    if (converted.ok) values.set(name, converted.value);
    else problems.push({ path: fieldPath('parameters', name), message: converted.message });
  }
  if (problems.length > 0) return { ok: false, problems };
  return expandWithValues(pb, values, options);
}

/** Substitutes converted parameter values into the steps and validates the plan strictly. */
function expandWithValues(
  pb: Playbook,
  values: ReadonlyMap<string, ParameterValue>,
  options: ValidatePlanOptions,
): { ok: true; draft: PlanDraft } | { ok: false; problems: PlanProblem[] } {
  const steps = pb.steps.map((step) => ({
    id: step.id,
    description: interpolate(step.description, values),
    tool: step.tool,
    arguments: substitute(step.arguments, values, pb.parameters) ?? {},
    depends_on: step.dependsOn,
    outputs: step.outputs,
  }));
  const validated = validatePlan({ steps }, options);
  if (!validated.ok) return validated;
  return { ok: true, draft: { ...validated.plan, playbook: pb.name } };
}

type Conversion = { ok: true; value: ParameterValue } | { ok: false; message: string };

/** Converts a given value (text captures are strings) to the parameter's type and checks its spec. */
export function convertParameter(spec: ParameterSpec, given: unknown): Conversion {
  const converted = toType(spec.type, given);
  if (!converted.ok) return converted;
  const { value } = converted;
  if (spec.enum && !spec.enum.includes(value as string | number))
    return {
      ok: false,
      message: `must be one of ${spec.enum.map((v) => JSON.stringify(v)).join(', ')}; got ${show(value)}`,
    };
  if (typeof value === 'number') {
    if (spec.minimum !== undefined && value < spec.minimum)
      return { ok: false, message: `must be at least ${spec.minimum}; got ${value}` };
    if (spec.maximum !== undefined && value > spec.maximum)
      return { ok: false, message: `must be at most ${spec.maximum}; got ${value}` };
  }
  if (spec.pattern !== undefined) {
    const pattern = new RegExp(`^(?:${spec.pattern})$`, PATTERN_FLAGS);
    for (const s of typeof value === 'string' ? [value] : Array.isArray(value) ? value : [])
      if (!pattern.test(s))
        return { ok: false, message: `${show(s)} does not match the pattern ${spec.pattern}` };
  }
  if (spec.maxLength !== undefined) {
    if (typeof value === 'string' && [...value].length > spec.maxLength)
      return { ok: false, message: `is ${[...value].length} characters long; at most ${spec.maxLength}` };
    if (Array.isArray(value) && value.length > spec.maxLength)
      return { ok: false, message: `has ${value.length} elements; at most ${spec.maxLength}` };
  }
  return { ok: true, value };
}

function toType(type: ParameterType, given: unknown): Conversion {
  const fail = (expected: string): Conversion => ({
    ok: false,
    message: `expected ${expected}; got ${show(given)}`,
  });
  switch (type) {
    case 'string':
      return typeof given === 'string' ? { ok: true, value: given } : fail('a string');
    case 'integer': {
      const n = typeof given === 'string' && /^\s*[+-]?\d+\s*$/.test(given) ? Number(given) : given;
      return typeof n === 'number' && Number.isSafeInteger(n) ? { ok: true, value: n } : fail('an integer');
    }
    case 'number': {
      const n =
        typeof given === 'string' && /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?\s*$/i.test(given)
          ? Number(given)
          : given;
      return typeof n === 'number' && Number.isFinite(n) ? { ok: true, value: n } : fail('a number');
    }
    case 'boolean': {
      if (typeof given === 'boolean') return { ok: true, value: given };
      const word = typeof given === 'string' ? given.trim().toLowerCase() : '';
      if (word === 'true' || word === 'yes') return { ok: true, value: true };
      if (word === 'false' || word === 'no') return { ok: true, value: false };
      return fail('a boolean (true/false, yes/no)');
    }
    case 'argv': {
      if (typeof given === 'string') {
        try {
          return { ok: true, value: shellWords(given) };
        } catch (err) {
          if (err instanceof ShellWordsError) return { ok: false, message: err.message };
          throw err;
        }
      }
      if (!isStringArray(given)) return fail('a command line (a string) or an array of strings');
      if (given.length === 0) return { ok: false, message: 'the command is empty' };
      const nul = given.findIndex((s) => s.includes('\0'));
      if (nul >= 0) return { ok: false, message: `element ${nul} contains NUL` };
      return { ok: true, value: [...given] };
    }
    case 'strings':
      if (typeof given === 'string')
        return {
          ok: true,
          value: given
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s !== ''),
        };
      return isStringArray(given)
        ? { ok: true, value: [...given] }
        : fail('an array of strings (or a comma-separated string)');
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const EXACT_TEMPLATE = /^\$\{params\.([a-z_][a-z0-9_]*)\}$/;

/** Replaces every `${params.x}` in `text` by the value as text (arrays joined with spaces; absent: ""). */
function interpolate(text: string, values: ReadonlyMap<string, ParameterValue>): string {
  return text.replace(TEMPLATE, (_whole, name: string) => {
    const value = values.get(name);
    return value === undefined ? '' : Array.isArray(value) ? value.join(' ') : String(value);
  });
}

/** The JSON with templates substituted; undefined when the value is an absent exact template. */
function substitute(
  value: Json,
  values: ReadonlyMap<string, ParameterValue>,
  specs: Readonly<Record<string, ParameterSpec>>,
): Json | undefined;
function substitute(
  value: JsonObject,
  values: ReadonlyMap<string, ParameterValue>,
  specs: Readonly<Record<string, ParameterSpec>>,
): JsonObject | undefined;
function substitute(
  value: Json,
  values: ReadonlyMap<string, ParameterValue>,
  specs: Readonly<Record<string, ParameterSpec>>,
): Json | undefined {
  if (typeof value === 'string') {
    const exact = EXACT_TEMPLATE.exec(value);
    if (exact) return values.get(exact[1]!);
    return interpolate(value, values);
  }
  if (Array.isArray(value)) {
    return value.flatMap((element): Json[] => {
      const exact = typeof element === 'string' ? EXACT_TEMPLATE.exec(element) : null;
      const spliced = exact ? specs[exact[1]!]?.type : undefined;
      if (exact && (spliced === 'argv' || spliced === 'strings'))
        return (values.get(exact[1]!) as string[] | undefined) ?? [];
      const substituted = substitute(element, values, specs);
      return substituted === undefined ? [] : [substituted];
    });
  }
  if (value !== null && typeof value === 'object') {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const substituted = substitute(v, values, specs);
      if (substituted !== undefined) out[k] = substituted;
    }
    return out;
  }
  return value;
}
