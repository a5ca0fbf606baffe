import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, writeSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

/** What a daemon says about one action; the log adds sequence, time and chain fields. */
export interface AuditEntry {
  actor: string;
  action: string;
  requestId?: string;
  intentId?: string;
  jobId?: string;
  onBehalfOf?: string;
  tokenId?: string;
  resource?: unknown;
  decision?: unknown;
  outcome?: string;
  error?: string;
  provenance?: unknown;
  [extra: string]: unknown;
}

/** One line of the log as written. */
export interface AuditRecord extends AuditEntry {
  seq: number;
  ts: { wall: string; mono_ns: string };
  prev_hash: string;
  hash: string;
}

export interface AuditLogOptions {
  path: string;
  /** Program writing the log, e.g. `aetherd`. */
  daemon: string;
}

const GENESIS = '0'.repeat(64);

/**
 * An append-only JSON-lines audit log in which each record carries a sequence number and the hash of the
 * previous record, so an edit, deletion or reordering breaks the chain. Records of denied or
 * state-changing actions are fdatasync'ed before `append` returns.
 *
 * (The governance issue extends this with group commit, rotation, verification and checkpoints.)
 */
export class AuditLog {
  private fd: number;
  private seq = 0;
  private prevHash = GENESIS;

  constructor(private readonly options: AuditLogOptions) {
    mkdirSync(dirname(options.path), { recursive: true, mode: 0o750 });
    if (existsSync(options.path)) this.resume();
    this.fd = openSync(options.path, 'a', 0o640);
  }

  /** Picks the chain up where the last run left it. */
  private resume(): void {
    const lines = readFileSync(this.options.path, 'utf8').split('\n').filter(Boolean);
    const last = lines[lines.length - 1];
    if (!last) return;
    const rec = JSON.parse(last) as AuditRecord;
    this.seq = rec.seq;
    this.prevHash = rec.hash;
  }

  /** Appends one record; with `durable`, it is on disk when this returns. Throws on write errors. */
  append(entry: AuditEntry, durable: boolean): AuditRecord {
    const wall = new Date().toISOString();
    const body = {
      seq: this.seq + 1,
      ts: { wall, mono_ns: process.hrtime.bigint().toString() },
      daemon: this.options.daemon,
      ...entry,
      prev_hash: this.prevHash,
    };
    const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
    const record = { ...body, hash } as AuditRecord;
    const line = Buffer.from(JSON.stringify(record) + '\n');
    let written = 0;
    while (written < line.length) written += writeSync(this.fd, line, written);
    if (durable) fdatasyncSync(this.fd);
    this.seq = record.seq;
    this.prevHash = hash;
    return record;
  }

  close(): void {
    closeSync(this.fd);
  }
}
