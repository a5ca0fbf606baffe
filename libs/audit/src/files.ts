import { closeSync, fstatSync, openSync, readSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import {
  CHAIN_TAIL_BYTES,
  HASH_MEMBER,
  HASH_TAIL_BYTES,
  PREV_HASH_MEMBER,
  SEQ_PREFIX,
  sha256Hex,
} from './record';

/** A rotated file, `<path>.<n>`; n = 1 is the oldest. */
export interface RotatedFile {
  n: number;
  path: string;
}

/** The rotated files of the log at `path`, oldest first (by n, numerically). Missing directory: none. */
export function listRotated(path: string): RotatedFile[] {
  const dir = dirname(path);
  const prefix = basename(path) + '.';
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: RotatedFile[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    if (!/^[1-9][0-9]{0,15}$/.test(rest)) continue;
    out.push({ n: Number(rest), path: join(dir, name) });
  }
  return out.sort((a, b) => a.n - b.n);
}

const SEQ_PREFIX_BYTES = Buffer.from(SEQ_PREFIX, 'latin1');
const PREV_MEMBER_BYTES = Buffer.from(PREV_HASH_MEMBER, 'latin1');
const HASH_MEMBER_BYTES = Buffer.from(HASH_MEMBER, 'latin1');
const MIN_LINE = SEQ_PREFIX_BYTES.length + 2 + CHAIN_TAIL_BYTES;

/** The chain members of one line, read from their fixed places without parsing the JSON. */
export interface Frame {
  seq: number;
  prevHash: string;
  hash: string;
}

/**
 * Reads `seq` (the first member), `prev_hash` and `hash` (the last two) of the line buf[start, end)
 * (without its newline); a string says why the line does not have the record layout.
 */
export function parseFrame(buf: Buffer, start: number, end: number): Frame | string {
  if (end - start < MIN_LINE) return 'not a record (too short)';
  if (buf.compare(SEQ_PREFIX_BYTES, 0, SEQ_PREFIX_BYTES.length, start, start + SEQ_PREFIX_BYTES.length) !== 0)
    return 'not a record (does not begin with {"seq":)';
  let i = start + SEQ_PREFIX_BYTES.length;
  let seq = 0;
  const digitsStart = i;
  for (; i < end; i++) {
    const c = buf[i] as number;
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
  }
  if (
    i === digitsStart ||
    i - digitsStart > 15 ||
    buf[i] !== 44 ||
    (buf[digitsStart] === 48 && i > digitsStart + 1)
  )
    return 'not a record (bad seq)';
  if (buf[end - 1] !== 0x7d || buf[end - 2] !== 0x22) return 'not a record (does not end with "})';
  const hm = end - HASH_TAIL_BYTES - 1;
  if (buf.compare(HASH_MEMBER_BYTES, 0, HASH_MEMBER_BYTES.length, hm, hm + HASH_MEMBER_BYTES.length) !== 0)
    return 'not a record (no "hash" as the last member)';
  const pm = end - CHAIN_TAIL_BYTES;
  if (buf.compare(PREV_MEMBER_BYTES, 0, PREV_MEMBER_BYTES.length, pm, pm + PREV_MEMBER_BYTES.length) !== 0)
    return 'not a record (no "prev_hash" before "hash")';
  return {
    seq,
    prevHash: buf.toString('latin1', pm + PREV_MEMBER_BYTES.length, pm + PREV_MEMBER_BYTES.length + 64),
    hash: buf.toString('latin1', end - 66, end - 2),
  };
}

/**
 * sha256 hex of the line's canonical body: the line buf[start, end) with its trailing `,"hash":"…"}`
 * replaced by `}` (done in place and undone, so no copy is made).
 */
export function bodyHash(buf: Buffer, start: number, end: number): string {
  const at = end - HASH_TAIL_BYTES;
  const saved = buf[at] as number;
  buf[at] = 0x7d;
  try {
    return sha256Hex(buf.subarray(start, at + 1));
  } finally {
    buf[at] = saved;
  }
}

/** The end of a file: where its last complete line starts and ends, and what follows it unterminated. */
export interface FileTail {
  size: number;
  /** Bytes up to and including the last newline. */
  goodSize: number;
  /** The last complete line (without newline), or null when the file has none. */
  lastLine: Buffer | null;
}

/** Reads the end of a file backwards until its last complete line is found. */
export function readTail(path: string): FileTail {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    let window = Math.min(size, 64 * 1024);
    for (;;) {
      const buf = Buffer.allocUnsafe(window);
      const from = size - window;
      let got = 0;
      while (got < window) {
        const n = readSync(fd, buf, got, window - got, from + got);
        if (n === 0) break;
        got += n;
      }
      const data = buf.subarray(0, got);
      const lastNl = data.lastIndexOf(10);
      if (lastNl < 0) {
        if (from === 0) return { size, goodSize: 0, lastLine: null };
        window = Math.min(size, window * 4);
        continue;
      }
      const prevNl = lastNl === 0 ? -1 : data.lastIndexOf(10, lastNl - 1);
      if (prevNl < 0 && from > 0) {
        window = Math.min(size, window * 4);
        continue;
      }
      return {
        size,
        goodSize: from + lastNl + 1,
        lastLine: Buffer.from(data.subarray(prevNl + 1, lastNl)),
      };
    }
  } finally {
    closeSync(fd);
  }
}
