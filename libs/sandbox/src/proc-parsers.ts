// Pure parsers for the /proc files the host probe reads, so each can be tested with fixture text.

/** One line of /proc/cgroups. */
export interface CgroupSubsystem {
  name: string;
  /** The v1 hierarchy id; 0 when the controller is not mounted on v1 (unused, or on cgroup2). */
  hierarchy: number;
  numCgroups: number;
  enabled: boolean;
}

/** Parses /proc/cgroups (`#subsys_name hierarchy num_cgroups enabled`). */
export function parseProcCgroups(text: string): CgroupSubsystem[] {
  const out: CgroupSubsystem[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, hierarchy, numCgroups, enabled] = line.trim().split(/\s+/);
    if (name === undefined || enabled === undefined) continue;
    out.push({
      name,
      hierarchy: Number(hierarchy),
      numCgroups: Number(numCgroups),
      enabled: enabled === '1',
    });
  }
  return out;
}

/** One line of /proc/<pid>/mountinfo. */
export interface MountInfo {
  mountId: number;
  parentId: number;
  /** `major:minor` of the filesystem. */
  device: string;
  /** The directory of the filesystem that is mounted (e.g. `/` or a bind mount's subdirectory). */
  root: string;
  mountPoint: string;
  mountOptions: string[];
  fsType: string;
  source: string;
  /** Per-superblock options; for a cgroup v1 mount these name its controllers (`rw,cpu,cpuacct`). */
  superOptions: string[];
}

/** Undoes the kernel's octal escaping of space, tab, newline and backslash in mountinfo paths. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parses /proc/<pid>/mountinfo (proc(5)): `id parent major:minor root mountpoint options
 * [optional fields…] - fstype source superoptions`. Malformed lines are skipped.
 */
export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f = line.split(' ');
    // The optional fields end at a lone "-"; it cannot come before the sixth field.
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({
      mountId: Number(f[0]),
      parentId: Number(f[1]),
      device: f[2] ?? '',
      root: unescapeMountPath(f[3] ?? ''),
      mountPoint: unescapeMountPath(f[4] ?? ''),
      mountOptions: (f[5] ?? '').split(','),
      fsType: f[sep + 1] ?? '',
      source: unescapeMountPath(f[sep + 2] ?? ''),
      superOptions: (f[sep + 3] ?? '').split(','),
    });
  }
  return out;
}

/** Parses /proc/meminfo into bytes (values in `kB` are multiplied by 1024; unitless counts as is). */
export function parseMeminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s+(\d+)(?:\s+(kB))?\s*$/.exec(line);
    if (!m || m[1] === undefined || m[2] === undefined) continue;
    out[m[1]] = Number(m[2]) * (m[3] === 'kB' ? 1024 : 1);
  }
  return out;
}

/** Parses /proc/<pid>/status into `Key -> value` (the value trimmed, e.g. `Seccomp` -> `0`). */
export function parseProcStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The major and minor of a kernel release string such as `6.1.0-18-amd64`; undefined if unparsable. */
export function parseKernelRelease(release: string): { major: number; minor: number } | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]) };
}

/**
 * The version in a tool's `--version` output: `runc version 1.1.5+ds1`, `crun version 1.8.1`,
 * `conmon version 2.1.6`. Falls back to the first version-looking token; '' when there is none.
 */
export function parseVersionOutput(stdout: string, tool: string): string {
  const named = new RegExp(`^${tool}\\s+version\\s+(\\S+)`, 'mi').exec(stdout);
  if (named?.[1] !== undefined) return named[1];
  const any = /\b(\d+\.\d+(?:\.\d+)?\S*)/.exec(stdout);
  return any?.[1] ?? '';
}

/** What this package reads from `<runtime> features` (JSON, printed by runc ≥ 1.1 and recent crun). */
export interface RuntimeFeatures {
  seccompEnabled?: boolean;
  libseccompVersion?: string;
}

/** Parses `<runtime> features` JSON; undefined when the output is not that JSON. */
export function parseRuntimeFeatures(stdout: string): RuntimeFeatures | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const d = doc as {
    linux?: { seccomp?: { enabled?: unknown } };
    annotations?: Record<string, unknown>;
  };
  const out: RuntimeFeatures = {};
  const enabled = d.linux?.seccomp?.enabled;
  if (typeof enabled === 'boolean') out.seccompEnabled = enabled;
  const lib = d.annotations?.['io.github.seccomp.libseccomp.version'];
  if (typeof lib === 'string') out.libseccompVersion = lib;
  return out;
}
