/**
 * Job runner benchmark: aetherd's job path measured from a client, in three parts, each against the
 * issue's target.
 *
 *   node tools/bench/dist/jobs/main.js [--json FILE] [--quick] [--parts latency,logs,rss]
 *        [--warmup 20] [--jobs 300] [--throughput-jobs 400] [--concurrency 8] [--log-mib 1024] [--running 200]
 *
 * 1. latency: submit-to-exit of `/bin/true` through aetherd (SubmitJob, then WaitJob until the job is
 *    terminal, over the mTLS socket), sequentially and with `--concurrency` submitters, against `runc run`
 *    of an equivalent bundle (the same `@aether/sandbox` config aetherd builds for a default job) started
 *    from bash loops in the same run: one loop for the sequential latency, `--concurrency` loops in parallel
 *    for the throughput; bash times each iteration with $EPOCHREALTIME (no fork, unlike `date`). The
 *    sequential runs alternate between the two in blocks so drift hits both alike. The phases of aetherd's
 *    time per job come from the job's own event times (milliseconds).
 * 2. logs: a job writing `--log-mib` MiB to stdout (zeros without newlines; 128-byte lines), read by a
 *    following StreamJobLogs client started right after SubmitJob, with the default stored-log cap (64 MiB,
 *    a slow follower is told what it missed as skipped_bytes) and with max_log_bytes 2 GiB (the pure
 *    streaming rate).
 * 3. rss: aetherd's resident memory idle and with `--running` `/bin/sleep 120` jobs RUNNING (default
 *    max_concurrent 256), and one conmon's for context; then every job is killed.
 *
 * Every part runs a fresh aetherd (tools/e2e's Stack: real process from apps/aetherd/dist, fresh PKI,
 * shipped policy), so build everything first. Runs as root (runc, cgroups). Each part's CPU accounting
 * puts this process (and so aetherd, conmon, runc, bash) into the cpuacct cgroup /aether-bench/self and
 * every container under /aether-bench, so "other processes" is the machine's busy time minus that.
 * Everything is removed at the end: the stacks (and their containers), the bench containers, the
 * /aether-bench cgroups in every hierarchy and the temporary directory.
 */
import { spawn, execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { AetherClient } from '@aether/client';
import { Stack, repoRoot } from '@aether/e2e';
import { durationFromMs, jobsV1, type timestampV1 } from '@aether/proto';
import { serverStreamCall } from '@aether/rpc';
import {
  DEFAULT_PROFILE,
  buildOciConfig,
  prepareRootfs,
  probeHost,
  type HostFacts,
  type JobSandbox,
} from '@aether/sandbox';
import { codeVersion, machineBusyMicros, machineInfo } from '../machine';
import { median, summarize, type LatencySummary } from '../stats';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const MB = 1e6;
/** The cgroup (in every hierarchy) under which this benchmark's containers and processes live. */
const BENCH_CGROUP = 'aether-bench';
const CGROUP_ROOT = '/sys/fs/cgroup';
/** aetherd's defaults (libs/config defaultJobsConfig) that a default job's sandbox is built from. */
const JOB_UID = 65534;
const JOB_GID = 65534;
const SYSTEM_BINDS = ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32'];
const BASE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/work',
  LANG: 'C.UTF-8',
};
const PARTS = ['latency', 'logs', 'rss'] as const;
type Part = (typeof PARTS)[number];
const { JobState, JobEventType } = jobsV1;

interface Params {
  parts: Part[];
  quick: boolean;
  warmup: number;
  jobs: number;
  throughputJobs: number;
  concurrency: number;
  logBytes: number;
  running: number;
  /** Blocks the sequential runs alternate in. */
  blocks: number;
}

function parseParams(): { params: Params; jsonFile: string | undefined } {
  const { values } = parseArgs({
    options: {
      json: { type: 'string' },
      quick: { type: 'boolean', default: false },
      parts: { type: 'string', default: PARTS.join(',') },
      warmup: { type: 'string' },
      jobs: { type: 'string' },
      'throughput-jobs': { type: 'string' },
      concurrency: { type: 'string', default: '8' },
      'log-mib': { type: 'string' },
      running: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: node tools/bench/dist/jobs/main.js [--json FILE] [--quick] [--parts latency,logs,rss] [--warmup N]\n' +
        '         [--jobs N] [--throughput-jobs N] [--concurrency N] [--log-mib N] [--running N]',
    );
    process.exit(0);
  }
  const quick = values.quick;
  const count = (name: string, raw: string | undefined, full: number, small: number): number => {
    if (raw === undefined) return quick ? small : full;
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    return n;
  };
  const parts = values.parts.split(',').map((p) => {
    const part = PARTS.find((known) => known === p.trim());
    if (!part) throw new Error(`unknown part ${JSON.stringify(p)}; known: ${PARTS.join(', ')}`);
    return part;
  });
  return {
    params: {
      parts: PARTS.filter((p) => parts.includes(p)),
      quick,
      warmup: count('warmup', values.warmup, 20, 5),
      jobs: count('jobs', values.jobs, 300, 30),
      throughputJobs: count('throughput-jobs', values['throughput-jobs'], 400, 48),
      concurrency: count('concurrency', values.concurrency, 8, 8),
      logBytes: count('log-mib', values['log-mib'], 1024, 128) * MiB,
      running: count('running', values.running, 200, 20),
      blocks: quick ? 1 : 3,
    },
    jsonFile: values.json,
  };
}

// ---------------------------------------------------------------------------------------------------------
// CPU accounting and process facts

/** This process moved into the cpuacct cgroup /aether-bench/self (children follow), and how to undo it. */
class CpuAccounting {
  private constructor(
    private readonly usageFile: string | undefined,
    private readonly restoreTo: string | undefined,
  ) {}

  static setup(): CpuAccounting {
    const hierarchy = join(CGROUP_ROOT, 'cpuacct');
    try {
      const line = readFileSync('/proc/self/cgroup', 'utf8')
        .split('\n')
        .find((l) => l.split(':')[1]?.split(',').includes('cpuacct'));
      const original = line?.split(':').slice(2).join(':') ?? '/';
      const self = join(hierarchy, BENCH_CGROUP, 'self');
      mkdirSync(self, { recursive: true });
      writeFileSync(join(self, 'cgroup.procs'), String(process.pid));
      return new CpuAccounting(join(hierarchy, BENCH_CGROUP, 'cpuacct.usage'), join(hierarchy, original));
    } catch (err) {
      process.stderr.write(
        `bench jobs: warning: no cpuacct cgroup for the benchmark (${String(err)}); "other processes" is unknown\n`,
      );
      return new CpuAccounting(undefined, undefined);
    }
  }

  /** CPU used so far by this process tree and every container under /aether-bench, in microseconds. */
  oursMicros(): number {
    if (!this.usageFile) return NaN;
    try {
      return Number(readFileSync(this.usageFile, 'utf8').trim()) / 1000;
    } catch {
      return NaN;
    }
  }

  /** Moves this process back to where it was, so /aether-bench can be removed. */
  restore(): void {
    if (!this.restoreTo) return;
    try {
      writeFileSync(join(this.restoreTo, 'cgroup.procs'), String(process.pid));
    } catch {
      // The original cgroup is gone: leave it; the cleanup reports what it cannot remove.
    }
  }
}

interface CpuWindow {
  elapsedMs: number;
  /** CPU of this process tree (client, aetherd, conmon, runc, bash) and the containers, in ms. */
  oursCpuMs: number;
  /** This process alone (the benchmark's client side), in ms. */
  clientCpuMs: number;
  /** Everything else on the machine, in percent of one CPU. */
  otherCpuPercent: number;
}

async function measured<T>(
  cpu: CpuAccounting,
  fn: () => Promise<T>,
): Promise<{ value: T; window: CpuWindow }> {
  const busy0 = machineBusyMicros();
  const ours0 = cpu.oursMicros();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const elapsedMs = performance.now() - t0;
  const client = process.cpuUsage(client0);
  const ours = cpu.oursMicros() - ours0;
  const busy = machineBusyMicros() - busy0;
  return {
    value,
    window: {
      elapsedMs,
      oursCpuMs: ours / 1000,
      clientCpuMs: (client.user + client.system) / 1000,
      otherCpuPercent: Math.max(0, (100 * (busy - ours)) / (elapsedMs * 1000)),
    },
  };
}

/**
 * CPU of a live process in ms (USER_HZ 100): its own (utime + stime) and that of the children it has
 * reaped (cutime + cstime; for aetherd: `runc start`, `runc kill`, `runc delete` and conmon's first fork).
 */
function processCpuMs(pid: number): { self: number; children: number; total: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, so fields[11].
    const self = (Number(fields[11]) + Number(fields[12])) * 10;
    const children = (Number(fields[13]) + Number(fields[14])) * 10;
    return { self, children, total: self + children };
  } catch {
    return { self: NaN, children: NaN, total: NaN };
  }
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM: given in kB). */
function statusBytes(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Proportional set size (shared pages divided among their users) from smaps_rollup, in bytes. */
function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m?.[1] ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

function parentPid(pid: number): number {
  try {
    const m = /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The direct runtime: bundles like aetherd's and bash loops of `runc run`

interface Bundle {
  id: string;
  dir: string;
}

/** One bundle per loop (a cgroup per running container), each exactly what aetherd builds for a default job. */
function buildBundles(dir: string, host: HostFacts, count: number, argv: string[]): Bundle[] {
  const bundles: Bundle[] = [];
  for (let k = 0; k < count; k++) {
    const id = `direct-${k}`;
    const bundleDir = join(dir, 'bundles', id);
    const rootfs = join(bundleDir, 'rootfs');
    const work = join(bundleDir, 'work');
    mkdirSync(rootfs, { recursive: true, mode: 0o711 });
    mkdirSync(work, { recursive: true, mode: 0o700 });
    chownSync(work, JOB_UID, JOB_GID);
    prepareRootfs(rootfs, SYSTEM_BINDS);
    // The sandbox aetherd's JobManager.sandboxOf builds for a spec with every limit left to the defaults
    // (withDefaults: half the CPUs, half the memory, 1024 pids, 64 MiB /tmp, no network, the default profile).
    const sandbox: JobSandbox = {
      id,
      argv,
      env: { ...BASE_ENV },
      cwd: '/work',
      uid: JOB_UID,
      gid: JOB_GID,
      hostname: `job-${id.slice(-8)}`,
      rootfsDir: rootfs,
      workDir: work,
      systemBinds: SYSTEM_BINDS,
      extraMounts: [],
      network: 'none',
      resources: {
        cpuMillicores: Math.floor((availableParallelism() * 1000) / 2),
        cpuWeight: 100,
        memoryBytes: Math.floor(totalmem() / 2),
        memorySwapBytes: 0,
        pidsMax: 1024,
        ioReadBps: 0,
        ioWriteBps: 0,
        tmpSizeBytes: 64 * MiB,
      },
      devices: [],
      cgroupsPath: `/${BENCH_CGROUP}/${id}`,
      profile: DEFAULT_PROFILE,
    };
    writeFileSync(join(bundleDir, 'config.json'), JSON.stringify(buildOciConfig(sandbox, host)));
    bundles.push({ id, dir: bundleDir });
  }
  return bundles;
}

/**
 * `runc --root ROOT run --bundle BUNDLE PREFIX-i` N times; each line: start and end (µs since the epoch,
 * from $EPOCHREALTIME, no fork) and runc's exit status. `runc run` without a terminal passes its stdio to
 * the container: all three are /dev/null here, as a job's stdin is.
 */
const LOOP_SCRIPT = `
set -u
runc=$1 root=$2 bundle=$3 prefix=$4 n=$5 errlog=$6
for ((i = 0; i < n; i++)); do
  s=$EPOCHREALTIME
  "$runc" --root "$root" run --bundle "$bundle" "$prefix-$i" </dev/null >/dev/null 2>>"$errlog"
  rc=$?
  e=$EPOCHREALTIME
  echo "\${s/./} \${e/./} $rc"
done
`;

/**
 * The three runc invocations aetherd's path makes, timed one by one, without conmon: `runc create`
 * (stdio /dev/null), `runc start`, then `runc delete --force` (which kills the process if /bin/true has
 * not exited yet). Each line: the four time stamps (µs) and the three exit statuses.
 */
const SPLIT_SCRIPT = `
set -u
runc=$1 root=$2 bundle=$3 prefix=$4 n=$5 errlog=$6
for ((i = 0; i < n; i++)); do
  id="$prefix-$i"
  s=$EPOCHREALTIME
  "$runc" --root "$root" create --bundle "$bundle" "$id" </dev/null >/dev/null 2>>"$errlog"
  rc1=$?
  c=$EPOCHREALTIME
  "$runc" --root "$root" start "$id" </dev/null >/dev/null 2>>"$errlog"
  rc2=$?
  t=$EPOCHREALTIME
  "$runc" --root "$root" delete --force "$id" </dev/null >/dev/null 2>>"$errlog"
  rc3=$?
  e=$EPOCHREALTIME
  echo "\${s/./} \${c/./} \${t/./} \${e/./} $rc1 $rc2 $rc3"
done
`;

/** `CMD` N times (no container): the cost of one runc CLI invocation that does next to nothing. */
const INVOCATION_SCRIPT = `
set -u
runc=$1 root=$2 n=$3
for ((i = 0; i < n; i++)); do
  s=$EPOCHREALTIME
  "$runc" --root "$root" list >/dev/null 2>&1
  rc=$?
  e=$EPOCHREALTIME
  echo "\${s/./} \${e/./} $rc"
done
`;

interface Timed {
  /** ms since the epoch */
  start: number;
  end: number;
}

function runBash(script: string, args: string[]): Promise<Timed[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'bench-loop', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bash loop exited with ${code}: ${err.trim()}`));
      const rows: Timed[] = [];
      const failed: number[] = [];
      for (const line of out.trim().split('\n')) {
        if (!line) continue;
        const [s, e, rc] = line.split(' ').map(Number) as [number, number, number];
        if (rc !== 0) failed.push(rc);
        rows.push({ start: s / 1000, end: e / 1000 });
      }
      if (failed.length > 0)
        return reject(new Error(`${failed.length} of ${rows.length} runc runs failed (exit ${failed[0]})`));
      resolve(rows);
    });
  });
}

class DirectRuntime {
  private seq = 0;
  constructor(
    readonly runcPath: string,
    readonly root: string,
    readonly bundles: Bundle[],
    private readonly errlog: string,
  ) {}

  /** `loops` bash loops in parallel, `perLoop` runs each (bundle k for loop k). */
  async run(loops: number, perLoop: number): Promise<Timed[]> {
    const batch = this.seq++;
    const results = await Promise.all(
      Array.from({ length: loops }, (_, k) => {
        const bundle = this.bundles[k];
        if (!bundle) throw new Error(`no bundle for loop ${k}`);
        return runBash(LOOP_SCRIPT, [
          this.runcPath,
          this.root,
          bundle.dir,
          `bench-${process.pid}-${batch}-${k}`,
          String(perLoop),
          this.errlog,
        ]).catch((err: unknown) => {
          let tail = '';
          try {
            tail = readFileSync(this.errlog, 'utf8').slice(-2000);
          } catch {
            // no log
          }
          throw new Error(`${(err as Error).message}\n${tail}`);
        });
      }),
    );
    return results.flat();
  }

  /** create, start and delete as separate invocations, on the last bundle; per step in ms. */
  async split(n: number): Promise<{ create: number; start: number; delete: number }[]> {
    const bundle = this.bundles[this.bundles.length - 1];
    if (!bundle) throw new Error('no bundle');
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        'bash',
        [
          '-c',
          SPLIT_SCRIPT,
          'bench-split',
          this.runcPath,
          this.root,
          bundle.dir,
          `bench-${process.pid}-split-${this.seq++}`,
          String(n),
          this.errlog,
        ],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, LC_ALL: 'C' },
        },
      );
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve(text) : reject(new Error(`split loop exited with ${code}`)),
      );
    });
    return out
      .trim()
      .split('\n')
      .map((line) => {
        const [s0, c, t, e, ...rcs] = line.split(' ').map(Number);
        if (rcs.some((rc) => rc !== 0))
          throw new Error(`runc create/start/delete failed (${rcs.join(' ')}); see the runc errors`);
        return {
          create: ((c ?? 0) - (s0 ?? 0)) / 1000,
          start: ((t ?? 0) - (c ?? 0)) / 1000,
          delete: ((e ?? 0) - (t ?? 0)) / 1000,
        };
      });
  }

  async invocations(n: number): Promise<Timed[]> {
    return runBash(INVOCATION_SCRIPT, [this.runcPath, this.root, String(n)]);
  }

  /** Removes containers a failed or interrupted loop left behind. */
  cleanup(): void {
    let list: { id: string }[] = [];
    try {
      list = (JSON.parse(
        execFileSync(this.runcPath, ['--root', this.root, 'list', '--format', 'json'], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'ignore'],
        }) || 'null',
      ) ?? []) as { id: string }[];
    } catch {
      return;
    }
    for (const c of list) {
      try {
        execFileSync(this.runcPath, ['--root', this.root, 'delete', '--force', c.id], { stdio: 'ignore' });
      } catch {
        // reported by the cgroup cleanup if anything remains
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// aetherd through the API

const ms = (t: timestampV1.Timestamp | undefined): number =>
  t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : NaN;

function eventTime(job: jobsV1.Job, type: jobsV1.JobEventType): number {
  return ms(job.events.find((e) => e.type === type)?.time);
}

async function submit(client: AetherClient, spec: jobsV1.JobSpec): Promise<jobsV1.Job> {
  const res = await client.call(client.jobs, 'submitJob', jobsV1.SubmitJobRequest.fromPartial({ spec }));
  if (!res.job) throw new Error('SubmitJob answered without a job');
  return res.job;
}

async function waitEnd(client: AetherClient, name: string, timeoutMs = 120_000): Promise<jobsV1.Job> {
  const res = await client.call(
    client.jobs,
    'waitJob',
    jobsV1.WaitJobRequest.fromPartial({ name, waitTimeout: durationFromMs(timeoutMs) }),
    { timeoutMs: timeoutMs + 10_000 },
  );
  if (!res.terminal || !res.job) throw new Error(`${name} is not over after ${timeoutMs} ms`);
  return res.job;
}

const stateName = (s: jobsV1.JobState): string => jobsV1.jobStateToJSON(s).replace('JOB_STATE_', '');

/** One /bin/true job through aetherd, as a client sees it, with the job's own event times. */
interface AetherdJob {
  name: string;
  /** client: SubmitJob sent → WaitJob answered, ms */
  totalMs: number;
  /** ms since the epoch, from the job's events */
  submitted: number;
  starting: number;
  started: number;
  ended: number;
  exited: number;
  cleanedUp: number;
}

async function runTrueJob(client: AetherClient, spec: jobsV1.JobSpec): Promise<AetherdJob & Timed> {
  const start = Date.now();
  const t0 = performance.now();
  const job = await submit(client, spec);
  const done = await waitEnd(client, job.name);
  const totalMs = performance.now() - t0;
  if (done.state !== JobState.JOB_STATE_SUCCEEDED)
    throw new Error(
      `${done.name} ended ${stateName(done.state)}: ${done.failureReason || 'no reason given'}`,
    );
  return {
    name: done.name,
    totalMs,
    start,
    end: start + totalMs,
    submitted: eventTime(done, JobEventType.JOB_EVENT_TYPE_SUBMITTED),
    starting: eventTime(done, JobEventType.JOB_EVENT_TYPE_STARTING),
    started: eventTime(done, JobEventType.JOB_EVENT_TYPE_STARTED),
    ended: ms(done.endTime),
    exited: eventTime(done, JobEventType.JOB_EVENT_TYPE_EXITED),
    cleanedUp: eventTime(done, JobEventType.JOB_EVENT_TYPE_CLEANED_UP),
  };
}

async function aetherdSequential(
  client: AetherClient,
  spec: jobsV1.JobSpec,
  n: number,
): Promise<(AetherdJob & Timed)[]> {
  const out: (AetherdJob & Timed)[] = [];
  for (let i = 0; i < n; i++) out.push(await runTrueJob(client, spec));
  return out;
}

async function aetherdConcurrent(
  client: AetherClient,
  spec: jobsV1.JobSpec,
  submitters: number,
  perSubmitter: number,
): Promise<(AetherdJob & Timed)[]> {
  const out: (AetherdJob & Timed)[] = [];
  await Promise.all(
    Array.from({ length: submitters }, async () => {
      for (let i = 0; i < perSubmitter; i++) out.push(await runTrueJob(client, spec));
    }),
  );
  return out;
}

async function startStack(
  cgroupParent: string,
): Promise<{ stack: Stack; client: AetherClient; pid: number }> {
  const stack = await new Stack({ jobs: { cgroupParent } }).init();
  openStacks.add(stack);
  await stack.start('aetherd');
  const pid = stack.daemons.get('aetherd')?.child.pid;
  if (!pid) throw new Error('aetherd has no pid');
  return { stack, client: stack.client(), pid };
}

async function closeStack(s: { stack: Stack; client: AetherClient }): Promise<void> {
  s.client.close();
  await s.stack.close();
  openStacks.delete(s.stack);
}

// ---------------------------------------------------------------------------------------------------------
// Part 1: submit-to-exit latency and throughput

interface PathResult {
  label: string;
  sequentialMs: LatencySummary;
  concurrentMs: LatencySummary;
  jobsPerSec: number;
  concurrentJobs: number;
  concurrentElapsedMs: number;
  /** CPU of all processes but the benchmark's client, per job, during the concurrent run. */
  cpuMsPerJob: number;
  /** aetherd's own CPU per job, concurrent run. */
  aetherdCpuMsPerJob?: number;
  /** CPU of the processes aetherd ran and reaped (runc start, runc delete, conmon's first fork) per job. */
  aetherdChildrenCpuMsPerJob?: number;
  otherCpuPercent: number[];
}

interface Phase {
  name: string;
  p50: number;
  mean: number;
  /** Jobs with both events (CLEANED_UP can be missing from the job WaitJob answered). */
  count: number;
}

interface LatencyResult {
  aetherd: PathResult;
  direct: PathResult;
  phases: Phase[];
  runcInvocationMs: LatencySummary;
  /** `runc create`, `runc start`, `runc delete --force` as separate invocations (no conmon), sequential. */
  splitMs: { create: LatencySummary; start: LatencySummary; delete: LatencySummary; total: LatencySummary };
  samples: {
    aetherdMs: number[];
    directMs: number[];
    aetherdConcurrentMs: number[];
    directConcurrentMs: number[];
  };
}

function span(rows: Timed[]): number {
  return Math.max(...rows.map((r) => r.end)) - Math.min(...rows.map((r) => r.start));
}

async function benchLatency(
  dir: string,
  host: HostFacts,
  cpu: CpuAccounting,
  params: Params,
): Promise<LatencyResult> {
  // One bundle per concurrent loop, and one more for the create/start/delete split.
  const bundles = buildBundles(dir, host, params.concurrency + 1, ['/bin/true']);
  const direct = new DirectRuntime(
    host.runtime.path,
    join(dir, 'runc-root'),
    bundles,
    join(dir, 'runc-errors.log'),
  );
  directRuntimes.add(direct);
  const s = await startStack(`/${BENCH_CGROUP}/aetherd-latency`);
  try {
    const spec = jobsV1.JobSpec.fromPartial({ argv: ['/bin/true'] });
    process.stderr.write(`bench jobs: latency: warm-up (${params.warmup} jobs each)…\n`);
    await direct.run(1, params.warmup);
    await aetherdSequential(s.client, spec, params.warmup);

    const split: { create: number; start: number; delete: number }[] = [];
    const aSeq: (AetherdJob & Timed)[] = [];
    const dSeq: Timed[] = [];
    const aOther: number[] = [];
    const dOther: number[] = [];
    const perBlock = Math.ceil(params.jobs / params.blocks);
    for (let b = 0; b < params.blocks; b++) {
      const n = Math.min(perBlock, params.jobs - b * perBlock);
      if (n <= 0) break;
      process.stderr.write(
        `bench jobs: latency: sequential block ${b + 1}/${params.blocks} (${n} jobs each)…\n`,
      );
      const order =
        b % 2 === 0 ? (['direct', 'split', 'aetherd'] as const) : (['aetherd', 'split', 'direct'] as const);
      for (const which of order) {
        if (which === 'split') {
          split.push(...(await direct.split(n)));
        } else if (which === 'direct') {
          const r = await measured(cpu, () => direct.run(1, n));
          dSeq.push(...r.value);
          dOther.push(r.window.otherCpuPercent);
        } else {
          const r = await measured(cpu, () => aetherdSequential(s.client, spec, n));
          aSeq.push(...r.value);
          aOther.push(r.window.otherCpuPercent);
        }
      }
    }

    // Where aetherd records the cleanup after answering WaitJob, the job as answered lacks CLEANED_UP.
    for (const j of aSeq) {
      if (Number.isFinite(j.cleanedUp)) continue;
      const res = await s.client.call(
        s.client.jobs,
        'getJob',
        jobsV1.GetJobRequest.fromPartial({ name: j.name }),
      );
      if (res.job) j.cleanedUp = eventTime(res.job, JobEventType.JOB_EVENT_TYPE_CLEANED_UP);
    }

    const per = Math.ceil(params.throughputJobs / params.concurrency);
    process.stderr.write(
      `bench jobs: latency: ${params.concurrency} concurrent loops/submitters, ${per} jobs each…\n`,
    );
    const dConc = await measured(cpu, () => direct.run(params.concurrency, per));
    const cpu0 = processCpuMs(s.pid);
    const aConc = await measured(cpu, () => aetherdConcurrent(s.client, spec, params.concurrency, per));
    const cpu1 = processCpuMs(s.pid);

    process.stderr.write('bench jobs: latency: runc CLI invocations…\n');
    const invocations = await direct.invocations(params.quick ? 20 : 100);

    const ms1 = (rows: Timed[]): number[] => rows.map((r) => r.end - r.start);
    const aetherd: PathResult = {
      label: 'aetherd: SubmitJob + WaitJob over mTLS (conmon, runc create + start, runc delete)',
      sequentialMs: summarize(aSeq.map((j) => j.totalMs)),
      concurrentMs: summarize(aConc.value.map((j) => j.totalMs)),
      concurrentJobs: aConc.value.length,
      concurrentElapsedMs: span(aConc.value),
      jobsPerSec: aConc.value.length / (span(aConc.value) / 1000),
      cpuMsPerJob: (aConc.window.oursCpuMs - aConc.window.clientCpuMs) / aConc.value.length,
      aetherdCpuMsPerJob: (cpu1.self - cpu0.self) / aConc.value.length,
      aetherdChildrenCpuMsPerJob: (cpu1.children - cpu0.children) / aConc.value.length,
      otherCpuPercent: [...aOther, aConc.window.otherCpuPercent],
    };
    const directResult: PathResult = {
      label: 'direct: `runc run` from a bash loop, same bundle',
      sequentialMs: summarize(ms1(dSeq)),
      concurrentMs: summarize(ms1(dConc.value)),
      concurrentJobs: dConc.value.length,
      concurrentElapsedMs: span(dConc.value),
      jobsPerSec: dConc.value.length / (span(dConc.value) / 1000),
      cpuMsPerJob: (dConc.window.oursCpuMs - dConc.window.clientCpuMs) / dConc.value.length,
      otherCpuPercent: [...dOther, dConc.window.otherCpuPercent],
    };
    const phase = (name: string, all: number[]): Phase => {
      const values = all.filter((v) => Number.isFinite(v));
      return {
        name,
        p50: median(values),
        mean: values.reduce((a, b) => a + b, 0) / values.length,
        count: values.length,
      };
    };
    // EXITED is recorded when the waiters are woken; CLEANED_UP with it (cleanup first) or after it
    // (cleanup after the answer), depending on aetherd's version: phases that cover both.
    const phases: Phase[] = [
      phase(
        "outside aetherd's records: client → SUBMITTED, and EXITED → WaitJob answered (RPC, TLS, validation, Cedar, audit; WaitJob wake-up and answer)",
        aSeq.map((j) => j.totalMs - (j.exited - j.submitted)),
      ),
      phase(
        'SUBMITTED → STARTING (queue)',
        aSeq.map((j) => j.starting - j.submitted),
      ),
      phase(
        'STARTING → STARTED (job dir, bundle, config.json; conmon spawn, `runc create` under conmon; `runc start`; SQLite)',
        aSeq.map((j) => j.started - j.starting),
      ),
      phase(
        'STARTED → exit noticed (the process runs; conmon writes the exit file; inotify)',
        aSeq.map((j) => j.ended - j.started),
      ),
      phase(
        'exit noticed → EXITED recorded (cgroup stats, log scan, SQLite; cleanup too where it comes first)',
        aSeq.map((j) => j.exited - j.ended),
      ),
      phase(
        'EXITED → CLEANED_UP recorded (`runc delete --force`, cgroup and bundle removal, SQLite; 0 where recorded together, else after the answer)',
        aSeq.map((j) => j.cleanedUp - j.exited),
      ),
      phase(
        'total (client)',
        aSeq.map((j) => j.totalMs),
      ),
    ];
    return {
      aetherd,
      direct: directResult,
      phases,
      runcInvocationMs: summarize(ms1(invocations)),
      splitMs: {
        create: summarize(split.map((x) => x.create)),
        start: summarize(split.map((x) => x.start)),
        delete: summarize(split.map((x) => x.delete)),
        total: summarize(split.map((x) => x.create + x.start + x.delete)),
      },
      samples: {
        aetherdMs: aSeq.map((j) => j.totalMs),
        directMs: ms1(dSeq),
        aetherdConcurrentMs: aConc.value.map((j) => j.totalMs),
        directConcurrentMs: ms1(dConc.value),
      },
    };
  } finally {
    await closeStack(s);
    direct.cleanup();
    directRuntimes.delete(direct);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Part 2: log streaming

interface LogRun {
  label: string;
  output: 'zeros' | 'lines';
  cap: 'default' | '2GiB';
  maxLogBytes: number;
  producedBytes: number;
  receivedBytes: number;
  skippedBytes: number;
  /** Bytes the follower never got although no skipped_bytes announced them (jumps in the offsets). */
  gapBytes: number;
  gaps: number;
  /** Bytes after the follower's last offset when its stream ended (the job's log counters minus that). */
  missingAtEndBytes: number;
  messages: number;
  /** First to last byte received by the follower. */
  streamSeconds: number;
  mbPerSec: number;
  /** SubmitJob sent → the follower's stream ended. */
  endToEndSeconds: number;
  /** The job's STARTED → exit noticed: how fast conmon took the output in. */
  jobWallSeconds: number;
  jobState: string;
  aetherdCpuSeconds: number;
  clientCpuSeconds: number;
  /** Everything else of ours: conmon (reads the pipe, writes the k8s-file), the job, fallocate. */
  restCpuSeconds: number;
  otherCpuPercent: number;
}

const LINE = '0123456789abcdef'.repeat(8).slice(0, 127); // 127 characters + "\n" = 128 bytes per line

async function benchLogs(cpu: CpuAccounting, params: Params): Promise<LogRun[]> {
  const s = await startStack(`/${BENCH_CGROUP}/aetherd-logs`);
  const runs: LogRun[] = [];
  try {
    const variants: { output: 'zeros' | 'lines'; cap: 'default' | '2GiB' }[] = [
      { output: 'zeros', cap: 'default' },
      { output: 'lines', cap: 'default' },
      { output: 'zeros', cap: '2GiB' },
      { output: 'lines', cap: '2GiB' },
    ];
    for (const v of variants) {
      const script =
        v.output === 'zeros'
          ? `head -c ${params.logBytes} /dev/zero`
          : `yes ${LINE} | head -c ${params.logBytes}`;
      const maxLogBytes = v.cap === 'default' ? 64 * MiB : 2 * GiB;
      const label = `${v.output === 'zeros' ? 'zeros, no newlines' : '128-byte lines'}, ${v.cap === 'default' ? 'default log cap (64 MiB)' : 'max_log_bytes 2 GiB'}`;
      process.stderr.write(`bench jobs: logs: ${label}…\n`);
      const spec = jobsV1.JobSpec.fromPartial({
        argv: ['/bin/sh', '-c', script],
        resources: {
          cpuMillicores: availableParallelism() * 1000,
          memoryBytes: BigInt(GiB),
          ...(v.cap === '2GiB' ? { maxLogBytes: BigInt(maxLogBytes) } : {}),
        },
        timeout: durationFromMs(900_000),
      });
      const aetherd0 = processCpuMs(s.pid).self;
      const r = await measured(cpu, async () => {
        const t0 = performance.now();
        const job = await submit(s.client, spec);
        let first = NaN;
        let last = NaN;
        let received = 0;
        let skipped = 0;
        let messages = 0;
        // Offsets are combined stdout+stderr positions: a jump that no skipped_bytes announced is data lost.
        let expected = 0;
        let gaps = 0;
        let gapCount = 0;
        const stream = serverStreamCall(
          s.client.jobs.streamJobLogs.bind(s.client.jobs),
          jobsV1.StreamJobLogsRequest.fromPartial({ name: job.name, follow: true }),
        );
        for await (const m of stream) {
          messages++;
          skipped += Number(m.skippedBytes);
          if (m.skippedBytes > 0n) expected = Number(m.offset);
          if (m.data.length > 0) {
            if (Number(m.offset) !== expected) {
              gaps += Number(m.offset) - expected;
              gapCount++;
            }
            expected = Number(m.offset) + m.data.length;
            const now = performance.now();
            if (Number.isNaN(first)) first = now;
            last = now;
            received += m.data.length;
          }
        }
        const endToEnd = performance.now() - t0;
        const done = await waitEnd(s.client, job.name, 60_000);
        return {
          first,
          last,
          received,
          skipped,
          messages,
          gaps,
          gapCount,
          endOffset: expected,
          endToEnd,
          done,
        };
      });
      const { first, last, received, skipped, messages, gaps, gapCount, endOffset, endToEnd, done } = r.value;
      const streamSeconds = (last - first) / 1000;
      runs.push({
        label,
        output: v.output,
        cap: v.cap,
        maxLogBytes,
        producedBytes: Number(done.stdoutBytes) + Number(done.stderrBytes),
        receivedBytes: received,
        skippedBytes: skipped,
        gapBytes: gaps,
        gaps: gapCount,
        missingAtEndBytes: Number(done.stdoutBytes) + Number(done.stderrBytes) - endOffset,
        messages,
        streamSeconds,
        mbPerSec: received / MB / streamSeconds,
        endToEndSeconds: endToEnd / 1000,
        jobWallSeconds: (ms(done.endTime) - ms(done.startTime)) / 1000,
        jobState: stateName(done.state),
        aetherdCpuSeconds: (processCpuMs(s.pid).self - aetherd0) / 1000,
        clientCpuSeconds: r.window.clientCpuMs / 1000,
        restCpuSeconds:
          (r.window.oursCpuMs - r.window.clientCpuMs) / 1000 - (processCpuMs(s.pid).self - aetherd0) / 1000,
        otherCpuPercent: r.window.otherCpuPercent,
      });
      await s.client.call(
        s.client.jobs,
        'deleteJob',
        jobsV1.DeleteJobRequest.fromPartial({ name: done.name }),
      );
    }
    return runs;
  } finally {
    await closeStack(s);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Part 3: aetherd's memory with many running jobs

interface RssResult {
  jobs: number;
  idleRssBytes: number;
  runningRssBytes: number;
  /** RssAnon / RssFile of the running figure (heap and other anonymous memory / mapped files). */
  runningRssAnonBytes: number;
  runningRssFileBytes: number;
  /** VmHWM when all were running: the peak so far (the start burst included). */
  peakRssBytes: number;
  afterKillRssBytes: number;
  conmonRssBytes: number;
  conmonRssTotalBytes: number;
  /** The conmons' proportional set sizes summed: what they really take together. */
  conmonPssTotalBytes: number;
  conmonsFound: number;
  secondsToAllRunning: number;
  secondsToAllKilled: number;
  otherCpuPercent: number;
}

async function listRunning(client: AetherClient): Promise<jobsV1.Job[]> {
  const res = await client.call(
    client.jobs,
    'listJobs',
    jobsV1.ListJobsRequest.fromPartial({ states: [JobState.JOB_STATE_RUNNING], pageSize: 1000 }),
  );
  return res.jobs;
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function benchRss(cpu: CpuAccounting, params: Params): Promise<RssResult> {
  const s = await startStack(`/${BENCH_CGROUP}/aetherd-rss`);
  try {
    // A first call so the idle figure includes a served connection, then let the start settle.
    await listRunning(s.client);
    await new Promise((r) => setTimeout(r, 2_000));
    const idleRssBytes = statusBytes(s.pid, 'VmRSS');
    const spec = jobsV1.JobSpec.fromPartial({ argv: ['/bin/sleep', '120'] });
    process.stderr.write(`bench jobs: rss: starting ${params.running} /bin/sleep jobs…\n`);
    const r = await measured(cpu, async () => {
      const t0 = performance.now();
      const names: string[] = [];
      await pool(
        Array.from({ length: params.running }, (_, i) => i),
        params.concurrency,
        async () => {
          names.push((await submit(s.client, spec)).name);
        },
      );
      let running: jobsV1.Job[] = [];
      for (;;) {
        running = await listRunning(s.client);
        if (running.length >= params.running) break;
        if (performance.now() - t0 > 100_000)
          throw new Error(`only ${running.length} of ${params.running} jobs RUNNING after 100 s`);
        const failed = await s.client.call(
          s.client.jobs,
          'listJobs',
          jobsV1.ListJobsRequest.fromPartial({
            states: [JobState.JOB_STATE_START_FAILED, JobState.JOB_STATE_FAILED],
            pageSize: 5,
          }),
        );
        if (failed.jobs.length > 0)
          throw new Error(
            `${failed.jobs[0]?.name} ended ${stateName(failed.jobs[0]!.state)}: ${failed.jobs[0]?.failureReason}`,
          );
        await new Promise((res) => setTimeout(res, 250));
      }
      return { names, running, seconds: (performance.now() - t0) / 1000 };
    });
    // Steady state: a few seconds with every job running (the sweep runs every second).
    await new Promise((res) => setTimeout(res, 3_000));
    const runningRssBytes = statusBytes(s.pid, 'VmRSS');
    const runningRssAnonBytes = statusBytes(s.pid, 'RssAnon');
    const runningRssFileBytes = statusBytes(s.pid, 'RssFile');
    const peakRssBytes = statusBytes(s.pid, 'VmHWM');
    const conmons = r.value.running.map((j) => parentPid(Number(j.pid))).filter((p) => p > 1);
    const conmonRss = conmons.map((p) => statusBytes(p, 'VmRSS')).filter((b) => Number.isFinite(b));
    const conmonPss = conmons.map((p) => pssBytes(p)).filter((b) => Number.isFinite(b));
    process.stderr.write(`bench jobs: rss: killing ${r.value.names.length} jobs…\n`);
    const t1 = performance.now();
    await pool(r.value.names, params.concurrency, async (name) => {
      await s.client.call(s.client.jobs, 'killJob', jobsV1.KillJobRequest.fromPartial({ name }));
    });
    await pool(r.value.names, params.concurrency, async (name) => {
      await waitEnd(s.client, name, 60_000);
    });
    const secondsToAllKilled = (performance.now() - t1) / 1000;
    const afterKillRssBytes = statusBytes(s.pid, 'VmRSS');
    return {
      jobs: r.value.running.length,
      idleRssBytes,
      runningRssBytes,
      runningRssAnonBytes,
      runningRssFileBytes,
      peakRssBytes,
      afterKillRssBytes,
      conmonRssBytes: median(conmonRss),
      conmonRssTotalBytes: conmonRss.reduce((a, b) => a + b, 0),
      conmonPssTotalBytes: conmonPss.reduce((a, b) => a + b, 0),
      conmonsFound: conmonRss.length,
      secondsToAllRunning: r.value.seconds,
      secondsToAllKilled,
      otherCpuPercent: r.window.otherCpuPercent,
    };
  } finally {
    await closeStack(s);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup: stacks, containers, cgroups

const openStacks = new Set<Stack>();
const directRuntimes = new Set<DirectRuntime>();

/** Removes /aether-bench and everything under it in every cgroup hierarchy (children first). */
function removeBenchCgroups(): string[] {
  const problems: string[] = [];
  const removeTree = (dir: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return;
    }
    for (const e of entries) removeTree(join(dir, e));
    try {
      rmdirSync(dir);
    } catch (err) {
      problems.push(`${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  };
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync(CGROUP_ROOT);
  } catch {
    return problems;
  }
  for (const h of hierarchies) {
    const dir = join(CGROUP_ROOT, h, BENCH_CGROUP);
    if (existsSync(dir)) removeTree(dir);
  }
  return problems;
}

async function cleanupAll(cpu: CpuAccounting | undefined, dir: string | undefined): Promise<void> {
  for (const stack of [...openStacks]) {
    await stack.close().catch(() => undefined);
    openStacks.delete(stack);
  }
  for (const d of [...directRuntimes]) d.cleanup();
  cpu?.restore();
  const problems = removeBenchCgroups();
  if (problems.length > 0)
    process.stderr.write(`bench jobs: warning: could not remove cgroups: ${problems.join('; ')}\n`);
  if (dir) rmSync(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------------------
// Report

const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');
const mb = (bytes: number): string => f1(bytes / MB);
const mib = (bytes: number): string => f1(bytes / MiB);
const pct = (v: number): string => `${f1(v)} %`;

function markdown(head: string[], rows: string[][], leftColumns = 1): string {
  const align = head.map((_, i) => (i < leftColumns ? '---' : '--:'));
  return [head, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

function latencyTables(r: LatencyResult, params: Params): string {
  const c = params.concurrency;
  const rows = [r.aetherd, r.direct].map((p) => [
    p.label,
    f1(p.sequentialMs.p50),
    f1(p.sequentialMs.p90),
    f1(p.sequentialMs.p99),
    f1(p.jobsPerSec),
    f1(p.concurrentMs.p50),
    f1(p.concurrentMs.p99),
    f1(p.cpuMsPerJob),
  ]);
  const main = markdown(
    [
      'Path',
      'seq p50 ms',
      'seq p90 ms',
      'seq p99 ms',
      `${c}× jobs/s`,
      `${c}× p50 ms`,
      `${c}× p99 ms`,
      `CPU ms/job (${c}×)`,
    ],
    rows,
  );
  const phases = markdown(
    ["aetherd, sequential: phase (from the job's event times, ms resolution)", 'p50 ms', 'mean ms', 'jobs'],
    r.phases.map((p) => [p.name, f1(p.p50), f1(p.mean), String(p.count)]),
  );
  return [
    main,
    '',
    `CPU ms/job: CPU of every process involved (aetherd, conmon, runc, bash, the containers; not the benchmark's client) during the ${c}× run, per job.`,
    `Of that, aetherd's own CPU (node, all threads): ${f1(r.aetherd.aetherdCpuMsPerJob ?? NaN)} ms per job; the processes it ran and reaped (\`runc start\`, \`runc delete\`, conmon's first fork): ${f1(r.aetherd.aetherdChildrenCpuMsPerJob ?? NaN)} ms per job.`,
    `One runc CLI invocation that does next to nothing (\`runc list\`): p50 ${f1(r.runcInvocationMs.p50)} ms, p99 ${f1(r.runcInvocationMs.p99)} ms.`,
    `The same bundle with aetherd's three runc invocations, one by one from bash (no conmon), sequential p50: \`runc create\` ${f1(r.splitMs.create.p50)} ms, ` +
      `\`runc start\` ${f1(r.splitMs.start.p50)} ms, \`runc delete --force\` ${f1(r.splitMs.delete.p50)} ms; the three together ${f1(r.splitMs.total.p50)} ms (p99 ${f1(r.splitMs.total.p99)} ms).`,
    '',
    phases,
  ].join('\n');
}

function logsTable(runs: LogRun[]): string {
  return markdown(
    [
      'Job output (1 GiB = 1,073,741,824 bytes to stdout)',
      'received MiB',
      'skipped_bytes MiB',
      'lost MiB',
      'first→last byte s',
      'MB/s',
      'submit→stream end s',
      'job wall s',
      'aetherd CPU s',
      'client CPU s',
      'conmon + job CPU s',
    ],
    runs.map((l) => [
      l.label,
      mib(l.receivedBytes),
      mib(l.skippedBytes),
      mib(l.gapBytes + l.missingAtEndBytes),
      f2(l.streamSeconds),
      f1(l.mbPerSec),
      f2(l.endToEndSeconds),
      f2(l.jobWallSeconds),
      f2(l.aetherdCpuSeconds),
      f2(l.clientCpuSeconds),
      f2(l.restCpuSeconds),
    ]),
  );
}

function rssTable(r: RssResult): string {
  return markdown(
    ['aetherd memory', 'MB'],
    [
      ['VmRSS idle (after start and one call)', mb(r.idleRssBytes)],
      [`VmRSS with ${r.jobs} jobs RUNNING (3 s after the last started)`, mb(r.runningRssBytes)],
      ['… of which RssAnon (JS heap, wasm memory, native allocations)', mb(r.runningRssAnonBytes)],
      ['… of which RssFile (mapped code: node, native addons)', mb(r.runningRssFileBytes)],
      ['VmHWM (peak RSS, the start burst included)', mb(r.peakRssBytes)],
      [`VmRSS after killing all ${r.jobs} and waiting for their ends`, mb(r.afterKillRssBytes)],
      ['one conmon (median VmRSS)', mb(r.conmonRssBytes)],
      [
        `all ${r.conmonsFound} conmons together: VmRSS summed (shared pages counted in each)`,
        mb(r.conmonRssTotalBytes),
      ],
      [
        `all ${r.conmonsFound} conmons together: Pss summed (shared pages divided among them)`,
        mb(r.conmonPssTotalBytes),
      ],
    ],
  );
}

interface Target {
  name: string;
  value: string;
  target: string;
  pass: boolean | undefined;
}

function targetLines(list: Target[]): string {
  return list
    .map(
      (t) =>
        `- ${t.pass === undefined ? 'INFO' : t.pass ? 'PASS' : 'MISS'} ${t.name}: ${t.value}${t.pass === undefined ? '' : ` (target ${t.target})`}`,
    )
    .join('\n');
}

async function main(): Promise<void> {
  const { params, jsonFile } = parseParams();
  if (process.getuid?.() !== 0)
    throw new Error('run as root: the benchmark starts containers and creates cgroups');
  const info = machineInfo();
  const command = ['node', 'tools/bench/dist/jobs/main.js', ...process.argv.slice(2)].join(' ');
  const started = new Date();
  const code = codeVersion(repoRoot, ['apps', 'libs']);
  const dir = mkdtempSync(join(tmpdir(), 'aether-bench-jobs-'));
  chmodSync(dir, 0o755);
  const cpu = CpuAccounting.setup();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`bench jobs: ${signal}: cleaning up…\n`);
    void cleanupAll(cpu, dir).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const host = await probeHost({
      runtime: 'runc',
      runtimeRoot: join(dir, 'probe-root'),
      scratchDir: join(dir, 'probe'),
    });
    if (!host.runtime.working) throw new Error(`runc does not work here: ${host.runtime.error ?? 'unknown'}`);
    if (!host.monitor.working)
      throw new Error(`conmon does not work here: ${host.monitor.error ?? 'unknown'}`);

    let latency: LatencyResult | undefined;
    let logs: LogRun[] | undefined;
    let rss: RssResult | undefined;
    if (params.parts.includes('latency')) latency = await benchLatency(dir, host, cpu, params);
    if (params.parts.includes('logs')) logs = await benchLogs(cpu, params);
    if (params.parts.includes('rss')) rss = await benchRss(cpu, params);
    const finished = new Date();

    const list: Target[] = [];
    if (latency) {
      const ratio = latency.aetherd.sequentialMs.p50 / latency.direct.sequentialMs.p50;
      list.push({
        name: 'submit-to-exit p50 of /bin/true, aetherd / direct runc',
        value: `${f2(ratio)}× (${f1(latency.aetherd.sequentialMs.p50)} ms / ${f1(latency.direct.sequentialMs.p50)} ms)`,
        target: '≤ 1.3×',
        pass: ratio <= 1.3,
      });
      list.push({
        name: `throughput with ${params.concurrency} submitters, aetherd / direct runc`,
        value: `${pct((100 * latency.aetherd.jobsPerSec) / latency.direct.jobsPerSec)} (${f1(latency.aetherd.jobsPerSec)} / ${f1(latency.direct.jobsPerSec)} jobs/s)`,
        target: 'reported',
        pass: undefined,
      });
    }
    for (const l of logs ?? []) {
      list.push({
        name: `log streaming to a follower, ${l.label}`,
        value: `${f1(l.mbPerSec)} MB/s (${mib(l.receivedBytes)} MiB received, ${mib(l.skippedBytes)} MiB skipped, ${mib(l.gapBytes + l.missingAtEndBytes)} MiB lost)`,
        target: '≥ 200 MB/s',
        // A stream that lost data does not pass, whatever its rate.
        pass: l.mbPerSec >= 200 && l.gapBytes + l.missingAtEndBytes === 0,
      });
    }
    if (rss) {
      list.push({
        name: `aetherd RSS with ${rss.jobs} running jobs`,
        value: `${mb(rss.runningRssBytes)} MB (idle ${mb(rss.idleRssBytes)} MB)`,
        target: '≤ 150 MB',
        pass: rss.runningRssBytes <= 150 * MB,
      });
    }

    const otherCpu = [
      ...(latency ? [...latency.aetherd.otherCpuPercent, ...latency.direct.otherCpuPercent] : []),
      ...(logs ?? []).map((l) => l.otherCpuPercent),
      ...(rss ? [rss.otherCpuPercent] : []),
    ];
    const report = [
      'Job runner benchmark (aetherd: runc under conmon, SQLite records, gRPC mTLS over a Unix socket)',
      '',
      `Machine: ${info.nproc} CPUs (${info.cpuModel}), ${int(totalmem() / MiB)} MiB RAM, Node ${info.node}, ${info.platform}; load average at start ${info.loadAverageAtStart.join(' ')}`,
      `Runtime: ${host.runtime.name} ${host.runtime.version} (${host.runtime.path}), conmon ${host.monitor.version}, cgroup v${host.cgroup.version}${host.cgroup.hybrid ? ' (hybrid)' : ''}`,
      `Date: ${started.toISOString()} (took ${Math.round((finished.getTime() - started.getTime()) / 1000)} s)`,
      `Command: ${command}`,
      `Code: commit ${code.commit}${code.modified.length > 0 ? ` with uncommitted changes in ${code.modified.join(', ')}` : ''} (the daemons run from apps/*/dist as built)`,
      ...(latency
        ? [
            '',
            `1. Submit-to-exit of /bin/true (default limits): ${params.warmup} warm-up jobs each, then ${params.jobs} sequential jobs per path in ${params.blocks} alternating block(s),`,
            `then ${params.concurrency} concurrent submitters (aetherd, one connection) or bash loops (direct) with ${Math.ceil(params.throughputJobs / params.concurrency)} jobs each. Milliseconds.`,
            '',
            latencyTables(latency, params),
          ]
        : []),
      ...(logs
        ? [
            '',
            `2. Log streaming: a job writes ${mib(params.logBytes)} MiB to stdout; a StreamJobLogs follower (follow: true) starts right after SubmitJob.`,
            'MB/s = bytes received / (last byte − first byte), MB = 10^6 bytes. skipped_bytes: what the stored-log cap punched away before the follower read it.',
            "lost: bytes the follower never received although no skipped_bytes announced them (jumps in the offsets, or short of the job's log counters at the end).",
            '',
            logsTable(logs),
          ]
        : []),
      ...(rss
        ? [
            '',
            `3. aetherd memory with ${params.running} /bin/sleep 120 jobs (default max_concurrent 256; ${params.concurrency} submitters); MB = 10^6 bytes.`,
            `All RUNNING ${f1(rss.secondsToAllRunning)} s after the first SubmitJob; all ended ${f1(rss.secondsToAllKilled)} s after the first KillJob.`,
            '',
            rssTable(rss),
          ]
        : []),
      '',
      `Other processes used ${pct(median(otherCpu))} of one CPU (median over the measured runs; max ${pct(Math.max(...otherCpu))}).`,
      '',
      'Targets:',
      targetLines(list),
    ].join('\n');
    console.log(report);
    if (median(otherCpu) > 10) {
      process.stderr.write(
        `bench jobs: warning: other processes took ${pct(median(otherCpu))} of a CPU during the runs; the numbers are skewed\n`,
      );
    }
    if (jsonFile) {
      const json = {
        benchmark: 'jobs',
        date: started.toISOString(),
        command,
        code,
        machine: { ...info, memoryBytes: totalmem() },
        runtime: { runc: host.runtime, conmon: host.monitor, cgroup: host.cgroup },
        params,
        latency,
        logs,
        rss,
        targets: list,
      };
      await writeFile(jsonFile, `${JSON.stringify(json, null, 2)}\n`);
      process.stderr.write(`bench jobs: wrote ${jsonFile}\n`);
    }
  } finally {
    if (!interrupted) await cleanupAll(cpu, dir);
  }
}

main().catch((err: unknown) => {
  console.error('bench jobs failed:', err);
  process.exit(1);
});
