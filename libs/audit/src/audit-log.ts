import { type KeyObject } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fdatasync,
  fstatSync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  renameSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { fsyncDir, loadCheckpointKey, readCheckpoint, signCheckpoint, writeCheckpoint } from './checkpoint';
import { now } from './clock';
import { AuditCorruptError, AuditUnavailableError, describeError } from './errors';
import { bodyHash, listRotated, parseFrame, readTail } from './files';
import {
  GENESIS_HASH,
  bodyJson,
  prepareEntry,
  sha256Hex,
  type AuditEntry,
  type AuditRecord,
  type AuditRecordContent,
  type PreparedContent,
} from './record';

const fdatasyncAsync = promisify(fdatasync);
/** A lone durable record is fdatasync'ed on the event loop only while syncs take less than this. */
const INLINE_SYNC_MAX_MS = 1;

export interface AuditLogOptions {
  /** The active file, e.g. `/var/log/aether/aetherd.jsonl`; rotated files are `<path>.1`, `<path>.2` … */
  path: string;
  /** Program writing the log, e.g. `aetherd`; written into every record. */
  daemon: string;
  /** Rotate before the active file would grow past this many bytes. Default 64 MiB. */
  maxFileBytes?: number;
  /**
   * How long an idle log waits after a durable append before committing, to gather more appends into
   * the same write + fdatasync. Default 0: commit at the next `setImmediate`, i.e. after the appends made
   * in the same event-loop turn. Appends that arrive while a commit is in flight always go into the next
   * commit, which starts as soon as the current one ends, so concurrent appenders share fdatasyncs even
   * at 0.
   */
  groupCommitWindowMs?: number;
  /** At most how long a non-durable append stays in memory before it is written (no fdatasync). Default 10. */
  flushDelayMs?: number;
  /** Ed25519 private key (PKCS#8 PEM, see `generateCheckpointKey`) for signed checkpoints. */
  checkpointKeyFile?: string;
  /** Where the signed checkpoint is written (atomically replaced); needed with `checkpointKeyFile`. */
  checkpointPath?: string;
  /** Write a checkpoint after this many records. Default 10,000. */
  checkpointEveryRecords?: number;
  /** …and at least this often while records arrive. Default 60,000 ms. */
  checkpointIntervalMs?: number;
  /** While failed, retry (by writing an `audit.recovered` record) this often. Default 1,000 ms. */
  retryIntervalMs?: number;
  /** Mode of new log files. Default 0o640. */
  fileMode?: number;
  /** Receives warnings (torn tail cut away at open, a checkpoint that could not be written). */
  onWarning?: (message: string) => void;
}

export interface AppendOptions {
  /** Resolve only once the record is on disk (written and fdatasync'ed). */
  durable: boolean;
}

/** Counters, for tests, benchmarks and metrics. */
export interface AuditLogStats {
  /** append() calls accepted. */
  appends: number;
  /** Records written (including internal `audit.recovered` records). */
  records: number;
  /** write batches (each one write(2) sequence of one or more records). */
  writes: number;
  fdatasyncs: number;
  rotations: number;
  checkpoints: number;
  /** Appends rejected because a write or fdatasync failed. */
  failedAppends: number;
  /** Writes, fdatasyncs, opens or rotations that failed (each failure once, however many appends it rejected). */
  writeErrors: number;
  /** Bytes appended to the log files (records written, internal ones included). */
  bytesWritten: number;
}

/** Records accepted but not yet durable, for metrics. */
export interface AuditPending {
  /**
   * Records waiting for the next commit or in the commit under way: not yet written, or (durable ones)
   * written but not yet fdatasync'ed. A non-durable record counts until it is written.
   */
  records: number;
  /** Age in seconds of the oldest of them; 0 when none is pending. */
  oldestAgeSeconds: number;
}

interface Pending {
  content: AuditRecordContent;
  json: string;
  durable: boolean;
  internal: boolean;
  resolve: (record: AuditRecord) => void;
  reject: (err: Error) => void;
}

interface Failure {
  error: AuditUnavailableError;
  since: string;
  rejected: number;
}

interface CheckpointState {
  key: KeyObject;
  path: string;
  every: number;
  seq: number;
  nextAt: number;
  timeDue: boolean;
  timer: NodeJS.Timeout;
}

const noop = (): void => undefined;

/**
 * An append-only, hash-chained JSON-lines audit log with group commit, size rotation and optional signed
 * checkpoints. One writer per file (one process, one AuditLog). Create with {@link AuditLog.open}.
 *
 * Records are numbered and chained in append order. A durable append resolves once its record has been
 * written and fdatasync'ed; appends made while a commit is in flight share the next write + fdatasync.
 * A non-durable append resolves once written (within `flushDelayMs`, or with the next commit).
 *
 * When a write or fdatasync fails (ENOSPC, EIO), the file is truncated back to its last good size, the
 * appends of that commit reject with {@link AuditUnavailableError}, and {@link ensureWritable} throws until
 * a later write succeeds. Every later append retries, and so does a timer every `retryIntervalMs`; the
 * first successful commit after a failure begins with an internal record
 * `{ actor: <daemon>, action: 'audit.recovered', error: <the failure>, provenance: { failed_since,
 * rejected_records } }`.
 */
export class AuditLog {
  readonly path: string;
  readonly daemon: string;
  /** Warnings from open, e.g. a torn last line that was cut away. */
  readonly warnings: string[];
  readonly stats: AuditLogStats = {
    appends: 0,
    records: 0,
    writes: 0,
    fdatasyncs: 0,
    rotations: 0,
    checkpoints: 0,
    failedAppends: 0,
    writeErrors: 0,
    bytesWritten: 0,
  };

  private fd: number;
  private size: number;
  private seq: number;
  private prevHash: string;
  private syncedSeq: number;
  private syncedHash: string;
  private dirty = false;
  private needsTruncate = false;
  private nextRotation: number;
  private queue: Pending[] = [];
  /** performance.now() of the first append into an empty queue. */
  private queuedSince = 0;
  /** Items of the batch being committed that are not settled yet, and when the oldest was appended. */
  private committing = 0;
  private committingSince = 0;
  private readonly commitListeners: ((seconds: number) => void)[] = [];
  private loop: Promise<void> | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timerDeadline = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryRequested = false;
  private syncRequested = false;
  private failure: Failure | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;
  private readonly maxFileBytes: number;
  private readonly windowMs: number;
  private readonly flushDelayMs: number;
  /** How long the last fdatasync of a commit took (starts high: the first one goes off the loop). */
  private lastSyncMs = Number.POSITIVE_INFINITY;
  private readonly retryIntervalMs: number;
  private readonly fileMode: number;
  private readonly warn: (message: string) => void;
  private checkpoint: CheckpointState | null = null;

  /**
   * Opens (creating directories and file as needed) and resumes the chain from the last record of the
   * newest file. A torn last line (a write cut short by a crash) is truncated away and reported in
   * `warnings`. Throws AuditCorruptError when the last complete record is not valid, or when the log ends
   * before the seq its checkpoint vouches for.
   */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const { path } = options;
    if (!path) throw new TypeError('AuditLog.open: path is required');
    if (!options.daemon) throw new TypeError('AuditLog.open: daemon is required');
    if ((options.checkpointKeyFile === undefined) !== (options.checkpointPath === undefined))
      throw new TypeError('AuditLog.open: checkpointKeyFile and checkpointPath go together');
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    const warnings: string[] = [];
    const rotated = listRotated(path);
    let head = { seq: 0, hash: GENESIS_HASH };
    let size = 0;
    if (existsSync(path)) {
      const tail = readTail(path);
      if (tail.size > tail.goodSize) {
        truncateSync(path, tail.goodSize);
        warnings.push(
          `audit log ${path}: cut away a torn last line (${tail.size - tail.goodSize} bytes after byte ` +
            `${tail.goodSize}; an unfinished write)`,
        );
      }
      size = tail.goodSize;
      if (tail.lastLine) head = checkLastLine(path, path, tail.lastLine);
    }
    const newest = rotated[rotated.length - 1];
    if (head.seq === 0 && newest) {
      const tail = readTail(newest.path);
      if (tail.size > tail.goodSize || !tail.lastLine)
        throw new AuditCorruptError(
          `audit log ${path}: rotated file ${newest.path} ${tail.lastLine ? 'ends in a torn line' : 'is empty'}`,
        );
      head = checkLastLine(path, newest.path, tail.lastLine);
    }
    let checkpointKey: KeyObject | null = null;
    let checkpointSeq = 0;
    if (options.checkpointKeyFile !== undefined && options.checkpointPath !== undefined) {
      checkpointKey = await loadCheckpointKey(options.checkpointKeyFile);
      if (existsSync(options.checkpointPath)) {
        const cp = await readCheckpoint(options.checkpointPath);
        if (cp.seq > head.seq)
          throw new AuditCorruptError(
            `audit log ${path} ends at seq ${head.seq}, but its checkpoint ${options.checkpointPath} ` +
              `vouches for seq ${cp.seq}: records were removed (run "aether audit verify")`,
          );
        if (cp.seq === head.seq && cp.hash !== head.hash)
          throw new AuditCorruptError(
            `audit log ${path}: the record at seq ${head.seq} does not match the checkpoint ${options.checkpointPath}`,
          );
        checkpointSeq = cp.seq;
      }
    }
    const log = new AuditLog(options, warnings, head, size, (newest?.n ?? 0) + 1);
    if (checkpointKey && options.checkpointPath !== undefined) {
      const every = options.checkpointEveryRecords ?? 10_000;
      const timer = setInterval(() => log.checkpointTimer(), options.checkpointIntervalMs ?? 60_000);
      timer.unref();
      log.checkpoint = {
        key: checkpointKey,
        path: options.checkpointPath,
        every,
        seq: checkpointSeq,
        nextAt: head.seq + every,
        timeDue: false,
        timer,
      };
    }
    for (const w of warnings) log.warn(w);
    return log;
  }

  private constructor(
    options: AuditLogOptions,
    warnings: string[],
    head: { seq: number; hash: string },
    size: number,
    nextRotation: number,
  ) {
    this.path = options.path;
    this.daemon = options.daemon;
    this.warnings = warnings;
    this.maxFileBytes = options.maxFileBytes ?? 64 * 1024 * 1024;
    this.windowMs = options.groupCommitWindowMs ?? 0;
    this.flushDelayMs = options.flushDelayMs ?? 10;
    this.retryIntervalMs = options.retryIntervalMs ?? 1000;
    this.fileMode = options.fileMode ?? 0o640;
    this.warn = options.onWarning ?? ((m) => process.emitWarning(m, 'AuditLogWarning'));
    const created = !existsSync(this.path);
    this.fd = openSync(this.path, 'a', this.fileMode);
    // What a killed predecessor left in the page cache is made durable before it is built upon.
    fdatasyncSync(this.fd);
    if (created) fsyncDir(dirname(this.path));
    this.size = size;
    this.seq = this.syncedSeq = head.seq;
    this.prevHash = this.syncedHash = head.hash;
    this.nextRotation = nextRotation;
  }

  /** seq and hash of the last record written (0 and 64 zeros for an empty log). */
  get head(): { seq: number; hash: string } {
    return { seq: this.seq, hash: this.prevHash };
  }

  /** seq and hash of the last record known to be on disk (fdatasync'ed). */
  get durableHead(): { seq: number; hash: string } {
    return { seq: this.syncedSeq, hash: this.syncedHash };
  }

  /** Records accepted but not yet durable, and the age of the oldest (see {@link AuditPending}). */
  get pending(): AuditPending {
    const records = this.committing + this.queue.length;
    if (records === 0) return { records: 0, oldestAgeSeconds: 0 };
    const since = this.committing > 0 ? this.committingSince : this.queuedSince;
    return { records, oldestAgeSeconds: Math.max(0, (performance.now() - since) / 1000) };
  }

  /**
   * Calls `listener` after every durable commit (a write and its fdatasync, or an fdatasync of what was
   * written before) with the seconds it took. Listeners must be cheap and must not throw.
   */
  onCommit(listener: (seconds: number) => void): void {
    this.commitListeners.push(listener);
  }

  /** The current failure, while the last write failed and none has succeeded since. */
  get failedWith(): AuditUnavailableError | null {
    return this.failure?.error ?? null;
  }

  /**
   * Appends one record. Sequence number and chain are assigned in append order. With `durable`, resolves
   * once the record is written and fdatasync'ed; otherwise once written. Rejects with
   * AuditUnavailableError when the write fails (nothing of it stays in the file) or the log is closed, and
   * with TypeError for an entry without actor or action or with a cycle.
   */
  append(entry: AuditEntry, options: AppendOptions): Promise<AuditRecord> {
    if (this.closing)
      return Promise.reject(new AuditUnavailableError(`audit log ${this.path}: closed`, 'CLOSED'));
    let prepared: PreparedContent;
    try {
      prepared = prepareEntry(entry, this.daemon, now());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new TypeError(String(err)));
    }
    const durable = options.durable;
    this.stats.appends++;
    return new Promise<AuditRecord>((resolve, reject) => {
      if (this.queue.length === 0) this.queuedSince = performance.now();
      this.queue.push({
        content: prepared.content,
        json: prepared.json,
        durable,
        internal: false,
        resolve,
        reject,
      });
      this.schedule(durable ? this.windowMs : this.flushDelayMs);
    });
  }

  /**
   * Throws AuditUnavailableError while the log cannot take records (the last write failed and none has
   * succeeded since, or the log is closed). Call before a state-changing action, to fail it closed early.
   */
  ensureWritable(): void {
    if (this.closing) throw new AuditUnavailableError(`audit log ${this.path}: closed`, 'CLOSED');
    if (this.failure) throw this.failure.error;
  }

  /** Writes everything appended so far and fdatasyncs it. Rejects if that write fails. */
  async flush(): Promise<void> {
    this.syncRequested = true;
    await this.run();
    if (this.failure) throw this.failure.error;
  }

  /** Flushes, fdatasyncs, writes a final checkpoint (if configured) and closes the file. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.doClose();
    return this.closed;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.syncRequested = true;
    if (this.checkpoint) {
      clearInterval(this.checkpoint.timer);
      this.checkpoint.timeDue = true;
    }
    await this.run();
    await this.run();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private schedule(delayMs: number): void {
    if (this.loop || this.immediate) return;
    if (delayMs <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.immediate = setImmediate(() => {
        this.immediate = null;
        void this.run();
      });
      return;
    }
    const deadline = performance.now() + delayMs;
    if (this.timer && this.timerDeadline <= deadline) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDeadline = deadline;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, delayMs);
  }

  /** Runs the commit loop unless it is running; resolves when it has nothing left to do. */
  private run(): Promise<void> {
    if (this.loop) return this.loop;
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timer) clearTimeout(this.timer);
    this.immediate = null;
    this.timer = null;
    this.loop = this.commitLoop()
      .catch((err: unknown) =>
        this.warn(`audit log ${this.path}: unexpected error: ${describeError(err).message}`),
      )
      .finally(() => {
        this.loop = null;
        if (this.queue.length > 0 && !this.closing) this.schedule(0);
      });
    return this.loop;
  }

  private async commitLoop(): Promise<void> {
    for (;;) {
      if (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        this.committing = batch.length;
        this.committingSince = this.queuedSince;
        try {
          await this.commit(batch);
        } finally {
          this.committing = 0;
        }
        continue;
      }
      if (this.retryRequested) {
        this.retryRequested = false;
        if (this.failure) {
          await this.commit([]);
          continue;
        }
      }
      if (this.failure) return;
      const cp = this.checkpoint;
      const checkpointDue = cp !== null && cp.timeDue && this.seq > cp.seq;
      if (cp && !checkpointDue) cp.timeDue = false;
      if ((this.syncRequested || checkpointDue) && this.dirty) {
        this.syncRequested = false;
        try {
          await this.datasync();
        } catch (err) {
          this.fail(err, 'fdatasync', []);
          return;
        }
        continue;
      }
      this.syncRequested = false;
      if (checkpointDue) {
        await this.writeCheckpointNow();
        continue;
      }
      return;
    }
  }

  private async datasync(): Promise<void> {
    const seq = this.seq;
    const hash = this.prevHash;
    const started = performance.now();
    await fdatasyncAsync(this.fd);
    this.stats.fdatasyncs++;
    this.committed(started);
    this.dirty = this.seq !== seq;
    this.syncedSeq = seq;
    this.syncedHash = hash;
  }

  /** Writes a batch in order (rotating as needed), fdatasyncs if any of it is durable, settles it. */
  private async commit(batch: Pending[]): Promise<void> {
    const items = this.failure ? [this.recoveryNote(this.failure), ...batch] : batch;
    let i = 0;
    while (i < items.length) {
      if (this.fd < 0) {
        try {
          this.fd = openSync(this.path, 'a', this.fileMode);
          this.size = fstatSync(this.fd).size;
        } catch (err) {
          this.fail(err, 'open', items.slice(i));
          return;
        }
      }
      if (this.needsTruncate) {
        try {
          ftruncateSync(this.fd, this.size);
          this.needsTruncate = false;
        } catch (err) {
          this.fail(err, 'write', items.slice(i));
          return;
        }
      }
      // Build as many lines as fit in the active file (at least one into an empty file).
      const lines: string[] = [];
      const records: AuditRecord[] = [];
      let seq = this.seq;
      let prev = this.prevHash;
      let bytes = 0;
      let durable = false;
      let j = i;
      for (; j < items.length; j++) {
        const item = items[j] as Pending;
        const body = bodyJson(seq + 1, item.json, prev);
        const hash = sha256Hex(body);
        const line = body.slice(0, -1) + ',"hash":"' + hash + '"}\n';
        const lineBytes = Buffer.byteLength(line);
        if (this.size + bytes + lineBytes > this.maxFileBytes && this.size + bytes > 0) break;
        seq++;
        lines.push(line);
        records.push({ seq, ...item.content, prev_hash: prev, hash });
        prev = hash;
        bytes += lineBytes;
        durable ||= item.durable;
      }
      if (j === i) {
        try {
          await this.rotate();
        } catch (err) {
          this.fail(err, 'rotation', items.slice(i));
          return;
        }
        continue;
      }
      const cp = this.checkpoint;
      const checkpointDue = cp !== null && (seq >= cp.nextAt || cp.timeDue);
      const startSize = this.size;
      let phase = 'write';
      const started = performance.now();
      try {
        this.writeAll(Buffer.from(lines.join(''), 'utf8'));
        this.stats.writes++;
        this.stats.bytesWritten += bytes;
        if (durable || checkpointDue || this.syncRequested) {
          phase = 'fdatasync';
          const syncStarted = performance.now();
          // A lone record on a fast disk is synced in place: the hop to libuv's thread pool and back
          // costs about a fifth of a fast fdatasync, and an idle loop loses nothing by waiting. Under
          // load batches hold several records (they gather while the loop is busy), and a slow disk
          // (the last sync above INLINE_SYNC_MAX_MS) is always synced off the loop.
          if (records.length === 1 && this.queue.length === 0 && this.lastSyncMs < INLINE_SYNC_MAX_MS)
            fdatasyncSync(this.fd);
          else await fdatasyncAsync(this.fd);
          this.lastSyncMs = performance.now() - syncStarted;
          this.stats.fdatasyncs++;
          this.committed(started);
        }
      } catch (err) {
        try {
          ftruncateSync(this.fd, startSize);
        } catch {
          this.needsTruncate = true;
        }
        this.size = startSize;
        this.fail(err, phase, items.slice(i));
        return;
      }
      this.size = startSize + bytes;
      this.seq = seq;
      this.prevHash = prev;
      if (phase === 'fdatasync') {
        this.syncedSeq = seq;
        this.syncedHash = prev;
        this.dirty = false;
        this.syncRequested = false;
      } else {
        this.dirty = true;
      }
      this.stats.records += records.length;
      this.committing = Math.max(0, this.committing - records.length);
      if (this.failure) {
        this.failure = null;
        if (this.retryTimer) clearTimeout(this.retryTimer);
        this.retryTimer = null;
      }
      for (let k = 0; k < records.length; k++) (items[i + k] as Pending).resolve(records[k] as AuditRecord);
      i = j;
      if (checkpointDue && phase === 'fdatasync') await this.writeCheckpointNow();
    }
  }

  private committed(started: number): void {
    if (this.commitListeners.length === 0) return;
    const seconds = (performance.now() - started) / 1000;
    for (const listener of this.commitListeners) {
      try {
        listener(seconds);
      } catch {
        // A metrics listener must not break the log.
      }
    }
  }

  private writeAll(buf: Buffer): void {
    let off = 0;
    while (off < buf.length) {
      const n = writeSync(this.fd, buf, off, buf.length - off);
      if (n <= 0) throw Object.assign(new Error('EIO: short write'), { code: 'EIO' });
      off += n;
    }
  }

  /** Enters (or stays in) the failed state and rejects `items`. */
  private fail(err: unknown, what: string, items: Pending[]): void {
    const { code, message } = describeError(err);
    const error = new AuditUnavailableError(`audit log ${this.path}: ${what} failed: ${message}`, code, {
      cause: err,
    });
    const rejected = items.filter((p) => !p.internal).length;
    if (this.failure) {
      this.failure.error = error;
      this.failure.rejected += rejected;
    } else {
      this.failure = { error, since: now().wall, rejected };
    }
    this.stats.failedAppends += rejected;
    this.stats.writeErrors++;
    for (const p of items) p.reject(error);
    if (!this.retryTimer && !this.closing) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.retryRequested = true;
        void this.run();
      }, this.retryIntervalMs);
      this.retryTimer.unref();
    }
  }

  private recoveryNote(f: Failure): Pending {
    const prepared = prepareEntry(
      {
        actor: this.daemon,
        action: 'audit.recovered',
        outcome: 'OK',
        error: f.error.message,
        provenance: { failed_since: f.since, rejected_records: f.rejected },
      },
      this.daemon,
      now(),
    );
    return {
      content: prepared.content,
      json: prepared.json,
      durable: true,
      internal: true,
      resolve: noop,
      reject: noop,
    };
  }

  /** Makes the active file durable, renames it to `<path>.<n>`, starts a new one, fsyncs the directory. */
  private async rotate(): Promise<void> {
    if (this.dirty) await this.datasync();
    while (existsSync(`${this.path}.${this.nextRotation}`)) this.nextRotation++;
    const target = `${this.path}.${this.nextRotation}`;
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.path, target);
    this.size = 0;
    this.fd = openSync(this.path, 'a', this.fileMode);
    this.nextRotation++;
    fsyncDir(dirname(this.path));
    this.stats.rotations++;
  }

  private checkpointTimer(): void {
    if (!this.checkpoint) return;
    this.checkpoint.timeDue = true;
    if (!this.closing) void this.run();
  }

  /** Signs and writes a checkpoint of the last fdatasync'ed record; a failure is only a warning. */
  private async writeCheckpointNow(): Promise<void> {
    const cp = this.checkpoint;
    if (!cp) return;
    cp.timeDue = false;
    cp.nextAt = this.syncedSeq + cp.every;
    if (this.syncedSeq <= cp.seq) return;
    const seq = this.syncedSeq;
    try {
      await writeCheckpoint(
        cp.path,
        signCheckpoint(cp.key, { daemon: this.daemon, seq, hash: this.syncedHash, ts: now().wall }),
      );
      cp.seq = seq;
      this.stats.checkpoints++;
    } catch (err) {
      this.warn(`audit log ${this.path}: cannot write checkpoint ${cp.path}: ${describeError(err).message}`);
    }
  }
}

/** seq and hash of a file's last complete line, which must be a valid record. */
function checkLastLine(path: string, file: string, line: Buffer): { seq: number; hash: string } {
  const frame = parseFrame(line, 0, line.length);
  if (typeof frame === 'string')
    throw new AuditCorruptError(
      `audit log ${path}: the last record of ${file} is ${frame}; run "aether audit verify"`,
    );
  if (bodyHash(line, 0, line.length) !== frame.hash)
    throw new AuditCorruptError(
      `audit log ${path}: the last record of ${file} (seq ${frame.seq}) does not match its hash; run "aether audit verify"`,
    );
  return { seq: frame.seq, hash: frame.hash };
}
