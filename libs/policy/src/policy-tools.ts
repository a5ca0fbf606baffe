import { compilePolicySet, readPolicyDir } from './policy-set-compiler';
import type { PolicyEngine, PolicyEvaluationError } from './policy-engine';
import type { Decision, PolicyFileError, PolicyInfo, PolicyQuery } from './types';

/** The result of `aether policy validate DIR`. */
export interface PolicyDirValidation {
  ok: boolean;
  /** Every problem, with file, line and column; empty when ok. */
  errors: PolicyFileError[];
  /** The ids of the policies that parsed (all of them when ok), in file order. */
  policyIds: string[];
  /** Hash of the files, as decisions would record it. */
  hash: string;
}

/**
 * Parses and validates a policy directory the way the engine loads it (strict validation against the
 * schema, unique `@id`s), without putting it in force.
 */
export function validatePolicyDir(dir: string): PolicyDirValidation {
  let files;
  try {
    files = readPolicyDir(dir);
  } catch (err) {
    const message = `cannot read the policy directory: ${err instanceof Error ? err.message : String(err)}`;
    return { ok: false, errors: [{ file: dir, line: 1, column: 1, message }], policyIds: [], hash: '' };
  }
  const result = compilePolicySet(files, dir);
  return result.ok
    ? { ok: true, errors: [], policyIds: result.policyIds, hash: result.hash }
    : { ok: false, errors: result.errors, policyIds: result.policyIds, hash: result.hash };
}

/** The result of `aether policy check`: the decision, and why. */
export interface Explanation {
  decision: Decision;
  /** The policies that matched and decided (permits of an allow or ask, forbids of a deny). */
  determining: Array<
    Pick<PolicyInfo, 'id' | 'effect' | 'file' | 'line' | 'column'> & { ask?: string; reason?: string }
  >;
  /** Cedar's errors for single policies (such a policy did not match; an errored forbid denies). */
  errors: PolicyEvaluationError[];
  /** Hash of the policy set that decided. */
  policySetHash: string;
}

/** Decides a query and explains the decision: which policies matched, and Cedar's diagnostics. */
export function explain(engine: PolicyEngine, query: PolicyQuery): Explanation {
  const { decision, determining, errors } = engine.evaluate(query);
  return {
    decision,
    determining: determining.map((p) => ({
      id: p.id,
      effect: p.effect,
      file: p.file,
      line: p.line,
      column: p.column,
      ...(p.ask !== undefined ? { ask: p.ask } : {}),
      ...(p.reason !== undefined ? { reason: p.reason } : {}),
    })),
    errors,
    policySetHash: engine.hash,
  };
}

/** The arguments of `aether policy check`. */
export interface PolicyCheckArgs {
  /** A SPIFFE ID (`spiffe://aether.local/aurorad`) or a SPIFFE path (`aurorad`, `users/alice`). */
  principal: string;
  /** `<api>.<Method>`, e.g. `jobs.SubmitJob`. */
  action: string;
  /** `type` or `type:id`, e.g. `job`, `artifact:a1`; default: the action's service. */
  resource?: string;
  /**
   * `key=value` attributes of the resource. A value is read as JSON when it parses (`cpuMillicores=500`,
   * `devices=["nvidia.com/gpu=0"]`, `mounts=[]`), else as a string (`network=none`).
   */
  attrs?: string[];
  /** Trust domain for a principal given as a path (default `aether.local`). */
  trustDomain?: string;
  intentId?: string;
}

/** Builds the query `aether policy check` asks, from its command-line arguments. Throws on a malformed one. */
export function queryFromArgs(args: PolicyCheckArgs): PolicyQuery {
  const spiffe = /^spiffe:\/\/([^/]+)\/(.+)$/.exec(args.principal);
  const trustDomain = spiffe?.[1] ?? args.trustDomain ?? 'aether.local';
  const name = spiffe?.[2] ?? args.principal.replace(/^\/+/, '');
  if (name === '') throw new Error('--principal needs a SPIFFE ID or path');
  const api = args.action.split('.')[0] ?? args.action;
  const [type = 'service', ...rest] = (args.resource ?? 'service').split(':');
  const id = rest.length > 0 ? rest.join(':') : type === 'service' ? api : '';
  const attributes: Record<string, unknown> = {};
  for (const attr of args.attrs ?? []) {
    const eq = attr.indexOf('=');
    if (eq <= 0) throw new Error(`--attr ${attr}: expected key=value`);
    const raw = attr.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // not JSON: a plain string
    }
    attributes[attr.slice(0, eq)] = value;
  }
  return {
    principal: { id: `spiffe://${trustDomain}/${name}`, trustDomain, name, authenticatedBy: 'certificate' },
    action: args.action,
    resource: { type, id, ...(Object.keys(attributes).length > 0 ? { attributes } : {}) },
    context: {
      requestId: 'policy-check',
      ...(args.intentId !== undefined ? { intentId: args.intentId } : {}),
    },
  };
}
