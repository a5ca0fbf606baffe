import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AuditLog,
  AuditUnavailableError,
  readAuditRecords,
  verifyAuditLog,
  type AuditRecord,
} from '../src/index';
import { entry, removeTempDirs, tempDir } from './helpers';

describe('a full disk', () => {
  let mountDir: string | null = null;

  afterAll(() => {
    if (mountDir) execFileSync('umount', ['-l', mountDir]);
    removeTempDirs();
  });

  it('fails appends closed with AuditUnavailableError, keeps a valid chain, and recovers when space frees up', async () => {
    const dir = tempDir('audit-tmpfs-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(
        `this test mounts a 256 KiB tmpfs and must run as root (uid ${process.getuid?.()}): ` +
          `mount -t tmpfs failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`,
      );
    }
    mountDir = dir;
    const filler = join(dir, 'filler.bin');
    writeFileSync(filler, Buffer.alloc(64 * 1024, 1));
    const path = join(dir, 'aetherd.jsonl');
    const log = await AuditLog.open({ path, daemon: 'aetherd', retryIntervalMs: 100 });
    // Records of ~1.5 KiB, so the last one fits only partly into the last free page.
    const big = (i: number) => entry(i, { provenance: { note: 'p'.repeat(1400 + (i % 7)) } });
    let acked: AuditRecord | null = null;
    let failure: unknown = null;
    for (let i = 1; i < 1000 && !failure; i++) {
      try {
        acked = await log.append(big(i), { durable: true });
      } catch (err) {
        failure = err;
      }
    }
    expect(failure).toBeInstanceOf(AuditUnavailableError);
    expect((failure as Error).message).toMatch(
      new RegExp(`^audit log ${path}: write failed: ENOSPC: no space left on device`),
    );
    expect((failure as AuditUnavailableError).code).toBe('ENOSPC');
    expect(() => log.ensureWritable()).toThrow(AuditUnavailableError);
    expect(() => log.ensureWritable()).toThrow(/ENOSPC: no space left on device/);
    // More appends while full, durable or not, concurrent: all fail, none leaves a partial line.
    const more = await Promise.allSettled([
      log.append(big(2000), { durable: true }),
      log.append(big(2001), { durable: false }),
      log.append(big(2002), { durable: true }),
    ]);
    expect(more.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    // Every failed write is counted once, however many appends it rejected.
    expect(log.stats.writeErrors).toBeGreaterThanOrEqual(2);
    expect(log.stats.writeErrors).toBeLessThanOrEqual(log.stats.failedAppends);

    const full = await verifyAuditLog(path);
    expect(full).toMatchObject({ ok: true, warnings: [], head: { seq: acked?.seq, hash: acked?.hash } });
    const text = readFileSync(path, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(statSync(path).size).toBe(Buffer.byteLength(text));
    // Failed writes were cut away, and so they are not among the bytes written.
    expect(log.stats.bytesWritten).toBe(statSync(path).size);

    // With space freed, the retry timer recovers the log without any append (it writes an
    // audit.recovered record; so may an earlier retry that found room for that small record alone).
    rmSync(filler);
    for (let i = 0; i < 100 && log.failedWith; i++) await new Promise((r) => setTimeout(r, 20));
    expect(() => log.ensureWritable()).not.toThrow();
    const after = await log.append(entry(3000), { durable: true });
    expect(log.failedWith).toBeNull();
    await log.close();

    const records: AuditRecord[] = [];
    for await (const r of readAuditRecords(path, { fromSeq: (acked?.seq ?? 0) + 1 })) records.push(r);
    expect(records[0]).toMatchObject({ action: 'audit.recovered', actor: 'aetherd' });
    expect(records[0]?.error).toMatch(/ENOSPC/);
    expect(records[records.length - 1]).toEqual(after);
    const notes = records.filter((r) => r.action === 'audit.recovered');
    expect(notes.length + 1).toBe(records.length);
    const rejected = notes.map((r) => (r.provenance as { rejected_records: number }).rejected_records);
    expect(rejected.reduce((a, b) => a + b, 0)).toBe(4);
    expect(await verifyAuditLog(path)).toMatchObject({ ok: true, head: { seq: after.seq } });
  });
});
