import { statfs } from 'node:fs/promises';
import { limitExceeded } from './artifact-errors';

/** The store's size limits (config.artifacts); 0 means none for the first two. */
export interface SpaceLimits {
  maxArtifactBytes: number;
  quotaBytes: number;
  reserveFreeBytes: number;
}

/** Bytes available (to unprivileged writers, so a margin for root remains) on the filesystem of `dir`. */
export type FreeSpaceProbe = (dir: string) => Promise<number>;

export const statfsAvailable: FreeSpaceProbe = async (dir) => {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
};

/** How often a growing write asks the filesystem for its free space again. */
const PROBE_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * The store's space ledger: the bytes of distinct blobs stored, and the bytes every write in flight has
 * reserved. A write reserves before it writes (all of its declared size up front, or chunk by chunk), so
 * concurrent writes can never jointly overshoot the quota or eat into the free space to keep; a
 * reservation ends when its blob is stored (its bytes become stored bytes) or dropped.
 */
export class SpaceAccounting {
  private stored: number;
  private readonly active = new Set<Reservation>();

  constructor(
    private readonly dir: string,
    private readonly limits: SpaceLimits,
    storedBytes: number,
    private readonly probe: FreeSpaceProbe = statfsAvailable,
  ) {
    this.stored = storedBytes;
  }

  /** Bytes of distinct blobs in the store. */
  get storedBytes(): number {
    return this.stored;
  }

  /** Bytes reserved by writes in flight. */
  get reservedBytes(): number {
    let sum = 0;
    for (const r of this.active) sum += r.bytes;
    return sum;
  }

  /** Bytes reserved by writes in flight that carry `tag` (a job id, for its output quota). */
  reservedFor(tag: string): number {
    let sum = 0;
    for (const r of this.active) if (r.tag === tag) sum += r.bytes;
    return sum;
  }

  /**
   * Reserves `bytes` for a new write; `extraCheck` (a job's output quota) runs whenever the reservation
   * grows, before the store's own limits. RESOURCE_EXHAUSTED (ARTIFACT_TOO_LARGE, STORE_QUOTA_EXCEEDED,
   * DISK_FULL, or what `extraCheck` throws) when it does not fit.
   */
  async reserve(
    bytes: number,
    options: { tag?: string; extraCheck?: (totalBytes: number, reservedByOthers: number) => void } = {},
  ): Promise<Reservation> {
    const r = new Reservation(this, options.tag, options.extraCheck);
    this.checkLimits(r, bytes);
    this.active.add(r);
    r.bytes = bytes;
    try {
      await this.checkDisk(r, bytes);
    } catch (err) {
      r.release();
      throw err;
    }
    return r;
  }

  /** @internal Grows a reservation to `total` bytes (checks limits; probes the disk now and then). */
  async grow(r: Reservation, total: number): Promise<void> {
    if (total <= r.bytes) return;
    this.checkLimits(r, total);
    r.bytes = total;
    if (total - r.probedAt >= PROBE_EVERY_BYTES) await this.checkDisk(r, total);
  }

  /** @internal */
  settle(r: Reservation, storedBytes: number): void {
    if (!this.active.delete(r)) return;
    this.stored += storedBytes;
  }

  /** Sets the bytes of distinct blobs stored (from the records, at start). */
  resetStoredBytes(bytes: number): void {
    this.stored = bytes;
  }

  /** Forgets a stored blob's bytes (the blob was removed). */
  released(bytes: number): void {
    this.stored = Math.max(0, this.stored - bytes);
  }

  private checkLimits(r: Reservation, total: number): void {
    const { maxArtifactBytes, quotaBytes } = this.limits;
    if (maxArtifactBytes > 0 && total > maxArtifactBytes)
      throw limitExceeded(
        'ARTIFACT_TOO_LARGE',
        `the artifact would be ${total} bytes, above the store's maximum of ${maxArtifactBytes}`,
        { limit_bytes: String(maxArtifactBytes) },
      );
    const others = this.reservedBytes - (this.active.has(r) ? r.bytes : 0);
    r.extraCheck?.(
      total,
      r.tag === undefined ? 0 : this.reservedFor(r.tag) - (this.active.has(r) ? r.bytes : 0),
    );
    if (quotaBytes > 0 && this.stored + others + total > quotaBytes)
      throw limitExceeded(
        'STORE_QUOTA_EXCEEDED',
        `the store holds ${this.stored} bytes (${others} more reserved by uploads in flight); ${total} more would exceed its quota of ${quotaBytes}`,
        { quota_bytes: String(quotaBytes), stored_bytes: String(this.stored) },
      );
  }

  /**
   * The filesystem's free space, less what other writes have reserved but not written yet, must hold the
   * rest of this write and still leave `reserveFreeBytes`.
   */
  private async checkDisk(r: Reservation, total: number): Promise<void> {
    r.probedAt = total;
    const available = await this.probe(this.dir);
    let pending = 0;
    for (const o of this.active) if (o !== r) pending += Math.max(0, o.bytes - o.written);
    const needed = Math.max(0, total - r.written);
    if (available - pending - needed < this.limits.reserveFreeBytes)
      throw limitExceeded(
        'DISK_FULL',
        `the store's filesystem has ${available} bytes free (${pending} promised to uploads in flight); ${needed} more would leave less than the ${this.limits.reserveFreeBytes} to keep`,
        { available_bytes: String(available), reserve_free_bytes: String(this.limits.reserveFreeBytes) },
      );
  }
}

/** Bytes held for one write in flight. */
export class Reservation {
  /** Bytes reserved (never below what was written). */
  bytes = 0;
  /** Bytes written so far (they already show in the filesystem's free space). */
  written = 0;
  /** `bytes` when the disk was last probed. */
  probedAt = 0;

  constructor(
    private readonly ledger: SpaceAccounting,
    readonly tag: string | undefined,
    readonly extraCheck: ((totalBytes: number, reservedByOthers: number) => void) | undefined,
  ) {}

  /** Makes room for `total` bytes in all (RESOURCE_EXHAUSTED when there is none). */
  grow(total: number): Promise<void> {
    return this.ledger.grow(this, total);
  }

  /** Ends the reservation: its blob was stored (`newBlobBytes` of new distinct content), or not (0). */
  settle(newBlobBytes: number): void {
    this.ledger.settle(this, newBlobBytes);
  }

  /** Ends the reservation without storing anything. */
  release(): void {
    this.ledger.settle(this, 0);
  }
}
