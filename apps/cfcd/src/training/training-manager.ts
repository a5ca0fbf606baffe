import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import type { Logger } from '@aether/log';
import {
  artifactsV1,
  isTerminalJobState,
  jobsV1,
  memoryV1,
  modelsV1,
  msFromDuration,
  timestampFromDate,
} from '@aether/proto';
import { clientStreamCall, newId, RpcError, serverStreamCall, unaryCall, type CallOpts } from '@aether/rpc';
import { OUTPUT_LABEL, trainingJobSpec, type JsonObject, type Template } from './templates';
import type { TrainingStore } from './training-store';

const { TrainingRunState: S } = modelsV1;
const { JobState } = jobsV1;

const TERMINAL_RUN = new Set([
  S.TRAINING_RUN_STATE_SUCCEEDED,
  S.TRAINING_RUN_STATE_FAILED,
  S.TRAINING_RUN_STATE_STOPPED,
]);
const LAST_LOG_LINES = 50;
const MAX_LINE_BYTES = 64 * 1024;

export const isTerminalRun = (s: modelsV1.TrainingRunState): boolean => TERMINAL_RUN.has(s);

/** A WatchTrainingRun update. */
export type RunUpdate = { run: modelsV1.TrainingRun } | { metric: modelsV1.TrainingMetricPoint };

/** What the manager needs from the rest of cfcd. */
export interface TrainingDeps {
  store: TrainingStore;
  jobs: jobsV1.JobServiceClient;
  artifacts: artifactsV1.ArtifactServiceClient;
  memory: memoryV1.MemoryServiceClient;
  /** Registers a model from an artifact (RegisterModel's path); returns its name. */
  registerModel: (m: {
    id: string;
    artifact: string;
    displayName: string;
    labels: Record<string, string>;
    actor: string;
    trainingRun: string;
  }) => Promise<string>;
  templates: { get(name: string): Template | undefined };
  log: Logger;
}

export interface StartRequest {
  template: Template;
  spec: modelsV1.TrainingSpec;
  hyperparameters: JsonObject;
  labels: Record<string, string>;
  displayName: string;
  idempotencyKey: string;
  actor: string;
  intentId: string;
  opts: CallOpts;
}

/** Parses one stdout line of a trainer into a metric point, or undefined when it carries none. */
export function metricOfLine(
  line: string,
  lastStep: bigint,
  at: Date,
): modelsV1.TrainingMetricPoint | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  if (!num(o['step']) && !num(o['loss'])) return undefined;
  const step = num(o['step']) ? BigInt(Math.trunc(o['step'])) : lastStep + 1n;
  // The trainer's closing line repeats the last step's figures: it is a summary, not a new point.
  if ((o['done'] === true || o['stopped'] === true) && step <= lastStep) return undefined;
  const extra: Record<string, number> = {};
  for (const [k, x] of Object.entries(o)) if (k !== 'step' && k !== 'loss' && num(x)) extra[k] = x;
  return { step, loss: num(o['loss']) ? o['loss'] : NaN, extra, time: timestampFromDate(at) };
}

const jobIdOf = (name: string): string => name.slice('jobs/'.length);

function describeJobEnd(job: jobsV1.Job): string {
  const state = jobsV1.jobStateToJSON(job.state).replace('JOB_STATE_', '');
  const how = job.exitStatus
    ? job.exitStatus.signal
      ? `killed by ${job.exitStatus.signal}`
      : `exit code ${job.exitStatus.exitCode ?? '?'}`
    : '';
  return [`job ${job.name} ended ${state}`, job.failureReason || how].filter((s) => s).join(': ');
}

/**
 * Training runs: each is an aetherd job (the template's trainer, sandboxed) that cfcd follows from
 * start to end. cfcd reads the job's stdout as JSON lines into metric points, and when the job
 * succeeds the outputs aetherd registered (with lineage to the datasets, the trainer and the job) are
 * the run's checkpoints; the model is registered if asked, and a summary citing all of it goes to
 * memory. Runs survive a cfcd restart: an unfinished run is followed again from the log offset it had
 * reached.
 */
export class TrainingManager {
  private readonly watchers = new Map<string, Set<(u: RunUpdate) => void>>();
  private readonly following = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private readonly uploaded = new Map<string, string>();

  constructor(private readonly d: TrainingDeps) {}

  /** Follows again every run a previous cfcd left unfinished. */
  resume(): void {
    for (const rec of this.d.store.unfinished()) {
      if (rec.run.job === '') {
        this.finish(rec.run, S.TRAINING_RUN_STATE_FAILED, 'cfcd stopped before the job was submitted');
        continue;
      }
      this.follow(rec.run.id);
    }
  }

  async start(r: StartRequest): Promise<modelsV1.TrainingRun> {
    const id = newId().toLowerCase();
    const now = new Date();
    const run: modelsV1.TrainingRun = modelsV1.TrainingRun.fromPartial({
      name: `trainingRuns/${id}`,
      id,
      spec: { ...r.spec, hyperparameters: r.hyperparameters },
      state: S.TRAINING_RUN_STATE_PENDING,
      actor: r.actor,
      intentId: r.intentId,
      createTime: timestampFromDate(now),
      labels: r.labels,
      displayName: r.displayName,
    });
    const existing = this.d.store.insert(run, r.idempotencyKey, now);
    if (existing !== id) return this.get(existing);
    try {
      const files = await this.uploadFiles(r.template, r.opts);
      const spec = trainingJobSpec(r.template, r.spec, r.hyperparameters, files, {
        id,
        labels: r.labels,
        intentId: r.intentId,
      });
      const { job } = await unaryCall(
        this.d.jobs.submitJob.bind(this.d.jobs),
        jobsV1.SubmitJobRequest.fromPartial({ spec, idempotencyKey: `training-${id}` }),
        r.opts,
      );
      run.job = job!.name;
      // The spec as it runs: the template's defaults filled in.
      run.spec = {
        ...run.spec!,
        resources: {
          cpuMillicores: spec.resources?.cpuMillicores ?? 0,
          memoryBytes: spec.resources?.memoryBytes ?? 0n,
          pidsMax: spec.resources?.pidsMax ?? 0,
          gpuCount: spec.devices.length,
          ...(spec.timeout ? { timeout: spec.timeout } : {}),
        },
      };
      this.d.store.update(run);
    } catch (err) {
      this.d.store.delete(id);
      throw err;
    }
    this.follow(id);
    return run;
  }

  get(id: string): modelsV1.TrainingRun {
    const rec = this.d.store.get(id);
    if (!rec)
      throw new RpcError(Status.NOT_FOUND, 'TRAINING_RUN_NOT_FOUND', `trainingRuns/${id} does not exist`, {
        metadata: { resource: `trainingRuns/${id}` },
      });
    return { ...rec.run, metrics: this.d.store.metrics(id) };
  }

  /** The run with only its latest metric point (lists and watch snapshots). */
  brief(run: modelsV1.TrainingRun): modelsV1.TrainingRun {
    const last = this.d.store.lastMetric(run.id);
    return { ...run, metrics: last ? [last] : [] };
  }

  /**
   * Streams a run: the snapshot, the replayed history after `afterStep` (if given), live points and a
   * snapshot on each state change; resolves after the terminal snapshot, or when `signal` aborts.
   */
  async watch(
    id: string,
    afterStep: bigint | undefined,
    send: (u: RunUpdate) => Promise<void> | void,
    signal: AbortSignal,
  ): Promise<void> {
    const queue: RunUpdate[] = [];
    let wake: (() => void) | undefined;
    const push = (u: RunUpdate): void => {
      queue.push(u);
      wake?.();
    };
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(push);
    try {
      const rec = this.d.store.get(id);
      if (!rec) return;
      await send({ run: this.brief(rec.run) });
      let lastStep = -1n;
      if (afterStep !== undefined)
        for (const m of this.d.store.metrics(id, afterStep)) {
          await send({ metric: m });
          lastStep = m.step;
        }
      if (isTerminalRun(rec.run.state)) return;
      for (;;) {
        while (queue.length > 0) {
          const u = queue.shift()!;
          if ('metric' in u) {
            if (u.metric.step <= lastStep) continue; // already sent by the replay
            lastStep = u.metric.step;
          }
          await send(u);
          if ('run' in u && isTerminalRun(u.run.state)) return;
        }
        if (signal.aborted) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        wake = undefined;
      }
    } finally {
      set.delete(push);
      if (set.size === 0) this.watchers.delete(id);
    }
  }

  /** Stops the run's job (stop signal, grace, SIGKILL); the run ends STOPPED. */
  async stop(
    id: string,
    grace: modelsV1.StopTrainingRunRequest['gracePeriod'],
    opts: CallOpts,
  ): Promise<modelsV1.TrainingRun> {
    const rec = this.d.store.get(id);
    if (!rec)
      throw new RpcError(Status.NOT_FOUND, 'TRAINING_RUN_NOT_FOUND', `trainingRuns/${id} does not exist`, {
        metadata: { resource: `trainingRuns/${id}` },
      });
    if (isTerminalRun(rec.run.state) || rec.run.state === S.TRAINING_RUN_STATE_FINALIZING)
      return this.brief(rec.run);
    this.d.store.setStopRequested(id);
    await unaryCall(
      this.d.jobs.stopJob.bind(this.d.jobs),
      jobsV1.StopJobRequest.fromPartial({ name: rec.run.job, ...(grace ? { gracePeriod: grace } : {}) }),
      opts,
    );
    return this.brief(this.d.store.get(id)!.run);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.following.values()]);
  }

  // ---------------------------------------------------------------------------------------------------

  private publish(id: string, u: RunUpdate): void {
    for (const w of this.watchers.get(id) ?? []) w(u);
  }

  private save(run: modelsV1.TrainingRun): void {
    this.d.store.update(run);
    this.publish(run.id, { run: this.brief(run) });
  }

  private finish(
    run: modelsV1.TrainingRun,
    state: modelsV1.TrainingRunState,
    reason = '',
    lines: string[] = [],
  ): void {
    this.save({
      ...run,
      state,
      endTime: timestampFromDate(new Date()),
      failureReason: reason,
      lastLogLines: lines,
    });
  }

  /** Uploads the template's files (its trainer) as artifacts, once per content; returns key → artifact. */
  private async uploadFiles(t: Template, callOpts: CallOpts): Promise<Record<string, string>> {
    // A trainer file serves every run of its templates, not this run's intent: uploaded without it, so
    // the content-keyed idempotency key always names the same request.
    const { intentId: _intent, ...opts } = callOpts;
    const out: Record<string, string> = {};
    for (const [key, path] of Object.entries(t.files)) {
      let st;
      try {
        st = statSync(path);
      } catch {
        throw new RpcError(
          Status.FAILED_PRECONDITION,
          'TEMPLATE_FILE_MISSING',
          `template ${t.name}: file ${key} (${path}) does not exist on this host`,
          { metadata: { template: t.name, file: path } },
        );
      }
      const cacheKey = `${path}:${st.size}:${st.mtimeMs}`;
      const known = this.uploaded.get(cacheKey);
      if (known) {
        try {
          await unaryCall(
            this.d.artifacts.getArtifact.bind(this.d.artifacts),
            artifactsV1.GetArtifactRequest.fromPartial({ name: known }),
            opts,
          );
          out[key] = known;
          continue;
        } catch {
          this.uploaded.delete(cacheKey); // deleted since: upload again
        }
      }
      const digest = await sha256Of(path);
      const first = artifactsV1.UploadArtifactRequest.fromPartial({
        payload: {
          $case: 'metadata',
          value: {
            metadata: {
              type: artifactsV1.ArtifactType.ARTIFACT_TYPE_OTHER,
              mediaType: path.endsWith('.js') ? 'text/javascript' : 'application/octet-stream',
              filename: basename(path),
              // The same file may serve several templates: nothing template-specific here, so the
              // idempotency key (by content) always names the same request.
              description: 'a training template file (trainer program) uploaded by cfcd',
              labels: { 'aether.training-file': 'true' },
            },
            expectedDigest: `sha256:${digest}`,
            expectedSizeBytes: BigInt(st.size),
            idempotencyKey: `training-file-${digest.slice(0, 40)}`,
          },
        },
      });
      const { artifact } = await clientStreamCall(
        this.d.artifacts.uploadArtifact.bind(this.d.artifacts),
        fileMessages(path, first),
        opts,
      );
      this.uploaded.set(cacheKey, artifact!.name);
      out[key] = artifact!.name;
    }
    return out;
  }

  private follow(id: string): void {
    if (this.following.has(id)) return;
    const p = this.followRun(id)
      .catch((err: unknown) => {
        if (this.abort.signal.aborted) return;
        this.d.log.error({ err, run: id }, 'training run follower failed');
        const rec = this.d.store.get(id);
        if (rec && !isTerminalRun(rec.run.state))
          this.finish(
            rec.run,
            S.TRAINING_RUN_STATE_FAILED,
            `cfcd lost track of the run: ${(err as Error).message}`,
          );
      })
      .finally(() => this.following.delete(id));
    this.following.set(id, p);
  }

  private async followRun(id: string): Promise<void> {
    const signal = this.abort.signal;
    const opts: CallOpts = { signal };
    const first = this.d.store.get(id)!;
    const jobName = first.run.job;
    const logs = this.followLog(id, jobName, first.logOffset, signal);
    let job: jobsV1.Job | undefined;
    for (;;) {
      if (signal.aborted) return;
      let res: jobsV1.WaitJobResponse;
      try {
        res = await unaryCall(
          this.d.jobs.waitJob.bind(this.d.jobs),
          jobsV1.WaitJobRequest.fromPartial({ name: jobName, waitTimeout: { seconds: 1n, nanos: 0 } }),
          opts,
        );
      } catch (err) {
        // aetherd restarting: the job goes on without it (its monitor is separate), so wait for it.
        if (RpcError.from(err).code !== Status.UNAVAILABLE || signal.aborted) throw err;
        await sleep(1000);
        continue;
      }
      job = res.job!;
      const run = this.d.store.get(id)!.run;
      if (
        run.state === S.TRAINING_RUN_STATE_PENDING &&
        job.state >= JobState.JOB_STATE_RUNNING &&
        job.startTime
      )
        this.save({ ...run, state: S.TRAINING_RUN_STATE_RUNNING, startTime: job.startTime });
      if (isTerminalJobState(job.state)) break;
    }
    // The log stream ends once the job is terminal and all of its output has been read.
    await Promise.race([logs, sleep(10_000)]);
    if (signal.aborted) return;
    const rec = this.d.store.get(id)!;
    const run = rec.run;
    if (job.state === JobState.JOB_STATE_SUCCEEDED) {
      this.save({ ...run, state: S.TRAINING_RUN_STATE_FINALIZING });
      try {
        await this.finalize(id, job, opts);
      } catch (err) {
        const cur = this.d.store.get(id)!.run;
        this.finish(cur, S.TRAINING_RUN_STATE_FAILED, `finalizing failed: ${RpcError.from(err).message}`);
      }
      return;
    }
    const lines = await this.lastLines(jobName, opts).catch(() => []);
    if (rec.stopRequested || job.state === JobState.JOB_STATE_CANCELLED)
      this.finish(run, S.TRAINING_RUN_STATE_STOPPED, '', []);
    else this.finish(run, S.TRAINING_RUN_STATE_FAILED, describeJobEnd(job), lines);
  }

  /**
   * Reads the job's stdout from `offset`, turning JSON lines into metric points, until the log ends;
   * after a broken stream it resumes from the last complete line it recorded.
   */
  private async followLog(id: string, job: string, offset: bigint, signal: AbortSignal): Promise<void> {
    for (let from = offset; ; from = this.d.store.get(id)?.logOffset ?? from) {
      try {
        await this.readLog(id, job, from, signal);
        return;
      } catch (err) {
        if (signal.aborted) return;
        const e = RpcError.from(err);
        if (e.code !== Status.UNAVAILABLE) {
          this.d.log.warn({ err: e, run: id }, 'cannot read the training job log');
          return;
        }
        await sleep(1000);
      }
    }
  }

  private async readLog(id: string, job: string, offset: bigint, signal: AbortSignal): Promise<void> {
    let partial = Buffer.alloc(0);
    let partialStart = offset;
    let lastStep = this.d.store.lastMetric(id)?.step ?? -1n;
    const stream = serverStreamCall(
      this.d.jobs.streamJobLogs.bind(this.d.jobs),
      jobsV1.StreamJobLogsRequest.fromPartial({
        name: job,
        stream: jobsV1.LogStream.LOG_STREAM_STDOUT,
        start: { $case: 'offset', value: offset },
        follow: true,
      }),
      { signal },
    );
    let seenRunning = false;
    for await (const chunk of stream) {
      // Output means the trainer runs: say so before its first points (WaitJob may not have told yet).
      // Checked on the first chunk only: the state never goes back to PENDING.
      const cur = seenRunning ? undefined : this.d.store.get(id)?.run;
      seenRunning = true;
      if (cur?.state === S.TRAINING_RUN_STATE_PENDING)
        this.save({
          ...cur,
          state: S.TRAINING_RUN_STATE_RUNNING,
          ...(chunk.time ? { startTime: chunk.time } : {}),
        });
      if (partial.length === 0) partialStart = chunk.offset;
      const data = partial.length > 0 ? Buffer.concat([partial, chunk.data]) : Buffer.from(chunk.data);
      const points: modelsV1.TrainingMetricPoint[] = [];
      let start = 0;
      let nl = data.indexOf(10);
      while (nl >= 0) {
        const p = metricOfLine(data.subarray(start, nl).toString('utf8'), lastStep, new Date());
        if (p) {
          points.push(p);
          lastStep = p.step;
        }
        start = nl + 1;
        nl = data.indexOf(10, start);
      }
      partial = data.subarray(start);
      if (partial.length > MAX_LINE_BYTES) partial = Buffer.alloc(0); // not a metrics line
      const consumed = partialStart + BigInt(start);
      partialStart = consumed;
      if (points.length > 0 || start > 0) {
        this.d.store.appendMetrics(id, points, consumed);
        for (const metric of points) this.publish(id, { metric });
      }
    }
  }

  /** The last lines of the job's log (both streams), for a failed run. */
  private async lastLines(job: string, opts: CallOpts): Promise<string[]> {
    const parts: Buffer[] = [];
    for await (const chunk of serverStreamCall(
      this.d.jobs.streamJobLogs.bind(this.d.jobs),
      jobsV1.StreamJobLogsRequest.fromPartial({
        name: job,
        start: { $case: 'tailLines', value: LAST_LOG_LINES },
      }),
      opts,
    ))
      parts.push(Buffer.from(chunk.data));
    const lines = Buffer.concat(parts).toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-LAST_LOG_LINES);
  }

  /** Checkpoints from the job's registered outputs, the model if asked, the summary in memory. */
  private async finalize(id: string, job: jobsV1.Job, opts: CallOpts): Promise<void> {
    let run = this.d.store.get(id)!.run;
    const template = this.d.templates.get(run.spec!.template);
    const checkpoints = [...job.outputArtifacts];
    run = { ...run, checkpoints };
    this.d.store.update(run);
    const byOutput = new Map<string, artifactsV1.Artifact>();
    for (const name of checkpoints) {
      const { artifact } = await unaryCall(
        this.d.artifacts.getArtifact.bind(this.d.artifacts),
        artifactsV1.GetArtifactRequest.fromPartial({ name }),
        opts,
      );
      const path = artifact!.labels[OUTPUT_LABEL];
      if (path !== undefined && !byOutput.has(path)) byOutput.set(path, artifact!);
    }
    if (run.spec!.registerModel) {
      const modelPath = template?.config.model ?? '';
      const artifact = modelPath ? byOutput.get(modelPath) : undefined;
      if (!artifact)
        throw new RpcError(
          Status.FAILED_PRECONDITION,
          'MODEL_OUTPUT_MISSING',
          modelPath
            ? `the trainer left no ${modelPath} in /work/outputs to register as the model`
            : `template ${run.spec!.template} names no model output`,
        );
      run.model = await this.d.registerModel({
        id: `tr-${id}`,
        artifact: artifact.name,
        displayName: run.displayName || `${run.spec!.template} ${id}`,
        labels: { ...run.labels, 'aether.training-run': id },
        actor: run.actor,
        trainingRun: run.name,
      });
      this.d.store.update(run);
    }
    run.summaryEntry = await this.writeSummary(run, job, byOutput, opts);
    this.finish(run, S.TRAINING_RUN_STATE_SUCCEEDED);
  }

  private async writeSummary(
    run: modelsV1.TrainingRun,
    job: jobsV1.Job,
    outputs: Map<string, artifactsV1.Artifact>,
    opts: CallOpts,
  ): Promise<string> {
    const metrics = this.d.store.metrics(run.id);
    const last = metrics.at(-1);
    const finite = metrics.filter((m) => Number.isFinite(m.loss));
    const best = finite.reduce<modelsV1.TrainingMetricPoint | undefined>(
      (b, m) => (b === undefined || m.loss < b.loss ? m : b),
      undefined,
    );
    const wall = job.usage?.wall ? msFromDuration(job.usage.wall) / 1000 : undefined;
    const fmt = (x: number): string => (Math.abs(x) >= 0.01 ? x.toFixed(4) : x.toExponential(3));
    const lines = [
      `Training run ${run.name} (template ${run.spec!.template}) succeeded${wall !== undefined ? ` in ${wall.toFixed(1)} s` : ''}.`,
      last
        ? `It ran ${last.step} steps; final loss ${fmt(last.loss)}${last.extra['val_loss'] !== undefined ? `, validation loss ${fmt(last.extra['val_loss'])}` : ''}${best ? `; best loss ${fmt(best.loss)} at step ${best.step}` : ''}.`
        : 'The trainer reported no metrics.',
      `Datasets: ${run.spec!.datasets.join(', ')}.`,
      `Hyperparameters: ${JSON.stringify(run.spec!.hyperparameters ?? {})}.`,
      `Outputs: ${[...outputs.entries()].map(([p, a]) => `${a.name} (${p})`).join(', ') || 'none'}.`,
      ...(run.model ? [`Registered model: ${run.model}.`] : []),
      `Job: ${job.name}.`,
    ];
    const { entry } = await unaryCall(
      this.d.memory.addEntry.bind(this.d.memory),
      memoryV1.AddEntryRequest.fromPartial({
        entry: {
          title: `Training run ${run.id} (${run.spec!.template})`,
          text: lines.join('\n'),
          tags: ['training', `template:${run.spec!.template}`],
          references: [
            run.name,
            job.name,
            ...run.spec!.datasets,
            ...run.checkpoints,
            ...(run.model ? [run.model] : []),
          ],
          provenance: { intentId: run.intentId, jobId: jobIdOf(job.name) },
        },
        idempotencyKey: `training-summary-${run.id}`,
      }),
      opts,
    );
    return entry!.name;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

async function sha256Of(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function* fileMessages(
  path: string,
  first: artifactsV1.UploadArtifactRequest,
): AsyncGenerator<artifactsV1.UploadArtifactRequest> {
  yield first;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    yield { payload: { $case: 'chunk', value: chunk as Buffer } };
}
