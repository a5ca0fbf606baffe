/** A decision in the shape the RPC pipeline expects. */
export interface PolicyDecision {
  effect: 'allow' | 'deny' | 'ask';
  policyIds: string[];
  reason: string;
}

export interface StaticPolicyRule {
  /** Policy id reported in decisions and audit records. */
  id: string;
  /** SPIFFE IDs this rule permits. */
  principals: string[];
  /** Action patterns: exact (`jobs.GetJob`), per API (`jobs.*`) or `*`. */
  actions: string[];
}

/**
 * Deny-by-default allow rules over identities and actions. This is the interim engine of the foundation;
 * the governance work replaces it with Cedar policies over the same hook, keeping the same decisions.
 */
export class StaticPolicy {
  constructor(private readonly rules: readonly StaticPolicyRule[]) {}

  decide(query: { principal: { id: string }; action: string }): PolicyDecision {
    const api = query.action.split('.')[0];
    for (const rule of this.rules) {
      const principalOk = rule.principals.includes(query.principal.id);
      const actionOk = rule.actions.some((a) => a === '*' || a === query.action || a === `${api}.*`);
      if (principalOk && actionOk) {
        return { effect: 'allow', policyIds: [rule.id], reason: `permitted by ${rule.id}` };
      }
    }
    return {
      effect: 'deny',
      policyIds: ['default-deny'],
      reason: `no policy permits ${query.principal.id} to ${query.action}`,
    };
  }
}
