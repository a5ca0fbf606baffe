import { join } from 'node:path';
import { AuditLog, readAuditRecords, type AuditRecord, type ReadAuditOptions } from '../src/index';
import { entry, removeTempDirs, tempDir } from './helpers';

async function collect(path: string, options: ReadAuditOptions = {}): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  for await (const r of readAuditRecords(path, options)) out.push(r);
  return out;
}

describe('readAuditRecords', () => {
  afterAll(removeTempDirs);

  it('reads across rotated files and filters by intent, job, actor, action and denied decisions', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x', maxFileBytes: 3000 });
    for (let i = 1; i <= 30; i++) {
      await log.append(
        entry(i, {
          actor: i % 2 ? 'spiffe://aether.local/aurorad' : 'spiffe://aether.local/cfcd',
          action: i % 5 === 0 ? 'memory.Put' : 'jobs.SubmitJob',
          jobId: `jobs/${i % 4}`,
          decision:
            i % 3 === 0
              ? { effect: 'deny', policyIds: ['default-deny'], reason: 'no' }
              : i % 7 === 0
                ? { effect: 'ask', policyIds: ['needs-approval'], reason: 'host network' }
                : { effect: 'allow', policyIds: ['p'], reason: 'ok' },
        }),
        { durable: false },
      );
    }
    await log.append({ actor: 'x', action: 'job.exited', jobId: 'jobs/1' }, { durable: true });
    await log.close();
    expect(log.stats.rotations).toBeGreaterThan(3);

    const seqs = (rs: AuditRecord[]): number[] => rs.map((r) => r.seq);
    const range = (pred: (i: number) => boolean): number[] =>
      Array.from({ length: 30 }, (_, k) => k + 1).filter(pred);
    expect(seqs(await collect(path))).toEqual([...range(() => true), 31]);
    expect(seqs(await collect(path, { filter: { intentId: 'intent-1' } }))).toEqual(
      range((i) => i % 3 === 1),
    );
    expect(seqs(await collect(path, { filter: { jobId: 'jobs/1' } }))).toEqual([
      ...range((i) => i % 4 === 1),
      31,
    ]);
    expect(seqs(await collect(path, { filter: { actor: 'spiffe://aether.local/cfcd' } }))).toEqual(
      range((i) => i % 2 === 0),
    );
    expect(seqs(await collect(path, { filter: { action: 'memory.Put' } }))).toEqual(
      range((i) => i % 5 === 0),
    );
    expect(seqs(await collect(path, { filter: { action: 'jobs.*' } }))).toEqual(range((i) => i % 5 !== 0));
    expect(seqs(await collect(path, { filter: { deniedOnly: true } }))).toEqual(
      range((i) => i % 3 === 0 || i % 7 === 0),
    );
    expect(
      seqs(await collect(path, { filter: { deniedOnly: true, actor: 'spiffe://aether.local/aurorad' } })),
    ).toEqual(range((i) => i % 2 === 1 && (i % 3 === 0 || i % 7 === 0)));
    expect(seqs(await collect(path, { fromSeq: 25 }))).toEqual([25, 26, 27, 28, 29, 30, 31]);
  });

  it('with follow, yields records as they are appended, across rotations, until aborted', async () => {
    const path = join(tempDir(), 'a.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x', maxFileBytes: 3000 });
    for (let i = 1; i <= 5; i++) await log.append(entry(i), { durable: true });
    const ac = new AbortController();
    const seen: number[] = [];
    const reader = (async () => {
      for await (const r of readAuditRecords(path, {
        follow: true,
        pollMs: 10,
        signal: ac.signal,
        filter: { action: 'jobs.*' },
      })) {
        seen.push(r.seq);
        if (seen.length === 60) ac.abort();
      }
    })();
    for (let i = 6; i <= 60; i++) {
      await log.append(entry(i), { durable: i % 2 === 0 });
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, 15));
    }
    await log.append({ actor: 'x', action: 'other.thing' }, { durable: true });
    await reader;
    await log.close();
    expect(log.stats.rotations).toBeGreaterThan(5);
    expect(seen).toEqual(Array.from({ length: 60 }, (_, k) => k + 1));
  });

  it('with follow, waits for a log that does not exist yet and stops quietly when aborted', async () => {
    const path = join(tempDir(), 'later.jsonl');
    const ac = new AbortController();
    const seen: AuditRecord[] = [];
    const reader = (async () => {
      for await (const r of readAuditRecords(path, { follow: true, pollMs: 10, signal: ac.signal })) {
        seen.push(r);
        ac.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 30));
    const log = await AuditLog.open({ path, daemon: 'x' });
    const rec = await log.append(entry(1), { durable: true });
    await reader;
    await log.close();
    expect(seen).toEqual([rec]);
    expect(await collect(join(tempDir(), 'none.jsonl'))).toEqual([]);
  });
});
