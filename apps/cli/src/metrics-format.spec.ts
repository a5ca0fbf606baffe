import { durationFromMs, metricsV1, timestampFromDate } from '@aether/proto';
import {
  formatSeconds,
  jobStatesText,
  latencyText,
  methodLabel,
  metricsText,
  parseSections,
  rpcTable,
} from './metrics-format';
import { UsageError } from './units';

const histogram = (p50: number, p99: number, count = 10n): metricsV1.LatencyHistogram =>
  metricsV1.LatencyHistogram.fromPartial({ count, p50Seconds: p50, p99Seconds: p99, maxSeconds: p99 * 2 });

const snapshot = (over: Partial<metricsV1.GetMetricsResponse> = {}): metricsV1.GetMetricsResponse =>
  metricsV1.GetMetricsResponse.fromPartial({
    time: timestampFromDate(new Date('2025-01-01T00:00:00Z')),
    daemon: 'aetherd',
    version: '0.1.0',
    ...over,
  });

describe('parsing --section', () => {
  it('reads comma-separated section names and refuses unknown ones', () => {
    expect(parseSections('jobs,rpc')).toEqual(['jobs', 'rpc']);
    expect(parseSections(' Host , jobs,host')).toEqual(['host', 'jobs']);
    expect(() => parseSections('jobs,cpu')).toThrow(
      new UsageError(
        'unknown section "cpu"; choose from jobs, rpc, policy, audit, artifacts, memory, events, process, host',
      ),
    );
    expect(() => parseSections(',')).toThrow(UsageError);
  });
});

describe('numbers for people', () => {
  it('formats latencies from microseconds to minutes', () => {
    expect(formatSeconds(0)).toBe('-');
    expect(formatSeconds(0.000042)).toBe('0.042ms');
    expect(formatSeconds(0.0025)).toBe('2.5ms');
    expect(formatSeconds(0.12)).toBe('120ms');
    expect(formatSeconds(1.5)).toBe('1.5s');
    expect(formatSeconds(123)).toBe('2m3s');
    expect(latencyText(histogram(0.002, 0.04))).toBe('p50 2ms, p99 40ms, max 80ms (10 observed)');
    expect(latencyText(histogram(0, 0, 0n))).toBeUndefined();
    expect(latencyText(undefined)).toBeUndefined();
  });

  it('lists job states in lifecycle order, non-zero only', () => {
    expect(
      jobStatesText({
        JOB_STATE_FAILED: 1n,
        JOB_STATE_PENDING: 2n,
        JOB_STATE_RUNNING: 3n,
        JOB_STATE_KILLED: 0n,
      }),
    ).toBe('PENDING 2, RUNNING 3, FAILED 1');
    expect(jobStatesText({ JOB_STATE_RUNNING: 0n })).toBe('none');
  });

  it('names methods as policy does', () => {
    expect(methodLabel('/aether.jobs.v1.JobService/SubmitJob')).toBe('jobs.SubmitJob');
  });
});

describe('the RPC table', () => {
  const rpc = metricsV1.RpcMetrics.fromPartial({
    inFlight: 1n,
    methods: [
      { method: '/aether.jobs.v1.JobService/GetJob', requestsTotal: 5n, latency: histogram(0.0012, 0.2) },
      {
        method: '/aether.events.v1.EventService/Subscribe',
        requestsTotal: 40n,
        errorsTotal: 2n,
        inFlight: 1n,
        latency: histogram(0.000123, 12.5),
      },
      { method: '/aether.jobs.v1.JobService/ListJobs', requestsTotal: 5n },
    ],
  });

  it('shows the most called methods first with calls, errors, p50/p99 in ms and in flight', () => {
    expect(rpcTable(rpc)).toBe(
      [
        '  METHOD            CALLS  ERRORS  P50 MS  P99 MS  IN FLIGHT',
        '  events.Subscribe  40     2       0.12    12500   1',
        '  jobs.GetJob       5      0       1.2     200     0',
        '  jobs.ListJobs     5      0       -       -       0',
        '',
      ].join('\n'),
    );
  });

  it('says how many methods it left out', () => {
    expect(rpcTable(rpc, 1)).toMatch(/events\.Subscribe.*\n {2}… 2 more methods \(--json shows all\)\n$/);
  });
});

describe('the summary', () => {
  it('shows only the sections the snapshot has', () => {
    const text = metricsText(snapshot({ host: undefined }));
    expect(text).toBe('aetherd 0.1.0, snapshot at 2025-01-01T00:00:00.000Z\n');
  });

  it('has a readable block per section', () => {
    const text = metricsText(
      snapshot({
        jobs: {
          jobsByState: { JOB_STATE_RUNNING: 2n, JOB_STATE_PENDING: 1n },
          queueDepth: 1n,
          concurrencyLimit: 8n,
          submittedTotal: 14n,
          startLatency: histogram(0.12, 0.45),
          cpuMillicoresAllocated: 1500n,
          memoryBytesAllocated: 1024n ** 3n,
          finishedTotalByState: {},
        },
        rpc: { methods: [], inFlight: 0n },
        policy: metricsV1.PolicyMetrics.fromPartial({
          allowTotal: 120n,
          denyTotal: 3n,
          askTotal: 1n,
          policySetHash: 'sha256:0123456789abcdef0123456789abcdef',
          policyCount: 12n,
        }),
        audit: metricsV1.AuditMetrics.fromPartial({
          recordsTotal: 1200n,
          lastSequence: 4567n,
          lagSeconds: 0.012,
        }),
        artifacts: metricsV1.ArtifactMetrics.fromPartial({
          artifacts: 12n,
          blobs: 1n,
          storedBytes: 2048n,
          logicalBytes: 4096n,
        }),
        memory: metricsV1.MemoryMetrics.fromPartial({ entries: 120n, versions: 340n, passages: 800n }),
        events: metricsV1.EventMetrics.fromPartial({
          headSequence: 1042n,
          oldestSequence: 1n,
          storedEvents: 1042n,
          subscribers: 2n,
          subscriberBufferLimit: 10000n,
        }),
        process: metricsV1.ProcessMetrics.fromPartial({
          pid: 1234n,
          uptime: durationFromMs(7_380_000),
          cpuUserSeconds: 12.3,
          cpuSystemSeconds: 4.5,
          rssBytes: 120n * 1024n * 1024n,
          heapUsedBytes: 40n * 1024n * 1024n,
          heapTotalBytes: 60n * 1024n * 1024n,
          openFds: 45n,
          eventLoopLagP50Seconds: 0.0012,
          eventLoopLagP99Seconds: 0.005,
          eventLoopLagMaxSeconds: 0.02,
          runtimeVersion: 'v20.19.0',
        }),
        host: metricsV1.HostMetrics.fromPartial({
          cpuCount: 8n,
          memoryTotalBytes: 16n * 1024n ** 3n,
          memoryAvailableBytes: 12n * 1024n ** 3n,
          loadAverage1m: 0.52,
          loadAverage5m: 0.4,
          loadAverage15m: 0.3,
          cgroupVersion: 'v2',
        }),
      }),
    );
    expect(text).toContain(
      [
        'Jobs',
        '  by state:       PENDING 1, RUNNING 2',
        '  queue:          1 pending, at most 8 starting or running at once',
        '  submitted:      14 since start',
        '  allocated:      cpu 1500m, memory 1 GiB',
        '  start latency:  p50 120ms, p99 450ms, max 900ms (10 observed)',
      ].join('\n'),
    );
    expect(text).toContain('RPC (0 methods called, 0 in flight)\n  no calls yet\n');
    expect(text).toMatch(/\n {2}decisions: +allow 120, deny 3, ask 1, engine errors 0\n/);
    expect(text).toMatch(/\n {2}policy set: +sha256:0123456789abcde… \(12 policies\)\n/);
    expect(text).toMatch(
      /\n {2}records: +1200 since start \(0 B\), last sequence 4567\n {2}pending: +0 not yet durable, lag 12ms\n/,
    );
    expect(text).toMatch(/\n {2}artifacts: +12 in 1 blob\n {2}bytes: +2 KiB stored, 4 KiB logical\n/);
    expect(text).toMatch(/\n {2}entries: +120 \(340 versions, 800 passages\)\n/);
    expect(text).toMatch(/\n {2}sequence: +head 1042, oldest 1 \(1042 stored\)\n/);
    expect(text).toMatch(/\n {2}subscribers: +2, 0 events buffered \(at most 10000 each\)\n/);
    expect(text).toMatch(/\n {2}pid: +1234 \(up 2h3m, node v20\.19\.0\)\n {2}cpu: +12s user, 4\.5s system\n/);
    expect(text).toMatch(/\n {2}memory: +rss 120 MiB, heap 40 MiB of 60 MiB\n/);
    expect(text).toMatch(/\n {2}event loop lag: +p50 1\.2ms, p99 5ms, max 20ms\n/);
    expect(text).toMatch(
      /Host\n {2}cpus: +8\n {2}load: +0\.52 0\.40 0\.30\n {2}memory: +4 GiB used of 16 GiB \(25%\)\n {2}cgroup: +v2\n$/,
    );
  });
});
