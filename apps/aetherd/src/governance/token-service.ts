import { groupOf } from '@aether/policy';
import { governanceV1, msFromDuration, timestampFromDate } from '@aether/proto';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  unary,
  Violations,
  type CallContext,
  type Principal,
  type ServiceHandlers,
} from '@aether/rpc';
import {
  MAX_TOKEN_TTL_SECONDS,
  type TokenConstraints,
  type TokenEntry,
  type TokenRegistry,
  type TokenSigner,
} from '@aether/tokens';

const ACTION_PATTERN = /^[a-z]+\.[A-Z][A-Za-z]+$/;
const AUDIENCES = new Set(['aetherd', 'aurorad', 'cfcd']);

/** Constraint keys as the API spells them (snake_case Struct keys) and their claim names. */
const CONSTRAINTS: Record<string, { key: keyof TokenConstraints; kind: 'network' | 'count' | 'bool' }> = {
  network: { key: 'network', kind: 'network' },
  max_cpu_millicores: { key: 'maxCpuMillicores', kind: 'count' },
  max_memory_bytes: { key: 'maxMemoryBytes', kind: 'count' },
  max_pids: { key: 'maxPidsMax', kind: 'count' },
  max_timeout_seconds: { key: 'maxTimeoutSeconds', kind: 'count' },
  allow_devices: { key: 'allowDevices', kind: 'bool' },
  allow_mounts: { key: 'allowMounts', kind: 'bool' },
};
const CONSTRAINT_NAMES = Object.fromEntries(Object.entries(CONSTRAINTS).map(([k, v]) => [v.key, k]));

/** Admins may mint and revoke for anyone; everyone else only for themselves. */
export function isAdmin(p: Principal): boolean {
  return groupOf(p.name) === 'admins';
}

function parseConstraints(raw: Record<string, unknown> | undefined, v: Violations): TokenConstraints {
  const out: TokenConstraints = {};
  for (const [name, value] of Object.entries(raw ?? {})) {
    const spec = CONSTRAINTS[name];
    const field = `token.constraints.${name}`;
    if (!spec) {
      v.add(field, `unknown constraint; known: ${Object.keys(CONSTRAINTS).join(', ')}`);
    } else if (spec.kind === 'network') {
      if (value === 'none' || value === 'host') out.network = value;
      else v.add(field, 'must be "none" or "host"');
    } else if (spec.kind === 'count') {
      if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)
        (out as Record<string, unknown>)[spec.key] = value;
      else v.add(field, 'must be a non-negative integer');
    } else if (typeof value === 'boolean') {
      (out as Record<string, unknown>)[spec.key] = value;
    } else {
      v.add(field, 'must be true or false');
    }
  }
  return out;
}

function toProto(e: TokenEntry): governanceV1.CapabilityToken {
  return governanceV1.CapabilityToken.fromPartial({
    name: `tokens/${e.id}`,
    id: e.id,
    subject: e.subject,
    audience: e.audience,
    intentId: e.intentId ?? '',
    actions: e.actions,
    constraints: Object.fromEntries(
      Object.entries(e.constraints).map(([k, val]) => [CONSTRAINT_NAMES[k] ?? k, val as unknown]),
    ),
    onBehalfOf: e.onBehalfOf ?? '',
    actor: e.actor,
    createTime: timestampFromDate(e.issuedAt),
    expireTime: timestampFromDate(e.expiresAt),
    revoked: e.revoked !== undefined,
    ...(e.revoked ? { revokeTime: timestampFromDate(e.revoked.at), revokeReason: e.revoked.reason } : {}),
  });
}

function idFromName(name: string, field = 'name'): string {
  const m = /^tokens\/([0-9a-f-]{36})$/.exec(name);
  if (!m) throw new InvalidArgumentError([{ field, description: 'must be "tokens/<uuid>"' }]);
  return m[1]!;
}

function mayManage(ctx: CallContext, e: TokenEntry): boolean {
  return isAdmin(ctx.principal) || e.subject === ctx.principal.id || e.actor === ctx.principal.id;
}

/** TokenService: mint, inspect, list and revoke capability tokens (ARCHITECTURE §3, seed §3.2). */
export function tokenServiceHandlers(
  signer: TokenSigner,
  registry: TokenRegistry,
  defaultTtlSeconds: number,
  /** Called after a revocation is recorded (aetherd publishes the list for aurorad and cfcd). */
  onRevoked: () => void = () => undefined,
): ServiceHandlers<typeof governanceV1.TokenServiceService> {
  return {
    mintToken: unary<governanceV1.MintTokenRequest, governanceV1.MintTokenResponse>({
      mutates: true,
      validate: (req) => {
        const v = new Violations();
        const t = req.token;
        v.check(t !== undefined, 'token', 'is required');
        v.check((t?.actions.length ?? 0) > 0, 'token.actions', 'must name at least one action');
        for (const [i, a] of (t?.actions ?? []).entries()) {
          v.check(
            ACTION_PATTERN.test(a),
            `token.actions[${i}]`,
            `"${a}" is not an action such as jobs.SubmitJob`,
          );
        }
        for (const [i, a] of (t?.audience ?? []).entries()) {
          v.check(AUDIENCES.has(a), `token.audience[${i}]`, `must be one of ${[...AUDIENCES].join(', ')}`);
        }
        if (t?.subject)
          v.check(t.subject.startsWith('spiffe://'), 'token.subject', 'must be a spiffe:// identity');
        if (req.ttl) {
          const s = msFromDuration(req.ttl) / 1000;
          v.check(
            s >= 1 && s <= MAX_TOKEN_TTL_SECONDS,
            'ttl',
            `must be between 1s and ${MAX_TOKEN_TTL_SECONDS}s`,
          );
        }
        parseConstraints(t?.constraints, v);
        v.throwIfAny();
      },
      handle: async (req, ctx) => {
        const t = req.token!;
        const subject = t.subject || ctx.principal.id;
        if (subject !== ctx.principal.id && !isAdmin(ctx.principal)) {
          throw new PermissionDeniedError(
            `only an admin may mint a token for another identity (${subject})`,
            'TOKEN_SUBJECT_NOT_CALLER',
          );
        }
        const v = new Violations();
        const constraints = parseConstraints(t.constraints, v);
        const intentId = t.intentId || ctx.intentId;
        const { token, claims } = await signer.mint({
          subject,
          audience: t.audience.length > 0 ? t.audience : ['aetherd'],
          actions: t.actions,
          constraints,
          ttlSeconds: req.ttl ? Math.round(msFromDuration(req.ttl) / 1000) : defaultTtlSeconds,
          ...(intentId ? { intentId } : {}),
          ...(t.onBehalfOf ? { onBehalfOf: t.onBehalfOf } : {}),
        });
        const entry = registry.recordMinted(claims, ctx.principal.id);
        return { tokenString: token, token: toProto(entry) };
      },
    }),
    getToken: unary<governanceV1.GetTokenRequest, governanceV1.GetTokenResponse>({
      handle: (req, ctx) => {
        const e = registry.get(idFromName(req.name));
        if (!e || !mayManage(ctx, e)) return Promise.reject(new NotFoundError(req.name));
        return Promise.resolve({ token: toProto(e) });
      },
    }),
    listTokens: unary<governanceV1.ListTokensRequest, governanceV1.ListTokensResponse>({
      validate: (req) => {
        new Violations().page(req).throwIfAny();
      },
      handle: (req, ctx) => {
        const all = registry
          .list({
            ...(req.subject ? { subject: req.subject } : {}),
            ...(req.intentId ? { intentId: req.intentId } : {}),
            includeInactive: req.includeInactive,
          })
          .filter((e) => mayManage(ctx, e));
        const start = req.pageToken ? Number(req.pageToken) : 0;
        const size = req.pageSize || 100;
        const page = all.slice(start, start + size);
        return Promise.resolve({
          tokens: page.map(toProto),
          nextPageToken: start + size < all.length ? String(start + size) : '',
        });
      },
    }),
    revokeToken: unary<governanceV1.RevokeTokenRequest, governanceV1.RevokeTokenResponse>({
      mutates: true,
      validate: (req) => {
        idFromName(req.name);
        new Violations()
          .check(req.reason.length <= 1024, 'reason', 'must be at most 1024 characters')
          .throwIfAny();
      },
      handle: (req, ctx) => {
        const id = idFromName(req.name);
        const e = registry.get(id);
        if (!e || !mayManage(ctx, e)) return Promise.reject(new NotFoundError(req.name));
        const revoked = registry.revoke(id, req.reason || 'revoked', ctx.principal.id)!;
        onRevoked();
        return Promise.resolve({ token: toProto(revoked) });
      },
    }),
  };
}
