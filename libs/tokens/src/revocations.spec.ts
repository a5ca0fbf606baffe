import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishRevocations, revocationListPath, RevocationListReader } from './revocations';

describe('published revocation list', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'aether-revoked-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('lives beside the public key', () => {
    expect(revocationListPath('/var/lib/aether/tokens/signing.pub')).toBe(
      '/var/lib/aether/tokens/revoked.json',
    );
  });

  it('a missing list revokes nothing; a published one is picked up as soon as it changes', () => {
    const path = join(dir, 'revoked.json');
    const reader = new RevocationListReader(path);
    expect(reader.isRevoked('a')).toBe(false);
    const later = new Date(Date.now() + 60_000).toISOString();
    publishRevocations(path, [{ id: 'a', expiresAt: later }]);
    expect(reader.isRevoked('a')).toBe(true);
    expect(reader.isRevoked('b')).toBe(false);
    publishRevocations(path, [
      { id: 'a', expiresAt: later },
      { id: 'b', expiresAt: later },
    ]);
    expect(reader.isRevoked('b')).toBe(true);
  });

  it('drops entries whose tokens have expired', () => {
    const path = join(dir, 'revoked.json');
    publishRevocations(path, [
      { id: 'old', expiresAt: new Date(Date.now() - 1000).toISOString() },
      { id: 'live', expiresAt: new Date(Date.now() + 60_000).toISOString() },
    ]);
    const reader = new RevocationListReader(path);
    expect(reader.isRevoked('old')).toBe(false);
    expect(reader.isRevoked('live')).toBe(true);
  });

  it('fails closed on a malformed list until it is readable again', () => {
    const path = join(dir, 'revoked.json');
    writeFileSync(path, '{"revoked": [ {"id": ');
    const reader = new RevocationListReader(path);
    expect(reader.isRevoked('anything')).toBe(true);
    writeFileSync(path, '{"revoked": []}\n');
    expect(reader.isRevoked('anything')).toBe(false);
  });
});
