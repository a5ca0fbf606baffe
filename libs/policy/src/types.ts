/**
 * The shapes the policy engine is asked about and answers with. They are structurally compatible with
 * `PolicyQuery`, `Decision` and `PolicyHook` of `@aether/rpc`, so a {@link PolicyEngine} or a
 * {@link PolicyStore} can be passed to the RPC pipeline as its policy hook; this package does not depend
 * on the RPC layer.
 */

/** Who is calling, as the transport established it. */
export interface PolicyPrincipal {
  /** The SPIFFE ID, e.g. `spiffe://aether.local/aurorad`. */
  id: string;
  trustDomain: string;
  /** The SPIFFE path: `aurorad`, `admin`, `users/alice`. Decides the caller's group. */
  name: string;
  /** `certificate` (mTLS) or `socket` (insecure-plaintext mode). */
  authenticatedBy: string;
}

/** What a call acts on. Types the engine knows: `service`, `job`, `artifact`, `memory_entry`. */
export interface PolicyResource {
  type: string;
  /** The object's id; empty for one not yet created (mapped to `"new"`) or for a whole service. */
  id: string;
  /** Attributes policy rules read; see the README for each type's attributes. */
  attributes?: Record<string, unknown>;
}

/** What a capability token limits the jobs to; an absent field puts no limit from the token. */
export interface TokenConstraints {
  network?: 'none' | 'host';
  maxCpuMillicores?: number;
  maxMemoryBytes?: number;
  maxPidsMax?: number;
  maxTimeoutSeconds?: number;
  allowDevices?: boolean;
  allowMounts?: boolean;
}

/** The verified claims of a capability token, as the token layer puts them into the query context. */
export interface TokenClaims {
  id: string;
  /** Whom the token was minted for: a SPIFFE ID or a SPIFFE path. */
  subject: string;
  intentId?: string;
  /** Actions (`jobs.SubmitJob`), action groups (`jobs.read`, `jobs.*`) or `*`. */
  actions: string[];
  constraints: TokenConstraints;
}

/** The request around the call. `bearerToken` is never given to Cedar; `token` (verified claims) is. */
export interface PolicyContext {
  requestId: string;
  intentId?: string;
  jobId?: string;
  bearerToken?: string;
  token?: TokenClaims;
}

/** One question to the policy engine: may this principal do this action on this resource? */
export interface PolicyQuery {
  principal: PolicyPrincipal;
  /** `<api>.<Method>`, e.g. `jobs.SubmitJob`, `governance.MintToken`. */
  action: string;
  resource: PolicyResource;
  context: PolicyContext;
}

export type Effect = 'allow' | 'deny' | 'ask';

/** The answer, with the policies that decided it and why. */
export interface Decision {
  /** `ask`: permitted only by policies that require a human approval (`@ask`). */
  effect: Effect;
  /** The deciding policies; `['default-deny']` when nothing permits, `['engine-error']` on a failure. */
  policyIds: string[];
  /** Human-readable reason, shown to the caller on deny and recorded in the audit log. */
  reason: string;
  /** Hash of the policy set that decided (sha256 over file names and contents, 16 hex digits). */
  policySetHash?: string;
  /** The capability token that took part, if any. */
  tokenId?: string;
  /** That token's verified `on_behalf_of`: whom the work is done for (set by the token layer). */
  onBehalfOf?: string;
  /**
   * Set when a human approval turned an `ask` into this `allow`: the approver's SPIFFE ID. The engine
   * never sets it; the token layer does (`GovernedPolicy` in @aether/daemon).
   */
  approvedBy?: string;
}

/** A place in a policy or schema file, with what is wrong there. Line and column count from 1. */
export interface PolicyFileError {
  file: string;
  line: number;
  column: number;
  message: string;
}

/** A loaded policy: where it came from and the annotations the engine reads. */
export interface PolicyInfo {
  /** From `@id("…")`, else `<file basename>:<index in the file>`. */
  id: string;
  effect: 'permit' | 'forbid';
  file: string;
  line: number;
  column: number;
  /** `@ask("why")`: a permit that needs a human approval. */
  ask?: string;
  /** `@reason("…")`: the reason a decision by this policy gives. */
  reason?: string;
  /** The policy's Cedar text, as written. */
  text: string;
}
