import { status as Status } from '@grpc/grpc-js';
import type { EventsConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { eventsV1, timestampFromDate, type metricsV1 } from '@aether/proto';
import { RpcError, UnavailableError } from '@aether/rpc';
import { IdempotencyKeyReused, type EventDraft, type EventStore, type StoredEvent } from './event-store';
import type { CompiledFilter } from './event-validation';

const { GapReason } = eventsV1;

/** Events read from the store per step while a subscriber catches up. */
const CATCH_UP_PAGE = 512;
/** Sequences scanned per step while catching up (a selective filter does not hold the loop for long). */
const CATCH_UP_WINDOW = 50_000;
/** Events removed per retention step. */
const PRUNE_CHUNK = 10_000;
const PRUNE_INTERVAL_MS = 60_000;

/** An event as the API shows it. */
export function eventToProto(e: StoredEvent): eventsV1.Event {
  return {
    name: `events/${e.seq}`,
    sequence: BigInt(e.seq),
    type: e.type,
    source: e.source,
    subject: e.subject,
    data: e.dataJson === null ? undefined : (JSON.parse(e.dataJson) as Record<string, unknown>),
    intentId: e.intentId,
    jobId: e.jobId,
    time: timestampFromDate(new Date(e.timeMs)),
    actor: e.actor,
    requestId: e.requestId,
  };
}

const encode = (m: eventsV1.SubscribeResponse): Buffer =>
  Buffer.from(eventsV1.SubscribeResponse.encode(m).finish());

/** The SubscribeResponse carrying `e`, encoded once (live events are shared by every subscriber). */
function encodedEvent(e: StoredEvent): Buffer {
  return (e.encoded ??= encode({ message: { $case: 'event', value: eventToProto(e) } }));
}

/** What aetherd says about itself: its own events, with aetherd as source and actor. */
export interface OwnEvent {
  type: string;
  subject: string;
  data?: Record<string, unknown>;
  jobId?: string;
  intentId?: string;
  requestId?: string;
}

/** Where aetherd's components report what happened; never throws, never waits. */
export type EventSink = (event: OwnEvent) => void;

interface PendingWrite {
  drafts: EventDraft[];
  resolve: (events: StoredEvent[]) => void;
  reject: (err: unknown) => void;
  result?: StoredEvent[];
  error?: unknown;
}

interface Gap {
  first: number;
  last: number;
  reason: eventsV1.GapReason;
}

export interface SubscriptionOptions {
  filter: CompiledFilter;
  /** First sequence to deliver. */
  start: number;
  /** A range reported before anything else (a start older than retention kept). */
  initialGap?: Gap;
  overflow: eventsV1.OverflowPolicy;
  heartbeatMs: number;
  signal: AbortSignal;
}

/**
 * The event stream in aetherd: writes are group-committed (everything emitted in one turn of the event
 * loop shares a transaction and one fsync), and only committed events reach subscribers, so a subscriber
 * never sees an event a crash could take back. Each subscriber catches up from the store, then follows
 * live with a bounded queue of its own; one that falls behind past the bound gets a gap (or is
 * disconnected with its resume position), never unbounded memory and never a silent loss.
 */
export class EventHub {
  private queue: PendingWrite[] = [];
  private scheduled = false;
  private readonly subscriptions = new Set<Subscription>();
  private pruning = false;
  private readonly pruneTimer: NodeJS.Timeout;
  private closed = false;
  readonly counters = { emitted: 0, delivered: 0, gaps: 0, slowDisconnects: 0 };

  constructor(
    readonly store: EventStore,
    private readonly config: EventsConfig,
    private readonly log: Logger,
    /** aetherd's SPIFFE ID: the actor of its own events. */
    private readonly selfActor: string,
  ) {
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_INTERVAL_MS).unref();
    this.prune();
  }

  /** Records drafts together (all or none); resolves once they are durable, with their sequences. */
  append(drafts: EventDraft[]): Promise<StoredEvent[]> {
    if (this.closed) return Promise.reject(new UnavailableError('aetherd is shutting down', 'SHUTTING_DOWN'));
    return new Promise((resolve, reject) => {
      this.queue.push({ drafts, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** aetherd's own events (jobs, artifacts, memory, policy, denials): recorded in the background. */
  readonly sink: EventSink = (e) => {
    const dataJson = e.data === undefined ? null : JSON.stringify(e.data);
    this.append([
      {
        type: e.type,
        source: 'aetherd',
        subject: e.subject,
        dataJson,
        intentId: e.intentId ?? '',
        jobId: e.jobId ?? '',
        actor: this.selfActor,
        requestId: e.requestId ?? '',
        idempotencyKey: '',
        requestHash: '',
      },
    ]).catch((err: unknown) => this.log.error({ err, type: e.type }, 'events: own event not recorded'));
  };

  /** Commits what is queued (also on close, so nothing accepted is dropped). */
  flush(): void {
    this.scheduled = false;
    const writes = this.queue;
    this.queue = [];
    if (writes.length === 0) return;
    const headBefore = this.store.head;
    const now = Date.now();
    try {
      this.store.transaction(() => {
        for (const w of writes) {
          try {
            w.result = this.store.appendAll(w.drafts, now);
          } catch (err) {
            w.error = err;
          }
        }
      });
    } catch (err) {
      const error = storeError(err);
      this.log.error({ err }, 'events: commit failed');
      for (const w of writes) w.reject(error);
      return;
    }
    // Publish before settling: a subscriber learns of an event no later than its emitter does.
    const fresh: StoredEvent[] = [];
    for (const w of writes) if (w.result) for (const e of w.result) if (e.seq > headBefore) fresh.push(e);
    fresh.sort((a, b) => a.seq - b.seq);
    this.counters.emitted += fresh.length;
    if (fresh.length > 0) for (const s of this.subscriptions) s.offer(fresh);
    for (const w of writes) {
      if (w.result) w.resolve(w.result);
      else w.reject(writeError(w.error));
    }
    if (
      this.config.maxEvents > 0 &&
      this.store.stored > this.config.maxEvents + Math.max(1000, this.config.maxEvents / 100)
    )
      this.prune();
  }

  /** Runs retention in steps until nothing is left to remove. */
  private prune(): void {
    if (this.pruning || this.closed) return;
    this.pruning = true;
    const step = (): void => {
      if (this.closed) return;
      let removed = 0;
      try {
        removed = this.store.prune(
          Date.now(),
          this.config.maxAgeSeconds * 1000,
          this.config.maxEvents,
          PRUNE_CHUNK,
        );
      } catch (err) {
        this.log.error({ err }, 'events: retention failed');
      }
      if (removed === PRUNE_CHUNK) setImmediate(step);
      else this.pruning = false;
    };
    step();
  }

  /**
   * Streams events to one subscriber until it cancels: first what the store holds from `start`, then
   * live. `send` waits while the transport is full.
   */
  async subscribe(o: SubscriptionOptions, send: (message: Buffer) => Promise<void>): Promise<void> {
    if (this.subscriptions.size >= this.config.maxSubscribers)
      throw new RpcError(
        Status.RESOURCE_EXHAUSTED,
        'TOO_MANY_SUBSCRIBERS',
        `aetherd already serves ${this.subscriptions.size} subscribers (events.maxSubscribers)`,
      );
    const sub = new Subscription(this, o, Math.max(this.config.subscriberBuffer, 1), send);
    this.subscriptions.add(sub);
    try {
      await sub.run();
    } finally {
      sub.dispose();
      this.subscriptions.delete(sub);
    }
  }

  metrics(): metricsV1.EventMetrics {
    let buffered = 0;
    for (const s of this.subscriptions) buffered += s.buffered;
    return {
      headSequence: BigInt(this.store.head),
      oldestSequence: BigInt(this.store.oldest),
      storedEvents: BigInt(this.store.stored),
      subscribers: BigInt(this.subscriptions.size),
      emittedTotal: BigInt(this.counters.emitted),
      deliveredTotal: BigInt(this.counters.delivered),
      gapsTotal: BigInt(this.counters.gaps),
      slowDisconnectsTotal: BigInt(this.counters.slowDisconnects),
      bufferedEvents: BigInt(buffered),
      subscriberBufferLimit: BigInt(this.config.subscriberBuffer),
    };
  }

  /** Ends every subscription with UNAVAILABLE / SHUTTING_DOWN and its resume position. */
  shutdown(): void {
    for (const s of this.subscriptions) s.shutDown();
  }

  close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.flush();
    for (const s of this.subscriptions) s.stop();
    this.store.close();
    return Promise.resolve();
  }
}

function storeError(err: unknown): RpcError {
  const code = (err as { code?: string }).code;
  if (code === 'SQLITE_FULL')
    return new RpcError(Status.RESOURCE_EXHAUSTED, 'DISK_FULL', 'the events database is out of space');
  return new UnavailableError(`the events database failed: ${(err as Error).message}`, 'EVENTS_UNAVAILABLE');
}

function writeError(err: unknown): unknown {
  if (err instanceof IdempotencyKeyReused)
    return new RpcError(
      Status.ALREADY_EXISTS,
      'IDEMPOTENCY_KEY_REUSED',
      `${err.message} in the last 24 hours; use a new key for a new event`,
      { metadata: { idempotency_key: err.key } },
    );
  if (err instanceof RpcError) return err;
  return storeError(err);
}

/**
 * One subscriber. Memory is bounded: at most `bound` events wait in its queue (beyond that they are
 * dropped and reported as one gap, or the subscriber is disconnected), plus what the transport holds
 * until the client's flow-control window opens.
 */
class Subscription {
  /** The next sequence to consider (from the store while catching up, from the live feed after). */
  private next: number;
  /** The last sequence handed to the transport (an event or a gap's end). */
  private written: number;
  private live = false;
  private readonly queue: StoredEvent[] = [];
  private queueHead = 0;
  private gap: Gap | undefined;
  private failure: RpcError | undefined;
  private stopped = false;
  private wakeup: (() => void) | undefined;
  private lastSent = Date.now();
  private heartbeatDue = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly onAbort = (): void => this.stop();

  constructor(
    private readonly hub: EventHub,
    private readonly o: SubscriptionOptions,
    private readonly bound: number,
    private readonly send: (message: Buffer) => Promise<void>,
  ) {
    this.next = o.start;
    this.written = o.start - 1;
    this.gap = o.initialGap;
    this.heartbeat = setInterval(
      () => {
        if (Date.now() - this.lastSent >= o.heartbeatMs - 5) {
          this.heartbeatDue = true;
          this.wake();
        }
      },
      Math.max(250, Math.floor(o.heartbeatMs / 4)),
    );
    o.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  get buffered(): number {
    return this.queue.length - this.queueHead;
  }

  /** New committed events, ascending. Runs synchronously in the commit's turn of the loop. */
  offer(events: readonly StoredEvent[]): void {
    if (!this.live || this.failure || this.stopped) return;
    let added = false;
    for (const e of events) {
      if (e.seq < this.next) continue;
      this.next = e.seq + 1;
      if (!this.o.filter.matches(e)) continue;
      if (this.buffered >= this.bound) {
        this.overflow(e.seq);
        if (this.failure) break;
        continue;
      }
      this.queue.push(e);
      added = true;
    }
    if (added || this.failure || this.gap) this.wake();
  }

  /** The queue is full when `seq` arrives: drop what waits and report it, or give up on the subscriber. */
  private overflow(seq: number): void {
    this.queue.length = 0;
    this.queueHead = 0;
    if (this.o.overflow === eventsV1.OverflowPolicy.OVERFLOW_POLICY_DISCONNECT) {
      const resume = this.written + 1;
      this.hub.counters.slowDisconnects++;
      this.failure = new RpcError(
        Status.RESOURCE_EXHAUSTED,
        'SUBSCRIBER_TOO_SLOW',
        `the subscriber fell more than ${this.bound} events behind; resume from sequence ${resume}`,
        { metadata: { resume_sequence: String(resume) } },
      );
      return;
    }
    this.gap = {
      first: this.gap?.first ?? this.written + 1,
      last: seq,
      reason: GapReason.GAP_REASON_SLOW_SUBSCRIBER,
    };
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /** aetherd is stopping: end the stream now, telling the client where to resume. */
  shutDown(): void {
    const resume = this.written + 1;
    this.failure ??= new UnavailableError(
      `aetherd is shutting down; resume from sequence ${resume}`,
      'SHUTTING_DOWN',
      { metadata: { resume_sequence: String(resume) } },
    );
    this.queue.length = 0;
    this.queueHead = 0;
    this.gap = undefined;
    this.live = true;
    this.wake();
  }

  dispose(): void {
    clearInterval(this.heartbeat);
    this.o.signal.removeEventListener('abort', this.onAbort);
    this.queue.length = 0;
  }

  private wake(): void {
    const w = this.wakeup;
    if (w) {
      this.wakeup = undefined;
      w();
    }
  }

  private async write(message: Buffer): Promise<void> {
    this.lastSent = Date.now();
    this.heartbeatDue = false;
    await this.send(message);
  }

  private async sendGap(g: Gap): Promise<void> {
    this.written = Math.max(this.written, g.last);
    this.hub.counters.gaps++;
    await this.write(
      encode({
        message: {
          $case: 'gap',
          value: {
            firstMissedSequence: BigInt(g.first),
            lastMissedSequence: BigInt(g.last),
            reason: g.reason,
          },
        },
      }),
    );
  }

  private async sendEvent(e: StoredEvent): Promise<void> {
    this.written = e.seq;
    this.hub.counters.delivered++;
    await this.write(encodedEvent(e));
  }

  private async sendHeartbeat(): Promise<void> {
    const store = this.hub.store;
    // Everything up to `covered` was delivered or did not match the filter: a safe place to resume.
    const covered = this.buffered === 0 && !this.gap ? Math.max(this.written, this.next - 1) : this.written;
    await this.write(
      encode({
        message: {
          $case: 'heartbeat',
          value: {
            headSequence: BigInt(store.head),
            deliveredSequence: BigInt(covered),
            time: timestampFromDate(new Date()),
          },
        },
      }),
    );
  }

  async run(): Promise<void> {
    const store = this.hub.store;
    // Catch up from the store until the read reaches the head, then follow live in the same turn.
    while (!this.live) {
      if (this.stopped) return;
      if (this.failure) throw this.failure;
      if (this.gap) {
        const g = this.gap;
        this.gap = undefined;
        await this.sendGap(g);
        continue;
      }
      if (this.next < store.oldest) {
        this.gap = { first: this.next, last: store.oldest - 1, reason: GapReason.GAP_REASON_RETENTION };
        this.next = store.oldest;
        continue;
      }
      const head = store.head;
      const to = Math.min(head, this.next + CATCH_UP_WINDOW - 1);
      const page = Math.min(CATCH_UP_PAGE, this.bound);
      const rows = this.next > head ? [] : store.read(this.next, to, this.o.filter.sql, page);
      const covered = rows.length === page ? rows[rows.length - 1]!.seq : to;
      this.next = Math.max(this.next, covered + 1);
      if (covered >= head) {
        // The rest is live: what was read waits in the queue, and commits from now on are offered.
        this.queue.push(...rows);
        this.live = true;
        break;
      }
      for (const e of rows) {
        if (this.stopped || this.failure) break;
        await this.sendEvent(e);
      }
      if (this.heartbeatDue) await this.sendHeartbeat();
    }
    for (;;) {
      if (this.stopped) return;
      if (this.failure) throw this.failure;
      if (this.gap) {
        const g = this.gap;
        this.gap = undefined;
        await this.sendGap(g);
        continue;
      }
      if (this.queueHead < this.queue.length) {
        const e = this.queue[this.queueHead++]!;
        if (this.queueHead === this.queue.length) {
          this.queue.length = 0;
          this.queueHead = 0;
        } else if (this.queueHead >= 1024) {
          this.queue.splice(0, this.queueHead);
          this.queueHead = 0;
        }
        await this.sendEvent(e);
        continue;
      }
      if (this.heartbeatDue) {
        await this.sendHeartbeat();
        continue;
      }
      await new Promise<void>((resolve) => (this.wakeup = resolve));
    }
  }
}
