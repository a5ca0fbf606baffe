import type * as cedar from './cedar';
import { NAMESPACE, type ActionInfo } from './policy-set-compiler';
import type { PolicyQuery, PolicyResource, TokenClaims } from './types';

/** A query the engine cannot put to Cedar: an unknown resource type, a bad attribute, a bad token claim. */
export class PolicyQueryError extends Error {
  override readonly name = 'PolicyQueryError';
}

/** The group a SPIFFE path puts an identity in (at most one); `undefined` for any other path. */
export function groupOf(spiffePath: string): 'admins' | 'aurorad' | 'cfcd' | 'aetherd' | 'users' | undefined {
  if (spiffePath === 'admin' || /^admins\/[^/]+/.test(spiffePath)) return 'admins';
  if (spiffePath === 'aurorad' || spiffePath === 'cfcd' || spiffePath === 'aetherd') return spiffePath;
  if (/^users\/[^/]+/.test(spiffePath)) return 'users';
  return undefined;
}

/** The resource types a query may name, and the Cedar entity type each becomes. */
export const RESOURCE_TYPES: Readonly<Record<string, string>> = {
  service: `${NAMESPACE}::Service`,
  job: `${NAMESPACE}::Job`,
  artifact: `${NAMESPACE}::Artifact`,
  memory_entry: `${NAMESPACE}::MemoryEntry`,
  event: `${NAMESPACE}::Event`,
};

const ARTIFACT_TYPES = new Set(['dataset', 'checkpoint', 'model', 'report', 'log', 'other']);
const NETWORK_MODES = new Set(['none', 'host']);
const GPU_DEVICE = /^nvidia\.com\/gpu(=|$)/;

/** A query in Cedar's terms, before the engine picks the attributes its policy slice reads. */
export interface CedarRequest {
  principal: cedar.TypeAndId;
  /** The principal's group, from its SPIFFE path. */
  group: string | undefined;
  principalAttrs: Record<string, cedar.CedarValueJson>;
  resource: cedar.TypeAndId;
  resourceAttrs: Record<string, cedar.CedarValueJson>;
  context: Record<string, cedar.CedarValueJson>;
}

/**
 * Maps a query to Cedar: the principal `Aether::Identity::"<SPIFFE ID>"` in its group, the resource
 * entity with its attributes, and the context. Throws {@link PolicyQueryError} for anything it cannot map
 * faithfully, so the engine fails closed instead of guessing.
 */
export function toCedarRequest(query: PolicyQuery, action: ActionInfo): CedarRequest {
  const { principal } = query;
  if (typeof principal?.id !== 'string' || principal.id === '') {
    throw new PolicyQueryError('the principal has no id');
  }
  const resource = toResourceEntity(query.resource, action.api);
  return {
    principal: { type: `${NAMESPACE}::Identity`, id: principal.id },
    group: groupOf(str(principal.name, 'principal.name')),
    principalAttrs: {
      spiffeId: principal.id,
      name: principal.name,
      trustDomain: str(principal.trustDomain, 'principal.trustDomain'),
      authenticatedBy: str(principal.authenticatedBy, 'principal.authenticatedBy'),
    },
    resource: resource.uid,
    resourceAttrs: resource.attrs,
    context: toContext(query, action),
  };
}

function toResourceEntity(
  resource: PolicyResource,
  api: string,
): { uid: cedar.TypeAndId; attrs: Record<string, cedar.CedarValueJson> } {
  const type = RESOURCE_TYPES[resource?.type];
  if (!type || !Object.prototype.hasOwnProperty.call(RESOURCE_TYPES, resource.type)) {
    throw new PolicyQueryError(
      `unknown resource type "${String(resource?.type)}" (known: ${Object.keys(RESOURCE_TYPES).join(', ')})`,
    );
  }
  const input = resource.attributes ?? {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new PolicyQueryError(`resource attributes of ${resource.type} must be an object`);
  }
  const given = Object.entries(input).filter(([, v]) => v !== undefined && v !== null);
  const attrs: Record<string, cedar.CedarValueJson> = {};
  const id = typeof resource.id === 'string' && resource.id !== '' ? resource.id : undefined;
  const known = KNOWN_ATTRIBUTES[resource.type] ?? [];
  for (const [key] of given) {
    if (!known.includes(key)) {
      throw new PolicyQueryError(
        `resource attribute ${resource.type}.${key} is not known to the policy engine` +
          (known.length ? ` (known: ${known.join(', ')})` : ` (a ${resource.type} takes none)`),
      );
    }
  }
  const value = (key: string): unknown => input[key];
  switch (resource.type) {
    case 'service':
      return { uid: { type, id: id ?? api }, attrs };
    case 'job': {
      const network = value('network');
      if (network !== undefined) attrs['network'] = oneOf(network, NETWORK_MODES, 'job.network');
      const mounts = value('mounts');
      if (mounts !== undefined) {
        const { readOnly, writable } = toMounts(mounts);
        attrs['readOnlyMounts'] = readOnly;
        attrs['writableMounts'] = writable;
      }
      const devices = value('devices');
      if (devices !== undefined) {
        const list = strings(devices, 'job.devices');
        attrs['devices'] = list;
        attrs['gpuCount'] = list.filter((d) => GPU_DEVICE.test(d)).length;
        attrs['otherDeviceCount'] = list.filter((d) => !GPU_DEVICE.test(d)).length;
      }
      for (const key of ['cpuMillicores', 'memoryBytes', 'pidsMax', 'timeoutSeconds'] as const) {
        const v = value(key);
        if (v !== undefined) attrs[key] = count(v, `job.${key}`);
      }
      const profile = value('profile');
      if (profile !== undefined) attrs['profile'] = str(profile, 'job.profile');
      return { uid: { type, id: id ?? 'new' }, attrs };
    }
    case 'artifact': {
      const artifactType = value('type');
      if (artifactType !== undefined) attrs['type'] = oneOf(artifactType, ARTIFACT_TYPES, 'artifact.type');
      const size = value('sizeBytes');
      if (size !== undefined) attrs['sizeBytes'] = count(size, 'artifact.sizeBytes');
      return { uid: { type, id: id ?? 'new' }, attrs };
    }
    case 'event': {
      for (const key of ['types', 'namespaces'] as const) {
        const v = value(key);
        if (v !== undefined) attrs[key] = strings(v, `event.${key}`);
      }
      return { uid: { type, id: id ?? 'new' }, attrs };
    }
    default: {
      const tags = value('tags');
      if (tags !== undefined) attrs['tags'] = strings(tags, 'memory_entry.tags');
      return { uid: { type, id: id ?? 'new' }, attrs };
    }
  }
}

const KNOWN_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = {
  service: [],
  job: [
    'network',
    'mounts',
    'devices',
    'cpuMillicores',
    'memoryBytes',
    'pidsMax',
    'timeoutSeconds',
    'profile',
  ],
  artifact: ['type', 'sizeBytes'],
  memory_entry: ['tags'],
  event: ['types', 'namespaces'],
};

function toMounts(value: unknown): { readOnly: string[]; writable: string[] } {
  if (!Array.isArray(value)) throw new PolicyQueryError('job.mounts must be a list of {hostPath, readOnly}');
  const readOnly: string[] = [];
  const writable: string[] = [];
  value.forEach((m: unknown, i) => {
    const mount = m as { hostPath?: unknown; readOnly?: unknown } | null;
    if (typeof mount !== 'object' || mount === null) {
      throw new PolicyQueryError(`job.mounts[${i}] must be an object {hostPath, readOnly}`);
    }
    const path = str(mount.hostPath, `job.mounts[${i}].hostPath`);
    if (typeof mount.readOnly !== 'boolean') {
      throw new PolicyQueryError(`job.mounts[${i}].readOnly must be a boolean`);
    }
    (mount.readOnly ? readOnly : writable).push(path);
  });
  return { readOnly, writable };
}

function toContext(query: PolicyQuery, action: ActionInfo): Record<string, cedar.CedarValueJson> {
  const ctx = query.context;
  if (typeof ctx !== 'object' || ctx === null) throw new PolicyQueryError('the query has no context');
  const context: Record<string, cedar.CedarValueJson> = {
    requestId: str(ctx.requestId ?? '', 'context.requestId'),
    action: query.action,
    api: action.api,
    actionNames: action.names,
  };
  if (ctx.intentId !== undefined && ctx.intentId !== '') {
    context['intentId'] = str(ctx.intentId, 'context.intentId');
  }
  if (ctx.jobId !== undefined && ctx.jobId !== '') context['jobId'] = str(ctx.jobId, 'context.jobId');
  if (ctx.token !== undefined) context['token'] = toToken(ctx.token);
  return context;
}

function toToken(token: TokenClaims): cedar.CedarValueJson {
  if (typeof token !== 'object' || token === null)
    throw new PolicyQueryError('context.token must be an object');
  const out: Record<string, cedar.CedarValueJson> = {
    id: str(token.id, 'context.token.id'),
    subject: str(token.subject, 'context.token.subject'),
    actions: strings(token.actions, 'context.token.actions'),
  };
  if (token.intentId !== undefined) out['intentId'] = str(token.intentId, 'context.token.intentId');
  const c = token.constraints;
  if (typeof c !== 'object' || c === null) {
    throw new PolicyQueryError('context.token.constraints must be an object');
  }
  const constraints: Record<string, cedar.CedarValueJson> = {};
  if (c.network !== undefined) {
    constraints['network'] = oneOf(c.network, NETWORK_MODES, 'context.token.constraints.network');
  }
  for (const key of ['maxCpuMillicores', 'maxMemoryBytes', 'maxPidsMax', 'maxTimeoutSeconds'] as const) {
    const v = c[key];
    if (v !== undefined) constraints[key] = count(v, `context.token.constraints.${key}`);
  }
  for (const key of ['allowDevices', 'allowMounts'] as const) {
    const v = c[key];
    if (v === undefined) continue;
    if (typeof v !== 'boolean')
      throw new PolicyQueryError(`context.token.constraints.${key} must be a boolean`);
    constraints[key] = v;
  }
  out['constraints'] = constraints;
  return out;
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new PolicyQueryError(`${what} must be a string, got ${typeOf(value)}`);
  return value;
}

function strings(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new PolicyQueryError(`${what} must be a list of strings`);
  }
  return value;
}

function count(value: unknown, what: string): number {
  if (typeof value === 'bigint') {
    if (value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  } else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    return value;
  }
  throw new PolicyQueryError(`${what} must be a whole number ≥ 0, got ${typeOf(value)} ${String(value)}`);
}

function oneOf(value: unknown, allowed: ReadonlySet<string>, what: string): string {
  if (typeof value !== 'string' || !allowed.has(value)) {
    throw new PolicyQueryError(
      `${what} must be one of ${[...allowed].join(', ')}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
    );
  }
  return value;
}

function typeOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'list' : typeof value;
}
