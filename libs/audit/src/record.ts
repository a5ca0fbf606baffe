import { createHash } from 'node:crypto';
import * as crypto from 'node:crypto';

/** Any JSON value, as free-form fields (`resource`, `provenance`) are stored. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** When a record was made: wall clock and monotonic clock, the latter comparable only within one boot. */
export interface AuditTimestamp {
  /** RFC 3339, UTC, nanoseconds: `2026-11-21T04:54:12.123456789Z`. */
  wall: string;
  /** `process.hrtime.bigint()` as a decimal string; comparable between records with the same `boot_id`. */
  mono_ns: string;
  /** `/proc/sys/kernel/random/boot_id`; null where the system has none. */
  boot_id: string | null;
}

/** The policy decision, as recorded. */
export interface AuditDecision {
  /** True only for `effect: 'allow'` (an `ask` is not allowed until approved). */
  allowed: boolean;
  /** `allow`, `deny` or `ask`. */
  effect: string;
  /** The policies that decided; `['default-deny']` when nothing permitted. */
  policy_ids: string[];
  reason: string;
  policy_set_hash: string | null;
}

/**
 * One line of the log. Every member is always present, in this order; an absent optional value is
 * written as `null`. See {@link canonicalRecordBody} for how `hash` is computed.
 */
export interface AuditRecord {
  /** 1-based, continuous across rotated files. */
  seq: number;
  ts: AuditTimestamp;
  /** Program that wrote the record, e.g. `aetherd`. */
  daemon: string;
  /** Who acted: a SPIFFE id, `unauthenticated`, or the daemon itself for internal actions. */
  actor: string;
  on_behalf_of: string | null;
  intent_id: string | null;
  job_id: string | null;
  /** e.g. `jobs.SubmitJob`, `job.exited`, `policy.reloaded`, `audit.recovered`. */
  action: string;
  resource: JsonValue;
  decision: AuditDecision | null;
  token_id: string | null;
  request_id: string | null;
  /** Status code name, e.g. `OK`, `PERMISSION_DENIED`. */
  outcome: string | null;
  error: string | null;
  /** Input references, citations: free JSON. */
  provenance: JsonValue;
  /** `hash` of the previous record; 64 zeros for the first record (seq 1). */
  prev_hash: string;
  /** sha256, lowercase hex, of the record's canonical JSON without `hash`. */
  hash: string;
}

/** The decision as a caller hands it in (the shape of `@aether/rpc`'s `Decision`). */
export interface AuditDecisionInput {
  effect: string;
  policyIds?: readonly string[] | undefined;
  reason?: string | undefined;
  policySetHash?: string | undefined;
  /** Used for the record's `token_id` when the entry has no `tokenId`. */
  tokenId?: string | undefined;
  /** Defaults to `effect === 'allow'`. */
  allowed?: boolean | undefined;
}

/**
 * What a caller says about one action; the log adds `seq`, `ts`, `daemon` and the chain. Structurally
 * compatible with `@aether/rpc`'s `CallRecord` (its extra members, such as `durationMs`, are not recorded).
 */
export interface AuditEntry {
  actor: string;
  action: string;
  onBehalfOf?: string | undefined;
  intentId?: string | undefined;
  jobId?: string | undefined;
  /** Any JSON-serialisable value (ResourceRef for RPCs). */
  resource?: unknown;
  decision?: AuditDecisionInput | null | undefined;
  tokenId?: string | undefined;
  requestId?: string | undefined;
  outcome?: string | undefined;
  error?: string | undefined;
  /** Any JSON-serialisable value: input references, citations. */
  provenance?: unknown;
}

/** prev_hash of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

/** Byte layout of the end of every line: `,"prev_hash":"<64 hex>","hash":"<64 hex>"}`. */
export const PREV_HASH_MEMBER = ',"prev_hash":"';
export const HASH_MEMBER = '","hash":"';
/** Length of `,"hash":"<64 hex>"}` (the part replaced by `}` to get the hashed body). */
export const HASH_TAIL_BYTES = 9 + 64 + 2;
/** Length of `,"prev_hash":"<64>","hash":"<64>"}`. */
export const CHAIN_TAIL_BYTES = 14 + 64 + 10 + 64 + 2;
export const SEQ_PREFIX = '{"seq":';

const hashFn = (crypto as { hash?: (alg: string, data: string | Buffer, enc: 'hex') => string }).hash;

/** sha256 hex of a string (UTF-8) or bytes. */
export function sha256Hex(data: string | Buffer): string {
  return hashFn ? hashFn('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}

/**
 * Canonical JSON of a free-form value: no whitespace; object members sorted by key (UTF-16 code-unit
 * order, as `Array.prototype.sort`), recursively; members whose value is `undefined`, a function or a
 * symbol omitted (`null` in arrays); non-finite numbers as `null`; bigints as decimal strings; `toJSON()`
 * honoured; strings and numbers exactly as `JSON.stringify` writes them. Throws TypeError on a cycle.
 * Parsing the output and canonicalising it again gives the same text.
 */
export function canonicalJson(value: unknown): string {
  return canon(value, []) ?? 'null';
}

function canon(value: unknown, stack: object[]): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      break;
  }
  if (value === null) return 'null';
  const obj = value as { toJSON?: unknown };
  if (typeof obj.toJSON === 'function') return canon((obj.toJSON as () => unknown).call(obj), stack);
  if (stack.includes(obj)) throw new TypeError('audit entry contains a cycle');
  stack.push(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = '[' + obj.map((v: unknown) => canon(v, stack) ?? 'null').join(',') + ']';
  } else {
    const rec = obj as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(rec).sort()) {
      const v = canon(rec[key], stack);
      if (v !== undefined) parts.push(JSON.stringify(key) + ':' + v);
    }
    out = '{' + parts.join(',') + '}';
  }
  stack.pop();
  return out;
}

const str = (v: string | null | undefined): string =>
  v === undefined || v === null ? 'null' : JSON.stringify(v);

function decisionJson(d: AuditDecision | null): string {
  if (d === null) return 'null';
  return (
    '{"allowed":' +
    (d.allowed ? 'true' : 'false') +
    ',"effect":' +
    JSON.stringify(d.effect) +
    ',"policy_ids":[' +
    d.policy_ids.map((p) => JSON.stringify(p)).join(',') +
    '],"reason":' +
    JSON.stringify(d.reason) +
    ',"policy_set_hash":' +
    str(d.policy_set_hash) +
    '}'
  );
}

/** A record without the chain members (`seq`, `prev_hash`, `hash`). */
export type AuditRecordContent = Omit<AuditRecord, 'seq' | 'prev_hash' | 'hash'>;

/**
 * The members of a record between `seq` and `prev_hash`, serialised canonically, without the leading and
 * trailing comma: `"ts":{…},"daemon":…,…,"provenance":…`.
 */
export function contentJson(
  c: AuditRecordContent,
  resourceJson = canonicalJson(c.resource),
  provenanceJson = canonicalJson(c.provenance),
): string {
  return (
    '"ts":{"wall":' +
    JSON.stringify(c.ts.wall) +
    ',"mono_ns":' +
    JSON.stringify(c.ts.mono_ns) +
    ',"boot_id":' +
    str(c.ts.boot_id) +
    '},"daemon":' +
    JSON.stringify(c.daemon) +
    ',"actor":' +
    JSON.stringify(c.actor) +
    ',"on_behalf_of":' +
    str(c.on_behalf_of) +
    ',"intent_id":' +
    str(c.intent_id) +
    ',"job_id":' +
    str(c.job_id) +
    ',"action":' +
    JSON.stringify(c.action) +
    ',"resource":' +
    resourceJson +
    ',"decision":' +
    decisionJson(c.decision) +
    ',"token_id":' +
    str(c.token_id) +
    ',"request_id":' +
    str(c.request_id) +
    ',"outcome":' +
    str(c.outcome) +
    ',"error":' +
    str(c.error) +
    ',"provenance":' +
    provenanceJson
  );
}

/** `{"seq":…,<content>,"prev_hash":"…"}`: the canonical JSON of a record without `hash`. */
export function bodyJson(seq: number, content: string, prevHash: string): string {
  return SEQ_PREFIX + seq + ',' + content + PREV_HASH_MEMBER + prevHash + '"}';
}

/**
 * The canonical JSON of a record without its `hash` member, over whose UTF-8 bytes `hash` is the sha256:
 *
 * - the members in the fixed order of {@link AuditRecord}: `seq`, `ts` (`wall`, `mono_ns`, `boot_id`),
 *   `daemon`, `actor`, `on_behalf_of`, `intent_id`, `job_id`, `action`, `resource`, `decision`
 *   (`allowed`, `effect`, `policy_ids`, `reason`, `policy_set_hash`), `token_id`, `request_id`,
 *   `outcome`, `error`, `provenance`, `prev_hash`; absent values as `null`, never omitted;
 * - no whitespace; strings and numbers as `JSON.stringify` writes them;
 * - `resource` and `provenance` in {@link canonicalJson} form (object keys sorted, recursively).
 *
 * The writer emits each line as exactly this text with `,"hash":"<hex>"` inserted before the final `}`, so
 * a verifier can also hash the line's bytes with the last 75 bytes (`,"hash":"<64 hex>"}`) replaced by `}`
 * without parsing or re-serialising anything.
 */
export function canonicalRecordBody(record: Omit<AuditRecord, 'hash'>): string {
  return bodyJson(record.seq, contentJson(record), record.prev_hash);
}

/** Recomputes a record's hash from its members. */
export function computeRecordHash(record: Omit<AuditRecord, 'hash'>): string {
  return sha256Hex(canonicalRecordBody(record));
}

/** A caller's entry normalised to record content, and that content's canonical JSON ({@link contentJson}). */
export interface PreparedContent {
  content: AuditRecordContent;
  json: string;
}

/** Normalises a caller's entry (camelCase, optional members) to record content. Throws TypeError. */
export function prepareEntry(entry: AuditEntry, daemon: string, ts: AuditTimestamp): PreparedContent {
  if (typeof entry.actor !== 'string' || entry.actor === '')
    throw new TypeError('audit entry needs an actor');
  if (typeof entry.action !== 'string' || entry.action === '')
    throw new TypeError('audit entry needs an action');
  const d = entry.decision;
  const resourceJson = canonicalJson(entry.resource);
  const provenanceJson = canonicalJson(entry.provenance);
  const content: AuditRecordContent = {
    ts,
    daemon,
    actor: entry.actor,
    on_behalf_of: entry.onBehalfOf ?? null,
    intent_id: entry.intentId ?? null,
    job_id: entry.jobId ?? null,
    action: entry.action,
    resource: fromJson(resourceJson),
    decision: d
      ? {
          allowed: d.allowed ?? d.effect === 'allow',
          effect: String(d.effect),
          policy_ids: d.policyIds ? d.policyIds.map(String) : [],
          reason: d.reason ?? '',
          policy_set_hash: d.policySetHash ?? null,
        }
      : null,
    token_id: entry.tokenId ?? d?.tokenId ?? null,
    request_id: entry.requestId ?? null,
    outcome: entry.outcome ?? null,
    error: entry.error ?? null,
    provenance: fromJson(provenanceJson),
  };
  return { content, json: contentJson(content, resourceJson, provenanceJson) };
}

function fromJson(json: string): JsonValue {
  return json === 'null' ? null : (JSON.parse(json) as JsonValue);
}
