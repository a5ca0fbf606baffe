import { once } from 'node:events';
import { join } from 'node:path';
import { AuditLog, readAuditRecords, verifyAuditLog } from '../src/index';
import { removeTempDirs, spawnTs, tempDir } from './helpers';

const WRITER = join(__dirname, 'fixtures', 'durable-writer.ts');

/** Runs the writer until it has acknowledged `target` records past `from`, then SIGKILLs it. */
async function runAndKill(path: string, from: number, target: number): Promise<number[]> {
  const child = spawnTs(WRITER, [path, '16', '200000']);
  const acked: number[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let buf = '';
  let killed = false;
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) {
      if (p.startsWith('ready')) {
        expect(Number(p.slice(6))).toBeGreaterThanOrEqual(from);
        continue;
      }
      acked.push(Number(p));
      if (!killed && acked.length >= target) {
        killed = true;
        child.kill('SIGKILL');
      }
    }
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  if (signal !== 'SIGKILL') throw new Error(`writer exited with ${code}: ${stderr}`);
  return acked;
}

describe('kill -9 during load', () => {
  afterAll(removeTempDirs);

  it('loses no acknowledged record, and the log verifies and resumes after every kill', async () => {
    const path = join(tempDir(), 'writer.jsonl');
    const allAcked: number[] = [];
    for (let round = 0; round < 3; round++) {
      const acked = await runAndKill(path, allAcked.length ? Math.max(...allAcked) : 0, 1500 + round * 500);
      expect(acked.length).toBeGreaterThan(0);
      allAcked.push(...acked);

      const res = await verifyAuditLog(path);
      expect(res.firstBad).toBeUndefined();
      expect(res.ok).toBe(true);
      const seqs = new Set<number>();
      for await (const r of readAuditRecords(path)) seqs.add(r.seq);
      const missing = allAcked.filter((s) => !seqs.has(s));
      expect(missing).toEqual([]);
      expect(res.head?.seq).toBe(seqs.size);

      // The next writer (and this open) repair a torn tail, if the kill left one.
      const log = await AuditLog.open({
        path,
        daemon: 'check',
        maxFileBytes: 200000,
        onWarning: () => undefined,
      });
      expect(log.head.seq).toBe(seqs.size);
      await log.close();
      expect((await verifyAuditLog(path)).warnings).toEqual([]);
    }
    expect((await verifyAuditLog(path)).files.length).toBeGreaterThan(1);
  });
});
