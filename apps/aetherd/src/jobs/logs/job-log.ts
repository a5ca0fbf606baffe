import { execFile } from 'node:child_process';
import { watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import {
  MALFORMED as MALFORMED_,
  NEED_MORE as NEED_MORE_,
  newRecord,
  parseTimestamp,
  RecordCursor,
  type K8sRecord,
  type StreamId,
} from './k8s-file';

/** The two output streams of a job. */
export type LogStreamName = 'stdout' | 'stderr';

/** A run of consecutive bytes of one stream. */
export interface LogChunk {
  stream: LogStreamName;
  /** Reconstructed content (newlines included); owned by the consumer. */
  data: Buffer;
  /** Combined offset (stdout and stderr bytes in file order) of `data[0]`. */
  offset: number;
  /**
   * When conmon read the first of these bytes (ms precision). A record whose timestamp does not parse gets
   * the time of the record before it (the epoch if there is none).
   */
  time: Date;
}

/** Tells a reader that `skipped` bytes (combined offsets) it asked for were punched away. */
export interface LogSkipped {
  skipped: number;
}

/** Persisted by the caller (a JSON column) so a restarted aetherd knows what was punched away. */
export interface LogCheckpoint {
  /** File position of the first stored record; everything before it is a hole. */
  startFilePos: number;
  /** Combined offset of the first stored byte. */
  startOffset: number;
  stdoutBefore: number;
  stderrBefore: number;
}

/** Options of {@link JobLog.open}. */
export interface JobLogOptions {
  /** Cap on the stored part of the file in bytes (records included); `Infinity` never punches. */
  maxBytes: number;
  /** What a previous aetherd persisted through `onCheckpoint`. */
  checkpoint?: LogCheckpoint;
  /**
   * Called (synchronously) with the new start before a hole is punched, and with the old one again if
   * punching then fails. Persist it before returning: punching follows immediately.
   */
  onCheckpoint?: (checkpoint: LogCheckpoint) => void;
  /**
   * Problems that cost no data: fallocate or `onCheckpoint` failing (punching then stops for this JobLog),
   * the file becoming unreadable.
   */
  onWarning?: (message: string, error?: unknown) => void;
  /**
   * Watch the file until `finish()` even without followers, so the cap holds while nobody reads.
   * Without it the file is only watched while followers exist, and otherwise scanned on `refresh()`.
   */
  watch?: boolean;
  /** The util-linux `fallocate` to run; default `fallocate` from PATH. */
  fallocatePath?: string;
}

/** Options of {@link JobLog.read}. */
export interface ReadOptions {
  /** Combined offset to start at; clamped up to `startOffset` (yielding `{ skipped }` first). */
  from?: number;
  /** Start at the beginning of the last N lines of the selected stream(s); with `from`, the later wins. */
  tailLines?: number;
  /** Only this stream (offsets stay combined). */
  stream?: LogStreamName;
  /** Wait for more after the end until `finish()` was called and everything is drained, or `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Most bytes per yielded chunk; default 64 KiB. */
  maxChunkBytes?: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const DEFAULT_CHUNK = 64 * KiB;
const POLL_MS = 250;
const FALLOCATE_TIMEOUT_MS = 30_000;
const STREAM_NAMES: readonly LogStreamName[] = ['stdout', 'stderr'];
// Module-local copies: the per-record loops then read constants, not properties of another module (which
// some CommonJS transforms turn into getter calls).
const MALFORMED = MALFORMED_;
const NEED_MORE = NEED_MORE_;

/**
 * The log of one job: the k8s-file that conmon appends to, read back as the job's reconstructed stdout and
 * stderr, addressed by combined offsets that stay stable while the start of the file is punched away.
 *
 * Counters and a sparse index (file position ↔ combined offset at record starts) come from an incremental
 * scan (`refresh()`). Readers start at a record start the scan found and then parse on their own with the
 * same rules, so they count the same offsets as the scan; neither consumes a torn last line before its
 * "\n" is there.
 */
export class JobLog {
  private readonly maxBytes: number;
  private readonly indexStep: number;
  private readonly onCheckpoint: ((c: LogCheckpoint) => void) | undefined;
  private readonly onWarning: ((message: string, error?: unknown) => void) | undefined;
  private readonly watchAlways: boolean;
  private readonly fallocatePath: string;

  private startFilePos: number;
  private startOff: number;
  private stdoutBefore: number;
  /** File position up to which complete records were scanned (a record start). */
  private scanPos: number;
  private outBytes: number;
  private errBytes: number;
  private malformed = 0;

  // Sparse index, parallel arrays: record start, combined offset and stdout bytes before it. Entry 0 is at
  // or before startFilePos; entries before startFilePos are dropped once a punch has succeeded.
  private idxPos: number[];
  private idxOff: number[];
  private idxOut: number[];

  private fh: FileHandle | null = null;
  private scanCursor: RecordCursor | null = null;
  private readonly scanRec: K8sRecord = newRecord();
  private scanning: Promise<void> | null = null;
  private rescan = false;
  private punchDisabled = false;

  private followers = 0;
  /** Reads in progress (followers included): the file handle stays open while there are any. */
  private readers = 0;
  private watcher: FSWatcher | null = null;
  /** The watcher is on the directory, waiting for the file to be created. */
  private watchingDir = false;
  private poll: NodeJS.Timeout | null = null;
  private readonly waiters = new Set<() => void>();

  private finishing = false;
  private finished = false;
  private closed = false;

  private constructor(
    private readonly path: string,
    opts: JobLogOptions,
  ) {
    if (!(opts.maxBytes > 0)) throw new RangeError(`maxBytes must be positive, got ${opts.maxBytes}`);
    this.maxBytes = opts.maxBytes;
    // ~256 KiB between index entries, finer for small caps so a punch can land close to its target.
    this.indexStep = Math.max(4 * KiB, Math.min(256 * KiB, Math.floor(opts.maxBytes / 16)));
    this.onCheckpoint = opts.onCheckpoint;
    this.onWarning = opts.onWarning;
    this.watchAlways = opts.watch ?? false;
    this.fallocatePath = opts.fallocatePath ?? 'fallocate';
    const cp = opts.checkpoint ?? { startFilePos: 0, startOffset: 0, stdoutBefore: 0, stderrBefore: 0 };
    this.startFilePos = cp.startFilePos;
    this.stdoutBefore = cp.stdoutBefore;
    // The offset is the number of bytes before, by definition; trust the counters if they disagree.
    this.startOff = cp.stdoutBefore + cp.stderrBefore;
    if (this.startOff !== cp.startOffset) {
      this.warn(`checkpoint of ${path}: startOffset ${cp.startOffset} ≠ stdout+stderr ${this.startOff}`);
    }
    this.scanPos = cp.startFilePos;
    this.outBytes = cp.stdoutBefore;
    this.errBytes = cp.stderrBefore;
    this.idxPos = [this.startFilePos];
    this.idxOff = [this.startOff];
    this.idxOut = [this.stdoutBefore];
  }

  /**
   * Opens the log of one job. Does no I/O: the file may not exist yet, counters are those of the
   * checkpoint until the first `refresh()` (which `read()` also does).
   */
  static open(path: string, opts: JobLogOptions): JobLog {
    const log = new JobLog(path, opts);
    log.updateWatch();
    return log;
  }

  /** First combined offset still stored. */
  get startOffset(): number {
    return this.startOff;
  }

  /** Combined offset just after the last scanned byte: `stdoutBytes + stderrBytes`. */
  get endOffset(): number {
    return this.outBytes + this.errBytes;
  }

  /** Bytes the job wrote to stdout, as far as scanned (punched ones included). */
  get stdoutBytes(): number {
    return this.outBytes;
  }

  /** Bytes the job wrote to stderr, as far as scanned (punched ones included). */
  get stderrBytes(): number {
    return this.errBytes;
  }

  /** File bytes currently stored (scanned file size minus the punched start). */
  get storedBytes(): number {
    return this.scanPos - this.startFilePos;
  }

  /** Lines that were not k8s-file records and were skipped (conmon should never write one). */
  get malformedLines(): number {
    return this.malformed;
  }

  /** The current start, as `onCheckpoint` reports it. */
  get checkpoint(): LogCheckpoint {
    return {
      startFilePos: this.startFilePos,
      startOffset: this.startOff,
      stdoutBefore: this.stdoutBefore,
      stderrBefore: this.startOff - this.stdoutBefore,
    };
  }

  /**
   * Scans what is new in the file, punches holes if the stored part exceeds `maxBytes`, and wakes
   * followers. Cheap when nothing changed (one read at the end of the file). Calls made while a scan runs
   * share it, and it goes on until it has seen the file as it was at the latest call. Never rejects:
   * problems go to `onWarning`.
   */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.rescan = true;
    if (!this.scanning) this.scanning = this.runScans();
    return this.scanning;
  }

  /**
   * Marks that the writer is gone for good (the job ended and its monitor exited): followers finish after
   * draining to the end of the file. Stops watching the file.
   */
  finish(): void {
    if (this.finishing || this.closed) return;
    this.finishing = true;
    this.updateWatch();
    void this.refresh().then(() => {
      this.finished = true;
      this.wake();
      this.releaseIdle();
    });
  }

  /**
   * Reads chunks of reconstructed content; see {@link ReadOptions}. If the requested start was punched
   * away, the first item is `{ skipped }`; a follower whose position gets punched while it lags gets
   * `{ skipped }` and goes on at the new start. Offsets are combined offsets throughout, so with `stream`
   * the offsets of consecutive chunks have gaps; every chunk is contiguous, and `offset + data.length` of
   * the last chunk is where to resume.
   *
   * Chunks of the same stream that are adjacent in the combined content are coalesced up to
   * `maxChunkBytes`. Pull-based: nothing happens while the consumer does not ask for the next item (not
   * even before the first one), and at most one chunk and one read buffer (≤ 1 MiB) are held.
   */
  read(opts: ReadOptions = {}): AsyncGenerator<LogChunk | LogSkipped, void, undefined> {
    return this.reader(opts);
  }

  /** Stops watching, ends followers, closes the file. Reads in progress end without error. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.updateWatch();
    this.wake();
    this.closeHandle();
  }

  private closeHandle(): void {
    const fh = this.fh;
    this.fh = null;
    this.scanCursor = null;
    // close() waits for reads in flight on the handle, so readers see their read finish, then `closed`.
    if (fh) fh.close().catch((err: unknown) => this.warn(`closing ${this.path}`, err));
  }

  /**
   * Once the writer is gone, a log nobody reads holds no file descriptor (a finished job's JobLog may be
   * kept, or forgotten without close()); the next refresh() or read() opens the file again.
   */
  private releaseIdle(): void {
    if (this.finished && this.readers === 0 && !this.scanning && this.fh) this.closeHandle();
  }

  // ---- scanning -------------------------------------------------------------------------------------

  private async runScans(): Promise<void> {
    try {
      while (this.rescan && !this.closed) {
        this.rescan = false;
        await this.scanToEnd();
      }
    } catch (err) {
      if (!this.closed) this.warn(`scanning ${this.path}`, err);
    } finally {
      this.scanning = null;
      if (this.followers === 0 && !this.watchAlways) this.scanCursor = null;
      this.releaseIdle();
    }
  }

  private async handle(): Promise<FileHandle | null> {
    if (this.fh) return this.fh;
    try {
      const fh = await open(this.path, 'r');
      if (this.closed) {
        await fh.close();
        return null;
      }
      this.fh = fh;
      // Now that it exists, inotify can take over from the poll.
      this.updateWatch();
      return fh;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  private async scanToEnd(): Promise<void> {
    const fh = await this.handle();
    if (!fh) return;
    // Reads of up to 4 MiB, four times a reader's: scanning and readers take turns on the event loop, and
    // the bigger share is what lets the scan (and so the punching) stay ahead of a writer that outpaces a
    // follower, instead of being held to the follower's pace.
    const cur = (this.scanCursor ??= new RecordCursor(64 * KiB, 4 * MiB));
    const rec = this.scanRec;
    // Always from the last record start: a torn line from the previous scan is read again whole.
    cur.seek(this.scanPos);
    for (;;) {
      const n = await cur.fill(fh, Number.POSITIVE_INFINITY);
      if (this.closed) return;
      if (n === 0) return;
      const before = this.scanPos;
      let lastIdx = this.idxPos[this.idxPos.length - 1] ?? 0;
      for (let st = cur.next(rec); st !== NEED_MORE; st = cur.next(rec)) {
        if (st === MALFORMED) {
          this.malformed++;
        } else if (rec.stream === 0) {
          this.outBytes += rec.contentEnd - rec.contentStart + (rec.partial ? 0 : 1);
        } else {
          this.errBytes += rec.contentEnd - rec.contentStart + (rec.partial ? 0 : 1);
        }
        const pos = cur.pos;
        this.scanPos = pos;
        if (pos - lastIdx >= this.indexStep) {
          this.idxPos.push(pos);
          this.idxOff.push(this.outBytes + this.errBytes);
          this.idxOut.push(this.outBytes);
          lastIdx = pos;
        }
      }
      if (this.scanPos !== before) {
        this.wake();
        await this.maybePunch();
        if (this.closed) return;
      }
      if (n < cur.requested) return;
    }
  }

  // ---- punching -------------------------------------------------------------------------------------

  private async maybePunch(): Promise<void> {
    if (this.punchDisabled || this.scanPos - this.startFilePos <= this.maxBytes) return;
    // Punch down to three quarters of the cap: one fallocate per quarter cap of growth, not per record.
    const keep = this.maxBytes - Math.floor(this.maxBytes / 4);
    const minPos = this.scanPos - keep;
    const i = lowerBound(this.idxPos, minPos);
    let next: LogCheckpoint;
    const pos = this.idxPos[i];
    const off = this.idxOff[i];
    const out = this.idxOut[i];
    if (pos !== undefined && off !== undefined && out !== undefined) {
      next = { startFilePos: pos, startOffset: off, stdoutBefore: out, stderrBefore: off - out };
    } else {
      // No index entry late enough (records bigger than the step): the scanned end is a record start too.
      next = {
        startFilePos: this.scanPos,
        startOffset: this.endOffset,
        stdoutBefore: this.outBytes,
        stderrBefore: this.errBytes,
      };
    }
    if (next.startFilePos <= this.startFilePos) return;
    const prev = this.checkpoint;
    // The new start is in effect (and persisted) before any byte is zeroed: readers that read the range
    // while fallocate runs notice their position is gone, and a restart after a crash in between finds a
    // start whose records are intact (the next punch, always from offset 0, covers the rest).
    this.setStart(next);
    try {
      this.onCheckpoint?.(next);
    } catch (err) {
      // Never zero what a restart could not skip. Like a failing fallocate, this ends punching for this
      // JobLog (a reopened one tries again) rather than retrying, and warning, on every scan.
      this.setStart(prev);
      this.punchDisabled = true;
      this.warn(`persisting the log checkpoint of ${this.path} failed; the log is not capped`, err);
      return;
    }
    try {
      await execFileAsync(this.fallocatePath, [
        '--punch-hole',
        '--offset',
        '0',
        '--length',
        String(next.startFilePos),
        this.path,
      ]);
    } catch (err) {
      // Nothing was lost: the data is still there, so the old start is valid again. Without hole punching
      // (e.g. a filesystem that cannot) the log simply grows; say so once.
      this.punchDisabled = true;
      if (this.startFilePos === next.startFilePos) {
        this.setStart(prev);
        try {
          this.onCheckpoint?.(prev);
        } catch (err2) {
          this.warn(`persisting the log checkpoint of ${this.path} failed`, err2);
        }
      }
      this.warn(`punching ${this.path} failed; the log is not capped`, err);
      return;
    }
    // Drop index entries that lie in the hole; keep one at the new start.
    const cut = lowerBound(this.idxPos, this.startFilePos);
    if (this.idxPos[cut] === this.startFilePos) {
      this.idxPos.splice(0, cut);
      this.idxOff.splice(0, cut);
      this.idxOut.splice(0, cut);
    } else {
      this.idxPos.splice(0, cut, this.startFilePos);
      this.idxOff.splice(0, cut, this.startOff);
      this.idxOut.splice(0, cut, this.stdoutBefore);
    }
  }

  private setStart(c: LogCheckpoint): void {
    this.startFilePos = c.startFilePos;
    this.startOff = c.startOffset;
    this.stdoutBefore = c.stdoutBefore;
  }

  // ---- watching -------------------------------------------------------------------------------------

  private updateWatch(): void {
    const want = !this.closed && !this.finishing && (this.followers > 0 || this.watchAlways);
    if (!want) {
      if (this.poll) clearInterval(this.poll);
      this.poll = null;
      this.watcher?.close();
      this.watcher = null;
      return;
    }
    // The poll covers what inotify misses: the file not existing yet, coalesced or dropped events.
    if (!this.poll) {
      this.poll = setInterval(() => {
        if (!this.watcher || this.watchingDir) this.tryWatch();
        void this.refresh();
      }, POLL_MS);
      this.poll.unref();
    }
    this.tryWatch();
  }

  private tryWatch(): void {
    if (this.closed || this.finishing || (this.watcher && !this.watchingDir)) return;
    try {
      const w = watch(this.path, { persistent: false }, (event) => {
        // After a rename the watch follows an inode that is no longer the log; the poll re-establishes it.
        if (event === 'rename') this.dropWatcher(w);
        void this.refresh();
      });
      w.on('error', () => this.dropWatcher(w));
      if (this.watcher) this.dropWatcher(this.watcher);
      this.watcher = w;
      this.watchingDir = false;
      return;
    } catch {
      // Typically ENOENT before conmon created the file: watch the directory for it to appear.
    }
    if (this.watcher) return;
    try {
      const name = basename(this.path);
      const w = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        if (filename !== null && filename !== name) return;
        this.tryWatch();
        void this.refresh();
      });
      w.on('error', () => this.dropWatcher(w));
      this.watcher = w;
      this.watchingDir = true;
    } catch {
      // No directory either: the poll goes on and tries again.
    }
  }

  private dropWatcher(w: FSWatcher): void {
    w.close();
    if (this.watcher === w) this.watcher = null;
  }

  private wake(): void {
    if (this.waiters.size === 0) return;
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** Resolves on the next scan progress, punch, finish, close or abort. */
  private changed(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private warn(message: string, err?: unknown): void {
    this.onWarning?.(message, err);
  }

  // ---- reading --------------------------------------------------------------------------------------

  /** Where reading for combined offset `offset` starts: the last index entry at or before it. */
  private seekPoint(offset: number): { pos: number; off: number } {
    const i = upperBound(this.idxOff, offset) - 1;
    const pos = this.idxPos[i];
    const off = this.idxOff[i];
    if (pos === undefined || off === undefined || pos < this.startFilePos) {
      return { pos: this.startFilePos, off: this.startOff };
    }
    return { pos, off };
  }

  /**
   * Combined offset where the last `n` lines of the selected stream(s) begin. Walks index segments from
   * the end, so it reads only about as much as those lines take (plus one segment).
   */
  private async tailStart(n: number, want: StreamId | undefined): Promise<number> {
    if (n <= 0) return this.endOffset;
    const fh = this.fh;
    if (!fh) return this.startOff;
    const start = this.startFilePos;
    const first = lowerBound(this.idxPos, start);
    // Segment boundaries: start, index entries after it, scanned end.
    const bounds: { pos: number; off: number }[] = [{ pos: start, off: this.startOff }];
    for (let i = first; i < this.idxPos.length; i++) {
      const pos = this.idxPos[i] ?? 0;
      if (pos > start && pos < this.scanPos) bounds.push({ pos, off: this.idxOff[i] ?? 0 });
    }
    const end = this.scanPos;
    const cur = new RecordCursor(256 * KiB);
    const rec = newRecord();
    // A trailing line without "\n" counts as a line (as with tail -n), so then N line ends suffice.
    let remaining = -1;
    for (let s = bounds.length - 1; s >= 0; s--) {
      const b = bounds[s];
      if (!b) break;
      const limit = bounds[s + 1]?.pos ?? end;
      const ends: number[] = [];
      let lastPartial: boolean | undefined;
      let off = b.off;
      cur.seek(b.pos);
      for (;;) {
        const got = await cur.fill(fh, limit);
        if (got === 0) break;
        if (this.startFilePos > b.pos || this.closed) return this.startOff; // punched meanwhile
        for (let st = cur.next(rec); st !== NEED_MORE; st = cur.next(rec)) {
          if (st === MALFORMED) continue;
          const c = rec.contentEnd - rec.contentStart + (rec.partial ? 0 : 1);
          off += c;
          if ((want === undefined || rec.stream === want) && c > 0) {
            lastPartial = rec.partial;
            if (!rec.partial) ends.push(off);
          }
        }
        if (got < cur.requested) break; // the file ends before the limit: truncated
      }
      if (remaining < 0) {
        if (lastPartial === undefined) continue; // nothing of the stream(s) in this segment
        remaining = lastPartial ? n : n + 1;
      }
      if (ends.length >= remaining) return ends[ends.length - remaining] ?? this.startOff;
      remaining -= ends.length;
    }
    return this.startOff;
  }

  private async *reader(o: ReadOptions): AsyncGenerator<LogChunk | LogSkipped, void, undefined> {
    const follow = o.follow ?? false;
    const signal = o.signal;
    const want: StreamId | undefined = o.stream === undefined ? undefined : o.stream === 'stdout' ? 0 : 1;
    const maxChunk = Math.max(1, Math.floor(o.maxChunkBytes ?? DEFAULT_CHUNK));
    if (this.closed || signal?.aborted) return;
    this.readers++;
    if (follow) {
      this.followers++;
      this.updateWatch();
    }
    try {
      await this.refresh();
      let from = Math.max(0, o.from ?? 0) || 0;
      if (o.tailLines !== undefined) {
        const t = await this.tailStart(Math.floor(o.tailLines), want);
        from = o.from === undefined ? t : Math.max(from, t);
      }
      if (this.closed || signal?.aborted) return;
      if (from < this.startOff) {
        yield { skipped: this.startOff - from };
        from = this.startOff;
      }

      const seek = this.seekPoint(from);
      const cur = new RecordCursor(64 * KiB);
      cur.seek(seek.pos);
      let off = seek.off; // combined offset at cur.pos
      const rec = newRecord();
      let lastTime = 0;

      // The chunk being assembled: content is copied into it once, from the read buffer.
      let cBuf: Buffer | null = null;
      let cSize = 0;
      let cStream: StreamId = 0;
      let cOffset = 0;
      let cTime = 0;
      const take = (): LogChunk => {
        const b = cBuf ?? Buffer.alloc(0);
        // A chunk cut short (stream switch, end of data) is copied to its size rather than pinning the
        // whole maxChunk allocation for as long as the consumer keeps it.
        const data = cSize === b.length ? b : cSize >= b.length / 2 ? b.subarray(0, cSize) : copyOf(b, cSize);
        cBuf = null;
        const chunk = {
          stream: STREAM_NAMES[cStream] ?? 'stdout',
          data,
          offset: cOffset,
          time: new Date(cTime),
        };
        cSize = 0;
        return chunk;
      };

      for (;;) {
        if (this.closed || signal?.aborted) return;
        if (cur.pos < this.startFilePos) {
          // Punched while we lagged (or while our read ran: its bytes may be zeros, so they were not used).
          if (cBuf) {
            yield take();
            continue;
          }
          const gone = this.startOff - Math.max(off, from);
          cur.seek(this.startFilePos);
          off = this.startOff;
          if (gone > 0) yield { skipped: gone };
          continue;
        }
        // Readers parse on their own up to the end of the file rather than waiting for the scan: they
        // start at a record start and apply the same rules, so they count the same offsets, and a punch
        // never reaches past the scanned part.
        const fh = this.fh;
        let atEnd = true;
        if (fh) {
          let n: number;
          try {
            n = await cur.fill(fh, Number.POSITIVE_INFINITY);
          } catch (err) {
            if (this.closed) return;
            throw err;
          }
          if (this.closed) return;
          atEnd = n < cur.requested;
          if (atEnd && cur.end < this.scanPos) {
            // Short of what the scanner has seen. Usually the file simply grew after our read (a scan ran
            // meanwhile): read again. Only a file now shorter than our position was truncated or replaced.
            let size: number;
            try {
              size = (await fh.stat()).size;
            } catch (err) {
              if (this.closed) return;
              throw err;
            }
            if (size > cur.end) continue;
            if (cBuf) yield take();
            return;
          }
        }
        if (cur.pos < this.startFilePos) continue;

        for (let st = cur.next(rec); st !== NEED_MORE; st = cur.next(rec)) {
          if (st === MALFORMED) continue;
          const len = rec.contentEnd - rec.contentStart + (rec.partial ? 0 : 1);
          const recOff = off;
          off += len;
          if (off <= from || (want !== undefined && rec.stream !== want)) continue;
          let s = recOff < from ? from - recOff : 0;
          // An F record's stripped "\n" is the line end that follows its content in the buffer, so the
          // reconstructed bytes are always the contiguous range [contentStart, contentStart + len).
          const base = rec.contentStart;
          while (s < len) {
            if (cBuf && (cStream !== rec.stream || cOffset + cSize !== recOff + s || cSize === maxChunk)) {
              yield take();
              if (this.closed || signal?.aborted) return;
            }
            if (!cBuf) {
              const t = parseTimestamp(cur.buf, rec.lineStart, rec.timeEnd);
              if (!Number.isNaN(t)) lastTime = t;
              cBuf = Buffer.allocUnsafe(maxChunk);
              cStream = rec.stream;
              cOffset = recOff + s;
              cTime = lastTime;
            }
            const room = maxChunk - cSize;
            const n2 = len - s < room ? len - s : room;
            cur.buf.copy(cBuf, cSize, base + s, base + s + n2);
            cSize += n2;
            s += n2;
          }
        }
        if (!atEnd) continue;
        // At the end of the file (a torn last line stays unconsumed): hand out what we have, then stop or
        // wait for the file to change.
        if (cBuf) {
          yield take();
          continue;
        }
        if (!follow || this.finished) return;
        const changed = this.changed(signal);
        void this.refresh();
        await changed;
      }
    } finally {
      this.readers--;
      if (follow) {
        this.followers--;
        this.updateWatch();
      }
      this.releaseIdle();
    }
  }
}

function copyOf(b: Buffer, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  b.copy(out, 0, 0, size);
  return out;
}

/** First index with `a[i] >= v` (a sorted ascending). */
function lowerBound(a: readonly number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] ?? 0) < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index with `a[i] > v` (a sorted ascending). */
function upperBound(a: readonly number[], v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] ?? 0) <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function execFileAsync(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: FALLOCATE_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err)
        reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve();
    });
  });
}
