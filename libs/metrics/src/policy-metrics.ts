import { ENGINE_ERROR } from '@aether/policy';
import { timestampFromDate, type metricsV1 } from '@aether/proto';
import type { CallObserver, FinishedCall } from '@aether/rpc';
import { LATENCY_BUCKETS, type LatencyRecorder } from './latency-recorder';
import type { MetricsRegistry } from './metrics-registry';

/** What the policy metrics read from the policy files in force (a `PolicyStore` of @aether/policy). */
export interface PolicySource {
  readonly hash: string | undefined;
  readonly current: { readonly policyIds: readonly string[] };
  readonly loadTime: Date | undefined;
  onReload(listener: (result: { applied: boolean }) => void): void;
}

/**
 * Policy decision metrics, counted by observing the request pipeline (register with
 * `server.observe(policyMetrics)`), plus the set in force and its rejected reloads. A call counts when
 * policy decided it: calls that ended before policy was asked (no identity, a malformed request) and
 * those whose capability token was refused (no decision was made) do not. An engine error is a deny
 * (failing closed) and counts in both `deny_total` and `error_total`. `evaluation_latency` has one
 * observation per counted decision.
 */
export class PolicyMetrics implements CallObserver {
  private allow = 0;
  private deny = 0;
  private ask = 0;
  private errors = 0;
  private reloadFailures = 0;
  private readonly latency: LatencyRecorder;

  constructor(
    metrics: MetricsRegistry,
    private readonly source: PolicySource,
  ) {
    this.latency = metrics.latency('policy_evaluation_latency', 'Time per decision', LATENCY_BUCKETS.policy);
    source.onReload((result) => {
      if (!result.applied) this.reloadFailures++;
    });
    metrics.section('policy', () => this.snapshot());
  }

  callFinished(call: FinishedCall): void {
    // Every decision names the policies that made it (`default-deny` included); a call whose decision is
    // still the pipeline's placeholder was not decided.
    if (call.policySeconds === undefined || call.decision.policyIds.length === 0) return;
    if (call.decision.effect === 'allow') this.allow++;
    else if (call.decision.effect === 'ask') this.ask++;
    else this.deny++;
    if (call.decision.policyIds.includes(ENGINE_ERROR)) this.errors++;
    this.latency.observe(call.policySeconds);
  }

  async snapshot(): Promise<metricsV1.PolicyMetrics> {
    let policyCount = 0;
    try {
      policyCount = this.source.current.policyIds.length;
    } catch {
      // No set loaded yet.
    }
    const loadTime = this.source.loadTime;
    return {
      allowTotal: BigInt(this.allow),
      denyTotal: BigInt(this.deny),
      askTotal: BigInt(this.ask),
      errorTotal: BigInt(this.errors),
      policySetHash: this.source.hash ?? '',
      policyCount: BigInt(policyCount),
      ...(loadTime ? { loadTime: timestampFromDate(loadTime) } : {}),
      reloadFailuresTotal: BigInt(this.reloadFailures),
      evaluationLatency: await this.latency.snapshot(),
    };
  }
}
