// Pure helpers of `aether metrics` and `aether top`: the sections a snapshot has, and its text view.
import { actionName } from '@aether/rpc';
import { dateFromTimestamp, jobsV1, type metricsV1, msFromDuration } from '@aether/proto';
import { fields, table } from './output';
import { formatBytes, formatCpu, formatDuration, truncate, UsageError } from './units';

/** The top-level sections of GetMetricsResponse, in the order the summary shows them. */
export const METRICS_SECTIONS = [
  'jobs',
  'rpc',
  'policy',
  'audit',
  'artifacts',
  'memory',
  'events',
  'process',
  'host',
] as const;
export type MetricsSection = (typeof METRICS_SECTIONS)[number];

/** `--section jobs,rpc` → the read mask paths; an unknown name is a usage error. */
export function parseSections(text: string): MetricsSection[] {
  const names = text
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError('--section needs at least one section');
  for (const n of names)
    if (!(METRICS_SECTIONS as readonly string[]).includes(n))
      throw new UsageError(`unknown section "${n}"; choose from ${METRICS_SECTIONS.join(', ')}`);
  return [...new Set(names)] as MetricsSection[];
}

/**
 * Seconds as people read a latency: `0.04ms`, `2.5ms`, `120ms`, `1.5s`, `2m3s`; `-` when nothing was
 * measured.
 */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return '-';
  const ms = seconds * 1000;
  if (ms < 1) return `${Number(ms.toPrecision(2))}ms`;
  if (ms < 10) return `${Number(ms.toFixed(1))}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return formatDuration(ms);
}

/** Milliseconds with two significant digits for a table cell: `0.12`, `4.5`, `120`. */
function msCell(seconds: number | undefined): string {
  if (seconds === undefined || !(seconds > 0)) return '-';
  const ms = seconds * 1000;
  return ms >= 100 ? String(Math.round(ms)) : String(Number(ms.toPrecision(2)));
}

/** `p50 2.5ms, p99 40ms (120 observations)` of a histogram; undefined when it is empty. */
export function latencyText(h: metricsV1.LatencyHistogram | undefined): string | undefined {
  if (!h || h.count === 0n) return undefined;
  return `p50 ${formatSeconds(h.p50Seconds)}, p99 ${formatSeconds(h.p99Seconds)}, max ${formatSeconds(h.maxSeconds)} (${h.count} observed)`;
}

/** `RUNNING` from `JOB_STATE_RUNNING`. */
const stateLabel = (key: string): string => key.replace(/^JOB_STATE_/, '');

/**
 * Job counts by state, in the order of the JobState enum, non-zero only: `RUNNING 2, PENDING 1`;
 * `none` when every count is zero.
 */
export function jobStatesText(byState: Record<string, bigint>): string {
  const order = (k: string): number => {
    const v = jobsV1.jobStateFromJSON(k);
    return v === jobsV1.JobState.UNRECOGNIZED ? 1000 : v;
  };
  const parts = Object.entries(byState)
    .filter(([, n]) => n > 0n)
    .sort(([a], [b]) => order(a) - order(b))
    .map(([k, n]) => `${stateLabel(k)} ${n}`);
  return parts.join(', ') || 'none';
}

const count = (n: bigint, one: string, many = `${one}s`): string => `${n} ${n === 1n ? one : many}`;
const iso = (t: metricsV1.GetMetricsResponse['time']): string =>
  t ? dateFromTimestamp(t).toISOString() : '-';

/** A method path as policy names it: `/aether.jobs.v1.JobService/SubmitJob` → `jobs.SubmitJob`. */
export const methodLabel = (path: string): string => actionName(path);

/** The RPC table: the `top` most called methods, most calls first. */
export function rpcTable(rpc: metricsV1.RpcMetrics, top = 15): string {
  const methods = [...rpc.methods].sort((a, b) =>
    a.requestsTotal === b.requestsTotal
      ? a.method.localeCompare(b.method)
      : a.requestsTotal > b.requestsTotal
        ? -1
        : 1,
  );
  const rows = methods
    .slice(0, top)
    .map((m) => [
      methodLabel(m.method),
      String(m.requestsTotal),
      String(m.errorsTotal),
      msCell(m.latency?.p50Seconds),
      msCell(m.latency?.p99Seconds),
      String(m.inFlight),
    ]);
  const more = methods.length > top ? `  … ${methods.length - top} more methods (--json shows all)\n` : '';
  return (
    table(['METHOD', 'CALLS', 'ERRORS', 'P50 MS', 'P99 MS', 'IN FLIGHT'], rows)
      .split('\n')
      .map((l) => (l ? `  ${l}` : l))
      .join('\n') + more
  );
}

const indent = (text: string): string => text.replace(/^(?=.)/gm, '  ');

function jobsSection(j: metricsV1.JobMetrics): string {
  return fields([
    ['by state', jobStatesText(j.jobsByState)],
    ['queue', `${j.queueDepth} pending, at most ${j.concurrencyLimit} starting or running at once`],
    ['submitted', `${j.submittedTotal} since start`],
    [
      'finished',
      Object.keys(j.finishedTotalByState).length ? jobStatesText(j.finishedTotalByState) : undefined,
    ],
    [
      'allocated',
      `cpu ${j.cpuMillicoresAllocated > 0n ? formatCpu(Number(j.cpuMillicoresAllocated)) : '0'}, memory ${formatBytes(j.memoryBytesAllocated)}`,
    ],
    ['start latency', latencyText(j.startLatency) ?? '-'],
    ['queue wait', latencyText(j.queueWait)],
  ]);
}

function policySection(p: metricsV1.PolicyMetrics): string {
  const loaded = p.loadTime ? `, loaded ${iso(p.loadTime)}` : '';
  return fields([
    [
      'decisions',
      `allow ${p.allowTotal}, deny ${p.denyTotal}, ask ${p.askTotal}, engine errors ${p.errorTotal}`,
    ],
    [
      'policy set',
      `${p.policySetHash ? truncate(p.policySetHash, 23) : '-'} (${count(p.policyCount, 'policy', 'policies')}${loaded})`,
    ],
    ['reload failures', p.reloadFailuresTotal > 0n ? String(p.reloadFailuresTotal) : undefined],
    ['evaluation', latencyText(p.evaluationLatency)],
  ]);
}

function auditSection(a: metricsV1.AuditMetrics): string {
  return fields([
    [
      'records',
      `${a.recordsTotal} since start (${formatBytes(a.bytesWrittenTotal)}), last sequence ${a.lastSequence}`,
    ],
    [
      'pending',
      `${a.pendingRecords} not yet durable, lag ${a.lagSeconds > 0 ? formatSeconds(a.lagSeconds) : '0s'}`,
    ],
    ['write errors', String(a.writeErrorsTotal)],
    ['commit', latencyText(a.commitLatency)],
  ]);
}

function artifactsSection(a: metricsV1.ArtifactMetrics): string {
  const quota = a.quotaBytes > 0n ? ` (quota ${formatBytes(a.quotaBytes)})` : '';
  return fields([
    ['artifacts', `${a.artifacts} in ${count(a.blobs, 'blob')}`],
    ['bytes', `${formatBytes(a.storedBytes)} stored, ${formatBytes(a.logicalBytes)} logical${quota}`],
    [
      'since start',
      `${a.createdTotal} created, ${a.deletedTotal} deleted, ${formatBytes(a.ingestedBytesTotal)} ingested`,
    ],
  ]);
}

function memorySection(m: metricsV1.MemoryMetrics): string {
  return fields([
    ['entries', `${m.entries} (${count(m.versions, 'version')}, ${count(m.passages, 'passage')})`],
    ['database', formatBytes(m.databaseBytes)],
    ['searches', `${m.searchesTotal} since start`],
    ['search latency', latencyText(m.searchLatency)],
  ]);
}

function eventsSection(e: metricsV1.EventMetrics): string {
  return fields([
    ['sequence', `head ${e.headSequence}, oldest ${e.oldestSequence} (${e.storedEvents} stored)`],
    ['since start', `${e.emittedTotal} emitted, ${e.deliveredTotal} delivered`],
    [
      'subscribers',
      `${e.subscribers}, ${e.bufferedEvents} events buffered (at most ${e.subscriberBufferLimit} each)`,
    ],
    ['slow', `${count(e.gapsTotal, 'gap')} reported, ${e.slowDisconnectsTotal} disconnected`],
  ]);
}

function processSection(p: metricsV1.ProcessMetrics): string {
  return fields([
    [
      'pid',
      `${p.pid} (${[
        p.uptime ? `up ${formatDuration(msFromDuration(p.uptime))}` : '',
        p.runtimeVersion ? `node ${p.runtimeVersion}` : '',
      ]
        .filter(Boolean)
        .join(', ')})`.replace(' ()', ''),
    ],
    [
      'cpu',
      `${formatDuration(p.cpuUserSeconds * 1000)} user, ${formatDuration(p.cpuSystemSeconds * 1000)} system`,
    ],
    [
      'memory',
      `rss ${formatBytes(p.rssBytes)}, heap ${formatBytes(p.heapUsedBytes)} of ${formatBytes(p.heapTotalBytes)}`,
    ],
    ['open fds', String(p.openFds)],
    [
      'event loop lag',
      `p50 ${formatSeconds(p.eventLoopLagP50Seconds)}, p99 ${formatSeconds(p.eventLoopLagP99Seconds)}, max ${formatSeconds(p.eventLoopLagMaxSeconds)}`,
    ],
  ]);
}

/** `3.2 GiB used of 16 GiB (20%)` of the host's memory. */
export function hostMemoryText(h: metricsV1.HostMetrics): string {
  const used = h.memoryTotalBytes - h.memoryAvailableBytes;
  const pct =
    h.memoryTotalBytes > 0n ? ` (${Math.round((Number(used) / Number(h.memoryTotalBytes)) * 100)}%)` : '';
  return `${formatBytes(used)} used of ${formatBytes(h.memoryTotalBytes)}${pct}`;
}

/** `0.52 0.40 0.30` of the host's load averages. */
export const loadText = (h: metricsV1.HostMetrics): string =>
  [h.loadAverage1m, h.loadAverage5m, h.loadAverage15m].map((l) => l.toFixed(2)).join(' ');

function hostSection(h: metricsV1.HostMetrics): string {
  return fields([
    ['cpus', String(h.cpuCount)],
    ['load', loadText(h)],
    ['memory', hostMemoryText(h)],
    ['cgroup', h.cgroupVersion || undefined],
  ]);
}

/**
 * The summary `aether metrics` prints: a title line, then one block per section the snapshot has
 * (unset sections are left out), e.g. `Jobs`, `RPC (12 methods, 1 in flight)`.
 */
export function metricsText(m: metricsV1.GetMetricsResponse, topMethods = 15): string {
  const blocks: string[] = [`${m.daemon || 'daemon'} ${m.version}, snapshot at ${iso(m.time)}\n`];
  const add = (title: string, body: string): void => {
    blocks.push(`${title}\n${indent(body)}`);
  };
  if (m.jobs) add('Jobs', jobsSection(m.jobs));
  if (m.rpc) {
    const title = `RPC (${count(BigInt(m.rpc.methods.length), 'method')} called, ${m.rpc.inFlight} in flight)`;
    blocks.push(`${title}\n${m.rpc.methods.length ? rpcTable(m.rpc, topMethods) : '  no calls yet\n'}`);
  }
  if (m.policy) add('Policy', policySection(m.policy));
  if (m.audit) add('Audit', auditSection(m.audit));
  if (m.artifacts) add('Artifacts', artifactsSection(m.artifacts));
  if (m.memory) add('Memory', memorySection(m.memory));
  if (m.events) add('Events', eventsSection(m.events));
  if (m.process) add('Process', processSection(m.process));
  if (m.host) add('Host', hostSection(m.host));
  return blocks.join('\n');
}
