import { z } from 'zod';

const absolutePath = z.string().min(1).startsWith('/', 'must be an absolute path');
const bytes = z.number().int().min(0);

/** A sandbox profile other than `default`; a job gets it only when policy grants it by name. */
export const sandboxProfileSchema = z.strictObject({
  /** Apply the default seccomp profile. */
  seccomp: z.boolean(),
  /** Set no_new_privileges. */
  noNewPrivileges: z.boolean(),
  /** Run as the unprivileged uid/gid (true) or as root inside the sandbox (false). */
  unprivileged: z.boolean(),
  /** Capabilities kept, e.g. `CAP_NET_BIND_SERVICE`. */
  capabilities: z.array(z.string().regex(/^CAP_[A-Z_]+$/, 'must be a capability name such as CAP_CHOWN')),
  /** Share the host's pid namespace. */
  hostPid: z.boolean(),
});
export type SandboxProfileConfig = z.infer<typeof sandboxProfileSchema>;

/** Limits applied when a job's spec leaves one unset. 0 means "the seed's default" where noted. */
const jobDefaultsSchema = z.strictObject({
  /** 0: half of the host's CPUs (seed §4.3). */
  cpuMillicores: z.number().int().min(0),
  cpuWeight: z.number().int().min(1).max(10_000),
  /** 0: half of the host's memory (seed §4.3). */
  memoryBytes: bytes,
  memorySwapBytes: bytes,
  pidsMax: z.number().int().min(1),
  /** 0: no runtime limit. */
  timeoutSeconds: z.number().int().min(0),
  stopGraceSeconds: z.number().int().min(0),
  tmpSizeBytes: bytes.min(1024 * 1024),
  maxLogBytes: bytes.min(64 * 1024),
  maxOutputBytes: bytes,
});

/** Hard ceilings: a spec above one is refused (PERMISSION_DENIED / LIMIT_ABOVE_CEILING). 0: no ceiling. */
const jobCeilingsSchema = z.strictObject({
  cpuMillicores: z.number().int().min(0),
  memoryBytes: bytes,
  pidsMax: z.number().int().min(0),
  timeoutSeconds: z.number().int().min(0),
  stopGraceSeconds: z.number().int().min(0),
  tmpSizeBytes: bytes,
  maxLogBytes: bytes,
});

const hostPath = absolutePath.refine(
  (p) => !p.split('/').includes('..') && !p.includes('\0'),
  'must not contain ".." or NUL',
);
/** Where a driver path may not go: it is bound at the same path, over the sandbox's own filesystems. */
const SANDBOX_OWNED = ['/proc', '/sys', '/dev', '/work'];
const driverPath = hostPath.refine(
  (p) => p !== '/' && !SANDBOX_OWNED.some((d) => p === d || p.startsWith(`${d}/`)),
  'must not be / or under /proc, /sys, /dev or /work (it is bound at the same path inside the sandbox)',
);

/** GPUs for jobs that ask for them (and that policy grants them to). */
export const jobGpuSchema = z.strictObject({
  /**
   * Where the NVIDIA device nodes (`nvidia<N>`, `nvidiactl`, `nvidia-uvm`, `nvidia-uvm-tools`,
   * `nvidia-modeset`) are looked up. Inside the sandbox they always appear as `/dev/<name>`.
   */
  deviceDir: hostPath,
  /**
   * Host files and directories bound read-only at the same path into every job that gets a GPU (the
   * driver's programs and libraries). `auto`: discovered when aetherd starts — `nvidia-smi`,
   * `nvidia-debugdump` and `libnvidia-ml.so*`, `libcuda.so*`, `libnvidia-ptxjitcompiler.so*` from the
   * usual library directories, except what the system binds already show. A comma-separated string
   * (from the environment) is read as a list.
   */
  driverPaths: z.preprocess(
    (v) => (typeof v === 'string' && v !== 'auto' ? v.split(',').filter(Boolean) : v),
    z.union([z.literal('auto'), z.array(driverPath)], {
      error: 'must be "auto" (discover the driver when aetherd starts) or a list of absolute host paths',
    }),
  ),
});
export type JobGpuConfig = z.infer<typeof jobGpuSchema>;

export const jobsConfigSchema = z.strictObject({
  /** Job records (SQLite) and one directory per job (bundle, /work, log). Empty: `<stateDir>/jobs`. */
  dir: z.union([z.literal(''), absolutePath]),
  /** OCI runtime: runc (default; cgroup v1, hybrid and v2) or crun (pure cgroup v2 hosts only). */
  runtime: z.enum(['runc', 'crun']),
  /** Path of the runtime binary; empty: looked up in PATH, /usr/sbin and /usr/bin. */
  runtimePath: z.string(),
  /** Path of conmon, the per-job monitor; empty: looked up likewise. */
  conmonPath: z.string(),
  /** The runtime's state directory (`--root`); on a tmpfs, as containers do not outlive a boot. */
  runtimeRoot: absolutePath,
  /** Parent cgroup of every job (`<parent>/<job id>`). */
  cgroupParent: absolutePath,
  /** Jobs that may be STARTING or RUNNING at once; the rest wait in the queue (PENDING). */
  maxConcurrent: z.number().int().min(1).max(4096),
  /** Jobs that may wait in the queue; SubmitJob answers RESOURCE_EXHAUSTED beyond. */
  maxQueued: z.number().int().min(0).max(1_000_000),
  /** The unprivileged identity jobs run as. */
  uid: z.number().int().min(1),
  gid: z.number().int().min(1),
  /** Host paths bound read-only at the same place in every sandbox (symlinks such as /bin are recreated). */
  systemBinds: z.array(absolutePath),
  /** Host directories a job may bind (Mount.host_path must be inside one); writable only where allowed. */
  mountAllowlist: z.array(z.strictObject({ path: absolutePath, writable: z.boolean() })),
  defaults: jobDefaultsSchema,
  ceilings: jobCeilingsSchema,
  /** Named profiles besides `default`, e.g. `unsandboxed`; each needs a policy grant by name. */
  profiles: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/), sandboxProfileSchema),
  /** How long finished jobs' records and files are kept before they are deleted; 0: until DeleteJob. */
  retentionSeconds: z.number().int().min(0),
  /** GPU device nodes and driver files for jobs that ask for GPUs. */
  gpu: jobGpuSchema,
});
export type JobsConfig = z.infer<typeof jobsConfigSchema>;

/** Packaged defaults: ARCHITECTURE §5 and the seed's §4.3 and §5. */
export function defaultJobsConfig(): JobsConfig {
  return {
    dir: '',
    runtime: 'runc',
    runtimePath: '',
    conmonPath: '',
    runtimeRoot: '/run/aether/runc',
    cgroupParent: '/aether',
    maxConcurrent: 256,
    maxQueued: 10_000,
    uid: 65534,
    gid: 65534,
    systemBinds: ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32'],
    mountAllowlist: [],
    defaults: {
      cpuMillicores: 0,
      cpuWeight: 100,
      memoryBytes: 0,
      memorySwapBytes: 0,
      pidsMax: 1024,
      timeoutSeconds: 3600,
      stopGraceSeconds: 10,
      tmpSizeBytes: 64 * 1024 * 1024,
      maxLogBytes: 64 * 1024 * 1024,
      maxOutputBytes: 10 * 1024 * 1024 * 1024,
    },
    ceilings: {
      cpuMillicores: 0,
      memoryBytes: 0,
      pidsMax: 65_536,
      timeoutSeconds: 0,
      stopGraceSeconds: 3600,
      tmpSizeBytes: 0,
      maxLogBytes: 4 * 1024 * 1024 * 1024,
    },
    profiles: {
      unsandboxed: {
        seccomp: false,
        noNewPrivileges: false,
        unprivileged: false,
        capabilities: [],
        hostPid: false,
      },
    },
    retentionSeconds: 0,
    gpu: { deviceDir: '/dev', driverPaths: 'auto' },
  };
}
