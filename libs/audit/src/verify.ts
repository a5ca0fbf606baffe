import { type KeyObject } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { readCheckpoint, verifyCheckpointSignature, type Checkpoint } from './checkpoint';
import { bodyHash, listRotated, parseFrame } from './files';
import { GENESIS_HASH } from './record';

/**
 * What is wrong with the first bad record:
 * - `malformed`: not a record (not JSON, not the record layout, an unterminated line inside the log);
 * - `hash_mismatch`: the record's content does not match its hash (an edit), or its hash differs from
 *   the one a checkpoint vouches for at that seq (the chain was rewritten);
 * - `chain_break`: its prev_hash is not the previous record's hash (a deletion, a reordering, an insert);
 * - `seq_gap`: chained correctly but numbered out of sequence;
 * - `truncated`: the log ends before the seq the checkpoint vouches for (records removed from the tail);
 * - `bad_checkpoint`: the checkpoint file is unreadable or its signature does not verify.
 */
export type VerifyProblem =
  'malformed' | 'hash_mismatch' | 'chain_break' | 'seq_gap' | 'truncated' | 'bad_checkpoint';

export interface VerifyOptions {
  /** A signed checkpoint of the head, kept outside the log: catches a truncated tail. */
  checkpointPath?: string;
  /** Checks the checkpoint's signature: Ed25519 public key (KeyObject, or PEM of the public or private key). */
  publicKey?: KeyObject | string | Buffer;
  /** Accept a log whose oldest files were removed (the first record need not be seq 1). Default false. */
  allowPrunedStart?: boolean;
}

export interface BadRecord {
  /** The file, or the checkpoint file for `bad_checkpoint`. */
  file: string;
  /** 1-based line in that file (for `truncated`: the line after the last one). */
  line: number;
  /** The seq the record claims (for `truncated`: the first missing seq), when known. */
  seq?: number;
  problem: VerifyProblem;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Valid records checked (up to the first bad one). */
  records: number;
  /** Files walked, oldest first. */
  files: string[];
  /** The last valid record. */
  head?: { seq: number; hash: string };
  firstBad?: BadRecord;
  /** The checkpoint, when one was given and could be read. */
  checkpoint?: { seq: number; hash: string; ts: string; signature: 'valid' | 'invalid' | 'not_checked' };
  /** Not failures: an unterminated last line of the active file (a write in progress or a crash). */
  warnings: string[];
}

const CHUNK = 8 * 1024 * 1024;

/**
 * Verifies the whole log at `path`: the rotated files `<path>.1`, `<path>.2` … (oldest first), then the
 * active file. Recomputes every record's hash, checks that each prev_hash is the previous record's hash
 * and that seq continues by one (starting at 1 with 64 zeros as prev_hash), and with a checkpoint that the
 * log reaches the seq it vouches for with the same hash. Stops at the first bad record and names it.
 */
export async function verifyAuditLog(path: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  const result: VerifyResult = { ok: true, records: 0, files: [], warnings: [] };
  const handles: FileHandle[] = [];
  const openFile = async (file: string): Promise<FileHandle> => {
    const fh = await open(file, 'r');
    handles.push(fh);
    return fh;
  };
  try {
    // Open the rotated files and the active one first: a rotation while the walk runs renames the
    // active file but does not change what its handle reads.
    const rotated = listRotated(path);
    const rotatedHandles: { file: string; fh: FileHandle }[] = [];
    for (const r of rotated) rotatedHandles.push({ file: r.path, fh: await openFile(r.path) });
    let active: { file: string; fh: FileHandle; ino: number } | null = null;
    if (existsSync(path)) {
      const fh = await openFile(path);
      active = { file: path, fh, ino: (await fh.stat()).ino };
    }

    let checkpoint: Checkpoint | null = null;
    let checkpointBad: BadRecord | null = null;
    if (options.checkpointPath !== undefined) {
      try {
        checkpoint = await readCheckpoint(options.checkpointPath);
        let signature: 'valid' | 'invalid' | 'not_checked' = 'not_checked';
        if (options.publicKey !== undefined)
          signature = verifyCheckpointSignature(checkpoint, options.publicKey) ? 'valid' : 'invalid';
        result.checkpoint = { seq: checkpoint.seq, hash: checkpoint.hash, ts: checkpoint.ts, signature };
        if (signature === 'invalid') {
          checkpointBad = {
            file: options.checkpointPath,
            line: 1,
            problem: 'bad_checkpoint',
            message: `checkpoint ${options.checkpointPath}: the signature does not verify with the given key (forged or altered)`,
          };
          checkpoint = null;
        }
      } catch (err) {
        checkpointBad = {
          file: options.checkpointPath,
          line: 1,
          problem: 'bad_checkpoint',
          message: (err as Error).message,
        };
      }
    }

    let expectedPrev = GENESIS_HASH;
    let lastSeq = 0;
    let bad: BadRecord | null = null;
    let lastFile = path;
    let lastLine = 0;

    const walkFile = async (file: string, fh: FileHandle, isActive: boolean): Promise<void> => {
      result.files.push(file);
      let lineNo = 0;
      const check = (buf: Buffer, s: number, e: number): BadRecord | null => {
        lineNo++;
        const frame = parseFrame(buf, s, e);
        if (typeof frame === 'string') return { file, line: lineNo, problem: 'malformed', message: frame };
        const at = { file, line: lineNo, seq: frame.seq };
        let parsed: { seq?: unknown; prev_hash?: unknown; hash?: unknown; ts?: unknown; action?: unknown };
        try {
          parsed = JSON.parse(buf.toString('utf8', s, e)) as typeof parsed;
        } catch (err) {
          return { ...at, problem: 'malformed', message: `not JSON: ${(err as Error).message}` };
        }
        if (
          parsed.seq !== frame.seq ||
          parsed.prev_hash !== frame.prevHash ||
          parsed.hash !== frame.hash ||
          typeof parsed.ts !== 'object' ||
          typeof parsed.action !== 'string'
        )
          return { ...at, problem: 'malformed', message: 'not a record (members missing or repeated)' };
        if (bodyHash(buf, s, e) !== frame.hash)
          return {
            ...at,
            problem: 'hash_mismatch',
            message: `seq ${frame.seq}: content does not match its hash (edited)`,
          };
        const first = result.records === 0;
        if (!(first && options.allowPrunedStart)) {
          if (frame.prevHash !== expectedPrev)
            return {
              ...at,
              problem: 'chain_break',
              message: first
                ? `seq ${frame.seq}: the log does not start at the first record (prev_hash is not the genesis hash)`
                : `seq ${frame.seq}: prev_hash is not the hash of the record before it (seq ${lastSeq}): a record was deleted, inserted or moved`,
            };
          if (frame.seq !== lastSeq + 1)
            return { ...at, problem: 'seq_gap', message: `seq ${frame.seq} follows seq ${lastSeq}` };
        }
        if (checkpoint && frame.seq === checkpoint.seq && frame.hash !== checkpoint.hash)
          return {
            ...at,
            problem: 'hash_mismatch',
            message: `seq ${frame.seq}: hash differs from the one the checkpoint of ${checkpoint.ts} vouches for (the chain was rewritten)`,
          };
        expectedPrev = frame.hash;
        lastSeq = frame.seq;
        result.records++;
        lastFile = file;
        lastLine = lineNo;
        return null;
      };

      let buf = Buffer.allocUnsafe(CHUNK);
      let start = 0;
      let end = 0;
      for (;;) {
        if (start > 0) {
          buf.copy(buf, 0, start, end);
          end -= start;
          start = 0;
        }
        if (end === buf.length) {
          const bigger = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(bigger, 0, 0, end);
          buf = bigger;
        }
        const { bytesRead } = await fh.read(buf, end, buf.length - end, null);
        if (bytesRead === 0) break;
        end += bytesRead;
        const view = buf.subarray(0, end);
        let nl: number;
        while ((nl = view.indexOf(10, start)) !== -1) {
          bad = check(buf, start, nl);
          start = nl + 1;
          if (bad) break;
        }
        if (bad) break;
      }
      if (!bad && end > start) {
        if (isActive) {
          result.warnings.push(
            `${file}: ignored an unterminated last line (${end - start} bytes after line ${lineNo}; a write in progress or a crash)`,
          );
        } else {
          bad = {
            file,
            line: lineNo + 1,
            problem: 'malformed',
            message: `unterminated last line (${end - start} bytes) in a rotated file`,
          };
        }
      }
    };

    for (const { file, fh } of rotatedHandles) {
      if (bad) break;
      await walkFile(file, fh, false);
    }
    if (!bad && active) {
      // Files rotated between listing and opening the active file come before it; the active handle
      // may by now be one of them (then the walk ends there: a consistent snapshot).
      const lastN = rotated[rotated.length - 1]?.n ?? 0;
      for (const r of listRotated(path)) {
        if (bad || r.n <= lastN) continue;
        if (inode(r.path) === active.ino) {
          active.file = r.path;
          break;
        }
        await walkFile(r.path, await openFile(r.path), false);
      }
      if (!bad) await walkFile(active.file, active.fh, active.file === path);
    }

    if (result.records > 0) result.head = { seq: lastSeq, hash: expectedPrev };
    if (!bad && checkpoint && checkpoint.seq > lastSeq)
      bad = {
        file: lastFile,
        line: lastLine + 1,
        seq: lastSeq + 1,
        problem: 'truncated',
        message:
          `the log ends at seq ${lastSeq}, but the checkpoint of ${checkpoint.ts} vouches for seq ` +
          `${checkpoint.seq}: records ${lastSeq + 1}–${checkpoint.seq} were removed`,
      };
    bad ??= checkpointBad;
    if (bad) {
      result.ok = false;
      result.firstBad = bad;
    }
    return result;
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }
}

function inode(path: string): number | null {
  try {
    return statSync(path).ino;
  } catch {
    return null;
  }
}
