import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from '@aether/log';
import { artifactsV1 } from '@aether/proto';
import { Violations } from '@aether/rpc';
import { newId } from '@aether/rpc';
import {
  artifactNotFound,
  blobCorrupted,
  blobMissing,
  digestMismatch,
  idempotencyKeyReused,
  ingestAborted,
  limitExceeded,
  sizeMismatch,
} from './artifact-errors';
import type { LineageGraph, LineageQuery } from './artifact-lineage';
import { checkMetadata, IDEMPOTENCY_KEY, throwIfInvalid } from './artifact-metadata';
import {
  ArtifactRecords,
  type ArtifactRecord,
  type BlobRecord,
  type ListArtifactsQuery,
} from './artifact-records';
import { DIGEST_PATTERN, hashFile, placeBlob, TempBlob, type SealedBlob } from './blob-writer';
import { guessMediaType } from './media-type';
import { openSource, type OpenSourceOptions, type SourceFile } from './safe-path';
import { SpaceAccounting, type FreeSpaceProbe, type Reservation, type SpaceLimits } from './space';

export type { ArtifactRecord } from './artifact-records';
export type { SourceFile } from './safe-path';

const { ArtifactType } = artifactsV1;
type ArtifactType = artifactsV1.ArtifactType;

/** An idempotency key holds for this long. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;
/** ReadArtifact's chunk size (the contract's maximum). */
export const READ_CHUNK = 256 * 1024;

/** Who made an artifact and what it is: everything a caller chooses about a new artifact. */
export interface ArtifactMeta {
  /** Unspecified: OTHER. */
  type?: ArtifactType;
  /** Empty: guessed from `filename`'s extension. */
  mediaType?: string;
  labels?: Record<string, string>;
  /** The producing job (the caller checks that it exists). */
  jobId?: string;
  intentId?: string;
  /** SPIFFE ID of the caller registering it. */
  actor: string;
  /** Ids (not names) of the artifacts it was derived from; each must exist. */
  derivedFrom?: string[];
  /** Base name; empty on import: the source file's base name. */
  filename?: string;
  description?: string;
}

export interface IngestOptions {
  /** `sha256:<hex>` the content must have (INVALID_ARGUMENT / DIGEST_MISMATCH otherwise). */
  expectedDigest?: string;
  /** Bytes the content must have (INVALID_ARGUMENT / SIZE_MISMATCH otherwise); reserved up front. */
  expectedSizeBytes?: number;
  /** Same actor and key within 24 h: the first artifact again (ALREADY_EXISTS if the arguments differ). */
  idempotencyKey?: string;
  /**
   * The producing job's `max_output_bytes` (0 or absent: none): the sizes of the artifacts registered
   * with `meta.jobId`, this one included, must fit (RESOURCE_EXHAUSTED / JOB_OUTPUT_QUOTA_EXCEEDED).
   */
  jobOutputLimitBytes?: number;
  /** Stops an ingest before it registers anything. */
  signal?: AbortSignal;
}

export interface IngestResult {
  artifact: ArtifactRecord;
  /** True when the store already held this content, so no new bytes were stored. */
  deduplicated: boolean;
}

export interface VerifyResult {
  valid: boolean;
  actualDigest: string;
  actualSizeBytes: number;
  /** The record afterwards (`verifyTime` updated when valid). */
  artifact: ArtifactRecord;
}

export interface ArtifactStoreOptions {
  /** Holds `blobs/`, `tmp/` and `artifacts.db`. */
  dir: string;
  limits: SpaceLimits;
  log: Logger;
  /** Free-space probe (statfs by default). */
  freeSpace?: FreeSpaceProbe;
  /** The clock (tests move it past the idempotency window). */
  now?: () => number;
  /** Told of every artifact created and deleted (aetherd's event stream). */
  onChange?: (change: {
    kind: 'created' | 'deleted';
    artifact: ArtifactRecord;
    deduplicated?: boolean;
  }) => void;
}

/** What an ingest carries from its checks to its commit. */
interface Prepared {
  record: Omit<ArtifactRecord, 'id' | 'seq' | 'digest' | 'sizeBytes' | 'createTime' | 'verifyTime'>;
  idempotencyKey: string;
  requestHash: string;
  expectedDigest: string | undefined;
  expectedSizeBytes: number | undefined;
  jobOutputLimitBytes: number;
  signal: AbortSignal | undefined;
}

/**
 * The artifact store (ARCHITECTURE §6): immutable, content-addressed blobs under
 * `<dir>/blobs/sha256/<2 hex>/<64 hex>` (read-only files, one per distinct content), and records with
 * metadata and lineage in SQLite (see ArtifactRecords).
 *
 * Every ingest goes the same way: checks (metadata, idempotency key, inputs, limits) → space reserved →
 * a temporary file written and hashed (TempBlob) → sealed (fsync, read-only) → verified (expected digest
 * and size) → under a per-digest lock, either dropped (the content is already stored: deduplicated) or
 * renamed into place → the record inserted in one transaction with its checks repeated. Any failure, an
 * abort included, removes the temporary file and registers nothing; a crash leaves at most a temporary
 * file or an unreferenced blob, both removed by the next `open`.
 */
export class ArtifactStore {
  readonly blobsDir: string;
  readonly tmpDir: string;
  private readonly records: ArtifactRecords;
  private readonly space: SpaceAccounting;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly digestLocks = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<TempBlob>();
  private closed = false;
  /** What happened since the store opened, for metrics. */
  readonly counters = { created: 0, deleted: 0, ingestedBytes: 0 };
  private readonly onChange: NonNullable<ArtifactStoreOptions['onChange']>;

  private constructor(
    readonly dir: string,
    options: ArtifactStoreOptions,
  ) {
    this.blobsDir = join(dir, 'blobs', 'sha256');
    this.tmpDir = join(dir, 'tmp');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    mkdirSync(this.blobsDir, { recursive: true, mode: 0o755 });
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
    this.records = new ArtifactRecords(join(dir, 'artifacts.db'));
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.onChange = options.onChange ?? (() => undefined);
    this.space = new SpaceAccounting(dir, options.limits, 0, options.freeSpace);
  }

  /** Opens (creating) the store in `options.dir` and reconciles it (see `reconcile`). */
  static async open(options: ArtifactStoreOptions): Promise<ArtifactStore> {
    const store = new ArtifactStore(options.dir, options);
    try {
      await store.reconcile();
    } catch (err) {
      store.records.close();
      throw err;
    }
    return store;
  }

  /** Removes temporary files of writes in flight and closes the database. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.inFlight].map((t) => t.discard()));
    this.records.close();
  }

  // ---- Reads ----

  get(id: string): ArtifactRecord | undefined {
    return this.records.get(id);
  }

  exists(id: string): boolean {
    return this.records.exists(id);
  }

  /** The record; NOT_FOUND / ARTIFACT_NOT_FOUND when there is none. */
  require(id: string): ArtifactRecord {
    const a = this.records.get(id);
    if (!a) throw artifactNotFound(id);
    return a;
  }

  /** Absolute path of the blob holding content `digest` (shared by every record with that digest). */
  blobPath(a: { digest: string }): string {
    const hex = a.digest.slice('sha256:'.length);
    return join(this.blobsDir, hex.slice(0, 2), hex);
  }

  list(q: ListArtifactsQuery): { artifacts: ArtifactRecord[]; nextBeforeSeq: number } {
    return this.records.list(q);
  }

  /** The lineage graph around an existing artifact (NOT_FOUND / ARTIFACT_NOT_FOUND otherwise). */
  lineage(id: string, q: LineageQuery): { graph: LineageGraph; records: Map<string, ArtifactRecord> } {
    this.require(id);
    const graph = this.records.lineage(id, q);
    return { graph, records: this.records.getMany(graph.nodes.map((n) => n.id)) };
  }

  /** Records, distinct blobs and their bytes, from the database. */
  totals(): { artifacts: number; blobs: number; storedBytes: number; logicalBytes: number } {
    return this.records.totals();
  }

  /** Bytes of distinct blobs stored and bytes reserved by writes in flight. */
  usage(): { storedBytes: number; reservedBytes: number } {
    return { storedBytes: this.space.storedBytes, reservedBytes: this.space.reservedBytes };
  }

  /**
   * Reads `length` bytes (0: to the end) of an artifact's content from `offset`, in chunks of at most
   * 256 KiB, each read only when the previous one has been consumed. A read of the whole content is
   * hashed on the way: DATA_LOSS / BLOB_CORRUPTED after the last chunk when it does not match. A blob of
   * the wrong size is BLOB_CORRUPTED before any chunk, a missing one BLOB_MISSING.
   */
  async *read(
    a: ArtifactRecord,
    range: { offset: number; length: number },
  ): AsyncGenerator<{ data: Buffer; offset: number }, void, undefined> {
    const handle = await this.openBlob(a);
    try {
      const { size } = await handle.stat();
      if (size !== a.sizeBytes) {
        this.records.markDamaged(a.digest);
        throw blobCorrupted(a.id, `${a.sizeBytes} bytes`, `${size} bytes`);
      }
      const end = range.length === 0 ? size : Math.min(size, range.offset + range.length);
      const hash = range.offset === 0 && end === size ? createHash('sha256') : undefined;
      let position = range.offset;
      while (position < end) {
        const n = Math.min(READ_CHUNK, end - position);
        const data = Buffer.allocUnsafe(n);
        const { bytesRead } = await handle.read(data, 0, n, position);
        if (bytesRead === 0) throw blobCorrupted(a.id, `${a.sizeBytes} bytes`, `${position} bytes`);
        const chunk = bytesRead === n ? data : data.subarray(0, bytesRead);
        hash?.update(chunk);
        yield { data: chunk, offset: position };
        position += bytesRead;
      }
      if (hash) {
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual !== a.digest) {
          this.records.markDamaged(a.digest);
          throw blobCorrupted(a.id, a.digest, actual);
        }
      }
    } finally {
      await handle.close();
    }
  }

  /** Re-hashes an artifact's blob (DATA_LOSS / BLOB_MISSING when the file is gone). */
  async verify(id: string, signal?: AbortSignal): Promise<VerifyResult> {
    const a = this.require(id);
    const handle = await this.openBlob(a);
    let actual: { digest: string; sizeBytes: number };
    try {
      actual = await hashFile(handle, signal);
    } finally {
      await handle.close();
    }
    const valid = actual.digest === a.digest && actual.sizeBytes === a.sizeBytes;
    if (valid) this.records.markVerified(a.digest, this.now());
    else {
      this.records.markDamaged(a.digest);
      this.log.error(
        { artifactId: id, expected: a.digest, actual: actual.digest, path: this.blobPath(a) },
        'artifacts: a blob no longer matches its digest',
      );
    }
    return {
      valid,
      actualDigest: actual.digest,
      actualSizeBytes: actual.sizeBytes,
      artifact: this.records.get(id) ?? a,
    };
  }

  private async openBlob(a: ArtifactRecord): Promise<FileHandle> {
    try {
      return await open(this.blobPath(a), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw blobMissing(a.id, this.blobPath(a));
      throw err;
    }
  }

  // ---- Writes ----

  /**
   * Imports a host file that must stay inside `source.root` (a job's work directory, an import root):
   * opened only after every escape check (symlinks, hard links, non-regular files; see `openSource`),
   * copied by the kernel into a temporary file, hashed from the copy, and registered. `meta.filename`
   * defaults to the source's base name.
   */
  async importFile(
    source: SourceFile,
    meta: ArtifactMeta,
    opts: IngestOptions = {},
    openOptions: OpenSourceOptions = {},
  ): Promise<IngestResult> {
    const prepared = this.prepare(
      'import',
      source.path,
      { ...meta, filename: meta.filename || basename(source.path) },
      opts,
    );
    if ('replay' in prepared) return prepared.replay;
    const opened = await openSource(source, openOptions);
    let reservation: Reservation | undefined;
    let temp: TempBlob | undefined;
    try {
      try {
        if (prepared.expectedSizeBytes !== undefined && opened.stat.size !== prepared.expectedSizeBytes)
          throw sizeMismatch(prepared.expectedSizeBytes, opened.stat.size);
        reservation = await this.reserve(opened.stat.size, prepared);
        temp = await TempBlob.copy(this.tmpDir, opened.handle, reservation);
      } finally {
        await opened.handle.close();
      }
      return await this.complete(prepared, temp, reservation);
    } catch (err) {
      await temp?.discard();
      reservation?.release();
      throw err;
    }
  }

  /**
   * Starts an upload: checks the metadata, the idempotency key and the limits (the whole expected size
   * is reserved now, so a too-large upload is refused before any byte arrives). The caller writes the
   * content with `write`, then `finish`es it, or `abort`s it on any failure. When the idempotency key
   * names an earlier upload with the same arguments, `replay` holds its result and nothing is written.
   */
  async beginUpload(meta: ArtifactMeta, opts: IngestOptions = {}): Promise<Upload> {
    const prepared = this.prepare('upload', '', meta, opts);
    if ('replay' in prepared) return new Upload(this, prepared.replay);
    const reservation = await this.reserve(prepared.expectedSizeBytes ?? 0, prepared);
    let temp: TempBlob;
    try {
      temp = await TempBlob.create(this.tmpDir, reservation);
    } catch (err) {
      reservation.release();
      throw err;
    }
    this.inFlight.add(temp);
    return new Upload(this, undefined, { prepared, temp, reservation });
  }

  /** @internal Seals, verifies and registers a written temporary blob (see the class comment). */
  async complete(
    prepared: Prepared,
    temp: TempBlob,
    reservation: Reservation,
    gate?: Promise<unknown>,
  ): Promise<IngestResult> {
    this.inFlight.add(temp);
    const stopIfAborted = (): void => {
      if (prepared.signal?.aborted) throw ingestAborted(prepared.signal);
    };
    try {
      stopIfAborted();
      // The gate runs alongside sealing; a rejection must not go unobserved while sealing fails.
      const gated = gate?.then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      const sealed = await temp.seal(prepared.signal);
      const refused = await gated;
      if (refused) throw refused;
      if (prepared.expectedSizeBytes !== undefined && sealed.sizeBytes !== prepared.expectedSizeBytes)
        throw sizeMismatch(prepared.expectedSizeBytes, sealed.sizeBytes);
      if (prepared.expectedDigest !== undefined && sealed.digest !== prepared.expectedDigest)
        throw digestMismatch(prepared.expectedDigest, sealed.digest);
      stopIfAborted();
      return await this.withDigestLock(sealed.digest, () => this.register(prepared, sealed, reservation));
    } catch (err) {
      await temp.discard();
      reservation.release();
      throw err;
    } finally {
      this.inFlight.delete(temp);
    }
  }

  /** @internal Forgets a temporary blob of an aborted upload. */
  async discard(temp: TempBlob, reservation: Reservation): Promise<void> {
    await temp.discard();
    reservation.release();
    this.inFlight.delete(temp);
  }

  /**
   * Deletes a record; its blob goes with the last record referencing it. Lineage edges stay.
   * NOT_FOUND / ARTIFACT_NOT_FOUND when there is no such record.
   */
  async delete(id: string): Promise<ArtifactRecord> {
    const a = this.require(id);
    return this.withDigestLock(a.digest, async () => {
      const done = this.records.delete(id);
      if (!done) throw artifactNotFound(id);
      if (done.lastReference) await this.removeBlob(done.lastReference);
      this.counters.deleted++;
      this.onChange({ kind: 'deleted', artifact: done.record });
      return done.record;
    });
  }

  private async removeBlob(blob: BlobRecord): Promise<void> {
    this.space.released(blob.sizeBytes);
    await unlink(this.blobPath(blob)).catch((err: NodeJS.ErrnoException) => {
      // A blob already missing was reported at start; anything else leaves an orphan for the next start.
      if (err.code !== 'ENOENT')
        this.log.warn({ err, digest: blob.digest }, 'artifacts: could not remove a blob');
    });
  }

  /**
   * The checks before any byte is written: metadata, the idempotency key (a replay returns at once),
   * inputs that must exist, and the job's output quota as far as it is known.
   */
  private prepare(
    kind: 'import' | 'upload',
    source: string,
    meta: ArtifactMeta,
    opts: IngestOptions,
  ): Prepared | { replay: IngestResult } {
    if (this.closed) throw new Error('the artifact store is closed');
    const type =
      meta.type === undefined || meta.type === ArtifactType.ARTIFACT_TYPE_UNSPECIFIED
        ? ArtifactType.ARTIFACT_TYPE_OTHER
        : meta.type;
    const filename = meta.filename ?? '';
    const record: Prepared['record'] = {
      type,
      mediaType: meta.mediaType || guessMediaType(filename),
      labels: meta.labels ?? {},
      jobId: meta.jobId ?? '',
      intentId: meta.intentId ?? '',
      actor: meta.actor,
      derivedFrom: meta.derivedFrom ?? [],
      filename,
      description: meta.description ?? '',
    };
    const v = new Violations();
    checkMetadata(v, record, 'metadata', 'ids');
    const key = opts.idempotencyKey ?? '';
    v.check(
      key === '' || IDEMPOTENCY_KEY.test(key),
      'idempotency_key',
      'must be 1-128 characters of [A-Za-z0-9._:-]',
    );
    v.check(
      opts.expectedDigest === undefined ||
        opts.expectedDigest === '' ||
        DIGEST_PATTERN.test(opts.expectedDigest),
      'expected_digest',
      'must be sha256:<64 lowercase hex digits>',
    );
    v.check(
      opts.expectedSizeBytes === undefined ||
        (Number.isSafeInteger(opts.expectedSizeBytes) && opts.expectedSizeBytes >= 0),
      'expected_size_bytes',
      'must not be negative',
    );
    v.check(record.actor !== '', 'actor', 'must not be empty');
    throwIfInvalid(v);
    const expectedDigest = opts.expectedDigest ? opts.expectedDigest : undefined;
    const requestHash = createHash('sha256')
      .update(
        JSON.stringify([
          kind,
          source,
          { ...record, mediaType: meta.mediaType ?? '', labels: Object.entries(record.labels).sort() },
          expectedDigest ?? '',
          opts.expectedSizeBytes ?? -1,
        ]),
      )
      .digest('hex');
    const prepared: Prepared = {
      record,
      idempotencyKey: key,
      requestHash,
      expectedDigest,
      expectedSizeBytes: opts.expectedSizeBytes,
      jobOutputLimitBytes: record.jobId ? (opts.jobOutputLimitBytes ?? 0) : 0,
      signal: opts.signal,
    };
    const replay = this.replayOf(prepared);
    if (replay) return { replay };
    const missing = this.records.missing(record.derivedFrom);
    if (missing.length > 0) throw artifactNotFound(missing[0]!);
    return prepared;
  }

  /** The earlier result for the same idempotency key (within the window), if the arguments match. */
  private replayOf(p: Prepared): IngestResult | undefined {
    if (!p.idempotencyKey) return undefined;
    const prior = this.records.byIdempotencyKey(p.record.actor, p.idempotencyKey);
    if (!prior) return undefined;
    if (this.now() - prior.createTime > IDEMPOTENCY_WINDOW_MS) {
      this.records.clearIdempotencyKey(prior.id);
      return undefined;
    }
    if (prior.requestHash !== p.requestHash) throw idempotencyKeyReused(p.idempotencyKey, prior.id);
    return { artifact: this.records.get(prior.id)!, deduplicated: true };
  }

  private reserve(bytes: number, p: Prepared): Promise<Reservation> {
    const { jobId } = p.record;
    const limit = p.jobOutputLimitBytes;
    return this.space.reserve(bytes, {
      ...(jobId ? { tag: jobId } : {}),
      ...(limit > 0
        ? { extraCheck: (total: number, others: number) => this.checkJobQuota(jobId, limit, total, others) }
        : {}),
    });
  }

  private checkJobQuota(jobId: string, limit: number, bytes: number, reservedByOthers: number): void {
    const registered = this.records.jobBytes(jobId);
    if (registered + reservedByOthers + bytes > limit)
      throw limitExceeded(
        'JOB_OUTPUT_QUOTA_EXCEEDED',
        `jobs/${jobId} has registered ${registered} bytes of artifacts` +
          (reservedByOthers > 0 ? ` (${reservedByOthers} more in flight)` : '') +
          `; ${bytes} more would exceed its max_output_bytes of ${limit}`,
        { job_id: jobId, limit_bytes: String(limit), registered_bytes: String(registered) },
      );
  }

  /**
   * The second phase, under the digest's lock: keep the stored blob when it is intact (deduplicated) or
   * rename the new one into place, then insert the record with its checks repeated in the same
   * transaction (another request may have used the idempotency key, deleted an input or filled the
   * job's quota meanwhile). A blob placed for a record that then fails is removed again.
   */
  private async register(p: Prepared, sealed: SealedBlob, reservation: Reservation): Promise<IngestResult> {
    const blobPath = this.blobPath(sealed);
    const existing = this.records.blob(sealed.digest);
    const intact =
      existing !== undefined &&
      !existing.damaged &&
      (await stat(blobPath).then(
        (s) => s.size === existing.sizeBytes,
        () => false,
      ));
    if (intact) await unlink(sealed.tempPath);
    else await placeBlob(sealed.tempPath, blobPath);
    const placedNew = !intact && existing === undefined;
    let outcome: { replay: IngestResult } | { id: string; newBlob: boolean };
    try {
      outcome = this.records.transaction(() => {
        const replay = this.replayOf(p);
        if (replay) return { replay };
        const missing = this.records.missing(p.record.derivedFrom);
        if (missing.length > 0) throw artifactNotFound(missing[0]!);
        if (p.jobOutputLimitBytes > 0)
          this.checkJobQuota(p.record.jobId, p.jobOutputLimitBytes, sealed.sizeBytes, 0);
        const now = this.now();
        const id = newId(now);
        const { newBlob } = this.records.insert(
          {
            ...p.record,
            id,
            digest: sealed.digest,
            sizeBytes: sealed.sizeBytes,
            createTime: now,
            idempotencyKey: p.idempotencyKey,
            requestHash: p.requestHash,
          },
          now,
          !intact && existing !== undefined,
        );
        return { id, newBlob };
      });
    } catch (err) {
      if (placedNew) await unlink(blobPath).catch(() => undefined);
      throw err;
    }
    if ('replay' in outcome) {
      if (placedNew) await unlink(blobPath).catch(() => undefined);
      reservation.release();
      return outcome.replay;
    }
    reservation.settle(outcome.newBlob ? sealed.sizeBytes : 0);
    const artifact = this.records.get(outcome.id)!;
    this.counters.created++;
    this.counters.ingestedBytes += artifact.sizeBytes;
    this.onChange({ kind: 'created', artifact, deduplicated: intact });
    return { artifact, deduplicated: intact };
  }

  /** Runs `fn` after every earlier holder of `digest`'s lock: commits and deletes of one blob never interleave. */
  private async withDigestLock<T>(digest: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.digestLocks.get(digest) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.digestLocks.set(digest, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.digestLocks.get(digest) === tail) this.digestLocks.delete(digest);
    }
  }

  /**
   * Start-up repair: removes every temporary file (writes a crash interrupted), makes blob reference
   * counts match the records, removes blob files no record references (a crash between rename and
   * insert, or between delete and unlink), and reports records whose blob is missing (VerifyArtifact
   * and ReadArtifact answer BLOB_MISSING for them).
   */
  private async reconcile(): Promise<void> {
    const temps = await readdir(this.tmpDir);
    await Promise.all(temps.map((t) => rm(join(this.tmpDir, t), { recursive: true, force: true })));
    const { fixed, dropped } = this.records.recountReferences();
    if (fixed > 0)
      this.log.warn({ fixed, dropped: dropped.length }, 'artifacts: blob reference counts repaired');
    const known = new Map(this.records.blobs().map((b) => [b.digest, b]));
    let orphans = 0;
    const seen = new Set<string>();
    for (const shard of await readdir(this.blobsDir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of await readdir(join(this.blobsDir, shard))) {
        const digest = `sha256:${name}`;
        if (DIGEST_PATTERN.test(digest) && name.startsWith(shard) && known.has(digest)) {
          seen.add(digest);
          continue;
        }
        orphans++;
        await rm(join(this.blobsDir, shard, name), { force: true, recursive: true });
      }
    }
    const missing = [...known.values()].filter((b) => !seen.has(b.digest));
    for (const b of missing)
      this.log.error(
        { digest: b.digest, records: b.refs, path: this.blobPath(b) },
        'artifacts: a blob is missing; its artifacts cannot be read (VerifyArtifact reports BLOB_MISSING)',
      );
    this.space.resetStoredBytes(this.records.storedBytes());
    this.log.info(
      {
        dir: this.dir,
        blobs: known.size,
        storedBytes: this.space.storedBytes,
        removedTemporaryFiles: temps.length,
        removedOrphanBlobs: orphans,
        missingBlobs: missing.length,
      },
      'artifacts: ready',
    );
  }
}

/**
 * An upload in progress (see ArtifactStore.beginUpload). `finish` or `abort` ends it; a failed `write`
 * or `finish` has already cleaned up, and `abort` after either is a no-op.
 */
export class Upload {
  private size = 0;
  private ended = false;

  constructor(
    private readonly store: ArtifactStore,
    /** The earlier result, when the idempotency key replays an upload: nothing needs to be sent. */
    readonly replay: IngestResult | undefined,
    private readonly state?: { prepared: Prepared; temp: TempBlob; reservation: Reservation },
  ) {}

  /** Bytes received so far. */
  get sizeBytes(): number {
    return this.size;
  }

  /**
   * Appends a chunk; more than the expected size is INVALID_ARGUMENT / SIZE_MISMATCH at once. A failed
   * write (a limit, the disk) ends the upload: what was written is dropped.
   */
  async write(chunk: Buffer): Promise<void> {
    const s = this.live();
    try {
      const expected = s.prepared.expectedSizeBytes;
      if (expected !== undefined && this.size + chunk.length > expected)
        throw sizeMismatch(expected, `more than ${expected}`);
      this.size += chunk.length;
      await s.temp.append(chunk);
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /**
   * Seals, verifies and registers the content. `gate`, if given, is awaited between sealing and
   * registering (a transport's last chance to call the upload off: a rejection drops everything).
   */
  async finish(gate?: Promise<unknown>): Promise<IngestResult> {
    if (this.replay) return this.replay;
    const s = this.live();
    this.ended = true;
    return this.store.complete(s.prepared, s.temp, s.reservation, gate);
  }

  /** Drops everything written (idempotent). */
  async abort(): Promise<void> {
    if (this.ended || !this.state) return;
    this.ended = true;
    await this.store.discard(this.state.temp, this.state.reservation);
  }

  private live(): { prepared: Prepared; temp: TempBlob; reservation: Reservation } {
    if (!this.state) throw new Error('a replayed upload takes no content');
    if (this.ended) throw new Error('the upload has ended');
    return this.state;
  }
}
