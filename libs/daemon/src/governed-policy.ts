import { existsSync } from 'node:fs';
import {
  RevocationListReader,
  revocationListPath,
  TokenError,
  TokenVerifier,
  type CapabilityClaims,
} from '@aether/tokens';
import {
  principalFromSpiffeId,
  serviceResource,
  UnauthenticatedError,
  type Decision,
  type PolicyHook,
  type PolicyQuery,
  type Principal,
} from '@aether/rpc';

/** Turns a bearer token presented by `presenter` into verified claims, or throws TokenError. */
export type VerifyToken = (token: string, presenter: string) => Promise<CapabilityClaims>;

/** The policy engine's view of a token: what it may narrow. */
export interface PolicyTokenClaims {
  id: string;
  subject: string;
  intentId?: string;
  actions: string[];
  constraints: CapabilityClaims['constraints'];
}

/**
 * A token verifier that reads the issuer's public key from a file when first needed, so a daemon can
 * start before aetherd has published it, and that refuses the tokens aetherd's published revocation
 * list names. Used by aurorad and cfcd.
 */
export function fileTokenVerifier(publicKeyFile: string, issuer: string, audience: string): VerifyToken {
  let verifier: Promise<TokenVerifier> | undefined;
  // aetherd publishes revocations beside the key; a token revoked there is refused here too.
  const revocations = new RevocationListReader(revocationListPath(publicKeyFile));
  return async (token, presenter) => {
    if (!verifier) {
      if (!existsSync(publicKeyFile)) {
        throw new TokenError(
          'TOKEN_INVALID_SIGNATURE',
          `token verification key ${publicKeyFile} is not available yet`,
        );
      }
      verifier = TokenVerifier.fromPublicKeyFile(publicKeyFile, issuer);
      verifier.catch(() => (verifier = undefined));
    }
    return (await verifier).verify(token, {
      audience,
      presenter,
      isRevoked: (id) => revocations.isRevoked(id),
    });
  };
}

/** The action whose permission makes an identity an approver: the RPC by which aurorad takes approvals. */
export const APPROVE_ACTION = 'intents.ApproveIntent';

/**
 * The policy hook every daemon runs: a presented capability token is verified first (a bad one is
 * UNAUTHENTICATED with the token's reason), its claims go into the policy context so that policy can
 * only narrow what the caller's identity may do, and the token id and its `on_behalf_of` are carried
 * into the audit record.
 *
 * **Approval tokens.** A decision of `ask` (permitted only by an `@ask` policy) becomes `allow`, with
 * reason `approved by <approver>: <the ask reason>`, the same policy ids and `approvedBy` set, when all of
 * these hold, and stays `ask` otherwise:
 * - the verified token has an `onBehalfOf` (the approver);
 * - the token has an `intentId` equal to the call's intent id (`x-aether-intent-id`);
 * - the token's `actions` name the called action itself (not a group such as `jobs.*`, nor `*`);
 * - the approver is a SPIFFE ID in the caller's trust domain, and the same policy engine allows that
 *   identity `intents.ApproveIntent` on the resource aurorad's pipeline decides that call on (the
 *   `intents` service).
 *
 * The engine has already decided with the token's claims in context, so the token's forbids still apply
 * (an approval for a 2-CPU job does not let a 4-CPU job through) and any forbid still wins: an approval
 * only answers an `ask`, it never overrides a `deny`.
 *
 * Trust: the approver does not sign anything. aetherd trusts the caller's (aurorad's) statement of who
 * approved only as far as policy lets that identity approve; a compromised aurorad could still name an
 * admin as the approver of a step no human approved. What bounds it: only `ask` steps, only the exact
 * action and the constraints of the token aurorad minted, and every such call is audited with the token
 * id and the named approver.
 */
export class GovernedPolicy implements PolicyHook {
  constructor(
    private readonly engine: {
      decide(query: PolicyQuery & { context: { token?: PolicyTokenClaims } }): Decision;
    },
    private verify: VerifyToken,
  ) {}

  /** Replaces the verifier (aetherd verifies in process against its own registry). */
  useVerifier(verify: VerifyToken): void {
    this.verify = verify;
  }

  async decide(query: PolicyQuery): Promise<Decision> {
    const bearer = query.context.bearerToken;
    if (!bearer) return this.engine.decide(query);
    let claims: CapabilityClaims;
    try {
      claims = await this.verify(bearer, query.principal.id);
    } catch (err) {
      if (err instanceof TokenError) throw new UnauthenticatedError(err.message, err.reason);
      throw err;
    }
    const token: PolicyTokenClaims = {
      id: claims.id,
      subject: claims.subject,
      actions: claims.actions,
      constraints: claims.constraints,
      ...(claims.intentId ? { intentId: claims.intentId } : {}),
    };
    const decision = this.engine.decide({ ...query, context: { ...query.context, token } });
    const approvedBy = decision.effect === 'ask' ? this.approver(query, claims) : undefined;
    return {
      ...decision,
      ...(approvedBy
        ? { effect: 'allow', reason: `approved by ${approvedBy}: ${decision.reason}`, approvedBy }
        : {}),
      tokenId: claims.id,
      ...(claims.onBehalfOf ? { onBehalfOf: claims.onBehalfOf } : {}),
    };
  }

  /** The approver an approval token names, when it may answer this `ask` (see the class comment). */
  private approver(query: PolicyQuery, claims: CapabilityClaims): string | undefined {
    const approver = claims.onBehalfOf;
    if (!approver) return undefined;
    if (!claims.intentId || claims.intentId !== query.context.intentId) return undefined;
    if (!claims.actions.includes(query.action)) return undefined;
    let principal: Principal;
    try {
      principal = principalFromSpiffeId(approver, query.principal.trustDomain);
    } catch {
      return undefined;
    }
    const mayApprove = this.engine.decide({
      principal,
      action: APPROVE_ACTION,
      resource: serviceResource(APPROVE_ACTION),
      context: { requestId: query.context.requestId, intentId: claims.intentId },
    });
    return mayApprove.effect === 'allow' ? principal.id : undefined;
  }
}
