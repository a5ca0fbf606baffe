import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { modelsV1 } from '@aether/proto';

/** A registered ONNX model as cfcd keeps it. */
export interface ModelRecord {
  id: string;
  displayName: string;
  /** `artifacts/{artifact}`, or '' for a model registered from a local file. */
  artifact: string;
  /** `sha256:<hex>` of the model file. */
  digest: string;
  signature: modelsV1.ModelSignature;
  labels: Record<string, string>;
  actor: string;
  trainingRun: string;
  createTime: Date;
  lastUsedTime?: Date;
}

export interface ModelQuery {
  artifact?: string;
  /** Only records with a smaller sequence number (the page token). */
  before?: number;
  limit: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS models (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  artifact     TEXT NOT NULL,
  digest       TEXT NOT NULL,
  signature    BLOB NOT NULL,
  labels       TEXT NOT NULL,
  actor        TEXT NOT NULL,
  training_run TEXT NOT NULL,
  create_ms    INTEGER NOT NULL,
  last_used_ms INTEGER
);
CREATE INDEX IF NOT EXISTS models_artifact ON models (artifact);
`;

interface Row {
  seq: number;
  id: string;
  display_name: string;
  artifact: string;
  digest: string;
  signature: Buffer;
  labels: string;
  actor: string;
  training_run: string;
  create_ms: number;
  last_used_ms: number | null;
}

const recordOf = (r: Row): ModelRecord & { seq: number } => ({
  seq: r.seq,
  id: r.id,
  displayName: r.display_name,
  artifact: r.artifact,
  digest: r.digest,
  signature: modelsV1.ModelSignature.decode(r.signature),
  labels: JSON.parse(r.labels) as Record<string, string>,
  actor: r.actor,
  trainingRun: r.training_run,
  createTime: new Date(r.create_ms),
  ...(r.last_used_ms !== null ? { lastUsedTime: new Date(r.last_used_ms) } : {}),
});

/** The registered models, in SQLite (`<dir>/models.db`, WAL). */
export class ModelStore {
  private readonly db: Database.Database;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dir, 'models.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
  }

  /** Inserts a record; false when the id is taken. */
  insert(m: ModelRecord): boolean {
    const res = this.db
      .prepare(
        `INSERT INTO models (id, display_name, artifact, digest, signature, labels, actor, training_run, create_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
      )
      .run(
        m.id,
        m.displayName,
        m.artifact,
        m.digest,
        Buffer.from(modelsV1.ModelSignature.encode(m.signature).finish()),
        JSON.stringify(m.labels),
        m.actor,
        m.trainingRun,
        m.createTime.getTime(),
      );
    return res.changes === 1;
  }

  get(id: string): ModelRecord | undefined {
    const row = this.db.prepare('SELECT * FROM models WHERE id = ?').get(id) as Row | undefined;
    return row ? recordOf(row) : undefined;
  }

  /** Newest first, each with its sequence number (for page tokens). */
  list(q: ModelQuery): (ModelRecord & { seq: number })[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM models WHERE (? IS NULL OR artifact = ?) AND (? IS NULL OR seq < ?)
         ORDER BY seq DESC LIMIT ?`,
      )
      .all(q.artifact ?? null, q.artifact ?? null, q.before ?? null, q.before ?? null, q.limit) as Row[];
    return rows.map(recordOf);
  }

  touch(id: string, at: Date): void {
    this.db.prepare('UPDATE models SET last_used_ms = ? WHERE id = ?').run(at.getTime(), id);
  }

  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM models WHERE id = ?').run(id).changes === 1;
  }

  /** Whether any record still uses the model file with this digest. */
  digestInUse(digest: string): boolean {
    return this.db.prepare('SELECT 1 FROM models WHERE digest = ? LIMIT 1').get(digest) !== undefined;
  }

  close(): void {
    this.db.close();
  }
}
