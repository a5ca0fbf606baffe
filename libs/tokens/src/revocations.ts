import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The revocation list the issuer (aetherd) publishes next to its public key, so that every daemon that
 * verifies tokens offline (aurorad, cfcd) refuses a revoked token too. A JSON file rewritten atomically
 * on each revocation; an entry is dropped once its token has expired (an expired token is refused
 * anyway), so the list stays as small as the set of live revoked tokens.
 */
export interface RevocationEntry {
  id: string;
  /** RFC 3339: when the token expires; the entry is not needed after that. */
  expiresAt: string;
}

/** Where the revocation list lives, given the public key file it accompanies. */
export function revocationListPath(publicKeyFile: string): string {
  return join(dirname(publicKeyFile), 'revoked.json');
}

/** Writes the list atomically (temporary file, rename), world-readable like the public key. */
export function publishRevocations(path: string, entries: RevocationEntry[], now = new Date()): void {
  const live = entries.filter((e) => new Date(e.expiresAt) > now);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ revoked: live }, null, 1)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

/**
 * Reads a published list, re-reading it whenever the file changes (its mtime, size or inode). A
 * missing file means nothing is revoked; an unreadable or malformed one fails closed: every token
 * counts as revoked until the file is readable again.
 */
export class RevocationListReader {
  private stamp = '';
  private ids = new Set<string>();
  private broken = false;

  constructor(private readonly path: string) {}

  isRevoked(id: string): boolean {
    this.refresh();
    return this.broken || this.ids.has(id);
  }

  private refresh(): void {
    let stamp: string;
    try {
      const st = statSync(this.path, { bigint: true });
      stamp = `${st.ino}:${st.size}:${st.mtimeNs}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.stamp = '';
        this.ids = new Set();
        this.broken = false;
        return;
      }
      this.broken = true;
      return;
    }
    if (stamp === this.stamp) return;
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as { revoked?: unknown };
      if (!Array.isArray(parsed.revoked)) throw new Error('no "revoked" list');
      this.ids = new Set(
        parsed.revoked.map((e) => {
          const id = (e as { id?: unknown }).id;
          if (typeof id !== 'string') throw new Error('an entry without an id');
          return id;
        }),
      );
      this.broken = false;
      this.stamp = stamp;
    } catch {
      this.broken = true;
    }
  }
}
