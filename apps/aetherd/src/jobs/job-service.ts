import { status as Status } from '@grpc/grpc-js';
import type { JobsConfig } from '@aether/config';
import { durationFromMs, jobPolicyResource, jobsV1, msFromDuration, timestampFromDate } from '@aether/proto';
import {
  InvalidArgumentError,
  RpcError,
  Violations,
  serverStream,
  unary,
  type CallContext,
  type ResourceRef,
  type ServiceHandlers,
} from '@aether/rpc';
import { parseLabelSelector } from '@aether/rpc';
import type { JobManager } from './job-manager';
import { signalName, validateSubmit, withDefaults, type HostLimits } from './job-spec';
import type { JobRecord } from './job-store';

const NAME = /^jobs\/([0-9a-z]{26})$/;
const MAX_TAIL_LINES = 100_000;

/** The id in `jobs/{id}`; INVALID_ARGUMENT / INVALID_NAME otherwise. */
export function jobIdOf(name: string, field = 'name'): string {
  const m = NAME.exec(name);
  if (!m)
    throw new RpcError(
      Status.INVALID_ARGUMENT,
      'INVALID_NAME',
      `${field}: ${JSON.stringify(name.slice(0, 100))} is not a job name (jobs/<26-character id>)`,
      {
        fieldViolations: [{ field, description: 'must be jobs/<id>' }],
      },
    );
  return m[1]!;
}

const byName = (req: { name: string }): ResourceRef => ({
  type: 'job',
  id: jobIdOf(req.name),
  attributes: {},
});
const validateName = (req: { name: string }): void => void jobIdOf(req.name);

/** A job as the API shows it. */
export function jobToProto(
  job: JobRecord,
  manager: JobManager,
  view: jobsV1.JobView = jobsV1.JobView.JOB_VIEW_FULL,
): jobsV1.Job {
  const usage = manager.usage(job);
  const exit = job.exit;
  const full = view !== jobsV1.JobView.JOB_VIEW_BASIC;
  return {
    name: `jobs/${job.id}`,
    id: job.id,
    spec: job.spec,
    state: job.state,
    actor: job.actor,
    createTime: timestampFromDate(new Date(job.createTime)),
    startTime: job.startTime !== undefined ? timestampFromDate(new Date(job.startTime)) : undefined,
    endTime: job.endTime !== undefined ? timestampFromDate(new Date(job.endTime)) : undefined,
    exitStatus: exit
      ? {
          ...(exit.code !== undefined ? { exitCode: exit.code } : {}),
          signal: exit.signal ?? '',
          oomKilled: exit.oomKilled,
          coreDumped: false,
        }
      : undefined,
    usage: usage
      ? {
          cpuUser: durationFromMs(usage.cpuUserMs),
          cpuSystem: durationFromMs(usage.cpuSystemMs),
          peakMemoryBytes: BigInt(usage.peakMemoryBytes),
          wall: durationFromMs(usage.wallMs),
          currentMemoryBytes: BigInt(usage.currentMemoryBytes),
          currentPids: BigInt(usage.currentPids),
          ioReadBytes: BigInt(usage.ioReadBytes),
          ioWriteBytes: BigInt(usage.ioWriteBytes),
          sampleTime: timestampFromDate(new Date(usage.sampleTime)),
        }
      : undefined,
    events: full
      ? manager.store.events(job.id).map((e) => ({
          time: timestampFromDate(new Date(e.time)),
          type: e.type,
          message: e.message,
          actor: e.actor,
        }))
      : [],
    failureReason: job.failureReason,
    stdoutBytes: BigInt(job.stdoutBytes),
    stderrBytes: BigInt(job.stderrBytes),
    logStartOffset: BigInt(job.logStartOffset),
    queuePosition: job.state === jobsV1.JobState.JOB_STATE_PENDING ? manager.queuePosition(job.id) : 0,
    outputArtifacts: job.outputArtifacts,
    runtime: job.runtime,
    pid: BigInt(job.pid),
  };
}

/** A running job's log counters come from its live log, not from the last stored figures. */
function withLiveLog(job: JobRecord, manager: JobManager): JobRecord {
  if (job.state !== jobsV1.JobState.JOB_STATE_RUNNING) return job;
  const live = manager.liveLogCounters(job.id);
  return live ? { ...job, ...live } : job;
}

function intentOf(spec: jobsV1.JobSpec, ctx: CallContext): string {
  const fromMeta = ctx.intentId ?? '';
  if (spec.intentId && fromMeta && spec.intentId !== fromMeta)
    throw new InvalidArgumentError([
      {
        field: 'spec.intent_id',
        description: `${spec.intentId} differs from the x-aether-intent-id metadata (${fromMeta})`,
      },
    ]);
  return spec.intentId || fromMeta;
}

/** JobService: the transport of the job runner. Validation and mapping here; behaviour in JobManager. */
export function jobServiceHandlers(
  manager: JobManager,
  config: JobsConfig,
  host: HostLimits,
): ServiceHandlers<typeof jobsV1.JobServiceService> {
  const show = (job: JobRecord): jobsV1.Job => jobToProto(withLiveLog(job, manager), manager);
  return {
    submitJob: unary<jobsV1.SubmitJobRequest, jobsV1.SubmitJobResponse>({
      mutates: true,
      validate: (req) => validateSubmit(req, config, host),
      // Policy sees the job exactly as it would run: defaults filled, so leaving a limit unset never
      // slips past a bound.
      resource: (req) => jobPolicyResource(withDefaults(req.spec!, config, host, '')),
      handle: (req, ctx) => {
        const intentId = intentOf(req.spec!, ctx);
        const spec = withDefaults(req.spec!, config, host, intentId);
        // Inputs must exist now; their blobs are bound when the job starts.
        for (const name of spec.inputArtifacts) manager.inputBlob(name);
        const job = manager.submit({
          spec,
          actor: ctx.principal.id,
          intentId,
          idempotencyKey: req.idempotencyKey,
        });
        return Promise.resolve({ job: show(job) });
      },
    }),
    getJob: unary<jobsV1.GetJobRequest, jobsV1.GetJobResponse>({
      validate: validateName,
      resource: byName,
      handle: (req) => Promise.resolve({ job: show(manager.get(jobIdOf(req.name))) }),
    }),
    listJobs: unary<jobsV1.ListJobsRequest, jobsV1.ListJobsResponse>({
      validate: (req) => {
        const v = new Violations().page(req);
        req.states.forEach((s, i) =>
          v.check(Number(s) > 0 && Number(s) <= 12, `states[${i}]`, 'is not a job state'),
        );
        v.throwIfAny();
        parseLabelSelector(req.labelSelector);
      },
      handle: (req) => {
        const matches = parseLabelSelector(req.labelSelector);
        const limit = req.pageSize === 0 ? 50 : Math.min(req.pageSize, 1000);
        const { jobs, nextBeforeSeq } = manager.list({
          states: req.states,
          intentId: req.intentId,
          actor: req.actor,
          beforeSeq: req.pageToken ? Number(req.pageToken) : 0,
          accept: (j) => matches(j.spec.labels),
          limit,
        });
        const view =
          req.view === jobsV1.JobView.JOB_VIEW_FULL
            ? jobsV1.JobView.JOB_VIEW_FULL
            : jobsV1.JobView.JOB_VIEW_BASIC;
        return Promise.resolve({
          jobs: jobs.map((j) => jobToProto(j, manager, view)),
          nextPageToken: nextBeforeSeq ? String(nextBeforeSeq) : '',
        });
      },
    }),
    waitJob: unary<jobsV1.WaitJobRequest, jobsV1.WaitJobResponse>({
      validate: (req) => {
        validateName(req);
        if (req.waitTimeout && msFromDuration(req.waitTimeout) < 0)
          throw new InvalidArgumentError([{ field: 'wait_timeout', description: 'must not be negative' }]);
      },
      resource: byName,
      handle: async (req, ctx) => {
        const job = await manager.wait(
          jobIdOf(req.name),
          req.waitTimeout ? msFromDuration(req.waitTimeout) : 0,
          ctx.signal,
        );
        if (ctx.signal.aborted && ctx.deadline && Date.now() >= ctx.deadline.getTime())
          throw new RpcError(
            Status.DEADLINE_EXCEEDED,
            'DEADLINE_EXCEEDED',
            `jobs/${job.id} did not end before the call's deadline`,
          );
        return { job: show(job), terminal: job.endTime !== undefined };
      },
    }),
    streamJobLogs: serverStream<jobsV1.StreamJobLogsRequest, jobsV1.StreamJobLogsResponse>({
      validate: (req) => {
        validateName(req);
        const v = new Violations();
        if (req.start?.$case === 'offset') v.check(req.start.value >= 0n, 'offset', 'must not be negative');
        if (req.start?.$case === 'tailLines')
          v.check(
            req.start.value >= 1 && req.start.value <= MAX_TAIL_LINES,
            'tail_lines',
            `must be between 1 and ${MAX_TAIL_LINES}`,
          );
        v.check(
          Number(req.stream) >= 0 && Number(req.stream) <= 2,
          'stream',
          'must be LOG_STREAM_STDOUT, LOG_STREAM_STDERR or unspecified',
        );
        v.throwIfAny();
      },
      resource: byName,
      handle: async (req, ctx, send) => {
        const job = manager.get(jobIdOf(req.name));
        const log = await manager.logOf(job);
        const shared = manager.isSharedLog(log);
        try {
          await log.refresh();
          if (
            req.start?.$case === 'offset' &&
            Number(req.start.value) > log.endOffset &&
            job.endTime !== undefined
          )
            throw new RpcError(
              Status.OUT_OF_RANGE,
              'LOG_OFFSET_OUT_OF_RANGE',
              `offset ${req.start.value} is beyond the end of the log (${log.endOffset})`,
              {
                metadata: { end_offset: String(log.endOffset) },
              },
            );
          const stream =
            req.stream === jobsV1.LogStream.LOG_STREAM_STDOUT
              ? 'stdout'
              : req.stream === jobsV1.LogStream.LOG_STREAM_STDERR
                ? 'stderr'
                : undefined;
          for await (const item of log.read({
            ...(req.start?.$case === 'offset' ? { from: Number(req.start.value) } : {}),
            ...(req.start?.$case === 'tailLines' ? { tailLines: req.start.value } : {}),
            ...(stream ? { stream } : {}),
            follow: req.follow,
            signal: ctx.signal,
          })) {
            if ('skipped' in item) {
              await send({
                stream: jobsV1.LogStream.LOG_STREAM_UNSPECIFIED,
                data: Buffer.alloc(0),
                offset: BigInt(log.startOffset),
                time: undefined,
                skippedBytes: BigInt(item.skipped),
              });
              continue;
            }
            await send({
              stream:
                item.stream === 'stdout'
                  ? jobsV1.LogStream.LOG_STREAM_STDOUT
                  : jobsV1.LogStream.LOG_STREAM_STDERR,
              data: item.data,
              offset: BigInt(item.offset),
              time: timestampFromDate(item.time),
              skippedBytes: 0n,
            });
          }
        } finally {
          if (!shared) log.close();
        }
      },
    }),
    stopJob: unary<jobsV1.StopJobRequest, jobsV1.StopJobResponse>({
      mutates: true,
      validate: (req) => {
        validateName(req);
        if (
          req.gracePeriod &&
          (msFromDuration(req.gracePeriod) < 0 ||
            msFromDuration(req.gracePeriod) > config.ceilings.stopGraceSeconds * 1000)
        )
          throw new InvalidArgumentError([
            {
              field: 'grace_period',
              description: `must be between 0 and ${config.ceilings.stopGraceSeconds} s`,
            },
          ]);
      },
      resource: byName,
      handle: async (req, ctx) => {
        const job = await manager.stop(jobIdOf(req.name), ctx.principal.id, {
          kill: false,
          ...(req.gracePeriod ? { graceMs: msFromDuration(req.gracePeriod) } : {}),
        });
        return { job: show(job) };
      },
    }),
    killJob: unary<jobsV1.KillJobRequest, jobsV1.KillJobResponse>({
      mutates: true,
      validate: validateName,
      resource: byName,
      handle: async (req, ctx) => ({
        job: show(await manager.stop(jobIdOf(req.name), ctx.principal.id, { kill: true })),
      }),
    }),
    signalJob: unary<jobsV1.SignalJobRequest, jobsV1.SignalJobResponse>({
      mutates: true,
      validate: (req) => {
        validateName(req);
        if (!signalName(req.signal))
          throw new InvalidArgumentError([
            {
              field: 'signal',
              description: `${JSON.stringify(req.signal)} is not a signal name (e.g. SIGUSR1, HUP)`,
            },
          ]);
      },
      resource: byName,
      handle: async (req, ctx) => ({
        job: show(
          await manager.signal(
            jobIdOf(req.name),
            ctx.principal.id,
            signalName(req.signal)!,
            req.allProcesses,
          ),
        ),
      }),
    }),
    deleteJob: unary<jobsV1.DeleteJobRequest, jobsV1.DeleteJobResponse>({
      mutates: true,
      validate: validateName,
      resource: byName,
      handle: async (req) => {
        await manager.delete(jobIdOf(req.name));
        return {};
      },
    }),
    cancelJob: unary<jobsV1.CancelJobRequest, jobsV1.CancelJobResponse>({
      mutates: true,
      validate: validateName,
      resource: byName,
      handle: (req, ctx) =>
        Promise.resolve({ job: show(manager.cancel(jobIdOf(req.name), ctx.principal.id)) }),
    }),
  };
}
