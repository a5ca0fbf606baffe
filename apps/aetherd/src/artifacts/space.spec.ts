import type { RpcError } from '@aether/rpc';
import { SpaceAccounting } from './space';

const MiB = 1024 * 1024;
const reasonOf = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (err: RpcError) => err.reason,
  );

describe('SpaceAccounting', () => {
  it('holds reservations against the quota until they are settled or released', async () => {
    const space = new SpaceAccounting(
      '/',
      { maxArtifactBytes: 0, quotaBytes: 100, reserveFreeBytes: 0 },
      30,
      () => Promise.resolve(1e12),
    );
    const a = await space.reserve(40);
    expect(await reasonOf(space.reserve(31))).toBe('STORE_QUOTA_EXCEEDED');
    const b = await space.reserve(30);
    expect(space.reservedBytes).toBe(70);
    // Growing past what is left fails for whoever grows, and the reservation keeps its size.
    expect(await reasonOf(b.grow(31))).toBe('STORE_QUOTA_EXCEEDED');
    expect(b.bytes).toBe(30);
    a.settle(40);
    expect(space.storedBytes).toBe(70);
    b.release();
    b.release();
    expect(space.reservedBytes).toBe(0);
    expect(await reasonOf(space.reserve(30))).toBe('OK');
  });

  it('refuses an artifact above the maximum size whether declared or grown into', async () => {
    const space = new SpaceAccounting(
      '/',
      { maxArtifactBytes: 10, quotaBytes: 0, reserveFreeBytes: 0 },
      0,
      () => Promise.resolve(1e12),
    );
    expect(await reasonOf(space.reserve(11))).toBe('ARTIFACT_TOO_LARGE');
    const r = await space.reserve(0);
    await r.grow(10);
    expect(await reasonOf(r.grow(11))).toBe('ARTIFACT_TOO_LARGE');
  });

  it('keeps the free space to keep, counting what other writes reserved but have not written yet', async () => {
    let free = 100 * MiB;
    const probes: number[] = [];
    const space = new SpaceAccounting(
      '/',
      { maxArtifactBytes: 0, quotaBytes: 0, reserveFreeBytes: 20 * MiB },
      0,
      () => {
        probes.push(free);
        return Promise.resolve(free);
      },
    );
    const a = await space.reserve(50 * MiB);
    expect(await reasonOf(space.reserve(31 * MiB))).toBe('DISK_FULL');
    // Once `a` has written its bytes they show in the filesystem's free space instead.
    a.written = 50 * MiB;
    free -= 50 * MiB;
    const b = await space.reserve(30 * MiB);
    expect(space.reservedBytes).toBe(80 * MiB);
    b.release();
    // A growing write probes again every 16 MiB, not on every chunk.
    const g = await space.reserve(0);
    const before = probes.length;
    for (let n = 1; n <= 16; n++) await g.grow(n * MiB);
    expect(probes.length - before).toBe(1);
  });

  it("runs a job's own check with the bytes its other writes have reserved", async () => {
    const seen: [number, number][] = [];
    const space = new SpaceAccounting(
      '/',
      { maxArtifactBytes: 0, quotaBytes: 0, reserveFreeBytes: 0 },
      0,
      () => Promise.resolve(1e12),
    );
    const check = (total: number, others: number): void => {
      seen.push([total, others]);
    };
    await space.reserve(5, { tag: 'job-a', extraCheck: check });
    await space.reserve(7, { tag: 'job-b', extraCheck: check });
    const r = await space.reserve(3, { tag: 'job-a', extraCheck: check });
    await r.grow(4);
    expect(seen).toEqual([
      [5, 0],
      [7, 0],
      [3, 5],
      [4, 5],
    ]);
    expect(space.reservedFor('job-a')).toBe(9);
  });
});
