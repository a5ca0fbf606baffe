import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v1Facts, v2Facts } from '../test/fixtures/hosts';
import {
  buildOciConfig,
  cpuWeightToShares,
  DEFAULT_PROFILE,
  DeviceUnavailableError,
  MASKED_PATHS,
  READONLY_PATHS,
  runcSharesToWeight,
  SandboxUnavailableError,
  type JobSandbox,
} from './oci-config';
import { nvidiaGpuNodes } from './gpu';
import { defaultSeccompProfile } from './seccomp';

let host: string;
beforeAll(() => {
  // A fake host tree for the system binds: a directory, a merged-/usr style symlink, a missing path.
  host = mkdtempSync(join(tmpdir(), 'aether-sandbox-oci-'));
  mkdirSync(join(host, 'usr/bin'), { recursive: true });
  symlinkSync('usr/bin', join(host, 'bin'));
  mkdirSync(join(host, 'etc'));
});
afterAll(() => rmSync(host, { recursive: true, force: true }));

const MiB = 1024 * 1024;

function job(over: Partial<JobSandbox> = {}): JobSandbox {
  return {
    id: 'job-1',
    argv: ['/usr/bin/python3', '-c', 'print(1)'],
    env: { PATH: '/usr/bin:/bin', HOME: '/work' },
    cwd: '/work',
    uid: 65534,
    gid: 65534,
    hostname: 'job-1',
    rootfsDir: '/var/lib/aether/bundles/job-1/rootfs',
    workDir: '/var/lib/aether/work/job-1',
    systemBinds: [join(host, 'usr'), join(host, 'bin'), join(host, 'etc'), join(host, 'opt')],
    extraMounts: [],
    network: 'none',
    resources: {
      cpuMillicores: 1500,
      cpuWeight: 100,
      memoryBytes: 512 * MiB,
      memorySwapBytes: 0,
      pidsMax: 256,
      ioReadBps: 0,
      ioWriteBps: 0,
      tmpSizeBytes: 64 * MiB,
    },
    devices: [],
    cgroupsPath: '/aether/job-1',
    profile: DEFAULT_PROFILE,
    ...over,
  };
}

function resources(over: Partial<JobSandbox['resources']>): JobSandbox['resources'] {
  return { ...job().resources, ...over };
}

describe('buildOciConfig on a cgroup v1 hybrid host', () => {
  const c = (over: Partial<JobSandbox> = {}) => buildOciConfig(job(over), v1Facts());

  it('runs the job unprivileged, without capabilities, with no_new_privs and default rlimits', () => {
    const cfg = c();
    expect(cfg.ociVersion).toBe('1.0.2');
    expect(cfg.process).toEqual({
      terminal: false,
      user: { uid: 65534, gid: 65534 },
      args: ['/usr/bin/python3', '-c', 'print(1)'],
      env: ['PATH=/usr/bin:/bin', 'HOME=/work'],
      cwd: '/work',
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: 4096, soft: 1024 },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: true,
    });
    expect(cfg.root).toEqual({ path: '/var/lib/aether/bundles/job-1/rootfs', readonly: true });
    expect(cfg.hostname).toBe('job-1');
    expect(cfg.linux.cgroupsPath).toBe('/aether/job-1');
    expect(cfg.linux.seccomp).toEqual(defaultSeccompProfile());
    expect(cfg.linux.maskedPaths).toEqual([...MASKED_PATHS]);
    expect(cfg.linux.readonlyPaths).toEqual([...READONLY_PATHS]);
    expect(cfg.linux.maskedPaths).toEqual(
      expect.arrayContaining([
        '/proc/kcore',
        '/proc/keys',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/asound',
      ]),
    );
    expect(cfg.linux.readonlyPaths).toEqual(expect.arrayContaining(['/proc/sys', '/proc/sysrq-trigger']));
    expect(cfg).not.toHaveProperty('linux.sysctl');
  });

  it('creates pid, mount, ipc, uts and network namespaces — no cgroup namespace on v1', () => {
    expect(c().linux.namespaces.map((n) => n.type)).toEqual(['pid', 'mount', 'ipc', 'uts', 'network']);
  });

  it('shares the host network (no network entry) and pid namespace when asked', () => {
    const types = c({ network: 'host', profile: { ...DEFAULT_PROFILE, hostPid: true } }).linux.namespaces.map(
      (n) => n.type,
    );
    expect(types).toEqual(['mount', 'ipc', 'uts']);
  });

  it('mounts the kernel filesystems, the system read-only, /work read-write and a sized /tmp', () => {
    const mounts = c({
      extraMounts: [
        { hostPath: '/srv/data/sub', containerPath: '/data/sub', readOnly: true },
        { hostPath: '/srv/data', containerPath: '/data', readOnly: false },
      ],
    }).mounts;
    expect(mounts.map((m) => m.destination)).toEqual([
      '/proc',
      '/dev',
      '/dev/pts',
      '/dev/shm',
      '/dev/mqueue',
      '/sys',
      '/sys/fs/cgroup',
      join(host, 'usr'),
      join(host, 'etc'),
      '/work',
      '/tmp',
      '/data',
      '/data/sub',
    ]);
    const by = Object.fromEntries(mounts.map((m) => [m.destination, m]));
    expect(by['/dev']).toEqual({
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    });
    expect(by['/dev/pts']?.options).toEqual(
      expect.arrayContaining(['newinstance', 'ptmxmode=0666', 'mode=0620']),
    );
    expect(by['/dev/shm']?.options).toEqual(['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k']);
    expect(by['/dev/mqueue']?.type).toBe('mqueue');
    expect(by['/sys']).toMatchObject({ type: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] });
    expect(by['/sys/fs/cgroup']?.type).toBe('cgroup');
    expect(by['/sys/fs/cgroup']?.options).toContain('ro');
    expect(by[join(host, 'usr')]).toEqual({
      destination: join(host, 'usr'),
      type: 'bind',
      source: join(host, 'usr'),
      options: ['rbind', 'ro', 'nosuid', 'nodev'],
    });
    expect(by['/work']).toEqual({
      destination: '/work',
      type: 'bind',
      source: '/var/lib/aether/work/job-1',
      options: ['bind', 'rw', 'nosuid', 'nodev'],
    });
    expect(by['/tmp']).toEqual({
      destination: '/tmp',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', 'mode=1777', `size=${64 * MiB}`],
    });
    expect(by['/data']?.options).toEqual(['bind', 'rw', 'nosuid', 'nodev']);
    expect(by['/data/sub']).toEqual({
      destination: '/data/sub',
      type: 'bind',
      source: '/srv/data/sub',
      options: ['bind', 'ro', 'nosuid', 'nodev'],
    });
    // The symlink (bin -> usr/bin) is for prepareRootfs; the missing /opt is skipped.
    expect(by[join(host, 'bin')]).toBeUndefined();
    expect(by[join(host, 'opt')]).toBeUndefined();
  });

  it('leaves /tmp at the kernel default size when tmpSizeBytes is 0', () => {
    const tmp = c({ resources: resources({ tmpSizeBytes: 0 }) }).mounts.find((m) => m.destination === '/tmp');
    expect(tmp?.options).toEqual(['nosuid', 'nodev', 'mode=1777']);
  });

  it('converts millicores to a quota per 100 ms period, and the v2 weight to v1 shares', () => {
    expect(c().linux.resources.cpu).toEqual({ quota: 150_000, period: 100_000, shares: 2598 });
    expect(c({ resources: resources({ cpuMillicores: 250 }) }).linux.resources.cpu?.quota).toBe(25_000);
    // The kernel refuses quotas under 1 ms.
    expect(c({ resources: resources({ cpuMillicores: 5 }) }).linux.resources.cpu?.quota).toBe(1_000);
    expect(c({ resources: resources({ cpuMillicores: 0 }) }).linux.resources.cpu).toEqual({ shares: 2598 });
    expect(
      c({ resources: resources({ cpuMillicores: 0, cpuWeight: 0 }) }).linux.resources.cpu,
    ).toBeUndefined();
  });

  it('limits memory with swap = memory (+ allowed swap), and pids', () => {
    expect(c().linux.resources.memory).toEqual({ limit: 512 * MiB, swap: 512 * MiB });
    expect(c({ resources: resources({ memorySwapBytes: 128 * MiB }) }).linux.resources.memory).toEqual({
      limit: 512 * MiB,
      swap: 640 * MiB,
    });
    expect(c().linux.resources.pids).toEqual({ limit: 256 });
    const unlimited = c({ resources: resources({ memoryBytes: 0, pidsMax: 0 }) }).linux.resources;
    expect(unlimited.memory).toBeUndefined();
    expect(unlimited.pids).toBeUndefined();
  });

  it('sets swappiness 0 instead of a swap limit when v1 has no swap accounting', () => {
    const cfg = buildOciConfig(job(), v1Facts({ memorySwap: false }));
    expect(cfg.linux.resources.memory).toEqual({ limit: 512 * MiB, swappiness: 0 });
  });

  it('throttles read and write bandwidth on every block device', () => {
    const r = c({ resources: resources({ ioReadBps: 10 * MiB, ioWriteBps: 5 * MiB }) }).linux.resources;
    expect(r.blockIO).toEqual({
      throttleReadBpsDevice: [
        { major: 8, minor: 0, rate: 10 * MiB },
        { major: 254, minor: 0, rate: 10 * MiB },
      ],
      throttleWriteBpsDevice: [
        { major: 8, minor: 0, rate: 5 * MiB },
        { major: 254, minor: 0, rate: 5 * MiB },
      ],
    });
    expect(c({ resources: resources({ ioWriteBps: MiB }) }).linux.resources.blockIO).toEqual({
      throttleWriteBpsDevice: [
        { major: 8, minor: 0, rate: MiB },
        { major: 254, minor: 0, rate: MiB },
      ],
    });
    expect(c().linux.resources.blockIO).toBeUndefined();
  });

  it('denies all devices, then allows the standard ones and each passed device', () => {
    const cfg = c({ devices: [{ path: '/dev/null' }] });
    expect(cfg.linux.devices).toEqual([
      { type: 'c', path: '/dev/null', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
    ]);
    const rules = cfg.linux.resources.devices;
    expect(rules[0]).toEqual({ allow: false, access: 'rwm' });
    const allowed = rules.slice(1).map((r) => `${r.type}:${r.major}:${r.minor ?? '*'}:${r.access}`);
    expect(allowed).toEqual([
      'c:1:3:rwm',
      'c:1:5:rwm',
      'c:1:7:rwm',
      'c:1:8:rwm',
      'c:1:9:rwm',
      'c:5:0:rwm',
      'c:5:2:rwm',
      'c:136:*:rwm',
      'c:1:3:rwm',
    ]);
    expect(rules.slice(1).every((r) => r.allow)).toBe(true);
    expect(c().linux.devices).toEqual([]);
  });

  it('throws DeviceUnavailableError for a missing device or one that is not a character device', () => {
    const missing = (() => {
      try {
        c({ devices: [{ path: '/dev/no-such-device' }] });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(missing).toBeInstanceOf(DeviceUnavailableError);
    // Also a SandboxUnavailableError, so callers handle it with the other host shortfalls.
    expect(missing).toBeInstanceOf(SandboxUnavailableError);
    expect(missing).toMatchObject({
      name: 'DeviceUnavailableError',
      path: '/dev/no-such-device',
      reason: 'missing',
      missing: ['device /dev/no-such-device (missing)'],
      message: 'device /dev/no-such-device: missing',
    });
    const file = join(host, 'etc', 'not-a-device');
    writeFileSync(file, '');
    expect(() => c({ devices: [{ path: file }] })).toThrow(`device ${file}: not a character device`);
  });

  it('keeps the profile`s capabilities in every set and runs as root inside when not unprivileged', () => {
    const cfg = c({
      profile: {
        ...DEFAULT_PROFILE,
        unprivileged: false,
        capabilities: ['CAP_NET_BIND_SERVICE'],
        seccomp: false,
      },
    });
    expect(cfg.process.user).toEqual({ uid: 0, gid: 0 });
    expect(cfg.process.capabilities).toEqual({
      bounding: ['CAP_NET_BIND_SERVICE'],
      effective: ['CAP_NET_BIND_SERVICE'],
      inheritable: ['CAP_NET_BIND_SERVICE'],
      permitted: ['CAP_NET_BIND_SERVICE'],
      ambient: ['CAP_NET_BIND_SERVICE'],
    });
    expect(cfg.linux.seccomp).toBeUndefined();
    expect(() => c({ profile: { ...DEFAULT_PROFILE, capabilities: ['net_admin'] } })).toThrow(TypeError);
  });

  it('binds the system read-write only for a profile without readOnlySystem', () => {
    const usr = c({ profile: { ...DEFAULT_PROFILE, readOnlySystem: false } }).mounts.find(
      (m) => m.destination === join(host, 'usr'),
    );
    expect(usr?.options).toEqual(['rbind', 'rw', 'nosuid', 'nodev']);
  });

  it('uses the job`s rlimits when given', () => {
    const rlimits = [{ type: 'RLIMIT_NOFILE', hard: 65536, soft: 65536 }];
    expect(c({ rlimits }).process.rlimits).toEqual(rlimits);
  });

  it('rejects malformed input', () => {
    expect(() => c({ cgroupsPath: 'aether/job-1' })).toThrow(TypeError);
    expect(() => c({ cgroupsPath: '/aether/../job-1' })).toThrow(TypeError);
    expect(() => c({ resources: resources({ memoryBytes: -1 }) })).toThrow(RangeError);
    expect(() => c({ resources: resources({ cpuWeight: 20_000 }) })).toThrow(RangeError);
    expect(() => c({ env: { 'A=B': 'x' } })).toThrow(TypeError);
    expect(() => c({ argv: [] })).toThrow(TypeError);
  });
});

describe('buildOciConfig for a job with an NVIDIA GPU', () => {
  // Real device nodes (mknod needs root, as in CI) with the NVIDIA driver's numbers, in a directory that
  // stands in for /dev, and a fake driver library.
  let devDir: string;
  let driverLib: string;
  beforeAll(() => {
    devDir = join(host, 'gpu-dev');
    mkdirSync(devDir);
    for (const [name, major, minor] of [
      ['nvidia0', 195, 0],
      ['nvidia1', 195, 1],
      ['nvidiactl', 195, 255],
      ['nvidia-uvm', 511, 0],
      ['nvidia-uvm-tools', 511, 1],
    ] as const)
      execFileSync('mknod', [join(devDir, name), 'c', String(major), String(minor)]);
    driverLib = join(host, 'driver', 'libcuda.so.1');
    mkdirSync(join(host, 'driver'));
    writeFileSync(driverLib, 'not really libcuda');
  });

  const gpuJob = (gpu: number): Partial<JobSandbox> => ({
    devices: nvidiaGpuNodes(devDir, [gpu]).map((n) => ({ path: n.hostPath, containerPath: n.containerPath })),
    driverBinds: [driverLib, join(host, 'driver')],
  });

  it('creates the GPU`s nodes at /dev/<name> with the host nodes` numbers, and allows exactly those', () => {
    const cfg = buildOciConfig(job(gpuJob(1)), v1Facts());
    expect(cfg.linux.devices).toEqual([
      { type: 'c', path: '/dev/nvidia1', major: 195, minor: 1, fileMode: 0o644, uid: 0, gid: 0 },
      { type: 'c', path: '/dev/nvidiactl', major: 195, minor: 255, fileMode: 0o644, uid: 0, gid: 0 },
      { type: 'c', path: '/dev/nvidia-uvm', major: 511, minor: 0, fileMode: 0o644, uid: 0, gid: 0 },
      { type: 'c', path: '/dev/nvidia-uvm-tools', major: 511, minor: 1, fileMode: 0o644, uid: 0, gid: 0 },
    ]);
    const rules = cfg.linux.resources.devices;
    expect(rules[0]).toEqual({ allow: false, access: 'rwm' });
    // The defaults, then one allow rule per passed node; nvidia0 (another job's GPU) stays denied.
    expect(rules.slice(-4)).toEqual([
      { allow: true, type: 'c', major: 195, minor: 1, access: 'rwm' },
      { allow: true, type: 'c', major: 195, minor: 255, access: 'rwm' },
      { allow: true, type: 'c', major: 511, minor: 0, access: 'rwm' },
      { allow: true, type: 'c', major: 511, minor: 1, access: 'rwm' },
    ]);
    expect(rules.some((r) => r.major === 195 && r.minor === 0)).toBe(false);
  });

  it('binds the driver files read-only at the same path, after /tmp, parents first', () => {
    const mounts = buildOciConfig(job(gpuJob(0)), v1Facts()).mounts;
    const names = mounts.map((m) => m.destination);
    expect(names.slice(names.indexOf('/tmp'))).toEqual(['/tmp', join(host, 'driver'), driverLib]);
    expect(mounts.find((m) => m.destination === driverLib)).toEqual({
      destination: driverLib,
      type: 'bind',
      source: driverLib,
      options: ['rbind', 'ro', 'nosuid', 'nodev'],
    });
  });

  it('gives a job without a GPU no NVIDIA node, no NVIDIA allow rule and no driver bind', () => {
    const cfg = buildOciConfig(job(), v1Facts());
    expect(cfg.linux.devices).toEqual([]);
    expect(cfg.linux.resources.devices.some((r) => r.major === 195 || r.major === 511)).toBe(false);
    expect(cfg.mounts.some((m) => m.source.startsWith(join(host, 'driver')))).toBe(false);
  });

  it('reports a missing driver path as something the host cannot provide', () => {
    const missing = join(host, 'driver', 'libnvidia-ml.so.1');
    expect(() => buildOciConfig(job({ ...gpuJob(0), driverBinds: [missing] }), v1Facts())).toThrow(
      new SandboxUnavailableError([`driver path ${missing} (missing)`]),
    );
  });

  it('refuses a relative or unnormalized container path, two nodes at one path and a relative driver bind', () => {
    const node = join(devDir, 'nvidia0');
    expect(() => c1({ devices: [{ path: node, containerPath: 'dev/nvidia0' }] })).toThrow(TypeError);
    expect(() => c1({ devices: [{ path: node, containerPath: '/dev/../nvidia0' }] })).toThrow(TypeError);
    expect(() =>
      c1({
        devices: [
          { path: node, containerPath: '/dev/nvidia0' },
          { path: join(devDir, 'nvidia1'), containerPath: '/dev/nvidia0' },
        ],
      }),
    ).toThrow('two devices would be created at /dev/nvidia0');
    expect(() => c1({ driverBinds: ['lib/libcuda.so'] })).toThrow(TypeError);
    expect(() => c1({ driverBinds: ['/'] })).toThrow(TypeError);
  });
  const c1 = (over: Partial<JobSandbox>) => buildOciConfig(job(over), v1Facts());
});

describe('buildOciConfig on a cgroup v2 host', () => {
  it('adds a cgroup namespace', () => {
    expect(buildOciConfig(job(), v2Facts()).linux.namespaces.map((n) => n.type)).toEqual([
      'pid',
      'mount',
      'ipc',
      'uts',
      'network',
      'cgroup',
    ]);
  });

  it('writes the same quota, shares, memory and io values (runc converts them for v2)', () => {
    const r = buildOciConfig(job({ resources: resources({ ioReadBps: MiB }) }), v2Facts()).linux.resources;
    expect(r.cpu).toEqual({ quota: 150_000, period: 100_000, shares: 2598 });
    expect(r.memory).toEqual({ limit: 512 * MiB, swap: 512 * MiB });
    expect(r.blockIO).toEqual({ throttleReadBpsDevice: [{ major: 259, minor: 0, rate: MiB }] });
  });

  it('omits swap (and swappiness) without swap accounting', () => {
    const r = buildOciConfig(job(), v2Facts({ memorySwap: false })).linux.resources;
    expect(r.memory).toEqual({ limit: 512 * MiB });
  });
});

describe('SandboxUnavailableError', () => {
  it('lists everything the host cannot enforce at once', () => {
    const host = v2Facts({ memorySwap: false, ioLimits: false, controllers: ['cpu', 'memory'] });
    host.seccomp = { name: 'seccomp', available: false, detail: 'kernel built without seccomp' };
    let err: unknown;
    try {
      buildOciConfig(job({ resources: resources({ memorySwapBytes: MiB, ioReadBps: MiB }) }), host);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const e = err as SandboxUnavailableError;
    expect(e.name).toBe('SandboxUnavailableError');
    expect(e.missing).toEqual(['seccomp', 'memory swap accounting', 'pids limit', 'io bandwidth limits']);
    expect(e.message).toBe(
      'the host cannot enforce what the job asks for: seccomp, memory swap accounting, pids limit, io bandwidth limits',
    );
  });

  it('is thrown for swap on a host without swap accounting, and io limits without throttling', () => {
    const noSwap = () =>
      buildOciConfig(job({ resources: resources({ memorySwapBytes: MiB }) }), v1Facts({ memorySwap: false }));
    expect(noSwap).toThrow(SandboxUnavailableError);
    expect(noSwap).toThrow('memory swap accounting');
    const noIo = () =>
      buildOciConfig(job({ resources: resources({ ioWriteBps: MiB }) }), v1Facts({ ioLimits: false }));
    expect(noIo).toThrow('io bandwidth limits');
    const noDisks = { ...v1Facts(), blockDevices: [] };
    expect(() => buildOciConfig(job({ resources: resources({ ioWriteBps: MiB }) }), noDisks)).toThrow(
      'io bandwidth limits',
    );
  });

  it('is not thrown when a profile does not ask for what is missing', () => {
    const host = v1Facts();
    host.seccomp = { name: 'seccomp', available: false, detail: 'x' };
    expect(() =>
      buildOciConfig(job({ profile: { ...DEFAULT_PROFILE, seccomp: false } }), host),
    ).not.toThrow();
  });
});

describe('cpuWeightToShares', () => {
  it('is inverted exactly by runc`s shares -> weight conversion for every weight', () => {
    const wrong: number[] = [];
    for (let w = 1; w <= 10_000; w++) if (runcSharesToWeight(cpuWeightToShares(w)) !== w) wrong.push(w);
    expect(wrong).toEqual([]);
    expect(cpuWeightToShares(1)).toBe(2);
    expect(cpuWeightToShares(10_000)).toBe(262_144);
    expect(cpuWeightToShares(100)).toBe(2598);
    expect(() => cpuWeightToShares(0)).toThrow(RangeError);
    expect(() => cpuWeightToShares(1.5)).toThrow(RangeError);
  });
});
