import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, type AuditRecord } from './audit-log';

const read = (p: string): AuditRecord[] =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditRecord);

describe('AuditLog', () => {
  it('chains each record to the previous one by hash and numbers them', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'audit-')), 'a.jsonl');
    const log = new AuditLog({ path, daemon: 'aetherd' });
    log.append({ actor: 'spiffe://aether.local/admin', action: 'jobs.SubmitJob', outcome: 'OK' }, true);
    log.append(
      { actor: 'spiffe://aether.local/x', action: 'jobs.GetJob', outcome: 'PERMISSION_DENIED' },
      true,
    );
    log.close();
    const [a, b] = read(path);
    expect(a?.seq).toBe(1);
    expect(b?.seq).toBe(2);
    expect(b?.prev_hash).toBe(a?.hash);
    const { hash, ...body } = a!;
    expect(createHash('sha256').update(JSON.stringify(body)).digest('hex')).toBe(hash);
  });

  it('continues the chain after a restart', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'audit-')), 'a.jsonl');
    new AuditLog({ path, daemon: 'x' }).append({ actor: 'a', action: 'b' }, true);
    const second = new AuditLog({ path, daemon: 'x' }).append({ actor: 'a', action: 'c' }, false);
    const [first] = read(path);
    expect(second.seq).toBe(2);
    expect(second.prev_hash).toBe(first?.hash);
  });
});
