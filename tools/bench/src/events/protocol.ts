/**
 * What the events benchmark's parent (publisher and coordinator) and its forked children (subscribers,
 * the bare server) tell each other over the IPC channel, and the latency histogram they share.
 */
import { performance } from 'node:perf_hooks';
import type { ClientEndpointConfig } from '@aether/config';

/** The type of every event the benchmark emits; subscribers filter on its first segment. */
export const EVENT_TYPE = 'bench.tick';
export const EVENT_PREFIX = 'bench';

/** Wall-clock time in milliseconds with sub-millisecond resolution, comparable across processes. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Publish-to-deliver latencies in milliseconds, in buckets that add up across processes: 10 µs wide
 * below 100 ms, 1 ms wide up to 10 s (beyond: the last bucket). Min, max and mean are exact.
 */
export class Histogram {
  static readonly FINE = 10_000; // 10 µs buckets up to 100 ms
  static readonly COARSE = 9_900; // 1 ms buckets from 100 ms to 10 s
  readonly counts = new Uint32Array(Histogram.FINE + Histogram.COARSE + 1);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  /** Samples below zero (clock offset not fully corrected); counted in the first bucket. */
  negative = 0;

  add(ms: number): void {
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
    if (ms < 0) this.negative++;
    this.counts[Histogram.indexOf(ms)]!++;
  }

  static indexOf(ms: number): number {
    if (!(ms > 0)) return 0;
    if (ms < 100) return Math.floor(ms * 100);
    return Math.min(Histogram.FINE + Math.floor(ms - 100), Histogram.FINE + Histogram.COARSE);
  }

  /** The middle of bucket `i`, in ms. */
  static valueOf(i: number): number {
    if (i < Histogram.FINE) return (i + 0.5) / 100;
    return 100 + (i - Histogram.FINE) + 0.5;
  }

  /** The p-th percentile (nearest rank) to the bucket's resolution, clamped to the exact min and max. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank)
        return i === this.counts.length - 1
          ? this.max
          : Math.min(this.max, Math.max(this.min, Histogram.valueOf(i)));
    }
    return this.max;
  }

  get mean(): number {
    return this.count ? this.sum / this.count : NaN;
  }

  toJSON(): HistogramData {
    const buckets: [number, number][] = [];
    this.counts.forEach((c, i) => {
      if (c > 0) buckets.push([i, c]);
    });
    return {
      count: this.count,
      sum: this.sum,
      min: this.min,
      max: this.max,
      negative: this.negative,
      buckets,
    };
  }

  merge(d: HistogramData): this {
    if (d.count === 0) return this;
    this.count += d.count;
    this.sum += d.sum;
    this.min = Math.min(this.min, d.min);
    this.max = Math.max(this.max, d.max);
    this.negative += d.negative;
    for (const [i, c] of d.buckets) this.counts[i]! += c;
    return this;
  }

  summary(): LatencyStats {
    return {
      count: this.count,
      mean: this.mean,
      p50: this.percentile(50),
      p99: this.percentile(99),
      max: this.count ? this.max : NaN,
    };
  }
}

export interface HistogramData {
  count: number;
  sum: number;
  min: number;
  max: number;
  negative: number;
  buckets: [number, number][];
}

export interface LatencyStats {
  count: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

/** Totals of one subscriber child's subscriptions since they opened. */
export interface SubscriberTotals {
  /** Events received, per subscription. */
  received: number[];
  /** Gap messages, and the sequences they cover, all subscriptions. */
  gaps: number;
  gapSequences: number;
  /** Events whose sequence was not above the previous one's (duplicates or out of order). */
  outOfOrder: number;
  /** Streams that ended with an error (message of the first). */
  errors: number;
  firstError?: string;
}

export interface SubscribeSpec {
  endpoint: ClientEndpointConfig;
  /** Subscriptions in this child. */
  count: number;
  /** One connection for all of them (else each has its own). */
  sharedConnection: boolean;
  /** Start at this sequence (aetherd); absent: start_now (the bare server, which only streams live). */
  startSequence?: number;
}

export type ToSubscriber =
  | { type: 'subscribe'; spec: SubscribeSpec }
  | { type: 'clock'; t0: number }
  | { type: 'measure'; offsetMs: number }
  | { type: 'stop-measure' }
  | { type: 'totals' }
  | { type: 'close' };

export type FromSubscriber =
  | { type: 'subscribed'; connectMs: number }
  | { type: 'clock'; t0: number; child: number }
  | { type: 'progress'; minReceived: number }
  | {
      type: 'measured';
      /** Events received during the window, all subscriptions. */
      received: number;
      elapsedMs: number;
      latency: HistogramData;
    }
  | { type: 'totals'; totals: SubscriberTotals }
  | { type: 'error'; message: string };

export interface BareServerSpec {
  socketPath: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** Undelivered events held per subscriber before a gap, as aetherd's `events.subscriberBuffer`. */
  subscriberBuffer: number;
}

export type ToBareServer =
  { type: 'start'; spec: BareServerSpec } | { type: 'subscribers' } | { type: 'stop' };

export type FromBareServer =
  { type: 'ready' } | { type: 'subscribers'; count: number } | { type: 'error'; message: string };
