/**
 * The log cannot take records: a write or fdatasync failed (disk full, I/O error), or the log is closed.
 * Callers fail state-changing requests closed with UNAVAILABLE and this message, e.g.
 * `audit log /var/log/aether/aetherd.jsonl: write failed: ENOSPC: no space left on device, write`.
 */
export class AuditUnavailableError extends Error {
  override readonly name = 'AuditUnavailableError';
  /** The errno code of the failure (`ENOSPC`, `EIO` …), or `CLOSED`. */
  readonly code: string;

  constructor(message: string, code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The log on disk is not what this library wrote (a corrupt last record, a head behind its checkpoint). */
export class AuditCorruptError extends Error {
  override readonly name = 'AuditCorruptError';
}

/** `CODE: message` of a Node system error, or the message of any other error. */
export function describeError(err: unknown): { code: string; message: string } {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : 'EUNKNOWN';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return { code, message };
}
