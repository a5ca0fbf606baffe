// Pure helpers of `aether top`: CPU% from successive samples, and the screen of one snapshot.
import { dateFromTimestamp, jobsV1, type metricsV1, msFromDuration } from '@aether/proto';
import { idOf, stateName } from './jobs-format';
import { hostMemoryText, jobStatesText, loadText } from './metrics-format';
import { table } from './output';
import { formatAge, formatBytes, formatCpu, formatDuration, shellJoin, truncate, UsageError } from './units';

const { JobState } = jobsV1;

/** The states `aether top` lists, in the order it lists them. */
export const TOP_STATES = [
  JobState.JOB_STATE_RUNNING,
  JobState.JOB_STATE_STARTING,
  JobState.JOB_STATE_PENDING,
];

/** `--interval 2` or `0.5`: seconds between refreshes, 0.1 to 3600, in milliseconds. */
export function parseInterval(text: string): number {
  const s = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(s >= 0.1 && s <= 3600))
    throw new UsageError(`interval "${text}" must be a number of seconds from 0.1 to 3600, e.g. 2 or 0.5`);
  return Math.round(s * 1000);
}

/** CPU time used so far and when that was measured, both in milliseconds. */
export interface CpuSample {
  cpuMs: number;
  atMs: number;
}

/** A job's CPU sample: user + system time, at the usage's sample time (else `fallbackAtMs`). */
export function jobCpuSample(job: jobsV1.Job, fallbackAtMs: number): CpuSample | undefined {
  const u = job.usage;
  if (!u || (!u.cpuUser && !u.cpuSystem)) return undefined;
  const cpuMs = (u.cpuUser ? msFromDuration(u.cpuUser) : 0) + (u.cpuSystem ? msFromDuration(u.cpuSystem) : 0);
  return { cpuMs, atMs: u.sampleTime ? dateFromTimestamp(u.sampleTime).getTime() : fallbackAtMs };
}

/** The daemon's own CPU sample, from a metrics snapshot's process section. */
export function processCpuSample(
  m: metricsV1.GetMetricsResponse | undefined,
  fallbackAtMs: number,
): CpuSample | undefined {
  if (!m?.process) return undefined;
  return {
    cpuMs: (m.process.cpuUserSeconds + m.process.cpuSystemSeconds) * 1000,
    atMs: m.time ? dateFromTimestamp(m.time).getTime() : fallbackAtMs,
  };
}

/**
 * CPU% (100 = one core busy) between successive samples of each thing tracked (jobs, the daemon):
 * undefined on the first sample. When a sample has not moved on (the same measurement again) the last
 * percentage is kept. Things not seen in an update are forgotten.
 */
export class CpuTracker {
  private readonly last = new Map<string, { sample: CpuSample; percent: number | undefined }>();

  update(samples: ReadonlyMap<string, CpuSample | undefined>): Map<string, number | undefined> {
    const out = new Map<string, number | undefined>();
    for (const [key, sample] of samples) {
      const prev = this.last.get(key);
      let percent: number | undefined;
      if (sample && prev) {
        const dt = sample.atMs - prev.sample.atMs;
        percent = dt > 0 ? Math.max(0, ((sample.cpuMs - prev.sample.cpuMs) / dt) * 100) : prev.percent;
      }
      out.set(key, percent);
      // A sample no newer than the one kept would only shorten the next interval: keep the older one.
      if (sample)
        this.last.set(key, {
          sample: prev && sample.atMs <= prev.sample.atMs ? prev.sample : sample,
          percent,
        });
    }
    for (const key of this.last.keys()) if (!samples.has(key)) this.last.delete(key);
    return out;
  }
}

/** `12.5` for a CPU%, empty when unknown. */
export const percentText = (p: number | undefined): string => (p === undefined ? '' : p.toFixed(1));

/** What one refresh of `aether top` read. */
export interface TopSnapshot {
  /** When it was read (ms since the epoch). */
  atMs: number;
  metrics?: metricsV1.GetMetricsResponse;
  /** Why there are no metrics (e.g. `UNIMPLEMENTED: …`). */
  metricsError?: string;
  jobs: jobsV1.Job[];
  /** More jobs matched than were read. */
  moreJobs?: boolean;
  /** Why there are no jobs. */
  jobsError?: string;
}

export interface TopLayout {
  /** Terminal columns; lines are cut to fit. Undefined: no limit. */
  width?: number;
  /** Terminal rows; job rows are cut to fit. Undefined: no limit. */
  height?: number;
  /** Refresh interval shown in the title; undefined for a single snapshot. */
  intervalMs?: number;
}

const stateRank = (s: jobsV1.JobState): number => {
  const i = TOP_STATES.indexOf(s);
  return i < 0 ? TOP_STATES.length : i;
};

const createdMs = (j: jobsV1.Job): number => (j.createTime ? dateFromTimestamp(j.createTime).getTime() : 0);

/** Running first, busiest first; then starting and pending jobs, oldest first. */
export function sortJobs(
  jobs: readonly jobsV1.Job[],
  cpu: ReadonlyMap<string, number | undefined>,
): jobsV1.Job[] {
  return [...jobs].sort(
    (a, b) =>
      stateRank(a.state) - stateRank(b.state) ||
      (cpu.get(b.name) ?? -1) - (cpu.get(a.name) ?? -1) ||
      createdMs(a) - createdMs(b),
  );
}

/** One row of the job table: JOB STATE CPU% MEM PIDS AGE COMMAND. */
export function topRow(job: jobsV1.Job, cpuPercent: number | undefined, nowMs: number): string[] {
  const u = job.usage;
  const created = job.createTime ? dateFromTimestamp(job.createTime).getTime() : undefined;
  return [
    idOf(job),
    stateName(job.state),
    percentText(cpuPercent),
    u && u.currentMemoryBytes > 0n ? formatBytes(u.currentMemoryBytes) : '',
    u && u.currentPids > 0n ? String(u.currentPids) : '',
    created === undefined ? '' : formatAge(nowMs - created),
    shellJoin(job.spec?.argv ?? []),
  ];
}

/** The `Jobs` line: counts by state from the metrics, else from the jobs listed. */
function jobsLine(s: TopSnapshot): string {
  const j = s.metrics?.jobs;
  if (j) {
    const allocated =
      j.cpuMillicoresAllocated > 0n || j.memoryBytesAllocated > 0n
        ? `; allocated cpu ${formatCpu(Number(j.cpuMillicoresAllocated))}, memory ${formatBytes(j.memoryBytesAllocated)}`
        : '';
    return `${jobStatesText(j.jobsByState)}; queue ${j.queueDepth} (at most ${j.concurrencyLimit} at once)${allocated}`;
  }
  const byState: Record<string, bigint> = {};
  for (const job of s.jobs) {
    const k = jobsV1.jobStateToJSON(job.state);
    byState[k] = (byState[k] ?? 0n) + 1n;
  }
  return `${jobStatesText(byState)}${s.moreJobs ? ' (and more)' : ''}`;
}

/** The header lines: title, host, the daemon process, jobs. */
export function topHeader(s: TopSnapshot, processCpu: number | undefined, layout: TopLayout = {}): string[] {
  const m = s.metrics;
  const clock = new Date(s.atMs).toTimeString().slice(0, 8);
  const every =
    layout.intervalMs === undefined ? '' : `, every ${formatDuration(layout.intervalMs)}; q quits`;
  const up = m?.process?.uptime ? `, up ${formatDuration(msFromDuration(m.process.uptime))}` : '';
  const lines = [`aether top - ${clock}  ${m ? `${m.daemon} ${m.version}${up}` : 'aetherd'}${every}`];
  if (m?.host)
    lines.push(
      `Host     load ${loadText(m.host)} on ${m.host.cpuCount} CPUs, memory ${hostMemoryText(m.host)}`,
    );
  if (m?.process) {
    const p = m.process;
    const cpu = processCpu === undefined ? '' : `cpu ${percentText(processCpu)}%, `;
    lines.push(
      `${(m.daemon || 'aetherd').padEnd(8)} ${cpu}rss ${formatBytes(p.rssBytes)}, heap ${formatBytes(p.heapUsedBytes)}, ${p.openFds} fds`,
    );
  }
  if (s.metricsError) lines.push(`Metrics  unavailable: ${s.metricsError}`);
  lines.push(`Jobs     ${jobsLine(s)}`);
  return lines;
}

/**
 * The whole screen of one refresh: the header, a blank line, and the table of running, starting and
 * pending jobs (cut to the terminal's height with a `… N more` line; every line cut to its width).
 */
export function topScreen(
  s: TopSnapshot,
  cpu: ReadonlyMap<string, number | undefined>,
  processCpu: number | undefined,
  layout: TopLayout = {},
): string {
  const head = topHeader(s, processCpu, layout);
  const jobs = sortJobs(s.jobs, cpu);
  let body: string[];
  if (s.jobsError) body = [`jobs unavailable: ${s.jobsError}`];
  else if (jobs.length === 0) body = ['no running, starting or pending jobs'];
  else {
    const room = layout.height === undefined ? jobs.length : Math.max(1, layout.height - head.length - 3);
    const shown = jobs.length > room ? jobs.slice(0, room - 1) : jobs;
    body = table(
      ['JOB', 'STATE', 'CPU%', 'MEM', 'PIDS', 'AGE', 'COMMAND'],
      shown.map((j) => topRow(j, cpu.get(j.name), s.atMs)),
    )
      .trimEnd()
      .split('\n');
    const hidden = jobs.length - shown.length;
    if (hidden > 0 || s.moreJobs)
      body.push(`… ${hidden > 0 ? `${hidden}${s.moreJobs ? '+' : ''}` : 'and'} more`);
  }
  const lines = [...head, '', ...body];
  return lines.map((l) => (layout.width === undefined ? l : truncate(l, layout.width))).join('\n') + '\n';
}
