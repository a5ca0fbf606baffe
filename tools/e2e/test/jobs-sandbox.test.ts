import { durationFromMs, msFromDuration } from '@aether/proto';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';
import { JobState, MiB, logs, run, spec, stateName, submit, wait, waitForOutput } from './jobs-helpers';

// Real runc under conmon, as root: what a job can and cannot do, and the limits the kernel enforces.
describe('jobs: the sandbox and its limits (runc, as root)', () => {
  let stack: Stack;
  let admin: AetherClient;

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
    admin = stack.client();
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
  });

  it('runs a job as the unprivileged uid with no capabilities, no_new_privs and seccomp, seeing only lo', async () => {
    const { job, out } = await run(
      admin,
      spec([
        '/bin/sh',
        '-c',
        'echo "uid=$(id -u) gid=$(id -g)"; grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; echo "net=$(ls /sys/class/net | tr "\\n" " ")"; echo "cwd=$(pwd)"',
      ]),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(out).toContain('uid=65534 gid=65534');
    expect(out).toMatch(/CapEff:\s+0000000000000000/);
    expect(out).toMatch(/CapBnd:\s+0000000000000000/);
    expect(out).toMatch(/NoNewPrivs:\s+1/);
    expect(out).toMatch(/Seccomp:\s+2/);
    expect(out).toContain('net=lo \n');
    expect(out).toContain('cwd=/work');
  });

  it('cannot write outside /work and /tmp, cannot see host processes, and blocked syscalls fail', async () => {
    const script = [
      'for d in /usr /etc /bin /work /tmp /; do if touch "$d/probe" 2>/dev/null; then echo "write $d ok"; else echo "write $d denied"; fi; done',
      'echo "procs=$(ls /proc | grep -c "^[0-9]")"',
      'if unshare -U true 2>/dev/null; then echo "unshare ok"; else echo "unshare blocked"; fi',
      'mkdir -p /tmp/m; if mount -t tmpfs none /tmp/m 2>/dev/null; then echo "mount ok"; else echo "mount blocked"; fi',
      'if [ -e /root ] && ls /root >/dev/null 2>&1; then echo "root home visible"; else echo "root home hidden"; fi',
    ].join('; ');
    const { job, out } = await run(admin, spec(['/bin/sh', '-c', script]));
    expect(stateName(job.state)).toBe('SUCCEEDED');
    for (const d of ['/usr', '/etc', '/bin', '/']) expect(out).toContain(`write ${d} denied`);
    expect(out).toContain('write /work ok');
    expect(out).toContain('write /tmp ok');
    // The job's own shell, ls and grep at most: the host's processes are in another pid namespace.
    expect(Number(/procs=(\d+)/.exec(out)?.[1])).toBeLessThan(6);
    expect(out).toContain('unshare blocked');
    expect(out).toContain('mount blocked');
    expect(out).toContain('root home hidden');
  });

  it('ends a memory hog over its limit OOM_KILLED, with the peak memory recorded', async () => {
    const { job } = await run(
      admin,
      spec(
        ['/bin/sh', '-c', 'head -c 300m /dev/zero | tail; echo survived'],
        {},
        { memoryBytes: BigInt(32 * MiB) },
      ),
    );
    expect(stateName(job.state)).toBe('OOM_KILLED');
    expect(job.exitStatus?.oomKilled).toBe(true);
    expect(job.failureReason).toMatch(/out of memory/);
    expect(job.events.map((e) => e.type)).toContain(8 /* OOM_KILLED */);
    expect(Number(job.usage?.peakMemoryBytes)).toBeGreaterThan(16 * MiB);
    expect(Number(job.usage?.peakMemoryBytes)).toBeLessThanOrEqual(33 * MiB);
  }, 60_000);

  it('holds a fork bomb at pids max while the host stays responsive', async () => {
    const bomb = await submit(
      admin,
      spec(
        ['/bin/bash', '-c', 'echo start; bomb() { bomb | bomb & }; bomb; sleep 30'],
        { timeout: durationFromMs(4_000), stopGracePeriod: durationFromMs(500) },
        { pidsMax: 64 },
      ),
    );
    await waitForOutput(admin, bomb.name, 'start');
    await new Promise((r) => setTimeout(r, 1_500));
    const t0 = performance.now();
    const during = (await admin.call(admin.jobs, 'getJob', { name: bomb.name })).job!;
    const rpcMs = performance.now() - t0;
    expect(rpcMs).toBeLessThan(1_000);
    expect(Number(during.usage?.currentPids)).toBeLessThanOrEqual(64);
    const done = await wait(admin, bomb.name);
    expect(['TIMED_OUT', 'KILLED']).toContain(stateName(done.state));
  }, 60_000);

  it('gives a busy loop at 200 millicores about 20 % of one CPU', async () => {
    const { job } = await run(
      admin,
      spec(
        ['/bin/sh', '-c', 'end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do :; done'],
        {},
        { cpuMillicores: 200 },
      ),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    const cpuMs = msFromDuration(job.usage!.cpuUser!) + msFromDuration(job.usage!.cpuSystem!);
    const share = cpuMs / msFromDuration(job.usage!.wall!);
    expect(share).toBeGreaterThan(0.12);
    expect(share).toBeLessThan(0.28);
  }, 60_000);

  it('refuses a job whose cwd escapes /work before anything runs', async () => {
    await expect(submit(admin, spec(['/bin/true'], { cwd: '/work/../etc' }))).rejects.toMatchObject({
      reason: 'INVALID_ARGUMENT',
    });
    const { job, out } = await run(
      admin,
      spec(['/bin/sh', '-c', 'pwd; touch here'], { cwd: '/work/sub/dir' }),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    expect(out.trim()).toBe('/work/sub/dir');
    expect(await logs(admin, job.name, { stream: 2 })).toBe('');
    expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
  });
});
