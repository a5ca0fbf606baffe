import type Database from 'better-sqlite3';

interface Pending {
  run: () => unknown;
  resolve: (value: never) => void;
  reject: (err: unknown) => void;
  outcome?: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/**
 * Group commit: writes that arrive in the same turn of the event loop share one transaction and so one
 * fsync of the WAL (`synchronous = FULL`), instead of one each. Each write runs in a savepoint of its
 * own, so one that throws (a version conflict, a quota) is rolled back alone and fails alone; the
 * others commit. Every promise settles only after the COMMIT returned, i.e. once the write is durable.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly batch: (ops: Pending[]) => void;
  private readonly one: (op: Pending) => unknown;

  constructor(
    db: Database.Database,
    /** Turns a database error (disk full, I/O error) into the error a caller gets. */
    private readonly mapError: (err: unknown) => unknown = (err) => err,
  ) {
    // better-sqlite3 runs a transaction function called inside another as a SAVEPOINT.
    this.one = db.transaction((op: Pending) => op.run());
    this.batch = db.transaction((ops: Pending[]) => {
      for (const op of ops) {
        try {
          op.outcome = { ok: true, value: this.one(op) };
        } catch (error) {
          op.outcome = { ok: false, error: this.mapError(error) };
        }
      }
    });
  }

  /** Runs `write` in the next group transaction; resolves with its result once that is committed. */
  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: write, resolve: resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits what is queued now (also called on close, so nothing queued is dropped). */
  flush(): void {
    this.scheduled = false;
    const ops = this.queue;
    this.queue = [];
    if (ops.length === 0) return;
    try {
      this.batch(ops);
    } catch (err) {
      const error = this.mapError(err);
      for (const op of ops) op.reject(error);
      return;
    }
    for (const op of ops) {
      const o = op.outcome!;
      if (o.ok) op.resolve(o.value as never);
      else op.reject(o.error);
    }
  }
}
