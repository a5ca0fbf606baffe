import { durationFromMs, jobsV1, metricsV1, timestampFromDate } from '@aether/proto';
import {
  CpuTracker,
  jobCpuSample,
  parseInterval,
  processCpuSample,
  sortJobs,
  topHeader,
  topRow,
  topScreen,
  type TopSnapshot,
} from './top-format';
import { UsageError } from './units';

const { JobState } = jobsV1;
const T0 = Date.parse('2025-01-01T12:00:00Z');

const job = (id: string, over: Partial<jobsV1.Job> = {}): jobsV1.Job =>
  jobsV1.Job.fromPartial({
    name: `jobs/${id}`,
    id,
    state: JobState.JOB_STATE_RUNNING,
    spec: { argv: ['/bin/sh', '-c', 'sleep 30'] },
    createTime: timestampFromDate(new Date(T0 - 300_000)),
    usage: {
      cpuUser: durationFromMs(1500),
      cpuSystem: durationFromMs(500),
      currentMemoryBytes: 3n * 1024n * 1024n,
      currentPids: 2n,
      sampleTime: timestampFromDate(new Date(T0)),
    },
    ...over,
  });

describe('--interval', () => {
  it('reads seconds, whole or fractional, from 0.1 to 3600', () => {
    expect(parseInterval('2')).toBe(2000);
    expect(parseInterval('0.5')).toBe(500);
    for (const bad of ['0', '0.05', '-1', '2s', 'abc', '3601'])
      expect(() => parseInterval(bad)).toThrow(UsageError);
  });
});

describe('CPU%', () => {
  it('is blank on the first sample and the CPU time used over the time between samples after', () => {
    const tracker = new CpuTracker();
    const first = tracker.update(new Map([['jobs/a', { cpuMs: 1000, atMs: 0 }]]));
    expect(first.get('jobs/a')).toBeUndefined();
    const second = tracker.update(new Map([['jobs/a', { cpuMs: 2500, atMs: 2000 }]]));
    expect(second.get('jobs/a')).toBe(75);
    const twoCores = tracker.update(new Map([['jobs/a', { cpuMs: 6500, atMs: 4000 }]]));
    expect(twoCores.get('jobs/a')).toBe(200);
  });

  it('keeps the last figure while the sample has not moved on, and forgets jobs that went away', () => {
    const tracker = new CpuTracker();
    tracker.update(new Map([['jobs/a', { cpuMs: 0, atMs: 0 }]]));
    tracker.update(new Map([['jobs/a', { cpuMs: 500, atMs: 1000 }]]));
    expect(tracker.update(new Map([['jobs/a', { cpuMs: 500, atMs: 1000 }]])).get('jobs/a')).toBe(50);
    tracker.update(new Map([['jobs/b', { cpuMs: 0, atMs: 1000 }]]));
    expect(tracker.update(new Map([['jobs/a', { cpuMs: 900, atMs: 2000 }]])).get('jobs/a')).toBeUndefined();
  });

  it('samples jobs from their usage and the daemon from its process metrics', () => {
    expect(jobCpuSample(job('a'), 1)).toEqual({ cpuMs: 2000, atMs: T0 });
    expect(jobCpuSample(job('a', { usage: undefined }), 1)).toBeUndefined();
    const m = metricsV1.GetMetricsResponse.fromPartial({
      time: timestampFromDate(new Date(T0)),
      process: { cpuUserSeconds: 1.25, cpuSystemSeconds: 0.25 },
    });
    expect(processCpuSample(m, 1)).toEqual({ cpuMs: 1500, atMs: T0 });
    expect(processCpuSample(undefined, 1)).toBeUndefined();
  });
});

describe('the screen', () => {
  const snapshot = (over: Partial<TopSnapshot> = {}): TopSnapshot => ({
    atMs: T0,
    metrics: metricsV1.GetMetricsResponse.fromPartial({
      daemon: 'aetherd',
      version: '0.1.0',
      jobs: {
        jobsByState: { JOB_STATE_RUNNING: 2n, JOB_STATE_PENDING: 1n, JOB_STATE_SUCCEEDED: 40n },
        queueDepth: 1n,
        concurrencyLimit: 8n,
      },
      process: {
        uptime: durationFromMs(3_600_000),
        rssBytes: 120n * 1024n * 1024n,
        heapUsedBytes: 40n * 1024n * 1024n,
        openFds: 45n,
      },
      host: {
        cpuCount: 8n,
        memoryTotalBytes: 16n * 1024n ** 3n,
        memoryAvailableBytes: 12n * 1024n ** 3n,
        loadAverage1m: 0.5,
        loadAverage5m: 0.25,
        loadAverage15m: 0.125,
      },
    }),
    jobs: [
      job('pending1', { state: JobState.JOB_STATE_PENDING, usage: undefined }),
      job('idle'),
      job('busy'),
    ],
    ...over,
  });

  it('has a header with host, the daemon and jobs by state', () => {
    const lines = topHeader(snapshot(), 1.25, { intervalMs: 2000 });
    expect(lines[0]).toMatch(/^aether top - \d\d:\d\d:\d\d {2}aetherd 0\.1\.0, up 1h0m, every 2s; q quits$/);
    expect(lines.slice(1)).toEqual([
      'Host     load 0.50 0.25 0.13 on 8 CPUs, memory 4 GiB used of 16 GiB (25%)',
      'aetherd  cpu 1.3%, rss 120 MiB, heap 40 MiB, 45 fds',
      'Jobs     PENDING 1, RUNNING 2, SUCCEEDED 40; queue 1 (at most 8 at once)',
    ]);
  });

  it('still shows the jobs when the metrics are unavailable', () => {
    const { metrics: _metrics, ...withoutMetrics } = snapshot();
    const lines = topHeader({ ...withoutMetrics, metricsError: 'UNIMPLEMENTED: not yet' }, undefined);
    expect(lines.slice(1)).toEqual([
      'Metrics  unavailable: UNIMPLEMENTED: not yet',
      'Jobs     PENDING 1, RUNNING 2',
    ]);
  });

  it('lists running jobs busiest first, then pending ones, with CPU%, memory, pids and age', () => {
    const cpu = new Map([
      ['jobs/busy', 97.25],
      ['jobs/idle', 0.5],
    ]);
    expect(sortJobs(snapshot().jobs, cpu).map((j) => j.id)).toEqual(['busy', 'idle', 'pending1']);
    expect(topRow(job('busy'), 97.25, T0)).toEqual([
      'busy',
      'RUNNING',
      '97.3',
      '3 MiB',
      '2',
      '5m',
      "/bin/sh -c 'sleep 30'",
    ]);
    const text = topScreen(snapshot(), cpu, undefined);
    expect(text.split('\n').slice(5)).toEqual([
      'JOB       STATE    CPU%  MEM    PIDS  AGE  COMMAND',
      "busy      RUNNING  97.3  3 MiB  2     5m   /bin/sh -c 'sleep 30'",
      "idle      RUNNING  0.5   3 MiB  2     5m   /bin/sh -c 'sleep 30'",
      "pending1  PENDING                     5m   /bin/sh -c 'sleep 30'",
      '',
    ]);
  });

  it('fits the terminal: lines cut to its width, rows to its height', () => {
    const many = snapshot({ jobs: Array.from({ length: 30 }, (_, i) => job(`j${i}`)) });
    const text = topScreen(many, new Map(), undefined, { width: 40, height: 15 });
    const lines = text.trimEnd().split('\n');
    expect(lines.length).toBeLessThanOrEqual(14);
    expect(lines.every((l) => l.length <= 40)).toBe(true);
    expect(lines.at(-1)).toBe('… 23 more');
  });

  it('says so when nothing is running', () => {
    expect(topScreen(snapshot({ jobs: [] }), new Map(), undefined)).toMatch(
      /\n\nno running, starting or pending jobs\n$/,
    );
  });
});
