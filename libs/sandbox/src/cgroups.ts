import { readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseMountinfo } from './proc-parsers';

/** Where one cgroup lives in one mounted hierarchy. */
export interface CgroupDirectory {
  /** `cgroup` (a v1 hierarchy) or `cgroup2` (the unified one, also the hybrid `unified` mount). */
  fsType: 'cgroup' | 'cgroup2';
  /** The v1 hierarchy's controllers (`cpu`, `cpuacct`, `name=systemd` …); empty for cgroup2. */
  controllers: string[];
  /** The mount point of the hierarchy, e.g. `/sys/fs/cgroup/memory`. */
  mountPoint: string;
  /** The cgroup's directory in that hierarchy, e.g. `/sys/fs/cgroup/memory/aether/job-1`. */
  path: string;
}

/** Options for {@link cgroupDirectories} and {@link removeCgroup}. */
export interface CgroupPathOptions {
  /** Prefix for /proc and the cgroup mounts (tests point it at a fixture tree); default ''. */
  hostRoot?: string;
}

/**
 * Checks that `cgroupsPath` is an absolute path without `.`/`..` segments, as the job runner passes
 * it to the runtime (`linux.cgroupsPath`); throws a TypeError otherwise.
 */
export function assertCgroupsPath(cgroupsPath: string): void {
  const parts = cgroupsPath.split('/').slice(1);
  if (
    !cgroupsPath.startsWith('/') ||
    parts.length === 0 ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new TypeError(
      `cgroupsPath must be an absolute path like /aether/<id>: ${JSON.stringify(cgroupsPath)}`,
    );
  }
}

/**
 * The directories of the cgroup `cgroupsPath` in every mounted cgroup hierarchy, as runc places an
 * absolute cgroupsPath: `<mount point of the hierarchy>/<cgroupsPath>`. One entry per hierarchy
 * (the first mount of each), whether or not the directory exists.
 */
export function cgroupDirectories(cgroupsPath: string, options: CgroupPathOptions = {}): CgroupDirectory[] {
  assertCgroupsPath(cgroupsPath);
  const hostRoot = options.hostRoot ?? '';
  const mounts = parseMountinfo(readFileSync(`${hostRoot}/proc/self/mountinfo`, 'utf8'));
  const seen = new Set<string>();
  const out: CgroupDirectory[] = [];
  for (const m of mounts) {
    if (m.fsType !== 'cgroup' && m.fsType !== 'cgroup2') continue;
    const controllers =
      m.fsType === 'cgroup'
        ? m.superOptions.filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('xattr'))
        : [];
    const key = `${m.fsType}:${[...controllers].sort().join(',')}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      fsType: m.fsType,
      controllers,
      mountPoint: m.mountPoint,
      path: posix.join(m.mountPoint, cgroupsPath),
    });
  }
  return out;
}

/** SIGKILL to every process in a cgroup directory and its child cgroups. */
function killTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) killTree(join(dir, e.name));
  let procs = '';
  try {
    procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return;
  }
  for (const pid of procs.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
}

/** rmdir of one cgroup directory and, first, its child cgroups; ENOENT counts as removed. */
function removeTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory()) removeTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** The result of {@link removeCgroup}. */
export interface RemoveCgroupResult {
  /** Directories that are gone (or never existed). */
  removed: string[];
  /** Directories that could not be removed, with why (EBUSY: processes still inside). */
  failed: { path: string; error: string }[];
}

/**
 * Removes the cgroup `cgroupsPath` (and any child cgroups) from every hierarchy. The runtime removes
 * a container's own cgroup when it deletes the container, but not the parents it created (e.g.
 * `/aether` of `/aether/<id>`); `removeEmptyParents` also removes those that are now empty, up to
 * the first that is still in use — never a hierarchy's root. A cgroup whose processes are still
 * exiting reads EBUSY for a moment, so EBUSY is retried for about half a second. `killProcesses`
 * first sends SIGKILL to whatever is still inside (a cgroup no runtime state accounts for).
 */
export async function removeCgroup(
  cgroupsPath: string,
  options: CgroupPathOptions & { removeEmptyParents?: boolean; killProcesses?: boolean } = {},
): Promise<RemoveCgroupResult> {
  const result: RemoveCgroupResult = { removed: [], failed: [] };
  for (const dir of cgroupDirectories(cgroupsPath, options)) {
    const hostDir = `${options.hostRoot ?? ''}${dir.path}`;
    if (options.killProcesses) killTree(hostDir);
    let lastError: unknown;
    for (let attempt = 0; attempt < 6; attempt++) {
      try {
        removeTree(hostDir);
        lastError = undefined;
        break;
      } catch (err) {
        lastError = err;
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY') break;
        await sleep(10 * 2 ** attempt);
      }
    }
    if (lastError !== undefined) {
      result.failed.push({ path: dir.path, error: (lastError as Error).message });
      continue;
    }
    result.removed.push(dir.path);
    if (!options.removeEmptyParents) continue;
    let parent = dirname(dir.path);
    while (parent.length > dir.mountPoint.length && parent.startsWith(dir.mountPoint + '/')) {
      try {
        rmdirSync(`${options.hostRoot ?? ''}${parent}`);
        result.removed.push(parent);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // In use by another container (EBUSY/ENOTEMPTY): leave it and everything above it.
        if (code !== 'ENOENT') break;
      }
      parent = dirname(parent);
    }
  }
  return result;
}
