import { Counter, Gauge, Registry } from 'prom-client';
import { timestampFromDate, type metricsV1 } from '@aether/proto';
import { LabeledLatencyRecorder, LatencyRecorder } from './latency-recorder';
import { responseFieldNames, sectionFamilies, type Sample } from './prometheus-families';

/** The typed sections of a snapshot, by their field names in GetMetricsResponse. */
export interface SectionTypes {
  jobs: metricsV1.JobMetrics;
  rpc: metricsV1.RpcMetrics;
  policy: metricsV1.PolicyMetrics;
  audit: metricsV1.AuditMetrics;
  artifacts: metricsV1.ArtifactMetrics;
  memory: metricsV1.MemoryMetrics;
  events: metricsV1.EventMetrics;
  process: metricsV1.ProcessMetrics;
  host: metricsV1.HostMetrics;
}
export type SectionName = keyof SectionTypes;

/** Produces one section of a snapshot: its current numbers, read when a snapshot or a scrape asks. */
export type SectionProvider<K extends SectionName> = () => SectionTypes[K] | Promise<SectionTypes[K]>;

export interface SectionOptions {
  /**
   * How the section reaches Prometheus. `families` (default): its typed value is exposed as the contract
   * describes it (see `sectionFamilies`). `self`: the section registers its own prom-client metrics on
   * {@link MetricsRegistry.registry} (the RPC section, whose per-method list has labels of its own).
   */
  prometheus?: 'families' | 'self';
}

/** The content type of the exposition text (Prometheus text format 0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface Section {
  provide: () => unknown;
  prometheus: 'families' | 'self';
}

interface FamilyMetric {
  metric: Gauge | Counter;
  labelNames: string[];
  samples: Sample[];
}

/**
 * One daemon's metrics: the typed sections of `GetMetricsResponse` and the prom-client registry that
 * the Prometheus text comes from. Every number has one source: components keep plain counters (or
 * prom-client Histograms, through {@link latency}) and provide a section; a snapshot asks the sections,
 * and a scrape takes a snapshot and hands its numbers to prom-client, so both always agree.
 *
 * ```ts
 * const metrics = new MetricsRegistry('aetherd', '0.1.0');
 * metrics.section('events', () => events.metrics());     // () => metricsV1.EventMetrics
 * await metrics.snapshot(['events']);                     // GetMetricsResponse with `events` set
 * await metrics.prometheusText();                         // aether_events_head_sequence 42 …
 * ```
 */
export class MetricsRegistry {
  /** The prom-client registry behind {@link prometheusText}; every name in it starts with `aether_`. */
  readonly registry = new Registry();
  private readonly sections = new Map<SectionName, Section>();
  private readonly families = new Map<string, FamilyMetric>();
  private scrape: Promise<unknown> = Promise.resolve();

  constructor(
    /** `aetherd`, `aurorad` or `cfcd`. */
    readonly daemon: string,
    readonly version: string,
  ) {
    new Gauge({
      name: 'aether_build_info',
      help: 'Always 1; the labels name the daemon and its version',
      labelNames: ['daemon', 'version'],
      registers: [this.registry],
      collect() {
        this.set({ daemon, version }, 1);
      },
    });
  }

  /**
   * Adds a section to every snapshot and scrape. Each section is registered once; its provider is called
   * once per snapshot (and once per scrape), so it may run a query.
   */
  section<K extends SectionName>(name: K, provider: SectionProvider<K>, options: SectionOptions = {}): this {
    if (this.sections.has(name)) throw new Error(`metrics section "${name}" is already registered`);
    this.sections.set(name, { provide: provider, prometheus: options.prometheus ?? 'families' });
    return this;
  }

  /** Sections registered so far. */
  get sectionNames(): SectionName[] {
    return [...this.sections.keys()];
  }

  /**
   * A latency distribution exposed as `aether_<name>_seconds` (a histogram) and
   * `aether_<name>_max_seconds`; by convention `<name>` is `<section>_<field>` of the contract, e.g.
   * `jobs_start_latency`.
   */
  latency(name: string, help: string, buckets: readonly number[]): LatencyRecorder {
    return new LatencyRecorder(this.registry, name, help, buckets);
  }

  /** Latency distributions by one label, e.g. RPC latency by `method`. */
  labeledLatency(
    name: string,
    help: string,
    label: string,
    buckets: readonly number[],
  ): LabeledLatencyRecorder {
    return new LabeledLatencyRecorder(this.registry, name, help, label, buckets);
  }

  /**
   * A typed snapshot. `paths` are top-level field names of GetMetricsResponse (see
   * {@link isMetricsPath}); empty means every section. `time`, `daemon` and `version` are always set;
   * sections this daemon does not register stay unset.
   */
  async snapshot(paths: readonly string[] = []): Promise<metricsV1.GetMetricsResponse> {
    const wanted = paths.length > 0 ? new Set(paths) : undefined;
    const response: metricsV1.GetMetricsResponse = {
      time: timestampFromDate(new Date()),
      daemon: this.daemon,
      version: this.version,
    };
    const filled = response as unknown as Record<string, unknown>;
    await Promise.all(
      [...this.sections]
        .filter(([name]) => wanted === undefined || wanted.has(name))
        .map(async ([name, s]) => {
          filled[name] = await s.provide();
        }),
    );
    return response;
  }

  /**
   * The Prometheus text exposition (format 0.0.4, {@link PROMETHEUS_CONTENT_TYPE}) of every section.
   * Scrapes run one at a time: each sets the exported values from its own snapshot.
   */
  prometheusText(): Promise<string> {
    const next = this.scrape.then(
      () => this.scrapeOnce(),
      () => this.scrapeOnce(),
    );
    this.scrape = next.catch(() => undefined);
    return next;
  }

  private async scrapeOnce(): Promise<string> {
    const exported = [...this.sections].filter(([, s]) => s.prometheus === 'families').map(([n]) => n);
    const snapshot = exported.length > 0 ? await this.snapshot(exported) : undefined;
    for (const f of this.families.values()) f.samples = [];
    for (const name of exported) {
      const value = (snapshot as unknown as Record<string, object | undefined>)[name];
      if (!value) continue;
      for (const family of sectionFamilies(name, value)) {
        let entry = this.families.get(family.name);
        if (!entry) {
          entry = this.createFamily(family.name, family.help, family.type, family.labelNames);
          this.families.set(family.name, entry);
        }
        entry.samples = family.samples;
      }
    }
    // prom-client runs every metric's collect() synchronously at the start of metrics(), so the values
    // set above are what this scrape exposes.
    return this.registry.metrics();
  }

  private createFamily(
    name: string,
    help: string,
    type: 'gauge' | 'counter',
    labelNames: string[],
  ): FamilyMetric {
    const entry: FamilyMetric = { metric: undefined as unknown as Gauge, labelNames, samples: [] };
    const config = { name, help, labelNames, registers: [this.registry] };
    entry.metric =
      type === 'counter'
        ? new Counter({
            ...config,
            collect() {
              // A counter cannot be set; reset and add the current total (it never decreases at the source).
              this.reset();
              for (const s of entry.samples)
                if (labelNames.length > 0) this.inc(s.labels, s.value);
                else this.inc(s.value);
            },
          })
        : new Gauge({
            ...config,
            collect() {
              this.reset();
              for (const s of entry.samples)
                if (labelNames.length > 0) this.set(s.labels, s.value);
                else this.set(s.value);
            },
          });
    return entry;
  }
}

/** Whether `path` names a top-level field of GetMetricsResponse (what `read_mask` may hold). */
export function isMetricsPath(path: string): boolean {
  return responseFieldNames().includes(path);
}

/** The top-level field names of GetMetricsResponse. */
export function metricsPaths(): string[] {
  return responseFieldNames();
}
