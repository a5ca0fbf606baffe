import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultEventsConfig, type EventsConfig } from '@aether/config';
import { createLogger } from '@aether/log';
import { eventsV1 } from '@aether/proto';
import { RpcError } from '@aether/rpc';
import { EventHub } from './event-hub';
import { EventStore, type EventDraft } from './event-store';
import { compileFilter } from './event-validation';

const { GapReason, OverflowPolicy } = eventsV1;
const log = createLogger({ service: 'test', level: 'silent' });

const draft = (type: string, over: Partial<EventDraft> = {}): EventDraft => ({
  type,
  source: 'test',
  subject: '',
  dataJson: null,
  intentId: '',
  jobId: '',
  actor: 'spiffe://aether.local/admin',
  requestId: 'r',
  idempotencyKey: '',
  requestHash: '',
  ...over,
});

const decode = (b: Buffer): eventsV1.SubscribeResponse => eventsV1.SubscribeResponse.decode(b);

/** A transport the test controls: messages pile up while it is "blocked", like a client that stops reading. */
class Transport {
  readonly got: eventsV1.SubscribeResponse[] = [];
  private blocked: (() => void)[] | undefined;
  block(): void {
    this.blocked ??= [];
  }
  unblock(): void {
    const waiting = this.blocked ?? [];
    this.blocked = undefined;
    for (const w of waiting) w();
  }
  readonly send = (m: Buffer): Promise<void> => {
    this.got.push(decode(m));
    if (!this.blocked) return Promise.resolve();
    return new Promise((resolve) => this.blocked!.push(resolve));
  };
  seqs(): number[] {
    return this.got.flatMap((m) => (m.message?.$case === 'event' ? [Number(m.message.value.sequence)] : []));
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await tick();
  }
}

describe('event store', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'events-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('assigns consecutive sequences that are never reused, also after retention removed everything and a reopen', () => {
    const s = EventStore.open(dir);
    const a = s.transaction(() => s.appendAll([draft('a.b'), draft('a.c')], 1000));
    expect(a.map((e) => e.seq)).toEqual([1, 2]);
    expect(s.prune(10_000, 0, 1, 100)).toBe(1);
    expect([s.oldest, s.head, s.stored]).toEqual([2, 2, 1]);
    // Remove the rest by age.
    expect(s.prune(10_000, 5000, 0, 100)).toBe(1);
    expect([s.oldest, s.head, s.stored]).toEqual([3, 2, 0]);
    s.close();
    const again = EventStore.open(dir);
    expect([again.oldest, again.head]).toEqual([3, 2]);
    const b = again.transaction(() => again.appendAll([draft('a.d')], 900));
    // The clock stepped back: the time repeats the last one instead of going backwards.
    expect(b[0]).toMatchObject({ seq: 3, timeMs: 1000 });
    again.close();
  });

  it('takes back the sequences of a batch that failed', () => {
    const s = EventStore.open(dir);
    s.transaction(() => s.appendAll([draft('a.b', { idempotencyKey: 'k', requestHash: 'h1' })], 1));
    expect(() =>
      s.transaction(() =>
        s.appendAll([draft('a.c'), draft('a.b', { idempotencyKey: 'k', requestHash: 'h2' })], 2),
      ),
    ).toThrow(/idempotency key k/);
    expect(s.head).toBe(1);
    // A repeat gives back the first event and records nothing.
    const again = s.transaction(() =>
      s.appendAll([draft('a.b', { idempotencyKey: 'k', requestHash: 'h1' })], 3),
    );
    expect(again[0]!.seq).toBe(1);
    expect(s.transaction(() => s.appendAll([draft('a.e')], 4))[0]!.seq).toBe(2);
    s.close();
  });

  it('knows which removed range a start time falls in', () => {
    const s = EventStore.open(dir);
    for (let t = 1; t <= 10; t++) s.transaction(() => s.appendAll([draft('a.b')], t * 1000));
    s.prune(20_000, 0, 7, 100); // removes 1..3 (times 1000..3000)
    s.prune(20_000, 0, 5, 100); // removes 4..5 (times 4000..5000)
    expect(s.oldest).toBe(6);
    expect(s.prunedSince(4500)).toBe(4);
    expect(s.prunedSince(500)).toBe(1);
    expect(s.prunedSince(5500)).toBeUndefined();
    expect(s.firstAtOrAfter(5500)).toBe(6);
    expect(s.firstAtOrAfter(99_999)).toBeUndefined();
    s.close();
  });
});

describe('event filters', () => {
  const e = (type: string, over: Partial<EventDraft> = {}) => ({ seq: 1, timeMs: 0, ...draft(type, over) });
  it('match type prefixes on whole segments, and AND the other fields', () => {
    const f = compileFilter(
      eventsV1.EventFilter.fromPartial({ typePrefixes: ['job.'], sources: ['aetherd'] }),
    );
    expect(f.matches(e('job.state_changed', { source: 'aetherd' }))).toBe(true);
    expect(f.matches(e('jobs.x', { source: 'aetherd' }))).toBe(false);
    expect(f.matches(e('job.state_changed', { source: 'cli' }))).toBe(false);
    expect(compileFilter(undefined).all).toBe(true);
  });
});

describe('event hub', () => {
  let dir: string;
  let hub: EventHub;
  const config = (over: Partial<EventsConfig> = {}): EventsConfig => ({
    ...defaultEventsConfig(),
    subscriberBuffer: 16,
    ...over,
  });
  const open = (over: Partial<EventsConfig> = {}): EventHub =>
    new EventHub(EventStore.open(dir), config(over), log, 'spiffe://aether.local/aetherd');
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'events-'))));
  afterEach(async () => {
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const subscribe = (
    t: Transport,
    start: number,
    over: Partial<{ overflow: eventsV1.OverflowPolicy; filter: eventsV1.EventFilter }> = {},
  ): { done: Promise<void>; cancel: () => void } => {
    const ac = new AbortController();
    const done = hub.subscribe(
      {
        filter: compileFilter(over.filter),
        start,
        overflow: over.overflow ?? OverflowPolicy.OVERFLOW_POLICY_GAP,
        heartbeatMs: 60_000,
        signal: ac.signal,
      },
      t.send,
    );
    return { done, cancel: () => ac.abort() };
  };

  it('delivers what was stored, then live, each event once and in order', async () => {
    hub = open();
    await hub.append([draft('a.one'), draft('a.two')]);
    const t = new Transport();
    const sub = subscribe(t, 1);
    await until(() => t.seqs().length === 2);
    await hub.append([draft('a.three')]);
    await until(() => t.seqs().length === 3);
    expect(t.seqs()).toEqual([1, 2, 3]);
    sub.cancel();
    await sub.done;
    expect(hub.metrics()).toMatchObject({ deliveredTotal: 3n, subscribers: 0n, emittedTotal: 3n });
  });

  it('reports exactly what a slow subscriber missed, and keeps at most the bound for it', async () => {
    hub = open();
    const t = new Transport();
    const sub = subscribe(t, 1);
    await tick();
    t.block();
    await hub.append([draft('a.first')]); // handed to the transport, which now blocks
    await until(() => t.got.length === 1);
    for (let i = 0; i < 5; i++) await hub.append(Array.from({ length: 20 }, () => draft('a.bulk')));
    expect(Number(hub.metrics().bufferedEvents)).toBeLessThanOrEqual(16);
    t.unblock();
    await until(() => t.got.some((m) => m.message?.$case === 'gap') && t.seqs().at(-1) === 101);
    const covered: number[] = [];
    for (const m of t.got) {
      if (m.message?.$case === 'event') covered.push(Number(m.message.value.sequence));
      if (m.message?.$case === 'gap') {
        expect(m.message.value.reason).toBe(GapReason.GAP_REASON_SLOW_SUBSCRIBER);
        for (
          let s = Number(m.message.value.firstMissedSequence);
          s <= Number(m.message.value.lastMissedSequence);
          s++
        )
          covered.push(s);
      }
    }
    expect(covered).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
    expect(hub.counters.gaps).toBeGreaterThan(0);
    sub.cancel();
    await sub.done;
  });

  it('disconnects a slow subscriber that asked for it, with the first sequence it did not get', async () => {
    hub = open();
    const t = new Transport();
    const sub = subscribe(t, 1, { overflow: OverflowPolicy.OVERFLOW_POLICY_DISCONNECT });
    await tick();
    t.block();
    await hub.append([draft('a.first')]);
    await until(() => t.got.length === 1);
    await hub.append(Array.from({ length: 40 }, () => draft('a.bulk')));
    t.unblock();
    const err = await sub.done.then(
      () => undefined,
      (e: RpcError) => e,
    );
    expect(err).toMatchObject({ reason: 'SUBSCRIBER_TOO_SLOW', metadata: { resume_sequence: '2' } });
    expect(hub.counters.slowDisconnects).toBe(1);
  });

  it('reports a start older than retention as a gap, then continues from the oldest', async () => {
    hub = open({ maxEvents: 5 });
    for (let i = 0; i < 10; i++) await hub.append([draft('a.b')]);
    hub.store.prune(Date.now(), 0, 5, 100);
    const t = new Transport();
    const sub = subscribe(t, 2, { filter: eventsV1.EventFilter.fromPartial({ types: ['a.b'] }) });
    await until(() => t.seqs().length === 5);
    expect(t.got[0]!.message).toEqual({
      $case: 'gap',
      value: { firstMissedSequence: 2n, lastMissedSequence: 5n, reason: GapReason.GAP_REASON_RETENTION },
    });
    expect(t.seqs()).toEqual([6, 7, 8, 9, 10]);
    sub.cancel();
    await sub.done;
  });

  it('ends subscriptions with SHUTTING_DOWN and where to resume', async () => {
    hub = open();
    await hub.append([draft('a.b'), draft('a.c')]);
    const t = new Transport();
    const sub = subscribe(t, 1);
    await until(() => t.seqs().length === 2);
    hub.shutdown();
    const err = await sub.done.then(
      () => undefined,
      (e: RpcError) => e,
    );
    expect(err).toBeInstanceOf(RpcError);
    expect(err).toMatchObject({ reason: 'SHUTTING_DOWN', metadata: { resume_sequence: '3' } });
  });
});
