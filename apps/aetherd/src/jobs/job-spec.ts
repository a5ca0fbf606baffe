import { ARTIFACT_NAME } from '../artifacts/artifact-metadata';
import { checkLabels } from '@aether/rpc';
import { realpathSync, statSync } from 'node:fs';
import { availableParallelism, constants as osConstants, totalmem } from 'node:os';
import { posix } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import type { JobsConfig } from '@aether/config';
import { durationFromMs, jobsV1, msFromDuration } from '@aether/proto';
import { PermissionDeniedError, ResourceExhaustedError, RpcError, Violations } from '@aether/rpc';
import { DeviceUnavailableError, listNvidiaGpus, nvidiaGpuNodes, type DeviceNode } from '@aether/sandbox';

const { NetworkMode, DeviceKind } = jobsV1;

export const MAX_ARGV = 4096;
export const MAX_ARGV_BYTES = 1024 * 1024;
export const MAX_ENV = 1024;
export const MAX_ENV_BYTES = 1024 * 1024;
export const MAX_LIST = 64;
const MIN_MEMORY = 4 * 1024 * 1024;
const PID_MAX = 4_194_304;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
const FORBIDDEN_TARGETS = ['/proc', '/dev', '/sys'];

/** The environment every job starts from; the spec's env is added on top. */
export const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/work',
  LANG: 'C.UTF-8',
};

/** Normalizes `TERM`, `sigterm` or `SIGTERM` to `SIGTERM`; undefined when the name is unknown. */
export function signalName(name: string): string | undefined {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return full in osConstants.signals ? full : undefined;
}

export function signalNumber(name: string): number {
  return (osConstants.signals as Record<string, number>)[name] ?? 0;
}

/** The name of signal `n` (e.g. 9 → SIGKILL). */
export function signalOf(n: number): string {
  for (const [name, value] of Object.entries(osConstants.signals)) if (value === n) return name;
  return `signal ${n}`;
}

function bytesOf(list: Iterable<string>): number {
  let n = 0;
  for (const s of list) n += Buffer.byteLength(s) + 1;
  return n;
}

function hasDotDot(p: string): boolean {
  return p.split('/').includes('..');
}

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** The host's ceilings (seed §4.3) and the configured ones, for validation. */
export interface HostLimits {
  cpus: number;
  memoryBytes: number;
}

export function hostLimits(): HostLimits {
  return { cpus: availableParallelism(), memoryBytes: totalmem() };
}

/**
 * Checks a SubmitJob request completely before policy sees it: malformed fields are INVALID_ARGUMENT
 * (all at once, with field paths), oversize lists RESOURCE_EXHAUSTED, limits above the configured
 * ceilings and mounts outside the allowlist PERMISSION_DENIED.
 */
export function validateSubmit(req: jobsV1.SubmitJobRequest, config: JobsConfig, host: HostLimits): void {
  const spec = req.spec;
  const v = new Violations();
  if (!spec) {
    v.add('spec', 'is required').throwIfAny();
    return;
  }
  if (req.idempotencyKey !== '')
    v.check(
      IDEMPOTENCY_KEY.test(req.idempotencyKey),
      'idempotency_key',
      'must be 1-128 characters of [A-Za-z0-9._:-]',
    );

  // Size first: a 10 MB argv is refused for its size, without scanning it element by element.
  if (spec.argv.length > MAX_ARGV || bytesOf(spec.argv) > MAX_ARGV_BYTES)
    throw new ResourceExhaustedError(
      `spec.argv: at most ${MAX_ARGV} elements and ${MAX_ARGV_BYTES} bytes in total (got ${spec.argv.length} elements, ${bytesOf(spec.argv)} bytes)`,
      'REQUEST_TOO_LARGE',
      { field: 'spec.argv' },
    );
  const envEntries = Object.entries(spec.env);
  if (envEntries.length > MAX_ENV || bytesOf(envEntries.flat()) > MAX_ENV_BYTES)
    throw new ResourceExhaustedError(
      `spec.env: at most ${MAX_ENV} entries and ${MAX_ENV_BYTES} bytes in total`,
      'REQUEST_TOO_LARGE',
      { field: 'spec.env' },
    );

  v.check(
    spec.argv.length > 0,
    'spec.argv',
    'must not be empty: give the command as argv, e.g. ["/bin/echo", "hi"]',
  );
  if (spec.argv.length > 0) v.check(spec.argv[0] !== '', 'spec.argv[0]', 'must not be empty');
  spec.argv.forEach((a, i) => v.check(!a.includes('\0'), `spec.argv[${i}]`, 'must not contain NUL'));
  for (const [k, val] of envEntries) {
    v.check(ENV_NAME.test(k), `spec.env[${JSON.stringify(k)}]`, 'name must match [A-Za-z_][A-Za-z0-9_]*');
    v.check(!val.includes('\0'), `spec.env[${JSON.stringify(k)}]`, 'value must not contain NUL');
  }
  if (spec.cwd !== '') {
    v.check(spec.cwd.startsWith('/'), 'spec.cwd', 'must be an absolute path under /work');
    v.check(!hasDotDot(spec.cwd), 'spec.cwd', 'must not contain ".." components');
    v.check(!spec.cwd.includes('\0'), 'spec.cwd', 'must not contain NUL');
    v.check(under(posix.normalize(spec.cwd), '/work'), 'spec.cwd', 'must be /work or a directory under it');
  }

  const r = spec.resources;
  if (r) {
    v.check(
      r.cpuMillicores >= 0 && r.cpuMillicores <= host.cpus * 1000,
      'spec.resources.cpu_millicores',
      `must be between 0 and ${host.cpus * 1000} (1000 per host CPU)`,
    );
    v.check(
      r.cpuWeight >= 0 && r.cpuWeight <= 10_000,
      'spec.resources.cpu_weight',
      'must be between 0 and 10000',
    );
    const mem = Number(r.memoryBytes);
    v.check(
      mem === 0 || (mem >= MIN_MEMORY && mem <= host.memoryBytes),
      'spec.resources.memory_bytes',
      `must be 0 (default) or between ${MIN_MEMORY} and the host's ${host.memoryBytes} bytes`,
    );
    if (r.memorySwapBytes !== undefined)
      v.check(r.memorySwapBytes >= 0n, 'spec.resources.memory_swap_bytes', 'must not be negative');
    v.check(
      r.pidsMax >= 0 && r.pidsMax <= PID_MAX,
      'spec.resources.pids_max',
      `must be between 0 and ${PID_MAX}`,
    );
    v.check(r.ioReadBps >= 0n, 'spec.resources.io_read_bps', 'must not be negative');
    v.check(r.ioWriteBps >= 0n, 'spec.resources.io_write_bps', 'must not be negative');
    v.check(
      r.tmpSizeBytes >= 0n && Number(r.tmpSizeBytes) <= host.memoryBytes,
      'spec.resources.tmp_size_bytes',
      "must be between 0 and the host's memory",
    );
    v.check(r.maxOutputBytes >= 0n, 'spec.resources.max_output_bytes', 'must not be negative');
    v.check(
      r.maxLogBytes === 0n || r.maxLogBytes >= 65_536n,
      'spec.resources.max_log_bytes',
      'must be 0 (default) or at least 65536',
    );
  }
  if (!Object.values(NetworkMode).includes(spec.network) || spec.network === NetworkMode.UNRECOGNIZED)
    v.add('spec.network', 'must be NETWORK_MODE_NONE or NETWORK_MODE_HOST');

  v.check(spec.mounts.length <= MAX_LIST, 'spec.mounts', `at most ${MAX_LIST}`);
  spec.mounts.forEach((m, i) => {
    const f = `spec.mounts[${i}]`;
    v.check(
      m.hostPath.startsWith('/') && !hasDotDot(m.hostPath) && !m.hostPath.includes('\0'),
      `${f}.host_path`,
      'must be an absolute path without ".."',
    );
    const target = posix.normalize(m.containerPath || '/');
    v.check(
      m.containerPath.startsWith('/') && !hasDotDot(m.containerPath) && !m.containerPath.includes('\0'),
      `${f}.container_path`,
      'must be an absolute path without ".."',
    );
    v.check(
      target !== '/' &&
        target !== '/work' &&
        target !== '/tmp' &&
        !FORBIDDEN_TARGETS.some((t) => under(target, t)),
      `${f}.container_path`,
      'must not be /, /work, /tmp, /proc, /dev, /sys or under /proc, /dev, /sys',
    );
  });
  v.check(spec.devices.length <= MAX_LIST, 'spec.devices', `at most ${MAX_LIST}`);
  spec.devices.forEach((d, i) => {
    const f = `spec.devices[${i}]`;
    if (d.kind === DeviceKind.DEVICE_KIND_CHAR_DEVICE)
      v.check(
        d.path.startsWith('/dev/') && !hasDotDot(d.path),
        `${f}.path`,
        'must be a device path under /dev',
      );
    else if (d.kind === DeviceKind.DEVICE_KIND_NVIDIA_GPU)
      v.check(
        d.index === undefined || (d.index >= 0 && d.index < 64),
        `${f}.index`,
        'must be between 0 and 63',
      );
    else v.add(`${f}.kind`, 'must be DEVICE_KIND_NVIDIA_GPU or DEVICE_KIND_CHAR_DEVICE');
  });

  if (spec.timeout) {
    const ms = msFromDuration(spec.timeout);
    v.check(ms >= 0, 'spec.timeout', 'must not be negative');
    if (config.ceilings.timeoutSeconds > 0)
      v.check(
        ms <= config.ceilings.timeoutSeconds * 1000,
        'spec.timeout',
        `must be at most ${config.ceilings.timeoutSeconds} s`,
      );
  }
  if (spec.stopSignal !== '') {
    const sig = signalName(spec.stopSignal);
    v.check(sig !== undefined, 'spec.stop_signal', 'is not a signal name (e.g. SIGTERM, INT)');
    v.check(
      !['SIGKILL', 'SIGSTOP'].includes(sig ?? ''),
      'spec.stop_signal',
      'must not be SIGKILL or SIGSTOP (use KillJob)',
    );
  }
  if (spec.stopGracePeriod) {
    const ms = msFromDuration(spec.stopGracePeriod);
    v.check(
      ms >= 0 && ms <= config.ceilings.stopGraceSeconds * 1000,
      'spec.stop_grace_period',
      `must be between 0 and ${config.ceilings.stopGraceSeconds} s`,
    );
  }
  checkLabels(v, spec.labels, 'spec.labels');
  if (
    spec.sandboxProfile !== '' &&
    spec.sandboxProfile !== 'default' &&
    !(spec.sandboxProfile in config.profiles)
  )
    throw new RpcError(
      Status.INVALID_ARGUMENT,
      'UNKNOWN_SANDBOX_PROFILE',
      `spec.sandbox_profile: no profile ${JSON.stringify(spec.sandboxProfile)} is configured (known: default${Object.keys(
        config.profiles,
      )
        .map((p) => `, ${p}`)
        .join('')})`,
      { fieldViolations: [{ field: 'spec.sandbox_profile', description: 'unknown profile' }] },
    );
  v.check(spec.outputs.length <= MAX_LIST, 'spec.outputs', `at most ${MAX_LIST}`);
  spec.outputs.forEach((o, i) => {
    const problem = outputPathProblem(o.path);
    v.check(problem === undefined, `spec.outputs[${i}].path`, problem ?? '');
    v.check(
      o.artifactType === '' || OUTPUT_TYPES.has(o.artifactType),
      `spec.outputs[${i}].artifact_type`,
      `must be one of ${[...OUTPUT_TYPES].join(', ')} (or empty for OTHER)`,
    );
    v.check(o.mediaType.length <= 255, `spec.outputs[${i}].media_type`, 'at most 255 characters');
    checkLabels(v, o.labels, `spec.outputs[${i}].labels`);
  });
  v.check(spec.inputArtifacts.length <= MAX_LIST, 'spec.input_artifacts', `at most ${MAX_LIST}`);
  spec.inputArtifacts.forEach((name, i) =>
    v.check(
      ARTIFACT_NAME.test(name),
      `spec.input_artifacts[${i}]`,
      `${JSON.stringify(name.slice(0, 100))} is not an artifact name (artifacts/<26-character id>)`,
    ),
  );
  v.check(
    new Set(spec.inputArtifacts).size === spec.inputArtifacts.length,
    'spec.input_artifacts',
    'names an artifact twice',
  );
  v.throwIfAny();

  // Well-formed; now what this host's configuration allows.
  checkCeilings(spec, config);
  for (const [i, m] of spec.mounts.entries()) checkMountAllowed(m, i, config);
}

function checkCeilings(spec: jobsV1.JobSpec, config: JobsConfig): void {
  const c = config.ceilings;
  const r = spec.resources;
  const over = (field: string, value: number, ceiling: number): void => {
    if (ceiling > 0 && value > ceiling)
      throw new PermissionDeniedError(
        `${field} = ${value} is above the configured ceiling of ${ceiling}`,
        'LIMIT_ABOVE_CEILING',
        { field },
      );
  };
  if (!r) return;
  over('spec.resources.cpu_millicores', r.cpuMillicores, c.cpuMillicores);
  over('spec.resources.memory_bytes', Number(r.memoryBytes), c.memoryBytes);
  over('spec.resources.pids_max', r.pidsMax, c.pidsMax);
  over('spec.resources.tmp_size_bytes', Number(r.tmpSizeBytes), c.tmpSizeBytes);
  over('spec.resources.max_log_bytes', Number(r.maxLogBytes), c.maxLogBytes);
}

/** The resolved host path of an allowed mount; PERMISSION_DENIED / MOUNT_NOT_ALLOWED otherwise. */
export function checkMountAllowed(m: jobsV1.Mount, index: number, config: JobsConfig): string {
  const field = `spec.mounts[${index}].host_path`;
  let real: string;
  try {
    real = realpathSync(m.hostPath);
  } catch {
    throw new RpcError(Status.INVALID_ARGUMENT, 'INVALID_FIELD', `${field}: ${m.hostPath} does not exist`, {
      fieldViolations: [{ field, description: 'does not exist' }],
    });
  }
  const writable = m.readOnly === false;
  const entry = config.mountAllowlist.find((a) => under(real, realpathOr(a.path)));
  if (!entry)
    throw new PermissionDeniedError(
      `${field}: ${m.hostPath}${real !== m.hostPath ? ` (${real})` : ''} is not inside the mount allowlist${config.mountAllowlist.length ? ` (${config.mountAllowlist.map((a) => a.path).join(', ')})` : ', which is empty'}`,
      'MOUNT_NOT_ALLOWED',
      { field },
    );
  if (writable && !entry.writable)
    throw new PermissionDeniedError(
      `${field}: ${entry.path} may only be mounted read-only`,
      'MOUNT_NOT_ALLOWED',
      { field },
    );
  return real;
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Whether a spec asks for an NVIDIA GPU. */
export function wantsGpu(spec: jobsV1.JobSpec): boolean {
  return spec.devices.some((d) => d.kind === DeviceKind.DEVICE_KIND_NVIDIA_GPU);
}

function gpuUnavailable(message: string, metadata: Record<string, string>): RpcError {
  return new RpcError(Status.FAILED_PRECONDITION, 'GPU_UNAVAILABLE', message, { metadata });
}

/**
 * The spec with a GPU index chosen for each NVIDIA GPU that names neither an index nor a UUID: the
 * lowest-numbered `<deviceDir>/nvidia<N>` that `held` does not contain (and not chosen for the same spec
 * twice). Unchanged when there is nothing to choose.
 *
 * @param held - GPU numbers held by other jobs, each with one of them (for the message).
 * @throws RpcError FAILED_PRECONDITION / `GPU_UNAVAILABLE` when the host has no GPU node at all;
 *   RESOURCE_EXHAUSTED / `GPUS_BUSY` when every one is held.
 */
export function assignGpus(
  spec: jobsV1.JobSpec,
  deviceDir: string,
  held: ReadonlyMap<number, string>,
): jobsV1.JobSpec {
  const open = spec.devices.filter(
    (d) => d.kind === DeviceKind.DEVICE_KIND_NVIDIA_GPU && d.index === undefined && d.path === '',
  );
  if (open.length === 0) return spec;
  const gpus = listNvidiaGpus(deviceDir);
  if (gpus.length === 0)
    throw gpuUnavailable(`no NVIDIA GPU on this host: ${deviceDir} has no nvidia<N> character device`, {
      missing: posix.join(deviceDir, 'nvidia0'),
    });
  const taken = new Set([...held.keys(), ...spec.devices.map((d) => d.index).filter((i) => i !== undefined)]);
  const free = gpus.filter((n) => !taken.has(n));
  if (free.length < open.length)
    throw new ResourceExhaustedError(
      `the job asks for ${open.length} GPU${open.length > 1 ? 's' : ''} of aetherd's choosing but ${free.length} of this host's ${gpus.length} ${free.length === 1 ? 'is' : 'are'} free (${gpus
        .map(
          (n) =>
            `nvidia${n}: ${held.has(n) ? `held by jobs/${held.get(n)}` : taken.has(n) ? 'named by the job' : 'free'}`,
        )
        .join(', ')}); retry when a job ends, or name a GPU by index to share it`,
      'GPUS_BUSY',
    );
  let next = 0;
  return {
    ...spec,
    devices: spec.devices.map((d) => (open.includes(d) ? { ...d, index: free[next++]! } : d)),
  };
}

/** The NVIDIA GPU numbers a spec names (after {@link assignGpus}), ascending and unique. */
export function gpuIndices(spec: jobsV1.JobSpec): number[] {
  const indices = spec.devices
    .filter((d) => d.kind === DeviceKind.DEVICE_KIND_NVIDIA_GPU && d.index !== undefined)
    .map((d) => d.index!);
  return [...new Set(indices)].sort((a, b) => a - b);
}

/**
 * Host device nodes for a spec's devices and where each appears in the sandbox. A character device keeps
 * its path; an NVIDIA GPU (its index chosen by {@link assignGpus}) is `<deviceDir>/nvidia<N>` plus
 * `nvidiactl`, `nvidia-uvm` and, when present, `nvidia-uvm-tools` and `nvidia-modeset`, each at
 * `/dev/<name>` inside.
 *
 * @throws RpcError FAILED_PRECONDITION / `GPU_UNAVAILABLE` naming a missing GPU node, or for a GPU named by
 *   UUID; `ISOLATION_UNAVAILABLE` when another device is missing on this host.
 */
export function deviceNodes(spec: jobsV1.JobSpec, deviceDir: string): DeviceNode[] {
  const nodes: DeviceNode[] = [];
  const gpus: number[] = [];
  for (const d of spec.devices) {
    if (d.kind === DeviceKind.DEVICE_KIND_CHAR_DEVICE) {
      let ok = false;
      try {
        ok = statSync(d.path).isCharacterDevice();
      } catch {
        ok = false;
      }
      if (!ok)
        throw new RpcError(
          Status.FAILED_PRECONDITION,
          'ISOLATION_UNAVAILABLE',
          `device ${d.path} is not a character device on this host`,
          { metadata: { missing: d.path } },
        );
      nodes.push({ hostPath: d.path, containerPath: d.path });
    } else if (d.kind === DeviceKind.DEVICE_KIND_NVIDIA_GPU) {
      if (d.path !== '')
        throw gpuUnavailable(
          `GPU ${JSON.stringify(d.path)}: aetherd cannot select a GPU by UUID (mapping a UUID to its device node needs nvidia-smi, which aetherd does not run); name the GPU by index, or leave both unset for any free GPU`,
          { gpu: d.path },
        );
      if (d.index === undefined) throw new Error('deviceNodes: assignGpus must choose the GPU first');
      gpus.push(d.index);
    }
  }
  if (gpus.length > 0) {
    try {
      nodes.push(...nvidiaGpuNodes(deviceDir, gpus));
    } catch (err) {
      if (!(err instanceof DeviceUnavailableError)) throw err;
      throw gpuUnavailable(`GPU device ${err.path} is ${err.reason} on this host`, { missing: err.path });
    }
  }
  // One node per path inside (a GPU's nvidiactl may also be asked for as a plain device).
  const unique = new Map<string, DeviceNode>();
  for (const n of nodes) if (!unique.has(n.containerPath)) unique.set(n.containerPath, n);
  return [...unique.values()];
}

/**
 * The spec as the job will run: every unset limit filled with the configured default (CPU and memory
 * default to half the host, seed §4.3), network NONE, cwd /work, SIGTERM with 10 s grace.
 */
export function withDefaults(
  spec: jobsV1.JobSpec,
  config: JobsConfig,
  host: HostLimits,
  intentId: string,
): jobsV1.JobSpec {
  const d = config.defaults;
  const r = spec.resources;
  const cpuDefault = d.cpuMillicores || Math.floor((host.cpus * 1000) / 2);
  const memDefault = d.memoryBytes || Math.floor(host.memoryBytes / 2);
  return {
    ...spec,
    cwd: spec.cwd === '' ? '/work' : posix.normalize(spec.cwd),
    network:
      spec.network === NetworkMode.NETWORK_MODE_UNSPECIFIED ? NetworkMode.NETWORK_MODE_NONE : spec.network,
    resources: {
      cpuMillicores: r?.cpuMillicores || cpuDefault,
      cpuWeight: r?.cpuWeight || d.cpuWeight,
      memoryBytes: r?.memoryBytes || BigInt(memDefault),
      memorySwapBytes: r?.memorySwapBytes ?? BigInt(d.memorySwapBytes),
      pidsMax: r?.pidsMax || d.pidsMax,
      ioReadBps: r?.ioReadBps ?? 0n,
      ioWriteBps: r?.ioWriteBps ?? 0n,
      tmpSizeBytes: r?.tmpSizeBytes || BigInt(d.tmpSizeBytes),
      maxOutputBytes: r?.maxOutputBytes || BigInt(d.maxOutputBytes),
      maxLogBytes: r?.maxLogBytes || BigInt(d.maxLogBytes),
    },
    mounts: spec.mounts.map((m) => ({ ...m, readOnly: m.readOnly ?? true })),
    timeout:
      spec.timeout && msFromDuration(spec.timeout) > 0
        ? spec.timeout
        : d.timeoutSeconds > 0
          ? durationFromMs(d.timeoutSeconds * 1000)
          : undefined,
    stopSignal: spec.stopSignal === '' ? 'SIGTERM' : (signalName(spec.stopSignal) ?? spec.stopSignal),
    stopGracePeriod: spec.stopGracePeriod ?? durationFromMs(d.stopGraceSeconds * 1000),
    intentId,
    sandboxProfile: spec.sandboxProfile === 'default' ? '' : spec.sandboxProfile,
  };
}

/** Artifact types an output may declare, as OutputSpec.artifact_type spells them. */
export const OUTPUT_TYPES = new Set(['DATASET', 'CHECKPOINT', 'MODEL', 'REPORT', 'LOG', 'OTHER']);

/**
 * Why an output path (relative to `/work/outputs`, possibly a glob) is unacceptable, or undefined.
 * Globs may use `*`, `?` and `[…]` within one path segment; `**` is not supported.
 */
export function outputPathProblem(path: string): string | undefined {
  if (path === '') return 'must not be empty';
  if (path.length > 1024) return 'at most 1024 characters';
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.startsWith('/')) return 'must be relative to /work/outputs';
  const parts = path.split('/');
  if (parts.some((p) => p === '..' || p === '.' || p === ''))
    return 'must not contain "..", "." or empty segments';
  if (parts.some((p) => p.includes('**'))) return '"**" is not supported; use one "*" per segment';
  return undefined;
}
