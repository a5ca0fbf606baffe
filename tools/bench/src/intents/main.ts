/**
 * Intents benchmark: what aurorad adds to a job. An intent that runs one `/bin/true` job (free text
 * `run /bin/true`: the run-command playbook, one jobs.run step) against the same job submitted straight to
 * aetherd, end to end from a client, in one run.
 *
 *   node tools/bench/dist/intents/main.js [--json FILE] [--iterations 40] [--warmup 5] [--no-wait-idle]
 *        [--profile DIR]
 *
 * One stack from tools/e2e (`Stack`: fresh PKI, the shipped policy and playbooks, mTLS sockets; aetherd and
 * aurorad as real processes from their built dist/, so build first; cfcd is not started, nothing here needs
 * it), one admin client. Runs as root (runc, cgroups).
 *
 *  - direct: SubmitJob of `/bin/true` with the spec the playbook makes (1000 millicores, 512 MiB, 256 pids,
 *    300 s timeout, no network), then one WaitJob long-poll (`wait_timeout`, as aurorad waits) until the job
 *    is terminal: submit call start → WaitJob answered.
 *  - intent: SubmitIntent `run /bin/true`, then WatchIntent until the message for the terminal state:
 *    submit call start → that message received. aurorad's path adds planning, the policy pre-check, its
 *    SQLite writes, the WaitJob, reading the job's stdout (StreamJobLogs), GetArtifact for each output (none
 *    here); the summary entry in memory (AddEntry) is written just after the terminal state (reported, not
 *    counted).
 *
 * `--warmup` of each first, then `--iterations` pairs, the order alternating every iteration (direct first,
 * then intent first) so drift hits both alike. After each measurement the benchmark waits until its job is
 * CLEANED_UP (aetherd runs `runc delete` after it answers WaitJob; GetJob every 20 ms) and 50 ms more, so
 * no measurement overlaps the tail of the one before. Where the intent's time goes comes from its own event
 * times and its job's (both millisecond resolution), this process's clock at the ends, and the daemons'
 * access log lines (each call's time in the server). Other processes' CPU is counted per iteration from
 * /proc (everything but this process, the daemons and what runs under the stack's directory).
 * `--profile DIR`: the daemons run with `--cpu-prof` and write their profiles into DIR when they stop.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { AetherClient } from '@aether/client';
import { Stack, repoRoot, type DaemonProcess } from '@aether/e2e';
import { durationFromMs, intentsV1, jobsV1, type timestampV1 } from '@aether/proto';
import { serverStreamCall } from '@aether/rpc';
import { codeVersion, machineBusyMicros, machineInfo } from '../machine';
import { median, summarize, type LatencySummary } from '../stats';

const { IntentState, IntentEventType } = intentsV1;
const { JobState, JobEventType, NetworkMode } = jobsV1;
const INTENT_TEXT = 'run /bin/true';
/** The target of the issue: what aurorad may add to the p50, in ms. */
const TARGET_ADDED_MS = 20;

interface Params {
  iterations: number;
  warmup: number;
  waitIdle: boolean;
  profileDir: string | undefined;
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      json: { type: 'string' },
      iterations: { type: 'string', default: '40' },
      warmup: { type: 'string', default: '5' },
      'no-wait-idle': { type: 'boolean', default: false },
      profile: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/intents/main.js [--json FILE] [--iterations 40] [--warmup 5] [--no-wait-idle]\n' +
        '         [--profile DIR]',
    );
    process.exit(0);
  }
  const count = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  return {
    params: {
      iterations: count('iterations', values.iterations, 1),
      warmup: count('warmup', values.warmup, 0),
      waitIdle: !values['no-wait-idle'],
      profileDir: values.profile,
    },
    jsonFile: values.json,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Clocks and processes

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wall clock in ms since the epoch with sub-millisecond resolution (the daemons stamp events with Date). */
const wallMs = (): number => performance.timeOrigin + performance.now();

const tsMs = (t: timestampV1.Timestamp | undefined): number =>
  t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : NaN;

/** CPU time of a live process so far (utime + stime, USER_HZ 100), in ms; NaN once it is gone. */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/**
 * Waits until the machine is idle (under 10 % of one CPU busy over two 1-second samples), at most
 * `limitMs`; returns the busy fraction of the last sample, so the report can say when it was not.
 */
async function waitForIdle(limitMs: number): Promise<number> {
  const until = Date.now() + limitMs;
  const sample = async (): Promise<number> => {
    const b0 = machineBusyMicros();
    await sleep(1_000);
    return (machineBusyMicros() - b0) / 1e6;
  };
  let busy = await sample();
  while (Date.now() < until) {
    if (busy < 0.1 && (busy = await sample()) < 0.1) return busy;
    process.stderr.write(`waiting for the machine to be idle (${Math.round(busy * 100)} % of a CPU busy)…\n`);
    busy = await sample();
  }
  return busy;
}

/**
 * CPU time (ms) of every process on the machine that is not this benchmark's: not this process, not the
 * daemons, nothing whose command line names the stack's directory (conmon, runc, the jobs). Counted over
 * processes alive at both ends of a window, so what other processes used meanwhile is the difference.
 */
class OtherProcesses {
  private readonly ours = new Map<number, boolean>();

  constructor(
    private readonly pids: number[],
    private readonly stackDir: string,
  ) {}

  private isOurs(pid: number): boolean {
    let v = this.ours.get(pid);
    if (v === undefined) {
      try {
        // A daemon's own helpers (aetherd's process launcher) are the daemon's work, not other load.
        const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
        v =
          this.pids.includes(pid) ||
          this.pids.includes(ppid) ||
          readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(this.stackDir);
      } catch {
        v = true; // gone: not counted
      }
      this.ours.set(pid, v);
    }
    return v;
  }

  snapshot(): Map<number, { name: string; cpu: number }> {
    const out = new Map<number, { name: string; cpu: number }>();
    let entries: string[] = [];
    try {
      entries = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
    } catch {
      return out;
    }
    for (const d of entries) {
      const pid = Number(d);
      if (this.isOurs(pid)) continue;
      const cpu = processCpuMs(pid);
      if (!Number.isFinite(cpu)) continue;
      let name = '?';
      try {
        name = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
          .split('\0')
          .filter(Boolean)
          .join(' ')
          .slice(0, 80);
        if (!name) name = `[${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}]`;
      } catch {
        // gone meanwhile
      }
      out.set(pid, { name, cpu });
    }
    return out;
  }

  /** CPU ms other processes used between two snapshots; adds each process's share to `byProcess`. */
  static since(
    before: Map<number, { name: string; cpu: number }>,
    after: Map<number, { name: string; cpu: number }>,
    byProcess: Map<string, number>,
  ): number {
    let ms = 0;
    for (const [pid, { name, cpu }] of after) {
      const c0 = before.get(pid);
      if (c0 === undefined || cpu <= c0.cpu) continue;
      ms += cpu - c0.cpu;
      const key = `${name} (${pid})`;
      byProcess.set(key, (byProcess.get(key) ?? 0) + cpu - c0.cpu);
    }
    return ms;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The two paths

/** The job the run-command playbook makes of `run /bin/true` (its parameter defaults). */
const DIRECT_SPEC = jobsV1.JobSpec.fromPartial({
  argv: ['/bin/true'],
  network: NetworkMode.NETWORK_MODE_NONE,
  resources: { cpuMillicores: 1000, memoryBytes: 512 * 1024 * 1024, pidsMax: 256 },
  timeout: durationFromMs(300_000),
});
const WAIT_MS = 60_000;

const jobEventMs = (job: jobsV1.Job, type: jobsV1.JobEventType): number =>
  tsMs(job.events.find((e) => e.type === type)?.time);

const intentEventMs = (intent: intentsV1.Intent, type: intentsV1.IntentEventType): number =>
  tsMs(intent.events.find((e) => e.type === type)?.time);

/** Times of one job from its own records (ms since the epoch). */
interface JobTimes {
  name: string;
  submitted: number;
  started: number;
  exited: number;
  cleanedUp: number;
}

/** CPU used by the daemons and this process over one measurement, up to its job's cleanup (ms). */
interface CpuUse {
  aetherd: number;
  aurorad: number;
  client: number;
}

interface DirectSample {
  /** 0-based iteration; warm-ups are not kept. */
  iteration: number;
  /** Whether this path ran first in its iteration. */
  first: boolean;
  /** client: SubmitJob call start → WaitJob answered, ms */
  totalMs: number;
  /** client: SubmitJob call start → answered, ms */
  submitCallMs: number;
  start: number;
  end: number;
  job: JobTimes;
  cpu: CpuUse;
}

interface IntentSample {
  iteration: number;
  first: boolean;
  /** client: SubmitIntent call start → WatchIntent message with the terminal state, ms */
  totalMs: number;
  /** client: SubmitIntent call start → answered (planned, checked, RUNNING), ms */
  submitCallMs: number;
  /** Messages WatchIntent sent (the first is the snapshot). */
  watchMessages: number;
  start: number;
  end: number;
  intent: {
    name: string;
    submitted: number;
    planned: number;
    stepStarted: number;
    stepSucceeded: number;
    summaryWritten: number;
    terminal: number;
  };
  job: JobTimes;
  cpu: CpuUse;
}

class Bench {
  constructor(
    private readonly client: AetherClient,
    private readonly aetherdPid: number,
    private readonly auroradPid: number,
  ) {}

  private async getJob(name: string): Promise<jobsV1.Job> {
    const { job } = await this.client.call(this.client.jobs, 'getJob', { name });
    if (!job) throw new Error(`GetJob ${name} answered without a job`);
    return job;
  }

  /** Waits (outside any measurement) until aetherd has cleaned the job up; returns its record. */
  private async cleanedUp(name: string): Promise<jobsV1.Job> {
    const until = Date.now() + 10_000;
    await sleep(60);
    for (;;) {
      const job = await this.getJob(name);
      if (job.events.some((e) => e.type === JobEventType.JOB_EVENT_TYPE_CLEANED_UP)) return job;
      if (Date.now() > until) throw new Error(`${name} was not cleaned up within 10 s`);
      await sleep(20);
    }
  }

  private jobTimes(job: jobsV1.Job): JobTimes {
    return {
      name: job.name,
      submitted: jobEventMs(job, JobEventType.JOB_EVENT_TYPE_SUBMITTED),
      started: jobEventMs(job, JobEventType.JOB_EVENT_TYPE_STARTED),
      exited: jobEventMs(job, JobEventType.JOB_EVENT_TYPE_EXITED),
      cleanedUp: jobEventMs(job, JobEventType.JOB_EVENT_TYPE_CLEANED_UP),
    };
  }

  private cpuNow(): CpuUse {
    const c = process.cpuUsage();
    return {
      aetherd: processCpuMs(this.aetherdPid),
      aurorad: processCpuMs(this.auroradPid),
      client: (c.user + c.system) / 1000,
    };
  }

  private cpuSince(c0: CpuUse): CpuUse {
    const c1 = this.cpuNow();
    return {
      aetherd: c1.aetherd - c0.aetherd,
      aurorad: c1.aurorad - c0.aurorad,
      client: c1.client - c0.client,
    };
  }

  async direct(iteration: number, first: boolean): Promise<DirectSample> {
    const c0 = this.cpuNow();
    const start = wallMs();
    const { job: submitted } = await this.client.call(
      this.client.jobs,
      'submitJob',
      jobsV1.SubmitJobRequest.fromPartial({ spec: DIRECT_SPEC }),
    );
    const answered = wallMs();
    if (!submitted) throw new Error('SubmitJob answered without a job');
    let job = submitted;
    while (!(await this.waitOnce(job.name, (j) => (job = j)))) {
      // A WaitJob that came back before the end (wait_timeout): ask again.
    }
    const end = wallMs();
    if (job.state !== JobState.JOB_STATE_SUCCEEDED)
      throw new Error(`${job.name} ended ${jobsV1.jobStateToJSON(job.state)}: ${job.failureReason}`);
    const done = await this.cleanedUp(job.name);
    const cpu = this.cpuSince(c0);
    return {
      iteration,
      first,
      totalMs: end - start,
      submitCallMs: answered - start,
      start,
      end,
      job: this.jobTimes(done),
      cpu,
    };
  }

  private async waitOnce(name: string, set: (j: jobsV1.Job) => void): Promise<boolean> {
    const res = await this.client.call(
      this.client.jobs,
      'waitJob',
      jobsV1.WaitJobRequest.fromPartial({ name, waitTimeout: durationFromMs(WAIT_MS) }),
      { timeoutMs: WAIT_MS + 10_000 },
    );
    if (res.job) set(res.job);
    return res.terminal;
  }

  async intent(iteration: number, first: boolean): Promise<IntentSample> {
    const c0 = this.cpuNow();
    const start = wallMs();
    const { intent: submitted } = await this.client.call(
      this.client.intents,
      'submitIntent',
      intentsV1.SubmitIntentRequest.fromPartial({ input: { $case: 'text', value: INTENT_TEXT } }),
    );
    const answered = wallMs();
    if (!submitted) throw new Error('SubmitIntent answered without an intent');
    if (submitted.state !== IntentState.INTENT_STATE_RUNNING)
      throw new Error(
        `${submitted.name} is ${intentsV1.intentStateToJSON(submitted.state)} after SubmitIntent: ${submitted.failureReason}`,
      );
    let last: intentsV1.Intent | undefined;
    let final: intentsV1.Intent | undefined;
    let end = 0;
    let messages = 0;
    for await (const m of serverStreamCall(
      this.client.intents.watchIntent.bind(this.client.intents),
      { name: submitted.name },
      { timeoutMs: WAIT_MS },
    )) {
      messages++;
      const i = m.intent;
      if (i) final = i;
      if (last || !i || i.endTime === undefined) continue;
      // The snapshot (no event) when it had ended before the watch began, else the terminal state change.
      // That is the measurement's end; the stream goes on to the summary entry, written after it.
      if (!m.event || m.event.type === IntentEventType.INTENT_EVENT_TYPE_STATE_CHANGED) {
        last = i;
        end = wallMs();
      }
    }
    if (!last) throw new Error(`WatchIntent ${submitted.name} ended without the terminal state`);
    if (last.state !== IntentState.INTENT_STATE_SUCCEEDED)
      throw new Error(`${last.name} ended ${intentsV1.intentStateToJSON(last.state)}: ${last.failureReason}`);
    const step = last.plan?.steps[0];
    const jobName: unknown = step?.result?.['job'];
    if (last.plan?.steps.length !== 1 || step?.tool !== 'jobs.run' || typeof jobName !== 'string')
      throw new Error(
        `${last.name}: expected one jobs.run step with a job, got ${JSON.stringify(last.plan)}`,
      );
    if (step.result?.['exit_code'] !== 0)
      throw new Error(`${last.name}: the job exited ${JSON.stringify(step.result?.['exit_code'])}`);
    const done = await this.cleanedUp(jobName);
    const cpu = this.cpuSince(c0);
    // The last STATE_CHANGED is the terminal one.
    const changes = last.events.filter((e) => e.type === IntentEventType.INTENT_EVENT_TYPE_STATE_CHANGED);
    return {
      iteration,
      first,
      totalMs: end - start,
      submitCallMs: answered - start,
      watchMessages: messages,
      start,
      end,
      intent: {
        name: last.name,
        submitted: intentEventMs(last, IntentEventType.INTENT_EVENT_TYPE_SUBMITTED),
        planned: intentEventMs(last, IntentEventType.INTENT_EVENT_TYPE_PLANNED),
        stepStarted: intentEventMs(last, IntentEventType.INTENT_EVENT_TYPE_STEP_STARTED),
        stepSucceeded: intentEventMs(last, IntentEventType.INTENT_EVENT_TYPE_STEP_SUCCEEDED),
        summaryWritten: intentEventMs(final ?? last, IntentEventType.INTENT_EVENT_TYPE_SUMMARY_WRITTEN),
        terminal: tsMs(changes[changes.length - 1]?.time),
      },
      job: this.jobTimes(done),
      cpu,
    };
  }

  /** The stored specs of a direct job and an intent's job, as JSON, with what may differ taken out. */
  async specs(directJob: string, intentJob: string): Promise<{ direct: unknown; intent: unknown }> {
    const norm = (j: jobsV1.Job): unknown => jobsV1.JobSpec.toJSON({ ...j.spec!, intentId: '', labels: {} });
    return { direct: norm(await this.getJob(directJob)), intent: norm(await this.getJob(intentJob)) };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The daemons' own view: their access log ("rpc" lines: the method, the caller, the intent id, the time
// from the call's arrival to its answer, the audit record included)

interface RpcRow {
  daemon: string;
  rpc: string;
  caller: string;
  /** Calls per measured iteration of that path. */
  perIteration: number;
  p50: number;
  p90: number;
}

interface RpcLine {
  rpc: string;
  principal: string;
  intentId: string;
  durationMs: number;
  time: number;
}

function rpcLines(p: DaemonProcess | undefined, from: number, to: number): RpcLine[] {
  const out: RpcLine[] = [];
  for (const l of p?.lines ?? []) {
    // pino's time: an ISO string (ms), or ms since the epoch.
    const time = typeof l['time'] === 'string' ? Date.parse(l['time']) : Number(l['time']);
    if (l['msg'] !== 'rpc' || !(time >= from && time <= to)) continue;
    out.push({
      rpc: String(l['rpc'])
        .split('/')
        .slice(-2)
        .join('/')
        .replace(/^aether\.(\w+)\.v1\./, ''),
      principal: typeof l['principal'] === 'string' ? l['principal'] : '',
      intentId: typeof l['intentId'] === 'string' ? l['intentId'] : '',
      durationMs: Number(l['durationMs']),
      time,
    });
  }
  return out;
}

/**
 * Per path, the calls each daemon served for it, from the access logs of the measured window: the
 * intent path's are aetherd's calls carrying a measured intent's id and aurorad's calls from the admin;
 * the direct path's are aetherd's SubmitJob and WaitJob from the admin without an intent id (the
 * benchmark's own GetJob, waiting for the cleanup, is left out).
 */
function rpcRows(stack: Stack, b: IntentSample[], iterations: number, from: number, to: number): RpcRow[] {
  const ids = new Set(b.map((s) => s.intent.name.replace(/^intents\//, '')));
  const admin = 'spiffe://aether.local/admin';
  const aetherd = rpcLines(stack.daemons.get('aetherd'), from, to);
  const aurorad = rpcLines(stack.daemons.get('aurorad'), from, to);
  const rows: RpcRow[] = [];
  const group = (daemon: string, caller: string, lines: RpcLine[]): void => {
    const byRpc = new Map<string, number[]>();
    for (const l of lines) byRpc.set(l.rpc, [...(byRpc.get(l.rpc) ?? []), l.durationMs]);
    for (const [rpc, d] of byRpc) {
      const s = summarize(d);
      rows.push({ daemon, rpc, caller, perIteration: d.length / iterations, p50: s.p50, p90: s.p90 });
    }
  };
  group(
    'aetherd',
    'direct (admin)',
    aetherd.filter(
      (l) => l.principal === admin && !l.intentId && /JobService\/(SubmitJob|WaitJob)$/.test(l.rpc),
    ),
  );
  group(
    'aurorad',
    'intent (admin)',
    aurorad.filter((l) => l.principal === admin),
  );
  group(
    'aetherd',
    'intent (aurorad)',
    aetherd.filter((l) => ids.has(l.intentId)),
  );
  return rows;
}

// ---------------------------------------------------------------------------------------------------------
// Report

interface Phase {
  label: string;
  values: number[];
}

const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const mean = (v: number[]): number => (v.length ? v.reduce((s, x) => s + x, 0) / v.length : NaN);

function markdown(head: string[], rows: string[][], leftColumns = 1): string {
  const align = head.map((_, i) => (i < leftColumns ? '---' : '--:'));
  return [head, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function phaseTable(title: string, phases: Phase[]): string {
  return markdown(
    [title, 'p50 ms', 'mean ms', 'p90 ms'],
    phases.map((p) => {
      const s = summarize(p.values);
      return [p.label, f1(s.p50), f1(s.mean), f1(s.p90)];
    }),
  );
}

function intentPhases(b: IntentSample[]): Phase[] {
  const ph = (label: string, f: (s: IntentSample) => number): Phase => ({ label, values: b.map(f) });
  return [
    ph(
      'client SubmitIntent → SUBMITTED (RPC in: mTLS, pipeline, Cedar, audit)',
      (s) => s.intent.submitted - s.start,
    ),
    ph(
      'SUBMITTED → PLANNED (SQLite insert, playbook match and arguments)',
      (s) => s.intent.planned - s.intent.submitted,
    ),
    ph(
      'PLANNED → STEP_STARTED (policy pre-check, audit, RUNNING persisted and told)',
      (s) => s.intent.stepStarted - s.intent.planned,
    ),
    ph(
      'STEP_STARTED → job SUBMITTED (aurorad → aetherd SubmitJob)',
      (s) => s.job.submitted - s.intent.stepStarted,
    ),
    ph(
      'job SUBMITTED → job EXITED (aetherd: runc create + start, the job)',
      (s) => s.job.exited - s.job.submitted,
    ),
    ph(
      'job EXITED → STEP_SUCCEEDED (WaitJob answered, StreamJobLogs, SQLite)',
      (s) => s.intent.stepSucceeded - s.job.exited,
    ),
    ph(
      'STEP_SUCCEEDED → terminal STATE_CHANGED (summary text, SQLite)',
      (s) => s.intent.terminal - s.intent.stepSucceeded,
    ),
    ph('terminal → client has the WatchIntent message', (s) => s.end - s.intent.terminal),
    ph('total, as the client measured it', (s) => s.totalMs),
    ph(
      'after the end: terminal → SUMMARY_WRITTEN (memory.AddEntry; off the client path)',
      (s) => s.intent.summaryWritten - s.intent.terminal,
    ),
  ];
}

function directPhases(a: DirectSample[]): Phase[] {
  const ph = (label: string, f: (s: DirectSample) => number): Phase => ({ label, values: a.map(f) });
  return [
    ph(
      'client SubmitJob → job SUBMITTED (RPC in: mTLS, pipeline, Cedar, audit)',
      (s) => s.job.submitted - s.start,
    ),
    ph(
      'job SUBMITTED → job EXITED (aetherd: runc create + start, the job)',
      (s) => s.job.exited - s.job.submitted,
    ),
    ph('job EXITED → client has the WaitJob answer', (s) => s.end - s.job.exited),
    ph('total, as the client measured it', (s) => s.totalMs),
  ];
}

interface Summary {
  direct: LatencySummary;
  intent: LatencySummary;
  addedP50Ms: number;
  pairedAddedMedianMs: number;
  ratioP50: number;
  aetherdJobP50: { direct: number; intent: number };
  submitIntentCallMs: LatencySummary;
  cpuMsPerIteration: { direct: CpuUse; intent: CpuUse };
  specsIdentical: boolean;
}

function summarise(a: DirectSample[], b: IntentSample[], specsIdentical: boolean): Summary {
  const direct = summarize(a.map((s) => s.totalMs));
  const intent = summarize(b.map((s) => s.totalMs));
  const paired = a.map((s, i) => (b[i]?.totalMs ?? NaN) - s.totalMs);
  const cpu = (xs: { cpu: CpuUse }[]): CpuUse => ({
    aetherd: mean(xs.map((x) => x.cpu.aetherd)),
    aurorad: mean(xs.map((x) => x.cpu.aurorad)),
    client: mean(xs.map((x) => x.cpu.client)),
  });
  return {
    direct,
    intent,
    addedP50Ms: intent.p50 - direct.p50,
    pairedAddedMedianMs: median(paired),
    ratioP50: intent.p50 / direct.p50,
    aetherdJobP50: {
      direct: median(a.map((s) => s.job.exited - s.job.submitted)),
      intent: median(b.map((s) => s.job.exited - s.job.submitted)),
    },
    submitIntentCallMs: summarize(b.map((s) => s.submitCallMs)),
    cpuMsPerIteration: { direct: cpu(a), intent: cpu(b) },
    specsIdentical,
  };
}

function report(
  a: DirectSample[],
  b: IntentSample[],
  s: Summary,
  rpcs: RpcRow[],
  params: Params,
  meta: {
    command: string;
    started: Date;
    tookS: number;
    idleBefore: number;
    machineBusyPercent: number;
    otherPercent: number[];
    otherTop: string[];
  },
): string {
  const info = machineInfo();
  const code = codeVersion(repoRoot, ['apps/aetherd', 'apps/aurorad', 'libs']);
  const main = markdown(
    ['Path (ms)', 'p50', 'p90', 'mean', 'min', 'max'],
    [
      [
        'direct: SubmitJob + WaitJob (long-poll) to aetherd',
        f1(s.direct.p50),
        f1(s.direct.p90),
        f1(s.direct.mean),
        f1(s.direct.min),
        f1(s.direct.max),
      ],
      [
        'intent: SubmitIntent `run /bin/true` + WatchIntent to aurorad',
        f1(s.intent.p50),
        f1(s.intent.p90),
        f1(s.intent.mean),
        f1(s.intent.min),
        f1(s.intent.max),
      ],
    ],
  );
  const cpu = s.cpuMsPerIteration;
  const pass = s.addedP50Ms <= TARGET_ADDED_MS;
  return [
    'Intents benchmark: aurorad (plan, policy pre-check, routing, summary) around one /bin/true job',
    '',
    `Machine: ${info.nproc} CPUs (${info.cpuModel}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${info.node}, ${info.platform}; load average at start ${info.loadAverageAtStart.join(' ')}`,
    `Date: ${meta.started.toISOString()} (took ${meta.tookS} s)`,
    `Command: ${meta.command}`,
    `Code: commit ${code.commit}${code.modified.length > 0 ? ` with uncommitted changes in ${code.modified.join(', ')}` : ''} (the daemons run from apps/*/dist as built)`,
    `Runs: ${params.warmup} warm-up each, then ${params.iterations} iterations, the order alternating; ${Math.round(meta.idleBefore * 100)} % of a CPU busy just before; the machine was ${f1(meta.machineBusyPercent)} % of a CPU busy during the measured iterations (everything, the benchmark included); other processes per iteration: median ${f1(median(meta.otherPercent))} %, max ${f1(Math.max(...meta.otherPercent))} % of a CPU, over 10 % in ${meta.otherPercent.filter((p) => p > 10).length} of ${meta.otherPercent.length}${meta.otherTop.length ? ` (most: ${meta.otherTop.join(', ')})` : ''}.`,
    `Job spec: ${s.specsIdentical ? 'the stored specs of both paths are identical (intent id and labels aside)' : 'THE STORED SPECS DIFFER (see the JSON)'}.`,
    '',
    main,
    '',
    `Added by aurorad: p50 ${f1(s.addedP50Ms)} ms (intent p50 − direct p50); median of the per-iteration differences ${f1(s.pairedAddedMedianMs)} ms; ratio of the p50s ${f2(s.ratioP50)}×.`,
    `SubmitIntent alone (answered once planned, checked and RUNNING): p50 ${f1(s.submitIntentCallMs.p50)} ms, p90 ${f1(s.submitIntentCallMs.p90)} ms.`,
    `aetherd's own job time (job SUBMITTED → EXITED), p50: direct ${f1(s.aetherdJobP50.direct)} ms, intent ${f1(s.aetherdJobP50.intent)} ms.`,
    `CPU per iteration up to the job's cleanup (mean ms; /proc, 10 ms ticks): direct: aetherd ${f1(cpu.direct.aetherd)}, aurorad ${f1(cpu.direct.aurorad)}, client ${f1(cpu.direct.client)}; intent: aetherd ${f1(cpu.intent.aetherd)}, aurorad ${f1(cpu.intent.aurorad)}, client ${f1(cpu.intent.client)}.`,
    '',
    'Where the intent path spends its time (event times in ms resolution; client ends sub-ms):',
    '',
    phaseTable('Intent phase', intentPhases(b)),
    '',
    phaseTable('Direct phase', directPhases(a)),
    '',
    "The daemons' access logs: calls served per iteration and their time in the server (arrival to answer, audit included), ms:",
    '',
    markdown(
      ['Daemon', 'RPC', 'Path (caller)', 'calls/iteration', 'p50', 'p90'],
      rpcs.map((r) => [r.daemon, r.rpc, r.caller, f2(r.perIteration), f1(r.p50), f1(r.p90)]),
      3,
    ),
    '',
    'Targets:',
    `- ${pass ? 'PASS' : 'MISS'} time added by aurorad to a /bin/true job, p50: ${f1(s.addedP50Ms)} ms (${f1(s.intent.p50)} − ${f1(s.direct.p50)}; target ≤ ${TARGET_ADDED_MS} ms)`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  if (process.getuid?.() !== 0) throw new Error('run as root: aetherd starts containers and creates cgroups');
  if (params.profileDir)
    process.env['AETHER_E2E_NODE_ARGS'] = `--cpu-prof --cpu-prof-dir=${params.profileDir}`;
  const command = ['node', 'tools/bench/dist/intents/main.js', ...process.argv.slice(2)].join(' ');
  const started = new Date();
  const t0 = performance.now();
  const stack = await new Stack().init();
  const cleanup = (): void => {
    void stack.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', cleanup);
  process.once('SIGTERM', cleanup);
  const client = stack.client();
  try {
    const aetherd = await stack.start('aetherd');
    const aurorad = await stack.start('aurorad');
    const bench = new Bench(client, aetherd.child.pid!, aurorad.child.pid!);

    process.stderr.write(`bench intents: ${params.warmup} warm-up iterations…\n`);
    let lastDirect: DirectSample | undefined;
    let lastIntent: IntentSample | undefined;
    for (let i = 0; i < params.warmup; i++) {
      lastDirect = await bench.direct(-1, true);
      lastIntent = await bench.intent(-1, false);
    }
    if (!lastDirect || !lastIntent) {
      lastDirect = await bench.direct(-1, true);
      lastIntent = await bench.intent(-1, false);
    }
    const specs = await bench.specs(lastDirect.job.name, lastIntent.job.name);
    const specsIdentical = JSON.stringify(specs.direct) === JSON.stringify(specs.intent);
    if (!specsIdentical)
      process.stderr.write(
        `bench intents: warning: the specs differ:\n direct ${JSON.stringify(specs.direct)}\n intent ${JSON.stringify(specs.intent)}\n`,
      );
    const idleBefore = params.waitIdle ? await waitForIdle(120_000) : NaN;

    process.stderr.write(`bench intents: ${params.iterations} iterations…\n`);
    const a: DirectSample[] = [];
    const b: IntentSample[] = [];
    const busy0 = machineBusyMicros();
    const others = new OtherProcesses([process.pid, aetherd.child.pid!, aurorad.child.pid!], stack.dir);
    /** Other processes' CPU per iteration, in % of one CPU. */
    const otherPercent: number[] = [];
    const otherByProcess = new Map<string, number>();
    const w0 = performance.now();
    const windowStart = Date.now();
    for (let i = 0; i < params.iterations; i++) {
      const o0 = others.snapshot();
      const t = performance.now();
      const directFirst = i % 2 === 0;
      if (directFirst) {
        a.push(await bench.direct(i, true));
        await sleep(50);
        b.push(await bench.intent(i, false));
      } else {
        b.push(await bench.intent(i, true));
        await sleep(50);
        a.push(await bench.direct(i, false));
      }
      otherPercent.push(
        (100 * OtherProcesses.since(o0, others.snapshot(), otherByProcess)) / (performance.now() - t),
      );
      await sleep(50);
    }
    // Everything: the daemons, conmon, runc, the jobs, this client and anything else.
    const machineBusyPercent = (100 * (machineBusyMicros() - busy0)) / 1000 / (performance.now() - w0);
    // The access log lines of the last calls may still be on their way through the pipes.
    await sleep(200);
    const rpcs = rpcRows(stack, b, params.iterations, windowStart, Date.now());
    const otherTop = [...otherByProcess]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 3)
      .filter(([, ms]) => ms >= 100)
      .map(([name, ms]) => `${name} ${Math.round(ms)} ms`);
    const disturbed = otherPercent.filter((p) => p > 10).length;
    if (disturbed > 0)
      process.stderr.write(
        `bench intents: warning: other processes took over 10 % of a CPU in ${disturbed} of ${params.iterations} iterations (max ${f1(Math.max(...otherPercent))} %); the numbers are skewed\n`,
      );

    const summary = summarise(a, b, specsIdentical);
    const tookS = Math.round((performance.now() - t0) / 1000);
    console.log(
      report(a, b, summary, rpcs, params, {
        command,
        started,
        tookS,
        idleBefore,
        machineBusyPercent,
        otherPercent,
        otherTop,
      }),
    );
    if (jsonFile) {
      const json = {
        benchmark: 'intents',
        date: started.toISOString(),
        command,
        code: codeVersion(repoRoot, ['apps/aetherd', 'apps/aurorad', 'libs']),
        machine: { ...machineInfo(), memoryBytes: totalmem() },
        params,
        specs,
        idleBefore,
        machineBusyPercent,
        otherPercent,
        otherTop,
        summary,
        rpcs,
        phases: {
          intent: intentPhases(b).map((p) => ({
            label: p.label,
            ...summarize(p.values),
          })),
          direct: directPhases(a).map((p) => ({
            label: p.label,
            ...summarize(p.values),
          })),
        },
        samples: { direct: a, intent: b },
      };
      await writeFile(jsonFile, `${JSON.stringify(json, null, 2)}\n`);
      process.stderr.write(`bench intents: wrote ${jsonFile}\n`);
    }
  } finally {
    process.off('SIGINT', cleanup);
    process.off('SIGTERM', cleanup);
    client.close();
    await stack.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench intents: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
