import { durationFromMs, jobsV1, timestampFromDate } from '@aether/proto';
import {
  exitCodeOf,
  exitText,
  isTerminal,
  jobDetail,
  jobName,
  jobSummary,
  listRow,
  parseStates,
  signalNumber,
  stateName,
} from './jobs-format';
import { UsageError } from './units';

const { JobState } = jobsV1;

const job = (over: Partial<jobsV1.Job> = {}): jobsV1.Job =>
  jobsV1.Job.fromPartial({
    name: 'jobs/01jc7v0m4k3h2g1f0e9d8c7b6a',
    id: '01jc7v0m4k3h2g1f0e9d8c7b6a',
    spec: {
      argv: ['/bin/sh', '-c', 'echo hi; exit 3'],
      resources: { cpuMillicores: 500, memoryBytes: 256n * 1024n * 1024n, pidsMax: 256 },
      timeout: durationFromMs(600_000),
      stopSignal: 'SIGTERM',
      stopGracePeriod: durationFromMs(10_000),
      labels: { team: 'ml' },
    },
    state: JobState.JOB_STATE_FAILED,
    actor: 'spiffe://aether.local/admin',
    createTime: timestampFromDate(new Date('2025-01-01T00:00:00Z')),
    startTime: timestampFromDate(new Date('2025-01-01T00:00:01Z')),
    endTime: timestampFromDate(new Date('2025-01-01T00:00:03.500Z')),
    exitStatus: { exitCode: 3 },
    usage: {
      cpuUser: durationFromMs(12),
      cpuSystem: durationFromMs(3),
      peakMemoryBytes: 1536n * 1024n,
      wall: durationFromMs(2500),
    },
    failureReason: 'exited with code 3',
    stdoutBytes: 3n,
    events: [
      {
        time: timestampFromDate(new Date('2025-01-01T00:00:00Z')),
        type: jobsV1.JobEventType.JOB_EVENT_TYPE_SUBMITTED,
        message: 'submitted',
        actor: 'spiffe://aether.local/admin',
      },
      {
        time: timestampFromDate(new Date('2025-01-01T00:00:03.500Z')),
        type: jobsV1.JobEventType.JOB_EVENT_TYPE_EXITED,
        message: 'exited with code 3',
      },
    ],
    ...over,
  });

describe('job names and states', () => {
  it('accepts jobs/<id> or a bare id', () => {
    expect(jobName('01abc')).toBe('jobs/01abc');
    expect(jobName('jobs/01abc')).toBe('jobs/01abc');
    expect(() => jobName('')).toThrow(UsageError);
    expect(() => jobName('jobs/')).toThrow(UsageError);
  });
  it('parses --state lists in any case, with or without the prefix', () => {
    expect(parseStates('running,failed')).toEqual([JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_FAILED]);
    expect(parseStates('OOM_KILLED, start-failed,JOB_STATE_PENDING')).toEqual([
      JobState.JOB_STATE_OOM_KILLED,
      JobState.JOB_STATE_START_FAILED,
      JobState.JOB_STATE_PENDING,
    ]);
    expect(() => parseStates('runing')).toThrow(
      /unknown job state "runing"; choose from pending, starting, running/,
    );
    expect(() => parseStates('unspecified')).toThrow(UsageError);
    expect(() => parseStates(',')).toThrow(UsageError);
  });
  it('names states and knows which are terminal', () => {
    expect(stateName(JobState.JOB_STATE_TIMED_OUT)).toBe('TIMED_OUT');
    expect(isTerminal(JobState.JOB_STATE_RUNNING)).toBe(false);
    expect(isTerminal(JobState.JOB_STATE_PENDING)).toBe(false);
    expect(isTerminal(JobState.JOB_STATE_CANCELLED)).toBe(true);
    expect(isTerminal(JobState.JOB_STATE_KILLED)).toBe(true);
  });
});

describe('exitCodeOf', () => {
  it('is 0 for success, the code for a non-zero exit, 128+N for a signal, else 1', () => {
    expect(
      exitCodeOf({
        state: JobState.JOB_STATE_SUCCEEDED,
        exitStatus: { exitCode: 0, signal: '', oomKilled: false, coreDumped: false },
      }),
    ).toBe(0);
    expect(exitCodeOf(job())).toBe(3);
    expect(
      exitCodeOf(
        job({
          state: JobState.JOB_STATE_KILLED,
          exitStatus: jobsV1.ExitStatus.fromPartial({ signal: 'SIGKILL' }),
        }),
      ),
    ).toBe(137);
    expect(
      exitCodeOf(
        job({
          state: JobState.JOB_STATE_STOPPED,
          exitStatus: jobsV1.ExitStatus.fromPartial({ signal: 'SIGTERM' }),
        }),
      ),
    ).toBe(143);
    expect(
      exitCodeOf(
        job({
          state: JobState.JOB_STATE_OOM_KILLED,
          exitStatus: jobsV1.ExitStatus.fromPartial({ signal: 'SIGKILL', oomKilled: true }),
        }),
      ),
    ).toBe(137);
    // Stopped although it exited 0, never started, lost, cancelled, an unknown signal: 1.
    expect(
      exitCodeOf(
        job({
          state: JobState.JOB_STATE_STOPPED,
          exitStatus: jobsV1.ExitStatus.fromPartial({ exitCode: 0 }),
        }),
      ),
    ).toBe(1);
    expect(exitCodeOf(job({ state: JobState.JOB_STATE_START_FAILED, exitStatus: undefined }))).toBe(1);
    expect(exitCodeOf(job({ state: JobState.JOB_STATE_CANCELLED, exitStatus: undefined }))).toBe(1);
    expect(
      exitCodeOf(
        job({
          state: JobState.JOB_STATE_FAILED,
          exitStatus: jobsV1.ExitStatus.fromPartial({ signal: 'SIGNOPE' }),
        }),
      ),
    ).toBe(1);
  });
  it('knows signal numbers with or without SIG', () => {
    expect(signalNumber('SIGKILL')).toBe(9);
    expect(signalNumber('term')).toBe(15);
    expect(signalNumber('NOPE')).toBeUndefined();
  });
  it('describes how the job ended', () => {
    expect(exitText(undefined)).toBe('-');
    expect(exitText(jobsV1.ExitStatus.fromPartial({ exitCode: 3 }))).toBe('3');
    expect(exitText(jobsV1.ExitStatus.fromPartial({ signal: 'SIGKILL', oomKilled: true }))).toBe(
      'SIGKILL (OOM)',
    );
  });
});

describe('views', () => {
  const now = new Date('2025-01-01T00:05:00Z').getTime();
  it('lists a job as ID STATE AGE DURATION EXIT COMMAND', () => {
    expect(listRow(job(), now)).toEqual([
      '01jc7v0m4k3h2g1f0e9d8c7b6a',
      'FAILED',
      '5m',
      '2.5s',
      '3',
      `/bin/sh -c 'echo hi; exit 3'`,
    ]);
    const running = job({
      state: JobState.JOB_STATE_RUNNING,
      endTime: undefined,
      exitStatus: undefined,
      usage: undefined,
    });
    expect(listRow(running, now).slice(1, 5)).toEqual(['RUNNING', '5m', '4m59s', '-']);
    expect(listRow(job({ spec: jobsV1.JobSpec.fromPartial({ argv: ['x'.repeat(100)] }) }), now, 10)[5]).toBe(
      'xxxxxxxxx…',
    );
  });
  it('summarises an ended job', () => {
    const s = jobSummary(job());
    expect(s).toContain('State:     FAILED\n');
    expect(s).toContain('Exit:      3\n');
    expect(s).toContain('Reason:    exited with code 3\n');
    expect(s).toContain('Duration:  2.5s\n');
    expect(s).toContain('peak memory 1.5 MiB');
  });
  it('shows everything in the detail view, events last', () => {
    const d = jobDetail(job(), now);
    expect(d).toContain('Actor:     spiffe://aether.local/admin\n');
    expect(d).toContain('Limits:    cpu 500m, memory 256 MiB, pids 256, timeout 10m0s\n');
    expect(d).toContain('Usage:     cpu 12ms user, 3ms sys, peak memory 1.5 MiB, wall 2.5s\n');
    expect(d).toContain('Created:   2025-01-01T00:00:00.000Z (5m ago)\n');
    expect(d).toContain('Labels:    team=ml\n');
    expect(d).toMatch(
      /Events:\n {2}2025-01-01T00:00:00.000Z {2}SUBMITTED {2}submitted \(by spiffe:\/\/aether.local\/admin\)\n {2}2025-01-01T00:00:03.500Z {2}EXITED {5}exited with code 3\n$/,
    );
  });
});
