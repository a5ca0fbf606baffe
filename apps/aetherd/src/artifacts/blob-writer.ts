import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { newId } from '@aether/rpc';
import { ingestAborted, limitExceeded } from './artifact-errors';
import type { Reservation } from './space';

/**
 * How much is hashed between two turns of the event loop: SHA-256 of 1 MiB takes about a millisecond
 * (less with SHA-NI), so no other caller of aetherd waits longer than that for one write.
 */
export const HASH_SLICE = 1024 * 1024;

/** `sha256:<64 lowercase hex digits>`, as every Aether API writes digests. */
export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** Hashes `data` into `hash` a slice at a time, yielding to the event loop between slices. */
export async function hashInSlices(hash: Hash, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length; at += HASH_SLICE) {
    if (at > 0) await yieldToEventLoop();
    hash.update(data.subarray(at, Math.min(data.length, at + HASH_SLICE)));
  }
}

/**
 * SHA-256 and size of everything readable from `handle` from offset 0, read a slice at a time with the
 * next read in flight while the current slice is hashed.
 */
export async function hashFile(
  handle: FileHandle,
  signal?: AbortSignal,
): Promise<{ digest: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  const buffers = [Buffer.allocUnsafe(HASH_SLICE), Buffer.allocUnsafe(HASH_SLICE)];
  let position = 0;
  let turn = 0;
  let pending = handle.read(buffers[0]!, 0, HASH_SLICE, 0);
  for (;;) {
    const { bytesRead } = await pending;
    if (bytesRead === 0) break;
    if (signal?.aborted) throw ingestAborted(signal);
    const current = buffers[turn % 2]!;
    position += bytesRead;
    turn++;
    pending = handle.read(buffers[turn % 2]!, 0, HASH_SLICE, position);
    hash.update(current.subarray(0, bytesRead));
  }
  return { digest: `sha256:${hash.digest('hex')}`, sizeBytes: position };
}

/** What a sealed temporary blob holds. */
export interface SealedBlob {
  tempPath: string;
  digest: string;
  sizeBytes: number;
}

/**
 * The first phase of storing a blob: a temporary file under the store's `tmp/`, written (and hashed)
 * chunk by chunk, or copied from a source file in the kernel (reflinked where the filesystem can) and
 * hashed from the copy. `seal` makes it durable (fsync) and read-only and returns its digest and size;
 * the store then verifies them and renames the file into place (see `placeBlob`). Every failure path
 * ends in `discard`, so no temporary file outlives the request that made it.
 *
 * Each write is covered by the reservation first, so limits are enforced before the bytes land; ENOSPC
 * or EDQUOT from the filesystem is RESOURCE_EXHAUSTED / DISK_FULL.
 */
export class TempBlob {
  private readonly hash: Hash | undefined;
  private size = 0;
  private closed = false;

  private constructor(
    readonly tempPath: string,
    private readonly handle: FileHandle,
    private readonly reservation: Reservation,
    /** Set when the content was copied in: the digest is taken from the copy when sealing. */
    copied: boolean,
  ) {
    this.hash = copied ? undefined : createHash('sha256');
  }

  /** A new, empty temporary file under `tmpDir`, to be filled with `append`. */
  static async create(tmpDir: string, reservation: Reservation): Promise<TempBlob> {
    const tempPath = join(tmpDir, `${newId()}.partial`);
    const handle = await open(tempPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    return new TempBlob(tempPath, handle, reservation, false);
  }

  /**
   * A temporary copy of the open file `source`, made by the kernel (copy_file_range, or a reflink where
   * the filesystem shares extents) through the fd's own path, so the very file that passed the escape
   * checks is the one copied. The reservation grows to what was copied, should the source have grown.
   */
  static async copy(tmpDir: string, source: FileHandle, reservation: Reservation): Promise<TempBlob> {
    const tempPath = join(tmpDir, `${newId()}.partial`);
    try {
      await copyFile(
        `/proc/self/fd/${source.fd}`,
        tempPath,
        constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE,
      );
    } catch (err) {
      await unlink(tempPath).catch(() => undefined);
      throw diskError(err);
    }
    let handle: FileHandle | undefined;
    try {
      handle = await open(tempPath, constants.O_RDWR);
      const { size } = await handle.stat();
      reservation.written = size;
      await reservation.grow(size);
      const blob = new TempBlob(tempPath, handle, reservation, true);
      blob.size = size;
      return blob;
    } catch (err) {
      await handle?.close();
      await unlink(tempPath).catch(() => undefined);
      throw err;
    }
  }

  /** Bytes in the file so far. */
  get sizeBytes(): number {
    return this.size;
  }

  /** Appends `chunk` (hashing it while the write is in flight). */
  async append(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    if (!this.hash) throw new Error('TempBlob.append on a copied blob');
    await this.reservation.grow(this.size + chunk.length);
    const position = this.size;
    this.size += chunk.length;
    const written = writeAll(this.handle, chunk, position);
    // The write must settle before this returns even if hashing fails, so no write outlives discard().
    let hashError: Error | undefined;
    const hashed = hashInSlices(this.hash, chunk).catch((err: unknown) => {
      hashError = err as Error;
    });
    await written;
    this.reservation.written = this.size;
    await hashed;
    if (hashError) throw hashError;
  }

  /** Makes the file durable and read-only and returns its digest and size. */
  async seal(signal?: AbortSignal): Promise<SealedBlob> {
    let digest: string;
    try {
      if (this.hash) {
        await this.handle.sync();
        digest = `sha256:${this.hash.digest('hex')}`;
      } else {
        // Flushing the copy and hashing it overlap: one waits on the disk, the other on the CPU.
        const [, hashed] = await Promise.all([this.handle.sync(), hashFile(this.handle, signal)]);
        digest = hashed.digest;
        if (hashed.sizeBytes !== this.size)
          throw new Error(`the copy changed size while it was hashed (${this.size} → ${hashed.sizeBytes})`);
      }
      const { size } = await this.handle.stat();
      if (size !== this.size)
        throw new Error(`temporary blob is ${size} bytes on disk, ${this.size} were written`);
      await this.handle.chmod(0o444);
    } catch (err) {
      throw diskError(err);
    }
    this.closed = true;
    await this.handle.close();
    return { tempPath: this.tempPath, digest, sizeBytes: this.size };
  }

  /** Closes and removes the temporary file (idempotent; never throws). */
  async discard(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await unlink(this.tempPath).catch(() => undefined);
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let done = 0;
  try {
    while (done < chunk.length) {
      const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position + done);
      done += bytesWritten;
    }
  } catch (err) {
    throw diskError(err);
  }
}

/** ENOSPC and EDQUOT are the disk being full; anything else stays what it is. */
export function diskError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return limitExceeded('DISK_FULL', `the store's filesystem is full (${code}); nothing was registered`);
  return err;
}

/**
 * The second phase: moves a sealed temporary blob to its content address, atomically, and makes the
 * rename durable (fsync of the directory). Replaces a file already there (a damaged copy being repaired).
 */
export async function placeBlob(tempPath: string, blobPath: string): Promise<void> {
  const shard = dirname(blobPath);
  // A new shard directory's own entry must be durable too before the blob in it counts.
  if ((await mkdir(shard, { recursive: true, mode: 0o755 })) !== undefined) await syncDir(dirname(shard));
  await rename(tempPath, blobPath);
  await syncDir(shard);
}

/** fsync of a directory: makes the creation, rename or removal of its entries durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
