import { Gauge, Histogram, type Registry } from 'prom-client';
import type { metricsV1 } from '@aether/proto';
import { estimateQuantile, type CumulativeBucket } from './quantiles';

/** Bucket bounds, in seconds, for the latencies the daemons record. */
export const LATENCY_BUCKETS = {
  /** One RPC over a Unix socket: 100 µs to 10 s. */
  rpc: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  /** One policy decision: 5 µs to 100 ms. */
  policy: [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1],
  /** One write + fdatasync: 50 µs to 2.5 s. */
  commit: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
  /** A sandbox start: 10 ms to 60 s. */
  start: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  /** Time in a queue: 1 ms to 1 h. */
  queue: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
  /** A query against a local database: 100 µs to 10 s. */
  query: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
} as const;

/** One value prom-client reports for a histogram: a `_bucket` (with `le`), `_sum` or `_count`. */
type HistogramValue = Awaited<ReturnType<Histogram<string>['get']>>['values'][number];

const QUANTILES = { p50Seconds: 0.5, p90Seconds: 0.9, p99Seconds: 0.99 } as const;

/**
 * A latency distribution kept in a prom-client Histogram (what Prometheus scrapes) plus the largest
 * observation (a `<name>_max_seconds` gauge); {@link snapshot} reads the histogram back as the typed
 * `LatencyHistogram` of the metrics contract, with quantiles estimated from its buckets.
 */
export class LatencyRecorder {
  private readonly histogram: Histogram;
  private max = 0;

  /** `name` without the `aether_` prefix and unit, e.g. `jobs_start_latency` → `aether_jobs_start_latency_seconds`. */
  constructor(registry: Registry, name: string, help: string, buckets: readonly number[]) {
    this.histogram = new Histogram({
      name: `aether_${name}_seconds`,
      help,
      buckets: [...buckets],
      registers: [registry],
    });
    const read = (): number => this.max;
    new Gauge({
      name: `aether_${name}_max_seconds`,
      help: `The largest observation since start: ${help}`,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** Records one duration in seconds; anything not a finite, non-negative number is ignored. */
  observe(seconds: number): void {
    if (!(seconds >= 0) || seconds === Infinity) return;
    this.histogram.observe(seconds);
    if (seconds > this.max) this.max = seconds;
  }

  async snapshot(): Promise<metricsV1.LatencyHistogram> {
    const { values } = await this.histogram.get();
    return toLatencyHistogram(values, this.max);
  }
}

/**
 * Latency distributions by one label (e.g. RPC method): one prom-client Histogram with that label, and
 * the largest observation per label value (`<name>_max_seconds{<label>}`).
 */
export class LabeledLatencyRecorder {
  private readonly histogram: Histogram<string>;
  private readonly max = new Map<string, number>();
  private readonly buckets: readonly number[];
  /** One label object per value, so the hot path allocates none. */
  private readonly labels = new Map<string, Record<string, string>>();

  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly label: string,
    buckets: readonly number[],
  ) {
    this.buckets = buckets;
    this.histogram = new Histogram({
      name: `aether_${name}_seconds`,
      help,
      labelNames: [label],
      buckets: [...buckets],
      registers: [registry],
    });
    const max = this.max;
    new Gauge({
      name: `aether_${name}_max_seconds`,
      help: `The largest observation since start: ${help}`,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [value, m] of max) this.set({ [label]: value }, m);
      },
    });
  }

  observe(value: string, seconds: number): void {
    if (!(seconds >= 0) || seconds === Infinity) return;
    let labels = this.labels.get(value);
    if (!labels) {
      labels = { [this.label]: value };
      this.labels.set(value, labels);
    }
    this.histogram.observe(labels, seconds);
    const max = this.max.get(value);
    if (max === undefined || seconds > max) this.max.set(value, seconds);
  }

  /** The distribution of every label value observed so far. */
  async snapshot(): Promise<Map<string, metricsV1.LatencyHistogram>> {
    const { values } = await this.histogram.get();
    const byValue = new Map<string, HistogramValue[]>();
    for (const v of values) {
      const key = String(v.labels[this.label]);
      const list = byValue.get(key);
      if (list) list.push(v);
      else byValue.set(key, [v]);
    }
    const out = new Map<string, metricsV1.LatencyHistogram>();
    for (const [key, list] of byValue) out.set(key, toLatencyHistogram(list, this.max.get(key) ?? 0));
    return out;
  }

  /** A distribution with no observations (a label value seen before its first observation). */
  empty(): metricsV1.LatencyHistogram {
    return toLatencyHistogram(
      [...this.buckets, Infinity].map((le) => ({
        metricName: '_bucket',
        labels: { le: le === Infinity ? '+Inf' : le },
        value: 0,
      })),
      0,
    );
  }
}

/** prom-client's values of one histogram series (`_bucket`, `_sum`, `_count`) → the contract's message. */
function toLatencyHistogram(values: readonly HistogramValue[], max: number): metricsV1.LatencyHistogram {
  const buckets: CumulativeBucket[] = [];
  let sum = 0;
  let count = 0;
  for (const v of values) {
    const name = v.metricName ?? '';
    if (name.endsWith('_bucket')) {
      const le = v.labels['le'];
      buckets.push({
        upperBound: le === '+Inf' ? Infinity : Number(le),
        cumulativeCount: v.value,
      });
    } else if (name.endsWith('_sum')) sum = v.value;
    else if (name.endsWith('_count')) count = v.value;
  }
  buckets.sort((a, b) => a.upperBound - b.upperBound);
  const quantile = (q: number): number => (count === 0 ? 0 : estimateQuantile(buckets, q, max));
  return {
    count: BigInt(count),
    sumSeconds: sum,
    buckets: buckets.map((b) => ({
      upperBoundSeconds: b.upperBound,
      cumulativeCount: BigInt(b.cumulativeCount),
    })),
    p50Seconds: quantile(QUANTILES.p50Seconds),
    p90Seconds: quantile(QUANTILES.p90Seconds),
    p99Seconds: quantile(QUANTILES.p99Seconds),
    maxSeconds: count === 0 ? 0 : max,
  };
}
