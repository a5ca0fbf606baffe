import { explain, queryFromArgs, type PolicyStore } from '@aether/policy';
import { governanceV1, timestampFromDate } from '@aether/proto';
import { unary, Violations, type ServiceHandlers } from '@aether/rpc';

const EFFECTS = {
  allow: governanceV1.PolicyEffect.POLICY_EFFECT_ALLOW,
  deny: governanceV1.PolicyEffect.POLICY_EFFECT_DENY,
  ask: governanceV1.PolicyEffect.POLICY_EFFECT_ASK,
} as const;

/** PolicyService: explain a decision, show the policy set in force, reload it. */
export function policyServiceHandlers(
  store: PolicyStore,
  trustDomain: string,
): ServiceHandlers<typeof governanceV1.PolicyServiceService> {
  return {
    checkPolicy: unary<governanceV1.CheckPolicyRequest, governanceV1.CheckPolicyResponse>({
      validate: (req) =>
        new Violations()
          .check(req.principal !== '', 'principal', 'is required (a SPIFFE ID or path)')
          .check(
            /^[a-z]+\.[A-Za-z.]+$/.test(req.action),
            'action',
            'must be an action such as jobs.SubmitJob',
          )
          .throwIfAny(),
      handle: (req) => {
        const query = queryFromArgs({ principal: req.principal, action: req.action, trustDomain });
        query.resource = {
          type: req.resource?.type || 'service',
          id: req.resource?.id || (req.resource?.type ? '' : (req.action.split('.')[0] ?? '')),
          ...(req.resource?.attributes ? { attributes: req.resource.attributes } : {}),
        };
        if (req.context?.['intentId']) query.context.intentId = String(req.context['intentId']);
        const e = explain(store.current, query);
        return Promise.resolve({
          decision: {
            effect: EFFECTS[e.decision.effect],
            policyIds: e.decision.policyIds,
            reason: e.decision.reason,
            policySetHash: e.policySetHash,
            diagnostics: [
              ...e.determining.map((p) => `${p.effect} ${p.id} at ${p.file}:${p.line}:${p.column}`),
              ...e.errors.map((x) => `error in ${x.policyId}: ${x.message}`),
            ],
          },
        });
      },
    }),
    getPolicySet: unary<governanceV1.GetPolicySetRequest, governanceV1.GetPolicySetResponse>({
      handle: () => {
        const engine = store.current;
        const byFile = new Map<string, string[]>();
        for (const p of engine.policies) byFile.set(p.file, [...(byFile.get(p.file) ?? []), p.id]);
        return Promise.resolve({
          policySetHash: engine.hash,
          files: [...byFile].map(([path, ids]) => ({ path, digest: '', policyIds: ids })),
          loadTime: timestampFromDate(engine.loadedAt),
          policyCount: engine.policies.length,
        });
      },
    }),
    reloadPolicy: unary<governanceV1.ReloadPolicyRequest, governanceV1.ReloadPolicyResponse>({
      mutates: true,
      handle: () => {
        const r = store.reload();
        if (r.applied) return Promise.resolve({ applied: true, policySetHash: r.hash, errors: [] });
        return Promise.resolve({
          applied: false,
          policySetHash: r.hash ?? '',
          errors: r.errors.map((e) => ({ path: e.file, line: e.line, column: e.column, message: e.message })),
        });
      },
    }),
  };
}
