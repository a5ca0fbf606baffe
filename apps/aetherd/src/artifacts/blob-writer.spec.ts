import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile, placeBlob, TempBlob } from './blob-writer';
import { SpaceAccounting } from './space';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('TempBlob (the first phase of a blob write)', () => {
  let dir: string;
  const space = new SpaceAccounting('/', { maxArtifactBytes: 0, quotaBytes: 0, reserveFreeBytes: 0 }, 0, () =>
    Promise.resolve(1e12),
  );
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'blob-writer-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('hashes what it writes, chunk by chunk (slices larger than 1 MiB too), and seals it read-only', async () => {
    const content = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 31) % 256));
    const r = await space.reserve(0);
    const t = await TempBlob.create(dir, r);
    await t.append(content.subarray(0, 10));
    await t.append(content.subarray(10));
    const sealed = await t.seal();
    expect(sealed).toEqual({ tempPath: t.tempPath, digest: sha(content), sizeBytes: content.length });
    expect(readFileSync(t.tempPath).equals(content)).toBe(true);
    expect(statSync(t.tempPath).mode & 0o777).toBe(0o444);
    expect(r.bytes).toBe(content.length);

    const blob = join(dir, 'blobs', 'ab', 'abcd');
    await placeBlob(sealed.tempPath, blob);
    expect(existsSync(sealed.tempPath)).toBe(false);
    expect(readFileSync(blob).equals(content)).toBe(true);
    r.release();
  });

  it('copies an open file in the kernel and takes the digest from the copy', async () => {
    const content = Buffer.alloc(2 * 1024 * 1024 + 5, 7);
    writeFileSync(join(dir, 'src'), content);
    const source = await open(join(dir, 'src'), 'r');
    const r = await space.reserve(content.length);
    const t = await TempBlob.copy(dir, source, r);
    await source.close();
    expect(await t.seal()).toMatchObject({ digest: sha(content), sizeBytes: content.length });
    r.release();
  });

  it('discard removes the temporary file, whatever state it is in', async () => {
    const r = await space.reserve(0);
    const open1 = await TempBlob.create(dir, r);
    await open1.append(Buffer.from('partial'));
    await open1.discard();
    await open1.discard();
    const sealed = await TempBlob.create(dir, r);
    await sealed.append(Buffer.from('whole'));
    await sealed.seal();
    await sealed.discard();
    expect(readdirSync(dir)).toEqual([]);
    r.release();
  });

  it('a write the reservation cannot cover is refused before it reaches the disk', async () => {
    const small = new SpaceAccounting(
      '/',
      { maxArtifactBytes: 4, quotaBytes: 0, reserveFreeBytes: 0 },
      0,
      () => Promise.resolve(1e12),
    );
    const r = await small.reserve(0);
    const t = await TempBlob.create(dir, r);
    await t.append(Buffer.from('1234'));
    await expect(t.append(Buffer.from('5'))).rejects.toMatchObject({ reason: 'ARTIFACT_TOO_LARGE' });
    expect(statSync(t.tempPath).size).toBe(4);
    await t.discard();
    r.release();
  });

  it('hashFile reads a file in slices with the next read in flight', async () => {
    const content = Buffer.alloc(5 * 1024 * 1024 + 3, 1);
    writeFileSync(join(dir, 'f'), content);
    const h = await open(join(dir, 'f'), 'r');
    expect(await hashFile(h)).toEqual({ digest: sha(content), sizeBytes: content.length });
    await h.close();
  });
});
