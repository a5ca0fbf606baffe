import { join } from 'node:path';
import type { AuditLog } from '@aether/audit';
import type { AetherdConfig } from '@aether/config';
import type { Logger } from '@aether/log';
import { jobsV1 } from '@aether/proto';
import type { ServiceHandlers } from '@aether/rpc';
import { describeHost, probeHost } from '@aether/sandbox';
import type { JobLookup } from '../artifacts/artifacts';
import type { EventSink } from '../events/event-hub';
import type { JobArtifacts } from './job-artifacts';
import { JobManager, type ResolvedJobsConfig } from './job-manager';
import { jobServiceHandlers } from './job-service';
import { hostLimits } from './job-spec';
import { JobStore } from './job-store';
import { ChildLauncher } from './runtime/launcher';
import { OciRuntime } from './runtime/oci-runtime';

/**
 * Brings up the job runner: probes the host (and logs what jobs will and will not get), opens the job
 * records, reconciles them with the runtime and the monitors, and returns the service handlers.
 */
export async function startJobs(
  config: AetherdConfig,
  log: Logger,
  audit: AuditLog,
  artifacts?: JobArtifacts,
  events?: EventSink,
): Promise<{
  handlers: ServiceHandlers<typeof jobsV1.JobServiceService>;
  manager: JobManager;
  lookup: JobLookup;
  close: () => Promise<void>;
}> {
  const jobsConfig: ResolvedJobsConfig = {
    ...config.jobs,
    dir: config.jobs.dir || join(config.stateDir, 'jobs'),
  };
  const host = await probeHost({
    runtime: jobsConfig.runtime,
    ...(jobsConfig.runtimePath ? { runtimePath: jobsConfig.runtimePath } : {}),
    ...(jobsConfig.conmonPath ? { conmonPath: jobsConfig.conmonPath } : {}),
    runtimeRoot: jobsConfig.runtimeRoot,
    scratchDir: join(jobsConfig.dir, 'probe'),
  });
  for (const f of describeHost(host)) {
    if (f.available) log.info({ feature: f.name }, `host: ${f.name}: ${f.detail}`);
    else log.warn({ feature: f.name }, `host: ${f.name} unavailable: ${f.detail}`);
  }
  const launcher = new ChildLauncher();
  const runtime = new OciRuntime(host.runtime.path, host.monitor.path, jobsConfig.runtimeRoot, launcher);
  const store = JobStore.open(jobsConfig.dir);
  if (events) {
    store.onChange(({ job, previous }) => {
      const state = jobsV1.jobStateToJSON(job.state);
      const common = {
        subject: `jobs/${job.id}`,
        jobId: job.id,
        ...(job.intentId ? { intentId: job.intentId } : {}),
      };
      if (previous === undefined) {
        events({ ...common, type: 'job.submitted', data: { state, actor: job.actor } });
        return;
      }
      events({
        ...common,
        type: 'job.state_changed',
        data: {
          state,
          previous_state: jobsV1.jobStateToJSON(previous),
          ...(job.exit?.code !== undefined ? { exit_code: job.exit.code } : {}),
          ...(job.exit?.signal ? { signal: job.exit.signal } : {}),
          ...(job.failureReason ? { reason: job.failureReason } : {}),
        },
      });
    });
  }
  const actor = `spiffe://${config.tls.trustDomain}/aetherd`;
  const manager = new JobManager({
    config: jobsConfig,
    host,
    runtime,
    store,
    log: log.child({ component: 'jobs' }),
    ...(artifacts ? { artifacts } : {}),
    onEvent: (job, event) => {
      // A job's state changes are audited (the caller's own RPC is audited by the pipeline already).
      audit
        .append(
          {
            actor: event.actor || actor,
            action: `jobs.event.${jobsV1.jobEventTypeToJSON(event.type).replace('JOB_EVENT_TYPE_', '').toLowerCase()}`,
            jobId: job.id,
            ...(job.intentId ? { intentId: job.intentId } : {}),
            resource: { type: 'job', id: job.id, state: jobsV1.jobStateToJSON(job.state) },
            outcome: event.message,
          },
          { durable: false },
        )
        .catch((err: unknown) => log.error({ err, jobId: job.id }, 'audit record of a job event lost'));
    },
  });
  await manager.start();
  log.info(
    { dir: jobsConfig.dir, runtime: host.runtime.path, maxConcurrent: jobsConfig.maxConcurrent },
    'jobs: ready',
  );
  return {
    handlers: jobServiceHandlers(manager, jobsConfig, hostLimits()),
    manager,
    lookup: {
      find: (id) => {
        const job = store.get(id);
        return job
          ? {
              workDir: join(jobsConfig.dir, id, 'work'),
              maxOutputBytes: Number(job.spec.resources?.maxOutputBytes ?? 0n),
              intentId: job.intentId,
            }
          : undefined;
      },
    },
    close: async () => {
      await manager.close();
      launcher.close();
    },
  };
}
