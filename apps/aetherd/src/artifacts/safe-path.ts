import { constants, type Stats } from 'node:fs';
import { open, lstat, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { invalidPath, notARegularFile, pathOutsideRoot, sourceNotFound } from './artifact-errors';

/** Where a job sees its work directory. */
export const JOB_WORK = '/work';

/** A source file to import: a host path and the directory it must not escape. */
export interface SourceFile {
  /** Absolute host path of the file. */
  path: string;
  /** Absolute host directory the file must stay inside, after symlinks are resolved. */
  root: string;
}

/**
 * Maps a CreateArtifact `source_path` to a host path and the root it must stay inside, lexically
 * (nothing is touched on disk): a path the producing job saw (`/work/…`, or relative to `/work`) maps
 * into its work directory; any other absolute path must lie inside an import root. INVALID_ARGUMENT /
 * INVALID_PATH for an empty or relative path (without a job), NUL or `..`; PERMISSION_DENIED /
 * PATH_OUTSIDE_ROOT for an absolute path outside every root.
 */
export function mapSourcePath(
  sourcePath: string,
  roots: { jobWorkDir?: string | undefined; importRoots: readonly string[] },
): SourceFile {
  if (sourcePath === '') throw invalidPath(sourcePath, 'must not be empty');
  if (sourcePath.includes('\0')) throw invalidPath(sourcePath, 'must not contain NUL');
  if (sourcePath.split('/').includes('..')) throw invalidPath(sourcePath, 'must not contain ".."');
  const relative = !sourcePath.startsWith('/');
  const path = posix.normalize(sourcePath).replace(/\/+$/, '') || '/';
  if (roots.jobWorkDir !== undefined) {
    if (relative) return { path: posix.join(roots.jobWorkDir, path), root: roots.jobWorkDir };
    if (isInside(path, JOB_WORK))
      return { path: posix.join(roots.jobWorkDir, path.slice(JOB_WORK.length)), root: roots.jobWorkDir };
  } else if (relative) {
    throw invalidPath(sourcePath, 'must be absolute (a relative path needs a job: metadata.job_id)');
  }
  for (const root of roots.importRoots) {
    const r = posix.normalize(root).replace(/\/+$/, '') || '/';
    if (isInside(path, r)) return { path, root: r };
  }
  throw pathOutsideRoot(
    sourcePath,
    roots.jobWorkDir !== undefined
      ? `is outside the job's ${JOB_WORK} and every import root`
      : 'is outside every import root',
  );
}

/** True when `path` is `root` or below it (both absolute and normalized). */
export function isInside(path: string, root: string): boolean {
  return root === '/' ? path.startsWith('/') : path === root || path.startsWith(`${root}/`);
}

/** A source file opened for reading after every escape check passed. */
export interface OpenedSource {
  handle: FileHandle;
  /** fstat of the opened file: a regular file with one link. */
  stat: Stats;
  /** Its real path (symlinks resolved), inside the root's real path. */
  realPath: string;
}

export interface OpenSourceOptions {
  /**
   * Runs between the checks on the path and the open: tests use it to swap the file for another, or a
   * directory for a symlink, in the window a racing writer would use.
   */
  beforeOpen?: (realPath: string) => Promise<void> | void;
}

/**
 * Opens `file.path` for reading if, and only if, it is a regular file inside `file.root` after every
 * symlink is resolved, with no other hard link (a second link could be a file outside the root, linked
 * in), and stays so while it is opened:
 *
 * 1. resolve the root and the path (realpath) and check the path is inside the root;
 * 2. lstat the resolved path: a regular file with one link;
 * 3. open it with O_NOFOLLOW (and O_NONBLOCK, so a FIFO swapped in cannot block the open);
 * 4. check that what was opened is what was checked: the fd's own path (`/proc/self/fd/N`) is still
 *    inside the root, and its device and inode are those of step 2 (a component replaced by a symlink,
 *    or the file renamed over, between 1 and 3 is caught here).
 *
 * Errors: NOT_FOUND / SOURCE_NOT_FOUND, PERMISSION_DENIED / PATH_OUTSIDE_ROOT, FAILED_PRECONDITION /
 * NOT_A_REGULAR_FILE.
 */
export async function openSource(file: SourceFile, options: OpenSourceOptions = {}): Promise<OpenedSource> {
  const shown = file.path;
  const realRoot = await resolve(file.root, shown);
  const real = await resolve(file.path, shown);
  if (!isInside(real, realRoot))
    throw pathOutsideRoot(shown, 'resolves (through a symlink) outside its root');
  let before: Stats;
  try {
    before = await lstat(real);
  } catch (err) {
    throw mapFsError(err, shown);
  }
  checkFile(before, shown);
  await options.beforeOpen?.(real);
  let handle: FileHandle;
  try {
    handle = await open(
      real,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch (err) {
    throw mapFsError(err, shown);
  }
  try {
    const [opened, stat] = await Promise.all([readlink(`/proc/self/fd/${handle.fd}`), handle.stat()]);
    if (!isInside(opened, realRoot))
      throw pathOutsideRoot(shown, 'was moved outside its root (through a symlink) while it was opened');
    if (stat.dev !== before.dev || stat.ino !== before.ino)
      throw pathOutsideRoot(shown, 'was replaced by another file while it was opened');
    checkFile(stat, shown);
    return { handle, stat, realPath: opened };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function checkFile(st: Stats, shown: string): void {
  if (st.isSymbolicLink()) throw pathOutsideRoot(shown, 'was replaced by a symlink while it was checked');
  if (!st.isFile()) throw notARegularFile(shown, kindOf(st));
  if (st.nlink > 1)
    throw pathOutsideRoot(
      shown,
      `has ${st.nlink} hard links; one may be a file outside the root, so it is refused (copy it instead)`,
    );
}

async function resolve(path: string, shown: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    throw mapFsError(err, shown);
  }
}

function mapFsError(err: unknown, shown: string): unknown {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return sourceNotFound(shown);
    case 'ELOOP':
      return pathOutsideRoot(shown, 'is a symlink (or resolves through too many of them)');
    case 'ENXIO':
      return notARegularFile(shown, 'a socket or device');
    default:
      return err;
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}
