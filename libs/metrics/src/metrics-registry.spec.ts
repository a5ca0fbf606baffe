import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import parsePrometheusText from 'parse-prometheus-text-format';
import { AuditLog } from '@aether/audit';
import { PolicyStore } from '@aether/policy';
import type { metricsV1 } from '@aether/proto';
import type { Decision, FinishedCall } from '@aether/rpc';
import { AuditMetrics } from './audit-metrics';
import { HostMetrics } from './host-metrics';
import { isMetricsPath, MetricsRegistry } from './metrics-registry';
import { PolicyMetrics } from './policy-metrics';
import { ProcessMetrics } from './process-metrics';
import { RpcMetrics } from './rpc-metrics';

const POLICY_DIR = resolve(__dirname, '..', '..', '..', 'deploy', 'policy');
const SUBMIT = '/aether.jobs.v1.JobService/SubmitJob';
const GET = '/aether.jobs.v1.JobService/GetJob';

type Families = ReturnType<typeof parsePrometheusText>;

/** The value of one series of a parsed family, found by its labels. */
function valueOf(families: Families, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no family ${name}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!sample?.value) throw new Error(`no sample of ${name} with ${JSON.stringify(labels)}`);
  return Number(sample.value);
}

/**
 * One series of a labeled histogram, parsed. parse-prometheus-text-format folds a histogram family into
 * one sample and keeps `_sum`/`_count` only without labels, so the series is selected by `label` and
 * that label removed before parsing.
 */
function histogramSeries(text: string, name: string, label: string, value: string): Families[number] {
  const own = `${label}="${value}"`;
  const lines = text
    .split('\n')
    .filter(
      (l) =>
        l === `# HELP ${name} ${l.slice(`# HELP ${name} `.length)}` ||
        l === `# TYPE ${name} histogram` ||
        (l.startsWith(`${name}_`) && l.includes(own)),
    )
    .map((l) => l.replace(`,${own}`, '').replace(`{${own},`, '{').replace(`{${own}}`, ''));
  const [family] = parsePrometheusText(`${lines.join('\n')}\n`);
  if (!family) throw new Error(`no series of ${name} with ${own}`);
  return family;
}

/** A call as the pipeline reports it to observers. */
function call(path: string, outcome: string, seconds: number, decision?: Decision): FinishedCall {
  return {
    path,
    action: 'jobs.X',
    actor: 'spiffe://aether.local/admin',
    requestId: 'r',
    resource: { type: 'service', id: 'jobs' },
    decision: decision ?? { effect: 'deny', policyIds: [], reason: 'not evaluated' },
    outcome,
    durationMs: seconds * 1000,
    ...(decision ? { policySeconds: seconds / 10 } : {}),
  };
}

describe('MetricsRegistry with the daemon sections', () => {
  let dir: string;
  let audit: AuditLog;
  let store: PolicyStore;
  let processMetrics: ProcessMetrics;
  let metrics: MetricsRegistry;
  const events: metricsV1.EventMetrics = {
    headSequence: 42n,
    oldestSequence: 3n,
    storedEvents: 40n,
    subscribers: 2n,
    emittedTotal: 17n,
    deliveredTotal: 30n,
    gapsTotal: 1n,
    slowDisconnectsTotal: 0n,
    bufferedEvents: 5n,
    subscriberBufferLimit: 10_000n,
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aether-metrics-spec-'));
    audit = await AuditLog.open({ path: join(dir, 'audit.jsonl'), daemon: 'aetherd' });
    store = new PolicyStore(POLICY_DIR);
    store.load();
    metrics = new MetricsRegistry('aetherd', '1.2.3');
    const rpc = new RpcMetrics(metrics);
    const policy = new PolicyMetrics(metrics, store);
    new AuditMetrics(metrics, audit);
    processMetrics = new ProcessMetrics(metrics);
    new HostMetrics(metrics);
    metrics.section('events', () => events);
    metrics.section('jobs', () => ({
      jobsByState: { JOB_STATE_PENDING: 2n, JOB_STATE_RUNNING: 1n },
      queueDepth: 2n,
      concurrencyLimit: 4n,
      submittedTotal: 9n,
      cpuMillicoresAllocated: 500n,
      memoryBytesAllocated: 1024n,
      finishedTotalByState: { JOB_STATE_SUCCEEDED: 5n, JOB_STATE_FAILED: 1n },
    }));
    const allow: Decision = { effect: 'allow', policyIds: ['admins-all'], reason: '' };
    const deny: Decision = { effect: 'deny', policyIds: ['default-deny'], reason: '' };
    const broken: Decision = { effect: 'deny', policyIds: ['engine-error'], reason: '' };
    const calls = [
      call(SUBMIT, 'OK', 0.002, allow),
      call(SUBMIT, 'OK', 0.004, allow),
      call(SUBMIT, 'PERMISSION_DENIED', 0.0003, deny),
      call(GET, 'NOT_FOUND', 0.7, allow),
      call(GET, 'PERMISSION_DENIED', 0.001, broken),
      // Ended before policy was asked: an RPC, but no decision.
      call(GET, 'UNAUTHENTICATED', 0.0001),
    ];
    for (const c of calls) {
      rpc.callStarted(c.path);
      rpc.callFinished(c);
      policy.callFinished(c);
    }
    rpc.callStarted(GET); // still in flight
    await Promise.all(
      [1, 2, 3].map((i) => audit.append({ actor: 'a', action: `x.${i}` }, { durable: true })),
    );
  });

  afterAll(async () => {
    processMetrics.close();
    await audit.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts calls per method by code, errors and in-flight calls, sorted by method', async () => {
    const { rpc } = await metrics.snapshot(['rpc']);
    expect(rpc!.methods.map((m) => m.method)).toEqual([GET, SUBMIT]);
    const [get, submit] = rpc!.methods;
    expect(submit).toMatchObject({
      requestsTotal: 3n,
      errorsTotal: 1n,
      requestsByCode: { OK: 2n, PERMISSION_DENIED: 1n },
      inFlight: 0n,
    });
    expect(get).toMatchObject({
      requestsTotal: 3n,
      errorsTotal: 3n,
      requestsByCode: { NOT_FOUND: 1n, PERMISSION_DENIED: 1n, UNAUTHENTICATED: 1n },
      inFlight: 1n,
    });
    expect(rpc!.inFlight).toBe(1n);
    expect(submit!.latency).toMatchObject({ count: 3n, maxSeconds: 0.004 });
    expect(submit!.latency!.sumSeconds).toBeCloseTo(0.0063, 10);
    expect(get!.latency!.maxSeconds).toBe(0.7);
  });

  it('counts decisions only for calls policy decided, an engine error as a deny too', async () => {
    const { policy } = await metrics.snapshot(['policy']);
    expect(policy).toMatchObject({
      allowTotal: 3n,
      denyTotal: 2n,
      askTotal: 0n,
      errorTotal: 1n,
      policySetHash: store.hash,
      policyCount: BigInt(store.current.policyIds.length),
      reloadFailuresTotal: 0n,
    });
    expect(policy!.evaluationLatency!.count).toBe(5n);
    expect(policy!.loadTime).toBeDefined();
  });

  it('reads the audit log: records, head, nothing pending after durable appends, commit latency', async () => {
    const { audit: a } = await metrics.snapshot(['audit']);
    expect(a).toMatchObject({
      recordsTotal: 3n,
      lastSequence: 3n,
      pendingRecords: 0n,
      lagSeconds: 0,
      writeErrorsTotal: 0n,
    });
    expect(a!.bytesWrittenTotal).toBeGreaterThan(300n);
    expect(a!.commitLatency!.count).toBeGreaterThanOrEqual(1n);
  });

  it('fills only the sections a read mask names, and always time, daemon and version', async () => {
    const s = await metrics.snapshot(['events', 'host']);
    expect(Object.keys(s).sort()).toEqual(['daemon', 'events', 'host', 'time', 'version']);
    expect(s).toMatchObject({ daemon: 'aetherd', version: '1.2.3', events });
    expect(s.host!.cgroupVersion).toMatch(/^(v1|hybrid|v2)$/);
    expect(s.host!.cpuCount).toBeGreaterThan(0n);
    expect(isMetricsPath('jobs')).toBe(true);
    expect(isMetricsPath('time')).toBe(true);
    expect(isMetricsPath('jobs.queue_depth')).toBe(false);
    expect(isMetricsPath('gpus')).toBe(false);
  });

  it('reports the process: pid, start time, CPU, memory, descriptors, runtime', async () => {
    const { process: p } = await metrics.snapshot(['process']);
    expect(p!.pid).toBe(BigInt(process.pid));
    expect(p!.rssBytes).toBeGreaterThan(0n);
    expect(p!.openFds).toBeGreaterThan(2n);
    expect(p!.runtimeVersion).toBe(process.version);
    expect(p!.cpuUserSeconds).toBeGreaterThan(0);
    expect(p!.eventLoopLagMaxSeconds).toBeGreaterThanOrEqual(p!.eventLoopLagP50Seconds);
  });

  it('refuses a section registered twice', () => {
    expect(() => metrics.section('events', () => events)).toThrow(/already registered/);
  });

  it('exposes the same numbers as Prometheus text that a real parser reads back', async () => {
    const typed = await metrics.snapshot();
    const text = await metrics.prometheusText();
    const families = parsePrometheusText(text);
    for (const f of families) {
      expect(f.name).toMatch(/^aether_[a-z0-9_]+$/);
      expect(f.help.length).toBeGreaterThan(3);
    }
    expect(valueOf(families, 'aether_build_info', { daemon: 'aetherd', version: '1.2.3' })).toBe(1);
    // RPC: per method and code, errors, in flight, and the latency histogram bucket by bucket.
    for (const m of typed.rpc!.methods) {
      for (const [code, n] of Object.entries(m.requestsByCode))
        expect(valueOf(families, 'aether_rpc_requests_total', { method: m.method, code })).toBe(Number(n));
      expect(valueOf(families, 'aether_rpc_errors_total', { method: m.method })).toBe(Number(m.errorsTotal));
      expect(valueOf(families, 'aether_rpc_method_in_flight', { method: m.method })).toBe(Number(m.inFlight));
      const [hist] = histogramSeries(text, 'aether_rpc_latency_seconds', 'method', m.method).metrics;
      if (!hist) throw new Error(`no latency of ${m.method}`);
      expect(hist.count).toBe(String(m.latency!.count));
      expect(Number(hist.sum)).toBeCloseTo(m.latency!.sumSeconds, 12);
      for (const b of m.latency!.buckets) {
        const le = b.upperBoundSeconds === Infinity ? '+Inf' : String(b.upperBoundSeconds);
        expect([le, hist.buckets?.[le]]).toEqual([le, String(b.cumulativeCount)]);
      }
      expect(valueOf(families, 'aether_rpc_latency_max_seconds', { method: m.method })).toBe(
        m.latency!.maxSeconds,
      );
    }
    expect(valueOf(families, 'aether_rpc_in_flight')).toBe(1);
    // Policy: counters, the set in force as an info label, its load time, and the decision histogram.
    expect(valueOf(families, 'aether_policy_allow_total')).toBe(3);
    expect(valueOf(families, 'aether_policy_deny_total')).toBe(2);
    expect(valueOf(families, 'aether_policy_error_total')).toBe(1);
    expect(valueOf(families, 'aether_policy_policy_count')).toBe(Number(typed.policy!.policyCount));
    expect(valueOf(families, 'aether_policy_info', { policy_set_hash: store.hash! })).toBe(1);
    expect(valueOf(families, 'aether_policy_load_time_seconds')).toBeCloseTo(
      store.loadTime!.getTime() / 1000,
      2,
    );
    const evaluation = families.find((f) => f.name === 'aether_policy_evaluation_latency_seconds')!;
    expect(evaluation.type).toBe('HISTOGRAM');
    expect(evaluation.metrics[0]!.count).toBe('5');
    // Maps become a label taken from the field name; `_total` fields are counters.
    const jobs = families.find((f) => f.name === 'aether_jobs')!;
    expect(jobs.type).toBe('GAUGE');
    expect(valueOf(families, 'aether_jobs', { state: 'JOB_STATE_PENDING' })).toBe(2);
    expect(valueOf(families, 'aether_jobs_finished_total', { state: 'JOB_STATE_SUCCEEDED' })).toBe(5);
    expect(families.find((f) => f.name === 'aether_jobs_finished_total')!.type).toBe('COUNTER');
    expect(valueOf(families, 'aether_jobs_submitted_total')).toBe(9);
    expect(valueOf(families, 'aether_jobs_queue_depth')).toBe(2);
    // A section added by a daemon needs no exposition code.
    expect(valueOf(families, 'aether_events_head_sequence')).toBe(42);
    expect(valueOf(families, 'aether_events_delivered_total')).toBe(30);
    expect(families.find((f) => f.name === 'aether_events_delivered_total')!.type).toBe('COUNTER');
    expect(families.find((f) => f.name === 'aether_events_subscribers')!.help).toBe('Connected subscribers.');
    // Audit and the rest.
    expect(valueOf(families, 'aether_audit_records_total')).toBe(3);
    expect(valueOf(families, 'aether_audit_last_sequence')).toBe(3);
    expect(valueOf(families, 'aether_audit_bytes_written_total')).toBe(
      Number(typed.audit!.bytesWrittenTotal),
    );
    expect(valueOf(families, 'aether_process_pid')).toBe(process.pid);
    expect(valueOf(families, 'aether_process_info', { runtime_version: process.version })).toBe(1);
    expect(valueOf(families, 'aether_host_cpu_count')).toBe(Number(typed.host!.cpuCount));
    expect(valueOf(families, 'aether_host_info', { cgroup_version: typed.host!.cgroupVersion })).toBe(1);
    // A LatencyHistogram field is exposed once, by its prom-client Histogram, never as gauges.
    expect(families.some((f) => f.name.startsWith('aether_jobs_start_latency'))).toBe(false);
  });

  it('scrapes again with the current numbers, counters never going backwards', async () => {
    const before = parsePrometheusText(await metrics.prometheusText());
    await audit.append({ actor: 'a', action: 'x.4' }, { durable: true });
    const [a, b] = await Promise.all([metrics.prometheusText(), metrics.prometheusText()]);
    // Concurrent scrapes run one after the other, each complete.
    for (const text of [a, b]) expect(parsePrometheusText(text).length).toBe(before.length);
    const after = parsePrometheusText(b);
    expect(valueOf(after, 'aether_audit_records_total')).toBe(
      valueOf(before, 'aether_audit_records_total') + 1,
    );
  });
});

describe('PolicyMetrics', () => {
  it('counts reloads refused because a file was invalid, and follows the set in force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aether-metrics-policy-'));
    try {
      cpSync(POLICY_DIR, dir, { recursive: true });
      const store = new PolicyStore(dir);
      store.load();
      const metrics = new MetricsRegistry('aurorad', '0');
      new PolicyMetrics(metrics, store);
      const first = (await metrics.snapshot(['policy'])).policy!;
      writeFileSync(join(dir, 'broken.cedar'), 'permit (principal, action, resource) when { oops };\n');
      expect(store.reload().applied).toBe(false);
      writeFileSync(
        join(dir, 'broken.cedar'),
        '@id("extra")\npermit (principal in Aether::Group::"admins", action, resource);\n',
      );
      expect(store.reload().applied).toBe(true);
      const after = (await metrics.snapshot(['policy'])).policy!;
      expect(after.reloadFailuresTotal).toBe(1n);
      expect(after.policyCount).toBe(first.policyCount + 1n);
      expect(after.policySetHash).not.toBe(first.policySetHash);
      expect(after.policySetHash).toBe(store.hash);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
