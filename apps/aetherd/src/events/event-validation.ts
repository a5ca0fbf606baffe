import { createHash } from 'node:crypto';
import { eventsV1 } from '@aether/proto';
import { Violations, type FieldViolation } from '@aether/rpc';
import { invalidFields } from '@aether/rpc';
import type { SqlFilter, StoredEvent } from './event-store';

/** Dotted lowercase segments, at least two: `job.state_changed`, `training.metrics`. */
const TYPE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
/** One or more whole segments (a type prefix): `job`, `intent.step`. */
const PREFIX = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$/;
const SOURCE = /^[A-Za-z0-9._:/-]{1,128}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const KEY = /^[A-Za-z0-9._:-]{1,128}$/;
export const MAX_TYPE_LENGTH = 128;
export const MAX_SUBJECT_BYTES = 512;
export const MAX_BATCH = 1000;
/** Types whose first segment is one of these are aetherd's own; clients cannot emit them. */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set([
  'job',
  'artifact',
  'memory',
  'policy',
  'request',
  'events',
]);
/** Filter lists longer than this are refused (a filter is matched against every live event). */
const MAX_FILTER_VALUES = 64;

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');
const show = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

export const namespaceOf = (type: string): string => type.slice(0, type.indexOf('.'));

function checkType(v: Violations, type: string, field: string): void {
  if (type.length > MAX_TYPE_LENGTH) v.add(field, `must be at most ${MAX_TYPE_LENGTH} characters`);
  else if (!TYPE.test(type))
    v.add(
      field,
      `${show(type)} is not an event type: dotted lowercase segments, each [a-z][a-z0-9_]*, at least two (e.g. intent.step_changed)`,
    );
}

/** What EmitEvent and BatchEmitEvents check of one request; reasons are picked by the caller. */
export interface EmitProblems {
  violations: FieldViolation[];
  reserved: boolean;
  tooLarge: boolean;
}

/** Checks one EmitEventRequest, `prefix` being its path in the call (`` or `requests[3].`). */
export function checkEmit(
  req: eventsV1.EmitEventRequest,
  prefix: string,
  maxDataBytes: number,
  problems: EmitProblems,
): void {
  const v = new Violations();
  const e = req.event;
  if (!e) {
    v.add(`${prefix}event`, 'is required');
  } else {
    checkType(v, e.type, `${prefix}event.type`);
    if (TYPE.test(e.type) && RESERVED_NAMESPACES.has(namespaceOf(e.type))) {
      problems.reserved = true;
      v.add(
        `${prefix}event.type`,
        `${show(e.type)}: the ${namespaceOf(e.type)}.* types are aetherd's own and cannot be emitted by clients`,
      );
    }
    if (e.source !== '' && !SOURCE.test(e.source))
      v.add(`${prefix}event.source`, 'must be 1-128 characters of [A-Za-z0-9._:/-]');
    if (utf8(e.subject) > MAX_SUBJECT_BYTES)
      v.add(`${prefix}event.subject`, `must be at most ${MAX_SUBJECT_BYTES} bytes`);
    if (e.intentId !== '' && !ID.test(e.intentId))
      v.add(`${prefix}event.intent_id`, 'must be 1-128 characters of [A-Za-z0-9._:-]');
    if (e.jobId !== '' && !ID.test(e.jobId))
      v.add(`${prefix}event.job_id`, 'must be 1-128 characters of [A-Za-z0-9._:-]');
    if (e.data !== undefined) {
      const size = dataSize(e.data);
      if (size > maxDataBytes) {
        problems.tooLarge = true;
        v.add(`${prefix}event.data`, `is ${size} bytes serialized; the limit is ${maxDataBytes}`);
      }
    }
  }
  if (req.idempotencyKey !== '' && !KEY.test(req.idempotencyKey))
    v.add(`${prefix}idempotency_key`, 'must be 1-128 characters of [A-Za-z0-9._:-]');
  problems.violations.push(...v.all);
}

/** Throws the error for what {@link checkEmit} found, if anything. */
export function throwEmitProblems(p: EmitProblems): void {
  if (p.violations.length === 0) return;
  throw invalidFields(
    p.violations,
    p.tooLarge ? 'EVENT_TOO_LARGE' : p.reserved ? 'EVENT_TYPE_RESERVED' : 'INVALID_FIELD',
  );
}

export const emptyProblems = (): EmitProblems => ({ violations: [], reserved: false, tooLarge: false });

/** The size of `data` as a google.protobuf.Struct on the wire. */
export function dataSize(data: Record<string, unknown>): number {
  return eventsV1.Event.encode(eventsV1.Event.fromPartial({ data })).finish().length;
}

/** Hash of what an emit said, so a repeated idempotency key can be told from a reused one. */
export function requestHash(e: eventsV1.Event): string {
  return createHash('sha256')
    .update(JSON.stringify([e.type, e.source, e.subject, e.data ?? null, e.intentId, e.jobId]))
    .digest('base64url');
}

/** A subscriber's or a listing's filter, compiled once: a predicate for live events and SQL for the store. */
export interface CompiledFilter {
  matches: (e: StoredEvent) => boolean;
  sql: SqlFilter;
  /** True when every event matches (no condition). */
  all: boolean;
}

/** Checks an EventFilter at `field` (e.g. `filter`), adding what is wrong to `v`. */
export function checkFilter(v: Violations, f: eventsV1.EventFilter | undefined, field: string): void {
  if (!f) return;
  for (const [list, name] of [
    [f.types, 'types'],
    [f.typePrefixes, 'type_prefixes'],
    [f.sources, 'sources'],
  ] as const) {
    if (list.length > MAX_FILTER_VALUES)
      v.add(`${field}.${name}`, `must have at most ${MAX_FILTER_VALUES} values`);
  }
  f.types.forEach((t, i) => checkType(v, t, `${field}.types[${i}]`));
  f.typePrefixes.forEach((p, i) => {
    const bare = p.endsWith('.') ? p.slice(0, -1) : p;
    if (bare.length > MAX_TYPE_LENGTH || !PREFIX.test(bare))
      v.add(
        `${field}.type_prefixes[${i}]`,
        `${show(p)} is not a type prefix: whole lowercase segments (e.g. job or intent.step)`,
      );
  });
  f.sources.forEach((s, i) => {
    if (!SOURCE.test(s)) v.add(`${field}.sources[${i}]`, 'must be 1-128 characters of [A-Za-z0-9._:/-]');
  });
  if (f.jobId !== '' && !ID.test(f.jobId))
    v.add(`${field}.job_id`, 'must be 1-128 characters of [A-Za-z0-9._:-]');
  if (f.intentId !== '' && !ID.test(f.intentId))
    v.add(`${field}.intent_id`, 'must be 1-128 characters of [A-Za-z0-9._:-]');
  if (utf8(f.subject) > MAX_SUBJECT_BYTES)
    v.add(`${field}.subject`, `must be at most ${MAX_SUBJECT_BYTES} bytes`);
}

/** Compiles a checked filter. */
export function compileFilter(f: eventsV1.EventFilter | undefined): CompiledFilter {
  const types = new Set(f?.types ?? []);
  const prefixes = [...new Set((f?.typePrefixes ?? []).map((p) => (p.endsWith('.') ? p.slice(0, -1) : p)))];
  const sources = new Set(f?.sources ?? []);
  const jobId = f?.jobId ?? '';
  const intentId = f?.intentId ?? '';
  const subject = f?.subject ?? '';
  const byType = types.size > 0 || prefixes.length > 0;
  const dotted = prefixes.map((p) => `${p}.`);
  const matchesType = (type: string): boolean => {
    if (types.has(type)) return true;
    for (let i = 0; i < prefixes.length; i++)
      if (type === prefixes[i] || type.startsWith(dotted[i]!)) return true;
    return false;
  };
  const where: string[] = [];
  const params: unknown[] = [];
  if (byType) {
    const alternatives: string[] = [];
    if (types.size > 0) {
      alternatives.push(`type IN (${[...types].map(() => '?').join(', ')})`);
      params.push(...types);
    }
    for (const p of prefixes) {
      // A range on the type is exact for whole segments: `job.` <= type < `job/` ('/' follows '.').
      alternatives.push('(type = ? OR (type >= ? AND type < ?))');
      params.push(p, `${p}.`, `${p}/`);
    }
    where.push(`(${alternatives.join(' OR ')})`);
  }
  if (jobId) {
    where.push('job_id = ?');
    params.push(jobId);
  }
  if (intentId) {
    where.push('intent_id = ?');
    params.push(intentId);
  }
  if (sources.size > 0) {
    where.push(`source IN (${[...sources].map(() => '?').join(', ')})`);
    params.push(...sources);
  }
  if (subject) {
    where.push('subject = ?');
    params.push(subject);
  }
  const all = where.length === 0;
  return {
    all,
    sql: { where: where.join(' AND '), params },
    matches: all
      ? () => true
      : (e) =>
          (!byType || matchesType(e.type)) &&
          (!jobId || e.jobId === jobId) &&
          (!intentId || e.intentId === intentId) &&
          (sources.size === 0 || sources.has(e.source)) &&
          (!subject || e.subject === subject),
  };
}
