import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AuditCorruptError,
  AuditLog,
  computeRecordHash,
  generateCheckpointKey,
  readCheckpoint,
  verifyAuditLog,
  type AuditRecord,
  type Checkpoint,
} from '../src/index';
import { signCheckpoint, writeCheckpoint } from '../src/checkpoint';
import { entry, removeTempDirs, tempDir } from './helpers';

async function makeLog(n: number, maxFileBytes?: number): Promise<string> {
  const path = join(tempDir(), 'a.jsonl');
  const log = await AuditLog.open({ path, daemon: 'x', ...(maxFileBytes ? { maxFileBytes } : {}) });
  for (let i = 1; i <= n; i++) await log.append(entry(i), { durable: i === n });
  await log.close();
  return path;
}

const lines = (p: string): string[] => readFileSync(p, 'utf8').split('\n').slice(0, -1);
const writeLines = (p: string, ls: string[]): void => writeFileSync(p, ls.map((l) => l + '\n').join(''));

describe('verifyAuditLog', () => {
  afterAll(removeTempDirs);

  it('accepts an untouched log and reports its head', async () => {
    const path = await makeLog(20);
    const last = JSON.parse(lines(path)[19] as string) as AuditRecord;
    expect(await verifyAuditLog(path)).toEqual({
      ok: true,
      records: 20,
      files: [path],
      head: { seq: 20, hash: last.hash },
      warnings: [],
    });
  });

  it('verifies a live log while a writer keeps appending and rotating', async () => {
    const path = join(tempDir(), 'live.jsonl');
    const log = await AuditLog.open({ path, daemon: 'x', maxFileBytes: 16384 });
    let written = 0;
    const writer = (async () => {
      for (; written < 3000; written++) await log.append(entry(written), { durable: written % 3 === 0 });
    })();
    let verifies = 0;
    try {
      while (written < 3000) {
        const res = await verifyAuditLog(path);
        expect(res.firstBad).toBeUndefined();
        verifies++;
      }
    } finally {
      await writer;
      await log.close();
    }
    expect(verifies).toBeGreaterThan(3);
    expect(log.stats.rotations).toBeGreaterThan(20);
    expect(await verifyAuditLog(path)).toMatchObject({ ok: true, records: 3000 });
  });

  it('names the first bad record when a field is edited', async () => {
    const path = await makeLog(20);
    const ls = lines(path);
    ls[6] = (ls[6] as string).replace('"outcome":"OK"', '"outcome":"NO"');
    writeLines(path, ls);
    const res = await verifyAuditLog(path);
    expect(res.ok).toBe(false);
    expect(res.records).toBe(6);
    expect(res.firstBad).toMatchObject({ file: path, line: 7, seq: 7, problem: 'hash_mismatch' });
  });

  it('names the record after an edited one whose hash was recomputed to hide the edit', async () => {
    const path = await makeLog(20);
    const ls = lines(path);
    const rec = JSON.parse(ls[6] as string) as AuditRecord;
    rec.outcome = 'NO';
    rec.hash = computeRecordHash(rec);
    ls[6] = JSON.stringify(rec);
    writeLines(path, ls);
    expect((await verifyAuditLog(path)).firstBad).toMatchObject({ line: 8, seq: 8, problem: 'chain_break' });
  });

  it('names the first bad record when a line is deleted', async () => {
    const path = await makeLog(20);
    const ls = lines(path);
    ls.splice(6, 1);
    writeLines(path, ls);
    const res = await verifyAuditLog(path);
    expect(res.firstBad).toMatchObject({ file: path, line: 7, seq: 8, problem: 'chain_break' });
    expect(res.firstBad?.message).toMatch(/deleted, inserted or moved/);
  });

  it('names the first bad record when two lines are swapped', async () => {
    const path = await makeLog(20);
    const ls = lines(path);
    [ls[9], ls[10]] = [ls[10] as string, ls[9] as string];
    writeLines(path, ls);
    expect((await verifyAuditLog(path)).firstBad).toMatchObject({
      file: path,
      line: 10,
      seq: 11,
      problem: 'chain_break',
    });
  });

  it('names a line that is not a record as malformed, and a deleted first line as a chain break', async () => {
    const path = await makeLog(5);
    const ls = lines(path);
    writeLines(path, [...ls.slice(0, 2), '{"seq":3,"hello":"world"}', ...ls.slice(2)]);
    expect((await verifyAuditLog(path)).firstBad).toMatchObject({ line: 3, problem: 'malformed' });
    writeLines(path, ls.slice(1));
    expect((await verifyAuditLog(path)).firstBad).toMatchObject({ line: 1, seq: 2, problem: 'chain_break' });
    expect((await verifyAuditLog(path, { allowPrunedStart: true })).ok).toBe(true);
  });

  it('names the rotated file and its line when a record in an older file is edited', async () => {
    const path = await makeLog(60, 4096);
    const second = `${path}.2`;
    const ls = lines(second);
    ls[1] = (ls[1] as string).replace('"network":"none"', '"network":"host"');
    writeLines(second, ls);
    const res = await verifyAuditLog(path);
    const firstSeqOf2 = (JSON.parse(ls[0] as string) as AuditRecord).seq;
    expect(res.firstBad).toMatchObject({
      file: second,
      line: 2,
      seq: firstSeqOf2 + 1,
      problem: 'hash_mismatch',
    });
    expect(res.files).toEqual([`${path}.1`, second]);
  });

  it('detects a truncated tail against a signed checkpoint written periodically and on close', async () => {
    const dir = tempDir();
    const path = join(dir, 'a.jsonl');
    const keyFile = join(dir, 'checkpoint.key');
    const checkpointPath = join(dir, 'export', 'a.checkpoint.json');
    const { publicKeyPem } = await generateCheckpointKey(keyFile);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    await expect(generateCheckpointKey(keyFile)).rejects.toThrow(/EEXIST/);
    mkdirSync(join(dir, 'export'));
    const log = await AuditLog.open({
      path,
      daemon: 'x',
      checkpointKeyFile: keyFile,
      checkpointPath,
      checkpointEveryRecords: 10,
    });
    for (let i = 1; i <= 25; i++) {
      await log.append(entry(i), { durable: true });
      if (i === 12) expect((await readCheckpoint(checkpointPath)).seq).toBe(10);
    }
    expect((await readCheckpoint(checkpointPath)).seq).toBe(20);
    await log.close();
    const cp = await readCheckpoint(checkpointPath);
    expect(cp).toMatchObject({ daemon: 'x', seq: 25, hash: log.head.hash });
    const good = await verifyAuditLog(path, { checkpointPath, publicKey: publicKeyPem });
    expect(good).toMatchObject({ ok: true, records: 25, checkpoint: { seq: 25, signature: 'valid' } });

    writeLines(path, lines(path).slice(0, 22)); // drop the last three records
    const res = await verifyAuditLog(path, { checkpointPath, publicKey: publicKeyPem });
    expect(res.ok).toBe(false);
    expect(res.firstBad).toMatchObject({ file: path, line: 23, seq: 23, problem: 'truncated' });
    expect(res.firstBad?.message).toMatch(/ends at seq 22, but the checkpoint .* vouches for seq 25/);
    // Without the checkpoint the shortened chain is consistent; the writer refuses to build on it.
    expect((await verifyAuditLog(path)).ok).toBe(true);
    await expect(
      AuditLog.open({ path, daemon: 'x', checkpointKeyFile: keyFile, checkpointPath }),
    ).rejects.toThrow(AuditCorruptError);
  });

  it('rejects a forged checkpoint by its signature', async () => {
    const dir = tempDir();
    const path = join(dir, 'a.jsonl');
    const keyFile = join(dir, 'k.pem');
    const checkpointPath = join(dir, 'cp.json');
    const { publicKeyPem } = await generateCheckpointKey(keyFile);
    const log = await AuditLog.open({ path, daemon: 'x', checkpointKeyFile: keyFile, checkpointPath });
    for (let i = 1; i <= 10; i++) await log.append(entry(i), { durable: true });
    await log.close();
    const real = await readCheckpoint(checkpointPath);
    // An attacker truncates the log to 7 records and rewrites the checkpoint to match.
    const kept = lines(path).slice(0, 7);
    writeLines(path, kept);
    const seven = JSON.parse(kept[6] as string) as AuditRecord;
    const forged: Checkpoint = { ...real, seq: 7, hash: seven.hash };
    writeFileSync(checkpointPath, JSON.stringify(forged));
    const res = await verifyAuditLog(path, { checkpointPath, publicKey: publicKeyPem });
    expect(res.ok).toBe(false);
    expect(res.checkpoint?.signature).toBe('invalid');
    expect(res.firstBad).toMatchObject({ file: checkpointPath, problem: 'bad_checkpoint' });
    // …or signs it with a key of their own.
    const other = generateKeyPairSync('ed25519').privateKey;
    await writeCheckpoint(
      checkpointPath,
      signCheckpoint(other, { daemon: 'x', seq: 7, hash: seven.hash, ts: real.ts }),
    );
    const res2 = await verifyAuditLog(path, { checkpointPath, publicKey: publicKeyPem });
    expect(res2.firstBad).toMatchObject({ problem: 'bad_checkpoint' });
  });

  it('writes a checkpoint on its interval while records arrive', async () => {
    const dir = tempDir();
    const path = join(dir, 'a.jsonl');
    const keyFile = join(dir, 'k.pem');
    const checkpointPath = join(dir, 'cp.json');
    await generateCheckpointKey(keyFile);
    const log = await AuditLog.open({
      path,
      daemon: 'x',
      checkpointKeyFile: keyFile,
      checkpointPath,
      checkpointIntervalMs: 50,
    });
    for (let i = 1; i <= 3; i++) await log.append(entry(i), { durable: false });
    await new Promise((r) => setTimeout(r, 300));
    expect((await readCheckpoint(checkpointPath)).seq).toBe(3);
    expect(log.durableHead.seq).toBe(3);
    await log.close();
    expect(log.stats.checkpoints).toBe(1);
  });
});
