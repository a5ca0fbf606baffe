import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { dateFromTimestamp, intentsV1 } from '@aether/proto';

const { IntentState } = intentsV1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS intents (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  actor TEXT NOT NULL,
  state INTEGER NOT NULL,
  goal_name TEXT NOT NULL,
  create_time INTEGER NOT NULL,
  idempotency_key TEXT,
  request_hash TEXT,
  doc TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS intents_idempotency ON intents (actor, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS intents_state ON intents (state);
`;

/** States an intent never leaves. */
export const TERMINAL_INTENT_STATES: ReadonlySet<intentsV1.IntentState> = new Set([
  IntentState.INTENT_STATE_SUCCEEDED,
  IntentState.INTENT_STATE_FAILED,
  IntentState.INTENT_STATE_DENIED,
  IntentState.INTENT_STATE_CANCELLED,
]);

export function isTerminalIntent(state: intentsV1.IntentState): boolean {
  return TERMINAL_INTENT_STATES.has(state);
}

export interface IntentFilter {
  states: intentsV1.IntentState[];
  actor: string;
  goalName: string;
  startMs?: number;
  endMs?: number;
  /** Only rows with `seq` below this (the page token). */
  beforeSeq?: number;
}

interface Row {
  seq: number;
  doc: string;
  request_hash: string | null;
}

/**
 * Intents in SQLite (WAL, synchronous NORMAL): each intent is one row holding its whole proto JSON, so
 * a write is one statement and a restart reads back exactly what Get returned. Intents are small (a
 * plan of at most a few dozen steps), so rewriting the row on every change costs little.
 */
export class IntentStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dir, 'intents.db'));
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode, as aetherd's job store: a crashed or killed aurorad loses nothing; a power cut
    // can lose the last changes but never corrupts the file. What such a loss can undo is harmless: every
    // step is idempotent by intent and step id and is re-run on resume, and aetherd's own records (jobs,
    // tokens, the audit log of each call) are durable on their side. FULL cost an fsync on aurorad's
    // event loop for each of an intent's ~15 changes.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.stmts = {
      insert: this.db.prepare(
        `INSERT INTO intents (id, actor, state, goal_name, create_time, idempotency_key, request_hash, doc)
         VALUES (@id, @actor, @state, @goal_name, @create_time, @idempotency_key, @request_hash, @doc)`,
      ),
      update: this.db.prepare('UPDATE intents SET state = ?, doc = ? WHERE id = ?'),
      get: this.db.prepare<[string], Row>('SELECT seq, doc, request_hash FROM intents WHERE id = ?'),
      byKey: this.db.prepare<[string, string], Row & { create_time: number }>(
        'SELECT seq, doc, request_hash, create_time FROM intents WHERE actor = ? AND idempotency_key = ?',
      ),
      forgetKey: this.db.prepare(
        'UPDATE intents SET idempotency_key = NULL WHERE actor = ? AND idempotency_key = ?',
      ),
      active: this.db.prepare<[], Row>(
        `SELECT seq, doc, request_hash FROM intents WHERE state IN (${[
          IntentState.INTENT_STATE_PLANNING,
          IntentState.INTENT_STATE_AWAITING_APPROVAL,
          IntentState.INTENT_STATE_RUNNING,
        ].join(',')}) ORDER BY seq`,
      ),
    };
  }

  insert(intent: intentsV1.Intent, idempotencyKey: string, requestHash: string): void {
    this.stmts.insert.run({
      id: intent.id,
      actor: intent.actor,
      state: intent.state,
      goal_name: intent.input?.$case === 'goal' ? intent.input.value.name : '',
      create_time: intent.createTime ? dateFromTimestamp(intent.createTime).getTime() : Date.now(),
      idempotency_key: idempotencyKey || null,
      request_hash: requestHash,
      doc: JSON.stringify(intentsV1.Intent.toJSON(intent)),
    });
  }

  update(intent: intentsV1.Intent): void {
    this.stmts.update.run(intent.state, JSON.stringify(intentsV1.Intent.toJSON(intent)), intent.id);
  }

  get(id: string): intentsV1.Intent | undefined {
    const row = this.stmts.get.get(id);
    return row ? decode(row) : undefined;
  }

  /** The intent an earlier submit with this key made, if within `windowMs`; an older key is forgotten. */
  byIdempotencyKey(
    actor: string,
    key: string,
    windowMs: number,
  ): { intent: intentsV1.Intent; requestHash: string } | undefined {
    const row = this.stmts.byKey.get(actor, key);
    if (!row) return undefined;
    if (Date.now() - row.create_time > windowMs) {
      this.stmts.forgetKey.run(actor, key);
      return undefined;
    }
    return { intent: decode(row), requestHash: row.request_hash ?? '' };
  }

  /** Intents not yet in a terminal state, oldest first (what a restart must resume or fail). */
  active(): intentsV1.Intent[] {
    return this.stmts.active.all().map(decode);
  }

  /**
   * Intents matching the filter, newest first, each with its position (`seq`, the page token), read
   * `batch` rows at a time; the caller stops when it has enough (labels are filtered by the caller).
   */
  *scan(f: IntentFilter, batch = 500): Generator<{ intent: intentsV1.Intent; seq: number }> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const add = (clause: string, value: string | number): void => {
      where.push(clause);
      params.push(value);
    };
    if (f.states.length > 0) {
      where.push(`state IN (${f.states.map(() => '?').join(',')})`);
      params.push(...f.states);
    }
    if (f.actor) add('actor = ?', f.actor);
    if (f.goalName) add('goal_name = ?', f.goalName);
    if (f.startMs !== undefined) add('create_time >= ?', f.startMs);
    if (f.endMs !== undefined) add('create_time < ?', f.endMs);
    const page = this.db.prepare<(string | number)[], Row>(
      `SELECT seq, doc, request_hash FROM intents WHERE ${[...where, 'seq < ?'].join(' AND ')}
       ORDER BY seq DESC LIMIT ?`,
    );
    let before = f.beforeSeq ?? Number.MAX_SAFE_INTEGER;
    for (;;) {
      const rows = page.all(...params, before, batch);
      for (const row of rows) yield { intent: decode(row), seq: row.seq };
      if (rows.length < batch) return;
      before = rows[rows.length - 1]!.seq;
    }
  }

  close(): void {
    this.db.close();
  }
}

function decode(row: Row): intentsV1.Intent {
  return intentsV1.Intent.fromJSON(JSON.parse(row.doc));
}
