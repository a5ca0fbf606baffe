import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { modelsV1 } from '@aether/proto';

/** Metric points kept per run; beyond that the older history is thinned (every other point dropped). */
export const MAX_METRIC_POINTS = 10_000;

/** cfcd's bookkeeping of a run beyond the TrainingRun message. */
export interface RunRecord {
  seq: number;
  run: modelsV1.TrainingRun;
  /** Where the stdout follower resumes in the job's combined log. */
  logOffset: bigint;
  /** StopTrainingRun was called: the job's end reads as STOPPED. */
  stopRequested: boolean;
}

export interface RunQuery {
  before?: number;
  limit: number;
  states: modelsV1.TrainingRunState[];
  template?: string;
  intentId?: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  state          INTEGER NOT NULL,
  template       TEXT NOT NULL,
  intent_id      TEXT NOT NULL,
  actor          TEXT NOT NULL,
  idem_key       TEXT,
  create_ms      INTEGER NOT NULL,
  run            BLOB NOT NULL,
  log_offset     INTEGER NOT NULL DEFAULT 0,
  stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_idem ON runs (actor, idem_key) WHERE idem_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL,
  seq    INTEGER NOT NULL,
  step   INTEGER NOT NULL,
  point  BLOB NOT NULL,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
`;

interface Row {
  seq: number;
  run: Buffer;
  log_offset: number | bigint;
  stop_requested: number;
}

const recordOf = (r: Row): RunRecord => ({
  seq: r.seq,
  run: modelsV1.TrainingRun.decode(r.run),
  logOffset: BigInt(r.log_offset),
  stopRequested: r.stop_requested === 1,
});

const encode = (run: modelsV1.TrainingRun): Buffer =>
  Buffer.from(modelsV1.TrainingRun.encode({ ...run, metrics: [] }).finish());

/**
 * Training runs in SQLite (`<dir>/training.db`, WAL): the run as its proto message (without metrics),
 * the metric points in their own table, the log offset the follower has consumed.
 */
export class TrainingStore {
  private readonly db: Database.Database;
  private readonly nextMetricSeq = new Map<string, number>();

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dir, 'training.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.defaultSafeIntegers(false);
    this.db.exec(SCHEMA);
  }

  /** Inserts a new run; returns the existing run id instead when (actor, key) was used before. */
  insert(run: modelsV1.TrainingRun, idempotencyKey: string, createTime: Date): string {
    if (idempotencyKey !== '') {
      const prior = this.db
        .prepare('SELECT id FROM runs WHERE actor = ? AND idem_key = ?')
        .get(run.actor, idempotencyKey) as { id: string } | undefined;
      if (prior) return prior.id;
    }
    this.db
      .prepare(
        `INSERT INTO runs (id, state, template, intent_id, actor, idem_key, create_ms, run)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        run.id,
        run.state,
        run.spec?.template ?? '',
        run.intentId,
        run.actor,
        idempotencyKey === '' ? null : idempotencyKey,
        createTime.getTime(),
        encode(run),
      );
    return run.id;
  }

  update(run: modelsV1.TrainingRun): void {
    this.db.prepare('UPDATE runs SET state = ?, run = ? WHERE id = ?').run(run.state, encode(run), run.id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM runs WHERE id = ?').run(id);
    this.db.prepare('DELETE FROM metrics WHERE run_id = ?').run(id);
  }

  get(id: string): RunRecord | undefined {
    const row = this.db
      .prepare('SELECT seq, run, log_offset, stop_requested FROM runs WHERE id = ?')
      .get(id) as Row | undefined;
    return row ? recordOf(row) : undefined;
  }

  /** Newest first. */
  list(q: RunQuery): RunRecord[] {
    const states = q.states.length > 0 ? JSON.stringify(q.states) : null;
    const rows = this.db
      .prepare(
        `SELECT seq, run, log_offset, stop_requested FROM runs
         WHERE (@before IS NULL OR seq < @before)
           AND (@states IS NULL OR state IN (SELECT value FROM json_each(@states)))
           AND (@template IS NULL OR template = @template) AND (@intent IS NULL OR intent_id = @intent)
         ORDER BY seq DESC LIMIT @limit`,
      )
      .all({
        before: q.before ?? null,
        states,
        template: q.template ?? null,
        intent: q.intentId ?? null,
        limit: q.limit,
      }) as Row[];
    return rows.map(recordOf);
  }

  /** Runs not yet terminal: the ones to follow again after a restart. */
  unfinished(): RunRecord[] {
    const rows = this.db
      .prepare('SELECT seq, run, log_offset, stop_requested FROM runs WHERE state IN (1, 2, 3) ORDER BY seq')
      .all() as Row[];
    return rows.map(recordOf);
  }

  setStopRequested(id: string): void {
    this.db.prepare('UPDATE runs SET stop_requested = 1 WHERE id = ?').run(id);
  }

  /** Appends metric points and records how far the log has been read, in one transaction. */
  appendMetrics(id: string, points: modelsV1.TrainingMetricPoint[], logOffset: bigint): void {
    const insert = this.db.prepare('INSERT INTO metrics (run_id, seq, step, point) VALUES (?, ?, ?, ?)');
    const tx = this.db.transaction(() => {
      let seq = this.metricSeq(id);
      for (const p of points)
        insert.run(id, seq++, Number(p.step), Buffer.from(modelsV1.TrainingMetricPoint.encode(p).finish()));
      this.nextMetricSeq.set(id, seq);
      this.db.prepare('UPDATE runs SET log_offset = ? WHERE id = ?').run(logOffset, id);
      this.thin(id);
    });
    tx();
  }

  /** The metric points after a step (all of them for -1 or less), in order. */
  metrics(id: string, afterStep = -1n): modelsV1.TrainingMetricPoint[] {
    const rows = this.db
      .prepare('SELECT point FROM metrics WHERE run_id = ? AND step > ? ORDER BY seq')
      .all(id, afterStep < -1n ? -1 : Number(afterStep)) as { point: Buffer }[];
    return rows.map((r) => modelsV1.TrainingMetricPoint.decode(r.point));
  }

  lastMetric(id: string): modelsV1.TrainingMetricPoint | undefined {
    const row = this.db
      .prepare('SELECT point FROM metrics WHERE run_id = ? ORDER BY seq DESC LIMIT 1')
      .get(id) as { point: Buffer } | undefined;
    return row ? modelsV1.TrainingMetricPoint.decode(row.point) : undefined;
  }

  close(): void {
    this.db.close();
  }

  private metricSeq(id: string): number {
    const known = this.nextMetricSeq.get(id);
    if (known !== undefined) return known;
    const row = this.db.prepare('SELECT MAX(seq) AS m FROM metrics WHERE run_id = ?').get(id) as {
      m: number | null;
    };
    return (row.m ?? -1) + 1;
  }

  /** Above the cap, drops every other point of the older history; the latest point always stays. */
  private thin(id: string): void {
    const { n } = this.db.prepare('SELECT COUNT(*) AS n FROM metrics WHERE run_id = ?').get(id) as {
      n: number;
    };
    if (n <= MAX_METRIC_POINTS) return;
    this.db
      .prepare(
        `DELETE FROM metrics WHERE run_id = @id AND seq IN (
           SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) AS rn FROM metrics WHERE run_id = @id)
           WHERE rn % 2 = 0 AND seq < (SELECT MAX(seq) FROM metrics WHERE run_id = @id))`,
      )
      .run({ id });
  }
}
