import { LATENCY_BUCKETS, type LatencyRecorder, type MetricsRegistry } from '@aether/metrics';
import { jobsV1, TERMINAL_JOB_STATES, type metricsV1 } from '@aether/proto';
import { isTerminal, JobState, type JobChange, type JobStore } from './job-store';

/** Every state a job can be in (the contract's JobState without UNSPECIFIED), in contract order. */
const STATES = (Object.values(JobState).filter((s) => typeof s === 'number') as JobState[]).filter(
  (s) => s !== JobState.JOB_STATE_UNSPECIFIED && s !== JobState.UNRECOGNIZED,
);
const TERMINAL = STATES.filter((s) => TERMINAL_JOB_STATES.has(s));

/**
 * The `jobs` section: jobs by state and the queue from the records (SQLite), the resources running jobs
 * hold, and what happened since start (submissions, ends by state, queue wait and start latency),
 * counted from the store's committed changes once this is constructed (after the runner's start-up
 * reconciliation: jobs found LOST or ended while aetherd was down are in `jobs_by_state`, not in
 * `finished_total_by_state`).
 */
export class JobMetrics {
  private submitted = 0;
  private readonly finished = new Map<JobState, number>();
  /** When each job now STARTING left the queue (ms since the epoch). */
  private readonly startingAt = new Map<string, number>();
  private readonly startLatency: LatencyRecorder;
  private readonly queueWait: LatencyRecorder;

  constructor(
    metrics: MetricsRegistry,
    private readonly store: JobStore,
    private readonly concurrencyLimit: number,
  ) {
    this.startLatency = metrics.latency(
      'jobs_start_latency',
      'Time from leaving the queue (STARTING) to RUNNING: the sandbox start cost',
      LATENCY_BUCKETS.start,
    );
    this.queueWait = metrics.latency(
      'jobs_queue_wait',
      'Time spent PENDING in the queue',
      LATENCY_BUCKETS.queue,
    );
    store.onChange((change) => this.changed(change));
    metrics.section('jobs', () => this.snapshot());
  }

  private changed({ job, previous }: JobChange): void {
    if (previous === undefined) {
      this.submitted++;
      return;
    }
    const now = Date.now();
    if (job.state === JobState.JOB_STATE_STARTING) {
      this.queueWait.observe(Math.max(0, now - job.createTime) / 1000);
      this.startingAt.set(job.id, now);
    } else if (job.state === JobState.JOB_STATE_RUNNING) {
      const since = this.startingAt.get(job.id);
      if (since !== undefined) this.startLatency.observe(Math.max(0, (job.startTime ?? now) - since) / 1000);
    }
    if (job.state !== JobState.JOB_STATE_STARTING) this.startingAt.delete(job.id);
    if (isTerminal(job.state)) this.finished.set(job.state, (this.finished.get(job.state) ?? 0) + 1);
  }

  async snapshot(): Promise<metricsV1.JobMetrics> {
    const counts = this.store.countByState();
    let cpu = 0;
    let memory = 0n;
    for (const job of this.store.inStates([JobState.JOB_STATE_RUNNING])) {
      cpu += job.spec.resources?.cpuMillicores ?? 0;
      memory += job.spec.resources?.memoryBytes ?? 0n;
    }
    const name = (s: JobState): string => jobsV1.jobStateToJSON(s);
    return {
      jobsByState: Object.fromEntries(STATES.map((s) => [name(s), BigInt(counts.get(s) ?? 0)])),
      queueDepth: BigInt(counts.get(JobState.JOB_STATE_PENDING) ?? 0),
      concurrencyLimit: BigInt(this.concurrencyLimit),
      submittedTotal: BigInt(this.submitted),
      startLatency: await this.startLatency.snapshot(),
      queueWait: await this.queueWait.snapshot(),
      cpuMillicoresAllocated: BigInt(cpu),
      memoryBytesAllocated: memory,
      finishedTotalByState: Object.fromEntries(
        TERMINAL.map((s) => [name(s), BigInt(this.finished.get(s) ?? 0)]),
      ),
    };
  }
}
