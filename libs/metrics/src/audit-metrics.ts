import type { AuditLogStats, AuditPending } from '@aether/audit';
import type { metricsV1 } from '@aether/proto';
import { LATENCY_BUCKETS, type LatencyRecorder } from './latency-recorder';
import type { MetricsRegistry } from './metrics-registry';

/** What the audit metrics read from a daemon's audit log (an `AuditLog` of @aether/audit). */
export interface AuditSource {
  readonly stats: AuditLogStats;
  readonly head: { seq: number };
  readonly pending: AuditPending;
  onCommit(listener: (seconds: number) => void): void;
}

/** The `audit` section: records, the chain's head, what is not durable yet, failures and commit time. */
export class AuditMetrics {
  private readonly commitLatency: LatencyRecorder;

  constructor(
    metrics: MetricsRegistry,
    private readonly audit: AuditSource,
  ) {
    this.commitLatency = metrics.latency(
      'audit_commit_latency',
      'Time per durable commit (write + fdatasync)',
      LATENCY_BUCKETS.commit,
    );
    audit.onCommit((seconds) => this.commitLatency.observe(seconds));
    metrics.section('audit', () => this.snapshot());
  }

  async snapshot(): Promise<metricsV1.AuditMetrics> {
    const { stats, pending } = this.audit;
    return {
      recordsTotal: BigInt(stats.records),
      lastSequence: BigInt(this.audit.head.seq),
      pendingRecords: BigInt(pending.records),
      lagSeconds: pending.oldestAgeSeconds,
      writeErrorsTotal: BigInt(stats.writeErrors),
      commitLatency: await this.commitLatency.snapshot(),
      bytesWrittenTotal: BigInt(stats.bytesWritten),
    };
  }
}
