import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { durationFromMs, jobsV1 } from '@aether/proto';
import { serverStreamCall, type RpcError } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';
import { JobState, cleanedUp, logs, run, spec, stateName, submit, wait, waitForOutput } from './jobs-helpers';

const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );

/** Host processes whose command line is exactly `marker` (arguments joined by spaces). */
function hostProcesses(marker: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') === marker)
        pids.push(Number(p));
    } catch {
      // Exited meanwhile.
    }
  }
  return pids;
}

describe('jobs: lifecycle, logs and bad input (runc, as root)', () => {
  let stack: Stack;
  let admin: AetherClient;

  const shared = mkdtempSync(join(tmpdir(), 'aether-allowed-'));

  beforeAll(async () => {
    writeFileSync(join(shared, 'data.txt'), 'shared data\n');
    chmodSync(shared, 0o755);
    stack = await new Stack({
      jobs: { maxConcurrent: 8, mountAllowlist: [{ path: shared, writable: false }] },
    }).init();
    await stack.start('aetherd');
    admin = stack.client();
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
    rmSync(shared, { recursive: true, force: true });
  });

  it('binds an allowlisted host path read-only, and refuses to make it writable', async () => {
    const { job, out } = await run(
      admin,
      spec(
        ['/bin/sh', '-c', 'cat /data/data.txt; touch /data/new 2>/dev/null && echo wrote || echo read-only'],
        {
          mounts: [{ hostPath: shared, containerPath: '/data' }],
        },
      ),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(out).toBe('shared data\nread-only\n');
    const rw = await failure(
      submit(
        admin,
        spec(['/bin/true'], { mounts: [{ hostPath: shared, containerPath: '/data', readOnly: false }] }),
      ),
    );
    expect(rw.code).toBe(status.PERMISSION_DENIED);
    expect(rw.reason).toBe('MOUNT_NOT_ALLOWED');
  });

  it('runs the unsandboxed profile as root inside when it is asked for by name (admin policy grants it)', async () => {
    const { job, out } = await run(
      admin,
      spec(['/bin/sh', '-c', 'id -u; grep Seccomp: /proc/self/status'], { sandboxProfile: 'unsandboxed' }),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(out).toMatch(/^0\nSeccomp:\s+0\n$/);
  });

  it('records a successful job with its events, exit code, usage and the caller as actor', async () => {
    const { job, out } = await run(admin, spec(['/bin/echo', 'hello', 'world'], { labels: { team: 'a' } }));
    expect(out).toBe('hello world\n');
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(job.exitStatus?.exitCode).toBe(0);
    expect(job.actor).toBe('spiffe://aether.local/admin');
    expect(job.runtime).toBe('runc');
    expect(job.stdoutBytes).toBe(12n);
    const types = (await cleanedUp(admin, job.name)).events.map((e) =>
      jobsV1.jobEventTypeToJSON(e.type).replace('JOB_EVENT_TYPE_', ''),
    );
    expect(types).toEqual(['SUBMITTED', 'STARTING', 'STARTED', 'EXITED', 'CLEANED_UP']);
    expect(job.spec?.resources?.pidsMax).toBe(256);
    expect(job.spec?.stopSignal).toBe('SIGTERM');
    const listed = await admin.call(
      admin.jobs,
      'listJobs',
      jobsV1.ListJobsRequest.fromPartial({ labelSelector: 'team=a', states: [JobState.JOB_STATE_SUCCEEDED] }),
    );
    expect(listed.jobs.map((j) => j.name)).toEqual([job.name]);
  });

  it('reports a failing exit code as FAILED and a missing binary as START_FAILED with the runtime message', async () => {
    const failed = (await run(admin, spec(['/bin/sh', '-c', 'echo oops >&2; exit 3']))).job;
    expect(stateName(failed.state)).toBe('FAILED');
    expect(failed.exitStatus?.exitCode).toBe(3);
    expect(failed.failureReason).toBe('exited with code 3');
    expect(await logs(admin, failed.name, { stream: jobsV1.LogStream.LOG_STREAM_STDERR })).toBe('oops\n');

    const missing = (await run(admin, spec(['/no/such/binary']))).job;
    expect(stateName(missing.state)).toBe('START_FAILED');
    expect(missing.failureReason).toMatch(/\/no\/such\/binary.*no such file or directory/);
  });

  it('stops a job that handles SIGTERM as STOPPED after its handler ran', async () => {
    const job = await submit(
      admin,
      spec([
        '/bin/sh',
        '-c',
        'trap "echo handled TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done',
      ]),
    );
    await waitForOutput(admin, job.name, 'ready');
    await admin.call(admin.jobs, 'stopJob', { name: job.name });
    const done = await wait(admin, job.name);
    expect(stateName(done.state)).toBe('STOPPED');
    expect(await logs(admin, job.name)).toContain('handled TERM');
  });

  it('kills a job that ignores SIGTERM after the grace period, children included', async () => {
    const job = await submit(
      admin,
      spec(
        ['/bin/sh', '-c', 'trap "" TERM; sleep 4242 & sleep 4243 & echo ready; while :; do sleep 0.1; done'],
        { stopGracePeriod: durationFromMs(1_000) },
      ),
    );
    await waitForOutput(admin, job.name, 'ready');
    expect(hostProcesses('sleep 4242').length).toBe(1);
    const t0 = Date.now();
    await admin.call(admin.jobs, 'stopJob', { name: job.name });
    const done = await wait(admin, job.name);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(stateName(done.state)).toBe('KILLED');
    expect(done.exitStatus?.signal).toBe('SIGKILL');
    expect(hostProcesses('sleep 4242')).toEqual([]);
    expect(hostProcesses('sleep 4243')).toEqual([]);
  });

  it('ends a job past its runtime limit TIMED_OUT', async () => {
    const { job } = await run(
      admin,
      spec(['/bin/sleep', '30'], { timeout: durationFromMs(1_000), stopGracePeriod: durationFromMs(500) }),
    );
    expect(stateName(job.state)).toBe('TIMED_OUT');
    expect(job.failureReason).toMatch(/runtime limit/);
  });

  it('KillJob ends a job KILLED at once; SignalJob delivers a signal and records it', async () => {
    const job = await submit(
      admin,
      spec(['/bin/sh', '-c', 'trap "echo got USR1" USR1; echo ready; while :; do sleep 0.1; done']),
    );
    await waitForOutput(admin, job.name, 'ready');
    await admin.call(admin.jobs, 'signalJob', { name: job.name, signal: 'usr1', allProcesses: false });
    await waitForOutput(admin, job.name, 'got USR1');
    await admin.call(admin.jobs, 'killJob', { name: job.name });
    const done = await wait(admin, job.name);
    expect(stateName(done.state)).toBe('KILLED');
    expect(done.events.some((e) => e.message.startsWith('SIGUSR1'))).toBe(true);
    const again = await failure(
      admin.call(admin.jobs, 'signalJob', { name: job.name, signal: 'TERM', allProcesses: false }),
    );
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect(again.reason).toBe('JOB_NOT_RUNNING');
  });

  it('streams logs from an offset, as a tail, and following until the job ends', async () => {
    const job = await submit(
      admin,
      spec(['/bin/sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done; echo err >&2']),
    );
    const followed: Buffer[] = [];
    let lastOffset = -1n;
    for await (const m of serverStreamCall(
      admin.jobs.streamJobLogs.bind(admin.jobs),
      jobsV1.StreamJobLogsRequest.fromPartial({ name: job.name, follow: true }),
    )) {
      expect(m.offset).toBeGreaterThan(lastOffset);
      lastOffset = m.offset;
      followed.push(m.data);
    }
    const done = await admin.call(admin.jobs, 'getJob', { name: job.name });
    expect(stateName(done.job!.state)).toBe('SUCCEEDED');
    expect(Buffer.concat(followed).toString()).toBe('line1\nline2\nline3\nline4\nline5\nerr\n');
    expect(await logs(admin, job.name, { start: { $case: 'offset', value: 6n } })).toBe(
      'line2\nline3\nline4\nline5\nerr\n',
    );
    expect(
      await logs(admin, job.name, {
        start: { $case: 'tailLines', value: 2 },
        stream: jobsV1.LogStream.LOG_STREAM_STDOUT,
      }),
    ).toBe('line4\nline5\n');
    const beyond = await failure(logs(admin, job.name, { start: { $case: 'offset', value: 10_000n } }));
    expect(beyond.code).toBe(status.OUT_OF_RANGE);
  });

  it('caps the stored log: older output is rotated away and a reader is told how much it missed', async () => {
    const { job } = await run(
      admin,
      spec(
        ['/bin/sh', '-c', 'head -c 4000000 /dev/zero | tr "\\0" x; echo; echo the end'],
        {},
        { maxLogBytes: 1_048_576n },
      ),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(job.stdoutBytes).toBe(4_000_009n);
    expect(job.logStartOffset).toBeGreaterThan(2_000_000n);
    const file = statSync(`${stack.dir}/state/aetherd/jobs/${job.id}/ctr.log`);
    expect(file.blocks * 512).toBeLessThanOrEqual(1_048_576 + 65_536);
    const items: jobsV1.StreamJobLogsResponse[] = [];
    for await (const m of serverStreamCall(
      admin.jobs.streamJobLogs.bind(admin.jobs),
      jobsV1.StreamJobLogsRequest.fromPartial({ name: job.name }),
    ))
      items.push(m);
    expect(items[0]!.skippedBytes).toBe(job.logStartOffset);
    expect(
      Buffer.concat(items.map((i) => i.data))
        .toString()
        .endsWith('x\nthe end\n'),
    ).toBe(true);
  });

  it('queues jobs beyond the concurrency limit, and a queued job can be cancelled', async () => {
    const blockers = await Promise.all(
      Array.from({ length: 8 }, () => submit(admin, spec(['/bin/sleep', '30']))),
    );
    const queued = await submit(admin, spec(['/bin/true']));
    expect(stateName(queued.state)).toBe('PENDING');
    expect(queued.queuePosition).toBe(1);
    const cancelled = await admin.call(admin.jobs, 'cancelJob', { name: queued.name });
    expect(stateName(cancelled.job!.state)).toBe('CANCELLED');
    const next = await submit(admin, spec(['/bin/echo', 'after']));
    expect(stateName(next.state)).toBe('PENDING');
    await admin.call(admin.jobs, 'killJob', { name: blockers[0]!.name });
    expect(stateName((await wait(admin, next.name)).state)).toBe('SUCCEEDED');
    for (const b of blockers) await admin.call(admin.jobs, 'killJob', { name: b.name });
    for (const b of blockers) expect(stateName((await wait(admin, b.name)).state)).toBe('KILLED');
    const notPending = await failure(admin.call(admin.jobs, 'cancelJob', { name: next.name }));
    expect(notPending.reason).toBe('JOB_NOT_PENDING');
  }, 60_000);

  it('returns the same job for a repeated idempotency key and refuses the key with another spec', async () => {
    const a = await submit(admin, spec(['/bin/true']), 'intent-1:step-1');
    const b = await submit(admin, spec(['/bin/true']), 'intent-1:step-1');
    expect(b.name).toBe(a.name);
    const reused = await failure(submit(admin, spec(['/bin/false']), 'intent-1:step-1'));
    expect(reused.code).toBe(status.ALREADY_EXISTS);
  });

  it('deletes a finished job with its files, and refuses to delete a running one', async () => {
    const running = await submit(admin, spec(['/bin/sleep', '30']));
    const refused = await failure(admin.call(admin.jobs, 'deleteJob', { name: running.name }));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(refused.reason).toBe('JOB_NOT_TERMINAL');
    await admin.call(admin.jobs, 'killJob', { name: running.name });
    await wait(admin, running.name);
    await admin.call(admin.jobs, 'deleteJob', { name: running.name });
    const gone = await failure(admin.call(admin.jobs, 'getJob', { name: running.name }));
    expect(gone.code).toBe(status.NOT_FOUND);
    expect(gone.reason).toBe('JOB_NOT_FOUND');
    expect(readdirSync(`${stack.dir}/state/aetherd/jobs`)).not.toContain(running.id);
  });

  describe('bad input: a clear error with the right code, and no job created', () => {
    const cases: [string, Partial<jobsV1.JobSpec>, Partial<jobsV1.Resources>, status, string][] = [
      ['empty argv', { argv: [] }, {}, status.INVALID_ARGUMENT, 'spec.argv'],
      ['an empty argv[0]', { argv: [''] }, {}, status.INVALID_ARGUMENT, 'spec.argv[0]'],
      ['NUL in an argument', { argv: ['/bin/echo', 'a\0b'] }, {}, status.INVALID_ARGUMENT, 'spec.argv[1]'],
      ['NUL in env', { env: { X: 'a\0b' } }, {}, status.INVALID_ARGUMENT, 'spec.env'],
      ['a bad env name', { env: { 'A=B': 'x' } }, {}, status.INVALID_ARGUMENT, 'spec.env'],
      ['.. in cwd', { cwd: '/work/../../etc' }, {}, status.INVALID_ARGUMENT, 'spec.cwd'],
      ['a cwd outside /work', { cwd: '/etc' }, {}, status.INVALID_ARGUMENT, 'spec.cwd'],
      ['negative memory', {}, { memoryBytes: -1n }, status.INVALID_ARGUMENT, 'spec.resources.memory_bytes'],
      [
        'absurd memory',
        {},
        { memoryBytes: 1n << 60n },
        status.INVALID_ARGUMENT,
        'spec.resources.memory_bytes',
      ],
      ['negative cpu', {}, { cpuMillicores: -5 }, status.INVALID_ARGUMENT, 'spec.resources.cpu_millicores'],
      [
        'absurd cpu',
        {},
        { cpuMillicores: 10_000_000 },
        status.INVALID_ARGUMENT,
        'spec.resources.cpu_millicores',
      ],
      ['negative pids', {}, { pidsMax: -1 }, status.INVALID_ARGUMENT, 'spec.resources.pids_max'],
      [
        'a negative timeout',
        { timeout: { seconds: -5n, nanos: 0 } },
        {},
        status.INVALID_ARGUMENT,
        'spec.timeout',
      ],
      ['SIGKILL as stop signal', { stopSignal: 'KILL' }, {}, status.INVALID_ARGUMENT, 'spec.stop_signal'],
      ['an unknown profile', { sandboxProfile: 'nope' }, {}, status.INVALID_ARGUMENT, 'spec.sandbox_profile'],
      [
        'a mount outside the allowlist',
        { mounts: [{ hostPath: '/etc', containerPath: '/data', readOnly: true }] },
        {},
        status.PERMISSION_DENIED,
        'spec.mounts[0].host_path',
      ],
      [
        'a mount onto /proc',
        { mounts: [{ hostPath: '/etc', containerPath: '/proc/x', readOnly: true }] },
        {},
        status.INVALID_ARGUMENT,
        'spec.mounts[0].container_path',
      ],
      [
        'a 10 MB argv',
        { argv: ['/bin/echo', 'x'.repeat(10 * 1024 * 1024)] },
        {},
        status.RESOURCE_EXHAUSTED,
        'spec.argv',
      ],
    ];
    it.each(cases)('%s', async (_what, over, res, code, field) => {
      const before = (
        await admin.call(admin.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({ pageSize: 1000 }))
      ).jobs.length;
      const err = await failure(submit(admin, spec(over.argv ?? ['/bin/true'], over, res)));
      expect(err.code).toBe(code);
      expect(err.message).toContain(field);
      const after = (
        await admin.call(admin.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({ pageSize: 1000 }))
      ).jobs.length;
      expect(after).toBe(before);
      const health = await admin.health('aetherd');
      expect(health.status).toBe('SERVING');
    });

    it('rejects malformed names, selectors and stream requests', async () => {
      expect((await failure(admin.call(admin.jobs, 'getJob', { name: 'jobs/../x' }))).reason).toBe(
        'INVALID_NAME',
      );
      expect(
        (
          await failure(
            admin.call(admin.jobs, 'listJobs', jobsV1.ListJobsRequest.fromPartial({ labelSelector: '=x' })),
          )
        ).reason,
      ).toBe('INVALID_LABEL_SELECTOR');
      expect(
        (await failure(admin.call(admin.jobs, 'getJob', { name: 'jobs/01aaaaaaaaaaaaaaaaaaaaaaaa' }))).code,
      ).toBe(status.NOT_FOUND);
      const neg = await failure(
        logs(admin, 'jobs/01aaaaaaaaaaaaaaaaaaaaaaaa', { start: { $case: 'offset', value: -1n } }),
      );
      expect(neg.code).toBe(status.INVALID_ARGUMENT);
    });
  });

  it('marks a job whose monitor died while aetherd was down LOST, and removes its container and processes', async () => {
    const job = await submit(admin, spec(['/bin/sh', '-c', 'echo up; exec sleep 4244']));
    await waitForOutput(admin, job.name, 'up');
    stack.daemons.get('aetherd')!.child.kill('SIGKILL');
    await stack.daemons.get('aetherd')!.exited;
    stack.daemons.delete('aetherd');
    const monitors = readdirSync('/proc')
      .filter((p) => {
        try {
          const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
          return cmd.startsWith('conmon') || (cmd.includes('conmon') && cmd.includes(job.id));
        } catch {
          return false;
        }
      })
      .filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(job.id));
    expect(monitors).toHaveLength(1);
    process.kill(Number(monitors[0]), 'SIGKILL');
    await stack.start('aetherd');
    const client = stack.client();
    try {
      const lost = (await client.call(client.jobs, 'getJob', { name: job.name })).job!;
      expect(stateName(lost.state)).toBe('LOST');
      expect(lost.failureReason).toMatch(/monitor .* is gone/);
      expect(hostProcesses('sleep 4244')).toEqual([]);
    } finally {
      client.close();
    }
    admin.close();
    admin = stack.client();
  });

  it('survives kill -9 of aetherd: jobs finish, exits and complete logs are recorded, followers resume', async () => {
    const script = 'for i in $(seq 1 30); do echo tick$i; sleep 0.1; done; exit 7';
    const job = await submit(admin, spec(['/bin/sh', '-c', script]));
    const quick = await submit(admin, spec(['/bin/sh', '-c', 'sleep 0.5; echo quick done']));
    const long = await submit(admin, spec(['/bin/sh', '-c', 'trap "" TERM; echo up; sleep 60']));
    await waitForOutput(admin, job.name, 'tick3');
    await waitForOutput(admin, long.name, 'up');
    // A follower reads until aetherd dies under it.
    const seen: Buffer[] = [];
    let next = 0n;
    const follower = (async () => {
      try {
        for await (const m of serverStreamCall(
          admin.jobs.streamJobLogs.bind(admin.jobs),
          jobsV1.StreamJobLogsRequest.fromPartial({ name: job.name, follow: true }),
        )) {
          seen.push(m.data);
          next = m.offset + BigInt(m.data.length);
        }
      } catch {
        // The connection drops with aetherd.
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    stack.daemons.get('aetherd')!.child.kill('SIGKILL');
    await follower;
    await stack.daemons.get('aetherd')!.exited;
    stack.daemons.delete('aetherd');
    // While aetherd is down the jobs keep running under their monitors; `quick` ends meanwhile.
    await new Promise((r) => setTimeout(r, 1_500));
    await stack.start('aetherd');
    const client = stack.client();
    try {
      const rest: Buffer[] = [];
      for await (const m of serverStreamCall(
        client.jobs.streamJobLogs.bind(client.jobs),
        jobsV1.StreamJobLogsRequest.fromPartial({
          name: job.name,
          follow: true,
          start: { $case: 'offset', value: next },
        }),
      )) {
        rest.push(m.data);
      }
      const whole = Buffer.concat([...seen, ...rest]).toString();
      expect(whole).toBe(Array.from({ length: 30 }, (_, i) => `tick${i + 1}\n`).join(''));
      const done = await wait(client, job.name);
      expect(stateName(done.state)).toBe('FAILED');
      expect(done.exitStatus?.exitCode).toBe(7);
      expect(done.events.some((e) => e.type === jobsV1.JobEventType.JOB_EVENT_TYPE_REATTACHED)).toBe(true);
      const q = await wait(client, quick.name);
      expect(stateName(q.state)).toBe('SUCCEEDED');
      expect(await logs(client, quick.name)).toBe('quick done\n');
      // Control still works on a re-attached job.
      await client.call(client.jobs, 'killJob', { name: long.name });
      expect(stateName((await wait(client, long.name)).state)).toBe('KILLED');
    } finally {
      client.close();
    }
  }, 60_000);
});
