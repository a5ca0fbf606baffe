import type { Principal } from './principal';

/** What policy is asked about: the resource a call acts on and the attributes a rule may need. */
export interface ResourceRef {
  /** e.g. `job`, `artifact`, `memory_entry`, `service`. */
  type: string;
  /** e.g. `jobs/0f3c…`; empty for a resource not yet created. */
  id: string;
  /** Attributes for policy: a job's network mode, mounts, devices, resources; an artifact's type… */
  attributes?: Record<string, unknown>;
}

export type Effect = 'allow' | 'deny' | 'ask';

/** A policy decision and why it was made. */
export interface Decision {
  effect: Effect;
  /** The policies that decided; `['default-deny']` when nothing permitted the call. */
  policyIds: string[];
  /** Human-readable reason, shown to the caller on deny. */
  reason: string;
  /** Hash of the policy set that decided, recorded in the audit log. */
  policySetHash?: string;
  /** Id of the capability token that took part, if any. */
  tokenId?: string;
  /** The verified `on_behalf_of` of that token: whom the work is done for; recorded in the audit log. */
  onBehalfOf?: string;
  /**
   * Set when a human approval turned an `ask` into this `allow`: the approver's SPIFFE ID (see
   * `GovernedPolicy` in @aether/daemon for when an approval token counts).
   */
  approvedBy?: string;
}

export interface PolicyQuery {
  principal: Principal;
  /** `<api>.<Method>`, e.g. `jobs.SubmitJob`. */
  action: string;
  resource: ResourceRef;
  context: { requestId: string; intentId?: string; jobId?: string; bearerToken?: string };
}

/** Decides every call before its handler runs. Implemented by libs/policy; must fail closed. */
export interface PolicyHook {
  decide(query: PolicyQuery): Promise<Decision> | Decision;
}

/** What the pipeline tells the audit log about one call. */
export interface CallRecord {
  action: string;
  actor: string;
  requestId: string;
  intentId?: string;
  jobId?: string;
  resource: ResourceRef;
  decision: Decision;
  /** The status code name the caller got, e.g. `OK`, `PERMISSION_DENIED`. */
  outcome: string;
  /** Set when the call failed: the message the caller got. */
  error?: string;
  durationMs: number;
  /** Id of the capability token the call carried, if any. */
  tokenId?: string;
  /** Whom the call was made for, from the token's verified `on_behalf_of` (e.g. the approving human). */
  onBehalfOf?: string;
}

/**
 * Records every call. `durable` is true for calls that change state or were denied: the pipeline waits
 * for the record to be on disk before the response leaves, and a failure fails the call (UNAVAILABLE).
 */
export interface AuditHook {
  record(record: CallRecord, options: { durable: boolean }): Promise<void>;
  /** Throws (UnavailableError) when the log cannot take a durable record, so mutations fail closed early. */
  ensureWritable?(): void;
}

/** One finished call, as observers see it: the audit record plus what metrics need. */
export interface FinishedCall extends CallRecord {
  /** Full method path, e.g. `/aether.jobs.v1.JobService/SubmitJob`. */
  path: string;
  /** Seconds the policy decision took; undefined when the call ended before policy was asked. */
  policySeconds?: number;
}

/**
 * Watches calls start and end (metrics count them; aetherd turns denials into events). Called
 * synchronously on the call's path: keep it cheap, and never throw.
 */
export interface CallObserver {
  callStarted?(path: string): void;
  callFinished?(call: FinishedCall): void;
}
