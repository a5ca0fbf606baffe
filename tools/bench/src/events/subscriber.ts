/**
 * A subscriber child of the events benchmark, forked by main.ts: opens `count` Subscribe streams, each on
 * its own connection (as separate programs would), with the generated client (every message decoded, as
 * any client does), and measures publish-to-deliver latency from the publish time each event carries in
 * `data.t` (the parent's wall clock, corrected by the offset the parent measured to this process).
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { eventsV1 } from '@aether/proto';
import { createClient } from '@aether/rpc';
import {
  EVENT_PREFIX,
  Histogram,
  now,
  type FromSubscriber,
  type SubscribeSpec,
  type SubscriberTotals,
  type ToSubscriber,
} from './protocol';

function send(message: FromSubscriber): void {
  process.send?.(message);
}

interface Sub {
  client: eventsV1.EventServiceClient;
  stream?: ClientReadableStream<eventsV1.SubscribeResponse>;
  received: number;
  lastSeq: number;
}

const subs: Sub[] = [];
const totals: SubscriberTotals = { received: [], gaps: 0, gapSequences: 0, outOfOrder: 0, errors: 0 };
let measuring = false;
let offsetMs = 0;
let hist = new Histogram();
let windowReceived = 0;
let windowStart = 0;
let closing = false;
let lastProgress = -1;

function onMessage(sub: Sub, m: eventsV1.SubscribeResponse): void {
  const msg = m.message;
  if (msg?.$case === 'event') {
    const e = msg.value;
    const seq = Number(e.sequence);
    if (seq <= sub.lastSeq) totals.outOfOrder++;
    sub.lastSeq = seq;
    sub.received++;
    if (measuring) {
      windowReceived++;
      const t = (e.data as { t?: unknown } | undefined)?.t;
      if (typeof t === 'number') hist.add(now() - offsetMs - t);
    }
  } else if (msg?.$case === 'gap') {
    totals.gaps++;
    totals.gapSequences += Number(msg.value.lastMissedSequence - msg.value.firstMissedSequence) + 1;
  }
}

async function subscribe(spec: SubscribeSpec): Promise<void> {
  const t0 = now();
  // Connect every client first (a TLS handshake each), so that the streams open together. Clients
  // with the same options share one connection through grpc-js's global subchannel pool, unless each
  // has a pool of its own.
  const shared = spec.sharedConnection ? createClient(eventsV1.EventServiceClient, spec.endpoint) : undefined;
  for (let i = 0; i < spec.count; i++) {
    const client =
      shared ??
      createClient(eventsV1.EventServiceClient, spec.endpoint, {
        channel: { 'grpc.use_local_subchannel_pool': 1 },
      });
    subs.push({ client, received: 0, lastSeq: 0 });
  }
  await Promise.all(
    subs.map(
      (s) =>
        new Promise<void>((resolve, reject) =>
          s.client.waitForReady(Date.now() + 30_000, (err) => (err ? reject(err) : resolve())),
        ),
    ),
  );
  const request = eventsV1.SubscribeRequest.fromPartial({
    filter: { typePrefixes: [EVENT_PREFIX] },
    start:
      spec.startSequence !== undefined
        ? { $case: 'startSequence', value: BigInt(spec.startSequence) }
        : { $case: 'startNow', value: true },
  });
  for (const s of subs) {
    const stream = s.client.subscribe(request);
    s.stream = stream;
    stream.on('data', (m: eventsV1.SubscribeResponse) => onMessage(s, m));
    stream.on('error', (err: Error) => {
      if (closing) return;
      totals.errors++;
      totals.firstError ??= err.message;
    });
  }
  send({ type: 'subscribed', connectMs: now() - t0 });
  // Progress for the publisher's lag bound: the slowest subscription's count.
  setInterval(() => {
    let min = Infinity;
    for (const s of subs) if (s.received < min) min = s.received;
    if (min !== lastProgress) {
      lastProgress = min;
      send({ type: 'progress', minReceived: min });
    }
  }, 5).unref();
}

process.on('message', (m: ToSubscriber) => {
  switch (m.type) {
    case 'subscribe':
      subscribe(m.spec).catch((err: unknown) =>
        send({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'clock':
      send({ type: 'clock', t0: m.t0, child: now() });
      break;
    case 'measure':
      offsetMs = m.offsetMs;
      hist = new Histogram();
      windowReceived = 0;
      windowStart = now();
      measuring = true;
      break;
    case 'stop-measure':
      measuring = false;
      send({
        type: 'measured',
        received: windowReceived,
        elapsedMs: now() - windowStart,
        latency: hist.toJSON(),
      });
      break;
    case 'totals':
      send({ type: 'totals', totals: { ...totals, received: subs.map((s) => s.received) } });
      break;
    case 'close':
      closing = true;
      for (const s of subs) s.stream?.cancel();
      for (const s of subs) s.client.close();
      setTimeout(() => process.exit(0), 50);
      break;
  }
});

// The parent went away (crashed or killed): do not linger.
process.on('disconnect', () => process.exit(0));

if (!process.send) {
  console.error('tools/bench/events/subscriber.js is started by tools/bench/events/main.js, not on its own');
  process.exit(2);
}
