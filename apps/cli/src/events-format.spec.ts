import { RpcError } from '@aether/client';
import { eventsV1, timestampFromDate } from '@aether/proto';
import {
  dataSummary,
  EventCursor,
  eventData,
  eventDetail,
  eventFilter,
  eventLine,
  eventName,
  eventRow,
  gapLine,
  nextBackoffMs,
  parseDataField,
  parseDataObject,
  parseEventType,
  parseSequence,
} from './events-format';
import { UsageError } from './units';

const { GapReason } = eventsV1;

/** grpc status codes used below. */
const UNAVAILABLE = 14;
const RESOURCE_EXHAUSTED = 8;
const PERMISSION_DENIED = 7;

const event = (over: Partial<eventsV1.Event> = {}): eventsV1.Event =>
  eventsV1.Event.fromPartial({
    name: 'events/1042',
    sequence: 1042n,
    type: 'job.state_changed',
    source: 'aetherd',
    subject: 'jobs/01jc7v0m4k3h2g1f0e9d8c7b6a',
    data: { state: 'RUNNING', previous_state: 'STARTING' },
    jobId: '01jc7v0m4k3h2g1f0e9d8c7b6a',
    time: timestampFromDate(new Date('2025-01-01T00:00:00.250Z')),
    actor: 'spiffe://aether.local/aetherd',
    requestId: 'req-1',
    ...over,
  });

const eventMsg = (seq: bigint): eventsV1.SubscribeResponse => ({
  message: { $case: 'event', value: event({ sequence: seq, name: `events/${seq}` }) },
});
const gapMsg = (first: bigint, last: bigint): eventsV1.SubscribeResponse => ({
  message: {
    $case: 'gap',
    value: {
      firstMissedSequence: first,
      lastMissedSequence: last,
      reason: GapReason.GAP_REASON_SLOW_SUBSCRIBER,
    },
  },
});
const heartbeatMsg = (delivered: bigint): eventsV1.SubscribeResponse => ({
  message: { $case: 'heartbeat', value: { headSequence: delivered + 5n, deliveredSequence: delivered } },
});

const usageMessage = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('no UsageError thrown');
};

describe('parsing the command line', () => {
  it('reads sequences and event names, refusing zero, signs and words', () => {
    expect(parseSequence('1')).toBe(1n);
    expect(parseSequence('18446744073709551615')).toBe(2n ** 64n - 1n);
    for (const bad of ['0', '-3', '1.5', 'abc', '', '18446744073709551616'])
      expect(usageMessage(() => parseSequence(bad, '--from'))).toMatch(
        /^--from ".*" must be a positive whole number/,
      );
    expect(eventName('1042')).toBe('events/1042');
    expect(eventName('events/7')).toBe('events/7');
    expect(() => eventName('events/x')).toThrow(UsageError);
    expect(() => eventName('')).toThrow(UsageError);
  });

  it('accepts dotted lowercase event types only', () => {
    expect(parseEventType('training.metrics')).toBe('training.metrics');
    expect(parseEventType('deploy.step_2.done')).toBe('deploy.step_2.done');
    for (const bad of ['deploy', 'Deploy.done', 'deploy..done', '1x.y', 'a.b-c', `a.${'b'.repeat(127)}`])
      expect(() => parseEventType(bad)).toThrow(UsageError);
  });

  it('reads --data as a JSON object and says clearly what is wrong otherwise', () => {
    expect(parseDataObject('{"epoch": 3, "tags": ["a"]}')).toEqual({ epoch: 3, tags: ['a'] });
    expect(usageMessage(() => parseDataObject('{epoch: 3}'))).toMatch(
      /^--data is not valid JSON \(.+\); give an object such as/,
    );
    expect(usageMessage(() => parseDataObject('[1, 2]'))).toBe(
      `--data must be a JSON object such as '{"epoch": 3}', got an array`,
    );
    expect(usageMessage(() => parseDataObject('null', '--data-file x.json'))).toMatch(
      /^--data-file x\.json must be a JSON object .* got null$/,
    );
    expect(usageMessage(() => parseDataObject('"text"'))).toMatch(/got a string$/);
  });

  it('reads -d fields as strings, or as JSON after :=, on top of --data', () => {
    expect(parseDataField('version=1.4.2')).toEqual(['version', '1.4.2']);
    expect(parseDataField('note=a=b')).toEqual(['note', 'a=b']);
    expect(parseDataField('epoch:=3')).toEqual(['epoch', 3]);
    expect(parseDataField('ok:=true')).toEqual(['ok', true]);
    expect(parseDataField('tags:=["a","b"]')).toEqual(['tags', ['a', 'b']]);
    expect(usageMessage(() => parseDataField('epoch:=three'))).toMatch(/^-d epoch:= needs a JSON value/);
    expect(() => parseDataField('novalue')).toThrow(UsageError);
    expect(() => parseDataField(':=1')).toThrow(UsageError);
    expect(eventData(undefined, [])).toBeUndefined();
    expect(
      eventData({ a: 1, b: 2 }, [
        ['b', 'x'],
        ['c', true],
      ]),
    ).toEqual({ a: 1, b: 'x', c: true });
    expect(eventData(undefined, [['c', null]])).toEqual({ c: null });
  });

  it('builds the filter, taking bare ids or resource names for --job and --intent', () => {
    expect(
      eventFilter({ type: ['job.submitted'], typePrefix: ['intent'], job: 'jobs/abc', intent: 'intents/i1' }),
    ).toEqual({
      types: ['job.submitted'],
      typePrefixes: ['intent'],
      jobId: 'abc',
      intentId: 'i1',
      sources: [],
      subject: '',
    });
    expect(eventFilter({})).toEqual(eventsV1.EventFilter.fromPartial({}));
  });
});

describe('showing events', () => {
  it('prints one event per line: sequence, time, type, subject, source, data', () => {
    expect(eventLine(event())).toBe(
      '  1042  2025-01-01T00:00:00.250Z  job.state_changed       jobs/01jc7v0m4k3h2g1f0e9d8c7b6a  aetherd   state=RUNNING previous_state=STARTING',
    );
    expect(eventLine(event({ subject: '', data: undefined, source: 'spiffe://aether.local/admin' }))).toBe(
      '  1042  2025-01-01T00:00:00.250Z  job.state_changed       -                                spiffe://aether.local/admin',
    );
    expect(eventRow(event())).toEqual([
      '1042',
      '2025-01-01T00:00:00.250Z',
      'job.state_changed',
      'jobs/01jc7v0m4k3h2g1f0e9d8c7b6a',
      'aetherd',
      'state=RUNNING previous_state=STARTING',
    ]);
  });

  it('summarizes data compactly: plain words bare, the rest as JSON, long values cut', () => {
    expect(
      dataSummary({ n: 3, ok: false, none: null, msg: 'two words', empty: '', nested: { a: [1] } }),
    ).toBe('n=3 ok=false none=null msg="two words" empty="" nested={"a":[1]}');
    expect(dataSummary({ long: 'x'.repeat(100) })).toBe(`long=${'x'.repeat(59)}…`);
    expect(dataSummary({ a: 'y'.repeat(50), b: 'y'.repeat(50), c: 'y'.repeat(50) }, 40)).toHaveLength(40);
    expect(dataSummary(undefined)).toBe('');
  });

  it('makes a gap impossible to miss', () => {
    expect(
      gapLine({
        firstMissedSequence: 120n,
        lastMissedSequence: 340n,
        reason: GapReason.GAP_REASON_SLOW_SUBSCRIBER,
      }),
    ).toBe('-- missed events 120..340 (slow subscriber: this watch fell behind) --');
    expect(
      gapLine({ firstMissedSequence: 7n, lastMissedSequence: 7n, reason: GapReason.GAP_REASON_RETENTION }),
    ).toBe('-- missed event 7 (removed by retention before they could be read) --');
  });

  it('shows one event in full with its data as indented JSON', () => {
    const text = eventDetail(event(), Date.parse('2025-01-01T00:05:00Z'));
    expect(text).toBe(
      [
        'Name:     events/1042',
        'Type:     job.state_changed',
        'Time:     2025-01-01T00:00:00.250Z (4m ago)',
        'Source:   aetherd',
        'Subject:  jobs/01jc7v0m4k3h2g1f0e9d8c7b6a',
        'Actor:    spiffe://aether.local/aetherd',
        'Job:      01jc7v0m4k3h2g1f0e9d8c7b6a',
        'Request:  req-1',
        'Data:',
        '  {',
        '    "state": "RUNNING",',
        '    "previous_state": "STARTING"',
        '  }',
        '',
      ].join('\n'),
    );
    expect(eventDetail(event({ data: undefined }))).toMatch(/\nData: {5}-\n$/);
  });
});

describe('EventCursor: resuming a watch without duplicates or silent gaps', () => {
  it('starts where asked and then from the sequence after the last one delivered', () => {
    const cursor = new EventCursor({ $case: 'startSequence', value: 5n });
    expect(cursor.start).toEqual({ $case: 'startSequence', value: 5n });
    expect(cursor.accept(eventMsg(5n))?.$case).toBe('event');
    expect(cursor.accept(eventMsg(9n))?.$case).toBe('event');
    expect(cursor.start).toEqual({ $case: 'startSequence', value: 10n });
  });

  it('drops events it already showed when a resumed stream overlaps', () => {
    const cursor = new EventCursor({ $case: 'startSequence', value: 1n });
    cursor.accept(eventMsg(1n));
    cursor.accept(eventMsg(2n));
    expect(cursor.accept(eventMsg(2n))).toBeUndefined();
    expect(cursor.accept(eventMsg(1n))).toBeUndefined();
    expect(cursor.accept(eventMsg(3n))?.$case).toBe('event');
  });

  it('keeps a time start until the first message, then moves to sequences', () => {
    const since = { $case: 'startTime' as const, value: timestampFromDate(new Date(0)) };
    const cursor = new EventCursor(since);
    expect(cursor.start).toBe(since);
    expect(cursor.nextSequence).toBeUndefined();
    expect(cursor.accept(heartbeatMsg(41n))).toBeUndefined();
    expect(cursor.start).toEqual({ $case: 'startSequence', value: 42n });
    cursor.accept(eventMsg(50n));
    cursor.accept(heartbeatMsg(45n));
    expect(cursor.nextSequence).toBe(51n);
  });

  it('shows gaps, trimmed to what it has not shown, and continues after them', () => {
    const cursor = new EventCursor({ $case: 'startSequence', value: 1n });
    cursor.accept(eventMsg(10n));
    expect(cursor.accept(gapMsg(5n, 9n))).toBeUndefined();
    const gap = cursor.accept(gapMsg(8n, 20n));
    expect(gap).toEqual({
      $case: 'gap',
      value: {
        firstMissedSequence: 11n,
        lastMissedSequence: 20n,
        reason: GapReason.GAP_REASON_SLOW_SUBSCRIBER,
      },
    });
    expect(cursor.nextSequence).toBe(21n);
  });

  it('resubscribes after UNAVAILABLE and after SUBSCRIBER_TOO_SLOW, never later than its own position', () => {
    const cursor = new EventCursor({ $case: 'startSequence', value: 1n });
    cursor.accept(eventMsg(10n));
    expect(cursor.resumeAfter(new RpcError(UNAVAILABLE, 'SHUTTING_DOWN', 'aetherd is shutting down'))).toBe(
      true,
    );
    expect(cursor.nextSequence).toBe(11n);
    const slow = (seq: string): RpcError =>
      new RpcError(RESOURCE_EXHAUSTED, 'SUBSCRIBER_TOO_SLOW', 'too slow', {
        metadata: { resume_sequence: seq },
      });
    expect(cursor.resumeAfter(slow('30'))).toBe(true);
    expect(cursor.nextSequence).toBe(11n);
    expect(cursor.resumeAfter(slow('8'))).toBe(true);
    expect(cursor.nextSequence).toBe(8n);
    const fresh = new EventCursor({ $case: 'startTime', value: timestampFromDate(new Date(0)) });
    expect(fresh.resumeAfter(slow('77'))).toBe(true);
    expect(fresh.start).toEqual({ $case: 'startSequence', value: 77n });
  });

  it('gives up on errors that a retry would not fix', () => {
    const cursor = new EventCursor({ $case: 'startSequence', value: 1n });
    expect(cursor.resumeAfter(new RpcError(PERMISSION_DENIED, 'POLICY_DENIED', 'denied'))).toBe(false);
    expect(cursor.resumeAfter(new RpcError(RESOURCE_EXHAUSTED, 'QUOTA_EXCEEDED', 'full'))).toBe(false);
    expect(cursor.resumeAfter(new Error('boom'))).toBe(false);
  });

  it('backs off from 0.2 s, doubling, to at most 5 s', () => {
    const delays: number[] = [];
    let d: number | undefined;
    for (let i = 0; i < 8; i++) delays.push((d = nextBackoffMs(d)));
    expect(delays).toEqual([200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  });
});
