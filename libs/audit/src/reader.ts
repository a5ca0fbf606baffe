import { statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AuditCorruptError } from './errors';
import { listRotated } from './files';
import type { AuditRecord } from './record';

/** Which records to yield; every given condition must hold. */
export interface AuditFilter {
  intentId?: string;
  jobId?: string;
  actor?: string;
  /** Only records whose policy decision did not allow the action (deny, or ask not yet approved). */
  deniedOnly?: boolean;
  /** An exact action (`jobs.SubmitJob`), or a prefix ending in `*` (`jobs.*`). */
  action?: string;
}

export interface ReadAuditOptions {
  /** Keep yielding records as they are appended (also across rotations) until `signal` aborts. */
  follow?: boolean;
  filter?: AuditFilter;
  /** Start at this seq (records before it are skipped; whole rotated files are skipped unread). */
  fromSeq?: number;
  /** Ends the iteration (quietly) when aborted. */
  signal?: AbortSignal;
  /** How often to look for new records while following. Default 100 ms. */
  pollMs?: number;
}

/** Whether a record passes a filter. */
export function matchesFilter(r: AuditRecord, f: AuditFilter): boolean {
  if (f.intentId !== undefined && r.intent_id !== f.intentId) return false;
  if (f.jobId !== undefined && r.job_id !== f.jobId) return false;
  if (f.actor !== undefined && r.actor !== f.actor) return false;
  if (f.deniedOnly && (r.decision === null || r.decision.allowed)) return false;
  if (f.action !== undefined) {
    if (f.action.endsWith('*')) {
      if (!r.action.startsWith(f.action.slice(0, -1))) return false;
    } else if (r.action !== f.action) return false;
  }
  return true;
}

const EMPTY = Buffer.alloc(0);

/** Reads complete lines of a file from where it left off; an unterminated tail waits for more. */
class LineCursor {
  private pos = 0;
  private carry: Buffer = EMPTY;
  private lineNo = 0;
  private readonly buf = Buffer.allocUnsafe(1024 * 1024);

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly ino: number,
  ) {}

  static async open(path: string): Promise<LineCursor | null> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return new LineCursor(path, fh, (await fh.stat()).ino);
  }

  /** The complete lines of the next chunk, parsed; null at end of file. */
  async next(): Promise<AuditRecord[] | null> {
    const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, this.pos);
    if (bytesRead === 0) return null;
    this.pos += bytesRead;
    const data = this.carry.length ? Buffer.concat([this.carry, this.buf.subarray(0, bytesRead)]) : this.buf;
    const end = this.carry.length ? data.length : bytesRead;
    const out: AuditRecord[] = [];
    let start = 0;
    let nl: number;
    const view = data.subarray(0, end);
    while ((nl = view.indexOf(10, start)) !== -1) {
      this.lineNo++;
      const text = data.toString('utf8', start, nl);
      start = nl + 1;
      let rec: AuditRecord;
      try {
        rec = JSON.parse(text) as AuditRecord;
      } catch {
        throw new AuditCorruptError(
          `${this.path}: line ${this.lineNo} is not a record (run "aether audit verify")`,
        );
      }
      if (typeof rec !== 'object' || rec === null || typeof rec.seq !== 'number')
        throw new AuditCorruptError(
          `${this.path}: line ${this.lineNo} is not a record (run "aether audit verify")`,
        );
      out.push(rec);
    }
    this.carry = start < end ? Buffer.from(data.subarray(start, end)) : EMPTY;
    return out;
  }

  /** seq of the first record, or null when the file has none. */
  async firstSeq(): Promise<number | null> {
    for (;;) {
      const recs = await this.next();
      if (recs === null) return null;
      if (recs[0]) return recs[0].seq;
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

async function firstSeqOf(path: string): Promise<number | null> {
  const c = await LineCursor.open(path);
  if (!c) return null;
  try {
    return await c.firstSeq();
  } finally {
    await c.close();
  }
}

function inode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}

/**
 * Yields the records of the log at `path` in order, across its rotated files (oldest first) and the
 * active one, that pass `filter`. With `follow`, keeps yielding records as they are appended — noticing
 * rotations — until `signal` aborts. An unterminated last line is not yielded until its newline arrives.
 * Does not verify hashes (see verifyAuditLog); throws AuditCorruptError on a line that is not JSON.
 */
export async function* readAuditRecords(
  path: string,
  options: ReadAuditOptions = {},
): AsyncGenerator<AuditRecord, void, undefined> {
  const filter = options.filter ?? {};
  const signal = options.signal;
  const pollMs = options.pollMs ?? 100;
  let lastSeq = Math.max(0, (options.fromSeq ?? 1) - 1);

  // Rotated files, skipping those that end before fromSeq (the next file starts at or before it).
  const rotated = listRotated(path);
  const pathsInOrder = [...rotated.map((r) => r.path), path];
  let first = 0;
  if (lastSeq > 0) {
    while (first < rotated.length) {
      const nextFirst = await firstSeqOf(pathsInOrder[first + 1] as string);
      if (nextFirst === null || nextFirst > lastSeq + 1) break;
      first++;
    }
  }

  async function* drain(c: LineCursor): AsyncGenerator<AuditRecord, void, undefined> {
    for (;;) {
      if (signal?.aborted) return;
      const recs = await c.next();
      if (recs === null) return;
      for (const r of recs) {
        if (r.seq <= lastSeq) continue;
        lastSeq = r.seq;
        if (matchesFilter(r, filter)) yield r;
      }
    }
  }

  /** Reads one whole file (by path), if it still exists. */
  async function* drainFile(file: string): AsyncGenerator<AuditRecord, void, undefined> {
    const c = await LineCursor.open(file);
    if (!c) return;
    try {
      yield* drain(c);
    } finally {
      await c.close();
    }
  }

  for (const r of rotated.slice(first)) {
    yield* drainFile(r.path);
    if (signal?.aborted) return;
  }
  // The highest n of the rotated files read (or known to be covered by a handle).
  let lastN = rotated[rotated.length - 1]?.n ?? 0;

  /**
   * Reads the files rotated since the last look, oldest first: skipping the one whose inode is `readIno`
   * (the old active file, already read through its handle) and stopping at the one whose inode is
   * `openIno` (the active file just opened, which may have been rotated meanwhile; its handle reads it).
   */
  async function* catchUp(
    readIno: number | null,
    openIno: number | null,
  ): AsyncGenerator<AuditRecord, void, undefined> {
    for (const r of listRotated(path)) {
      if (r.n <= lastN) continue;
      const ino = inode(r.path);
      if (ino !== null && ino === openIno) {
        lastN = r.n;
        return;
      }
      if (ino === null || ino !== readIno) yield* drainFile(r.path);
      lastN = r.n;
    }
  }

  let cur: LineCursor | null = null;
  try {
    for (;;) {
      if (signal?.aborted) return;
      if (!cur) {
        cur = await LineCursor.open(path);
        yield* catchUp(null, cur?.ino ?? null);
      }
      if (cur) {
        yield* drain(cur);
        if (!options.follow) return;
        if (inode(path) !== cur.ino) {
          // Rotated (or removed) under us: finish the old file, then the files rotated after it.
          yield* drain(cur);
          const oldIno = cur.ino;
          await cur.close();
          cur = null;
          yield* catchUp(oldIno, null);
          continue;
        }
      } else if (!options.follow) {
        return;
      }
      try {
        await sleep(pollMs, undefined, signal ? { signal } : {});
      } catch {
        return;
      }
    }
  } finally {
    await cur?.close();
  }
}
