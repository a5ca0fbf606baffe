import { randomBytes } from 'node:crypto';
import * as cedar from './cedar';
import { toCedarRequest, type CedarRequest } from './cedar-request';
import { PolicyLoadError } from './errors';
import {
  compilePolicySet,
  DEFAULT_DENY,
  describe,
  ENGINE_ERROR,
  NAMESPACE,
  readPolicyDir,
  type ActionInfo,
  type CompiledPolicySet,
  type PolicySourceFile,
} from './policy-set-compiler';
import {
  attributesOf,
  project,
  scopeCanMatch,
  type AttributeUse,
  type PolicyAnalysis,
} from './policy-slicing';
import type { Decision, PolicyInfo, PolicyQuery } from './types';

/** The policies Cedar is asked with for one kind of request, and the attributes they read. */
interface Slice {
  /** The pre-parsed set; undefined when no policy can match (a default deny without asking Cedar). */
  psetId: string | undefined;
  /** What its policies read; `actionGroups`: whether Cedar needs the action's group entities. */
  attributes: AttributeUse & { actionGroups: boolean };
}

const EVERY_ATTRIBUTE = { principal: 'all', resource: 'all', context: 'all', actionGroups: true } as const;
/** Bounds the slice caches; past it, requests of new kinds use the whole set. */
const MAX_POLICY_SETS = 4096;
const MAX_SLICES = 16384;

/** How many Cedar answers an engine keeps (per policy set: a reload starts an empty cache). */
const ANSWER_CACHE_SIZE = 4096;

/** A Cedar error while evaluating one policy (Cedar then treats that policy as not satisfied). */
export interface PolicyEvaluationError {
  policyId: string;
  message: string;
}

/** A decision with what Cedar saw on the way. */
export interface Evaluation {
  decision: Decision;
  /**
   * The policies Cedar found determining: the satisfied permits of an allow (or ask), the satisfied
   * forbids of a deny; empty for a default deny or an engine error.
   */
  determining: PolicyInfo[];
  /** Errors Cedar reported for single policies. An errored forbid fails the decision closed. */
  errors: PolicyEvaluationError[];
}

/** How an engine evaluates; the defaults are what the daemons use. */
export interface PolicyEngineOptions {
  /**
   * Ask Cedar with the slice of policies that can match each kind of request, and only the attributes
   * they read (default true). Off: every request goes to the whole set with every attribute (the same
   * decisions, slower; for comparison and tests).
   */
  slicing?: boolean;
}

// Cedar keeps pre-parsed policy sets in a per-thread cache keyed by name. Every engine takes names of its
// own, so building a new engine never changes what an existing one decides: a reload swaps engines
// atomically. Cedar offers no way to drop an entry, so an engine's sets stay cached for the life of the
// thread (the whole set and its slices: a few MB at most for a large set; reloads are rare).
const instanceTag = randomBytes(6).toString('hex');
let instanceCount = 0;

/**
 * Cedar policy engine over one policy set: every `*.cedar` file of a directory plus its `*.cedarschema`
 * schema (namespace `Aether`), validated in strict mode when it loads. Decides deny by default; a forbid
 * wins; a decision names the policies that made it, and any failure denies (`engine-error`).
 *
 * ```ts
 * const engine = PolicyEngine.fromDirectory('/etc/aether/policy');
 * const d = engine.decide({ principal, action: 'jobs.SubmitJob', resource, context: { requestId } });
 * ```
 */
export class PolicyEngine {
  /** Hash of the policy set (sha256 over the sorted file names and contents, 16 hex digits). */
  readonly hash: string;
  /** Every policy in force, in file order (files sorted by name). */
  readonly policies: readonly PolicyInfo[];
  /** The schema file the policies were validated against. */
  readonly schemaFile: string;
  /** Where the set came from: the directory, or the description given to {@link fromSources}. */
  readonly source: string;
  /** When this set was loaded (a reload makes a new engine). */
  readonly loadedAt = new Date();

  private readonly psetId: string;
  private readonly byId: Map<string, PolicyInfo>;
  private readonly order: Map<string, number>;
  private readonly actions: Map<string, ActionInfo>;
  private readonly analyses: Map<string, PolicyAnalysis>;
  /** Identities some policy's scope names: requests from them get slices of their own. */
  private readonly namedPrincipals: Set<string>;
  private readonly slices = new Map<string, Slice>();
  /** Cedar's answers by their exact sliced input, least recently used first. */
  private readonly answers = new Map<string, ReturnType<typeof cedar.statefulIsAuthorized>>();
  private readonly psetsByMembers = new Map<string, string>();
  private readonly slicing: boolean;

  private constructor(set: CompiledPolicySet, source: string, options: PolicyEngineOptions) {
    this.slicing = options.slicing ?? true;
    this.hash = set.hash;
    this.policies = set.policies;
    this.schemaFile = set.schema.path;
    this.source = source;
    this.actions = set.actions;
    this.analyses = set.analyses;
    this.namedPrincipals = new Set([...set.analyses.values()].flatMap((a) => a.namedPrincipals));
    this.byId = new Map(set.policies.map((p) => [p.id, p]));
    this.order = new Map(set.policies.map((p, i) => [p.id, i]));
    const n = ++instanceCount;
    this.psetId = `aether-policy-${instanceTag}-${n}-${set.hash}`;
    const pset = cedar.preparsePolicySet(this.psetId, { staticPolicies: textsOf(set.policies) });
    if (pset.type === 'failure') {
      throw new PolicyLoadError(
        pset.errors.map((e) => ({ file: source, line: 1, column: 1, message: `Cedar: ${describe(e)}` })),
        set.hash,
      );
    }
  }

  /**
   * Loads the policy set of a directory. Throws {@link PolicyLoadError} listing every problem (file, line,
   * column), or when the directory cannot be read.
   */
  static fromDirectory(dir: string, options: PolicyEngineOptions = {}): PolicyEngine {
    let files: PolicySourceFile[];
    try {
      files = readPolicyDir(dir);
    } catch (err) {
      throw new PolicyLoadError(
        [{ file: dir, line: 1, column: 1, message: `cannot read the policy directory: ${messageOf(err)}` }],
        '',
        { cause: err },
      );
    }
    return PolicyEngine.fromSources(files, dir, options);
  }

  /**
   * Builds an engine from policy texts in memory (`path` ending in `.cedar` or `.cedarschema`), e.g. for
   * tests and benchmarks. `source` names the set in errors.
   */
  static fromSources(
    files: readonly PolicySourceFile[],
    source = 'policy set',
    options: PolicyEngineOptions = {},
  ): PolicyEngine {
    const result = compilePolicySet(files, source);
    if (!result.ok) throw new PolicyLoadError(result.errors, result.hash);
    return new PolicyEngine(result.set, source, options);
  }

  /** The ids of the policies in force, in file order. */
  get policyIds(): string[] {
    return this.policies.map((p) => p.id);
  }

  /** The policy with this id, if the set has one. */
  policy(id: string): PolicyInfo | undefined {
    return this.byId.get(id);
  }

  /** Decides a query. Never throws: any failure is a deny by `engine-error` with the reason. */
  decide(query: PolicyQuery): Decision {
    return this.evaluate(query).decision;
  }

  /** Decides a query and returns what Cedar reported on the way (for `aether policy check`). */
  evaluate(query: PolicyQuery): Evaluation {
    const tokenId = tokenIdOf(query);
    const stamp = { policySetHash: this.hash, ...(tokenId !== undefined ? { tokenId } : {}) };
    const fail = (reason: string, errors: PolicyEvaluationError[] = []): Evaluation => ({
      decision: { effect: 'deny', policyIds: [ENGINE_ERROR], reason, ...stamp },
      determining: [],
      errors,
    });
    try {
      const actionName: unknown = query.action;
      if (typeof actionName !== 'string') return fail('policy engine error: the query has no action');
      const action = this.actions.get(actionName);
      if (!action) {
        return {
          decision: {
            effect: 'deny',
            policyIds: [DEFAULT_DENY],
            reason: `${defaultDenyReason(query)} (the policy schema declares no action "${actionName}")`,
            ...stamp,
          },
          determining: [],
          errors: [],
        };
      }
      const request = toCedarRequest(query, action);
      if (!action.resourceTypes.has(request.resource.type)) {
        return fail(
          `policy engine error: resource type ${request.resource.type} is not valid for ${actionName} ` +
            `(valid: ${[...action.resourceTypes].join(', ')})`,
        );
      }
      const slice = this.sliceFor(request, action);
      if (slice.psetId === undefined) {
        return {
          decision: { effect: 'deny', policyIds: [DEFAULT_DENY], reason: defaultDenyReason(query), ...stamp },
          determining: [],
          errors: [],
        };
      }
      const { attributes } = slice;
      // Entities Cedar needs: the principal (its group), the resource if a policy reads its attributes
      // (it has no parents), the action's groups if a policy can depend on them.
      const entities: cedar.EntityJson[] = [
        {
          uid: request.principal,
          attrs: project(request.principalAttrs, attributes.principal),
          parents: request.group === undefined ? [] : [{ type: `${NAMESPACE}::Group`, id: request.group }],
        },
      ];
      const resourceAttrs = project(request.resourceAttrs, attributes.resource);
      if (Object.keys(resourceAttrs).length > 0) {
        entities.push({ uid: request.resource, attrs: resourceAttrs, parents: [] });
      }
      if (attributes.actionGroups) entities.push(...action.entities);
      const call = {
        principal: request.principal,
        action: { type: `${NAMESPACE}::Action`, id: action.name },
        resource: request.resource,
        context: project(request.context, attributes.context),
        entities,
        preparsedPolicySetId: slice.psetId,
      };
      // Cedar is deterministic: the same sliced input (only the attributes the slice's policies read, so
      // a request id no policy reads is not part of it) always gets the same answer.
      const key = JSON.stringify(call);
      let answer = this.answers.get(key);
      if (answer) {
        this.answers.delete(key); // most recently used last
        this.answers.set(key, answer);
      } else {
        answer = cedar.statefulIsAuthorized(call);
        if (answer.type === 'success') {
          if (this.answers.size >= ANSWER_CACHE_SIZE) this.answers.delete(this.answers.keys().next().value!);
          this.answers.set(key, answer);
        }
      }
      if (answer.type === 'failure') {
        return fail(`policy engine error: ${answer.errors.map(describe).join('; ')}`);
      }
      const { decision, diagnostics } = answer.response;
      const errors = diagnostics.errors.map((e) => ({ policyId: e.policyId, message: describe(e.error) }));
      const erroredForbids = errors.filter((e) => this.byId.get(e.policyId)?.effect !== 'permit');
      if (erroredForbids.length > 0) {
        return fail(
          `policy engine error: ${erroredForbids.map((e) => `forbid ${e.policyId} could not be evaluated: ${e.message}`).join('; ')}`,
          errors,
        );
      }
      const determining = this.sorted(diagnostics.reason);
      if (decision === 'deny') {
        const forbids = determining.filter((p) => p.effect === 'forbid');
        if (forbids.length === 0) {
          return {
            decision: {
              effect: 'deny',
              policyIds: [DEFAULT_DENY],
              reason: defaultDenyReason(query),
              ...stamp,
            },
            determining: [],
            errors,
          };
        }
        return {
          decision: {
            effect: 'deny',
            policyIds: forbids.map((p) => p.id),
            reason: forbids.map((p) => p.reason ?? `forbidden by ${p.id}`).join('; '),
            ...stamp,
          },
          determining: forbids,
          errors,
        };
      }
      const permits = determining.filter((p) => p.effect === 'permit');
      if (permits.length === 0)
        return fail('policy engine error: Cedar allowed without a determining permit', errors);
      const plain = permits.filter((p) => p.ask === undefined);
      if (plain.length === 0) {
        return {
          decision: {
            effect: 'ask',
            policyIds: permits.map((p) => p.id),
            reason: [...new Set(permits.map((p) => p.ask as string))].join('; '),
            ...stamp,
          },
          determining: permits,
          errors,
        };
      }
      return {
        decision: {
          effect: 'allow',
          policyIds: plain.map((p) => p.id),
          reason: `permitted by ${plain.map((p) => p.id).join(', ')}`,
          ...stamp,
        },
        determining: permits,
        errors,
      };
    } catch (err) {
      return fail(`policy engine error: ${messageOf(err)}`);
    }
  }

  /** How many kinds of request have a slice, and how many pre-parsed sets the slices use. */
  get sliceStats(): { slices: number; policySets: number } {
    return { slices: this.slices.size, policySets: this.psetsByMembers.size };
  }

  /**
   * The slice for a kind of request: (action, the principal's group, the principal if a policy names it,
   * resource type). Built on first use; slices with the same policies share one pre-parsed set.
   */
  private sliceFor(request: CedarRequest, action: ActionInfo): Slice {
    if (!this.slicing) return { psetId: this.psetId, attributes: EVERY_ATTRIBUTE };
    const principalId = request.principal.id;
    const named = this.namedPrincipals.has(principalId);
    const key = `${action.name}\n${request.group ?? ''}\n${named ? principalId : ''}\n${request.resource.type}`;
    const cached = this.slices.get(key);
    if (cached) return cached;
    const target = {
      actionNames: action.names,
      principalId,
      group: request.group,
      resourceType: request.resource.type,
    };
    const members = this.policies.filter((p) => {
      const analysis = this.analyses.get(p.id);
      return analysis === undefined || scopeCanMatch(analysis, target, NAMESPACE);
    });
    let slice: Slice;
    if (members.length === 0) {
      slice = { psetId: undefined, attributes: EVERY_ATTRIBUTE };
    } else {
      const membersKey = members.map((p) => p.id).join('\n');
      let psetId = this.psetsByMembers.get(membersKey);
      if (psetId === undefined && this.psetsByMembers.size < MAX_POLICY_SETS) {
        const id = `${this.psetId}-s${this.psetsByMembers.size + 1}`;
        if (cedar.preparsePolicySet(id, { staticPolicies: textsOf(members) }).type === 'success') {
          this.psetsByMembers.set(membersKey, id);
          psetId = id;
        }
      }
      slice =
        psetId === undefined
          ? { psetId: this.psetId, attributes: EVERY_ATTRIBUTE }
          : {
              psetId,
              attributes: attributesOf(members.map((p) => this.analyses.get(p.id) as PolicyAnalysis)),
            };
    }
    if (this.slices.size < MAX_SLICES) this.slices.set(key, slice);
    return slice;
  }

  /** The policies with these ids, in load order (Cedar reports them in no particular order). */
  private sorted(ids: readonly string[]): PolicyInfo[] {
    return ids
      .map((id) => this.byId.get(id))
      .filter((p): p is PolicyInfo => p !== undefined)
      .sort((a, b) => (this.order.get(a.id) ?? 0) - (this.order.get(b.id) ?? 0));
  }
}

function textsOf(policies: readonly PolicyInfo[]): Record<string, string> {
  const texts: Record<string, string> = {};
  for (const p of policies) texts[p.id] = p.text;
  return texts;
}

function defaultDenyReason(query: PolicyQuery): string {
  return `no policy permits ${String(query.principal?.id)} to ${String(query.action)}`;
}

function tokenIdOf(query: PolicyQuery): string | undefined {
  const id: unknown = (query.context as { token?: { id?: unknown } } | undefined)?.token?.id;
  return typeof id === 'string' ? id : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
