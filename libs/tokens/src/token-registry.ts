import {
  appendFileSync,
  closeSync,
  existsSync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import type { CapabilityClaims } from './capability-token';

/** A minted token as the registry remembers it (never the token string itself). */
export interface TokenEntry extends CapabilityClaims {
  /** Who asked for it. */
  actor: string;
  revoked?: { at: Date; reason: string; by: string };
}

type Line =
  | {
      kind: 'minted';
      entry: Omit<TokenEntry, 'issuedAt' | 'expiresAt'> & { issuedAt: string; expiresAt: string };
    }
  | { kind: 'revoked'; id: string; at: string; reason: string; by: string };

/**
 * The issuer's record of minted and revoked tokens, as an append-only JSON-lines file made durable
 * before a mint or revocation is acknowledged. Revocation by id is what `isRevoked` answers.
 */
export class TokenRegistry {
  private readonly entries = new Map<string, TokenEntry>();

  private constructor(private readonly path: string) {}

  static open(path: string): TokenRegistry {
    const r = new TokenRegistry(path);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    if (existsSync(path)) {
      for (const raw of readFileSync(path, 'utf8').split('\n')) {
        if (!raw) continue;
        let line: Line;
        try {
          line = JSON.parse(raw) as Line;
        } catch {
          continue; // A torn last line from a crash: the mint or revocation was never acknowledged.
        }
        r.apply(line);
      }
    }
    return r;
  }

  private apply(line: Line): void {
    if (line.kind === 'minted') {
      const { issuedAt, expiresAt, ...rest } = line.entry;
      this.entries.set(rest.id, { ...rest, issuedAt: new Date(issuedAt), expiresAt: new Date(expiresAt) });
    } else {
      const e = this.entries.get(line.id);
      if (e) e.revoked = { at: new Date(line.at), reason: line.reason, by: line.by };
    }
  }

  private write(line: Line): void {
    appendFileSync(this.path, `${JSON.stringify(line)}\n`, { mode: 0o600 });
    const fd = openSync(this.path, 'r+');
    try {
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.apply(line);
  }

  recordMinted(claims: CapabilityClaims, actor: string): TokenEntry {
    this.write({
      kind: 'minted',
      entry: {
        ...claims,
        actor,
        issuedAt: claims.issuedAt.toISOString(),
        expiresAt: claims.expiresAt.toISOString(),
      },
    });
    return this.entries.get(claims.id)!;
  }

  /** Revokes a token; revoking twice keeps the first revocation. Returns undefined for an unknown id. */
  revoke(id: string, reason: string, by: string, now = new Date()): TokenEntry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (!e.revoked) this.write({ kind: 'revoked', id, at: now.toISOString(), reason, by });
    return this.entries.get(id);
  }

  /** Revoked tokens that have not expired yet: what peers must be told (see publishRevocations). */
  liveRevocations(now = new Date()): { id: string; expiresAt: string }[] {
    return [...this.entries.values()]
      .filter((e) => e.revoked && e.expiresAt > now)
      .map((e) => ({ id: e.id, expiresAt: e.expiresAt.toISOString() }));
  }

  isRevoked(id: string): boolean {
    return this.entries.get(id)?.revoked !== undefined;
  }

  get(id: string): TokenEntry | undefined {
    return this.entries.get(id);
  }

  /** Newest first. Inactive (expired or revoked) tokens only when asked. */
  list(
    filter: { subject?: string; intentId?: string; includeInactive?: boolean } = {},
    now = new Date(),
  ): TokenEntry[] {
    return [...this.entries.values()]
      .filter(
        (e) =>
          (!filter.subject || e.subject === filter.subject) &&
          (!filter.intentId || e.intentId === filter.intentId) &&
          (filter.includeInactive || (!e.revoked && e.expiresAt > now)),
      )
      .sort((a, b) => b.issuedAt.getTime() - a.issuedAt.getTime());
  }
}
