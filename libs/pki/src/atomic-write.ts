import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Write `data` to `file` so readers see either the old or the new content, never a torn
 * one: write a temp file in the same directory, fsync it, then rename over the target.
 * The temp file is created with `mode` from the start, so a key is never briefly readable.
 *
 * @internal
 */
export async function writeFileAtomic(file: string, data: string, mode: number, gid?: number): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(data);
      // open()'s mode is filtered by the umask; set it exactly.
      await fh.chmod(mode);
      if (gid !== undefined) await fh.chown(-1, gid);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** fsync a directory so completed renames survive a crash; best effort (not all filesystems allow it). @internal */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // EINVAL/EISDIR on some filesystems: durability is best effort for a dev PKI.
  }
}
