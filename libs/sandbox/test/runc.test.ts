import { existsSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_PROFILE, describeHost, probeHost, type HostFacts } from '../src/index';
import { JOB_UID, keyValues, removeTempDirs, runJob, tempDir, uniqueName } from './helpers';

// These tests drive the real runc as root (CI runs them as root): they must run and assert.
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** The cgroup layout found independently of the code under test. */
function expectedLayout(): { version: 1 | 2; hybrid: boolean } {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return { version: 2, hybrid: false };
  let hybrid = false;
  try {
    hybrid = statfsSync('/sys/fs/cgroup/unified').type === CGROUP2_SUPER_MAGIC;
  } catch {
    hybrid = false;
  }
  return { version: 1, hybrid };
}

/**
 * Leftover test cgroups: in the unified hierarchy (v2), or in every v1 hierarchy — runc on a hybrid
 * host also creates the job's cgroup in name=systemd and in the empty cgroup2 at `unified`.
 */
function leftoverTestCgroups(host: HostFacts): string[] {
  const root = host.cgroup.root;
  const dirs =
    host.cgroup.version === 2
      ? [root]
      : readdirSync(root, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => join(root, e.name));
  return dirs.flatMap((dir) =>
    readdirSync(dir)
      .filter((n) => n.startsWith('aether-test') || n.startsWith('aether-probe'))
      .map((n) => join(dir, n)),
  );
}

describe('runc on this host', () => {
  let host: HostFacts;
  let runtimeRoot: string;

  beforeAll(async () => {
    expect(process.getuid?.()).toBe(0);
    runtimeRoot = tempDir('aether-runc-root-');
    host = await probeHost({ runtime: 'runc', runtimeRoot, scratchDir: tempDir('aether-scratch-') });
  });

  afterAll(() => {
    removeTempDirs();
  });

  it('probes runc as working, the cgroup layout and seccomp', () => {
    expect(host.runtime).toMatchObject({ name: 'runc', working: true });
    expect(host.runtime.error).toBeUndefined();
    expect(host.runtime.version).toMatch(/^\d+\.\d+/);
    expect(host.runtime.path).toMatch(/\/runc$/);
    expect(host.monitor.working).toBe(true);
    expect(host.monitor.version).toMatch(/^\d+\.\d+/);
    expect(host.cgroup).toMatchObject(expectedLayout());
    expect(host.cgroup.controllers).toEqual(expect.arrayContaining(['cpu', 'memory', 'pids']));
    expect(host.seccomp.available).toBe(true);
    expect(host.noNewPrivileges.available).toBe(true);
    expect(host.cpus).toBeGreaterThan(0);
    const lines = describeHost(host);
    expect(lines.find((l) => l.name === 'runtime')?.available).toBe(true);
    // The probe's test container leaves nothing behind.
    expect(leftoverTestCgroups(host).filter((n) => n.startsWith('aether-probe'))).toEqual([]);
  });

  it('runs a job unprivileged, without capabilities, with no_new_privs, seccomp and only lo', async () => {
    const script = [
      'echo uid=$(id -u)',
      'echo gid=$(id -g)',
      'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status | tr -d "\\t" | tr : =',
      'echo net=$(ls /sys/class/net | tr "\\n" " ")',
      'echo loflags=$(cat /sys/class/net/lo/flags)',
      'echo hostname=$(hostname)',
      'echo pid=$$',
      'echo work=$(echo hi > /work/out && echo ok || echo fail)',
      'echo tmp=$(echo hi > /tmp/out && echo ok || echo fail)',
      'echo unshare=$(unshare -U true 2>&1; echo " rc=$?")',
      'echo devnull=$(echo x > /dev/null && echo ok || echo fail)',
    ].join('\n');
    const res = await runJob(host, runtimeRoot, ['/bin/sh', '-c', script]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const kv = keyValues(res.stdout);
    expect(kv['uid']).toBe(String(JOB_UID));
    expect(kv['CapEff']).toBe('0000000000000000');
    expect(kv['CapBnd']).toBe('0000000000000000');
    expect(kv['NoNewPrivs']).toBe('1');
    expect(kv['Seccomp']).toBe('2');
    expect(kv['net']?.trim()).toBe('lo');
    // runc brings lo up in a new network namespace: IFF_UP | IFF_LOOPBACK (| IFF_RUNNING).
    expect(Number(kv['loflags']) & 0x9).toBe(0x9);
    expect(kv['hostname']).toBe('job');
    expect(kv['pid']).toBe('1');
    expect(kv['work']).toBe('ok');
    expect(kv['tmp']).toBe('ok');
    expect(kv['unshare']).toMatch(/Operation not permitted.* rc=1$/);
    expect(kv['devnull']).toBe('ok');
    expect(statSync(join(res.workDir, 'out')).uid).toBe(JOB_UID);
  });

  it('shares the host network namespace for network host', async () => {
    const res = await runJob(host, runtimeRoot, ['/bin/sh', '-c', 'ls /sys/class/net'], { network: 'host' });
    expect(res.stderr).toBe('');
    expect(res.stdout.trim().split('\n').sort()).toEqual(readdirSync('/sys/class/net').sort());
  });

  it('blocks namespace flags in clone and answers clone3 with ENOSYS', async () => {
    // perl's syscall() makes the raw call; numbers for x86_64 and aarch64.
    const nr = process.arch === 'arm64' ? { clone: 220, clone3: 435 } : { clone: 56, clone3: 435 };
    const perl = [
      // CLONE_NEWUSER | SIGCHLD: allowed to an unprivileged process by the kernel, so only seccomp stops it.
      `my $r = syscall(${nr.clone}, 0x10000000 | 17, 0, 0, 0, 0); exit 0 if $r == 0; print "clone=$r ", $!+0, "\\n";`,
      `$r = syscall(${nr.clone3}, 0, 0); print "clone3=$r ", $!+0, "\\n";`,
      // A plain fork still works.
      `$r = syscall(${nr.clone}, 17, 0, 0, 0, 0); exit 0 if $r == 0; print "fork=", ($r > 0 ? "ok" : "fail $!"), "\\n";`,
    ].join(' ');
    const res = await runJob(host, runtimeRoot, ['/usr/bin/perl', '-e', perl]);
    expect(res.stderr).toBe('');
    const kv = keyValues(res.stdout);
    expect(kv['clone']).toBe('-1 1'); // EPERM
    expect(kv['clone3']).toBe('-1 38'); // ENOSYS
    expect(kv['fork']).toBe('ok');
  });

  it('keeps the system read-only even for root inside', async () => {
    const name = uniqueName('aether-ro-check');
    try {
      const res = await runJob(
        host,
        runtimeRoot,
        ['/bin/sh', '-c', `touch /usr/${name}; echo rc=$?; id -u`],
        {
          profile: { ...DEFAULT_PROFILE, name: 'root-inside', unprivileged: false },
        },
      );
      expect(res.stderr).toContain('Read-only file system');
      expect(res.stdout).toBe('rc=1\n0\n');
    } finally {
      rmSync(join('/usr', name), { force: true });
    }
  });

  it('enforces the cpu, memory, pids and io limits it was given', async () => {
    const script = existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? // v2, with a cgroup namespace: the job's own cgroup is the root of its /sys/fs/cgroup.
        'for f in cpu.max cpu.weight memory.max memory.swap.max pids.max io.max; do echo "$f=$(cat /sys/fs/cgroup/$f | tr "\\n" ";")"; done'
      : // v1: runc binds the job's own cgroup directory of each hierarchy.
        'cd /sys/fs/cgroup; for f in cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes pids/pids.max blkio/blkio.throttle.read_bps_device blkio/blkio.throttle.write_bps_device; do echo "$f=$(cat $f | tr "\\n" ";")"; done';
    const io = host.cgroup.ioLimits && host.blockDevices.length > 0;
    const res = await runJob(host, runtimeRoot, ['/bin/sh', '-c', script], {
      resources: {
        cpuMillicores: 500,
        cpuWeight: 100,
        memoryBytes: 64 * 1024 * 1024,
        pidsMax: 32,
        ioReadBps: io ? 1 << 20 : 0,
        ioWriteBps: io ? 2 << 20 : 0,
      },
    });
    expect(res.stderr).toBe('');
    const kv = keyValues(res.stdout);
    const dev = host.blockDevices[0];
    if (host.cgroup.version === 2) {
      expect(kv['cpu.max']).toBe('50000 100000;');
      expect(kv['cpu.weight']).toBe('100;'); // round trip through runc's shares -> weight
      expect(kv['memory.max']).toBe(`${64 * 1024 * 1024};`);
      expect(kv['memory.swap.max']).toBe('0;');
      expect(kv['pids.max']).toBe('32;');
      if (io && dev) expect(kv['io.max']).toContain(`${dev.major}:${dev.minor} rbps=1048576 wbps=2097152`);
    } else {
      expect(kv['cpu/cpu.cfs_quota_us']).toBe('50000;');
      expect(kv['cpu/cpu.cfs_period_us']).toBe('100000;');
      expect(kv['cpu/cpu.shares']).toBe('2598;');
      expect(kv['memory/memory.limit_in_bytes']).toBe(`${64 * 1024 * 1024};`);
      expect(kv['memory/memory.memsw.limit_in_bytes']).toBe(`${64 * 1024 * 1024};`);
      expect(kv['pids/pids.max']).toBe('32;');
      if (io && dev) {
        expect(kv['blkio/blkio.throttle.read_bps_device']).toContain(`${dev.major}:${dev.minor} 1048576`);
        expect(kv['blkio/blkio.throttle.write_bps_device']).toContain(`${dev.major}:${dev.minor} 2097152`);
      }
    }
  });

  it('passes in a host character device and no other', async () => {
    const device = ['/dev/fuse', '/dev/net/tun', '/dev/console'].find((p) => existsSync(p))!;
    const other = ['/dev/kvm', '/dev/kmsg', '/dev/mem'].filter((p) => p !== device);
    const st = statSync(device);
    const res = await runJob(
      host,
      runtimeRoot,
      [
        '/bin/sh',
        '-c',
        `stat -c '%F %t:%T %a' ${device}; for d in ${other.join(' ')}; do test -e $d && echo "leak $d"; done; true`,
      ],
      { devices: [{ path: device }] },
    );
    expect(res.stderr).toBe('');
    const major = Math.floor(st.rdev / 256) & 0xfff;
    const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & ~0xff);
    expect(res.stdout).toBe(
      `character special file ${major.toString(16)}:${minor.toString(16)} ${(st.mode & 0o777).toString(8)}\n`,
    );
  });

  it('OOM-kills a job over its memory limit (exit 137) and leaves no test cgroups behind', async () => {
    // The job can read its own OOM count: v1 memory.oom_control `oom_kill`, v2 memory.events.
    const events = existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? '/sys/fs/cgroup/memory.events'
      : '/sys/fs/cgroup/memory/memory.oom_control';
    const res = await runJob(
      host,
      runtimeRoot,
      ['/bin/sh', '-c', `head -c 200m /dev/zero | tail; rc=$?; grep oom_kill ${events} >&2; exit $rc`],
      { resources: { memoryBytes: 32 * 1024 * 1024 } },
    );
    expect(res.code).toBe(137);
    expect(res.stderr).toMatch(/^oom_kill [1-9]/m);
    expect(leftoverTestCgroups(host)).toEqual([]);
  });
});
