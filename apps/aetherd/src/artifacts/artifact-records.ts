import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { artifactsV1 } from '@aether/proto';
import { walkLineage, type LineageGraph, type LineageQuery } from './artifact-lineage';

type ArtifactType = artifactsV1.ArtifactType;

/** One artifact as the store keeps it. Times are milliseconds since the epoch. */
export interface ArtifactRecord {
  id: string;
  /** Insertion order (newest highest); the position a page token carries. */
  seq: number;
  /** `sha256:<hex>`. */
  digest: string;
  sizeBytes: number;
  type: ArtifactType;
  mediaType: string;
  labels: Record<string, string>;
  jobId: string;
  intentId: string;
  actor: string;
  createTime: number;
  /** When the blob was last found to match its digest (when it was stored, or by a verify). */
  verifyTime: number;
  /** Ids of the artifacts this one was derived from, in the order given. */
  derivedFrom: string[];
  filename: string;
  description: string;
}

/** One distinct blob: its size and how many records reference it. */
export interface BlobRecord {
  digest: string;
  sizeBytes: number;
  refs: number;
  verifyTime: number;
  /** Set when a read or verify found the file not matching its digest; the next upload of it repairs it. */
  damaged: boolean;
}

/** A new record, as the store inserts it once its blob is in place. */
export type NewArtifact = Omit<ArtifactRecord, 'seq' | 'verifyTime'> & {
  idempotencyKey: string;
  requestHash: string;
};

export interface ListArtifactsQuery {
  jobId: string;
  intentId: string;
  type: ArtifactType;
  digest: string;
  actor: string;
  /** Records with a seq below this (newest first); 0: from the newest. */
  beforeSeq: number;
  /** Extra filter applied in process (label selectors). */
  accept: (a: ArtifactRecord) => boolean;
  limit: number;
}

interface ArtifactRow {
  seq: number;
  id: string;
  digest: string;
  size_bytes: number;
  type: number;
  media_type: string;
  labels_json: string;
  job_id: string;
  intent_id: string;
  actor: string;
  create_time: number;
  filename: string;
  description: string;
  verify_time: number;
  derived_json: string;
}

interface BlobRow {
  digest: string;
  size_bytes: number;
  refs: number;
  verify_time: number;
  damaged: number;
}

// Lineage edges have no foreign keys on purpose: they outlive the records they name, so a descendant
// still shows where it came from after an input is deleted.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS blobs (
  digest TEXT PRIMARY KEY,
  size_bytes INTEGER NOT NULL,
  refs INTEGER NOT NULL,
  create_time INTEGER NOT NULL,
  verify_time INTEGER NOT NULL,
  damaged INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  digest TEXT NOT NULL REFERENCES blobs(digest),
  size_bytes INTEGER NOT NULL,
  type INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  labels_json TEXT NOT NULL,
  job_id TEXT NOT NULL,
  intent_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  create_time INTEGER NOT NULL,
  filename TEXT NOT NULL,
  description TEXT NOT NULL,
  idempotency_key TEXT NOT NULL DEFAULT '',
  request_hash TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS artifacts_job ON artifacts(job_id, seq);
CREATE INDEX IF NOT EXISTS artifacts_intent ON artifacts(intent_id, seq);
CREATE INDEX IF NOT EXISTS artifacts_actor ON artifacts(actor, seq);
CREATE INDEX IF NOT EXISTS artifacts_digest ON artifacts(digest, seq);
CREATE INDEX IF NOT EXISTS artifacts_type ON artifacts(type, seq);
CREATE UNIQUE INDEX IF NOT EXISTS artifacts_idempotency ON artifacts(actor, idempotency_key)
  WHERE idempotency_key != '';
CREATE TABLE IF NOT EXISTS lineage (
  child_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  parent_id TEXT NOT NULL,
  PRIMARY KEY (child_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent_id, child_id);
`;

const SELECT = `
  SELECT a.seq, a.id, a.digest, a.size_bytes, a.type, a.media_type, a.labels_json, a.job_id, a.intent_id,
         a.actor, a.create_time, a.filename, a.description, b.verify_time,
         (SELECT json_group_array(parent_id) FROM (SELECT parent_id FROM lineage WHERE child_id = a.id ORDER BY n))
           AS derived_json
  FROM artifacts a JOIN blobs b ON b.digest = a.digest`;

/**
 * Artifact records, blob reference counts and lineage edges in SQLite (WAL, synchronous FULL: a
 * registered artifact survives a power cut). Writes are single transactions; reads are synchronous and
 * cheap.
 */
export class ArtifactRecords {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string) {
    this.db = new Database(path);
    chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.stmts = {
      get: this.db.prepare(`${SELECT} WHERE a.id = ?`),
      exists: this.db.prepare('SELECT 1 FROM artifacts WHERE id = ?').pluck(),
      blob: this.db.prepare(
        'SELECT digest, size_bytes, refs, verify_time, damaged FROM blobs WHERE digest = ?',
      ),
      blobs: this.db.prepare('SELECT digest, size_bytes, refs, verify_time, damaged FROM blobs'),
      storedBytes: this.db.prepare('SELECT coalesce(sum(size_bytes), 0) FROM blobs').pluck(),
      totals: this.db.prepare(
        `SELECT (SELECT count(*) FROM artifacts) AS artifacts, (SELECT count(*) FROM blobs) AS blobs,
           (SELECT coalesce(sum(size_bytes), 0) FROM blobs) AS stored_bytes,
           (SELECT coalesce(sum(size_bytes), 0) FROM artifacts) AS logical_bytes`,
      ),
      jobBytes: this.db
        .prepare('SELECT coalesce(sum(size_bytes), 0) FROM artifacts WHERE job_id = ?')
        .pluck(),
      byKey: this.db.prepare(
        'SELECT id, request_hash, create_time FROM artifacts WHERE actor = ? AND idempotency_key = ?',
      ),
      clearKey: this.db.prepare("UPDATE artifacts SET idempotency_key = '' WHERE id = ?"),
      addBlob: this.db.prepare(
        `INSERT INTO blobs (digest, size_bytes, refs, create_time, verify_time) VALUES (@digest, @size, 1, @now, @now)
         ON CONFLICT (digest) DO UPDATE SET refs = refs + 1`,
      ),
      repairedBlob: this.db.prepare('UPDATE blobs SET damaged = 0, verify_time = ? WHERE digest = ?'),
      insert: this.db.prepare(
        `INSERT INTO artifacts (id, digest, size_bytes, type, media_type, labels_json, job_id, intent_id, actor,
           create_time, filename, description, idempotency_key, request_hash)
         VALUES (@id, @digest, @size_bytes, @type, @media_type, @labels_json, @job_id, @intent_id, @actor,
           @create_time, @filename, @description, @idempotency_key, @request_hash)`,
      ),
      addEdge: this.db.prepare('INSERT INTO lineage (child_id, n, parent_id) VALUES (?, ?, ?)'),
      delete: this.db.prepare('DELETE FROM artifacts WHERE id = ?'),
      unref: this.db.prepare('UPDATE blobs SET refs = refs - 1 WHERE digest = ? RETURNING refs').pluck(),
      dropBlob: this.db.prepare('DELETE FROM blobs WHERE digest = ?'),
      verified: this.db.prepare('UPDATE blobs SET verify_time = ?, damaged = 0 WHERE digest = ?'),
      damaged: this.db.prepare('UPDATE blobs SET damaged = 1 WHERE digest = ?'),
      knownIds: this.db
        .prepare('SELECT id FROM artifacts WHERE id IN (SELECT value FROM json_each(?))')
        .pluck(),
      digestRefs: this.db.prepare(
        'SELECT b.digest, b.refs, (SELECT count(*) FROM artifacts a WHERE a.digest = b.digest) AS actual FROM blobs b',
      ),
      fixRefs: this.db.prepare('UPDATE blobs SET refs = ? WHERE digest = ?'),
    };
  }

  close(): void {
    this.db.close();
  }

  /** Runs `fn` in one transaction (nested calls become savepoints). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  get(id: string): ArtifactRecord | undefined {
    const row = this.stmts.get.get(id) as ArtifactRow | undefined;
    return row && fromRow(row);
  }

  exists(id: string): boolean {
    return this.stmts.exists.get(id) !== undefined;
  }

  /** The records among `ids` that exist, by id. */
  getMany(ids: readonly string[]): Map<string, ArtifactRecord> {
    const rows = this.db
      .prepare(`${SELECT} WHERE a.id IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(ids)) as ArtifactRow[];
    return new Map(rows.map((r) => [r.id, fromRow(r)]));
  }

  /** The ids among `ids` with no record. */
  missing(ids: readonly string[]): string[] {
    if (ids.length === 0) return [];
    const known = new Set(this.stmts.knownIds.all(JSON.stringify(ids)) as string[]);
    return ids.filter((id) => !known.has(id));
  }

  blob(digest: string): BlobRecord | undefined {
    const row = this.stmts.blob.get(digest) as BlobRow | undefined;
    return row && blobFromRow(row);
  }

  blobs(): BlobRecord[] {
    return (this.stmts.blobs.all() as BlobRow[]).map(blobFromRow);
  }

  /** Bytes of distinct blobs. */
  storedBytes(): number {
    return this.stmts.storedBytes.get() as number;
  }

  /** Records, distinct blobs, their bytes (each content once) and the records' bytes (duplicates each time). */
  totals(): { artifacts: number; blobs: number; storedBytes: number; logicalBytes: number } {
    const row = this.stmts.totals.get() as {
      artifacts: number;
      blobs: number;
      stored_bytes: number;
      logical_bytes: number;
    };
    return {
      artifacts: row.artifacts,
      blobs: row.blobs,
      storedBytes: row.stored_bytes,
      logicalBytes: row.logical_bytes,
    };
  }

  /** Bytes of every record a job produced (duplicates counted each time: that is what it registered). */
  jobBytes(jobId: string): number {
    return this.stmts.jobBytes.get(jobId) as number;
  }

  byIdempotencyKey(
    actor: string,
    key: string,
  ): { id: string; requestHash: string; createTime: number } | undefined {
    const row = this.stmts.byKey.get(actor, key) as
      { id: string; request_hash: string; create_time: number } | undefined;
    return row && { id: row.id, requestHash: row.request_hash, createTime: row.create_time };
  }

  /** Frees an idempotency key whose window has passed. */
  clearIdempotencyKey(id: string): void {
    this.stmts.clearKey.run(id);
  }

  /**
   * Records a new artifact: takes a reference on its blob (creating the blob's row for new content) and
   * adds its lineage edges. Returns whether the blob's row is new. Call inside `transaction` together with
   * the checks it depends on.
   */
  insert(a: NewArtifact, now: number, repaired: boolean): { newBlob: boolean } {
    const newBlob = this.blob(a.digest) === undefined;
    this.stmts.addBlob.run({ digest: a.digest, size: a.sizeBytes, now });
    if (repaired) this.stmts.repairedBlob.run(now, a.digest);
    this.stmts.insert.run({
      id: a.id,
      digest: a.digest,
      size_bytes: a.sizeBytes,
      type: a.type,
      media_type: a.mediaType,
      labels_json: JSON.stringify(a.labels),
      job_id: a.jobId,
      intent_id: a.intentId,
      actor: a.actor,
      create_time: a.createTime,
      filename: a.filename,
      description: a.description,
      idempotency_key: a.idempotencyKey,
      request_hash: a.requestHash,
    });
    a.derivedFrom.forEach((parent, n) => this.stmts.addEdge.run(a.id, n, parent));
    return { newBlob };
  }

  /**
   * Deletes a record (its lineage edges stay) and drops its blob's reference; returns the record and,
   * when that was the last reference, the blob (whose file the caller removes). Undefined when absent.
   */
  delete(id: string): { record: ArtifactRecord; lastReference: BlobRecord | undefined } | undefined {
    return this.transaction(() => {
      const record = this.get(id);
      if (!record) return undefined;
      this.stmts.delete.run(id);
      const refs = this.stmts.unref.get(record.digest) as number;
      let lastReference: BlobRecord | undefined;
      if (refs <= 0) {
        lastReference = this.blob(record.digest);
        this.stmts.dropBlob.run(record.digest);
      }
      return { record, lastReference };
    });
  }

  /** The blob matched its digest at `time`. */
  markVerified(digest: string, time: number): void {
    this.stmts.verified.run(time, digest);
  }

  /** The blob's file no longer matches its digest. */
  markDamaged(digest: string): void {
    this.stmts.damaged.run(digest);
  }

  /** Makes every blob's reference count what the records say (a repair; normally a no-op). */
  recountReferences(): { fixed: number; dropped: BlobRecord[] } {
    return this.transaction(() => {
      let fixed = 0;
      const dropped: BlobRecord[] = [];
      for (const r of this.stmts.digestRefs.all() as { digest: string; refs: number; actual: number }[]) {
        if (r.refs === r.actual) continue;
        fixed++;
        if (r.actual === 0) {
          dropped.push(this.blob(r.digest)!);
          this.stmts.dropBlob.run(r.digest);
        } else this.stmts.fixRefs.run(r.actual, r.digest);
      }
      return { fixed, dropped };
    });
  }

  list(q: ListArtifactsQuery): { artifacts: ArtifactRecord[]; nextBeforeSeq: number } {
    const where: string[] = [];
    const params: unknown[] = [];
    const eq = (col: string, value: unknown): void => {
      where.push(`a.${col} = ?`);
      params.push(value);
    };
    if (q.jobId) eq('job_id', q.jobId);
    if (q.intentId) eq('intent_id', q.intentId);
    if (q.type) eq('type', q.type);
    if (q.digest) eq('digest', q.digest);
    if (q.actor) eq('actor', q.actor);
    const artifacts: ArtifactRecord[] = [];
    let before = q.beforeSeq > 0 ? q.beforeSeq : Number.MAX_SAFE_INTEGER;
    const cond = [...where, 'a.seq < ?'].join(' AND ');
    // Label selectors are matched in process, so read in batches until the page is full.
    const batch = Math.max(q.limit * 2, 100);
    const page = this.db.prepare(`${SELECT} WHERE ${cond} ORDER BY a.seq DESC LIMIT ?`);
    const more = this.db.prepare(`SELECT 1 FROM artifacts a WHERE ${cond} LIMIT 1`);
    for (;;) {
      const rows = page.all(...params, before, batch) as ArtifactRow[];
      for (const row of rows) {
        before = row.seq;
        const a = fromRow(row);
        if (!q.accept(a)) continue;
        artifacts.push(a);
        if (artifacts.length === q.limit)
          return { artifacts, nextBeforeSeq: more.get(...params, before) ? before : 0 };
      }
      if (rows.length < batch) return { artifacts, nextBeforeSeq: 0 };
    }
  }

  lineage(id: string, q: LineageQuery): LineageGraph {
    return walkLineage(this.db, id, q);
  }
}

function fromRow(row: ArtifactRow): ArtifactRecord {
  return {
    id: row.id,
    seq: row.seq,
    digest: row.digest,
    sizeBytes: row.size_bytes,
    type: row.type,
    mediaType: row.media_type,
    labels: JSON.parse(row.labels_json) as Record<string, string>,
    jobId: row.job_id,
    intentId: row.intent_id,
    actor: row.actor,
    createTime: row.create_time,
    verifyTime: row.verify_time,
    derivedFrom: JSON.parse(row.derived_json) as string[],
    filename: row.filename,
    description: row.description,
  };
}

function blobFromRow(row: BlobRow): BlobRecord {
  return {
    digest: row.digest,
    sizeBytes: row.size_bytes,
    refs: row.refs,
    verifyTime: row.verify_time,
    damaged: row.damaged === 1,
  };
}
