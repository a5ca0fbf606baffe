import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isTerminalJobState, jobsV1 } from '@aether/proto';

const { JobState, JobEventType } = jobsV1;
type JobState = jobsV1.JobState;
type JobEventType = jobsV1.JobEventType;

/** States a job never leaves. */
export const isTerminal = isTerminalJobState;

/** Most events kept per job; later SIGNALLED events are folded into the last one (see the contract). */
export const MAX_EVENTS_PER_JOB = 1024;

/** A job was recorded (no `previous`) or its state changed from `previous` to `job.state`. */
export interface JobChange {
  job: JobRecord;
  previous?: JobState;
}

export interface JobExit {
  code?: number;
  signal?: string;
  oomKilled: boolean;
}

export interface JobUsage {
  cpuUserMs: number;
  cpuSystemMs: number;
  peakMemoryBytes: number;
  currentMemoryBytes: number;
  currentPids: number;
  ioReadBytes: number;
  ioWriteBytes: number;
  wallMs: number;
  sampleTime: number;
}

/** A stop in progress: what asked for it and when SIGKILL follows. */
export interface JobStop {
  kind: 'stop' | 'kill' | 'timeout';
  requestedAt: number;
  killAt: number;
  signal: string;
  actor: string;
  escalated: boolean;
}

/** Where the stored log starts, after older output was punched away (see logs/job-log.ts). */
export interface StoredLogCheckpoint {
  startFilePos: number;
  startOffset: number;
  stdoutBefore: number;
  stderrBefore: number;
}

export interface JobEventRecord {
  time: number;
  type: JobEventType;
  message: string;
  actor: string;
}

/** One job as aetherd keeps it. Times are milliseconds since the epoch. */
export interface JobRecord {
  id: string;
  seq: number;
  state: JobState;
  actor: string;
  intentId: string;
  /** The spec as it runs: defaults filled in. */
  spec: jobsV1.JobSpec;
  createTime: number;
  startTime?: number;
  endTime?: number;
  exit?: JobExit;
  failureReason: string;
  usage?: JobUsage;
  pid: number;
  monitorPid: number;
  runtime: string;
  idempotencyKey: string;
  specHash: string;
  stop?: JobStop;
  /** When the runtime limit elapses (set once RUNNING). */
  timeoutAt?: number;
  logCheckpoint?: StoredLogCheckpoint;
  stdoutBytes: number;
  stderrBytes: number;
  logStartOffset: number;
  outputArtifacts: string[];
  /** True once the container, cgroup, bundle and monitor files are gone. */
  cleanedUp: boolean;
}

export interface ListJobsQuery {
  states: JobState[];
  intentId: string;
  actor: string;
  /** Rows with a seq below this (newest first); 0: from the newest. */
  beforeSeq: number;
  /** Extra filter applied in process (label selectors). */
  accept: (job: JobRecord) => boolean;
  limit: number;
}

interface JobRow {
  seq: number;
  id: string;
  state: number;
  actor: string;
  intent_id: string;
  spec: Buffer;
  create_time: number;
  start_time: number | null;
  end_time: number | null;
  exit_json: string | null;
  failure_reason: string;
  usage_json: string | null;
  pid: number;
  monitor_pid: number;
  runtime: string;
  idempotency_key: string;
  spec_hash: string;
  stop_json: string | null;
  timeout_at: number | null;
  log_checkpoint_json: string | null;
  stdout_bytes: number;
  stderr_bytes: number;
  log_start_offset: number;
  output_artifacts_json: string;
  cleaned_up: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  state INTEGER NOT NULL,
  actor TEXT NOT NULL,
  intent_id TEXT NOT NULL,
  spec BLOB NOT NULL,
  create_time INTEGER NOT NULL,
  start_time INTEGER,
  end_time INTEGER,
  exit_json TEXT,
  failure_reason TEXT NOT NULL DEFAULT '',
  usage_json TEXT,
  pid INTEGER NOT NULL DEFAULT 0,
  monitor_pid INTEGER NOT NULL DEFAULT 0,
  runtime TEXT NOT NULL,
  idempotency_key TEXT NOT NULL DEFAULT '',
  spec_hash TEXT NOT NULL,
  stop_json TEXT,
  timeout_at INTEGER,
  log_checkpoint_json TEXT,
  stdout_bytes INTEGER NOT NULL DEFAULT 0,
  stderr_bytes INTEGER NOT NULL DEFAULT 0,
  log_start_offset INTEGER NOT NULL DEFAULT 0,
  output_artifacts_json TEXT NOT NULL DEFAULT '[]',
  cleaned_up INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE INDEX IF NOT EXISTS jobs_intent ON jobs(intent_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs(actor, idempotency_key) WHERE idempotency_key != '';
CREATE TABLE IF NOT EXISTS job_events (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  n INTEGER NOT NULL,
  time INTEGER NOT NULL,
  type INTEGER NOT NULL,
  message TEXT NOT NULL,
  actor TEXT NOT NULL,
  PRIMARY KEY (job_id, n)
);
CREATE TABLE IF NOT EXISTS job_labels (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (job_id, key)
);
`;

/**
 * Job records in SQLite (WAL): the durable truth a restarted aetherd reconciles against the runtime.
 * Every write is one transaction; reads are synchronous and cheap, so the manager keeps no second copy
 * of a job's state in memory.
 */
export class JobStore {
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly listeners: ((change: JobChange) => void)[] = [];

  private constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a crash can lose the last transactions of a power failure but never corrupts;
    // state changes that matter (exit codes) are re-derived from the monitor's files on restart.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.stmts = {
      insert: this.db.prepare(
        `INSERT INTO jobs (id, state, actor, intent_id, spec, create_time, runtime, idempotency_key, spec_hash)
         VALUES (@id, @state, @actor, @intent_id, @spec, @create_time, @runtime, @idempotency_key, @spec_hash)`,
      ),
      insertLabel: this.db.prepare('INSERT INTO job_labels (job_id, key, value) VALUES (?, ?, ?)'),
      get: this.db.prepare('SELECT * FROM jobs WHERE id = ?'),
      byKey: this.db.prepare('SELECT * FROM jobs WHERE actor = ? AND idempotency_key = ?'),
      events: this.db.prepare(
        'SELECT time, type, message, actor FROM job_events WHERE job_id = ? ORDER BY n',
      ),
      eventCount: this.db.prepare('SELECT count(*) AS c FROM job_events WHERE job_id = ?'),
      lastEvent: this.db.prepare(
        'SELECT n, type, message FROM job_events WHERE job_id = ? ORDER BY n DESC LIMIT 1',
      ),
      addEvent: this.db.prepare(
        'INSERT INTO job_events (job_id, n, time, type, message, actor) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      foldEvent: this.db.prepare('UPDATE job_events SET message = ?, time = ? WHERE job_id = ? AND n = ?'),
      inStates: this.db.prepare(
        'SELECT * FROM jobs WHERE state IN (SELECT value FROM json_each(?)) ORDER BY seq',
      ),
      unclean: this.db.prepare('SELECT * FROM jobs WHERE cleaned_up = 0 ORDER BY seq'),
      endedBefore: this.db.prepare(
        'SELECT id FROM jobs WHERE end_time IS NOT NULL AND end_time < ? ORDER BY seq',
      ),
      delete: this.db.prepare('DELETE FROM jobs WHERE id = ?'),
      countStates: this.db.prepare('SELECT state, count(*) AS c FROM jobs GROUP BY state'),
    };
  }

  static open(dir: string): JobStore {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new JobStore(join(dir, 'jobs.db'));
  }

  /** Calls `listener` after a job is recorded and after each committed change of its state. */
  onChange(listener: (change: JobChange) => void): void {
    this.listeners.push(listener);
  }

  private changed(change: JobChange): void {
    for (const l of this.listeners) {
      try {
        l(change);
      } catch {
        // A listener (the event stream) must not break the job's own bookkeeping.
      }
    }
  }

  close(): void {
    this.db.close();
  }

  /** Records a new job and its SUBMITTED event in one transaction. */
  insert(
    job: Pick<
      JobRecord,
      | 'id'
      | 'state'
      | 'actor'
      | 'intentId'
      | 'spec'
      | 'createTime'
      | 'runtime'
      | 'idempotencyKey'
      | 'specHash'
    >,
    event: JobEventRecord,
  ): JobRecord {
    this.db.transaction(() => {
      this.stmts.insert.run({
        id: job.id,
        state: job.state,
        actor: job.actor,
        intent_id: job.intentId,
        spec: Buffer.from(jobsV1.JobSpec.encode(job.spec).finish()),
        create_time: job.createTime,
        runtime: job.runtime,
        idempotency_key: job.idempotencyKey,
        spec_hash: job.specHash,
      });
      for (const [k, v] of Object.entries(job.spec.labels)) this.stmts.insertLabel.run(job.id, k, v);
      this.stmts.addEvent.run(job.id, 0, event.time, event.type, event.message, event.actor);
    })();
    const recorded = this.get(job.id)!;
    if (this.listeners.length > 0) this.changed({ job: recorded });
    return recorded;
  }

  get(id: string): JobRecord | undefined {
    const row = this.stmts.get.get(id) as JobRow | undefined;
    return row && fromRow(row);
  }

  byIdempotencyKey(actor: string, key: string): JobRecord | undefined {
    const row = this.stmts.byKey.get(actor, key) as JobRow | undefined;
    return row && fromRow(row);
  }

  events(id: string): JobEventRecord[] {
    return this.stmts.events.all(id) as JobEventRecord[];
  }

  /**
   * Applies a change to a job and appends events, atomically. `patch` holds only the fields that
   * change.
   */
  update(
    id: string,
    patch: Partial<Omit<JobRecord, 'id' | 'seq' | 'spec'>>,
    ...events: JobEventRecord[]
  ): JobRecord {
    const sets: string[] = [];
    const values: Record<string, unknown> = { id };
    const col = (name: string, value: unknown): void => {
      sets.push(`${name} = @${name}`);
      values[name] = value;
    };
    for (const [key, value] of Object.entries(patch)) {
      switch (key as keyof typeof patch) {
        case 'state':
          col('state', value);
          break;
        case 'startTime':
          col('start_time', value ?? null);
          break;
        case 'endTime':
          col('end_time', value ?? null);
          break;
        case 'exit':
          col('exit_json', value === undefined ? null : JSON.stringify(value));
          break;
        case 'failureReason':
          col('failure_reason', value);
          break;
        case 'usage':
          col('usage_json', value === undefined ? null : JSON.stringify(value));
          break;
        case 'pid':
          col('pid', value);
          break;
        case 'monitorPid':
          col('monitor_pid', value);
          break;
        case 'stop':
          col('stop_json', value === undefined ? null : JSON.stringify(value));
          break;
        case 'timeoutAt':
          col('timeout_at', value ?? null);
          break;
        case 'logCheckpoint':
          col('log_checkpoint_json', value === undefined ? null : JSON.stringify(value));
          break;
        case 'stdoutBytes':
          col('stdout_bytes', value);
          break;
        case 'stderrBytes':
          col('stderr_bytes', value);
          break;
        case 'logStartOffset':
          col('log_start_offset', value);
          break;
        case 'outputArtifacts':
          col('output_artifacts_json', JSON.stringify(value));
          break;
        case 'cleanedUp':
          col('cleaned_up', value ? 1 : 0);
          break;
        case 'idempotencyKey':
          col('idempotency_key', value);
          break;
        default:
          throw new Error(`JobStore.update: ${key} cannot change`);
      }
    }
    const previous =
      patch.state !== undefined && this.listeners.length > 0
        ? ((this.stmts.get.get(id) as JobRow | undefined)?.state as JobState | undefined)
        : undefined;
    this.db.transaction(() => {
      if (sets.length > 0) this.db.prepare(`UPDATE jobs SET ${sets.join(', ')} WHERE id = @id`).run(values);
      for (const e of events) this.appendEvent(id, e);
    })();
    const job = this.get(id)!;
    if (previous !== undefined && previous !== job.state) this.changed({ job, previous });
    return job;
  }

  private appendEvent(id: string, e: JobEventRecord): void {
    const { c } = this.stmts.eventCount.get(id) as { c: number };
    if (c < MAX_EVENTS_PER_JOB) {
      this.stmts.addEvent.run(id, c, e.time, e.type, e.message, e.actor);
      return;
    }
    // Past the cap only repeated signals can pile up (everything else happens once per job): count them
    // in the last event instead of growing without bound.
    const last = this.stmts.lastEvent.get(id) as { n: number; type: number; message: string };
    const folded = /\(\+(\d+) more\)$/.exec(last.message);
    const more = folded ? Number(folded[1]) + 1 : 1;
    const base = folded ? last.message.slice(0, folded.index).trimEnd() : last.message;
    this.stmts.foldEvent.run(`${base} (+${more} more)`, e.time, id, last.n);
  }

  inStates(states: JobState[]): JobRecord[] {
    return (this.stmts.inStates.all(JSON.stringify(states)) as JobRow[]).map(fromRow);
  }

  /** Jobs whose container, cgroup or files may still exist. */
  notCleanedUp(): JobRecord[] {
    return (this.stmts.unclean.all() as JobRow[]).map(fromRow);
  }

  endedBefore(time: number): string[] {
    return (this.stmts.endedBefore.all(time) as { id: string }[]).map((r) => r.id);
  }

  list(q: ListJobsQuery): { jobs: JobRecord[]; nextBeforeSeq: number } {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.states.length > 0) {
      where.push(`state IN (${q.states.map(() => '?').join(',')})`);
      params.push(...q.states);
    }
    if (q.intentId) {
      where.push('intent_id = ?');
      params.push(q.intentId);
    }
    if (q.actor) {
      where.push('actor = ?');
      params.push(q.actor);
    }
    const jobs: JobRecord[] = [];
    let before = q.beforeSeq > 0 ? q.beforeSeq : Number.MAX_SAFE_INTEGER;
    // Label selectors are matched in process, so read in batches until the page is full.
    const batch = Math.max(q.limit * 2, 100);
    for (;;) {
      const sql = `SELECT * FROM jobs WHERE ${[...where, 'seq < ?'].join(' AND ')} ORDER BY seq DESC LIMIT ?`;
      const rows = this.db.prepare(sql).all(...params, before, batch) as JobRow[];
      for (const row of rows) {
        before = row.seq;
        const job = fromRow(row);
        if (!q.accept(job)) continue;
        jobs.push(job);
        if (jobs.length === q.limit) {
          const more = this.db
            .prepare(`SELECT 1 FROM jobs WHERE ${[...where, 'seq < ?'].join(' AND ')} LIMIT 1`)
            .get(...params, before);
          return { jobs, nextBeforeSeq: more ? before : 0 };
        }
      }
      if (rows.length < batch) return { jobs, nextBeforeSeq: 0 };
    }
  }

  delete(id: string): void {
    this.stmts.delete.run(id);
  }

  countByState(): Map<JobState, number> {
    const rows = this.stmts.countStates.all() as { state: number; c: number }[];
    return new Map(rows.map((r) => [r.state as JobState, r.c]));
  }
}

function fromRow(row: JobRow): JobRecord {
  const job: JobRecord = {
    id: row.id,
    seq: row.seq,
    state: row.state,
    actor: row.actor,
    intentId: row.intent_id,
    spec: jobsV1.JobSpec.decode(row.spec),
    createTime: row.create_time,
    failureReason: row.failure_reason,
    pid: row.pid,
    monitorPid: row.monitor_pid,
    runtime: row.runtime,
    idempotencyKey: row.idempotency_key,
    specHash: row.spec_hash,
    stdoutBytes: row.stdout_bytes,
    stderrBytes: row.stderr_bytes,
    logStartOffset: row.log_start_offset,
    outputArtifacts: JSON.parse(row.output_artifacts_json) as string[],
    cleanedUp: row.cleaned_up === 1,
  };
  if (row.start_time !== null) job.startTime = row.start_time;
  if (row.end_time !== null) job.endTime = row.end_time;
  if (row.exit_json !== null) job.exit = JSON.parse(row.exit_json) as JobExit;
  if (row.usage_json !== null) job.usage = JSON.parse(row.usage_json) as JobUsage;
  if (row.stop_json !== null) job.stop = JSON.parse(row.stop_json) as JobStop;
  if (row.timeout_at !== null) job.timeoutAt = row.timeout_at;
  if (row.log_checkpoint_json !== null)
    job.logCheckpoint = JSON.parse(row.log_checkpoint_json) as StoredLogCheckpoint;
  return job;
}

export { JobEventType, JobState };
