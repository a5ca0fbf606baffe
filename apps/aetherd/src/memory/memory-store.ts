import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { status as Status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { memoryV1 } from '@aether/proto';
import { ResourceExhaustedError, RpcError } from '@aether/rpc';
import { newId } from '@aether/rpc';
import { metaTokens } from './filter-tokens';
import { GroupCommit } from './group-commit';
import type { SplitPassage } from './passages';

const { EntryKind } = memoryV1;

/** An idempotency key returns the first result for this long. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

/**
 * A passage's rowid in the full-text index is its version's `seq` times 2^24 plus its index: rowids grow
 * with time (so a time range is a rowid range), and a rowid names its version without a lookup. 2^24
 * passages per version is more than the largest entry can have (256 MiB of text, passages of at least
 * 100 code points); `seq` stays below 2^29 for rowids to be exact JavaScript numbers.
 */
export const PASSAGES_PER_VERSION = 2 ** 24;
export const rowidOf = (seq: number, index: number): number => seq * PASSAGES_PER_VERSION + index;
export const seqOfRowid = (rowid: number): number => Math.floor(rowid / PASSAGES_PER_VERSION);
export const indexOfRowid = (rowid: number): number => rowid % PASSAGES_PER_VERSION;
/**
 * Rowids are bound as integers: better-sqlite3 binds every JavaScript number as REAL, and FTS5 ignores
 * a REAL `rowid = ?` next to MATCH (it returns every match).
 */
const int = (n: number): bigint => BigInt(Math.min(n, 2 ** 62));

const changeOf = (v: VersionMeta): Omit<MemoryChange, 'kind'> => ({
  entryId: v.entryId,
  version: v.version,
  actor: v.actor,
  intentId: v.intentId,
  jobId: v.jobId,
});

/** What a write says about a version (the rest is derived or output only). */
export interface VersionContent {
  title: string;
  text: string;
  /** Deduplicated, valid tags. */
  tags: string[];
  kind: memoryV1.EntryKind;
  references: string[];
  intentId: string;
  jobId: string;
  artifact: string;
  sourceUri: string;
}

/** A stored version, without its text (what listings and citations need). Times in ms since the epoch. */
export interface VersionMeta extends Omit<VersionContent, 'text'> {
  seq: number;
  entryId: string;
  version: number;
  actor: string;
  /** When version 1 was created. */
  createTime: number;
  /** When this version was written; never decreases from one write to the next. */
  updateTime: number;
  deleted: boolean;
  /** Code points in the text. */
  textLength: number;
  textBytes: number;
  /** Where each passage ends, in code points (passage i spans [end(i-1), end(i))). */
  passageEnds: number[];
}

export interface VersionRecord extends VersionMeta {
  text: string;
}

/** A new entry, prepared outside the transaction (validated, split into passages). */
export interface NewEntry {
  content: VersionContent;
  passages: SplitPassage[];
  actor: string;
  idempotencyKey: string;
  /** Hash of the request's content, to tell a repeat from a reuse of the key. */
  requestHash: string;
}

/** Filters of ListEntries (all combine with AND). */
export interface ListFilter {
  tags: string[];
  kind: memoryV1.EntryKind;
  actor: string;
  intentId: string;
  jobId: string;
  artifact: string;
  /** A range of `seq` (from {@link MemoryStore.seqRange}). */
  seqFrom: number;
  seqTo: number;
}

/** A search candidate: a passage and its relevance (the negated bm25 value; higher is better). */
export interface Candidate {
  rowid: number;
  score: number;
}

interface VersionRow {
  seq: number;
  entry_id: string;
  version: number;
  update_time: number;
  create_time: number;
  kind: number;
  deleted: number;
  actor: string;
  intent_id: string;
  job_id: string;
  artifact: string;
  source_uri: string;
  title: string;
  tags: string;
  refs: string;
  text_length: number;
  text_bytes: number;
  passage_ends: string;
  text?: string;
}

const META_COLUMNS = `seq, entry_id, version, update_time, create_time, kind, deleted, actor, intent_id, job_id,
  artifact, source_uri, title, tags, refs, text_length, text_bytes, passage_ends`;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  entry_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  update_time INTEGER NOT NULL,
  create_time INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  actor TEXT NOT NULL,
  intent_id TEXT NOT NULL,
  job_id TEXT NOT NULL,
  artifact TEXT NOT NULL,
  source_uri TEXT NOT NULL,
  title TEXT NOT NULL,
  tags TEXT NOT NULL,
  refs TEXT NOT NULL,
  text_length INTEGER NOT NULL,
  text_bytes INTEGER NOT NULL,
  passage_ends TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_entry ON versions(entry_id, version);
CREATE TABLE IF NOT EXISTS entries (
  id TEXT PRIMARY KEY,
  current_seq INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_recent ON entries(current_seq) WHERE deleted = 0;
CREATE TABLE IF NOT EXISTS idempotency (
  actor TEXT NOT NULL,
  key TEXT NOT NULL,
  entry_id TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  create_time INTEGER NOT NULL,
  PRIMARY KEY (actor, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_entry ON idempotency(entry_id);
CREATE TABLE IF NOT EXISTS store_stats (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  text_bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO store_stats (id, text_bytes) VALUES (1, 0);
-- Passages of current versions carrying each filter token (and, under '', all of them): a filter that
-- every passage carries selects everything, and is left out of the MATCH (see search.ts).
CREATE TABLE IF NOT EXISTS filter_counts (
  token TEXT PRIMARY KEY,
  passages INTEGER NOT NULL
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS passages USING fts5(
  title, text, meta, tokenize = 'unicode61 remove_diacritics 2'
);
`;

/** bm25 weights of the passages' columns: a title match counts twice, the filter tokens not at all. */
const BM25 = 'bm25(passages, 2.0, 1.0, 0.0)';

export interface MemoryStoreOptions {
  /** Total UTF-8 bytes of text the store may hold, all versions; 0: no quota. */
  quotaBytes: number;
  /** Told of every committed add, update and delete (aetherd's event stream). */
  onChange?: (change: MemoryChange) => void;
}

/** A committed change of one entry: `version` is the new version (a tombstone for a delete). */
export interface MemoryChange {
  kind: 'added' | 'updated' | 'deleted';
  entryId: string;
  version: number;
  actor: string;
  intentId: string;
  jobId: string;
  /** For `deleted`: every version was removed. */
  purged?: boolean;
}

/**
 * Memory entries in SQLite (WAL, `synchronous = FULL`): every version of every entry in `versions`, the
 * current version of each in `entries`, and the passages of the current versions in the FTS5 table
 * `passages` (bm25; offline). Writes go through a group commit and resolve once durable; reads are
 * synchronous.
 */
export class MemoryStore {
  private readonly db: Database.Database;
  private readonly writes: GroupCommit;
  private readonly stmts;
  /** The last update time handed out: update times never go backwards, so seq order is time order. */
  private clock: number;

  private constructor(
    /** The database file (`memory.db`; SQLite keeps `memory.db-wal` beside it). */
    readonly path: string,
    private readonly options: MemoryStoreOptions,
  ) {
    this.db = new Database(path);
    // 8 KiB pages (only for a new database: it must precede WAL): FTS5 leaves and versions with a few
    // hundred bytes of text pack better; bulk loads measured about 12 % cheaper than with 4 KiB.
    this.db.pragma('page_size = 8192');
    this.db.pragma('journal_mode = WAL');
    // FULL: the WAL is fsync'ed at every commit, so an acknowledged write survives a crash of the
    // machine too, not only kill -9. Group commit keeps that to one fsync per event-loop turn.
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('temp_store = MEMORY');
    this.db.pragma('cache_size = -32768');
    this.db.exec(SCHEMA);
    // Merge FTS5 segments 8 at a time instead of 4: less merging per write (bulk loads measured about
    // 14 % cheaper), with no measurable cost to queries at 400,000 passages. Stored in the index.
    this.db.exec("INSERT INTO passages (passages, rank) VALUES ('automerge', 8)");
    this.writes = new GroupCommit(this.db, diskError);
    const db = this.db;
    this.stmts = {
      insertVersion: db.prepare(
        `INSERT INTO versions (entry_id, version, update_time, create_time, kind, deleted, actor, intent_id,
           job_id, artifact, source_uri, title, tags, refs, text_length, text_bytes, passage_ends, text)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertEntry: db.prepare('INSERT INTO entries (id, current_seq, deleted) VALUES (?, ?, 0)'),
      setCurrent: db.prepare('UPDATE entries SET current_seq = ?, deleted = ? WHERE id = ?'),
      entry: db.prepare('SELECT current_seq, deleted FROM entries WHERE id = ?'),
      bySeq: db.prepare('SELECT * FROM versions WHERE seq = ?'),
      metaBySeq: db.prepare(`SELECT ${META_COLUMNS} FROM versions WHERE seq = ?`),
      byVersion: db.prepare('SELECT * FROM versions WHERE entry_id = ? AND version = ?'),
      versions: db.prepare(
        'SELECT * FROM versions WHERE entry_id = ? AND version < ? ORDER BY version DESC LIMIT ?',
      ),
      insertPassage: db.prepare('INSERT INTO passages (rowid, title, text, meta) VALUES (?, ?, ?, ?)'),
      deletePassages: db.prepare('DELETE FROM passages WHERE rowid >= ? AND rowid < ?'),
      addCount: db.prepare(
        `INSERT INTO filter_counts (token, passages) VALUES (?, ?)
         ON CONFLICT (token) DO UPDATE SET passages = passages + excluded.passages`,
      ),
      count: db.prepare('SELECT passages FROM filter_counts WHERE token = ?').pluck(),
      idempotency: db.prepare(
        'SELECT entry_id, request_hash, create_time FROM idempotency WHERE actor = ? AND key = ?',
      ),
      putIdempotency: db.prepare(
        `INSERT INTO idempotency (actor, key, entry_id, request_hash, create_time) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (actor, key) DO UPDATE SET entry_id = excluded.entry_id,
           request_hash = excluded.request_hash, create_time = excluded.create_time`,
      ),
      // No RETURNING: better-sqlite3 runs such statements several times slower.
      addBytes: db.prepare('UPDATE store_stats SET text_bytes = text_bytes + ? WHERE id = 1'),
      textBytes: db.prepare('SELECT text_bytes FROM store_stats WHERE id = 1').pluck(),
      purgeBytes: db.prepare('SELECT coalesce(sum(text_bytes), 0) FROM versions WHERE entry_id = ?').pluck(),
      purgeVersions: db.prepare('DELETE FROM versions WHERE entry_id = ?'),
      purgeEntry: db.prepare('DELETE FROM entries WHERE id = ?'),
      purgeIdempotency: db.prepare('DELETE FROM idempotency WHERE entry_id = ?'),
      // The first version at or after a seq (seqs have gaps where versions were purged).
      versionAtOrAfter: db.prepare(
        'SELECT seq, update_time FROM versions WHERE seq >= ? ORDER BY seq LIMIT 1',
      ),
      lastSeq: db
        .prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'versions'), 0)")
        .pluck(),
      lastTime: db.prepare('SELECT coalesce(max(update_time), 0) FROM versions').pluck(),
      highlight: db.prepare(
        'SELECT highlight(passages, 1, ?, ?) AS marked, text FROM passages WHERE passages MATCH ? AND rowid = ?',
      ),
      passageText: db.prepare('SELECT text FROM passages WHERE rowid = ?').pluck(),
      rankPage: db
        .prepare(
          `SELECT rowid, score, count(*) OVER () FROM (
             SELECT rowid, -${BM25} AS score FROM passages
             WHERE passages MATCH ? AND rowid >= ? AND rowid < ? ORDER BY rowid DESC LIMIT ?
           ) ORDER BY score DESC, rowid DESC LIMIT ? OFFSET ?`,
        )
        .raw(),
      rankAll: db
        .prepare(
          `SELECT rowid, score FROM (
             SELECT rowid, -${BM25} AS score FROM passages
             WHERE passages MATCH ? AND rowid >= ? AND rowid < ? ORDER BY rowid DESC LIMIT ?
           ) ORDER BY score DESC, rowid DESC`,
        )
        .raw(),
      countCandidates: db
        .prepare(
          `SELECT count(*) FROM (SELECT rowid FROM passages
             WHERE passages MATCH ? AND rowid >= ? AND rowid < ? ORDER BY rowid DESC LIMIT ?)`,
        )
        .pluck(),
    };
    this.clock = this.stmts.lastTime.get() as number;
  }

  static open(dir: string, options: MemoryStoreOptions): MemoryStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new MemoryStore(join(dir, 'memory.db'), options);
  }

  /** Commits what is queued, then closes the database. */
  close(): void {
    this.writes.flush();
    try {
      this.db.pragma('optimize');
    } catch {
      // Statistics are an optimization; closing matters more.
    }
    this.db.close();
  }

  private now(): number {
    this.clock = Math.max(Date.now(), this.clock);
    return this.clock;
  }

  // ---- writes ---------------------------------------------------------------------------------------

  /** Adds entries (version 1 each) in one transaction: all or none. Resolves once durable. */
  addEntries(entries: readonly NewEntry[]): Promise<VersionRecord[]> {
    const fresh: VersionRecord[] = [];
    const written = this.write(() => {
      let bytes = 0;
      fresh.length = 0;
      const added = entries.map((e) => {
        const r = this.insertNew(e);
        if (r.fresh) {
          bytes += r.record.textBytes;
          fresh.push(r.record);
        }
        return r.record;
      });
      this.chargeBytes(bytes);
      return added;
    });
    const onChange = this.options.onChange;
    if (!onChange) return written;
    return written.then((added) => {
      for (const v of fresh) onChange({ kind: 'added', ...changeOf(v) });
      return added;
    });
  }

  /** Runs a write in the group commit; the filter counts it changed are written at its end. */
  private write<T>(op: () => T): Promise<T> {
    return this.writes.run(() => {
      try {
        const result = op();
        for (const [token, delta] of this.countDeltas) if (delta !== 0) this.stmts.addCount.run(token, delta);
        return result;
      } finally {
        this.countDeltas.clear();
      }
    });
  }

  /** Changes of `filter_counts` by the write in progress. */
  private readonly countDeltas = new Map<string, number>();

  private countPassages(meta: string, passages: number): void {
    if (passages === 0) return;
    for (const token of ['', ...meta.split(' ')])
      this.countDeltas.set(token, (this.countDeltas.get(token) ?? 0) + passages);
  }

  /** Removes a current version's passages from the index. */
  private removePassages(v: VersionMeta): void {
    this.stmts.deletePassages.run(int(rowidOf(v.seq, 0)), int(rowidOf(v.seq + 1, 0)));
    this.countPassages(metaTokens(v.tags, v.actor, v.intentId, v.jobId, v.kind), -v.passageEnds.length);
  }

  /**
   * Writes version N+1 of an entry from its current version (`merge` makes the new content; the
   * passages are split by `split`). Rejects with ENTRY_NOT_FOUND or VERSION_CONFLICT.
   */
  updateEntry(
    id: string,
    expectedVersion: number | undefined,
    actor: string,
    merge: (current: VersionRecord) => VersionContent,
    split: (content: VersionContent) => SplitPassage[],
  ): Promise<VersionRecord> {
    return this.write(() => {
      const current = this.currentOrThrow(id, expectedVersion);
      const content = merge(current);
      const passages =
        content.text === current.text && content.kind === current.kind ? passagesOf(current) : split(content);
      this.chargeBytes(Buffer.byteLength(content.text));
      this.removePassages(current);
      return this.insertVersion(id, current.version + 1, current.createTime, actor, content, passages);
    }).then((v) => {
      this.options.onChange?.({ kind: 'updated', ...changeOf(v) });
      return v;
    });
  }

  /**
   * Deletes an entry: a tombstone version (title, tags, kind and references carried over, no text), or
   * with `purge` every version, its passages and its idempotency keys.
   */
  deleteEntry(
    id: string,
    expectedVersion: number | undefined,
    purge: boolean,
    tombstone: { actor: string; intentId: string; jobId: string },
  ): Promise<void> {
    let version = 0;
    return this.write(() => {
      const row = this.stmts.entry.get(id) as { current_seq: number; deleted: number } | undefined;
      if (!row || (row.deleted && !purge)) throw entryNotFound(id);
      const current = this.versionBySeq(row.current_seq)!;
      if (expectedVersion !== undefined && expectedVersion !== current.version)
        throw versionConflict(id, expectedVersion, current.version);
      if (!row.deleted) this.removePassages(current);
      version = current.version + (purge ? 0 : 1);
      if (purge) {
        const bytes = this.stmts.purgeBytes.get(id) as number;
        this.stmts.purgeVersions.run(id);
        this.stmts.purgeEntry.run(id);
        this.stmts.purgeIdempotency.run(id);
        this.stmts.addBytes.run(-bytes);
        return;
      }
      const { seq } = this.writeVersionRow(
        id,
        current.version + 1,
        current.createTime,
        tombstone.actor,
        {
          ...current,
          text: '',
          intentId: tombstone.intentId,
          jobId: tombstone.jobId,
          artifact: '',
          sourceUri: '',
        },
        [],
        true,
      );
      this.stmts.setCurrent.run(seq, 1, id);
    }).then(() =>
      this.options.onChange?.({
        kind: 'deleted',
        entryId: id,
        version,
        ...tombstone,
        ...(purge ? { purged: true } : {}),
      }),
    );
  }

  /** Adds one entry, or finds the one its idempotency key made (`fresh` false). */
  private insertNew(e: NewEntry): { record: VersionRecord; fresh: boolean } {
    const now = this.now();
    if (e.idempotencyKey) {
      const prior = this.stmts.idempotency.get(e.actor, e.idempotencyKey) as
        { entry_id: string; request_hash: string; create_time: number } | undefined;
      if (prior && now - prior.create_time < IDEMPOTENCY_WINDOW_MS) {
        if (prior.request_hash !== e.requestHash)
          throw new RpcError(
            Status.ALREADY_EXISTS,
            'IDEMPOTENCY_KEY_REUSED',
            `idempotency key ${JSON.stringify(e.idempotencyKey)} was used for entries/${prior.entry_id} with different content`,
            { metadata: { entry: `entries/${prior.entry_id}` } },
          );
        const first = this.version(prior.entry_id, 1);
        if (first) return { record: first, fresh: false };
      }
    }
    const id = newId(now);
    const record = this.insertVersion(id, 1, now, e.actor, e.content, e.passages, true);
    if (e.idempotencyKey) this.stmts.putIdempotency.run(e.actor, e.idempotencyKey, id, e.requestHash, now);
    return { record, fresh: true };
  }

  /**
   * Counts a write's text against the quota, once per write (inside the write's savepoint, so a write
   * that fails gives it back).
   */
  private chargeBytes(bytes: number): void {
    if (bytes === 0) return;
    const total = (this.stmts.textBytes.get() as number) + bytes;
    this.stmts.addBytes.run(bytes);
    const quota = this.options.quotaBytes;
    if (quota > 0 && total > quota)
      throw new ResourceExhaustedError(
        `the memory store's quota of ${quota} bytes of text would be exceeded (${total - bytes} stored, ${bytes} more)`,
        'STORE_QUOTA_EXCEEDED',
        { quota_bytes: String(quota), stored_bytes: String(total - bytes) },
      );
  }

  private insertVersion(
    id: string,
    version: number,
    createTime: number,
    actor: string,
    content: VersionContent,
    passages: readonly SplitPassage[],
    isNew = false,
  ): VersionRecord {
    const row = this.writeVersionRow(id, version, createTime, actor, content, passages, false);
    if (isNew) this.stmts.insertEntry.run(id, row.seq);
    else this.stmts.setCurrent.run(row.seq, 0, id);
    const meta = metaTokens(content.tags, actor, content.intentId, content.jobId, content.kind);
    this.countPassages(meta, passages.length);
    for (let i = 0; i < passages.length; i++)
      this.stmts.insertPassage.run(int(rowidOf(row.seq, i)), content.title, passages[i]!.text, meta);
    return {
      title: content.title,
      text: content.text,
      tags: content.tags,
      kind: content.kind,
      references: content.references,
      intentId: content.intentId,
      jobId: content.jobId,
      artifact: content.artifact,
      sourceUri: content.sourceUri,
      seq: row.seq,
      entryId: id,
      version,
      actor,
      createTime,
      updateTime: row.updateTime,
      deleted: false,
      textLength: row.textLength,
      textBytes: row.textBytes,
      passageEnds: row.passageEnds,
    };
  }

  private writeVersionRow(
    id: string,
    version: number,
    createTime: number,
    actor: string,
    content: VersionContent,
    passages: readonly SplitPassage[],
    deleted: boolean,
  ): { seq: number; updateTime: number; textLength: number; textBytes: number; passageEnds: number[] } {
    const updateTime = version === 1 ? createTime : this.now();
    const passageEnds = passages.map((p) => p.charEnd);
    const textLength = passageEnds.length ? passageEnds[passageEnds.length - 1]! : 0;
    const textBytes = Buffer.byteLength(content.text);
    // Positional parameters, in the column order of the statement (cheaper to bind than named ones).
    const info = this.stmts.insertVersion.run(
      id,
      version,
      updateTime,
      createTime,
      content.kind,
      deleted ? 1 : 0,
      actor,
      content.intentId,
      content.jobId,
      content.artifact,
      content.sourceUri,
      content.title,
      JSON.stringify(content.tags),
      JSON.stringify(content.references),
      textLength,
      textBytes,
      JSON.stringify(passageEnds),
      content.text,
    );
    const seq = Number(info.lastInsertRowid);
    if (seq >= 2 ** 29) throw new Error('the memory store ran out of version numbers (2^29)');
    return { seq, updateTime, textLength, textBytes, passageEnds };
  }

  // ---- reads ----------------------------------------------------------------------------------------

  private versionBySeq(seq: number): VersionRecord | undefined {
    const row = this.stmts.bySeq.get(seq) as VersionRow | undefined;
    return row && fromRow(row);
  }

  /** The current version's metadata (no text) by seq, for citations. */
  metaBySeq(seq: number): VersionMeta | undefined {
    const row = this.stmts.metaBySeq.get(seq) as VersionRow | undefined;
    return row && fromRow(row);
  }

  /** The current version of an entry; undefined when it does not exist or is deleted. */
  current(id: string): VersionRecord | undefined {
    const row = this.stmts.entry.get(id) as { current_seq: number; deleted: number } | undefined;
    if (!row || row.deleted) return undefined;
    return this.versionBySeq(row.current_seq);
  }

  /** The latest version whatever it is (a tombstone included); undefined when never written or purged. */
  latest(id: string): VersionRecord | undefined {
    const row = this.stmts.entry.get(id) as { current_seq: number } | undefined;
    return row && this.versionBySeq(row.current_seq);
  }

  private currentOrThrow(id: string, expectedVersion: number | undefined): VersionRecord {
    const current = this.current(id);
    if (!current) throw entryNotFound(id);
    if (expectedVersion !== undefined && expectedVersion !== current.version)
      throw versionConflict(id, expectedVersion, current.version);
    return current;
  }

  version(id: string, version: number): VersionRecord | undefined {
    const row = this.stmts.byVersion.get(id, version) as VersionRow | undefined;
    return row && fromRow(row);
  }

  /** Versions older than `beforeVersion`, newest first. */
  versions(id: string, beforeVersion: number, limit: number): VersionRecord[] {
    return (this.stmts.versions.all(id, beforeVersion, limit) as VersionRow[]).map(fromRow);
  }

  /** How many passages of current versions carry a filter token (`''`: all passages). */
  filterCount(token: string): number {
    return (this.stmts.count.get(token) as number | undefined) ?? 0;
  }

  /** Current (non-deleted) entries, stored versions and indexed passages, for metrics. */
  counts(): { entries: number; versions: number; passages: number } {
    return {
      entries: this.db.prepare('SELECT count(*) FROM entries WHERE deleted = 0').pluck().get() as number,
      versions: this.db.prepare('SELECT count(*) FROM versions').pluck().get() as number,
      passages: this.filterCount(''),
    };
  }

  /** Total UTF-8 bytes of text held, all versions. */
  textBytes(): number {
    return this.stmts.textBytes.get() as number;
  }

  /** The highest seq written so far (0 for an empty store). */
  lastSeq(): number {
    return this.stmts.lastSeq.get() as number;
  }

  /**
   * The seqs of versions written in `[startMs, endMs)`: `[from, to)`. Update times never decrease with
   * seq, so the range is contiguous.
   */
  seqRange(startMs: number | undefined, endMs: number | undefined): { from: number; to: number } {
    return {
      from: startMs === undefined ? 0 : this.firstSeqAt(startMs),
      to: endMs === undefined ? Number.MAX_SAFE_INTEGER : this.firstSeqAt(endMs),
    };
  }

  /**
   * The seq of the first version written at or after `ms` (MAX_SAFE_INTEGER when none), by binary
   * search over seq: update times never decrease with seq, so no index on them is needed (one index
   * write less per version) and about 20 lookups find it among a million versions.
   */
  private firstSeqAt(ms: number): number {
    const at = (seq: number): { seq: number; update_time: number } | undefined =>
      this.stmts.versionAtOrAfter.get(seq) as { seq: number; update_time: number } | undefined;
    let lo = 0;
    let hi = this.lastSeq() + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const v = at(mid);
      if (v === undefined || v.update_time >= ms) hi = mid;
      else lo = v.seq + 1;
    }
    return at(lo)?.seq ?? Number.MAX_SAFE_INTEGER;
  }

  /** Current versions, most recently updated first, with seq below `beforeSeq`. */
  list(filter: ListFilter, beforeSeq: number, limit: number): VersionRecord[] {
    const where = ['e.deleted = 0', 'e.current_seq < ?', 'e.current_seq >= ?'];
    const params: unknown[] = [Math.min(beforeSeq, filter.seqTo), filter.seqFrom];
    const eq = (column: string, value: string | number): void => {
      where.push(`v.${column} = ?`);
      params.push(value);
    };
    if (filter.kind !== EntryKind.ENTRY_KIND_UNSPECIFIED) eq('kind', filter.kind);
    if (filter.actor) eq('actor', filter.actor);
    if (filter.intentId) eq('intent_id', filter.intentId);
    if (filter.jobId) eq('job_id', filter.jobId);
    if (filter.artifact) eq('artifact', filter.artifact);
    for (const tag of filter.tags) {
      where.push('EXISTS (SELECT 1 FROM json_each(v.tags) WHERE value = ?)');
      params.push(tag);
    }
    const sql = `SELECT v.* FROM entries e JOIN versions v ON v.seq = e.current_seq
      WHERE ${where.join(' AND ')} ORDER BY e.current_seq DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, limit) as VersionRow[]).map(fromRow);
  }

  // ---- search -----------------------------------------------------------------------------------------

  /**
   * Ranks the newest `cap` passages that match `match` within `[fromRowid, toRowid)` by bm25 and returns
   * those at `[offset, offset + limit)` of that ranking (ties: newer first), with the number of
   * candidates. Throws SqliteError for a query FTS5 cannot run (the caller checked it first).
   */
  rankPage(
    match: string,
    fromRowid: number,
    toRowid: number,
    cap: number,
    offset: number,
    limit: number,
  ): { page: Candidate[]; candidates: number } {
    const rows = this.stmts.rankPage.all(match, int(fromRowid), int(toRowid), cap, limit, offset) as [
      number,
      number,
      number,
    ][];
    const candidates =
      rows.length > 0
        ? rows[0]![2]
        : offset === 0
          ? 0
          : (this.stmts.countCandidates.get(match, int(fromRowid), int(toRowid), cap) as number);
    return { page: rows.map(([rowid, score]) => ({ rowid, score })), candidates };
  }

  /** Every candidate (at most `cap`, the newest), ranked by bm25 best first: for fusion with another ranking. */
  rankAll(match: string, fromRowid: number, toRowid: number, cap: number): Candidate[] {
    return (this.stmts.rankAll.all(match, int(fromRowid), int(toRowid), cap) as [number, number][]).map(
      ([rowid, score]) => ({ rowid, score }),
    );
  }

  /**
   * A matching passage with each match wrapped in `open`/`close` (FTS5 `highlight()` on the text column),
   * and its text as stored; undefined when the passage is gone.
   */
  highlight(
    match: string,
    rowid: number,
    open: string,
    close: string,
  ): { marked: string; text: string } | undefined {
    return this.stmts.highlight.get(open, close, match, int(rowid)) as
      { marked: string; text: string } | undefined;
  }

  /** A passage's text as indexed. */
  passageText(rowid: number): string | undefined {
    return this.stmts.passageText.get(int(rowid)) as string | undefined;
  }

  /** Merges the full-text index's segments into one (for a store that was bulk-loaded). */
  optimize(): void {
    this.db.exec("INSERT INTO passages (passages) VALUES ('optimize')");
  }
}

function passagesOf(v: VersionRecord): SplitPassage[] {
  let startU = 0;
  let start = 0;
  return v.passageEnds.map((end) => {
    let u = startU;
    for (let n = start; n < end; n++) {
      const c = v.text.charCodeAt(u);
      u += c >= 0xd800 && c <= 0xdbff && u + 1 < v.text.length ? 2 : 1;
    }
    const p = { charStart: start, charEnd: end, text: v.text.slice(startU, u) };
    startU = u;
    start = end;
    return p;
  });
}

function fromRow(row: VersionRow): VersionRecord {
  return {
    seq: row.seq,
    entryId: row.entry_id,
    version: row.version,
    updateTime: row.update_time,
    createTime: row.create_time,
    kind: row.kind,
    deleted: row.deleted === 1,
    actor: row.actor,
    intentId: row.intent_id,
    jobId: row.job_id,
    artifact: row.artifact,
    sourceUri: row.source_uri,
    title: row.title,
    tags: JSON.parse(row.tags) as string[],
    references: JSON.parse(row.refs) as string[],
    textLength: row.text_length,
    textBytes: row.text_bytes,
    passageEnds: JSON.parse(row.passage_ends) as number[],
    text: row.text ?? '',
  };
}

export function entryNotFound(id: string): RpcError {
  return new RpcError(Status.NOT_FOUND, 'ENTRY_NOT_FOUND', `entries/${id} not found`, {
    metadata: { entry: `entries/${id}` },
  });
}

function versionConflict(id: string, expected: number, current: number): RpcError {
  return new RpcError(
    Status.ABORTED,
    'VERSION_CONFLICT',
    `entries/${id} is at version ${current}, not the expected ${expected}`,
    { metadata: { entry: `entries/${id}`, current_version: String(current) } },
  );
}

/** A full disk is the caller's RESOURCE_EXHAUSTED / DISK_FULL; anything else stays itself. */
function diskError(err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (code === 'SQLITE_FULL')
    return new ResourceExhaustedError('the memory store’s disk is full', 'DISK_FULL');
  return err;
}
