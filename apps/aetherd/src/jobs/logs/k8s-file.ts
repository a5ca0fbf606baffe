import { type FileHandle } from 'node:fs/promises';

/**
 * Parsing of the Kubernetes CRI "k8s-file" log format that conmon writes:
 * `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n`, one record per line.
 *
 * Everything here works on Buffers and byte positions: a job's log can be gigabytes, so content is
 * never turned into strings, and a record is described by positions into the buffer it was read into.
 */

/** Stream of a record: 0 = stdout, 1 = stderr (numbers, so the hot loop compares small integers). */
export type StreamId = 0 | 1;

/** One parsed record, as positions into the cursor's buffer; reused from record to record. */
export interface K8sRecord {
  stream: StreamId;
  /** `P`: content is a chunk without newline. `F`: a full line whose "\n" conmon stripped. */
  partial: boolean;
  /** Buffer position of the line start (the timestamp starts here). */
  lineStart: number;
  /** Buffer position just after the timestamp. */
  timeEnd: number;
  contentStart: number;
  contentEnd: number;
}

/** Creates a record to be filled by {@link RecordCursor.next}. */
export function newRecord(): K8sRecord {
  return { stream: 0, partial: false, lineStart: 0, timeEnd: 0, contentStart: 0, contentEnd: 0 };
}

/** Number of bytes a record adds to the reconstructed content: F records get their "\n" back. */
export function contentLength(rec: K8sRecord): number {
  return rec.contentEnd - rec.contentStart + (rec.partial ? 0 : 1);
}

/** What {@link RecordCursor.next} found. */
export const RECORD = 0;
export const MALFORMED = 1;
export const NEED_MORE = 2;
export type NextResult = typeof RECORD | typeof MALFORMED | typeof NEED_MORE;

/**
 * A line longer than this is malformed and skipped as a whole. conmon never writes one (its read buffer is
 * 8 KiB), but a bound keeps a corrupt file from growing buffers without end. Every cursor applies the same
 * rule at the same record starts, so the daemon's counters and every reader agree on offsets.
 */
export const MAX_LINE = 1024 * 1024;

const NL = 0x0a;
const SP = 0x20;
const TS_MAX = 64;

/**
 * Sequential reader of the records of one file range, through a shared file handle and one buffer that
 * grows (up to `maxSize`, at least {@link MAX_LINE}) only while reads fill it, so an idle follower holds
 * little memory.
 *
 * `next()` is synchronous (one call per record, no promise per record); when the buffer holds no further
 * complete line, the caller awaits `fill()`, which rereads from the first unconsumed byte. A torn line at
 * the end of what was read is thereby never consumed before its "\n" is there.
 */
export class RecordCursor {
  /** The bytes read last; record positions refer to it. Valid until the next `fill()`. */
  buf: Buffer;
  private view: Buffer;
  private bufPos = 0;
  private len = 0;
  private p = 0;
  private skipping = false;
  /** How many bytes the last `fill()` asked for. */
  requested = 0;

  private readonly maxSize: number;

  constructor(initialSize: number, maxSize: number = MAX_LINE) {
    this.maxSize = Math.max(maxSize, MAX_LINE);
    this.buf = Buffer.allocUnsafe(Math.min(initialSize, this.maxSize));
    this.view = this.buf.subarray(0, 0);
  }

  /** File position of the first unconsumed byte (a record start unless inside an overlong line). */
  get pos(): number {
    return this.bufPos + this.p;
  }

  /** File position just after the bytes read last. */
  get end(): number {
    return this.bufPos + this.len;
  }

  /** Restarts at a record start; drops what was buffered. */
  seek(pos: number): void {
    this.bufPos = pos;
    this.len = 0;
    this.p = 0;
    this.skipping = false;
    this.view = this.buf.subarray(0, 0);
  }

  /**
   * Reads from `pos` up to `limit` (exclusive; a file position), as much as the buffer takes.
   * Resolves to the number of bytes read: 0 at `limit` or at the end of the file; less than
   * {@link requested} only at the end of the file.
   */
  async fill(fh: FileHandle, limit: number): Promise<number> {
    const start = this.pos;
    const want = limit - start;
    if (want <= 0) return 0;
    // Grow when the previous read filled the buffer and more is wanted: big reads are what makes a busy
    // log fast, small buffers are what makes an idle follower cheap. Growing up to MAX_LINE is also what
    // lets a line that does not fit be read whole, or recognised as overlong.
    if (this.len === this.buf.length && want > this.buf.length && this.buf.length < this.maxSize) {
      this.buf = Buffer.allocUnsafe(
        Math.min(this.maxSize, Math.max(this.buf.length * 2, Math.min(want, this.maxSize))),
      );
    }
    this.requested = Math.min(this.buf.length, want);
    const { bytesRead } = await fh.read(this.buf, 0, this.requested, start);
    this.bufPos = start;
    this.len = bytesRead;
    this.p = 0;
    this.view = this.buf.subarray(0, bytesRead);
    return bytesRead;
  }

  /** Parses the next complete line into `rec`; `NEED_MORE` when the buffer holds no further complete line. */
  next(rec: K8sRecord): NextResult {
    const view = this.view;
    const len = this.len;
    const ls = this.p;
    if (ls >= len) return NEED_MORE;
    if (this.skipping) {
      const nl = view.indexOf(NL, ls);
      if (nl < 0) {
        this.p = len;
        return NEED_MORE;
      }
      this.p = nl + 1;
      this.skipping = false;
      return MALFORMED;
    }
    const nl = view.indexOf(NL, ls);
    if (nl < 0) {
      if (len - ls >= MAX_LINE) {
        // Overlong: consume up to the next "\n", which a later fill() brings, and count it once then.
        this.skipping = true;
        this.p = len;
      }
      return NEED_MORE;
    }
    this.p = nl + 1;
    // Header: "<ts> <stdout|stderr> <F|P> "
    const sp = view.indexOf(SP, ls);
    if (sp <= ls || sp >= nl || sp - ls > TS_MAX) return MALFORMED;
    const s = sp + 1;
    // "stdout " / "stderr ": shared prefix "std", then "out" or "err", then a space, the tag and a space.
    if (
      s + 8 > nl ||
      view[s] !== 0x73 ||
      view[s + 1] !== 0x74 ||
      view[s + 2] !== 0x64 ||
      view[s + 6] !== SP
    ) {
      return MALFORMED;
    }
    const c3 = view[s + 3];
    let stream: StreamId;
    if (c3 === 0x6f && view[s + 4] === 0x75 && view[s + 5] === 0x74) stream = 0;
    else if (c3 === 0x65 && view[s + 4] === 0x72 && view[s + 5] === 0x72) stream = 1;
    else return MALFORMED;
    const tag = view[s + 7];
    let partial: boolean;
    if (tag === 0x46) partial = false;
    else if (tag === 0x50) partial = true;
    else return MALFORMED;
    // The space after the tag is always written; an empty full line is "<ts> stdout F \n". A line that ends
    // right after the tag is taken as empty content rather than dropped.
    let p = s + 8;
    if (p < nl) {
      if (view[p] !== SP) return MALFORMED;
      p++;
    }
    rec.stream = stream;
    rec.partial = partial;
    rec.lineStart = ls;
    rec.timeEnd = sp;
    rec.contentStart = p;
    rec.contentEnd = nl;
    return RECORD;
  }
}

function digits(b: Buffer, i: number, n: number): number {
  let v = 0;
  for (let k = 0; k < n; k++) {
    const c = (b[i + k] ?? 0) - 0x30;
    if (c < 0 || c > 9) return NaN;
    v = v * 10 + c;
  }
  return v;
}

/**
 * Parses an RFC 3339 timestamp (`2026-11-21T06:05:22.949080358+00:00`, fraction optional, `Z` or an
 * offset) from `buf[start, end)` without building a string. Returns epoch milliseconds, NaN if malformed.
 */
export function parseTimestamp(buf: Buffer, start: number, end: number): number {
  if (end - start < 20) return NaN;
  const year = digits(buf, start, 4);
  const month = digits(buf, start + 5, 2);
  const day = digits(buf, start + 8, 2);
  const hour = digits(buf, start + 11, 2);
  const min = digits(buf, start + 14, 2);
  const sec = digits(buf, start + 17, 2);
  if (
    buf[start + 4] !== 0x2d ||
    buf[start + 7] !== 0x2d ||
    (buf[start + 10] !== 0x54 && buf[start + 10] !== 0x74) ||
    buf[start + 13] !== 0x3a ||
    buf[start + 16] !== 0x3a
  ) {
    return NaN;
  }
  let i = start + 19;
  let ms = 0;
  if (buf[i] === 0x2e) {
    i++;
    let scale = 100;
    const from = i;
    while (i < end) {
      const c = (buf[i] ?? 0) - 0x30;
      if (c < 0 || c > 9) break;
      ms += c * scale;
      scale /= 10;
      i++;
    }
    if (i === from) return NaN;
    ms = Math.floor(ms);
  }
  let offsetMin = 0;
  const z = buf[i];
  if (z === 0x5a || z === 0x7a) {
    i++;
  } else if ((z === 0x2b || z === 0x2d) && i + 6 === end && buf[i + 3] === 0x3a) {
    const oh = digits(buf, i + 1, 2);
    const om = digits(buf, i + 4, 2);
    offsetMin = (z === 0x2d ? -1 : 1) * (oh * 60 + om);
    i += 6;
  } else {
    return NaN;
  }
  if (i !== end) return NaN;
  const t = Date.UTC(year, month - 1, day, hour, min, sec, ms) - offsetMin * 60_000;
  return Number.isFinite(t) ? t : NaN;
}
