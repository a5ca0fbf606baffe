import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { createLogger } from '@aether/log';
import { artifactsV1 } from '@aether/proto';
import type { RpcError } from '@aether/rpc';
import { ArtifactStore, IDEMPOTENCY_WINDOW_MS, type ArtifactMeta } from './artifact-store';

const ACTOR = 'spiffe://aether.local/admin';
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const refusal = async (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: RpcError) => err,
  );

/** Every file under `dir`, relative. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

describe('ArtifactStore', () => {
  let dir: string;
  let store: ArtifactStore;
  let clock: number;
  let logLines: Record<string, unknown>[];
  let inputs: string;

  const open = (over: Partial<Parameters<typeof ArtifactStore.open>[0]> = {}): Promise<ArtifactStore> =>
    ArtifactStore.open({
      dir: join(dir, 'store'),
      limits: { maxArtifactBytes: 0, quotaBytes: 0, reserveFreeBytes: 0 },
      log: createLogger({
        service: 'test',
        destination: { write: (s: string) => logLines.push(JSON.parse(s) as Record<string, unknown>) },
      }),
      now: () => clock,
      ...over,
    });
  const upload = async (content: string | Buffer, meta: Partial<ArtifactMeta> = {}, opts = {}) => {
    const u = await store.beginUpload({ actor: ACTOR, ...meta }, opts);
    if (u.replay) return u.replay;
    await u.write(Buffer.from(content));
    return u.finish();
  };
  const input = (name: string, content: string | Buffer): string => {
    const p = join(inputs, name);
    writeFileSync(p, content);
    return p;
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'artifact-store-'));
    inputs = join(dir, 'inputs');
    mkdirSync(inputs);
    clock = Date.parse('2026-11-21T08:00:00Z');
    logLines = [];
    store = await open();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports a file: content-addressed, read-only blob, metadata with a guessed media type', async () => {
    const path = input('model.onnx', 'weights');
    const { artifact, deduplicated } = await store.importFile(
      { path, root: inputs },
      { actor: ACTOR, type: artifactsV1.ArtifactType.ARTIFACT_TYPE_MODEL, labels: { stage: 'eval' } },
    );
    expect(deduplicated).toBe(false);
    expect(artifact).toMatchObject({
      digest: sha('weights'),
      sizeBytes: 7,
      type: artifactsV1.ArtifactType.ARTIFACT_TYPE_MODEL,
      mediaType: 'application/onnx',
      filename: 'model.onnx',
      labels: { stage: 'eval' },
      actor: ACTOR,
      createTime: clock,
      verifyTime: clock,
      derivedFrom: [],
    });
    const blob = store.blobPath(artifact);
    expect(blob).toBe(
      join(dir, 'store', 'blobs', 'sha256', sha('weights').slice(7, 9), sha('weights').slice(7)),
    );
    expect(readFileSync(blob, 'utf8')).toBe('weights');
    expect(statSync(blob).mode & 0o777).toBe(0o444);
    expect(files(store.tmpDir)).toEqual([]);
    expect(store.get(artifact.id)).toEqual(artifact);
    expect(store.exists(artifact.id)).toBe(true);
  });

  it('uploads in chunks; an unspecified type is OTHER and an unknown extension octet-stream', async () => {
    const u = await store.beginUpload({ actor: ACTOR, filename: 'blob.xyz' }, { expectedSizeBytes: 6 });
    await u.write(Buffer.from('abc'));
    await u.write(Buffer.alloc(0));
    await u.write(Buffer.from('def'));
    const { artifact } = await u.finish();
    expect(artifact).toMatchObject({
      digest: sha('abcdef'),
      sizeBytes: 6,
      type: artifactsV1.ArtifactType.ARTIFACT_TYPE_OTHER,
      mediaType: 'application/octet-stream',
    });
  });

  it('stores identical content once and removes the blob with its last record', async () => {
    const a = await upload('same bytes', { filename: 'a.txt' });
    const b = await store.importFile({ path: input('b.txt', 'same bytes'), root: inputs }, { actor: ACTOR });
    expect(a.deduplicated).toBe(false);
    expect(b.deduplicated).toBe(true);
    expect(b.artifact.id).not.toBe(a.artifact.id);
    expect(store.blobPath(b.artifact)).toBe(store.blobPath(a.artifact));
    expect(store.usage().storedBytes).toBe(10);
    expect(files(store.blobsDir)).toHaveLength(1);

    await store.delete(a.artifact.id);
    expect(existsSync(store.blobPath(b.artifact))).toBe(true);
    expect(store.get(a.artifact.id)).toBeUndefined();
    await store.delete(b.artifact.id);
    expect(files(store.blobsDir)).toEqual([]);
    expect(store.usage().storedBytes).toBe(0);
    expect((await refusal(store.delete(b.artifact.id))).reason).toBe('ARTIFACT_NOT_FOUND');
  });

  it('a digest mismatch registers nothing and leaves no temporary file or blob', async () => {
    const wrong = sha('something else');
    const err = await refusal(upload('content', {}, { expectedDigest: wrong }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.reason).toBe('DIGEST_MISMATCH');
    expect(err.metadata).toEqual({ expected: wrong, actual: sha('content') });
    const err2 = await refusal(
      store.importFile(
        { path: input('x', 'content'), root: inputs },
        { actor: ACTOR },
        { expectedDigest: wrong },
      ),
    );
    expect(err2.reason).toBe('DIGEST_MISMATCH');
    expect(files(join(dir, 'store', 'tmp'))).toEqual([]);
    expect(files(store.blobsDir)).toEqual([]);
    expect(store.list(everything()).artifacts).toEqual([]);
    expect(store.usage()).toEqual({ storedBytes: 0, reservedBytes: 0 });
  });

  it('a size mismatch (short or long) registers nothing', async () => {
    expect((await refusal(upload('12345', {}, { expectedSizeBytes: 6 }))).reason).toBe('SIZE_MISMATCH');
    const u = await store.beginUpload({ actor: ACTOR }, { expectedSizeBytes: 3 });
    const err = await refusal(u.write(Buffer.from('1234')));
    expect(err.reason).toBe('SIZE_MISMATCH');
    await u.abort();
    expect(files(store.tmpDir)).toEqual([]);
    expect(store.usage().reservedBytes).toBe(0);
  });

  it('an aborted upload leaves nothing behind', async () => {
    const u = await store.beginUpload({ actor: ACTOR }, { expectedSizeBytes: 1000 });
    await u.write(Buffer.alloc(500, 1));
    expect(files(store.tmpDir)).toHaveLength(1);
    expect(store.usage().reservedBytes).toBe(1000);
    await u.abort();
    await u.abort();
    expect(files(store.tmpDir)).toEqual([]);
    expect(store.usage()).toEqual({ storedBytes: 0, reservedBytes: 0 });
    expect(store.list(everything()).artifacts).toEqual([]);
  });

  it('replays an idempotency key within 24 hours, refuses it with other arguments, frees it after', async () => {
    const first = await upload('v1', { filename: 'r.txt' }, { idempotencyKey: 'run-1' });
    const again = await upload('v1', { filename: 'r.txt' }, { idempotencyKey: 'run-1' });
    expect(again.artifact.id).toBe(first.artifact.id);
    const other = await refusal(upload('v1', { filename: 'other.txt' }, { idempotencyKey: 'run-1' }));
    expect(other.code).toBe(status.ALREADY_EXISTS);
    expect(other.reason).toBe('IDEMPOTENCY_KEY_REUSED');
    // Another actor's key is its own.
    const theirs = await upload(
      'v1',
      { filename: 'r.txt', actor: 'spiffe://aether.local/aurorad' },
      { idempotencyKey: 'run-1' },
    );
    expect(theirs.artifact.id).not.toBe(first.artifact.id);
    clock += IDEMPOTENCY_WINDOW_MS + 1;
    const later = await upload('v1', { filename: 'r.txt' }, { idempotencyKey: 'run-1' });
    expect(later.artifact.id).not.toBe(first.artifact.id);
  });

  it('refuses an unknown input (derived_from) before reading anything', async () => {
    const err = await refusal(upload('x', { derivedFrom: ['0'.repeat(26)] }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.reason).toBe('ARTIFACT_NOT_FOUND');
    expect(files(store.tmpDir)).toEqual([]);
  });

  it("enforces a job's output quota over everything registered with its id", async () => {
    const jobId = '01kaj6m1x5q2w3e4r5t6y7u8i9';
    const opts = { jobOutputLimitBytes: 10 };
    await upload('123456', { jobId }, opts);
    const over = await refusal(upload('12345', { jobId }, opts));
    expect(over.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(over.reason).toBe('JOB_OUTPUT_QUOTA_EXCEEDED');
    // Declared up front: refused before any byte.
    const early = await refusal(
      store.beginUpload({ actor: ACTOR, jobId }, { ...opts, expectedSizeBytes: 5 }),
    );
    expect(early.reason).toBe('JOB_OUTPUT_QUOTA_EXCEEDED');
    await upload('1234', { jobId }, opts);
    expect(files(store.tmpDir)).toEqual([]);
    // Another job, or no job, is not affected.
    await upload('12345', { jobId: '01kaj6m1x5q2w3e4r5t6y7u8ia' }, opts);
  });

  it('refuses an artifact above the maximum size, by declaration or as it grows', async () => {
    await store.close();
    store = await open({ limits: { maxArtifactBytes: 8, quotaBytes: 0, reserveFreeBytes: 0 } });
    expect((await refusal(store.beginUpload({ actor: ACTOR }, { expectedSizeBytes: 9 }))).reason).toBe(
      'ARTIFACT_TOO_LARGE',
    );
    const u = await store.beginUpload({ actor: ACTOR });
    await u.write(Buffer.alloc(8));
    expect((await refusal(u.write(Buffer.alloc(1)))).reason).toBe('ARTIFACT_TOO_LARGE');
    await u.abort();
    const big = input('big.bin', Buffer.alloc(9));
    expect((await refusal(store.importFile({ path: big, root: inputs }, { actor: ACTOR }))).reason).toBe(
      'ARTIFACT_TOO_LARGE',
    );
    expect(files(store.tmpDir)).toEqual([]);
  });

  it('concurrent uploads cannot jointly overshoot the store quota', async () => {
    await store.close();
    store = await open({ limits: { maxArtifactBytes: 0, quotaBytes: 100, reserveFreeBytes: 0 } });
    const a = await store.beginUpload({ actor: ACTOR });
    const b = await store.beginUpload({ actor: ACTOR });
    await a.write(Buffer.alloc(60, 1));
    const err = await refusal(b.write(Buffer.alloc(60, 2)));
    expect(err.reason).toBe('STORE_QUOTA_EXCEEDED');
    await b.abort();
    await a.finish();
    expect(store.usage()).toEqual({ storedBytes: 60, reservedBytes: 0 });
    // Content already stored still needs room while it is written, and 40 bytes are left.
    expect((await refusal(upload(Buffer.alloc(60, 1)))).reason).toBe('STORE_QUOTA_EXCEEDED');
    expect((await upload(Buffer.alloc(40, 3))).deduplicated).toBe(false);
    expect(store.usage().storedBytes).toBe(100);
  });

  it('reads whole and ranged content, and detects a corrupted blob on a whole read', async () => {
    const content = Buffer.from(Array.from({ length: 700_000 }, (_, i) => i % 251));
    const { artifact } = await upload(content);
    const read = async (offset: number, length: number): Promise<{ data: Buffer; offsets: number[] }> => {
      const parts: Buffer[] = [];
      const offsets: number[] = [];
      for await (const c of store.read(artifact, { offset, length })) {
        parts.push(c.data);
        offsets.push(c.offset);
        expect(c.data.length).toBeLessThanOrEqual(256 * 1024);
      }
      return { data: Buffer.concat(parts), offsets };
    };
    const whole = await read(0, 0);
    expect(whole.data.equals(content)).toBe(true);
    expect(whole.offsets).toEqual([0, 262144, 524288]);
    expect((await read(1000, 10)).data.equals(content.subarray(1000, 1010))).toBe(true);
    expect((await read(699_990, 100)).data.equals(content.subarray(699_990))).toBe(true);

    const blob = store.blobPath(artifact);
    chmodSync(blob, 0o644);
    const damaged = Buffer.from(content);
    damaged[123_456] = damaged[123_456]! ^ 0xff;
    writeFileSync(blob, damaged);
    // A range cannot be checked; the whole content can.
    expect((await read(0, 100)).data.equals(content.subarray(0, 100))).toBe(true);
    const err = await refusal(read(0, 0));
    expect(err.code).toBe(status.DATA_LOSS);
    expect(err.reason).toBe('BLOB_CORRUPTED');
  });

  it('verify re-hashes: valid updates verify_time, a flipped byte is invalid, a missing blob is BLOB_MISSING', async () => {
    const { artifact } = await upload('verify me');
    clock += 60_000;
    const ok = await store.verify(artifact.id);
    expect(ok).toMatchObject({ valid: true, actualDigest: sha('verify me'), actualSizeBytes: 9 });
    expect(ok.artifact.verifyTime).toBe(clock);

    const blob = store.blobPath(artifact);
    chmodSync(blob, 0o644);
    writeFileSync(blob, 'verify mE');
    const bad = await store.verify(artifact.id);
    expect(bad).toMatchObject({ valid: false, actualDigest: sha('verify mE'), actualSizeBytes: 9 });
    expect(bad.artifact.verifyTime).toBe(clock);

    // The next upload of the same content repairs the damaged blob instead of deduplicating onto it.
    const again = await upload('verify me');
    expect(again.deduplicated).toBe(false);
    expect(readFileSync(blob, 'utf8')).toBe('verify me');
    expect((await store.verify(artifact.id)).valid).toBe(true);

    rmSync(blob);
    const gone = await refusal(store.verify(artifact.id));
    expect(gone.code).toBe(status.DATA_LOSS);
    expect(gone.reason).toBe('BLOB_MISSING');
    expect((await refusal(store.verify('0'.repeat(26)))).reason).toBe('ARTIFACT_NOT_FOUND');
  });

  it('lists newest first with filters and pages', async () => {
    const jobId = '01kaj6m1x5q2w3e4r5t6y7u8i9';
    const made: string[] = [];
    for (let i = 0; i < 7; i++) {
      clock += 1000;
      made.push(
        (
          await upload(`content ${i}`, {
            jobId: i % 2 === 0 ? jobId : '',
            labels: { i: String(i), ...(i < 3 ? { early: '' } : {}) },
            ...(i === 6 ? { type: artifactsV1.ArtifactType.ARTIFACT_TYPE_REPORT } : {}),
          })
        ).artifact.id,
      );
    }
    const ids = (q: Partial<Parameters<ArtifactStore['list']>[0]>): string[] =>
      store.list({ ...everything(), ...q }).artifacts.map((a) => a.id);
    expect(ids({})).toEqual([...made].reverse());
    expect(ids({ jobId })).toEqual([made[6], made[4], made[2], made[0]]);
    expect(ids({ type: artifactsV1.ArtifactType.ARTIFACT_TYPE_REPORT })).toEqual([made[6]]);
    expect(ids({ digest: sha('content 3') })).toEqual([made[3]]);
    expect(ids({ accept: (a) => 'early' in a.labels })).toEqual([made[2], made[1], made[0]]);

    const seen: string[] = [];
    let before = 0;
    for (;;) {
      const page = store.list({ ...everything(), limit: 3, beforeSeq: before });
      seen.push(...page.artifacts.map((a) => a.id));
      if (!page.nextBeforeSeq) break;
      before = page.nextBeforeSeq;
    }
    expect(seen).toEqual([...made].reverse());
  });

  it('reconciles on open: temporary files and unreferenced blobs go, missing blobs are reported', async () => {
    const kept = await upload('kept');
    const lost = await upload('lost');
    await store.close();
    writeFileSync(join(dir, 'store', 'tmp', 'crashed.partial'), 'half');
    const orphanHex = sha('orphan').slice(7);
    mkdirSync(join(dir, 'store', 'blobs', 'sha256', orphanHex.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, 'store', 'blobs', 'sha256', orphanHex.slice(0, 2), orphanHex), 'orphan');
    rmSync(
      join(dir, 'store', 'blobs', 'sha256', lost.artifact.digest.slice(7, 9), lost.artifact.digest.slice(7)),
    );

    logLines = [];
    store = await open();
    expect(files(store.tmpDir)).toEqual([]);
    expect(files(store.blobsDir)).toEqual([
      join(kept.artifact.digest.slice(7, 9), kept.artifact.digest.slice(7)),
    ]);
    expect(logLines).toContainEqual(
      expect.objectContaining({ level: 'error', digest: lost.artifact.digest, records: 1 }),
    );
    expect(logLines).toContainEqual(
      expect.objectContaining({
        msg: 'artifacts: ready',
        removedTemporaryFiles: 1,
        removedOrphanBlobs: 1,
        missingBlobs: 1,
      }),
    );
    expect(store.get(lost.artifact.id)).toBeDefined();
    expect((await refusal(store.verify(lost.artifact.id))).reason).toBe('BLOB_MISSING');
    // Uploading the lost content again puts the blob back.
    await upload('lost');
    expect((await store.verify(lost.artifact.id)).valid).toBe(true);
  });

  it('refuses malformed metadata as INVALID_ARGUMENT / INVALID_FIELD', async () => {
    const err = await refusal(
      store.beginUpload({ actor: ACTOR, labels: { 'Bad Key': 'x' }, filename: 'a/b', mediaType: 'nope' }),
    );
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.reason).toBe('INVALID_FIELD');
    expect(err.fieldViolations.map((v) => v.field)).toEqual([
      'metadata.media_type',
      'metadata.labels["Bad Key"]',
      'metadata.filename',
    ]);
  });
});

function everything(): Parameters<ArtifactStore['list']>[0] {
  return {
    jobId: '',
    intentId: '',
    type: 0,
    digest: '',
    actor: '',
    beforeSeq: 0,
    accept: () => true,
    limit: 1000,
  };
}
