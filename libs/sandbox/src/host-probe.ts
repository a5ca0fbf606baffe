import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, totalmem } from 'node:os';
import { delimiter, join, posix } from 'node:path';
import { removeCgroup } from './cgroups';
import type { OciConfig } from './oci-types';
import {
  parseKernelRelease,
  parseMeminfo,
  parseMountinfo,
  parseProcCgroups,
  parseProcStatus,
  parseRuntimeFeatures,
  parseVersionOutput,
  type MountInfo,
  type RuntimeFeatures,
} from './proc-parsers';
import { classifySystemPath, prepareRootfs } from './rootfs';

/** The OCI runtimes this package drives. */
export type RuntimeName = 'runc' | 'crun';

/** Options for {@link probeHost}. */
export interface ProbeOptions {
  runtime: RuntimeName;
  /** Absolute path of the runtime; default: looked up in PATH, then /usr/local/sbin, /usr/sbin, /sbin … */
  runtimePath?: string;
  /** Absolute path of conmon; default: looked up in PATH and the usual libexec directories. */
  conmonPath?: string;
  /** runtime --root for the test container */
  runtimeRoot: string;
  /** scratch dir for a test bundle */
  scratchDir: string;
  /** default true: actually run /bin/true in a minimal container to prove the runtime works */
  runTestContainer?: boolean;
  /**
   * Prefix for every /proc and /sys path read (default ''): unit tests point it at a fixture tree.
   * Commands (the runtime, conmon) still run on the real host.
   */
  hostRoot?: string;
}

/** One capability of the host, for logs and `aether doctor`. */
export interface Feature {
  name: string;
  available: boolean;
  /** Why, in words: what was found, or what is missing and what a job therefore does not get. */
  detail: string;
}

/** What the host can enforce for jobs, found by {@link probeHost}. */
export interface HostFacts {
  runtime: { name: RuntimeName; path: string; version: string; working: boolean; error?: string };
  monitor: { name: 'conmon'; path: string; version: string; working: boolean; error?: string };
  cgroup: {
    version: 1 | 2;
    hybrid: boolean;
    /** controllers usable for jobs: cpu, cpuacct, memory, pids, blkio|io, cpuset, devices, freezer */
    controllers: string[];
    memorySwap: boolean;
    ioLimits: boolean;
    /** v1 mount root, e.g. /sys/fs/cgroup, or the v2 root */
    root: string;
  };
  userNamespaces: Feature;
  seccomp: Feature;
  landlock: Feature;
  noNewPrivileges: Feature;
  cpus: number;
  memoryBytes: number;
  swapBytes: number;
  /** whole block devices (from /sys/block, excluding loop/ram/zram) for IO throttling: major:minor */
  blockDevices: { name: string; major: number; minor: number }[];
}

/** Timeout of `--version`, `features`, `delete`. */
const COMMAND_TIMEOUT_MS = 5_000;
/** Timeout of the test container (a cold runc start on a loaded host can take seconds). */
const TEST_CONTAINER_TIMEOUT_MS = 20_000;

/** Directories searched after PATH: a daemon started by systemd or sudo may have a PATH without sbin. */
const SYSTEM_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
/** Where distributions put conmon outside PATH. */
const CONMON_DIRS = [
  '/usr/libexec/podman',
  '/usr/local/libexec/podman',
  '/usr/lib/podman',
  '/usr/libexec/crio',
];

/** The controllers a job's resources are enforced with. */
const JOB_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'blkio', 'io', 'cpuset', 'devices', 'freezer'];

/** Host paths the test container binds read-only (the merged-/usr symlinks are recreated as links). */
const PROBE_SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32'];

/**
 * The first executable file called `name` in PATH, then in `extraDirs` and the system bin
 * directories (/usr/sbin, /sbin …, which a service's PATH often lacks); undefined when none.
 */
export function findExecutable(
  name: string,
  extraDirs: readonly string[] = [],
  pathEnv: string = process.env['PATH'] ?? '',
): string | undefined {
  const dirs = [...pathEnv.split(delimiter), ...SYSTEM_BIN_DIRS, ...extraDirs].filter((d) =>
    d.startsWith('/'),
  );
  for (const dir of new Set(dirs)) {
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not there or not executable: try the next directory.
    }
  }
  return undefined;
}

/** The outcome of one external command; never a rejection. */
interface CommandResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  /** When !ok: `exit 1: <stderr>`, `timed out after 5 s`, `spawn ENOENT` … */
  error?: string;
}

function lastLines(s: string, max = 600): string {
  const t = s.trim();
  return t.length > max ? '…' + t.slice(t.length - max) : t;
}

/** Runs `file args` with a timeout (SIGKILL when it passes) and collects its output. */
function runCommand(file: string, args: string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ ok: true, stdout, stderr });
          return;
        }
        let error: string;
        if (err.killed && err.signal === 'SIGKILL') error = `timed out after ${timeoutMs / 1000} s`;
        else if (typeof err.code === 'number') error = `exit ${err.code}`;
        else if (err.signal) error = `killed by ${err.signal}`;
        else error = err.message;
        const detail = lastLines(stderr || stdout);
        resolve({ ok: false, stdout, stderr, error: detail ? `${error}: ${detail}` : error });
      },
    );
  });
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The host's control group layout, cheaply (no runtime, no test container): `v2` when /sys/fs/cgroup is
 * the unified hierarchy, `hybrid` when v1 hierarchies sit beside a cgroup2 mount (systemd's hybrid
 * layout), `v1` otherwise. The same tests {@link probeHost} makes.
 */
export function cgroupLayout(hostRoot = ''): 'v1' | 'hybrid' | 'v2' {
  if (existsSync(`${hostRoot}/sys/fs/cgroup/cgroup.controllers`)) return 'v2';
  const mounts = parseMountinfo(readText(`${hostRoot}/proc/self/mountinfo`) ?? '');
  return mounts.some((m) => m.fsType === 'cgroup2') ? 'hybrid' : 'v1';
}

/** The cgroup part of {@link HostFacts}, read from /proc and /sys/fs/cgroup under `hostRoot`. */
function probeCgroups(
  hostRoot: string,
  kernel: { major: number; minor: number } | undefined,
): HostFacts['cgroup'] {
  const v2Controllers = readText(`${hostRoot}/sys/fs/cgroup/cgroup.controllers`);
  if (v2Controllers !== undefined) {
    const listed = v2Controllers.trim().split(/\s+/).filter(Boolean);
    const controllers = JOB_CONTROLLERS.filter((c) => listed.includes(c));
    // v2 has no devices or freezer controller files: runc enforces device rules with an eBPF
    // program (any v2 kernel) and freezes with cgroup.freeze (Linux ≥ 5.2).
    controllers.push('devices');
    if (!kernel || kernel.major > 5 || (kernel.major === 5 && kernel.minor >= 2)) controllers.push('freezer');
    return {
      version: 2,
      hybrid: false,
      controllers,
      memorySwap: controllers.includes('memory') && v2SwapFilePresent(hostRoot),
      ioLimits: controllers.includes('io'),
      root: '/sys/fs/cgroup',
    };
  }
  const mounts = parseMountinfo(readText(`${hostRoot}/proc/self/mountinfo`) ?? '');
  const v1Mounts = mounts.filter((m) => m.fsType === 'cgroup');
  const mountOf = (controller: string): MountInfo | undefined =>
    v1Mounts.find((m) => m.superOptions.includes(controller));
  const enabled = parseProcCgroups(readText(`${hostRoot}/proc/cgroups`) ?? '')
    .filter((s) => s.enabled)
    .map((s) => s.name);
  const controllers = JOB_CONTROLLERS.filter((c) => enabled.includes(c) && mountOf(c) !== undefined);
  const memoryMount = controllers.includes('memory') ? mountOf('memory') : undefined;
  const blkioMount = controllers.includes('blkio') ? mountOf('blkio') : undefined;
  const firstMount = v1Mounts[0]?.mountPoint;
  const root =
    firstMount === undefined || v1Mounts.some((m) => m.mountPoint.startsWith('/sys/fs/cgroup/'))
      ? '/sys/fs/cgroup'
      : posix.dirname(firstMount);
  return {
    version: 1,
    // The hybrid layout (systemd's default before v247 on many distributions) mounts an empty
    // cgroup2 beside the v1 hierarchies, usually at /sys/fs/cgroup/unified.
    hybrid: mounts.some((m) => m.fsType === 'cgroup2'),
    controllers,
    memorySwap:
      memoryMount !== undefined &&
      existsSync(`${hostRoot}${memoryMount.mountPoint}/memory.memsw.limit_in_bytes`),
    ioLimits:
      blkioMount !== undefined &&
      existsSync(`${hostRoot}${blkioMount.mountPoint}/blkio.throttle.read_bps_device`),
    root,
  };
}

/**
 * On v2 the root cgroup has no memory.* files; a child such as system.slice shows whether the kernel
 * has swap accounting (CONFIG_MEMCG_SWAP, `swapaccount=0`). With no child to look at, assume it does.
 */
function v2SwapFilePresent(hostRoot: string): boolean {
  const base = `${hostRoot}/sys/fs/cgroup`;
  const preferred = ['system.slice', 'user.slice', 'init.scope'];
  let children: string[] = [];
  try {
    children = readdirSync(base, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return true;
  }
  const ordered = [...preferred.filter((p) => children.includes(p)), ...children];
  for (const child of ordered) {
    if (existsSync(`${base}/${child}/memory.current`)) return existsSync(`${base}/${child}/memory.swap.max`);
  }
  return true;
}

function probeUserNamespaces(hostRoot: string): Feature {
  const name = 'user namespaces';
  if (!existsSync(`${hostRoot}/proc/self/ns/user`))
    return { name, available: false, detail: 'kernel built without user namespaces (no /proc/self/ns/user)' };
  const max = Number((readText(`${hostRoot}/proc/sys/user/max_user_namespaces`) ?? '0').trim());
  const clone = readText(`${hostRoot}/proc/sys/kernel/unprivileged_userns_clone`)?.trim();
  const extra = clone === undefined ? '' : `, kernel.unprivileged_userns_clone=${clone}`;
  return {
    name,
    available: max > 0,
    detail: `user.max_user_namespaces=${max}${extra}`,
  };
}

function probeSeccomp(
  status: Record<string, string>,
  runtime: RuntimeName,
  features: RuntimeFeatures | undefined,
): Feature {
  const name = 'seccomp';
  if (status['Seccomp'] === undefined)
    return {
      name,
      available: false,
      detail: 'kernel built without seccomp (no Seccomp: in /proc/self/status)',
    };
  if (features?.seccompEnabled === false)
    return {
      name,
      available: false,
      detail: `${runtime} was built without seccomp support (${runtime} features)`,
    };
  const lib = features?.libseccompVersion ? `, libseccomp ${features.libseccompVersion}` : '';
  const how = features?.seccompEnabled
    ? `${runtime} features: seccomp enabled${lib}`
    : `${runtime} features unavailable`;
  return { name, available: true, detail: `kernel supports seccomp filters; ${how}` };
}

function probeLandlock(hostRoot: string): Feature {
  const name = 'landlock';
  const lsm = readText(`${hostRoot}/sys/kernel/security/lsm`);
  if (lsm === undefined)
    return {
      name,
      available: false,
      detail: 'unknown: /sys/kernel/security/lsm is not readable (securityfs not mounted)',
    };
  const list = lsm.trim().split(',').filter(Boolean);
  return list.includes('landlock')
    ? { name, available: true, detail: `active LSMs: ${list.join(',')}` }
    : {
        name,
        available: false,
        detail: `landlock is not among the active LSMs (${list.join(',') || 'none'})`,
      };
}

function probeNoNewPrivileges(
  status: Record<string, string>,
  release: string,
  kernel: { major: number; minor: number } | undefined,
): Feature {
  const name = 'no_new_privs';
  const recent = kernel !== undefined && (kernel.major > 3 || (kernel.major === 3 && kernel.minor >= 5));
  if (!recent)
    return { name, available: false, detail: `kernel ${release || 'unknown'} predates no_new_privs (3.5)` };
  if (status['NoNewPrivs'] === undefined)
    return { name, available: false, detail: 'no NoNewPrivs: in /proc/self/status' };
  return { name, available: true, detail: `kernel ${release}` };
}

function probeBlockDevices(hostRoot: string): HostFacts['blockDevices'] {
  let names: string[];
  try {
    names = readdirSync(`${hostRoot}/sys/block`);
  } catch {
    return [];
  }
  const out: HostFacts['blockDevices'] = [];
  for (const name of names.sort()) {
    // Loop, RAM and compressed-RAM devices are not where a job's disk IO goes.
    if (/^(loop|ram|zram)\d*$/.test(name)) continue;
    const m = /^(\d+):(\d+)$/.exec((readText(`${hostRoot}/sys/block/${name}/dev`) ?? '').trim());
    if (!m) continue;
    out.push({ name, major: Number(m[1]), minor: Number(m[2]) });
  }
  return out;
}

/**
 * The exact reason crun cannot run jobs on a v1 hybrid host: it refuses to start any container
 * there, so the test container would only fail with a less helpful message.
 */
function crunHybridError(version: string): string {
  return (
    `crun ${version} refuses cgroup v1 hybrid hosts (controllers on v1, empty cgroup2 at ` +
    '/sys/fs/cgroup/unified); use runc or boot with systemd.unified_cgroup_hierarchy=1'
  );
}

/** The minimal container of the probe: `/usr/bin/true` in fresh namespaces with the system read-only. */
function probeConfig(rootfs: string, id: string, trueBinary: string): OciConfig {
  const systemMounts = PROBE_SYSTEM_PATHS.filter((p) => classifySystemPath(p).kind === 'bind').map((p) => ({
    destination: p,
    type: 'bind',
    source: p,
    options: ['rbind', 'ro', 'nosuid', 'nodev'],
  }));
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [trueBinary],
      env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
      cwd: '/',
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [],
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'aether-probe',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      ...systemMounts,
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }, { type: 'network' }],
      devices: [],
      cgroupsPath: `/aether-probe/${id}`,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: [],
      readonlyPaths: [],
    },
  };
}

/**
 * Runs the probe's test container and removes it, its bundle and its cgroup whatever happens.
 * Resolves to undefined on success, else to why it failed.
 */
async function runTestContainer(runtimePath: string, opts: ProbeOptions): Promise<string | undefined> {
  const trueBinary = ['/usr/bin/true', '/bin/true'].find((p) => existsSync(p));
  if (trueBinary === undefined) return 'test container: no /usr/bin/true or /bin/true on the host';
  const id = `aether-probe-${process.pid}-${randomBytes(4).toString('hex')}`;
  let bundle: string | undefined;
  try {
    await mkdir(opts.runtimeRoot, { recursive: true, mode: 0o700 });
    await mkdir(opts.scratchDir, { recursive: true, mode: 0o700 });
    bundle = await mkdtemp(join(opts.scratchDir, 'aether-probe-'));
    const rootfs = join(bundle, 'rootfs');
    prepareRootfs(rootfs, PROBE_SYSTEM_PATHS);
    await writeFile(join(bundle, 'config.json'), JSON.stringify(probeConfig(rootfs, id, trueBinary)));
    const res = await runCommand(
      runtimePath,
      ['--root', opts.runtimeRoot, 'run', '--bundle', bundle, id],
      TEST_CONTAINER_TIMEOUT_MS,
    );
    return res.ok ? undefined : `test container (${trueBinary}) failed: ${res.error ?? 'unknown error'}`;
  } catch (err) {
    return `test container could not be set up: ${(err as Error).message}`;
  } finally {
    // `run` deletes the container when it exits; after a timeout or a setup failure it may remain.
    await runCommand(runtimePath, ['--root', opts.runtimeRoot, 'delete', '--force', id], COMMAND_TIMEOUT_MS);
    await removeCgroup(`/aether-probe/${id}`, { removeEmptyParents: true }).catch(() => undefined);
    if (bundle !== undefined) await rm(bundle, { recursive: true, force: true });
  }
}

/**
 * Finds what this host can enforce for jobs: the runtime and conmon (and whether they work), the
 * cgroup layout and controllers, the kernel's security features, CPUs, memory and block devices.
 * Never throws for a missing feature — it reports it; every command has a timeout.
 */
export async function probeHost(opts: ProbeOptions): Promise<HostFacts> {
  const hostRoot = opts.hostRoot ?? '';
  const release = (readText(`${hostRoot}/proc/sys/kernel/osrelease`) ?? '').trim();
  const kernel = parseKernelRelease(release);
  const cgroup = probeCgroups(hostRoot, kernel);
  const status = parseProcStatus(readText(`${hostRoot}/proc/self/status`) ?? '');
  const meminfo = parseMeminfo(readText(`${hostRoot}/proc/meminfo`) ?? '');

  const runtimePath = opts.runtimePath ?? findExecutable(opts.runtime) ?? '';
  const conmonPath = opts.conmonPath ?? findExecutable('conmon', CONMON_DIRS) ?? '';
  const notFound = (name: string): CommandResult => ({
    ok: false,
    stdout: '',
    stderr: '',
    error: `${name} not found in PATH or ${SYSTEM_BIN_DIRS.join(', ')}`,
  });
  const [runtimeVersion, runtimeFeatures, conmonVersion] = await Promise.all([
    runtimePath ? runCommand(runtimePath, ['--version'], COMMAND_TIMEOUT_MS) : notFound(opts.runtime),
    runtimePath ? runCommand(runtimePath, ['features'], COMMAND_TIMEOUT_MS) : notFound(opts.runtime),
    conmonPath ? runCommand(conmonPath, ['--version'], COMMAND_TIMEOUT_MS) : notFound('conmon'),
  ]);

  const runtime: HostFacts['runtime'] = {
    name: opts.runtime,
    path: runtimePath,
    version: runtimeVersion.ok ? parseVersionOutput(runtimeVersion.stdout, opts.runtime) : '',
    working: false,
  };
  if (!runtimeVersion.ok) {
    runtime.error = runtimePath
      ? `${runtimePath} --version: ${runtimeVersion.error}`
      : (runtimeVersion.error ?? '');
  } else if (opts.runtime === 'crun' && cgroup.version === 1 && cgroup.hybrid) {
    runtime.error = crunHybridError(runtime.version);
  } else {
    const failure = opts.runTestContainer === false ? undefined : await runTestContainer(runtimePath, opts);
    if (failure === undefined) runtime.working = true;
    else runtime.error = failure;
  }

  const monitor: HostFacts['monitor'] = {
    name: 'conmon',
    path: conmonPath,
    version: conmonVersion.ok ? parseVersionOutput(conmonVersion.stdout, 'conmon') : '',
    working: conmonVersion.ok,
  };
  if (!conmonVersion.ok)
    monitor.error = conmonPath
      ? `${conmonPath} --version: ${conmonVersion.error}`
      : (conmonVersion.error ?? '');

  return {
    runtime,
    monitor,
    cgroup,
    userNamespaces: probeUserNamespaces(hostRoot),
    seccomp: probeSeccomp(
      status,
      opts.runtime,
      runtimeFeatures.ok ? parseRuntimeFeatures(runtimeFeatures.stdout) : undefined,
    ),
    landlock: probeLandlock(hostRoot),
    noNewPrivileges: probeNoNewPrivileges(status, release, kernel),
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    swapBytes: meminfo['SwapTotal'] ?? 0,
    blockDevices: probeBlockDevices(hostRoot),
  };
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

/** One line per feature for logs and `aether doctor`: what jobs will and will not get. */
export function describeHost(f: HostFacts): Feature[] {
  const has = (c: string): boolean => f.cgroup.controllers.includes(c);
  const rt = f.runtime;
  const mon = f.monitor;
  const layout =
    f.cgroup.version === 2
      ? 'cgroup v2 (unified)'
      : f.cgroup.hybrid
        ? 'cgroup v1 (hybrid)'
        : 'cgroup v1 (legacy)';
  const throttled = f.blockDevices.map((d) => `${d.name} (${d.major}:${d.minor})`).join(', ');
  return [
    {
      name: 'runtime',
      available: rt.working,
      detail: rt.working
        ? `${rt.name} ${rt.version} at ${rt.path}`
        : `${rt.name}${rt.path ? ` at ${rt.path}` : ''} is not usable, jobs cannot run: ${rt.error ?? 'unknown error'}`,
    },
    {
      name: 'monitor',
      available: mon.working,
      detail: mon.working
        ? `conmon ${mon.version} at ${mon.path}`
        : `conmon is not usable, jobs cannot be supervised: ${mon.error ?? 'unknown error'}`,
    },
    {
      name: 'cgroups',
      available: f.cgroup.controllers.length > 0,
      detail: `${layout} at ${f.cgroup.root}; controllers: ${f.cgroup.controllers.join(', ') || 'none'}`,
    },
    {
      name: 'cpu limits',
      available: has('cpu'),
      detail: has('cpu') ? 'CPU quota and weight enforced' : 'no cpu controller: jobs get no CPU limits',
    },
    {
      name: 'memory limits',
      available: has('memory'),
      detail: has('memory')
        ? 'memory limit enforced (OOM kill)'
        : 'no memory controller: jobs get no memory limits',
    },
    {
      name: 'memory swap accounting',
      available: f.cgroup.memorySwap,
      detail: f.cgroup.memorySwap
        ? 'swap use limited per job'
        : f.cgroup.version === 1
          ? 'no memory.memsw.* (swapaccount=0?): jobs may swap beyond their limit; swap limits are refused'
          : 'no memory.swap.max: jobs may swap beyond their limit; swap limits are refused',
    },
    {
      name: 'pids limit',
      available: has('pids'),
      detail: has('pids')
        ? 'process count limited (fork bombs contained)'
        : 'no pids controller: no process limit',
    },
    {
      name: 'io bandwidth limits',
      available: f.cgroup.ioLimits && f.blockDevices.length > 0,
      detail: !f.cgroup.ioLimits
        ? 'no blkio throttling / io controller: IO bandwidth limits are refused'
        : f.blockDevices.length === 0
          ? 'no block devices to throttle: IO bandwidth limits are refused'
          : `read/write bandwidth throttled on ${throttled}` +
            (f.cgroup.version === 1
              ? ' (v1: reads and direct IO only; buffered writes escape the limit)'
              : ''),
    },
    {
      name: 'freezer',
      available: has('freezer'),
      detail: has('freezer') ? 'jobs can be paused' : 'no freezer: jobs cannot be paused',
    },
    f.seccomp,
    f.noNewPrivileges,
    f.userNamespaces,
    f.landlock,
    {
      name: 'capacity',
      available: true,
      detail: `${f.cpus} CPUs, ${formatBytes(f.memoryBytes)} memory, ${f.swapBytes > 0 ? `${formatBytes(f.swapBytes)} swap` : 'no swap'}`,
    },
  ];
}
