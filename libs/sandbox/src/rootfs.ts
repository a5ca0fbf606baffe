import { chmodSync, lstatSync, mkdirSync, readlinkSync, symlinkSync, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';

/** What a system bind path is on the host: a directory or file to bind, a symlink to recreate, or nothing. */
export type SystemPathKind = { kind: 'bind' } | { kind: 'symlink'; target: string } | { kind: 'missing' };

/** Classifies a host path named in `systemBinds` (lstat: a symlink is not followed). */
export function classifySystemPath(hostPath: string): SystemPathKind {
  let st: Stats;
  try {
    st = lstatSync(hostPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(hostPath) };
  return { kind: 'bind' };
}

/**
 * Creates the (empty) root directory of a container and recreates in it the symlinks among the
 * system paths, e.g. `bin -> usr/bin` on a merged-/usr host: a bind mount of a symlink would bind
 * its target instead, and the link text must stay relative so it resolves inside the container.
 * Directories and files among the paths are left to the runtime, which creates mount points before
 * it makes the root read-only. Idempotent: an existing identical link is kept.
 *
 * @param rootfsDir - the bundle's rootfs directory (created, mode 0755 so any uid can traverse it).
 * @param systemBinds - absolute host paths that {@link buildOciConfig} binds read-only.
 */
export function prepareRootfs(rootfsDir: string, systemBinds: string[]): void {
  mkdirSync(rootfsDir, { recursive: true, mode: 0o755 });
  // mkdir's mode is filtered by the umask; the root must be searchable by the unprivileged uid.
  chmodSync(rootfsDir, 0o755);
  for (const hostPath of systemBinds) {
    const what = classifySystemPath(hostPath);
    if (what.kind !== 'symlink') continue;
    const linkPath = join(rootfsDir, hostPath);
    mkdirSync(dirname(linkPath), { recursive: true, mode: 0o755 });
    try {
      symlinkSync(what.target, linkPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let same = false;
      try {
        same = lstatSync(linkPath).isSymbolicLink() && readlinkSync(linkPath) === what.target;
      } catch {
        same = false;
      }
      if (!same) throw err;
    }
  }
}
