// Pure helpers of `aether events`: names, sequences, event data from the command line, the filter, the
// one-line and detailed views of an event, and where a watch resumes after its stream is lost.
import { RpcError } from '@aether/client';
import { dateFromTimestamp, eventsV1 } from '@aether/proto';
import { fields } from './output';
import { formatAge, parseKeyValue, resourceName, truncate, UsageError } from './units';

const { GapReason } = eventsV1;

const MAX_SEQUENCE = 2n ** 64n - 1n;

/** A sequence number (`--from`, `events get`): a whole number from 1, as a bigint. */
export function parseSequence(text: string, what = 'sequence'): bigint {
  if (!/^\d+$/.test(text) || BigInt(text) < 1n || BigInt(text) > MAX_SEQUENCE)
    throw new UsageError(`${what} "${text}" must be a positive whole number (an event sequence, e.g. 1042)`);
  return BigInt(text);
}

/** `events/<sequence>` from that or a bare sequence. */
export function eventName(nameOrSequence: string): string {
  const name = resourceName('events', nameOrSequence, 'an event');
  parseSequence(name.slice('events/'.length), 'event');
  return name;
}

const EVENT_TYPE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;

/** An event type to emit: dotted lowercase segments, at least two (`training.metrics`). */
export function parseEventType(text: string): string {
  if (text.length > 128 || !EVENT_TYPE.test(text))
    throw new UsageError(
      `event type "${text}" must be two or more dotted lowercase segments of [a-z0-9_], each starting with a letter (e.g. training.metrics), at most 128 characters`,
    );
  return text;
}

const kindOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : `a ${typeof v}`;

/** The event data of `--data` or `--data-file`: JSON that must be an object (a protobuf Struct). */
export function parseDataObject(text: string, what = '--data'): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `${what} is not valid JSON (${(err as Error).message}); give an object such as '{"epoch": 3, "loss": 0.21}'`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(`${what} must be a JSON object such as '{"epoch": 3}', got ${kindOf(value)}`);
  return value as Record<string, unknown>;
}

/**
 * One `-d` field: `key=value` sets a string, `key:=JSON` any JSON value (`epoch:=3`, `done:=true`,
 * `tags:='["a","b"]'`), as httpie spells them.
 */
export function parseDataField(text: string): [string, unknown] {
  const [key, raw] = parseKeyValue(text, '-d');
  if (!key.endsWith(':')) return [key, raw];
  const name = key.slice(0, -1);
  if (name === '') throw new UsageError(`-d must be KEY=VALUE or KEY:=JSON, got "${text}"`);
  try {
    return [name, JSON.parse(raw)];
  } catch {
    throw new UsageError(
      `-d ${name}:= needs a JSON value (a number, true, null, "text", [..] or {..}), got ${JSON.stringify(raw)}`,
    );
  }
}

/** The data of an emitted event: the `--data` object (or none) with the `-d` fields set on top. */
export function eventData(
  base: Record<string, unknown> | undefined,
  fieldsToSet: readonly [string, unknown][] = [],
): Record<string, unknown> | undefined {
  if (base === undefined && fieldsToSet.length === 0) return undefined;
  return { ...base, ...Object.fromEntries(fieldsToSet) };
}

/** The options every event selector shares (`watch`, `list`). */
export interface FilterOpts {
  type?: string[];
  typePrefix?: string[];
  job?: string;
  intent?: string;
  source?: string[];
  subject?: string;
}

/** The EventFilter of the options; `--job jobs/<id>` and `--intent intents/<id>` become bare ids. */
export function eventFilter(o: FilterOpts): eventsV1.EventFilter {
  return eventsV1.EventFilter.fromPartial({
    types: o.type ?? [],
    typePrefixes: o.typePrefix ?? [],
    jobId: o.job?.replace(/^jobs\//, '') ?? '',
    intentId: o.intent?.replace(/^intents\//, '') ?? '',
    sources: o.source ?? [],
    subject: o.subject ?? '',
  });
}

const iso = (t: eventsV1.Event['time']): string => (t ? dateFromTimestamp(t).toISOString() : '-');

/** A data value for one line: bare when it is a plain word, else as JSON. */
function valueText(v: unknown): string {
  if (typeof v === 'string') return v !== '' && /^[^\s"'=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? 'null';
}

/** The data of an event as `key=value …` on one line, each value and the whole cut to fit. */
export function dataSummary(data: Record<string, unknown> | undefined, max = 160): string {
  const parts = Object.entries(data ?? {}).map(([k, v]) => `${k}=${truncate(valueText(v), 60)}`);
  return truncate(parts.join(' '), max);
}

/** The cells of an event: SEQ TIME TYPE SUBJECT SOURCE DATA. */
export function eventRow(e: eventsV1.Event): string[] {
  return [String(e.sequence), iso(e.time), e.type, e.subject || '-', e.source || '-', dataSummary(e.data)];
}

/** Column widths of a streamed line: long enough for most values; a longer one pushes the rest. */
const LINE_WIDTHS = [6, 24, 22, 31, 8];

/** One event as `aether events watch` prints it: `seq  time  type  subject  source  key=value…`. */
export function eventLine(e: eventsV1.Event): string {
  const cells = eventRow(e);
  return cells
    .map((c, i) => (i === 0 ? c.padStart(LINE_WIDTHS[0]!) : c.padEnd(LINE_WIDTHS[i] ?? 0)))
    .join('  ')
    .trimEnd();
}

const GAP_REASONS: Partial<Record<eventsV1.GapReason, string>> = {
  [GapReason.GAP_REASON_RETENTION]: 'removed by retention before they could be read',
  [GapReason.GAP_REASON_SLOW_SUBSCRIBER]: 'slow subscriber: this watch fell behind',
};

/** A gap notice: `-- missed events 120..340 (slow subscriber: …) --`. */
export function gapLine(g: eventsV1.Gap): string {
  const range =
    g.firstMissedSequence === g.lastMissedSequence
      ? `event ${g.firstMissedSequence}`
      : `events ${g.firstMissedSequence}..${g.lastMissedSequence}`;
  const why = GAP_REASONS[g.reason] ?? eventsV1.gapReasonToJSON(g.reason);
  return `-- missed ${range} (${why}) --`;
}

/** The full view of `aether events get`. */
export function eventDetail(e: eventsV1.Event, now = Date.now()): string {
  const at = e.time ? dateFromTimestamp(e.time).getTime() : undefined;
  const data = e.data && Object.keys(e.data).length > 0 ? JSON.stringify(e.data, null, 2) : undefined;
  const head = fields([
    ['Name', e.name],
    ['Type', e.type],
    ['Time', at === undefined ? '-' : `${iso(e.time)} (${formatAge(now - at)} ago)`],
    ['Source', e.source || '-'],
    ['Subject', e.subject || '-'],
    ['Actor', e.actor || '-'],
    ['Job', e.jobId || undefined],
    ['Intent', e.intentId || undefined],
    ['Request', e.requestId || undefined],
    ['Data', data === undefined ? '-' : undefined],
  ]);
  return data === undefined ? head : `${head}Data:\n${data.replace(/^/gm, '  ')}\n`;
}

type Start = eventsV1.SubscribeRequest['start'];
type Shown = { $case: 'event'; value: eventsV1.Event } | { $case: 'gap'; value: eventsV1.Gap };

/**
 * Where a watch stands in the stream: the start of its next subscription and which messages are new.
 * After the first event, gap or heartbeat it knows the next sequence, so a resubscription starts there
 * and an event it has already shown (a resume that overlaps) is dropped, never printed twice.
 */
export class EventCursor {
  private next: bigint | undefined;

  constructor(private readonly initial: Start) {
    if (initial?.$case === 'startSequence') this.next = initial.value;
  }

  /** The `start` of the next subscription. */
  get start(): Start {
    return this.next === undefined ? this.initial : { $case: 'startSequence', value: this.next };
  }

  /** The next sequence to deliver, once known. */
  get nextSequence(): bigint | undefined {
    return this.next;
  }

  /** A stream message: the event or gap to show (a gap trimmed to what is new), else undefined. */
  accept(m: eventsV1.SubscribeResponse): Shown | undefined {
    const msg = m.message;
    if (msg?.$case === 'event') {
      if (this.next !== undefined && msg.value.sequence < this.next) return undefined;
      this.next = msg.value.sequence + 1n;
      return msg;
    }
    if (msg?.$case === 'gap') {
      const g = msg.value;
      if (this.next !== undefined && g.lastMissedSequence < this.next) return undefined;
      const first =
        this.next !== undefined && g.firstMissedSequence < this.next ? this.next : g.firstMissedSequence;
      this.next = g.lastMissedSequence + 1n;
      return { $case: 'gap', value: { ...g, firstMissedSequence: first } };
    }
    if (msg?.$case === 'heartbeat') {
      const after = msg.value.deliveredSequence + 1n;
      if (this.next === undefined || after > this.next) this.next = after;
    }
    return undefined;
  }

  /**
   * After the stream failed: true when a watch should subscribe again (aetherd restarting or
   * unreachable, the stream ended, or it was dropped as too slow), false when the error is final.
   * For a slow subscriber, the `resume_sequence` aetherd names is used where it is earlier than ours
   * (never later: that could skip events silently; an overlap is dropped by {@link accept}).
   */
  resumeAfter(err: unknown): boolean {
    if (!(err instanceof RpcError)) return false;
    if (err.codeName === 'UNAVAILABLE') return true;
    if (err.codeName !== 'RESOURCE_EXHAUSTED' || err.reason !== 'SUBSCRIBER_TOO_SLOW') return false;
    const named = err.metadata['resume_sequence'];
    if (named !== undefined && /^\d+$/.test(named) && BigInt(named) > 0n) {
      const seq = BigInt(named);
      if (this.next === undefined || seq < this.next) this.next = seq;
    }
    return true;
  }
}

/** Reconnection delays: 0.2 s, doubling, at most 5 s. */
export function nextBackoffMs(previousMs: number | undefined): number {
  return previousMs === undefined ? 200 : Math.min(5_000, previousMs * 2);
}
