import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as cedar from './cedar';
import { analyzePolicy, type PolicyAnalysis } from './policy-slicing';
import { SourceText } from './source-text';
import type { PolicyFileError, PolicyInfo } from './types';

/** The namespace every Aether schema declares; entity and action types live in it. */
export const NAMESPACE = 'Aether';

/** Policy ids the engine itself reports; a policy may not take them. */
export const DEFAULT_DENY = 'default-deny';
export const ENGINE_ERROR = 'engine-error';

/** One file of a policy set: a `*.cedar` policy file or the `*.cedarschema` schema. */
export interface PolicySourceFile {
  /** The path shown in errors; its basename names the file in the hash and in default policy ids. */
  path: string;
  text: string;
}

/** What the engine needs to know about an action declared in the schema. */
export interface ActionInfo {
  name: string;
  /** The API it belongs to: the part of the name before the first dot. */
  api: string;
  /** The action, every action group it is in (transitively), and `*`: what a token may grant it by. */
  names: string[];
  /** Qualified entity types the schema lets it act on (`appliesTo.resource`). */
  resourceTypes: ReadonlySet<string>;
  /** The action's entity and its groups' entities, with their parents, for Cedar's entity store. */
  entities: cedar.EntityJson[];
}

/** A parsed and validated policy set, not yet handed to Cedar's cache. */
export interface CompiledPolicySet {
  hash: string;
  schema: { path: string; text: string };
  policies: PolicyInfo[];
  actions: Map<string, ActionInfo>;
  /** Per policy id: its scope and the attributes it reads, for slicing. */
  analyses: Map<string, PolicyAnalysis>;
}

/** The outcome of compiling: the set, or every error found (the hash is there either way). */
export type CompileResult =
  | { ok: true; hash: string; set: CompiledPolicySet; policyIds: string[] }
  | { ok: false; hash: string; errors: PolicyFileError[]; policyIds: string[] };

/** sha256 over the files' basenames and contents, sorted by name; 16 hex digits. */
export function policySetHash(files: readonly PolicySourceFile[]): string {
  const hash = createHash('sha256');
  const sorted = [...files].sort((a, b) => compareStrings(basename(a.path), basename(b.path)));
  for (const f of sorted) hash.update(basename(f.path)).update('\0').update(f.text).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/**
 * Reads a policy directory: every `*.cedar` file and the `*.cedarschema` file. Hidden files (editor locks
 * and swap files) are skipped. Throws the file system's error when the directory cannot be read.
 */
export function readPolicyDir(dir: string): PolicySourceFile[] {
  const files: PolicySourceFile[] = [];
  for (const name of readdirSync(dir).sort(compareStrings)) {
    if (name.startsWith('.') || !(name.endsWith('.cedar') || name.endsWith('.cedarschema'))) continue;
    const path = join(dir, name);
    let isFile: boolean;
    try {
      isFile = statSync(path).isFile();
    } catch {
      continue; // a dangling link or a file removed meanwhile: not part of the set
    }
    if (isFile) files.push({ path, text: readFileSync(path, 'utf8') });
  }
  return files;
}

/**
 * Parses every policy file, validates it against the schema in strict mode and assigns policy ids.
 * Collects every error, each with its file, line and column, rather than stopping at the first.
 */
export function compilePolicySet(files: readonly PolicySourceFile[], where = 'policy set'): CompileResult {
  const hash = policySetHash(files);
  const errors: PolicyFileError[] = [];
  const schemas = files.filter((f) => f.path.endsWith('.cedarschema'));
  const policyFiles = files.filter((f) => f.path.endsWith('.cedar'));

  let schema: { path: string; text: string } | undefined;
  let actions: Map<string, ActionInfo> | undefined;
  if (schemas.length !== 1) {
    errors.push({
      file: schemas[1]?.path ?? where,
      line: 1,
      column: 1,
      message:
        schemas.length === 0
          ? 'no schema: a policy set needs exactly one *.cedarschema file'
          : `more than one schema (${schemas.map((s) => basename(s.path)).join(', ')}): a policy set needs exactly one`,
    });
  } else {
    const file = schemas[0] as PolicySourceFile;
    const schemaErrors = checkSchema(file);
    if (schemaErrors.length === 0) {
      const parsed = actionsOfSchema(file);
      if (Array.isArray(parsed)) errors.push(...parsed);
      else {
        schema = { path: file.path, text: file.text };
        actions = parsed;
      }
    } else errors.push(...schemaErrors);
  }

  const policies: PolicyInfo[] = [];
  const analyses = new Map<string, PolicyAnalysis>();
  const seen = new Map<string, PolicyInfo>();
  for (const file of policyFiles) {
    const result = compilePolicyFile(file, schema?.text);
    errors.push(...result.errors);
    for (const { info: p, analysis } of result.policies) {
      const first = seen.get(p.id);
      if (first) {
        errors.push({
          file: p.file,
          line: p.line,
          column: p.column,
          message: `duplicate policy id "${p.id}" (first at ${first.file}:${first.line}:${first.column})`,
        });
        continue;
      }
      if (p.id === DEFAULT_DENY || p.id === ENGINE_ERROR) {
        errors.push({ ...at(p), message: `policy id "${p.id}" is reserved for the engine's own decisions` });
        continue;
      }
      seen.set(p.id, p);
      policies.push(p);
      analyses.set(p.id, analysis);
    }
  }
  const policyIds = policies.map((p) => p.id);
  if (errors.length > 0 || !schema || !actions) {
    return { ok: false, hash, errors, policyIds };
  }
  return { ok: true, hash, set: { hash, schema, policies, actions, analyses }, policyIds };
}

function at(p: PolicyInfo): { file: string; line: number; column: number } {
  return { file: p.file, line: p.line, column: p.column };
}

function checkSchema(file: PolicySourceFile): PolicyFileError[] {
  const answer = cedar.checkParseSchema(file.text);
  if (answer.type === 'success') return [];
  const src = new SourceText(file.path, file.text);
  return answer.errors.map((e) => errorAt(src, e, describe(e)));
}

/** The actions of the schema's Aether namespace, with the names each may be granted by. */
function actionsOfSchema(file: PolicySourceFile): Map<string, ActionInfo> | PolicyFileError[] {
  const answer = cedar.schemaToJson(file.text);
  if (answer.type !== 'success') {
    const src = new SourceText(file.path, file.text);
    return answer.errors.map((e) => errorAt(src, e, describe(e)));
  }
  const ns = answer.json[NAMESPACE];
  if (!ns) {
    return [
      { file: file.path, line: 1, column: 1, message: `the schema must declare namespace ${NAMESPACE}` },
    ];
  }
  const parents = new Map<string, string[]>();
  for (const [name, def] of Object.entries(ns.actions)) {
    const own = (def.memberOf ?? [])
      .filter((m) => m.type === undefined || m.type === 'Action' || m.type === `${NAMESPACE}::Action`)
      .map((m) => m.id);
    parents.set(name, own);
  }
  const actionUid = (id: string): cedar.TypeAndId => ({ type: `${NAMESPACE}::Action`, id });
  const qualify = (t: string): string => (t.includes('::') ? t : `${NAMESPACE}::${t}`);
  const actions = new Map<string, ActionInfo>();
  for (const name of parents.keys()) {
    const names: string[] = [];
    const queue = [name];
    const visited = new Set<string>();
    while (queue.length > 0) {
      const next = queue.shift() as string;
      if (visited.has(next)) continue;
      visited.add(next);
      names.push(next);
      queue.push(...(parents.get(next) ?? []));
    }
    const entities = names.map((n) => ({
      uid: actionUid(n),
      attrs: {},
      parents: (parents.get(n) ?? []).map(actionUid),
    }));
    names.push('*');
    const dot = name.indexOf('.');
    const resourceTypes = new Set((ns.actions[name]?.appliesTo?.resourceTypes ?? []).map(qualify));
    actions.set(name, { name, api: dot > 0 ? name.slice(0, dot) : name, names, resourceTypes, entities });
  }
  return actions;
}

function compilePolicyFile(
  file: PolicySourceFile,
  schemaText: string | undefined,
): { policies: Array<{ info: PolicyInfo; analysis: PolicyAnalysis }>; errors: PolicyFileError[] } {
  const src = new SourceText(file.path, file.text);
  const parsed = cedar.checkParsePolicySet({ staticPolicies: file.text });
  if (parsed.type === 'failure') {
    return { policies: [], errors: parsed.errors.map((e) => errorAt(src, e, describe(e))) };
  }
  const parts = cedar.policySetTextToParts(file.text);
  if (parts.type === 'failure') {
    return { policies: [], errors: parts.errors.map((e) => errorAt(src, e, describe(e))) };
  }
  const errors: PolicyFileError[] = [];
  if (parts.policy_templates.length > 0) {
    errors.push({ file: file.path, line: 1, column: 1, message: 'policy templates are not supported' });
  }
  const { texts, offsets } = inFileOrder(file.text, parts.policies);
  const stem = basename(file.path).replace(/\.cedar$/, '');
  const policies: Array<{ info: PolicyInfo; analysis: PolicyAnalysis }> = [];
  const idByIndex: string[] = [];
  texts.forEach((text, index) => {
    const { line, column } = src.position(offsets[index] ?? 0);
    const json = cedar.policyToJson(text);
    if (json.type === 'failure') {
      errors.push(...json.errors.map((e) => errorAt(src, e, describe(e))));
      return;
    }
    const annotations = json.json.annotations ?? {};
    const id = annotations['id'] ?? `${stem}:${index}`;
    if (id.trim() === '') {
      errors.push({ file: file.path, line, column, message: 'an @id annotation must not be empty' });
      return;
    }
    idByIndex[index] = id;
    const info: PolicyInfo = { id, effect: json.json.effect, file: file.path, line, column, text };
    const ask = annotations['ask'];
    const reason = annotations['reason'];
    if (ask !== undefined) {
      if (json.json.effect !== 'permit') {
        errors.push({ file: file.path, line, column, message: `policy ${id}: @ask belongs on a permit` });
        return;
      }
      info.ask = ask || 'needs a human approval';
    }
    if (reason !== undefined && reason !== '') info.reason = reason;
    policies.push({ info, analysis: analyzePolicy(json.json, NAMESPACE) });
  });

  if (schemaText !== undefined && texts.length > 0) {
    const answer = cedar.validate({
      schema: schemaText,
      policies: { staticPolicies: file.text },
      validationSettings: { mode: 'strict' },
    });
    if (answer.type === 'failure') {
      errors.push(...answer.errors.map((e) => errorAt(src, e, describe(e))));
    } else {
      const reported = new Set<string>();
      for (const v of answer.validationErrors) {
        const index = /^policy(\d+)$/.exec(v.policyId)?.[1];
        const id = (index === undefined ? undefined : idByIndex[Number(index)]) ?? v.policyId;
        // Cedar reports an error once per request environment (action, resource type) it checked; report
        // the first for each place, without the action.
        const message = describe(v.error)
          .replace(/^for policy `[^`]*`, /, '')
          .replace(/ (for|of) Aether::Action::"[^"]*"/, '');
        const error = errorAt(src, v.error, `policy ${id}: ${message}`);
        const key = `${id}:${error.line}:${error.column}`;
        if (reported.has(key)) continue;
        reported.add(key);
        errors.push(error);
      }
    }
  }
  return { policies, errors };
}

/**
 * `policySetTextToParts` returns the policies sorted by their generated ids (`policy0`, `policy1`,
 * `policy10`, …, `policy2`, …), each as its text in the file. Puts them back in file order and finds
 * where each starts (string index). Should that order ever differ, falls back to where the texts occur.
 */
function inFileOrder(fileText: string, parts: string[]): { texts: string[]; offsets: number[] } {
  const ids = parts.map((_, i) => `policy${i}`).sort(compareStrings);
  const texts = new Array<string>(parts.length);
  ids.forEach((id, k) => {
    texts[Number(id.slice('policy'.length))] = parts[k] as string;
  });
  const offsets: number[] = [];
  let from = 0;
  for (const t of texts) {
    const i = fileText.indexOf(t, from);
    if (i === -1) return byOccurrence(fileText, parts);
    offsets.push(i);
    from = i + t.length;
  }
  return { texts, offsets };
}

function byOccurrence(fileText: string, parts: string[]): { texts: string[]; offsets: number[] } {
  const used = new Set<number>();
  const placed = parts.map((t) => {
    let i = fileText.indexOf(t);
    while (i !== -1 && used.has(i)) i = fileText.indexOf(t, i + 1);
    if (i !== -1) used.add(i);
    return { t, i: i === -1 ? 0 : i };
  });
  placed.sort((a, b) => a.i - b.i);
  return { texts: placed.map((p) => p.t), offsets: placed.map((p) => p.i) };
}

function errorAt(src: SourceText, e: cedar.DetailedError, message: string): PolicyFileError {
  const start = e.sourceLocations?.[0]?.start;
  const { line, column } = start === undefined ? { line: 1, column: 1 } : src.positionOfByte(start);
  return { file: src.file, line, column, message };
}

/** One line from a Cedar error: the message, the labels of its source locations, and its help. */
export function describe(e: cedar.DetailedError): string {
  let message = e.message
    .replace(/^failed to parse (policies|schema) from string: /, '')
    .replace(/^error parsing schema: /, '');
  const labels = (e.sourceLocations ?? []).map((l) => l.label).filter((l): l is string => !!l);
  if (labels.length > 0) message += `: ${labels.join('; ')}`;
  if (e.help) message += ` (${e.help})`;
  return message;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
