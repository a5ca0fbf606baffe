// Pure helpers of `aether jobs`: names, states, exit statuses and the text views of a job.
import { constants as osConstants } from 'node:os';
import { dateFromTimestamp, isTerminalJobState, jobsV1, msFromDuration } from '@aether/proto';
import {
  formatAge,
  formatBytes,
  formatCpu,
  formatDuration,
  resourceName,
  shellJoin,
  truncate,
  UsageError,
} from './units';
import { fields } from './output';

const { JobState } = jobsV1;

/** `jobs/<id>` from either that or a bare id. */
export function jobName(nameOrId: string): string {
  return resourceName('jobs', nameOrId, 'a job');
}

/** `RUNNING` from JOB_STATE_RUNNING. */
export function stateName(s: jobsV1.JobState): string {
  return jobsV1.jobStateToJSON(s).replace(/^JOB_STATE_/, '');
}

/** The states of `--state running,failed` (case-insensitive, with or without the JOB_STATE_ prefix). */
export function parseStates(text: string): jobsV1.JobState[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError('--state needs at least one state');
  const valid = Object.values(JobState)
    .filter(
      (v): v is jobsV1.JobState =>
        typeof v === 'number' && v !== JobState.JOB_STATE_UNSPECIFIED && v !== JobState.UNRECOGNIZED,
    )
    .map((s) => stateName(s).toLowerCase());
  return names.map((n) => {
    const key = n
      .toUpperCase()
      .replace(/^JOB_STATE_/, '')
      .replace(/-/g, '_');
    const s = jobsV1.jobStateFromJSON(`JOB_STATE_${key}`);
    if (s === JobState.UNRECOGNIZED || s === JobState.JOB_STATE_UNSPECIFIED)
      throw new UsageError(`unknown job state "${n}"; choose from ${valid.join(', ')}`);
    return s;
  });
}

export const isTerminal = isTerminalJobState;

/** The number of a signal by name (`SIGKILL` or `KILL` → 9); undefined when unknown. */
export function signalNumber(name: string): number | undefined {
  const full = name.toUpperCase().startsWith('SIG') ? name.toUpperCase() : `SIG${name.toUpperCase()}`;
  return (osConstants.signals as Record<string, number | undefined>)[full];
}

/**
 * The exit status `aether jobs run --wait/--follow` and `aether jobs wait` end with, as a shell would
 * report the process: 0 when it succeeded, its exit code when it exited non-zero, 128 + the signal
 * number when a signal killed it, and 1 for any other way of not succeeding (never started, lost,
 * cancelled, or stopped although it exited 0).
 */
export function exitCodeOf(job: Pick<jobsV1.Job, 'state' | 'exitStatus'>): number {
  if (job.state === JobState.JOB_STATE_SUCCEEDED) return 0;
  const es = job.exitStatus;
  if (es?.exitCode !== undefined && es.exitCode !== 0) return es.exitCode;
  if (es?.signal) {
    const n = signalNumber(es.signal);
    if (n !== undefined) return 128 + n;
  }
  return 1;
}

/** `exit 3`, `signal SIGKILL`, `signal SIGKILL (OOM)`, or `-` before the end. */
export function exitText(es: jobsV1.ExitStatus | undefined): string {
  if (!es) return '-';
  const extra = [es.oomKilled ? 'OOM' : '', es.coreDumped ? 'core dumped' : ''].filter(Boolean).join(', ');
  const base = es.signal ? es.signal : es.exitCode !== undefined ? String(es.exitCode) : '-';
  return extra ? `${base} (${extra})` : base;
}

const ms = (t: jobsV1.Job['createTime']): number | undefined =>
  t ? dateFromTimestamp(t).getTime() : undefined;

/**
 * How long the job ran: its final wall time once ended, the time since it started while it runs (the
 * usage sample may be a second old), undefined before it started.
 */
export function runMs(job: jobsV1.Job, now = Date.now()): number | undefined {
  const end = ms(job.endTime);
  if (end !== undefined && job.usage?.wall) return msFromDuration(job.usage.wall);
  const start = ms(job.startTime);
  if (start === undefined) return undefined;
  return Math.max(0, (end ?? now) - start);
}

/** The job id: the part of `jobs/<id>` after the slash. */
export const idOf = (job: Pick<jobsV1.Job, 'id' | 'name'>): string =>
  job.id || job.name.replace(/^jobs\//, '');

/** One row of `aether jobs ls`: ID STATE AGE DURATION EXIT COMMAND. */
export function listRow(job: jobsV1.Job, now = Date.now(), commandWidth = 48): string[] {
  const created = ms(job.createTime);
  const ran = runMs(job, now);
  return [
    idOf(job),
    stateName(job.state),
    created === undefined ? '-' : formatAge(now - created),
    ran === undefined ? '-' : formatDuration(ran),
    exitText(job.exitStatus),
    truncate(shellJoin(job.spec?.argv ?? []), commandWidth),
  ];
}

const iso = (t: jobsV1.Job['createTime']): string => (t ? dateFromTimestamp(t).toISOString() : '-');

function when(t: jobsV1.Job['createTime'], now: number): string {
  const at = ms(t);
  return at === undefined ? '-' : `${iso(t)} (${formatAge(now - at)} ago)`;
}

function usageText(job: jobsV1.Job): string | undefined {
  const u = job.usage;
  if (!u) return undefined;
  const parts = [
    `cpu ${u.cpuUser ? formatDuration(msFromDuration(u.cpuUser)) : '-'} user, ${u.cpuSystem ? formatDuration(msFromDuration(u.cpuSystem)) : '-'} sys`,
    `peak memory ${u.peakMemoryBytes > 0n ? formatBytes(u.peakMemoryBytes) : '-'}`,
  ];
  if (u.wall) parts.push(`wall ${formatDuration(msFromDuration(u.wall))}`);
  if (u.currentMemoryBytes > 0n) parts.push(`memory now ${formatBytes(u.currentMemoryBytes)}`);
  if (u.currentPids > 0n) parts.push(`pids now ${u.currentPids}`);
  if (u.ioReadBytes > 0n || u.ioWriteBytes > 0n)
    parts.push(`io ${formatBytes(u.ioReadBytes)} read, ${formatBytes(u.ioWriteBytes)} written`);
  return parts.join(', ');
}

function limitsText(spec: jobsV1.JobSpec | undefined): string {
  const r = spec?.resources;
  const parts: string[] = [];
  if (r?.cpuMillicores) parts.push(`cpu ${formatCpu(r.cpuMillicores)}`);
  if (r?.memoryBytes) parts.push(`memory ${formatBytes(r.memoryBytes)}`);
  if (r?.memorySwapBytes !== undefined) parts.push(`swap ${formatBytes(r.memorySwapBytes)}`);
  if (r?.pidsMax) parts.push(`pids ${r.pidsMax}`);
  if (r?.ioReadBps) parts.push(`io read ${formatBytes(r.ioReadBps)}/s`);
  if (r?.ioWriteBps) parts.push(`io write ${formatBytes(r.ioWriteBps)}/s`);
  if (r?.tmpSizeBytes) parts.push(`/tmp ${formatBytes(r.tmpSizeBytes)}`);
  if (spec?.timeout && msFromDuration(spec.timeout) > 0)
    parts.push(`timeout ${formatDuration(msFromDuration(spec.timeout))}`);
  return parts.join(', ') || '-';
}

const pairs = (m: Record<string, string> | undefined): string =>
  Object.entries(m ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ') || '-';

function networkName(n: jobsV1.NetworkMode | undefined): string {
  return n === jobsV1.NetworkMode.NETWORK_MODE_HOST ? 'host' : 'none';
}

/** The short view `run --wait` and `wait` print when the job ends. */
export function jobSummary(job: jobsV1.Job): string {
  const ran = runMs(job);
  return fields([
    ['Job', job.name],
    ['State', stateName(job.state)],
    ['Exit', exitText(job.exitStatus)],
    ['Reason', job.failureReason || undefined],
    ['Duration', ran === undefined ? '-' : formatDuration(ran)],
    ['Usage', usageText(job)],
    ['Output', `${formatBytes(job.stdoutBytes)} stdout, ${formatBytes(job.stderrBytes)} stderr`],
  ]);
}

/** The full view of `aether jobs get`. */
export function jobDetail(job: jobsV1.Job, now = Date.now()): string {
  const spec = job.spec;
  const mounts = (spec?.mounts ?? []).map(
    (m) => `${m.hostPath}:${m.containerPath}:${m.readOnly === false ? 'rw' : 'ro'}`,
  );
  const ran = runMs(job, now);
  const head = fields([
    ['Name', job.name],
    ['State', `${stateName(job.state)}${job.queuePosition ? ` (queue position ${job.queuePosition})` : ''}`],
    ['Reason', job.failureReason || undefined],
    ['Actor', job.actor || '-'],
    ['Intent', spec?.intentId || undefined],
    ['Command', shellJoin(spec?.argv ?? [])],
    ['Cwd', spec?.cwd || '/work'],
    ['Env', spec && Object.keys(spec.env).length ? Object.keys(spec.env).join(', ') : undefined],
    ['Labels', pairs(spec?.labels)],
    ['Profile', spec?.sandboxProfile || 'default'],
    ['Network', networkName(spec?.network)],
    ['Mounts', mounts.length ? mounts.join(', ') : undefined],
    ['Runtime', job.runtime ? `${job.runtime}${job.pid ? ` (pid ${job.pid})` : ''}` : undefined],
    ['Created', when(job.createTime, now)],
    ['Started', when(job.startTime, now)],
    ['Ended', when(job.endTime, now)],
    ['Duration', ran === undefined ? '-' : formatDuration(ran)],
    ['Exit', exitText(job.exitStatus)],
    ['Usage', usageText(job) ?? '-'],
    ['Limits', limitsText(spec)],
    [
      'Stop',
      `${spec?.stopSignal || 'SIGTERM'}, then SIGKILL after ${spec?.stopGracePeriod ? formatDuration(msFromDuration(spec.stopGracePeriod)) : '10s'}`,
    ],
    [
      'Logs',
      `${formatBytes(job.stdoutBytes)} stdout, ${formatBytes(job.stderrBytes)} stderr${job.logStartOffset > 0n ? `, first ${job.logStartOffset} bytes rotated away` : ''}`,
    ],
    ['Outputs', job.outputArtifacts.length ? job.outputArtifacts.join(', ') : undefined],
  ]);
  const events = job.events.map((e) => [
    iso(e.time),
    jobsV1.jobEventTypeToJSON(e.type).replace(/^JOB_EVENT_TYPE_/, ''),
    [e.message, e.actor ? `(by ${e.actor})` : ''].filter(Boolean).join(' '),
  ]);
  const w0 = Math.max(0, ...events.map((e) => e[0]!.length));
  const w1 = Math.max(0, ...events.map((e) => e[1]!.length));
  const lines = events.map(([t, type, msg]) => `  ${t!.padEnd(w0)}  ${type!.padEnd(w1)}  ${msg}`.trimEnd());
  return `${head}Events:\n${lines.length ? lines.join('\n') + '\n' : '  (none)\n'}`;
}
