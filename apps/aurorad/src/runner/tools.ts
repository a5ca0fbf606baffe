import type { ClientEndpointConfig } from '@aether/config';
import { artifactsV1, durationFromMs, isTerminalJobState, jobsV1, memoryV1, modelsV1 } from '@aether/proto';
import { createClient, serverStreamCall, unaryCall, type CallOpts } from '@aether/rpc';
import { encodeToolArguments } from '../planning/tool-arguments';
import type { Json, JsonObject, ToolName } from '../planning/plan';

/** The first bytes of a job's stdout a step keeps in its result. */
export const MAX_STDOUT_BYTES = 64 * 1024;
/** How long one WaitJob / GetTrainingRun poll waits before asking again (keeps calls short-lived). */
const WAIT_SLICE_MS = 30_000;

/** A memory hit an intent cites, as `IntentCitation` wants it (step id added by the caller). */
export interface ToolCitation {
  entry: string;
  version: number;
  charStart: number;
  charEnd: number;
  snippetText: string;
  score: number;
}

/** One tool call, with its arguments already resolved (no `${steps…}` references left). */
export interface ToolCall {
  intentId: string;
  stepId: string;
  tool: ToolName;
  arguments: JsonObject;
  /** The capability token minted for an approved step. */
  token?: string;
  /** Aborted when the intent is cancelled or runs out of time. */
  signal: AbortSignal;
  /** Told each resource name as soon as it exists, so a cancel can find a running job. */
  onResource: (name: string) => void;
}

export interface ToolResult {
  result: JsonObject;
  resources: string[];
  citations: ToolCitation[];
  /** Jobs the call started (counted against the intent's job budget). */
  jobsStarted: number;
}

/** A step whose tool finished but did not do what was asked (a job that failed, a run that stopped). */
export class ToolFailure extends Error {
  constructor(
    message: string,
    readonly code = 'FAILED_PRECONDITION',
    readonly reason = 'STEP_FAILED',
  ) {
    super(message);
  }
}

function asJson(value: unknown): Json {
  return JSON.parse(JSON.stringify(value ?? null)) as Json;
}

/**
 * Runs tool calls through the generated gRPC clients of aetherd and cfcd, and only through them:
 * aurorad never spawns processes or touches files outside its state directory. Every call carries
 * `x-aether-intent-id`; calls that create something carry the idempotency key `<intent>:<step>` so a
 * step resumed after a restart finds what its first attempt made instead of making it twice.
 */
export class Tools {
  private readonly jobs: jobsV1.JobServiceClient;
  private readonly artifacts: artifactsV1.ArtifactServiceClient;
  private readonly memory: memoryV1.MemoryServiceClient;
  private readonly models: modelsV1.ModelRuntimeServiceClient;

  constructor(aetherd: ClientEndpointConfig, cfcd: ClientEndpointConfig) {
    this.jobs = createClient(jobsV1.JobServiceClient, aetherd);
    this.artifacts = createClient(artifactsV1.ArtifactServiceClient, aetherd);
    this.memory = createClient(memoryV1.MemoryServiceClient, aetherd);
    this.models = createClient(modelsV1.ModelRuntimeServiceClient, cfcd);
  }

  close(): void {
    for (const c of [this.jobs, this.artifacts, this.memory, this.models]) c.close();
  }

  async run(call: ToolCall): Promise<ToolResult> {
    const bytes = encodeToolArguments(call.tool, call.arguments);
    // The approval token goes with the one call it was minted for (its action); the calls around it
    // (waiting, reading logs) are aurorad's own and need no approval.
    const base: CallOpts = { intentId: call.intentId, signal: call.signal };
    const opts: CallOpts = { ...base, ...(call.token ? { token: call.token } : {}) };
    const key = `${call.intentId}:${call.stepId}`;
    switch (call.tool) {
      case 'jobs.run': {
        const req = jobsV1.SubmitJobRequest.decode(bytes);
        req.idempotencyKey ||= key;
        const { job } = await unaryCall(this.jobs.submitJob.bind(this.jobs), req, opts);
        call.onResource(job!.name);
        return { ...(await this.finishJob(job!.name, base)), jobsStarted: 1 };
      }
      case 'jobs.wait': {
        const req = jobsV1.WaitJobRequest.decode(bytes);
        return { ...(await this.finishJob(req.name, opts)), jobsStarted: 0 };
      }
      case 'artifacts.register': {
        const req = artifactsV1.CreateArtifactRequest.decode(bytes);
        req.idempotencyKey ||= key;
        const { artifact } = await unaryCall(this.artifacts.createArtifact.bind(this.artifacts), req, opts);
        return this.artifactResult(artifact!);
      }
      case 'artifacts.get': {
        const req = artifactsV1.GetArtifactRequest.decode(bytes);
        const { artifact } = await unaryCall(this.artifacts.getArtifact.bind(this.artifacts), req, opts);
        return this.artifactResult(artifact!);
      }
      case 'memory.add': {
        const req = memoryV1.AddEntryRequest.decode(bytes);
        req.idempotencyKey ||= key;
        const { entry } = await unaryCall(this.memory.addEntry.bind(this.memory), req, opts);
        return {
          result: { entry: entry!.name, version: Number(entry!.version) },
          resources: [entry!.name],
          citations: [],
          jobsStarted: 0,
        };
      }
      case 'memory.search': {
        const req = memoryV1.SearchRequest.decode(bytes);
        const res = await unaryCall(this.memory.search.bind(this.memory), req, opts);
        const citations: ToolCitation[] = res.citations.map((c) => ({
          entry: c.entry,
          version: Number(c.version),
          charStart: Number(c.charStart),
          charEnd: Number(c.charEnd),
          snippetText: c.snippetText,
          score: c.score,
        }));
        const hits = citations.map((c) => ({
          entry: c.entry,
          version: c.version,
          char_start: c.charStart,
          char_end: c.charEnd,
          snippet: c.snippetText,
          score: c.score,
        }));
        return {
          result: {
            hits,
            citations: hits,
            answer: citations.map((c) => c.snippetText).join('\n'),
            top_entry: citations[0]?.entry ?? '',
          },
          resources: [...new Set(citations.map((c) => c.entry))],
          citations,
          jobsStarted: 0,
        };
      }
      case 'models.infer': {
        const req = modelsV1.InferRequest.decode(bytes);
        const res = await unaryCall(this.models.infer.bind(this.models), req, opts);
        return {
          result: { outputs: asJson(modelsV1.InferResponse.toJSON(res)), model: req.name },
          resources: [req.name],
          citations: [],
          jobsStarted: 0,
        };
      }
      case 'models.generate': {
        const req = modelsV1.GenerateRequest.decode(bytes);
        let text = '';
        for await (const piece of serverStreamCall(this.models.generate.bind(this.models), req, opts))
          text += piece.text;
        return { result: { text }, resources: [req.name], citations: [], jobsStarted: 0 };
      }
      case 'models.train': {
        const req = modelsV1.StartTrainingRequest.decode(bytes);
        req.idempotencyKey ||= key;
        const { run } = await unaryCall(this.models.startTraining.bind(this.models), req, opts);
        call.onResource(run!.name);
        return this.finishTraining(run!, call, base);
      }
    }
  }

  /** Stops what a cancelled step started: a job (StopJob also cancels a queued one) or a training run. */
  async stop(resource: string, intentId: string): Promise<void> {
    const opts: CallOpts = { intentId, timeoutMs: 10_000 };
    if (resource.startsWith('jobs/')) {
      await unaryCall(
        this.jobs.stopJob.bind(this.jobs),
        jobsV1.StopJobRequest.fromPartial({ name: resource, gracePeriod: durationFromMs(2_000) }),
        opts,
      );
    } else if (resource.startsWith('trainingRuns/')) {
      await unaryCall(
        this.models.stopTrainingRun.bind(this.models),
        modelsV1.StopTrainingRunRequest.fromPartial({ name: resource }),
        opts,
      );
    }
  }

  private async finishJob(name: string, opts: CallOpts): Promise<Omit<ToolResult, 'jobsStarted'>> {
    let job: jobsV1.Job | undefined;
    // Short waits in a loop rather than one long call: a cancel aborts at once either way, and no
    // deadline has to guess how long the job will take (its own timeout bounds it).
    for (;;) {
      const res = await unaryCall(
        this.jobs.waitJob.bind(this.jobs),
        jobsV1.WaitJobRequest.fromPartial({ name, waitTimeout: durationFromMs(WAIT_SLICE_MS) }),
        { ...opts, timeoutMs: WAIT_SLICE_MS + 10_000 },
      );
      job = res.job!;
      if (isTerminalJobState(job.state)) break;
    }
    // WaitJob already says how much the job wrote: no call for a job that wrote nothing.
    const stdout = job.stdoutBytes > 0n ? await this.readStdout(name, opts) : '';
    const artifacts = job.outputArtifacts;
    const digests: string[] = [];
    for (const a of artifacts) {
      const { artifact } = await unaryCall(
        this.artifacts.getArtifact.bind(this.artifacts),
        artifactsV1.GetArtifactRequest.fromPartial({ name: a }),
        opts,
      );
      digests.push(artifact!.digest);
    }
    const state = jobsV1.jobStateToJSON(job.state).replace(/^JOB_STATE_/, '');
    const exitCode = job.exitStatus?.exitCode ?? null;
    if (job.state !== jobsV1.JobState.JOB_STATE_SUCCEEDED) {
      const why =
        job.failureReason || (exitCode !== null ? `exit code ${exitCode}` : (job.exitStatus?.signal ?? ''));
      throw new ToolFailure(`job ${name} ended ${state}${why ? `: ${why}` : ''}`, 'ABORTED', 'JOB_FAILED');
    }
    return {
      result: {
        job: name,
        job_id: job.id,
        exit_code: exitCode,
        state,
        stdout,
        artifacts,
        digests,
        artifact: artifacts[0] ?? '',
        digest: digests[0] ?? '',
      },
      resources: [name, ...artifacts],
      citations: [],
    };
  }

  private async readStdout(name: string, opts: CallOpts): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    const req = jobsV1.StreamJobLogsRequest.fromPartial({
      name,
      stream: jobsV1.LogStream.LOG_STREAM_STDOUT,
      follow: false,
    });
    for await (const piece of serverStreamCall(this.jobs.streamJobLogs.bind(this.jobs), req, {
      ...opts,
      timeoutMs: 30_000,
    })) {
      const data = Buffer.from(piece.data);
      chunks.push(data.subarray(0, MAX_STDOUT_BYTES - size));
      size += Math.min(data.length, MAX_STDOUT_BYTES - size);
      if (size >= MAX_STDOUT_BYTES) break;
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  private artifactResult(a: artifactsV1.Artifact): ToolResult {
    return {
      result: { artifact: a.name, digest: a.digest, size_bytes: Number(a.sizeBytes) },
      resources: [a.name],
      citations: [],
      jobsStarted: 0,
    };
  }

  private async finishTraining(
    run: modelsV1.TrainingRun,
    call: ToolCall,
    opts: CallOpts,
  ): Promise<ToolResult> {
    const S = modelsV1.TrainingRunState;
    const terminal = new Set<number>([
      S.TRAINING_RUN_STATE_SUCCEEDED,
      S.TRAINING_RUN_STATE_FAILED,
      S.TRAINING_RUN_STATE_STOPPED,
    ]);
    let current = run;
    while (!terminal.has(current.state)) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, 1_000);
        call.signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            reject(new Error('cancelled'));
          },
          { once: true },
        );
      });
      current = (
        await unaryCall(
          this.models.getTrainingRun.bind(this.models),
          modelsV1.GetTrainingRunRequest.fromPartial({ name: run.name }),
          { ...opts, timeoutMs: 10_000 },
        )
      ).run!;
    }
    if (current.state !== S.TRAINING_RUN_STATE_SUCCEEDED)
      throw new ToolFailure(
        `training run ${run.name} ended ${modelsV1.trainingRunStateToJSON(current.state)}: ${current.failureReason}`,
        'ABORTED',
        'TRAINING_FAILED',
      );
    const last = current.metrics[current.metrics.length - 1];
    return {
      result: {
        run: current.name,
        model: current.model,
        metrics: last ? asJson(modelsV1.TrainingMetricPoint.toJSON(last)) : null,
        artifacts: current.checkpoints,
      },
      resources: [current.name, ...(current.model ? [current.model] : []), ...current.checkpoints],
      citations: [],
      jobsStarted: current.job ? 1 : 0,
    };
  }
}
