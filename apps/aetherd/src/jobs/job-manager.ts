import { createHash } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';
import { join } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import type { JobsConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { jobsV1, msFromDuration } from '@aether/proto';
import { AlreadyExistsError, FailedPreconditionError, ResourceExhaustedError, RpcError } from '@aether/rpc';
import {
  DEFAULT_PROFILE,
  SandboxUnavailableError,
  buildOciConfig,
  discoverNvidiaDriverPaths,
  prepareRootfs,
  removeCgroup,
  type DeviceNode,
  type HostFacts,
  type JobSandbox,
  type SandboxProfile,
} from '@aether/sandbox';
import { newId } from '@aether/rpc';
import type { JobArtifacts, OutputOutcome } from './job-artifacts';
import {
  BASE_ENV,
  assignGpus,
  checkMountAllowed,
  deviceNodes,
  gpuIndices,
  signalOf,
  wantsGpu,
} from './job-spec';
import {
  JobEventType,
  JobState,
  type JobStore,
  isTerminal,
  type JobEventRecord,
  type JobExit,
  type JobRecord,
  type JobStop,
  type JobUsage,
  type ListJobsQuery,
} from './job-store';
import { JobLog } from './logs/job-log';
import { listJobCgroups, readCgroupStats } from './runtime/cgroup-stats';
import { type OciRuntime, RuntimeError } from './runtime/oci-runtime';

/** The jobs configuration with its directory resolved. */
export type ResolvedJobsConfig = JobsConfig & { dir: string };

export interface JobManagerOptions {
  config: ResolvedJobsConfig;
  host: HostFacts;
  runtime: OciRuntime;
  store: JobStore;
  log: Logger;
  /** Every job event, after it is recorded (aetherd audits them; the events service will stream them). */
  onEvent?: (job: JobRecord, event: JobEventRecord) => void;
  /** The artifact store's side of input artifacts and declared outputs. */
  artifacts?: JobArtifacts;
}

export interface SubmitInput {
  spec: jobsV1.JobSpec;
  actor: string;
  intentId: string;
  idempotencyKey: string;
}

type EventInput = Omit<JobEventRecord, 'time' | 'actor'> & { actor?: string };

const CLEANUP_TRIES = 30;
const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

/** Job ids are lowercase ULIDs. */
export const newJobId = newId;
function jobNotFound(id: string): RpcError {
  return new RpcError(Status.NOT_FOUND, 'JOB_NOT_FOUND', `jobs/${id} not found`, {
    metadata: { resource: `jobs/${id}` },
  });
}

function describeExit(exit: JobExit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  return `exited with code ${exit.code ?? '?'}`;
}

/**
 * The job runner: a queue with a concurrency limit, the state machine of every job, and the bridge to
 * the OCI runtime and the per-job monitors. SQLite holds the truth; what lives in memory (timers, the
 * queue order, waiters) is rebuilt from it when aetherd starts.
 */
export class JobManager {
  private readonly queue: string[] = [];
  private readonly active = new Set<string>();
  private readonly finishing = new Set<string>();
  private readonly starts = new Set<Promise<void>>();
  private readonly timers = new Map<string, NodeJS.Timeout[]>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly logs = new Map<string, JobLog>();
  private readonly usageCache = new Map<string, JobUsage>();
  /** Finished jobs whose cleanup failed, with the attempts made; the sweep retries them. */
  private readonly cleanupRetries = new Map<string, number>();
  /** GPU numbers each queued or running job holds (released when it ends); rebuilt from the store on start. */
  private readonly gpuHolds = new Map<string, number[]>();
  /** Host driver files bound read-only into GPU jobs (`jobs.gpu.driverPaths`, discovered when `auto`). */
  private readonly gpuDriverPaths: string[];
  private exitWatcher: FSWatcher | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly exitDir: string;
  private readonly socketDir: string;

  constructor(private readonly o: JobManagerOptions) {
    this.exitDir = join(o.config.dir, 'exits');
    this.socketDir = join(o.config.dir, 'sockets');
    const driver = o.config.gpu.driverPaths;
    this.gpuDriverPaths = driver === 'auto' ? discoverNvidiaDriverPaths(o.config.systemBinds) : [...driver];
  }

  get store(): JobStore {
    return this.o.store;
  }

  /** Reconciles records with the runtime and the monitors, then starts watching exits and the queue. */
  async start(): Promise<void> {
    for (const d of [this.o.config.dir, this.exitDir, this.socketDir])
      mkdirSync(d, { recursive: true, mode: 0o700 });
    this.exitWatcher = watch(this.exitDir, (_event, name) => {
      if (name) this.onExitFile(String(name));
    });
    this.exitWatcher.on('error', (err) =>
      this.o.log.error({ err }, 'job exit watcher failed; falling back to the periodic sweep'),
    );
    await this.reconcile();
    for (const job of this.o.store.inStates([
      JobState.JOB_STATE_PENDING,
      JobState.JOB_STATE_STARTING,
      JobState.JOB_STATE_RUNNING,
    ]))
      this.holdGpus(job.id, job.spec);
    if (this.o.config.gpu.driverPaths === 'auto' && this.gpuDriverPaths.length > 0)
      this.o.log.info(
        { driverPaths: this.gpuDriverPaths },
        'GPU jobs get the discovered driver files bound in',
      );
    // The sweep catches what inotify may miss, samples running jobs' logs (rotation) and applies retention.
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
    this.pump();
  }

  /**
   * Stops watching; running jobs keep running under their monitors. Starts in flight finish first (up to
   * 10 s), so that no container is left half-created: one the runtime created but never started.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.race([
      Promise.allSettled([...this.starts]),
      new Promise((r) => setTimeout(r, 10_000).unref()),
    ]);
    this.exitWatcher?.close();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const list of this.timers.values()) for (const t of list) clearTimeout(t);
    this.timers.clear();
    for (const l of this.logs.values()) l.close();
    this.logs.clear();
    for (const set of this.waiters.values()) for (const w of set) w();
    this.o.store.close();
  }

  // ---- submit and the queue ------------------------------------------------------------------------

  submit(input: SubmitInput): JobRecord {
    const specHash = createHash('sha256').update(jobsV1.JobSpec.encode(input.spec).finish()).digest('hex');
    if (input.idempotencyKey) {
      const prior = this.o.store.byIdempotencyKey(input.actor, input.idempotencyKey);
      if (prior && Date.now() - prior.createTime < IDEMPOTENCY_WINDOW_MS) {
        if (prior.specHash !== specHash)
          throw Object.assign(
            new AlreadyExistsError(
              `jobs/${prior.id}`,
              `idempotency key ${JSON.stringify(input.idempotencyKey)} was used for jobs/${prior.id} with a different spec`,
            ),
            {},
          );
        return prior;
      }
      if (prior) this.o.store.update(prior.id, { idempotencyKey: '' });
    }
    // A GPU left to aetherd's choice is chosen now and recorded in the spec: the job holds it from here on.
    const spec = assignGpus(input.spec, this.o.config.gpu.deviceDir, this.heldGpus());
    this.checkIsolation(spec);
    if (this.queue.length >= this.o.config.maxQueued && this.active.size >= this.o.config.maxConcurrent)
      throw new ResourceExhaustedError(
        `the job queue is full (${this.o.config.maxQueued} jobs waiting)`,
        'QUEUE_FULL',
      );
    const now = Date.now();
    const id = newJobId(now);
    const job = this.o.store.insert(
      {
        id,
        state: JobState.JOB_STATE_PENDING,
        actor: input.actor,
        intentId: input.intentId,
        spec,
        createTime: now,
        runtime: this.o.config.runtime,
        idempotencyKey: input.idempotencyKey,
        specHash,
      },
      {
        time: now,
        type: JobEventType.JOB_EVENT_TYPE_SUBMITTED,
        message: `submitted: ${input.spec.argv.join(' ').slice(0, 200)}`,
        actor: input.actor,
      },
    );
    this.holdGpus(id, spec);
    this.emit(job, this.o.store.events(id)[0]!);
    this.queue.push(id);
    if (this.active.size >= this.o.config.maxConcurrent)
      this.record(
        id,
        {},
        { type: JobEventType.JOB_EVENT_TYPE_QUEUED, message: `queued at position ${this.queue.length}` },
      );
    this.pump();
    return this.o.store.get(id)!;
  }

  /**
   * Refuses, before anything is recorded, a job whose isolation this host cannot provide (building its
   * OCI config is a dry run of exactly what the runtime will be asked for).
   */
  private checkIsolation(spec: jobsV1.JobSpec): void {
    const h = this.o.host;
    if (!h.runtime.working)
      throw new FailedPreconditionError(
        `the OCI runtime cannot run jobs on this host: ${h.runtime.error ?? 'not working'}`,
        'ISOLATION_UNAVAILABLE',
        { missing: 'runtime' },
      );
    if (!h.monitor.working)
      throw new FailedPreconditionError(
        `the job monitor (conmon) is unavailable: ${h.monitor.error ?? 'not working'}`,
        'ISOLATION_UNAVAILABLE',
        { missing: 'conmon' },
      );
    const devices = deviceNodes(spec, this.o.config.gpu.deviceDir);
    if (wantsGpu(spec))
      for (const p of this.gpuDriverPaths)
        if (!existsSync(p))
          throw new FailedPreconditionError(
            `GPU driver path ${p} (jobs.gpu.driverPaths) does not exist on this host`,
            'GPU_UNAVAILABLE',
            { missing: p },
          );
    try {
      buildOciConfig(this.sandboxOf('dry-run', spec, devices, '/nonexistent'), h);
    } catch (err) {
      if (err instanceof SandboxUnavailableError)
        throw new FailedPreconditionError(
          `this host cannot provide what the job needs: ${err.missing.join(', ')}`,
          'ISOLATION_UNAVAILABLE',
          { missing: err.missing.join(',') },
        );
      throw err;
    }
  }

  private profileOf(spec: jobsV1.JobSpec): SandboxProfile {
    const name = spec.sandboxProfile;
    const p = name ? this.o.config.profiles[name] : undefined;
    if (!p) return DEFAULT_PROFILE;
    return {
      name,
      seccomp: p.seccomp,
      noNewPrivileges: p.noNewPrivileges,
      unprivileged: p.unprivileged,
      capabilities: p.capabilities,
      hostPid: p.hostPid,
      readOnlySystem: true,
    };
  }

  private sandboxOf(id: string, spec: jobsV1.JobSpec, devices: DeviceNode[], jobDir: string): JobSandbox {
    const r = spec.resources!;
    return {
      id,
      argv: spec.argv,
      env: { ...BASE_ENV, ...spec.env },
      cwd: spec.cwd,
      uid: this.o.config.uid,
      gid: this.o.config.gid,
      hostname: `job-${id.slice(-8)}`,
      rootfsDir: join(jobDir, 'bundle', 'rootfs'),
      workDir: join(jobDir, 'work'),
      systemBinds: this.o.config.systemBinds,
      extraMounts: [
        ...spec.mounts.map((m, i) => ({
          hostPath: id === 'dry-run' ? m.hostPath : checkMountAllowed(m, i, this.o.config),
          containerPath: m.containerPath,
          readOnly: m.readOnly !== false,
        })),
        // Input artifacts: their blobs, read-only, at /work/inputs/<artifact id>.
        ...(id === 'dry-run' ? [] : spec.inputArtifacts).map((name) => ({
          hostPath: this.inputBlob(name),
          containerPath: `/work/inputs/${name.slice('artifacts/'.length)}`,
          readOnly: true,
        })),
      ],
      network: spec.network === jobsV1.NetworkMode.NETWORK_MODE_HOST ? 'host' : 'none',
      resources: {
        cpuMillicores: r.cpuMillicores,
        cpuWeight: r.cpuWeight,
        memoryBytes: Number(r.memoryBytes),
        memorySwapBytes: Number(r.memorySwapBytes ?? 0n),
        pidsMax: r.pidsMax,
        ioReadBps: Number(r.ioReadBps),
        ioWriteBps: Number(r.ioWriteBps),
        tmpSizeBytes: Number(r.tmpSizeBytes),
      },
      devices: devices.map((d) => ({ path: d.hostPath, containerPath: d.containerPath })),
      driverBinds: wantsGpu(spec) ? this.gpuDriverPaths : [],
      cgroupsPath: this.cgroupPath(id),
      profile: this.profileOf(spec),
    };
  }

  /** The blob of an input artifact; NOT_FOUND when it does not exist (or no store is configured). */
  inputBlob(name: string): string {
    if (!this.o.artifacts)
      throw new RpcError(
        Status.FAILED_PRECONDITION,
        'ARTIFACTS_UNAVAILABLE',
        'this aetherd has no artifact store',
      );
    return this.o.artifacts.inputBlob(name);
  }

  private holdGpus(id: string, spec: jobsV1.JobSpec): void {
    const gpus = gpuIndices(spec);
    if (gpus.length > 0) this.gpuHolds.set(id, gpus);
  }

  /**
   * Each GPU number held by a queued or running job (other than `except`), with one such job. Holds of
   * jobs that ended by a path that does not settle (e.g. found LOST at start-up) are dropped here.
   */
  private heldGpus(except?: string): Map<number, string> {
    const held = new Map<number, string>();
    for (const [id, gpus] of this.gpuHolds) {
      const job = this.o.store.get(id);
      if (!job || isTerminal(job.state)) {
        this.gpuHolds.delete(id);
        continue;
      }
      if (id === except) continue;
      for (const n of gpus) if (!held.has(n)) held.set(n, id);
    }
    return held;
  }

  private cgroupPath(id: string): string {
    return `${this.o.config.cgroupParent}/${id}`;
  }

  private jobDir(id: string): string {
    return join(this.o.config.dir, id);
  }

  private pump(): void {
    while (!this.closed && this.active.size < this.o.config.maxConcurrent && this.queue.length > 0) {
      const id = this.queue.shift()!;
      const job = this.o.store.get(id);
      if (!job || job.state !== JobState.JOB_STATE_PENDING) continue;
      this.active.add(id);
      this.startJob(job).catch((err: unknown) =>
        this.o.log.error({ err, jobId: id }, 'job start failed unexpectedly'),
      );
    }
  }

  private async startJob(job: JobRecord): Promise<void> {
    const id = job.id;
    const dir = this.jobDir(id);
    this.record(
      id,
      { state: JobState.JOB_STATE_STARTING },
      { type: JobEventType.JOB_EVENT_TYPE_STARTING, message: `starting under ${this.o.config.runtime}` },
    );
    let created = false;
    try {
      const bundle = join(dir, 'bundle');
      const work = join(dir, 'work');
      mkdirSync(join(bundle, 'rootfs'), { recursive: true, mode: 0o711 });
      mkdirSync(join(dir, 'persist'), { recursive: true, mode: 0o700 });
      mkdirSync(work, { recursive: true, mode: 0o700 });
      const profile = this.profileOf(job.spec);
      if (profile.unprivileged) chownSync(work, this.o.config.uid, this.o.config.gid);
      const cwd = job.spec.cwd;
      if (cwd !== '/work') {
        // The working directory must exist; create it inside /work, owned by the job.
        const hostCwd = join(work, cwd.slice('/work/'.length));
        mkdirSync(hostCwd, { recursive: true, mode: 0o700 });
        if (profile.unprivileged) chownSync(hostCwd, this.o.config.uid, this.o.config.gid);
      }
      prepareRootfs(join(bundle, 'rootfs'), this.o.config.systemBinds);
      // A job queued before GPUs were chosen at submission gets its GPU now.
      const spec = assignGpus(job.spec, this.o.config.gpu.deviceDir, this.heldGpus(id));
      this.holdGpus(id, spec);
      const devices = deviceNodes(spec, this.o.config.gpu.deviceDir);
      const config = buildOciConfig(this.sandboxOf(id, spec, devices, dir), this.o.host);
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
      const { pid, monitorPid } = await this.o.runtime.createMonitored(id, {
        bundleDir: bundle,
        logPath: join(dir, 'ctr.log'),
        exitDir: this.exitDir,
        persistDir: join(dir, 'persist'),
        socketDir: this.socketDir,
        pidFile: join(bundle, 'pidfile'),
        monitorPidFile: join(dir, 'conmon.pid'),
      });
      created = true;
      this.record(id, { pid, monitorPid });
      await this.o.runtime.start(id);
      const now = Date.now();
      const timeoutMs = job.spec.timeout ? msFromDuration(job.spec.timeout) : 0;
      const started = this.record(
        id,
        {
          state: JobState.JOB_STATE_RUNNING,
          startTime: now,
          ...(timeoutMs > 0 ? { timeoutAt: now + timeoutMs } : {}),
        },
        { type: JobEventType.JOB_EVENT_TYPE_STARTED, message: `started, pid ${pid}` },
      );
      this.armTimers(started);
      // Open the job's log now, not on the first reader: its size cap must hold with nobody reading.
      await this.logOf(started);
      // A stop asked for while the job was starting applies now.
      if (started.stop) await this.sendStop(started, started.stop);
      if (existsSync(join(this.exitDir, id))) this.onExitFile(id);
    } catch (err) {
      const message =
        err instanceof RuntimeError || err instanceof SandboxUnavailableError || err instanceof RpcError
          ? err.message
          : String(err);
      if (!(err instanceof RuntimeError)) this.o.log.error({ err, jobId: id }, 'job could not be started');
      if (created) await this.o.runtime.delete(id, true).catch(() => undefined);
      this.cleanupFiles(id);
      this.record(
        id,
        {
          state: JobState.JOB_STATE_START_FAILED,
          endTime: Date.now(),
          failureReason: message,
          pid: 0,
          cleanedUp: true,
        },
        { type: JobEventType.JOB_EVENT_TYPE_START_FAILED, message },
      );
      this.settle(id);
    }
  }

  // ---- exits -----------------------------------------------------------------------------------------

  private onExitFile(id: string): void {
    if (this.finishing.has(id)) return;
    const job = this.o.store.get(id);
    if (!job) return;
    if (job.state !== JobState.JOB_STATE_RUNNING) return; // STARTING: startJob checks once it is RUNNING.
    this.finishing.add(id);
    this.finishJob(job)
      .catch((err: unknown) => this.o.log.error({ err, jobId: id }, 'recording the end of a job failed'))
      .finally(() => this.finishing.delete(id));
  }

  private readExitStatus(id: string): JobExit | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.exitDir, id), 'utf8').trim();
    } catch {
      return undefined;
    }
    if (text === '') return undefined; // conmon is mid-write; the watcher fires again.
    const status = Number(text);
    const oom = existsSync(join(this.jobDir(id), 'persist', 'oom'));
    // conmon records 128 + n for a process killed by signal n, like a shell.
    if (status > 128 && status < 128 + 65) return { signal: signalOf(status - 128), oomKilled: oom };
    return { code: status, oomKilled: oom };
  }

  private async finishJob(job: JobRecord): Promise<void> {
    const id = job.id;
    const exit = this.readExitStatus(id);
    if (!exit) return;
    const stats = readCgroupStats(this.o.host.cgroup.version, this.cgroupPath(id));
    if (stats.oomKills > 0) exit.oomKilled = true;
    const end = Date.now();
    const usage: JobUsage = {
      cpuUserMs: stats.cpuUserMs,
      cpuSystemMs: stats.cpuSystemMs,
      peakMemoryBytes: stats.peakMemoryBytes,
      currentMemoryBytes: 0,
      currentPids: 0,
      ioReadBytes: stats.ioReadBytes,
      ioWriteBytes: stats.ioWriteBytes,
      wallMs: end - (job.startTime ?? end),
      sampleTime: end,
    };
    if (usage.cpuUserMs === 0 && usage.peakMemoryBytes === 0) {
      // The cgroup was already gone (the job ended while aetherd was down and something removed it):
      // keep the last live sample rather than report zeros as measured.
      const last = this.usageCache.get(id) ?? job.usage;
      if (last)
        Object.assign(usage, {
          ...last,
          currentMemoryBytes: 0,
          currentPids: 0,
          wallMs: usage.wallMs,
          sampleTime: end,
        });
    }
    // Followers end when settle() finishes the log, after the end is recorded: a follower that sees its
    // stream end can rely on the job being terminal.
    const log = await this.logOf(job);
    await log.refresh();

    const stop = job.stop;
    let state: jobsV1.JobState;
    let failureReason = '';
    const events: EventInput[] = [
      { type: JobEventType.JOB_EVENT_TYPE_EXITED, message: describeExit(exit), actor: '' },
    ];
    if (exit.oomKilled) {
      state = JobState.JOB_STATE_OOM_KILLED;
      failureReason = `out of memory: the job exceeded its memory limit of ${job.spec.resources?.memoryBytes ?? 0n} bytes`;
      events.push({ type: JobEventType.JOB_EVENT_TYPE_OOM_KILLED, message: failureReason, actor: '' });
    } else if (stop?.kind === 'timeout') {
      state = JobState.JOB_STATE_TIMED_OUT;
      failureReason = `exceeded its runtime limit of ${Math.round(msFromDuration(job.spec.timeout!) / 1000)} s`;
    } else if (stop && (stop.kind === 'kill' || stop.escalated)) {
      state = JobState.JOB_STATE_KILLED;
    } else if (stop?.kind === 'stop') {
      state = JobState.JOB_STATE_STOPPED;
    } else if (exit.code === 0) {
      state = JobState.JOB_STATE_SUCCEEDED;
    } else {
      state = JobState.JOB_STATE_FAILED;
      failureReason = describeExit(exit);
    }

    // Outputs are registered before the end is recorded, so that a waiter sees them with the end; a
    // crash in between finds the exit again on restart and registers again (idempotently).
    let outputArtifacts = job.outputArtifacts;
    if (state === JobState.JOB_STATE_SUCCEEDED && job.spec.outputs.length > 0) {
      const registered = await this.registerOutputs(job);
      outputArtifacts = registered.names;
      for (const o of registered.outcomes)
        events.push({
          type: o.ok
            ? JobEventType.JOB_EVENT_TYPE_OUTPUT_REGISTERED
            : JobEventType.JOB_EVENT_TYPE_OUTPUT_FAILED,
          message: o.message,
          actor: '',
        });
    }

    // Record the end first (the exit is what waiters and followers wait for), then remove the container,
    // its cgroup and the bundle. The monitor's exit file goes last, so a crash in between finds the exit
    // again on restart; a crash after the record leaves a container no live job owns, which the start-up
    // reconciliation removes.
    this.record(
      id,
      {
        state,
        endTime: end,
        exit,
        usage,
        failureReason,
        pid: 0,
        stdoutBytes: log.stdoutBytes,
        stderrBytes: log.stderrBytes,
        logStartOffset: log.startOffset,
        outputArtifacts,
      },
      ...events,
    );
    this.usageCache.delete(id);
    this.o.log.info({ jobId: id, state: jobsV1.jobStateToJSON(state), exit }, 'job ended');
    this.settle(id);
    await this.cleanUp(id);
  }

  private async registerOutputs(job: JobRecord): Promise<{ names: string[]; outcomes: OutputOutcome[] }> {
    if (!this.o.artifacts)
      return {
        names: [],
        outcomes: [{ ok: false, message: 'outputs not registered: this aetherd has no artifact store' }],
      };
    try {
      return await this.o.artifacts.registerOutputs(job, join(this.jobDir(job.id), 'work'));
    } catch (err) {
      this.o.log.error({ err, jobId: job.id }, 'registering outputs failed');
      return {
        names: [],
        outcomes: [{ ok: false, message: `outputs not registered: ${(err as Error).message}` }],
      };
    }
  }

  /** Removes a finished job's container, cgroup and bundle, and records that (or what remains). */
  private async cleanUp(id: string): Promise<void> {
    const problems = await this.removeContainer(id);
    this.cleanupFiles(id, false);
    if (!this.o.store.get(id)) return; // deleted meanwhile
    if (problems.length === 0) {
      this.record(
        id,
        { cleanedUp: true },
        { type: JobEventType.JOB_EVENT_TYPE_CLEANED_UP, message: 'container, cgroup and bundle removed' },
      );
      rmSync(join(this.exitDir, id), { force: true });
      rmSync(join(this.jobDir(id), 'persist'), { recursive: true, force: true });
      this.cleanupRetries.delete(id);
      return;
    }
    const tries = (this.cleanupRetries.get(id) ?? 0) + 1;
    this.cleanupRetries.set(id, tries);
    if (tries === 1 || tries === CLEANUP_TRIES)
      this.record(
        id,
        {},
        {
          type: JobEventType.JOB_EVENT_TYPE_CLEANED_UP,
          message: `cleanup incomplete${tries < CLEANUP_TRIES ? ', retrying' : ', giving up until the next start'}: ${problems.join('; ')}`,
        },
      );
    if (tries >= CLEANUP_TRIES) this.cleanupRetries.delete(id);
  }

  /**
   * Deletes the container; returns what could not be removed. The runtime's delete removes the job's
   * cgroup in every hierarchy; only when it fails does aetherd remove the cgroup itself.
   */
  private async removeContainer(id: string): Promise<string[]> {
    try {
      await this.o.runtime.delete(id, true);
      return [];
    } catch (err) {
      const problems = await this.removeJobCgroup(id);
      if (err instanceof RuntimeError && /does not exist/.test(err.message)) return problems;
      return problems.length > 0 ? [`${(err as Error).message}; ${problems.join('; ')}`] : [];
    }
  }

  /** Kills what is left in a job's cgroup and removes it from every hierarchy; returns what remains. */
  private async removeJobCgroup(name: string): Promise<string[]> {
    const { failed } = await removeCgroup(`${this.o.config.cgroupParent}/${name}`, { killProcesses: true });
    return failed.map((f) => `${f.path}: ${f.error}`);
  }

  /** Removes the bundle and the monitor's socket link (and the whole job dir with `all`). */
  private cleanupFiles(id: string, all = false): void {
    rmSync(join(this.jobDir(id), 'bundle'), { recursive: true, force: true });
    rmSync(join(this.socketDir, id), { force: true });
    rmSync(join(this.jobDir(id), 'conmon.pid'), { force: true });
    if (all) rmSync(this.jobDir(id), { recursive: true, force: true });
  }

  /** A job left STARTING/RUNNING for good: free its slot, wake waiters, start the next. */
  private settle(id: string): void {
    this.active.delete(id);
    this.gpuHolds.delete(id);
    for (const t of this.timers.get(id) ?? []) clearTimeout(t);
    this.timers.delete(id);
    const log = this.logs.get(id);
    if (log) {
      log.finish();
      this.logs.delete(id);
    }
    for (const w of this.waiters.get(id) ?? []) w();
    this.waiters.delete(id);
    this.pump();
  }

  // ---- stop, kill, signal, cancel, delete -------------------------------------------------------------

  private armTimers(job: JobRecord): void {
    const list: NodeJS.Timeout[] = [];
    if (job.timeoutAt !== undefined && !job.stop) {
      const t = setTimeout(
        () => {
          const j = this.o.store.get(job.id);
          if (!j || j.state !== JobState.JOB_STATE_RUNNING || j.stop) return;
          const graceMs = msFromDuration(j.spec.stopGracePeriod!);
          const stop: JobStop = {
            kind: 'timeout',
            requestedAt: Date.now(),
            killAt: Date.now() + graceMs,
            signal: j.spec.stopSignal,
            actor: '',
            escalated: false,
          };
          const after = this.record(
            j.id,
            { stop },
            {
              type: JobEventType.JOB_EVENT_TYPE_TIMED_OUT,
              message: `runtime limit of ${Math.round(msFromDuration(j.spec.timeout!) / 1000)} s reached; stopping`,
            },
          );
          this.sendStop(after, stop).catch((err: unknown) =>
            this.o.log.error({ err, jobId: j.id }, 'stopping a timed-out job failed'),
          );
        },
        Math.max(0, job.timeoutAt - Date.now()),
      );
      list.push(t);
    }
    if (job.stop && !job.stop.escalated) list.push(this.escalationTimer(job.id, job.stop.killAt));
    this.timers.set(job.id, list);
  }

  private escalationTimer(id: string, killAt: number): NodeJS.Timeout {
    return setTimeout(
      () => {
        const j = this.o.store.get(id);
        if (!j || j.state !== JobState.JOB_STATE_RUNNING || !j.stop || j.stop.escalated) return;
        const stop = { ...j.stop, escalated: true };
        this.record(
          id,
          { stop },
          {
            type: JobEventType.JOB_EVENT_TYPE_SIGNALLED,
            message: 'SIGKILL to every process: the grace period ended',
          },
        );
        this.o.runtime
          .kill(id, 'SIGKILL', true)
          .catch((err: unknown) =>
            this.o.log.warn({ err, jobId: id }, 'SIGKILL after the grace period failed'),
          );
      },
      Math.max(0, killAt - Date.now()),
    );
  }

  private async sendStop(job: JobRecord, stop: JobStop): Promise<void> {
    const signal = stop.kind === 'kill' ? 'SIGKILL' : stop.signal;
    try {
      await this.o.runtime.kill(job.id, signal, true);
    } catch (err) {
      // The job may have exited in the meantime; its exit is recorded by the watcher.
      this.o.log.debug({ err, jobId: job.id }, 'stop signal not delivered');
    }
    if (stop.kind !== 'kill') {
      const list = this.timers.get(job.id) ?? [];
      list.push(this.escalationTimer(job.id, stop.killAt));
      this.timers.set(job.id, list);
    }
  }

  /** StopJob, KillJob and the runtime limit: the stop signal to every process, SIGKILL after the grace. */
  async stop(id: string, actor: string, opts: { kill: boolean; graceMs?: number }): Promise<JobRecord> {
    const job = this.get(id);
    if (isTerminal(job.state)) return job;
    if (job.state === JobState.JOB_STATE_PENDING) return this.cancel(id, actor);
    if (job.stop && (job.stop.kind === 'kill' || job.stop.escalated || !opts.kill)) return job;
    const now = Date.now();
    const graceMs = opts.kill ? 0 : (opts.graceMs ?? msFromDuration(job.spec.stopGracePeriod!));
    const stop: JobStop = {
      kind: opts.kill ? 'kill' : 'stop',
      requestedAt: now,
      killAt: now + graceMs,
      signal: opts.kill ? 'SIGKILL' : job.spec.stopSignal,
      actor,
      escalated: opts.kill,
    };
    const after = this.record(
      id,
      { stop },
      {
        type: opts.kill ? JobEventType.JOB_EVENT_TYPE_SIGNALLED : JobEventType.JOB_EVENT_TYPE_STOP_REQUESTED,
        message: opts.kill
          ? 'SIGKILL to every process'
          : `${stop.signal} to every process; SIGKILL in ${graceMs / 1000} s`,
        actor,
      },
    );
    if (after.state === JobState.JOB_STATE_RUNNING) await this.sendStop(after, stop);
    return this.o.store.get(id)!;
  }

  async signal(id: string, actor: string, signal: string, all: boolean): Promise<JobRecord> {
    const job = this.get(id);
    if (job.state !== JobState.JOB_STATE_RUNNING)
      throw new FailedPreconditionError(
        `jobs/${id} is ${jobsV1.jobStateToJSON(job.state).replace('JOB_STATE_', '')}, not RUNNING`,
        'JOB_NOT_RUNNING',
      );
    await this.o.runtime.kill(id, signal, all).catch((err: unknown) => {
      throw new FailedPreconditionError(
        `could not signal jobs/${id}: ${(err as Error).message}`,
        'JOB_NOT_RUNNING',
      );
    });
    return this.record(
      id,
      {},
      {
        type: JobEventType.JOB_EVENT_TYPE_SIGNALLED,
        message: `${signal} to ${all ? 'every process' : 'the main process'}`,
        actor,
      },
    );
  }

  cancel(id: string, actor: string): JobRecord {
    const job = this.get(id);
    if (job.state !== JobState.JOB_STATE_PENDING)
      throw new FailedPreconditionError(
        `jobs/${id} has left the queue (${jobsV1.jobStateToJSON(job.state).replace('JOB_STATE_', '')}); use StopJob or KillJob`,
        'JOB_NOT_PENDING',
      );
    const i = this.queue.indexOf(id);
    if (i >= 0) this.queue.splice(i, 1);
    const done = this.record(
      id,
      { state: JobState.JOB_STATE_CANCELLED, endTime: Date.now(), cleanedUp: true },
      { type: JobEventType.JOB_EVENT_TYPE_CANCELLED, message: 'cancelled while queued', actor },
    );
    this.gpuHolds.delete(id);
    for (const w of this.waiters.get(id) ?? []) w();
    this.waiters.delete(id);
    return done;
  }

  async delete(id: string): Promise<void> {
    const job = this.get(id);
    if (!isTerminal(job.state))
      throw new FailedPreconditionError(
        `jobs/${id} is ${jobsV1.jobStateToJSON(job.state).replace('JOB_STATE_', '')}; stop or kill it before deleting`,
        'JOB_NOT_TERMINAL',
      );
    if (!job.cleanedUp) await this.removeContainer(id);
    this.cleanupFiles(id, true);
    this.o.store.delete(id);
  }

  // ---- reads -----------------------------------------------------------------------------------------

  get(id: string): JobRecord {
    const job = this.o.store.get(id);
    if (!job) throw jobNotFound(id);
    return job;
  }

  /** Live resource use of a running job, sampled at most once a second. */
  usage(job: JobRecord): JobUsage | undefined {
    if (job.state !== JobState.JOB_STATE_RUNNING) return job.usage;
    const cached = this.usageCache.get(job.id);
    const now = Date.now();
    if (cached && now - cached.sampleTime < 1000) return cached;
    const s = readCgroupStats(this.o.host.cgroup.version, this.cgroupPath(job.id));
    const u: JobUsage = { ...s, wallMs: now - (job.startTime ?? now), sampleTime: now };
    this.usageCache.set(job.id, u);
    return u;
  }

  queuePosition(id: string): number {
    return this.queue.indexOf(id) + 1;
  }

  list(q: ListJobsQuery): { jobs: JobRecord[]; nextBeforeSeq: number } {
    return this.o.store.list(q);
  }

  /** Resolves when the job is terminal, the timeout passes or the signal aborts. */
  async wait(id: string, timeoutMs: number, signal: AbortSignal): Promise<JobRecord> {
    const job = this.get(id);
    if (isTerminal(job.state)) return job;
    await new Promise<void>((resolve) => {
      const set = this.waiters.get(id) ?? new Set();
      this.waiters.set(id, set);
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        set.delete(done);
        resolve();
      };
      const timer = timeoutMs > 0 ? setTimeout(done, timeoutMs) : undefined;
      signal.addEventListener('abort', done);
      set.add(done);
    });
    return this.get(id);
  }

  /** The stored log of a job, shared by its readers while it runs. */
  async logOf(job: JobRecord): Promise<JobLog> {
    const existing = this.logs.get(job.id);
    if (existing) return existing;
    const log = JobLog.open(join(this.jobDir(job.id), 'ctr.log'), {
      maxBytes: Number(job.spec.resources?.maxLogBytes ?? BigInt(this.o.config.defaults.maxLogBytes)),
      ...(job.logCheckpoint ? { checkpoint: job.logCheckpoint } : {}),
      // Recorded before the hole is punched; if it cannot be recorded this throws and nothing is punched,
      // so a restarted aetherd never trusts a start that reads as zeros.
      onCheckpoint: (c) =>
        void this.o.store.update(job.id, { logCheckpoint: c, logStartOffset: c.startOffset }),
      onWarning: (message, err) => this.o.log.warn({ err, jobId: job.id }, `job log: ${message}`),
      // While the job runs, watch the file so the size cap holds between sweeps.
      watch: !isTerminal(job.state),
    });
    if (isTerminal(job.state)) {
      await log.refresh();
      log.finish();
      return log; // not cached: the caller closes it
    }
    this.logs.set(job.id, log);
    return log;
  }

  /** Log counters of a running job as last scanned (the sweep refreshes them every second). */
  liveLogCounters(
    id: string,
  ): { stdoutBytes: number; stderrBytes: number; logStartOffset: number } | undefined {
    const log = this.logs.get(id);
    return (
      log && { stdoutBytes: log.stdoutBytes, stderrBytes: log.stderrBytes, logStartOffset: log.startOffset }
    );
  }

  /** Whether `logOf` returned a log the caller must close itself. */
  isSharedLog(log: JobLog): boolean {
    for (const l of this.logs.values()) if (l === log) return true;
    return false;
  }

  // ---- bookkeeping -----------------------------------------------------------------------------------

  private record(
    id: string,
    patch: Parameters<JobStore['update']>[1],
    ...input: (EventInput | undefined)[]
  ): JobRecord {
    const time = Date.now();
    const events = input
      .filter((e): e is EventInput => e !== undefined)
      .map((e) => ({ time, actor: e.actor ?? '', type: e.type, message: e.message }));
    const job = this.o.store.update(id, patch, ...events);
    for (const e of events) this.emit(job, e);
    return job;
  }

  private emit(job: JobRecord, event: JobEventRecord): void {
    try {
      this.o.onEvent?.(job, event);
    } catch (err) {
      this.o.log.warn({ err, jobId: job.id }, 'job event listener failed');
    }
  }

  private sweep(): void {
    if (this.closed) return;
    for (const id of this.active) {
      const job = this.o.store.get(id);
      if (job?.state === JobState.JOB_STATE_RUNNING && existsSync(join(this.exitDir, id)))
        this.onExitFile(id);
    }
    for (const id of this.cleanupRetries.keys()) {
      this.cleanUp(id).catch((err: unknown) => this.o.log.warn({ err, jobId: id }, 'cleanup retry failed'));
    }
    for (const [id, log] of this.logs)
      log
        .refresh()
        .catch((err: unknown) => this.o.log.warn({ err, jobId: id }, 'reading the job log failed'));
    if (this.o.config.retentionSeconds > 0) {
      for (const id of this.o.store.endedBefore(Date.now() - this.o.config.retentionSeconds * 1000)) {
        this.delete(id).catch((err: unknown) =>
          this.o.log.warn({ err, jobId: id }, 'retention: could not delete a job'),
        );
      }
    }
  }

  /**
   * Makes the records and the host agree after a start: running jobs are re-attached, jobs that ended
   * while aetherd was down get their real exit, anything unaccountable is LOST and cleaned up, and no
   * container, cgroup or bundle is left that no live job owns.
   */
  private async reconcile(): Promise<void> {
    const containers = new Map((await this.o.runtime.list().catch(() => [])).map((c) => [c.id, c]));
    const live = new Set<string>();
    for (const job of this.o.store.inStates([
      JobState.JOB_STATE_PENDING,
      JobState.JOB_STATE_STARTING,
      JobState.JOB_STATE_RUNNING,
    ])) {
      if (job.state === JobState.JOB_STATE_PENDING) {
        this.queue.push(job.id);
        continue;
      }
      const c = containers.get(job.id);
      const exited = this.readExitStatus(job.id);
      if (job.state === JobState.JOB_STATE_RUNNING && exited) {
        live.add(job.id);
        this.active.add(job.id);
        this.record(
          job.id,
          {},
          {
            type: JobEventType.JOB_EVENT_TYPE_REATTACHED,
            message: 'aetherd restarted; the job had ended meanwhile, recording its exit',
          },
        );
        this.onExitFile(job.id);
        continue;
      }
      if (
        job.state === JobState.JOB_STATE_RUNNING &&
        c &&
        (c.status === 'running' || c.status === 'paused') &&
        monitorAlive(job.monitorPid)
      ) {
        live.add(job.id);
        this.active.add(job.id);
        const j = this.record(
          job.id,
          {},
          {
            type: JobEventType.JOB_EVENT_TYPE_REATTACHED,
            message: `re-attached after an aetherd restart (pid ${job.pid}, monitor ${job.monitorPid})`,
          },
        );
        this.armTimers(j);
        await this.logOf(j);
        continue;
      }
      const reason =
        job.state === JobState.JOB_STATE_STARTING
          ? 'aetherd stopped while the job was starting'
          : !c
            ? 'its container no longer exists and no exit status was recorded'
            : `its monitor (pid ${job.monitorPid}) is gone and no exit status was recorded`;
      await this.o.runtime.delete(job.id, true).catch(() => undefined);
      const problems = await this.removeJobCgroup(job.id);
      this.cleanupFiles(job.id);
      this.record(
        job.id,
        {
          state: JobState.JOB_STATE_LOST,
          endTime: Date.now(),
          failureReason: reason,
          pid: 0,
          cleanedUp: problems.length === 0,
        },
        { type: JobEventType.JOB_EVENT_TYPE_LOST, message: reason },
      );
      this.o.log.warn({ jobId: job.id, reason }, 'job lost');
    }
    // Containers in our runtime root that no live job owns.
    for (const [id] of containers) {
      if (live.has(id)) continue;
      await this.o.runtime
        .delete(id, true)
        .catch((err: unknown) =>
          this.o.log.warn({ err, container: id }, 'could not remove an orphaned container'),
        );
      this.o.log.warn({ container: id }, 'removed a container no running job owns');
    }
    // Cgroups under our parent that no live job owns (e.g. the runtime state was lost with a reboot).
    for (const name of listJobCgroups(this.o.config.cgroupParent)) {
      if (live.has(name)) continue;
      const problems = await this.removeJobCgroup(name);
      if (problems.length) this.o.log.warn({ cgroup: name, problems }, 'could not remove an orphaned cgroup');
    }
    // Bundles of jobs that are over, and finished jobs whose cleanup did not complete.
    for (const job of this.o.store.notCleanedUp()) {
      if (live.has(job.id) || !isTerminal(job.state)) continue;
      this.cleanupFiles(job.id);
      this.o.store.update(job.id, { cleanedUp: true });
    }
    for (const entry of readdirSync(this.o.config.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || ['exits', 'sockets'].includes(entry.name)) continue;
      if (!this.o.store.get(entry.name))
        rmSync(join(this.o.config.dir, entry.name), { recursive: true, force: true });
    }
  }
}

function monitorAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('conmon');
  } catch {
    return false;
  }
}
