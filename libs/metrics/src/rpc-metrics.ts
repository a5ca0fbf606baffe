import { Counter, Gauge } from 'prom-client';
import type { metricsV1 } from '@aether/proto';
import type { CallObserver, FinishedCall } from '@aether/rpc';
import { LATENCY_BUCKETS, type LabeledLatencyRecorder } from './latency-recorder';
import type { MetricsRegistry } from './metrics-registry';

interface MethodStats {
  requests: number;
  errors: number;
  inFlight: number;
  byCode: Map<string, number>;
}

/**
 * Per-method RPC metrics, counted by observing the request pipeline (register with
 * `server.observe(rpcMetrics)`): calls by status code, errors, calls in flight and duration. Provides the
 * `rpc` section and exposes `aether_rpc_requests_total{method,code}`, `aether_rpc_errors_total{method}`,
 * `aether_rpc_method_in_flight{method}`, `aether_rpc_in_flight` and `aether_rpc_latency_seconds{method}`.
 */
export class RpcMetrics implements CallObserver {
  private readonly methods = new Map<string, MethodStats>();
  private readonly latency: LabeledLatencyRecorder;
  private inFlight = 0;

  constructor(metrics: MetricsRegistry) {
    this.latency = metrics.labeledLatency(
      'rpc_latency',
      'Call duration, from receipt to status (for streams, the whole stream)',
      'method',
      LATENCY_BUCKETS.rpc,
    );
    const methods = this.methods;
    const registers = [metrics.registry];
    new Counter({
      name: 'aether_rpc_requests_total',
      help: 'Calls completed, by full method name and canonical status code name',
      labelNames: ['method', 'code'],
      registers,
      collect() {
        this.reset();
        for (const [method, s] of methods) for (const [code, n] of s.byCode) this.inc({ method, code }, n);
      },
    });
    new Counter({
      name: 'aether_rpc_errors_total',
      help: 'Calls completed with a status other than OK, by full method name',
      labelNames: ['method'],
      registers,
      collect() {
        this.reset();
        for (const [method, s] of methods) this.inc({ method }, s.errors);
      },
    });
    new Gauge({
      name: 'aether_rpc_method_in_flight',
      help: 'Calls currently in flight, by full method name',
      labelNames: ['method'],
      registers,
      collect() {
        this.reset();
        for (const [method, s] of methods) this.set({ method }, s.inFlight);
      },
    });
    const total = (): number => this.inFlight;
    new Gauge({
      name: 'aether_rpc_in_flight',
      help: 'Calls currently in flight, all methods',
      registers,
      collect() {
        this.set(total());
      },
    });
    metrics.section('rpc', () => this.snapshot(), { prometheus: 'self' });
  }

  callStarted(path: string): void {
    this.stats(path).inFlight++;
    this.inFlight++;
  }

  callFinished(call: FinishedCall): void {
    const s = this.stats(call.path);
    s.inFlight--;
    this.inFlight--;
    s.requests++;
    if (call.outcome !== 'OK') s.errors++;
    s.byCode.set(call.outcome, (s.byCode.get(call.outcome) ?? 0) + 1);
    this.latency.observe(call.path, call.durationMs / 1000);
  }

  async snapshot(): Promise<metricsV1.RpcMetrics> {
    const latency = await this.latency.snapshot();
    const methods = [...this.methods.keys()].sort();
    return {
      methods: methods.map((method) => {
        const s = this.methods.get(method)!;
        return {
          method,
          requestsTotal: BigInt(s.requests),
          errorsTotal: BigInt(s.errors),
          requestsByCode: Object.fromEntries([...s.byCode].map(([code, n]) => [code, BigInt(n)])),
          latency: latency.get(method) ?? this.latency.empty(),
          inFlight: BigInt(s.inFlight),
        };
      }),
      inFlight: BigInt(this.inFlight),
    };
  }

  private stats(path: string): MethodStats {
    let s = this.methods.get(path);
    if (!s) {
      s = { requests: 0, errors: 0, inFlight: 0, byCode: new Map() };
      this.methods.set(path, s);
    }
    return s;
  }
}
