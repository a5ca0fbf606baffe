import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { AetherClient } from '@aether/client';
import {
  durationFromMs,
  eventsV1,
  governanceV1,
  memoryV1,
  metricsV1,
  timestampFromDate,
} from '@aether/proto';
import { serverStreamCall, type RpcError } from '@aether/rpc';
import { Stack } from '../src';
import { run, spec } from './jobs-helpers';

const { GapReason, OverflowPolicy } = eventsV1;

const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );

const emit = async (
  c: AetherClient,
  event: Partial<eventsV1.Event>,
  idempotencyKey = '',
): Promise<eventsV1.Event> =>
  (await c.call(c.events, 'emitEvent', eventsV1.EmitEventRequest.fromPartial({ event, idempotencyKey })))
    .event!;

const emitMany = async (
  c: AetherClient,
  n: number,
  type = 'test.bulk',
  data?: Record<string, unknown>,
): Promise<bigint> => {
  let last = 0n;
  for (let done = 0; done < n;) {
    const k = Math.min(1000, n - done);
    const res = await c.call(
      c.events,
      'batchEmitEvents',
      eventsV1.BatchEmitEventsRequest.fromPartial({
        requests: Array.from({ length: k }, (_, i) => ({
          event: { type, subject: `n/${done + i}`, ...(data ? { data } : {}) },
        })),
      }),
    );
    last = res.events[res.events.length - 1]!.sequence;
    done += k;
  }
  return last;
};

const list = async (
  c: AetherClient,
  req: Omit<Partial<eventsV1.ListEventsRequest>, 'filter'> & { filter?: Partial<eventsV1.EventFilter> },
): Promise<eventsV1.Event[]> => {
  const out: eventsV1.Event[] = [];
  let pageToken = '';
  do {
    const res = await c.call(
      c.events,
      'listEvents',
      eventsV1.ListEventsRequest.fromPartial({ ...req, pageToken }),
    );
    out.push(...res.events);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
};

const headOf = async (c: AetherClient): Promise<bigint> =>
  (await c.call(c.events, 'listEvents', eventsV1.ListEventsRequest.fromPartial({ pageSize: 1 })))
    .headSequence;

const subscribe = (
  c: AetherClient,
  req: Partial<eventsV1.SubscribeRequest>,
  signal?: AbortSignal,
): AsyncGenerator<eventsV1.SubscribeResponse> =>
  serverStreamCall(c.events.subscribe.bind(c.events), eventsV1.SubscribeRequest.fromPartial(req), {
    ...(signal ? { signal } : {}),
  });

/** Reads stream messages until `done` says so; returns what was read. */
async function take(
  stream: AsyncGenerator<eventsV1.SubscribeResponse>,
  done: (got: eventsV1.SubscribeResponse[]) => boolean,
): Promise<eventsV1.SubscribeResponse[]> {
  const got: eventsV1.SubscribeResponse[] = [];
  if (done(got)) return got;
  for await (const m of stream) {
    got.push(m);
    if (done(got)) break;
  }
  return got;
}

async function nextMessage(
  stream: AsyncGenerator<eventsV1.SubscribeResponse>,
): Promise<eventsV1.SubscribeResponse> {
  const r = await stream.next();
  if (r.done) throw new Error('the stream ended');
  return r.value;
}

const eventsOf = (ms: eventsV1.SubscribeResponse[]): eventsV1.Event[] =>
  ms.flatMap((m) => (m.message?.$case === 'event' ? [m.message.value] : []));
const seqs = (ms: eventsV1.SubscribeResponse[]): number[] => eventsOf(ms).map((e) => Number(e.sequence));
const fromSeq = (n: bigint | number): Partial<eventsV1.SubscribeRequest> => ({
  start: { $case: 'startSequence', value: BigInt(n) },
});

describe('events: a resumable, persisted stream through aetherd', () => {
  let stack: Stack;
  let admin: AetherClient;

  beforeAll(async () => {
    stack = await new Stack({
      extraIdentities: ['stranger'],
      events: { subscriberBuffer: 1000, maxEvents: 20_000 },
    }).init();
    await stack.start('aetherd');
    admin = stack.client();
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
  });

  it('emits, gets and lists events with their sequence, time, actor and correlation', async () => {
    const e = await emit(admin, {
      type: 'test.hello',
      subject: 'greetings/1',
      data: { who: 'world', n: 3, nested: { ok: true } },
    });
    expect(e).toMatchObject({
      type: 'test.hello',
      subject: 'greetings/1',
      source: 'spiffe://aether.local/admin',
      actor: 'spiffe://aether.local/admin',
      data: { who: 'world', n: 3, nested: { ok: true } },
    });
    expect(e.name).toBe(`events/${e.sequence}`);
    expect(e.requestId).not.toBe('');
    expect((await admin.call(admin.events, 'getEvent', { name: e.name })).event).toEqual(e);

    // Correlation from metadata when the fields are empty.
    const corr = await admin.call(
      admin.events,
      'emitEvent',
      eventsV1.EmitEventRequest.fromPartial({ event: { type: 'test.correlated', source: 'cli' } }),
      { intentId: 'intent-7', jobId: 'job-9' },
    );
    expect(corr.event).toMatchObject({ intentId: 'intent-7', jobId: 'job-9', source: 'cli' });
    expect(corr.event!.sequence).toBe(e.sequence + 1n);

    const listed = await list(admin, { startSequence: e.sequence, filter: { typePrefixes: ['test'] } });
    expect(listed.slice(0, 2).map((x) => x.type)).toEqual(['test.hello', 'test.correlated']);

    // An idempotent repeat returns the first event; reusing the key for another event is refused.
    const a = await emit(admin, { type: 'test.once', subject: 'x' }, 'key-1');
    expect((await emit(admin, { type: 'test.once', subject: 'x' }, 'key-1')).sequence).toBe(a.sequence);
    const reused = await failure(emit(admin, { type: 'test.once', subject: 'y' }, 'key-1'));
    expect(reused).toMatchObject({ code: status.ALREADY_EXISTS, reason: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it('refuses bad input with INVALID_ARGUMENT and records nothing', async () => {
    const head = await headOf(admin);
    const bad = async (event: Partial<eventsV1.Event>): Promise<RpcError> => failure(emit(admin, event));
    for (const type of ['', 'nodots', 'Upper.case', 'a..b', 'a.b-c', `a.${'x'.repeat(130)}`, '1a.b'])
      expect(await bad({ type })).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'INVALID_FIELD' });
    expect(await bad({ type: 'job.state_changed' })).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'EVENT_TYPE_RESERVED',
    });
    const big = await bad({ type: 'test.big', data: { blob: 'x'.repeat(70 * 1024) } });
    expect(big).toMatchObject({ code: status.INVALID_ARGUMENT, reason: 'EVENT_TOO_LARGE' });
    expect(big.metadata['field']).toBe('event.data');
    expect(await bad({ type: 'test.x', source: 'has space' })).toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    expect(await bad({ type: 'test.x', subject: 'é'.repeat(300) })).toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    // A batch is all or none: one bad event refuses the batch, naming it.
    const batch = await failure(
      admin.call(
        admin.events,
        'batchEmitEvents',
        eventsV1.BatchEmitEventsRequest.fromPartial({
          requests: [{ event: { type: 'test.ok' } }, { event: { type: 'test.BAD' } }],
        }),
      ),
    );
    expect(batch).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(batch.metadata['field']).toBe('requests[1].event.type');
    expect(
      await failure(
        admin.call(admin.events, 'batchEmitEvents', eventsV1.BatchEmitEventsRequest.fromPartial({})),
      ),
    ).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await failure(admin.call(admin.events, 'getEvent', { name: 'events/abc' }))).toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'INVALID_NAME',
    });
    expect(await failure(admin.call(admin.events, 'getEvent', { name: 'events/999999999' }))).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'EVENT_NOT_FOUND',
    });
    expect(
      await failure(
        admin.call(admin.events, 'listEvents', eventsV1.ListEventsRequest.fromPartial({ pageToken: 'x' })),
      ),
    ).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(
      await failure(
        take(subscribe(admin, { filter: { types: ['NOT A TYPE'] } as eventsV1.EventFilter }), () => false),
      ),
    ).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect(await failure(take(subscribe(admin, fromSeq(0)), () => false))).toMatchObject({
      code: status.INVALID_ARGUMENT,
    });
    expect(await failure(take(subscribe(admin, fromSeq(head + 1000n)), () => false))).toMatchObject({
      code: status.OUT_OF_RANGE,
      reason: 'SEQUENCE_AHEAD_OF_HEAD',
    });
    expect(
      await failure(take(subscribe(admin, { heartbeatInterval: durationFromMs(100) }), () => false)),
    ).toMatchObject({ code: status.INVALID_ARGUMENT });
    // Nothing was recorded by any of these (denial events aside, there were none).
    expect(await headOf(admin)).toBe(head);
  });

  it("records aetherd's own events: jobs, memory, denials and policy reloads", async () => {
    const before = await headOf(admin);
    const { job } = await run(admin, spec(['/bin/sh', '-c', 'exit 3']));
    const entry = (
      await admin.call(
        admin.memory,
        'addEntry',
        memoryV1.AddEntryRequest.fromPartial({ entry: { title: 'n', text: 'a note for the event stream' } }),
      )
    ).entry!;
    const stranger = stack.client('stranger');
    await failure(stranger.call(stranger.events, 'listEvents', eventsV1.ListEventsRequest.fromPartial({})));
    stranger.close();
    writeFileSync(
      join(stack.policyDir, 'test-events.cedar'),
      '@id("test-events-extra")\npermit (principal, action == Aether::Action::"events.GetEvent", resource) when { false };\n',
    );
    await admin.call(admin.policy, 'reloadPolicy', governanceV1.ReloadPolicyRequest.fromPartial({}));

    const jobId = job.name.replace('jobs/', '');
    let got: eventsV1.Event[] = [];
    for (let i = 0; i < 50; i++) {
      got = await list(admin, { startSequence: before + 1n, filter: { sources: ['aetherd'] } });
      if (got.some((e) => e.type === 'policy.reloaded')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const jobEvents = got.filter((e) => e.jobId === jobId);
    expect(jobEvents[0]).toMatchObject({ type: 'job.submitted', subject: job.name });
    const states = jobEvents
      .filter((e) => e.type === 'job.state_changed')
      .map((e) => String(e.data!['state']));
    expect(states).toEqual(['JOB_STATE_STARTING', 'JOB_STATE_RUNNING', 'JOB_STATE_FAILED']);
    expect(jobEvents[jobEvents.length - 1]!.data).toMatchObject({
      previous_state: 'JOB_STATE_RUNNING',
      exit_code: 3,
    });
    expect(got.find((e) => e.type === 'memory.entry_added')).toMatchObject({
      subject: entry.name,
      data: { version: 1, actor: 'spiffe://aether.local/admin' },
    });
    const denied = got.find((e) => e.type === 'request.denied');
    expect(denied?.data).toMatchObject({
      method: 'events.ListEvents',
      principal: 'spiffe://aether.local/stranger',
      policy_ids: ['default-deny'],
    });
    expect(got.find((e) => e.type === 'policy.reloaded')?.data?.['policy_set_hash']).toMatch(
      /^[0-9a-f]{16,}$/,
    );
    for (const e of got) expect(e.actor).toBe('spiffe://aether.local/aetherd');
  }, 90_000);

  it('filters by type, prefix on whole segments, job, intent, source and subject', async () => {
    const start = (await emit(admin, { type: 'filt.start' })).sequence;
    await emit(admin, { type: 'filt.a', jobId: 'j1', subject: 's1' });
    await emit(admin, { type: 'filt.b.c', intentId: 'i1', source: 'tool' });
    await emit(admin, { type: 'filtx.a' });
    await emit(admin, { type: 'filt.a', jobId: 'j2', subject: 's2' });
    const types = async (filter: Partial<eventsV1.EventFilter>): Promise<string[]> =>
      (
        await list(admin, { startSequence: start + 1n, filter: eventsV1.EventFilter.fromPartial(filter) })
      ).map((e) => `${e.type}${e.jobId ? `@${e.jobId}` : ''}`);
    expect(await types({ typePrefixes: ['filt'] })).toEqual(['filt.a@j1', 'filt.b.c', 'filt.a@j2']);
    expect(await types({ typePrefixes: ['filt.'] })).toEqual(['filt.a@j1', 'filt.b.c', 'filt.a@j2']);
    expect(await types({ typePrefixes: ['filt.b'] })).toEqual(['filt.b.c']);
    expect(await types({ types: ['filtx.a'], typePrefixes: ['filt.b'] })).toEqual(['filt.b.c', 'filtx.a']);
    expect(await types({ jobId: 'j2' })).toEqual(['filt.a@j2']);
    expect(await types({ intentId: 'i1' })).toEqual(['filt.b.c']);
    expect(await types({ sources: ['tool'] })).toEqual(['filt.b.c']);
    expect(await types({ subject: 's1', types: ['filt.a'] })).toEqual(['filt.a@j1']);
    // The same filter on a live subscription.
    const ac = new AbortController();
    const stream = subscribe(
      admin,
      { filter: eventsV1.EventFilter.fromPartial({ typePrefixes: ['filt'] }), ...fromSeq(start + 1n) },
      ac.signal,
    );
    const got = await take(stream, (g) => eventsOf(g).length >= 3);
    expect(eventsOf(got).map((e) => e.type)).toEqual(['filt.a', 'filt.b.c', 'filt.a']);
    ac.abort();
    // Time ranges: everything since the start event's time includes it.
    const startEvent = (await admin.call(admin.events, 'getEvent', { name: `events/${start}` })).event!;
    const since = await list(admin, { startTime: startEvent.time!, filter: { typePrefixes: ['filt'] } });
    expect(since[0]?.sequence).toBe(start);
  });

  it('resumes after a disconnect with no gap and no duplicate, also across an aetherd restart', async () => {
    const first = await emitMany(admin, 300, 'resume.one');
    const start = first - 299n;
    // Read 120, then hang up.
    const ac = new AbortController();
    const part1 = await take(subscribe(admin, fromSeq(start), ac.signal), (g) => g.length >= 120);
    ac.abort();
    expect(seqs(part1)).toEqual(Array.from({ length: 120 }, (_, i) => Number(start) + i));
    // Resume from the last delivered + 1, and follow live while more is emitted.
    const resumeAt = BigInt(seqs(part1).at(-1)! + 1);
    const ac2 = new AbortController();
    const stream2 = subscribe(
      admin,
      { ...fromSeq(resumeAt), filter: { typePrefixes: ['resume'] } as eventsV1.EventFilter },
      ac2.signal,
    );
    const reading = take(stream2, (g) => eventsOf(g).some((e) => e.type === 'resume.stop'));
    await emitMany(admin, 200, 'resume.two');
    const stop = await emit(admin, { type: 'resume.stop' });
    const part2 = await reading;
    ac2.abort();
    const all = [...seqs(part1), ...seqs(part2)];
    expect(all).toEqual(
      Array.from({ length: Number(stop.sequence - start) + 1 }, (_, i) => Number(start) + i),
    );

    // Across a restart: the stream ends with UNAVAILABLE and where to resume; sequences continue.
    const ac3 = new AbortController();
    const beforeStop = await emit(admin, { type: 'restart.before' });
    const stream3 = subscribe(
      admin,
      { ...fromSeq(beforeStop.sequence), filter: { typePrefixes: ['restart'] } as eventsV1.EventFilter },
      ac3.signal,
    );
    const seen: eventsV1.SubscribeResponse[] = [];
    const ended = (async () => {
      try {
        for await (const m of stream3) seen.push(m);
      } catch (err) {
        return err as RpcError;
      }
      return undefined;
    })();
    await new Promise((r) => setTimeout(r, 200));
    await stack.stop('aetherd');
    const err = await ended;
    expect(err).toMatchObject({ code: status.UNAVAILABLE });
    expect(seqs(seen)).toEqual([Number(beforeStop.sequence)]);
    await stack.start('aetherd');
    const after = await emit(admin, { type: 'restart.after' });
    expect(after.sequence).toBe(beforeStop.sequence + 1n);
    const resumed = await take(
      subscribe(admin, {
        ...fromSeq(beforeStop.sequence + 1n),
        filter: { typePrefixes: ['restart'] } as eventsV1.EventFilter,
      }),
      (g) => eventsOf(g).length >= 1,
    );
    expect(eventsOf(resumed).map((e) => e.type)).toEqual(['restart.after']);
  }, 60_000);

  it('keeps memory bounded for a subscriber that never reads and tells it exactly what it missed', async () => {
    const ac = new AbortController();
    const mark = await emit(admin, { type: 'slow.mark' });
    const stream = subscribe(
      admin,
      { ...fromSeq(mark.sequence), filter: { typePrefixes: ['slow'] } as eventsV1.EventFilter },
      ac.signal,
    );
    const first = await nextMessage(stream); // the mark: the subscription is live; now stop reading
    expect(first.message?.$case).toBe('event');
    const last = await emitMany(admin, 10_000, 'slow.bulk', { text: 'y'.repeat(2000) });
    // What aetherd holds for the subscriber stays within its bound (1,000 events here).
    const metrics = await admin.call(
      admin.metrics,
      'getMetrics',
      metricsV1.GetMetricsRequest.fromPartial({ readMask: ['events'] }),
    );
    expect(Number(metrics.events!.bufferedEvents)).toBeLessThanOrEqual(1000);
    expect(Number(metrics.events!.subscriberBufferLimit)).toBe(1000);
    const end = await emit(admin, { type: 'slow.end' });
    // Now read everything: events, then one gap covering what was dropped, then the rest, in order.
    const got = [first, ...(await take(stream, (g) => eventsOf(g).some((e) => e.type === 'slow.end')))];
    ac.abort();
    const covered: number[] = [];
    let gaps = 0;
    for (const m of got) {
      if (m.message?.$case === 'event') covered.push(Number(m.message.value.sequence));
      if (m.message?.$case === 'gap') {
        gaps++;
        expect(m.message.value.reason).toBe(GapReason.GAP_REASON_SLOW_SUBSCRIBER);
        for (
          let s = Number(m.message.value.firstMissedSequence);
          s <= Number(m.message.value.lastMissedSequence);
          s++
        )
          covered.push(s);
      }
    }
    expect(gaps).toBeGreaterThan(0);
    // Before the first gap it got at most the bound plus what the transport held in flight.
    const beforeGap = got.findIndex((m) => m.message?.$case === 'gap');
    expect(beforeGap).toBeLessThanOrEqual(1000 + 200);
    // Every sequence from the mark to the end exactly once: delivered or reported, never both, none lost.
    expect(covered).toEqual(
      Array.from({ length: Number(end.sequence - mark.sequence) + 1 }, (_, i) => Number(mark.sequence) + i),
    );
    expect(last).toBe(end.sequence - 1n);
  }, 120_000);

  it('disconnects a slow subscriber that asked for it, with the sequence to resume from', async () => {
    const ac = new AbortController();
    const mark = await emit(admin, { type: 'drop.mark' });
    const stream = subscribe(
      admin,
      {
        ...fromSeq(mark.sequence),
        filter: { typePrefixes: ['drop'] } as eventsV1.EventFilter,
        overflow: OverflowPolicy.OVERFLOW_POLICY_DISCONNECT,
      },
      ac.signal,
    );
    const first = await nextMessage(stream);
    expect(first.message?.$case).toBe('event');
    await emitMany(admin, 5000, 'drop.bulk', { text: 'z'.repeat(2000) });
    const got: eventsV1.SubscribeResponse[] = [first];
    const err = await failure(
      (async () => {
        for await (const m of stream) got.push(m);
      })(),
    );
    expect(err).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: 'SUBSCRIBER_TOO_SLOW' });
    const resume = Number(err.metadata['resume_sequence']);
    const delivered = seqs(got);
    expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => Number(mark.sequence) + i));
    expect(resume).toBe(delivered.at(-1)! + 1);
    // Resuming from there delivers the rest from the store.
    const rest = await take(
      subscribe(admin, { ...fromSeq(resume), filter: { typePrefixes: ['drop'] } as eventsV1.EventFilter }),
      (g) => eventsOf(g).length >= 5001 - delivered.length,
    );
    expect(seqs(rest)[0]).toBe(resume);
  }, 120_000);

  it('removes old events by count and reports a resume position older than retention as a gap', async () => {
    // maxEvents is 20,000 in this stack: after 25,000 more, the oldest are gone.
    const last = await emitMany(admin, 25_000, 'retention.fill');
    let listed: eventsV1.ListEventsResponse | undefined;
    for (let i = 0; i < 50; i++) {
      listed = await admin.call(
        admin.events,
        'listEvents',
        eventsV1.ListEventsRequest.fromPartial({ pageSize: 1 }),
      );
      if (Number(listed.headSequence - listed.oldestSequence) + 1 <= 21_000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const oldest = listed!.oldestSequence;
    expect(Number(last - oldest) + 1).toBeLessThanOrEqual(21_000);
    expect(oldest).toBeGreaterThan(1n);
    expect(await failure(admin.call(admin.events, 'getEvent', { name: 'events/1' }))).toMatchObject({
      code: status.NOT_FOUND,
    });
    const got = await take(subscribe(admin, fromSeq(1)), (g) => g.length >= 2);
    expect(got[0]!.message).toEqual({
      $case: 'gap',
      value: {
        firstMissedSequence: 1n,
        lastMissedSequence: oldest - 1n,
        reason: GapReason.GAP_REASON_RETENTION,
      },
    });
    expect(seqs(got.slice(1))).toEqual([Number(oldest)]);
    // From a time before everything still stored: the removed range first, then the oldest.
    const byTime = await take(
      subscribe(admin, { start: { $case: 'startTime', value: timestampFromDate(new Date(0)) } }),
      (g) => g.length >= 2,
    );
    expect(byTime[0]!.message?.$case).toBe('gap');
    expect(seqs(byTime.slice(1))).toEqual([Number(oldest)]);
  }, 120_000);

  it('sends heartbeats with the head and the delivered position on an idle stream', async () => {
    const ac = new AbortController();
    const head = await headOf(admin);
    const got = await take(
      subscribe(
        admin,
        {
          filter: { types: ['never.happens'] } as eventsV1.EventFilter,
          heartbeatInterval: durationFromMs(1000),
        },
        ac.signal,
      ),
      (g) => g.length >= 1,
    );
    ac.abort();
    expect(got[0]!.message?.$case).toBe('heartbeat');
    const hb = (got[0]!.message as { value: eventsV1.Heartbeat }).value;
    expect(hb.headSequence).toBeGreaterThanOrEqual(head);
    expect(hb.deliveredSequence).toBe(hb.headSequence);
  }, 20_000);
});
