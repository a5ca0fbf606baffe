/**
 * The "real alternative" of the events benchmark, forked by main.ts: a bare @grpc/grpc-js server on a
 * Unix socket with mTLS (client certificates required) serving the generated EventService definition,
 * with no persistence, no pipeline (no principal, policy, audit or access log) and no validation.
 * EmitEvent and BatchEmitEvents give each event a sequence number and the same fields aetherd fills,
 * encode its SubscribeResponse once and push it to every live subscriber; Subscribe streams live events
 * only (`start_now`) with the same bound per subscriber as aetherd (a gap message past it).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import {
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import { eventsV1, timestampFromDate } from '@aether/proto';
import type { BareServerSpec, FromBareServer, ToBareServer } from './protocol';

/** The identity every event is attributed to (aetherd reads it from the client certificate). */
const ACTOR = 'spiffe://aether.local/admin';

function send(message: FromBareServer): void {
  process.send?.(message);
}

interface Recorded {
  event: eventsV1.Event;
  encoded: Buffer;
}

/** One live subscriber: a bounded queue of encoded messages, written while the transport takes them. */
class BareSubscriber {
  private readonly queue: Buffer[] = [];
  private head = 0;
  private waiting = false;
  private gapFirst = 0;
  private gapLast = 0;
  private written = 0;

  constructor(
    private readonly call: ServerWritableStream<
      eventsV1.SubscribeRequest,
      eventsV1.SubscribeResponse | Buffer
    >,
    private readonly bound: number,
  ) {}

  offer(events: Recorded[]): void {
    for (const r of events) {
      const seq = Number(r.event.sequence);
      if (this.queue.length - this.head >= this.bound) {
        // Too far behind: drop what waits and report it, as aetherd does (OVERFLOW_POLICY_GAP).
        this.queue.length = 0;
        this.head = 0;
        if (this.gapFirst === 0) this.gapFirst = this.written + 1;
        this.gapLast = seq;
        continue;
      }
      this.queue.push(r.encoded);
    }
    this.pump();
  }

  private pump(): void {
    if (this.waiting) return;
    if (this.gapFirst !== 0) {
      const gap = eventsV1.SubscribeResponse.encode({
        message: {
          $case: 'gap',
          value: {
            firstMissedSequence: BigInt(this.gapFirst),
            lastMissedSequence: BigInt(this.gapLast),
            reason: eventsV1.GapReason.GAP_REASON_SLOW_SUBSCRIBER,
          },
        },
      }).finish();
      this.written = this.gapLast;
      this.gapFirst = 0;
      if (!this.call.write(Buffer.from(gap))) return this.wait();
    }
    while (this.head < this.queue.length) {
      const buf = this.queue[this.head++]!;
      this.written++;
      if (this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      }
      if (!this.call.write(buf)) return this.wait();
    }
    if (this.head > 1024) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private wait(): void {
    this.waiting = true;
    this.call.once('drain', () => {
      this.waiting = false;
      this.pump();
    });
  }
}

const subscribers = new Set<BareSubscriber>();
let nextSeq = 1;
let bound = 10_000;

function record(req: eventsV1.EmitEventRequest, requestId: string, timeMs: number): Recorded {
  const e = req.event!;
  const seq = nextSeq++;
  const event: eventsV1.Event = {
    name: `events/${seq}`,
    sequence: BigInt(seq),
    type: e.type,
    source: e.source || ACTOR,
    subject: e.subject,
    data: e.data,
    intentId: e.intentId,
    jobId: e.jobId,
    time: timestampFromDate(new Date(timeMs)),
    actor: ACTOR,
    requestId,
  };
  const encoded = Buffer.from(
    eventsV1.SubscribeResponse.encode({ message: { $case: 'event', value: event } }).finish(),
  );
  return { event, encoded };
}

function publish(events: Recorded[]): void {
  for (const s of subscribers) s.offer(events);
}

/** As aetherd's definition: Subscribe also takes an already-encoded response. */
const definition = {
  ...eventsV1.EventServiceService,
  subscribe: {
    ...eventsV1.EventServiceService.subscribe,
    responseSerialize: (value: eventsV1.SubscribeResponse | Buffer): Buffer =>
      Buffer.isBuffer(value) ? value : Buffer.from(eventsV1.SubscribeResponse.encode(value).finish()),
  },
} as const;

async function start(spec: BareServerSpec): Promise<Server> {
  bound = spec.subscriberBuffer;
  // The message limits aetherd's server sets (libs/rpc channel-options.ts).
  const server = new Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
  });
  server.addService(definition, {
    emitEvent: (
      call: ServerUnaryCall<eventsV1.EmitEventRequest, eventsV1.EmitEventResponse>,
      callback: sendUnaryData<eventsV1.EmitEventResponse>,
    ) => {
      const r = record(call.request, randomUUID(), Date.now());
      publish([r]);
      callback(null, { event: r.event });
    },
    batchEmitEvents: (
      call: ServerUnaryCall<eventsV1.BatchEmitEventsRequest, eventsV1.BatchEmitEventsResponse>,
      callback: sendUnaryData<eventsV1.BatchEmitEventsResponse>,
    ) => {
      const requestId = randomUUID();
      const timeMs = Date.now();
      const recorded = call.request.requests.map((req) => record(req, requestId, timeMs));
      publish(recorded);
      callback(null, { events: recorded.map((r) => r.event) });
    },
    subscribe: (
      call: ServerWritableStream<eventsV1.SubscribeRequest, eventsV1.SubscribeResponse | Buffer>,
    ) => {
      const s = new BareSubscriber(call, bound);
      subscribers.add(s);
      const done = (): void => {
        subscribers.delete(s);
      };
      call.on('cancelled', done);
      call.on('close', done);
      call.on('error', done);
    },
  });
  await rm(spec.socketPath, { force: true });
  const credentials = ServerCredentials.createSsl(
    readFileSync(spec.caFile),
    [{ private_key: readFileSync(spec.keyFile), cert_chain: readFileSync(spec.certFile) }],
    true,
  );
  await new Promise<number>((resolve, reject) =>
    server.bindAsync(`unix://${spec.socketPath}`, credentials, (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
  return server;
}

let server: Server | undefined;

process.on('message', (m: ToBareServer) => {
  switch (m.type) {
    case 'start':
      start(m.spec).then(
        (s) => {
          server = s;
          send({ type: 'ready' });
        },
        (err: unknown) => send({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'subscribers':
      send({ type: 'subscribers', count: subscribers.size });
      break;
    case 'stop':
      server?.forceShutdown();
      setTimeout(() => process.exit(0), 50);
      break;
  }
});

process.on('disconnect', () => process.exit(0));

if (!process.send) {
  console.error('tools/bench/events/bare-server.js is started by tools/bench/events/main.js, not on its own');
  process.exit(2);
}
