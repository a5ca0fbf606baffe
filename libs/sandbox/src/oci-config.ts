import { existsSync, statSync, type BigIntStats } from 'node:fs';
import { posix } from 'node:path';
import { assertCgroupsPath } from './cgroups';
import type { HostFacts } from './host-probe';
import type {
  OciConfig,
  OciDevice,
  OciDeviceCgroupRule,
  OciMount,
  OciNamespace,
  OciResources,
  OciRlimit,
  OciThrottleDevice,
} from './oci-types';
import { classifySystemPath } from './rootfs';
import { defaultSeccompProfile } from './seccomp';

export { prepareRootfs } from './rootfs';

/** How much of the sandbox a job gets. */
export interface SandboxProfile {
  name: string;
  /** default true */
  seccomp: boolean;
  noNewPrivileges: boolean;
  /** run as the configured unprivileged uid/gid (true) or as root inside (false) */
  unprivileged: boolean;
  /** capabilities kept (names like CAP_NET_BIND_SERVICE); default none */
  capabilities: string[];
  /** share the host's pid namespace (only an unsandboxed profile) */
  hostPid: boolean;
  readOnlySystem: boolean;
}

/** The profile of ordinary jobs: seccomp, no_new_privs, unprivileged, no capabilities, own pid namespace, read-only system. */
export const DEFAULT_PROFILE: SandboxProfile = Object.freeze({
  name: 'default',
  seccomp: true,
  noNewPrivileges: true,
  unprivileged: true,
  capabilities: Object.freeze<string[]>([]) as string[],
  hostPid: false,
  readOnlySystem: true,
});

/** A job's resource limits; 0 means "no limit" for each (see {@link buildOciConfig}). */
export interface JobResources {
  cpuMillicores: number;
  /** cgroup v2 cpu.weight, 1–10000 (100 is the kernel default); 0: leave the default. */
  cpuWeight: number;
  memoryBytes: number;
  /** swap allowed on top of memoryBytes. */
  memorySwapBytes: number;
  pidsMax: number;
  ioReadBps: number;
  ioWriteBps: number;
  /** Size of the /tmp tmpfs; 0: the kernel default (half of RAM, still charged to the job's memory). */
  tmpSizeBytes: number;
}

/** Everything {@link buildOciConfig} needs to know about one job's container. */
export interface JobSandbox {
  /** container id */
  id: string;
  /** already validated */
  argv: string[];
  /** complete (PATH etc.) */
  env: Record<string, string>;
  cwd: string;
  /** unprivileged uid (used when profile.unprivileged) */
  uid: number;
  /** unprivileged gid (used when profile.unprivileged) */
  gid: number;
  hostname: string;
  /** empty dir in the bundle, becomes a read-only root */
  rootfsDir: string;
  /** host dir bound read-write at /work */
  workDir: string;
  /** host paths bound read-only at the same path (/usr, /etc, /opt …); missing ones skipped; symlinks (merged-/usr /bin → usr/bin) recreated as symlinks in rootfs instead */
  systemBinds: string[];
  /** already allowlisted by the caller */
  extraMounts: { hostPath: string; containerPath: string; readOnly: boolean }[];
  network: 'none' | 'host';
  resources: JobResources;
  /**
   * Host char devices to pass in: `path` on the host (major/minor/mode read with fs.stat), created in the
   * container at `containerPath` (absolute, normally under /dev; default: the same path).
   */
  devices: { path: string; containerPath?: string }[];
  /**
   * Host files or directories bound read-only (rbind, nosuid, nodev) at the same path, after /tmp and
   * with the extra mounts — the GPU driver for a job that gets a GPU. Default none.
   */
  driverBinds?: string[];
  /** e.g. /aether/<id> (v1 and v2 both accept an absolute path) */
  cgroupsPath: string;
  profile: SandboxProfile;
  /** default: RLIMIT_NOFILE 1024/4096, RLIMIT_CORE 0/0 */
  rlimits?: { type: string; hard: number; soft: number }[];
}

/** Thrown when the job asks for what the host cannot enforce; `missing` names each such thing. */
export class SandboxUnavailableError extends Error {
  override readonly name: string = 'SandboxUnavailableError';
  /** e.g. `['memory swap accounting', 'io bandwidth limits']`, as {@link describeHost} names them. */
  readonly missing: string[];

  constructor(missing: string[], message?: string, options?: { cause?: unknown }) {
    super(message ?? `the host cannot enforce what the job asks for: ${missing.join(', ')}`, options);
    this.missing = missing;
  }
}

/**
 * Thrown when a device to pass into a job does not exist on the host or is not a character device.
 * A SandboxUnavailableError (missing: `device <path> (<reason>)`), so a caller that maps that error
 * to FAILED_PRECONDITION covers devices too.
 */
export class DeviceUnavailableError extends SandboxUnavailableError {
  override readonly name: string = 'DeviceUnavailableError';
  readonly path: string;
  readonly reason: 'missing' | 'not a character device';

  constructor(path: string, reason: 'missing' | 'not a character device', options?: { cause?: unknown }) {
    super([`device ${path} (${reason})`], `device ${path}: ${reason}`, options);
    this.path = path;
    this.reason = reason;
  }
}

/** The CFS period used for every job: 100 ms, the kernel default. */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses a CFS quota under 1 ms. */
const MIN_CPU_QUOTA_US = 1_000;

/** rlimits when the job names none: a modest descriptor limit and no core dumps (they leak memory contents to disk). */
export const DEFAULT_RLIMITS: readonly OciRlimit[] = Object.freeze([
  { type: 'RLIMIT_NOFILE', hard: 4096, soft: 1024 },
  { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
]);

/** runc's `runc spec` defaults: kernel interfaces that leak host information or allow host changes. */
export const MASKED_PATHS: readonly string[] = Object.freeze([
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
]);

/** runc's `runc spec` defaults: /proc parts that stay visible but read-only. */
export const READONLY_PATHS: readonly string[] = Object.freeze([
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
]);

/**
 * Character devices every container may use (runc allows and creates the same set by default;
 * listing them keeps the config self-describing): null, zero, full, random, urandom, tty, ptmx, pts/*.
 */
const DEFAULT_DEVICE_RULES: readonly OciDeviceCgroupRule[] = [
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

/**
 * The cgroup v1 cpu.shares that runc converts back to `weight` on cgroup v2. runc maps
 * shares → weight as `1 + ((shares − 2) × 9999) / 262142` (integer division); this is the smallest
 * shares value for which that gives `weight`, so one number means the same on both versions.
 */
export function cpuWeightToShares(weight: number): number {
  if (!Number.isInteger(weight) || weight < 1 || weight > 10_000)
    throw new RangeError(`cpuWeight must be an integer in 1..10000: ${weight}`);
  return Math.ceil(((weight - 1) * 262_142) / 9_999) + 2;
}

/** runc's own shares → weight conversion (libcontainer/cgroups ConvertCPUSharesToCgroupV2Value). */
export function runcSharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9_999) / 262_142);
}

/** `major` and `minor` of a Linux dev_t (glibc's gnu_dev_major/minor). */
function splitDev(dev: bigint): { major: number; minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/** The `linux.devices` entry for host node `hostPath`, created in the container at `containerPath`. */
function deviceOf(hostPath: string, containerPath: string): OciDevice {
  if (
    !posix.isAbsolute(containerPath) ||
    posix.normalize(containerPath) !== containerPath ||
    containerPath.includes('\0')
  )
    throw new TypeError(`a device's container path must be a normalized absolute path: ${containerPath}`);
  let st: BigIntStats;
  try {
    st = statSync(hostPath, { bigint: true });
  } catch (err) {
    throw new DeviceUnavailableError(hostPath, 'missing', { cause: err });
  }
  if (!st.isCharacterDevice()) throw new DeviceUnavailableError(hostPath, 'not a character device');
  return {
    type: 'c',
    path: containerPath,
    ...splitDev(st.rdev),
    fileMode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
}

/** Depth of an absolute path, so parents are mounted before what is mounted inside them. */
function depth(p: string): number {
  return posix.normalize(p).split('/').filter(Boolean).length;
}

function buildMounts(job: JobSandbox): OciMount[] {
  const systemRo = job.profile.readOnlySystem ? ['ro'] : ['rw'];
  const system: OciMount[] = job.systemBinds
    .filter((p) => classifySystemPath(p).kind === 'bind')
    .map((p) => ({
      destination: p,
      type: 'bind',
      source: p,
      // rbind so that e.g. /usr/local on its own filesystem comes along; exec stays: the system's
      // binaries are what the job runs. (Submounts keep their own ro/rw: a plain `ro` is not
      // recursive before runc's `rro`, kernel ≥ 5.12.)
      options: ['rbind', ...systemRo, 'nosuid', 'nodev'],
    }));
  const extras: OciMount[] = [
    ...job.extraMounts.map((m) => ({
      destination: m.containerPath,
      type: 'bind',
      source: m.hostPath,
      options: ['bind', m.readOnly === false ? 'rw' : 'ro', 'nosuid', 'nodev'],
    })),
    // Exec stays: nvidia-smi is a program. rbind, so a driver directory's submounts come along.
    ...(job.driverBinds ?? []).map((p) => ({
      destination: p,
      type: 'bind',
      source: p,
      options: ['rbind', 'ro', 'nosuid', 'nodev'],
    })),
  ].sort((a, b) => depth(a.destination) - depth(b.destination));
  const tmpOptions = ['nosuid', 'nodev', 'mode=1777'];
  if (job.resources.tmpSizeBytes > 0) tmpOptions.push(`size=${job.resources.tmpSizeBytes}`);
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    // Read-only whatever the network mode: a job has nothing to change in sysfs.
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
    ...system,
    { destination: '/work', type: 'bind', source: job.workDir, options: ['bind', 'rw', 'nosuid', 'nodev'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: tmpOptions },
    ...extras,
  ];
}

/** Positive integer, or 0 for "no limit"; anything else is a caller bug. */
function limit(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`resources.${name} must be a non-negative integer: ${v}`);
  return v;
}

function buildResources(
  job: JobSandbox,
  host: HostFacts,
  devices: OciDevice[],
  missing: string[],
): OciResources {
  const r = job.resources;
  const has = (c: string): boolean => host.cgroup.controllers.includes(c);
  const resources: OciResources = {
    devices: [
      // Deny everything first; the runtime applies rules in order.
      { allow: false, access: 'rwm' },
      ...DEFAULT_DEVICE_RULES,
      ...devices.map((d): OciDeviceCgroupRule => ({
        allow: true,
        type: 'c',
        major: d.major,
        minor: d.minor,
        access: 'rwm',
      })),
    ],
  };

  const millicores = limit('cpuMillicores', r.cpuMillicores);
  const weight = limit('cpuWeight', r.cpuWeight);
  if ((millicores > 0 || weight > 0) && !has('cpu')) missing.push('cpu limits');
  const cpu: NonNullable<OciResources['cpu']> = {};
  if (weight > 0) cpu.shares = cpuWeightToShares(weight);
  if (millicores > 0) {
    cpu.quota = Math.max(MIN_CPU_QUOTA_US, Math.round((millicores * CPU_PERIOD_US) / 1000));
    cpu.period = CPU_PERIOD_US;
  }
  if (Object.keys(cpu).length > 0) resources.cpu = cpu;

  const memoryBytes = limit('memoryBytes', r.memoryBytes);
  const swapBytes = limit('memorySwapBytes', r.memorySwapBytes);
  if (memoryBytes > 0 && !has('memory')) missing.push('memory limits');
  if (swapBytes > 0 && !host.cgroup.memorySwap) missing.push('memory swap accounting');
  if (memoryBytes > 0) {
    const memory: NonNullable<OciResources['memory']> = { limit: memoryBytes };
    // OCI `swap` is memory + swap (v1 memsw semantics; runc subtracts the limit again on v2).
    // swap == limit means "no swap at all", so a job is OOM-killed at its limit, not slowed by swapping.
    if (host.cgroup.memorySwap) memory.swap = memoryBytes + swapBytes;
    // Without memsw the next best thing on v1 is to tell the kernel not to swap the job's pages.
    else if (host.cgroup.version === 1 && swapBytes === 0) memory.swappiness = 0;
    resources.memory = memory;
  }

  const pids = limit('pidsMax', r.pidsMax);
  if (pids > 0) {
    if (!has('pids')) missing.push('pids limit');
    resources.pids = { limit: pids };
  }

  const readBps = limit('ioReadBps', r.ioReadBps);
  const writeBps = limit('ioWriteBps', r.ioWriteBps);
  if (readBps > 0 || writeBps > 0) {
    if (!host.cgroup.ioLimits || host.blockDevices.length === 0) missing.push('io bandwidth limits');
    const per = (rate: number): OciThrottleDevice[] =>
      host.blockDevices.map((d) => ({ major: d.major, minor: d.minor, rate }));
    const blockIO: NonNullable<OciResources['blockIO']> = {};
    if (readBps > 0) blockIO.throttleReadBpsDevice = per(readBps);
    if (writeBps > 0) blockIO.throttleWriteBpsDevice = per(writeBps);
    resources.blockIO = blockIO;
  }
  return resources;
}

const CAPABILITY = /^CAP_[A-Z_]+$/;

/**
 * The runtime-spec 1.0.2 config of one job's container. Pure apart from `stat` of the system binds,
 * devices and driver binds; call {@link prepareRootfs} on the same rootfsDir and systemBinds first.
 *
 * Resource values of 0 mean "no limit". CPU: quota = millicores × 100 ms / 1000 per 100 ms period
 * (at least 1 ms); weight is written as the v1 shares that runc turns back into that v2 weight.
 * Memory: `swap` = memory + memorySwapBytes when the host accounts swap.
 *
 * @throws SandboxUnavailableError listing everything the job asks for that the host cannot enforce.
 * @throws DeviceUnavailableError when a device to pass in is missing or not a character device.
 *   A driver bind that does not exist is reported in SandboxUnavailableError's `missing`.
 * @throws RangeError / TypeError for malformed input (negative limits, a relative cgroupsPath …).
 */
export function buildOciConfig(job: JobSandbox, host: HostFacts): OciConfig {
  assertCgroupsPath(job.cgroupsPath);
  const profile = job.profile;
  for (const cap of profile.capabilities)
    if (!CAPABILITY.test(cap)) throw new TypeError(`not a capability name: ${JSON.stringify(cap)}`);
  for (const key of Object.keys(job.env))
    if (key === '' || key.includes('=') || key.includes('\0'))
      throw new TypeError(`not an environment variable name: ${JSON.stringify(key)}`);
  if (job.argv.length === 0) throw new TypeError('argv must not be empty');

  const missing: string[] = [];
  if (profile.seccomp && !host.seccomp.available) missing.push('seccomp');
  if (profile.noNewPrivileges && !host.noNewPrivileges.available) missing.push('no_new_privs');

  const devices = job.devices.map((d) => deviceOf(d.path, d.containerPath ?? d.path));
  const seen = new Set<string>();
  for (const d of devices) {
    if (seen.has(d.path)) throw new TypeError(`two devices would be created at ${d.path}`);
    seen.add(d.path);
  }
  for (const p of job.driverBinds ?? []) {
    if (!posix.isAbsolute(p) || posix.normalize(p) !== p || p === '/')
      throw new TypeError(`a driver bind must be a normalized absolute path other than /: ${p}`);
    if (!existsSync(p)) missing.push(`driver path ${p} (missing)`);
  }
  const resources = buildResources(job, host, devices, missing);
  if (missing.length > 0) throw new SandboxUnavailableError(missing);

  const namespaces: OciNamespace[] = [];
  if (!profile.hostPid) namespaces.push({ type: 'pid' });
  namespaces.push({ type: 'mount' }, { type: 'ipc' }, { type: 'uts' });
  // No entry at all shares the host's network namespace.
  if (job.network === 'none') namespaces.push({ type: 'network' });
  // On v2 a cgroup namespace makes /sys/fs/cgroup show only the job's own cgroup. (On v1 runc
  // supports it too, but the v1 cgroupfs mount inside does not need it to be read-only.)
  if (host.cgroup.version === 2) namespaces.push({ type: 'cgroup' });

  const caps = [...profile.capabilities];
  const config: OciConfig = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: profile.unprivileged ? { uid: job.uid, gid: job.gid } : { uid: 0, gid: 0 },
      args: [...job.argv],
      env: Object.entries(job.env).map(([k, v]) => `${k}=${v}`),
      cwd: job.cwd,
      capabilities: {
        bounding: [...caps],
        effective: [...caps],
        inheritable: [...caps],
        permitted: [...caps],
        ambient: [...caps],
      },
      rlimits: (job.rlimits ?? DEFAULT_RLIMITS).map((r) => ({ type: r.type, hard: r.hard, soft: r.soft })),
      noNewPrivileges: profile.noNewPrivileges,
    },
    root: { path: job.rootfsDir, readonly: true },
    hostname: job.hostname,
    mounts: buildMounts(job),
    linux: {
      namespaces,
      devices,
      cgroupsPath: job.cgroupsPath,
      resources,
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
  if (profile.seccomp) config.linux.seccomp = defaultSeccompProfile();
  return config;
}
