import type * as cedar from './cedar';

/**
 * Policy slicing. Cedar evaluates every policy of a set on every request, and the wasm build spends most
 * of a call turning entity and context attributes into Cedar values. Both costs only depend on what the
 * request could touch, so the engine asks Cedar each question with a slice: the policies whose scope can
 * match the request (its action, the principal's group or id, the resource type), and only the attributes
 * those policies read. A policy outside the slice could only have evaluated to false (Cedar checks the
 * scope before the conditions, so it could not have errored either), and an attribute no policy reads
 * cannot change a result: the decision, the determining policies and the errors are the same as with the
 * whole set and every attribute. Where the analysis meets anything it does not understand it keeps the
 * policy, or every attribute.
 */

/** The attributes a policy reads from each variable; `all` where it could read any. */
export interface AttributeUse {
  principal: ReadonlySet<string> | 'all';
  resource: ReadonlySet<string> | 'all';
  context: ReadonlySet<string> | 'all';
}

/** What the engine needs to know about one policy to slice. */
export interface PolicyAnalysis {
  principal: cedar.PrincipalConstraint;
  action: cedar.ActionConstraint;
  resource: cedar.ResourceConstraint;
  attributes: AttributeUse;
  /** Whether the policy can depend on the action's groups (`action in …`, or `action` in a condition). */
  usesActionGroups: boolean;
  /** Identities the principal scope names (`principal == …`, `principal in Identity::…`). */
  namedPrincipals: string[];
}

/** The request as far as slicing cares. */
export interface SliceRequest {
  /** The action and every group it is in. */
  actionNames: readonly string[];
  principalId: string;
  group: string | undefined;
  /** Qualified resource entity type, e.g. `Aether::Job`. */
  resourceType: string;
}

type Var = 'principal' | 'resource' | 'context';

export function analyzePolicy(json: cedar.PolicyJson, namespace: string): PolicyAnalysis {
  const use: Record<Var, Set<string> | 'all'> = {
    principal: new Set(),
    resource: new Set(),
    context: new Set(),
  };
  const allOf = (): void => {
    use.principal = 'all';
    use.resource = 'all';
    use.context = 'all';
  };
  const note = (left: unknown, attr: unknown): void => {
    const root = attr === undefined ? undefined : Array.isArray(attr) ? (attr[0] as unknown) : attr;
    const v = (left as { Var?: unknown } | null)?.Var;
    if ((v === 'principal' || v === 'resource' || v === 'context') && typeof root === 'string') {
      const set = use[v];
      if (set !== 'all') set.add(root);
      return;
    }
    if (v === 'action') return; // action entities carry no attributes
    // `a.b.c`: the innermost access is rooted at a variable and is noted when the walk reaches it.
    if (left !== null && typeof left === 'object' && '.' in left) return;
    allOf();
  };
  let usesActionGroups = json.action.op === 'in';
  const walk = (e: unknown): void => {
    if (e === null || typeof e !== 'object') return;
    if (Array.isArray(e)) {
      for (const x of e) walk(x);
      return;
    }
    for (const [key, value] of Object.entries(e as Record<string, unknown>)) {
      if (key === 'Value') continue; // a literal: reads nothing
      if (key === 'Var' && value === 'action') usesActionGroups = true;
      if (key === '.' || key === 'has') {
        const node = value as { left?: unknown; attr?: unknown } | null;
        note(node?.left, node?.attr);
      } else if (key === 'getTag' || key === 'hasTag') {
        allOf();
      }
      walk(value);
    }
  };
  for (const c of json.conditions) walk(c.body);

  const namedPrincipals: string[] = [];
  const identity = `${namespace}::Identity`;
  const p = json.principal;
  const named = (e: unknown): void => {
    const uid = entityOf(e);
    if (uid && uid.type === identity) namedPrincipals.push(uid.id);
  };
  if (p.op === '==' && 'entity' in p) named(p.entity);
  if (p.op === 'in' && 'entity' in p) named(p.entity);
  if (p.op === 'is' && p.in && 'entity' in p.in) named(p.in.entity);
  return {
    principal: json.principal,
    action: json.action,
    resource: json.resource,
    attributes: use,
    usesActionGroups,
    namedPrincipals,
  };
}

/** Whether a policy's scope can match the request; true wherever the analysis is unsure. */
export function scopeCanMatch(a: PolicyAnalysis, r: SliceRequest, namespace: string): boolean {
  return actionMatches(a.action, r, namespace) && principalMatches(a, r, namespace) && resourceMatches(a, r);
}

function actionMatches(c: cedar.ActionConstraint, r: SliceRequest, namespace: string): boolean {
  const isAction = (uid: cedar.TypeAndId | undefined): boolean => uid?.type === `${namespace}::Action`;
  if (c.op === 'All') return true;
  if (c.op === '==') {
    if (!('entity' in c)) return true;
    const uid = entityOf(c.entity);
    return !isAction(uid) || uid?.id === r.actionNames[0];
  }
  const list = 'entities' in c ? c.entities : [c.entity];
  return list.some((e) => {
    const uid = entityOf(e);
    return !isAction(uid) || r.actionNames.includes(uid?.id ?? '');
  });
}

function principalMatches(a: PolicyAnalysis, r: SliceRequest, namespace: string): boolean {
  const identity = `${namespace}::Identity`;
  const group = `${namespace}::Group`;
  // An identity is a member of its group only; `in` an identity means that identity.
  const inEntity = (e: unknown): boolean => {
    const uid = entityOf(e);
    if (!uid) return true;
    if (uid.type === identity) return uid.id === r.principalId;
    if (uid.type === group) return uid.id === r.group;
    return true;
  };
  const c = a.principal;
  switch (c.op) {
    case 'All':
      return true;
    case '==': {
      if (!('entity' in c)) return true;
      const uid = entityOf(c.entity);
      return !uid || uid.type !== identity || uid.id === r.principalId;
    }
    case 'in':
      return 'entity' in c ? inEntity(c.entity) : true;
    case 'is':
      if (c.entity_type !== identity) return false;
      return c.in && 'entity' in c.in ? inEntity(c.in.entity) : true;
    default:
      return true;
  }
}

function resourceMatches(a: PolicyAnalysis, r: SliceRequest): boolean {
  // Resources have no parents here: `resource in E` holds only for E itself.
  const sameType = (e: unknown): boolean => {
    const uid = entityOf(e);
    return !uid || uid.type === r.resourceType;
  };
  const c = a.resource;
  switch (c.op) {
    case 'All':
      return true;
    case '==':
    case 'in':
      return 'entity' in c ? sameType(c.entity) : true;
    case 'is': {
      const type = c.entity_type.includes('::') ? c.entity_type : undefined;
      if (type !== undefined && type !== r.resourceType) return false;
      return c.in && 'entity' in c.in ? sameType(c.in.entity) : true;
    }
    default:
      return true;
  }
}

function entityOf(e: unknown): cedar.TypeAndId | undefined {
  const v = e as { __entity?: cedar.TypeAndId; type?: unknown; id?: unknown } | null | undefined;
  if (!v || typeof v !== 'object') return undefined;
  if (v.__entity) return v.__entity;
  return typeof v.type === 'string' && typeof v.id === 'string' ? { type: v.type, id: v.id } : undefined;
}

/** The union of what a slice's policies read. */
export function attributesOf(analyses: readonly PolicyAnalysis[]): AttributeUse & { actionGroups: boolean } {
  const union = (pick: (u: AttributeUse) => ReadonlySet<string> | 'all'): ReadonlySet<string> | 'all' => {
    const out = new Set<string>();
    for (const a of analyses) {
      const s = pick(a.attributes);
      if (s === 'all') return 'all';
      for (const x of s) out.add(x);
    }
    return out;
  };
  return {
    principal: union((u) => u.principal),
    resource: union((u) => u.resource),
    context: union((u) => u.context),
    actionGroups: analyses.some((a) => a.usesActionGroups),
  };
}

/** `attrs` with only the attributes in `keep`. */
export function project<T>(attrs: Record<string, T>, keep: ReadonlySet<string> | 'all'): Record<string, T> {
  if (keep === 'all') return attrs;
  const out: Record<string, T> = {};
  for (const key of keep) {
    const v = attrs[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
