import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AuditCorruptError,
  AuditLog,
  AuditUnavailableError,
  GENESIS_HASH,
  verifyAuditLog,
} from '../src/index';
import { entry, readRecords, removeTempDirs, tempDir } from './helpers';

describe('AuditLog', () => {
  afterAll(removeTempDirs);

  it('numbers records from 1 and chains each one to the hash of the one before', async () => {
    const path = join(tempDir(), 'aetherd.jsonl');
    const log = await AuditLog.open({ path, daemon: 'aetherd' });
    const a = await log.append(entry(1), { durable: true });
    const b = await log.append(
      entry(2, { decision: { effect: 'deny', policyIds: ['default-deny'], reason: 'x' } }),
      {
        durable: false,
      },
    );
    const c = await log.append(
      { actor: 'aetherd', action: 'job.exited', jobId: 'jobs/1' },
      { durable: true },
    );
    await log.close();
    const recs = readRecords(path);
    expect(recs).toEqual([a, b, c]);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(a.prev_hash).toBe(GENESIS_HASH);
    expect(b.prev_hash).toBe(a.hash);
    expect(c.prev_hash).toBe(b.hash);
    expect(a.daemon).toBe('aetherd');
    expect(a.ts.wall).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    expect(a.ts.mono_ns).toMatch(/^\d+$/);
    expect(BigInt(b.ts.mono_ns) >= BigInt(a.ts.mono_ns)).toBe(true);
    expect(a.ts.boot_id).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(b.decision).toEqual({
      allowed: false,
      effect: 'deny',
      policy_ids: ['default-deny'],
      reason: 'x',
      policy_set_hash: null,
    });
    expect(c).toMatchObject({ job_id: 'jobs/1', decision: null, resource: null, request_id: null });
    expect((await verifyAuditLog(path)).ok).toBe(true);
  });

  it('resumes the sequence and the chain when the log is opened again', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const first = await AuditLog.open({ path, daemon: 'x' });
    await first.append(entry(1), { durable: true });
    const last = await first.append(entry(2), { durable: true });
    await first.close();
    const second = await AuditLog.open({ path, daemon: 'x' });
    expect(second.head).toEqual({ seq: 2, hash: last.hash });
    expect(second.warnings).toEqual([]);
    const next = await second.append(entry(3), { durable: false });
    await second.close();
    expect(next.seq).toBe(3);
    expect(next.prev_hash).toBe(last.hash);
    expect((await verifyAuditLog(path)).records).toBe(3);
  });

  it('cuts a torn last line away on open, warns about it, and continues the chain', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x' });
    for (let i = 1; i <= 5; i++) await log.append(entry(i), { durable: true });
    await log.close();
    const goodSize = statSync(path).size;
    const line = readFileSync(path, 'utf8').split('\n')[2] as string;
    appendFileSync(path, line.slice(0, 100)); // a write cut short by a crash
    const live = await verifyAuditLog(path);
    expect(live.ok).toBe(true);
    expect(live.warnings[0]).toMatch(/unterminated last line \(100 bytes after line 5/);

    const warned: string[] = [];
    const again = await AuditLog.open({ path, daemon: 'x', onWarning: (m) => warned.push(m) });
    expect(again.warnings).toEqual([
      expect.stringMatching(/cut away a torn last line \(100 bytes after byte \d+/),
    ]);
    expect(warned).toEqual(again.warnings);
    expect(statSync(path).size).toBe(goodSize);
    const r = await again.append(entry(6), { durable: true });
    await again.close();
    expect(r.seq).toBe(6);
    const res = await verifyAuditLog(path);
    expect(res).toMatchObject({ ok: true, records: 6, warnings: [] });
  });

  it('refuses to open a log whose last complete record is not valid', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x' });
    await log.append(entry(1), { durable: true });
    await log.append(entry(2), { durable: true });
    await log.close();
    writeFileSync(path, readFileSync(path, 'utf8').replace('"request_id":"req-2"', '"request_id":"req-X"'));
    await expect(AuditLog.open({ path, daemon: 'x' })).rejects.toThrow(AuditCorruptError);
    await expect(AuditLog.open({ path, daemon: 'x' })).rejects.toThrow(/does not match its hash/);
  });

  it('rotates by size into numbered files and keeps one chain across them', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x', maxFileBytes: 4096 });
    const recs = [];
    for (let i = 1; i <= 60; i++) recs.push(await log.append(entry(i), { durable: i % 2 === 0 }));
    // and a burst that has to be split across files within one commit
    recs.push(
      ...(await Promise.all(Array.from({ length: 40 }, (_, i) => log.append(entry(i), { durable: true })))),
    );
    await log.close();
    expect(log.stats.rotations).toBeGreaterThan(5);
    const res = await verifyAuditLog(path);
    expect(res.ok).toBe(true);
    expect(res.records).toBe(100);
    expect(res.files.slice(0, 3)).toEqual([`${path}.1`, `${path}.2`, `${path}.3`]);
    expect(res.files[res.files.length - 1]).toBe(path);
    let prev = GENESIS_HASH;
    let seq = 0;
    for (const f of res.files) {
      expect(statSync(f).size).toBeLessThanOrEqual(4096);
      for (const r of readRecords(f)) {
        expect(r.seq).toBe(++seq);
        expect(r.prev_hash).toBe(prev);
        prev = r.hash;
      }
    }
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // Reopening continues in the active file after the rotated ones.
    const again = await AuditLog.open({ path, daemon: 'x', maxFileBytes: 4096 });
    expect(again.head.seq).toBe(100);
    await again.append(entry(101), { durable: true });
    await again.close();
    expect((await verifyAuditLog(path)).records).toBe(101);
  });

  it('commits 1,000 concurrent durable appends with far fewer fdatasyncs than records, each one durable', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x' });
    const before = log.stats.fdatasyncs;
    let notDurable = 0;
    // 100 concurrent clients, 10 sequential durable appends each
    await Promise.all(
      Array.from({ length: 100 }, async (_, c) => {
        for (let k = 0; k < 10; k++) {
          const r = await log.append(entry(c * 10 + k), { durable: true });
          if (r.seq > log.durableHead.seq) notDurable++;
        }
      }),
    );
    const syncs = log.stats.fdatasyncs - before;
    await log.close();
    expect(notDurable).toBe(0);
    expect(log.stats.records).toBe(1000);
    expect(syncs).toBeLessThan(100);
    expect(log.stats.writes).toBeLessThan(100);
    const res = await verifyAuditLog(path);
    expect(res).toMatchObject({ ok: true, records: 1000 });
  });

  it('writes non-durable appends soon without an fdatasync, in order with durable ones', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x', flushDelayMs: 5 });
    const syncs = log.stats.fdatasyncs;
    const lazy = await log.append(entry(1), { durable: false });
    expect(readRecords(path)).toEqual([lazy]);
    expect(log.stats.fdatasyncs).toBe(syncs);
    const mixed = await Promise.all([
      log.append(entry(2), { durable: false }),
      log.append(entry(3), { durable: true }),
      log.append(entry(4), { durable: false }),
    ]);
    expect(mixed.map((r) => r.seq)).toEqual([2, 3, 4]);
    expect(mixed.map((r) => r.request_id)).toEqual(['req-2', 'req-3', 'req-4']);
    expect(log.stats.fdatasyncs).toBe(syncs + 1);
    await log.close();
    expect(readRecords(path).map((r) => r.seq)).toEqual([1, 2, 3, 4]);
  });

  it('reports what is not durable yet, the bytes written and the time of each durable commit', async () => {
    const path = join(tempDir(), 'm.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x', flushDelayMs: 200 });
    const commits: number[] = [];
    log.onCommit((seconds) => commits.push(seconds));
    expect(log.pending).toEqual({ records: 0, oldestAgeSeconds: 0 });
    const lazy = log.append(entry(1), { durable: false });
    const also = log.append(entry(2), { durable: false });
    await new Promise((r) => setTimeout(r, 50));
    // Two records wait for the flush delay; the oldest has waited about 50 ms.
    const waiting = log.pending;
    expect(waiting.records).toBe(2);
    expect(waiting.oldestAgeSeconds).toBeGreaterThanOrEqual(0.04);
    expect(waiting.oldestAgeSeconds).toBeLessThan(1);
    await Promise.all([lazy, also]);
    expect(log.pending).toEqual({ records: 0, oldestAgeSeconds: 0 });
    expect(commits).toEqual([]);
    await Promise.all([3, 4, 5].map((i) => log.append(entry(i), { durable: true })));
    expect(commits.length).toBeGreaterThanOrEqual(1);
    expect(commits.every((s) => s > 0 && s < 5)).toBe(true);
    expect(log.stats.bytesWritten).toBe(statSync(path).size);
    expect(log.stats.writeErrors).toBe(0);
    await log.close();
  });

  it('rejects appends and fails ensureWritable once closed', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x' });
    expect(() => log.ensureWritable()).not.toThrow();
    const pending = log.append(entry(1), { durable: false });
    await log.close();
    await expect(pending).resolves.toMatchObject({ seq: 1 });
    await expect(log.append(entry(2), { durable: true })).rejects.toThrow(AuditUnavailableError);
    expect(() => log.ensureWritable()).toThrow(/closed/);
    await expect(log.append({ actor: '', action: 'x' }, { durable: true })).rejects.toThrow();
    expect(readRecords(path)).toHaveLength(1);
  });
});
