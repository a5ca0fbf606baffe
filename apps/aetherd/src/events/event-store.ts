import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** An idempotency key returns the first event for this long. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;
/** At most this many retention passes are remembered (older ones are merged). */
const MAX_PRUNE_RECORDS = 256;

/** An event before it is recorded: what the emitter said, validated, plus who asked. */
export interface EventDraft {
  type: string;
  source: string;
  subject: string;
  /** JSON of the payload (a google.protobuf.Struct as a plain object); null when none. */
  dataJson: string | null;
  intentId: string;
  jobId: string;
  actor: string;
  requestId: string;
  /** Empty: no idempotency. */
  idempotencyKey: string;
  /** Hash of what the request said, to tell a repeat from a reuse of the key. */
  requestHash: string;
}

/** A recorded event. Times in ms since the epoch. */
export interface StoredEvent {
  seq: number;
  type: string;
  source: string;
  subject: string;
  dataJson: string | null;
  intentId: string;
  jobId: string;
  timeMs: number;
  actor: string;
  requestId: string;
  /** The encoded SubscribeResponse carrying this event, made once and shared by every live subscriber. */
  encoded?: Buffer;
}

interface EventRow {
  seq: number;
  type: string;
  source: string;
  subject: string;
  data: string | null;
  intent_id: string;
  job_id: string;
  time_ms: number;
  actor: string;
  request_id: string;
}

const fromRow = (r: EventRow): StoredEvent => ({
  seq: r.seq,
  type: r.type,
  source: r.source,
  subject: r.subject,
  dataJson: r.data,
  intentId: r.intent_id,
  jobId: r.job_id,
  timeMs: r.time_ms,
  actor: r.actor,
  requestId: r.request_id,
});

/** A filter as SQL: a WHERE fragment (ANDed with the sequence range) and its parameters. */
export interface SqlFilter {
  where: string;
  params: unknown[];
}

/** Thrown inside a write when an idempotency key comes back with a different event. */
export class IdempotencyKeyReused extends Error {
  constructor(readonly key: string) {
    super(`idempotency key ${key} was used for a different event`);
  }
}

/**
 * The persisted event stream: one SQLite database (WAL, synchronous FULL) with the events in sequence
 * order, the idempotency keys of the last 24 hours, and the ranges retention removed. Sequences are
 * assigned here, strictly increasing by one and never reused: the head is kept in a meta row, so it
 * survives retention removing every event and a restart. Event times never decrease either (a clock
 * that steps back repeats the last time), so "the first event at or after a time" is well defined.
 */
export class EventStore {
  private readonly db: Database.Database;
  private readonly stmts;
  /** The newest sequence in a committed transaction. */
  private committedHead: number;
  /** The newest sequence assigned, committed or not. */
  private assignedHead: number;
  private lastTimeMs: number;
  private prunedThrough: number;
  /** Prepared reads by filter shape (a subscriber's filter is compiled once and read many times). */
  private readonly reads = new Map<string, Database.Statement>();

  private constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY,
        type TEXT NOT NULL,
        source TEXT NOT NULL,
        subject TEXT NOT NULL,
        data TEXT,
        intent_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        request_id TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS events_time ON events(time_ms);
      CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq) WHERE job_id != '';
      CREATE INDEX IF NOT EXISTS events_intent ON events(intent_id, seq) WHERE intent_id != '';
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS idempotency (
        actor TEXT NOT NULL,
        key TEXT NOT NULL,
        seq INTEGER NOT NULL,
        request_hash TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (actor, key)
      );
      CREATE TABLE IF NOT EXISTS prunes (
        last_seq INTEGER PRIMARY KEY,
        first_seq INTEGER NOT NULL,
        max_time_ms INTEGER NOT NULL
      );
    `);
    this.stmts = {
      insert: this.db.prepare(
        `INSERT INTO events (seq, type, source, subject, data, intent_id, job_id, time_ms, actor, request_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      get: this.db.prepare('SELECT * FROM events WHERE seq = ?'),
      setMeta: this.db.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      getMeta: this.db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      maxSeq: this.db.prepare('SELECT MAX(seq) FROM events').pluck(),
      maxTime: this.db.prepare('SELECT time_ms FROM events ORDER BY seq DESC LIMIT 1').pluck(),
      minSeq: this.db.prepare('SELECT MIN(seq) FROM events').pluck(),
      key: this.db.prepare(
        'SELECT seq, request_hash AS hash, time_ms AS time FROM idempotency WHERE actor = ? AND key = ?',
      ),
      putKey: this.db.prepare(
        `INSERT INTO idempotency (actor, key, seq, request_hash, time_ms) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (actor, key) DO UPDATE SET seq = excluded.seq, request_hash = excluded.request_hash,
         time_ms = excluded.time_ms`,
      ),
      expireKeys: this.db.prepare('DELETE FROM idempotency WHERE time_ms < ?'),
      firstAtOrAfter: this.db
        .prepare('SELECT seq FROM events WHERE time_ms >= ? ORDER BY time_ms, seq LIMIT 1')
        .pluck(),
      lastBefore: this.db
        .prepare('SELECT seq FROM events WHERE time_ms < ? ORDER BY time_ms DESC, seq DESC LIMIT 1')
        .pluck(),
      deleteThrough: this.db.prepare('DELETE FROM events WHERE seq <= ?'),
      timeOf: this.db.prepare('SELECT time_ms FROM events WHERE seq = ?').pluck(),
      addPrune: this.db.prepare('INSERT INTO prunes (last_seq, first_seq, max_time_ms) VALUES (?, ?, ?)'),
      prunesCount: this.db.prepare('SELECT COUNT(*) FROM prunes').pluck(),
      oldestPrunes: this.db.prepare('SELECT * FROM prunes ORDER BY last_seq LIMIT 2'),
      deletePrune: this.db.prepare('DELETE FROM prunes WHERE last_seq = ?'),
      updatePrune: this.db.prepare('UPDATE prunes SET first_seq = ? WHERE last_seq = ?'),
      prunedFrom: this.db.prepare('SELECT MIN(first_seq) FROM prunes WHERE max_time_ms >= ?').pluck(),
    };
    const storedHead = Number(this.stmts.getMeta.get('head') ?? 0);
    const maxSeq = Number(this.stmts.maxSeq.get() ?? 0);
    this.committedHead = Math.max(storedHead, maxSeq);
    this.assignedHead = this.committedHead;
    this.lastTimeMs = Number(this.stmts.maxTime.get() ?? this.stmts.getMeta.get('last_time') ?? 0);
    const minSeq = this.stmts.minSeq.get() as number | null;
    this.prunedThrough = Math.max(
      Number(this.stmts.getMeta.get('pruned_through') ?? 0),
      minSeq === null ? this.committedHead : minSeq - 1,
    );
  }

  static open(dir: string): EventStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new EventStore(join(dir, 'events.db'));
  }

  close(): void {
    this.db.close();
  }

  /** The newest recorded (committed) sequence; 0 when nothing was ever recorded. */
  get head(): number {
    return this.committedHead;
  }

  /** The oldest stored sequence; `head + 1` when nothing is stored. */
  get oldest(): number {
    return this.prunedThrough + 1;
  }

  get stored(): number {
    return this.committedHead - this.prunedThrough;
  }

  /** Runs `write` in one transaction; sequences it assigned are taken back if it throws. */
  transaction<T>(write: () => T): T {
    const before = this.assignedHead;
    const lastTime = this.lastTimeMs;
    try {
      const result = this.db.transaction(() => {
        const r = write();
        if (this.assignedHead !== before) this.stmts.setMeta.run('head', this.assignedHead);
        return r;
      })();
      this.committedHead = this.assignedHead;
      return result;
    } catch (err) {
      this.assignedHead = before;
      this.lastTimeMs = lastTime;
      throw err;
    }
  }

  /**
   * A savepoint inside {@link transaction}: the drafts are recorded together or not at all. A draft with
   * an idempotency key seen in the last 24 hours gives back the event recorded then.
   */
  appendAll(drafts: readonly EventDraft[], nowMs: number): StoredEvent[] {
    const before = this.assignedHead;
    const lastTime = this.lastTimeMs;
    try {
      return this.db.transaction(() => drafts.map((d) => this.appendOne(d, nowMs)))();
    } catch (err) {
      this.assignedHead = before;
      this.lastTimeMs = lastTime;
      throw err;
    }
  }

  private appendOne(d: EventDraft, nowMs: number): StoredEvent {
    if (d.idempotencyKey) {
      const prior = this.stmts.key.get(d.actor, d.idempotencyKey) as
        { seq: number; hash: string; time: number } | undefined;
      if (prior && prior.time >= nowMs - IDEMPOTENCY_WINDOW_MS) {
        if (prior.hash !== d.requestHash) throw new IdempotencyKeyReused(d.idempotencyKey);
        const first = this.get(prior.seq);
        // Removed by retention since: the repeat is still a repeat, it answers with what is left.
        if (first) return first;
      }
    }
    const seq = ++this.assignedHead;
    const timeMs = Math.max(nowMs, this.lastTimeMs);
    this.lastTimeMs = timeMs;
    this.stmts.insert.run(
      seq,
      d.type,
      d.source,
      d.subject,
      d.dataJson,
      d.intentId,
      d.jobId,
      timeMs,
      d.actor,
      d.requestId,
    );
    if (d.idempotencyKey) this.stmts.putKey.run(d.actor, d.idempotencyKey, seq, d.requestHash, nowMs);
    return {
      seq,
      type: d.type,
      source: d.source,
      subject: d.subject,
      dataJson: d.dataJson,
      intentId: d.intentId,
      jobId: d.jobId,
      timeMs,
      actor: d.actor,
      requestId: d.requestId,
    };
  }

  get(seq: number): StoredEvent | undefined {
    const row = this.stmts.get.get(seq) as EventRow | undefined;
    return row && fromRow(row);
  }

  /**
   * Committed events with `from <= seq <= to` that pass `filter`, ascending, at most `limit`. Reads are
   * synchronous: the head cannot move while one runs.
   */
  read(from: number, to: number, filter: SqlFilter, limit: number): StoredEvent[] {
    const upper = Math.min(to, this.committedHead);
    if (from > upper) return [];
    let stmt = this.reads.get(filter.where);
    if (!stmt) {
      stmt = this.db.prepare(
        `SELECT * FROM events WHERE seq >= ? AND seq <= ?${filter.where ? ` AND ${filter.where}` : ''}
         ORDER BY seq LIMIT ?`,
      );
      if (this.reads.size >= 256) this.reads.clear();
      this.reads.set(filter.where, stmt);
    }
    const rows = stmt.all(from, upper, ...filter.params, limit) as EventRow[];
    return rows.map(fromRow);
  }

  /** The first stored event recorded at or after `timeMs`; undefined when none is. */
  firstAtOrAfter(timeMs: number): number | undefined {
    return (this.stmts.firstAtOrAfter.get(timeMs) as number | undefined) ?? undefined;
  }

  /**
   * The first sequence retention removed that may have been recorded at or after `timeMs` (a subscriber
   * starting at that time missed from there to {@link oldest} - 1); undefined when none was.
   */
  prunedSince(timeMs: number): number | undefined {
    const first = this.stmts.prunedFrom.get(timeMs) as number | null;
    return first ?? undefined;
  }

  /**
   * Removes the oldest events beyond `maxEvents` or older than `maxAgeMs` (0: no such limit), at most
   * `chunk` per call so a large backlog does not stall the daemon; also expires old idempotency keys.
   * Returns how many were removed (call again while it returns `chunk`).
   */
  prune(nowMs: number, maxAgeMs: number, maxEvents: number, chunk: number): number {
    let target = this.prunedThrough;
    if (maxEvents > 0) target = Math.max(target, this.committedHead - maxEvents);
    if (maxAgeMs > 0) {
      const lastOld = this.stmts.lastBefore.get(nowMs - maxAgeMs) as number | undefined;
      if (lastOld !== undefined) target = Math.max(target, lastOld);
    }
    target = Math.min(target, this.prunedThrough + chunk, this.committedHead);
    this.stmts.expireKeys.run(nowMs - IDEMPOTENCY_WINDOW_MS);
    if (target <= this.prunedThrough) return 0;
    const first = this.prunedThrough + 1;
    this.db.transaction(() => {
      const maxTime = Number(this.stmts.timeOf.get(target) ?? nowMs);
      this.stmts.deleteThrough.run(target);
      this.stmts.addPrune.run(target, first, maxTime);
      this.stmts.setMeta.run('pruned_through', target);
      this.stmts.setMeta.run('last_time', this.lastTimeMs);
      if (Number(this.stmts.prunesCount.get()) > MAX_PRUNE_RECORDS) {
        const [a, b] = this.stmts.oldestPrunes.all() as { last_seq: number; first_seq: number }[];
        if (a && b) {
          this.stmts.deletePrune.run(a.last_seq);
          this.stmts.updatePrune.run(a.first_seq, b.last_seq);
        }
      }
    })();
    const removed = target - this.prunedThrough;
    this.prunedThrough = target;
    return removed;
  }

  /** Size of the database files in bytes (for metrics). */
  databaseBytes(): number {
    const pages = Number(this.db.pragma('page_count', { simple: true }));
    const size = Number(this.db.pragma('page_size', { simple: true }));
    return pages * size;
  }
}
