import { existsSync } from 'node:fs';
import {
  RevocationListReader,
  revocationListPath,
  TokenError,
  TokenVerifier,
  type CapabilityClaims,
} from '@aether/tokens';
import { UnauthenticatedError, type Decision, type PolicyHook, type PolicyQuery } from '@aether/rpc';

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

/**
 * The policy hook every daemon runs: a presented capability token is verified first (a bad one is
 * UNAUTHENTICATED with the token's reason), its claims go into the policy context so that policy can
 * only narrow what the caller's identity may do, and the token id is carried into the audit record.
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
    return { ...decision, tokenId: claims.id };
  }
}
