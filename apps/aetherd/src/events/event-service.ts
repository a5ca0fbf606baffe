import { status as Status } from '@grpc/grpc-js';
import type { EventsConfig } from '@aether/config';
import { dateFromTimestamp, eventsV1, msFromDuration } from '@aether/proto';
import {
  RpcError,
  Violations,
  serverStream,
  unary,
  type CallContext,
  type ResourceRef,
  type ServiceHandlers,
} from '@aether/rpc';
import { invalidFields } from '@aether/rpc';
import { eventToProto, type EventHub } from './event-hub';
import type { EventDraft } from './event-store';
import {
  MAX_BATCH,
  checkEmit,
  checkFilter,
  compileFilter,
  emptyProblems,
  namespaceOf,
  requestHash,
  throwEmitProblems,
} from './event-validation';

const { GapReason, OverflowPolicy } = eventsV1;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;
const DEFAULT_HEARTBEAT_MS = 15_000;
const MIN_HEARTBEAT_MS = 1_000;
const MAX_HEARTBEAT_MS = 5 * 60_000;
const NAME = /^events\/([1-9]\d{0,15})$/;

/**
 * The EventService definition with one change: Subscribe also accepts an already-encoded response, so
 * an event going to a hundred subscribers is serialized once, not a hundred times.
 */
export const eventServiceDefinition = {
  ...eventsV1.EventServiceService,
  subscribe: {
    ...eventsV1.EventServiceService.subscribe,
    responseSerialize: (value: eventsV1.SubscribeResponse | Buffer): Buffer =>
      Buffer.isBuffer(value) ? value : Buffer.from(eventsV1.SubscribeResponse.encode(value).finish()),
  },
} as const;

/** The Event resource policy decides on: every type and namespace being emitted. */
function eventResource(events: (eventsV1.Event | undefined)[]): ResourceRef {
  const types = [...new Set(events.map((e) => e?.type ?? ''))];
  return {
    type: 'event',
    id: 'new',
    attributes: { types, namespaces: [...new Set(types.map(namespaceOf))] },
  };
}

function draftOf(req: eventsV1.EmitEventRequest, ctx: CallContext): EventDraft {
  const e = req.event!;
  return {
    type: e.type,
    source: e.source || ctx.principal.id,
    subject: e.subject,
    dataJson: e.data === undefined ? null : JSON.stringify(e.data),
    intentId: e.intentId || ctx.intentId || '',
    jobId: e.jobId || ctx.jobId || '',
    actor: ctx.principal.id,
    requestId: ctx.requestId,
    idempotencyKey: req.idempotencyKey,
    requestHash: req.idempotencyKey ? requestHash(e) : '',
  };
}

function seqOf(name: string, field = 'name'): number {
  const m = NAME.exec(name);
  if (!m)
    throw new RpcError(
      Status.INVALID_ARGUMENT,
      'INVALID_NAME',
      `${field}: ${JSON.stringify(name.slice(0, 100))} is not an event name (events/<sequence>)`,
      { metadata: { field }, fieldViolations: [{ field, description: 'must be events/<sequence>' }] },
    );
  return Number(m[1]);
}

const throwIf = (v: Violations): void => {
  if (v.all.length > 0) throw invalidFields(v.all);
};

/** EventService: emit (one or a batch), get, list, and subscribe with resume. */
export function eventServiceHandlers(
  hub: EventHub,
  config: EventsConfig,
): ServiceHandlers<typeof eventsV1.EventServiceService> {
  const store = hub.store;
  return {
    emitEvent: unary<eventsV1.EmitEventRequest, eventsV1.EmitEventResponse>({
      mutates: true,
      validate: (req) => {
        const p = emptyProblems();
        checkEmit(req, '', config.maxDataBytes, p);
        throwEmitProblems(p);
      },
      resource: (req) => eventResource([req.event]),
      handle: async (req, ctx) => {
        const [event] = await hub.append([draftOf(req, ctx)]);
        return { event: eventToProto(event!) };
      },
    }),

    batchEmitEvents: unary<eventsV1.BatchEmitEventsRequest, eventsV1.BatchEmitEventsResponse>({
      mutates: true,
      validate: (req) => {
        if (req.requests.length === 0 || req.requests.length > MAX_BATCH)
          throw invalidFields([{ field: 'requests', description: `must hold 1 to ${MAX_BATCH} events` }]);
        const p = emptyProblems();
        req.requests.forEach((r, i) => checkEmit(r, `requests[${i}].`, config.maxDataBytes, p));
        throwEmitProblems(p);
      },
      resource: (req) => eventResource(req.requests.map((r) => r.event)),
      handle: async (req, ctx) => {
        const events = await hub.append(req.requests.map((r) => draftOf(r, ctx)));
        return { events: events.map(eventToProto) };
      },
    }),

    getEvent: unary<eventsV1.GetEventRequest, eventsV1.GetEventResponse>({
      validate: (req) => void seqOf(req.name),
      handle: (req) => {
        const e = store.get(seqOf(req.name));
        if (!e)
          throw new RpcError(
            Status.NOT_FOUND,
            'EVENT_NOT_FOUND',
            `${req.name} not found (never recorded, or removed by retention: the oldest stored is ${store.oldest})`,
            { metadata: { resource: req.name } },
          );
        return Promise.resolve({ event: eventToProto(e) });
      },
    }),

    listEvents: unary<eventsV1.ListEventsRequest, eventsV1.ListEventsResponse>({
      validate: (req) => {
        const v = new Violations();
        v.check(req.pageSize >= 0, 'page_size', 'must not be negative');
        v.check(
          req.pageToken === '' || /^[1-9]\d{0,15}$/.test(req.pageToken),
          'page_token',
          'is not a token this server issued',
        );
        checkFilter(v, req.filter, 'filter');
        if (req.startTime && req.endTime)
          v.check(
            dateFromTimestamp(req.startTime) <= dateFromTimestamp(req.endTime),
            'end_time',
            'must not be before start_time',
          );
        throwIf(v);
      },
      handle: (req) => {
        const pageSize = Math.min(req.pageSize || DEFAULT_PAGE, MAX_PAGE);
        let from = Math.max(
          Number(req.startSequence),
          req.pageToken ? Number(req.pageToken) : 1,
          store.oldest,
        );
        // Event times never decrease with the sequence, so a time range is a sequence range.
        if (req.startTime) from = Math.max(from, firstAt(dateFromTimestamp(req.startTime).getTime()));
        let to = store.head;
        if (req.endTime) to = Math.min(to, firstAt(dateFromTimestamp(req.endTime).getTime()) - 1);
        const events = store.read(from, to, compileFilter(req.filter).sql, pageSize);
        const last = events[events.length - 1];
        const more = events.length === pageSize && last !== undefined && last.seq < to;
        return Promise.resolve({
          events: events.map(eventToProto),
          nextPageToken: more ? String(last.seq + 1) : '',
          headSequence: BigInt(store.head),
          oldestSequence: BigInt(store.oldest),
        });
      },
    }),

    subscribe: serverStream<eventsV1.SubscribeRequest, eventsV1.SubscribeResponse | Buffer>({
      validate: (req) => {
        const v = new Violations();
        checkFilter(v, req.filter, 'filter');
        const start = req.start;
        if (start?.$case === 'startSequence')
          v.check(start.value > 0n, 'start_sequence', 'must be at least 1');
        if (start?.$case === 'startNow') v.check(start.value, 'start_now', 'must be true when set');
        if (req.heartbeatInterval) {
          const ms = msFromDuration(req.heartbeatInterval);
          v.check(
            ms >= MIN_HEARTBEAT_MS && ms <= MAX_HEARTBEAT_MS,
            'heartbeat_interval',
            'must be between 1 second and 5 minutes',
          );
        }
        v.check(
          req.overflow >= OverflowPolicy.OVERFLOW_POLICY_UNSPECIFIED &&
            req.overflow <= OverflowPolicy.OVERFLOW_POLICY_DISCONNECT,
          'overflow',
          'is not an OverflowPolicy value',
        );
        throwIf(v);
      },
      handle: async (req, ctx, send) => {
        const head = store.head;
        let start = head + 1;
        let initialGap: { first: number; last: number; reason: eventsV1.GapReason } | undefined;
        const s = req.start;
        if (s?.$case === 'startSequence') {
          if (s.value > BigInt(head + 1))
            throw new RpcError(
              Status.OUT_OF_RANGE,
              'SEQUENCE_AHEAD_OF_HEAD',
              `start_sequence ${s.value} is ahead of the stream: the head is ${head}, so at most ${head + 1}`,
              { metadata: { head_sequence: String(head) } },
            );
          start = Number(s.value);
        } else if (s?.$case === 'startTime') {
          const t = dateFromTimestamp(s.value).getTime();
          start = firstAt(t);
          const prunedFrom = store.prunedSince(t);
          if (prunedFrom !== undefined && prunedFrom < store.oldest)
            initialGap = {
              first: prunedFrom,
              last: store.oldest - 1,
              reason: GapReason.GAP_REASON_RETENTION,
            };
          start = Math.max(start, store.oldest);
        }
        await hub.subscribe(
          {
            filter: compileFilter(req.filter),
            start,
            ...(initialGap ? { initialGap } : {}),
            overflow:
              req.overflow === OverflowPolicy.OVERFLOW_POLICY_DISCONNECT
                ? OverflowPolicy.OVERFLOW_POLICY_DISCONNECT
                : OverflowPolicy.OVERFLOW_POLICY_GAP,
            heartbeatMs: req.heartbeatInterval ? msFromDuration(req.heartbeatInterval) : DEFAULT_HEARTBEAT_MS,
            signal: ctx.signal,
          },
          send,
        );
      },
    }),
  };

  /** The first sequence recorded at or after `timeMs` (the head + 1 when none is). */
  function firstAt(timeMs: number): number {
    return store.firstAtOrAfter(timeMs) ?? store.head + 1;
  }
}
