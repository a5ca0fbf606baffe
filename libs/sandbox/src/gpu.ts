import { readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { delimiter, join, posix } from 'node:path';
import { DeviceUnavailableError } from './oci-config';
import { classifySystemPath } from './rootfs';

/** A host device node and the path at which it appears inside the container. */
export interface DeviceNode {
  hostPath: string;
  containerPath: string;
}

/** Nodes every NVIDIA GPU job needs besides its `nvidia<N>`: the control device and unified memory. */
export const NVIDIA_REQUIRED_NODES: readonly string[] = Object.freeze(['nvidiactl', 'nvidia-uvm']);
/** Nodes passed in when the host has them (the UVM profiler interface, display mode setting). */
export const NVIDIA_OPTIONAL_NODES: readonly string[] = Object.freeze(['nvidia-uvm-tools', 'nvidia-modeset']);

/** Driver programs bound into GPU jobs when discovered. */
export const NVIDIA_DRIVER_PROGRAMS: readonly string[] = Object.freeze(['nvidia-smi', 'nvidia-debugdump']);
/** Where the driver's user-space libraries are looked for (Debian/Ubuntu, RHEL, other, NVIDIA's containers). */
export const NVIDIA_LIBRARY_DIRS: readonly string[] = Object.freeze([
  '/usr/lib/x86_64-linux-gnu',
  '/usr/lib64',
  '/usr/lib',
  '/usr/local/nvidia/lib64',
]);
/** The driver libraries a CUDA program loads: NVML, the CUDA driver API and the PTX JIT compiler. */
const NVIDIA_LIBRARY = /^(libnvidia-ml|libcuda|libnvidia-ptxjitcompiler)\.so(\.|$)/;
const GPU_NODE = /^nvidia(0|[1-9][0-9]*)$/;

function isCharacterDevice(path: string): boolean {
  try {
    return statSync(path).isCharacterDevice();
  } catch {
    return false;
  }
}

/** The numbers N of the `nvidia<N>` character devices in `deviceDir`, ascending; none if it is unreadable. */
export function listNvidiaGpus(deviceDir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(deviceDir);
  } catch {
    return [];
  }
  return names
    .map((n) => GPU_NODE.exec(n)?.[1])
    .filter((n): n is string => n !== undefined && isCharacterDevice(join(deviceDir, `nvidia${n}`)))
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * The device nodes for NVIDIA GPUs `indices`: `<deviceDir>/nvidia<N>` for each, `nvidiactl` and
 * `nvidia-uvm`, plus `nvidia-uvm-tools` and `nvidia-modeset` where the host has them. Each appears in the
 * container as `/dev/<name>`, wherever `deviceDir` is on the host.
 *
 * @throws DeviceUnavailableError for the first required node that is missing or not a character device.
 */
export function nvidiaGpuNodes(deviceDir: string, indices: readonly number[]): DeviceNode[] {
  const node = (name: string): DeviceNode => ({
    hostPath: join(deviceDir, name),
    containerPath: `/dev/${name}`,
  });
  const required = [...new Set(indices)].map((i) => node(`nvidia${i}`));
  required.push(...NVIDIA_REQUIRED_NODES.map(node));
  for (const n of required) {
    let st: Stats;
    try {
      st = statSync(n.hostPath);
    } catch (err) {
      throw new DeviceUnavailableError(n.hostPath, 'missing', { cause: err });
    }
    if (!st.isCharacterDevice()) throw new DeviceUnavailableError(n.hostPath, 'not a character device');
  }
  const optional = NVIDIA_OPTIONAL_NODES.map(node).filter((n) => isCharacterDevice(n.hostPath));
  return [...required, ...optional];
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/**
 * Whether a host path is already visible inside the sandbox through its read-only system binds: its
 * real path lies inside one of the bound directories (symlinked binds such as `/lib → usr/lib` are
 * recreated as links, so they count through what they point to).
 */
export function visibleThroughSystemBinds(hostPath: string, systemBinds: readonly string[]): boolean {
  const real = realpathOrUndefined(hostPath);
  if (real === undefined) return false;
  return systemBinds.some((b) => {
    if (classifySystemPath(b).kind !== 'bind') return false;
    const bound = realpathOrUndefined(b);
    return bound !== undefined && under(real, bound);
  });
}

/** Where {@link discoverNvidiaDriverPaths} looks; the defaults are the host's usual places. */
export interface DriverDiscoveryOptions {
  /** Directories searched for `nvidia-smi` and `nvidia-debugdump`; default: PATH, the system bin dirs, /usr/local/nvidia/bin. */
  programDirs?: readonly string[];
  /** Directories searched for the driver libraries; default {@link NVIDIA_LIBRARY_DIRS}. */
  libraryDirs?: readonly string[];
}

const SYSTEM_PROGRAM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * The host's NVIDIA driver files that a GPU job needs bound in because the sandbox would not see them
 * otherwise: `nvidia-smi`, `nvidia-debugdump` and the `libnvidia-ml.so*`, `libcuda.so*` and
 * `libnvidia-ptxjitcompiler.so*` libraries, minus whatever is already visible through `systemBinds`
 * (with the default binds of `/usr`, `/lib`… a packaged driver needs nothing extra). Sorted, unique.
 */
export function discoverNvidiaDriverPaths(
  systemBinds: readonly string[],
  opts: DriverDiscoveryOptions = {},
): string[] {
  const programDirs = opts.programDirs ?? [
    ...(process.env['PATH'] ?? '').split(delimiter),
    ...SYSTEM_PROGRAM_DIRS,
    '/usr/local/nvidia/bin',
  ];
  const found = new Set<string>();
  for (const name of NVIDIA_DRIVER_PROGRAMS) {
    for (const dir of new Set(programDirs.filter((d) => d.startsWith('/')))) {
      const p = posix.join(dir, name);
      let file = false;
      try {
        file = statSync(p).isFile();
      } catch {
        file = false;
      }
      if (file) {
        found.add(p);
        break;
      }
    }
  }
  for (const dir of opts.libraryDirs ?? NVIDIA_LIBRARY_DIRS) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (NVIDIA_LIBRARY.test(n)) found.add(posix.join(dir, n));
  }
  return [...found].filter((p) => !visibleThroughSystemBinds(p, systemBinds)).sort();
}
