import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import { artifactsV1 } from '@aether/proto';
import { clientStreamCall, serverStreamCall, type CallOpts, type RpcError } from '@aether/rpc';
import type { AetherClient } from '@aether/client';
import { Stack } from '../src';
import { run, spec, stateName } from './jobs-helpers';

const MiB = 1024 * 1024;
const { ArtifactType, LineageDirection } = artifactsV1;
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const failure = (p: Promise<unknown>): Promise<RpcError> =>
  p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: RpcError) => e,
  );
/** An upload's first message, any field left out. */
type UploadMeta = Parameters<typeof artifactsV1.UploadArtifactMetadata.fromPartial>[0];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Content that differs per `seed`, so tests do not deduplicate onto each other by accident. */
function content(bytes: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + seed * 13 + (i >> 8)) % 256;
  return b;
}

function uploadMessages(
  data: Buffer,
  meta: UploadMeta = {},
  chunk = MiB,
): artifactsV1.UploadArtifactRequest[] {
  const messages = [
    artifactsV1.UploadArtifactRequest.fromPartial({ payload: { $case: 'metadata', value: meta } }),
  ];
  for (let at = 0; at < data.length; at += chunk)
    messages.push({ payload: { $case: 'chunk', value: data.subarray(at, at + chunk) } });
  return messages;
}

const upload = (
  c: AetherClient,
  data: Buffer,
  meta: UploadMeta = {},
  opts: CallOpts = {},
): Promise<artifactsV1.UploadArtifactResponse> =>
  clientStreamCall(c.artifacts.uploadArtifact.bind(c.artifacts), uploadMessages(data, meta), opts);

async function readAll(
  c: AetherClient,
  req: Partial<artifactsV1.ReadArtifactRequest>,
): Promise<artifactsV1.ReadArtifactResponse[]> {
  const out: artifactsV1.ReadArtifactResponse[] = [];
  for await (const m of serverStreamCall(
    c.artifacts.readArtifact.bind(c.artifacts),
    artifactsV1.ReadArtifactRequest.fromPartial(req),
  ))
    out.push(m);
  return out;
}

const bytesOf = (msgs: artifactsV1.ReadArtifactResponse[]): Buffer => Buffer.concat(msgs.map((m) => m.data));

async function listAll(
  c: AetherClient,
  req: Partial<artifactsV1.ListArtifactsRequest> = {},
): Promise<string[]> {
  const res = await c.call(
    c.artifacts,
    'listArtifacts',
    artifactsV1.ListArtifactsRequest.fromPartial({ pageSize: 1000, ...req }),
  );
  return res.artifacts.map((a) => a.name);
}

/** Polls until `dir` has no entries (the server cleans up after the call has already ended for the client). */
async function emptied(dir: string, timeoutMs = 5_000): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const left = readdirSync(dir);
    if (left.length === 0 || Date.now() > until) return left;
    await sleep(20);
  }
}

describe('artifacts: store, serve, verify and relate blobs through a real aetherd', () => {
  let stack: Stack;
  let admin: AetherClient;
  let work: string;
  let importRoot: string;
  let outside: string;
  let storeDir: string;
  let tmpDir: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'aether-artifacts-'));
    importRoot = join(work, 'import');
    outside = join(work, 'outside');
    mkdirSync(importRoot);
    mkdirSync(outside);
    stack = await new Stack({
      extraIdentities: ['stranger'],
      artifacts: { importRoots: [importRoot], reserveFreeBytes: 0, quotaBytes: 48 * MiB },
    }).init();
    await stack.start('aetherd');
    admin = stack.client();
    storeDir = join(stack.dir, 'state', 'aetherd', 'artifacts');
    tmpDir = join(storeDir, 'tmp');
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('registers a file under an import root by path and serves it back, metadata first', async () => {
    const data = content(300_000, 1);
    writeFileSync(join(importRoot, 'train.csv'), data);
    const res = await admin.call(
      admin.artifacts,
      'createArtifact',
      artifactsV1.CreateArtifactRequest.fromPartial({
        sourcePath: join(importRoot, 'train.csv'),
        metadata: {
          type: ArtifactType.ARTIFACT_TYPE_DATASET,
          labels: { split: 'train' },
          description: 'rows',
        },
        expectedDigest: sha(data),
      }),
      { intentId: 'intent-42' },
    );
    const a = res.artifact!;
    expect(res.deduplicated).toBe(false);
    expect(a).toMatchObject({
      digest: sha(data),
      sizeBytes: BigInt(data.length),
      type: ArtifactType.ARTIFACT_TYPE_DATASET,
      mediaType: 'text/csv',
      filename: 'train.csv',
      labels: { split: 'train' },
      intentId: 'intent-42',
      actor: 'spiffe://aether.local/admin',
      description: 'rows',
    });
    expect(a.name).toBe(`artifacts/${a.id}`);
    expect(a.path.startsWith(join(storeDir, 'blobs', 'sha256'))).toBe(true);
    expect(readFileSync(a.path).equals(data)).toBe(true);

    const got = await admin.call(admin.artifacts, 'getArtifact', { name: a.name });
    expect(got.artifact).toEqual(a);
    const msgs = await readAll(admin, { name: a.name });
    expect(msgs[0]!.artifact).toEqual(a);
    expect(msgs.slice(1).every((m) => m.artifact === undefined)).toBe(true);
    expect(bytesOf(msgs).equals(data)).toBe(true);
    expect(await listAll(admin, { intentId: 'intent-42' })).toEqual([a.name]);
    expect(await listAll(admin, { labelSelector: 'split=train' })).toEqual([a.name]);
  });

  it('uploads in chunks and reads whole or by range, 256 KiB at a time', async () => {
    const data = content(1_000_000, 2);
    const res = await upload(admin, data, {
      metadata: { filename: 'weights.onnx', type: ArtifactType.ARTIFACT_TYPE_MODEL },
      expectedSizeBytes: BigInt(data.length),
      expectedDigest: sha(data),
    });
    const a = res.artifact!;
    expect(a).toMatchObject({ digest: sha(data), mediaType: 'application/onnx', filename: 'weights.onnx' });

    const whole = await readAll(admin, { name: a.name });
    expect(whole.map((m) => m.data.length)).toEqual([262144, 262144, 262144, 213568]);
    expect(whole.map((m) => m.offset)).toEqual([0n, 262144n, 524288n, 786432n]);
    expect(bytesOf(whole).equals(data)).toBe(true);
    const range = await readAll(admin, { name: a.name, offset: 500_000n, length: 300_000n });
    expect(range[0]!.offset).toBe(500_000n);
    expect(bytesOf(range).equals(data.subarray(500_000, 800_000))).toBe(true);
    const tail = await readAll(admin, { name: a.name, offset: 999_990n, length: 100n });
    expect(bytesOf(tail).equals(data.subarray(999_990))).toBe(true);
    const atEnd = await readAll(admin, { name: a.name, offset: 1_000_000n });
    expect(atEnd).toHaveLength(1);
    expect(atEnd[0]!.data.length).toBe(0);
    expect(atEnd[0]!.artifact?.name).toBe(a.name);

    const beyond = await failure(readAll(admin, { name: a.name, offset: 1_000_001n }));
    expect(beyond.code).toBe(status.OUT_OF_RANGE);
    expect(beyond.reason).toBe('RANGE_NOT_SATISFIABLE');
    const negative = await failure(readAll(admin, { name: a.name, offset: -1n }));
    expect(negative.code).toBe(status.INVALID_ARGUMENT);
  });

  it('stores identical content once: the second copy is deduplicated and shares the blob', async () => {
    const data = content(200_000, 3);
    const first = await upload(admin, data, { metadata: { filename: 'a.bin' } });
    writeFileSync(join(importRoot, 'b.bin'), data);
    const second = await admin.call(admin.artifacts, 'createArtifact', {
      sourcePath: join(importRoot, 'b.bin'),
      metadata: artifactsV1.ArtifactMetadata.fromPartial({}),
      expectedDigest: '',
      idempotencyKey: '',
    });
    expect(first.deduplicated).toBe(false);
    expect(second.deduplicated).toBe(true);
    expect(second.artifact!.path).toBe(first.artifact!.path);
    expect(await listAll(admin, { digest: sha(data) })).toEqual([
      second.artifact!.name,
      first.artifact!.name,
    ]);
    // Deleting one record keeps the blob for the other; deleting both removes it.
    await admin.call(admin.artifacts, 'deleteArtifact', { name: first.artifact!.name });
    expect(existsSync(second.artifact!.path)).toBe(true);
    await admin.call(admin.artifacts, 'deleteArtifact', { name: second.artifact!.name });
    expect(existsSync(second.artifact!.path)).toBe(false);
  });

  it('verify re-hashes the blob and reports a flipped byte; a whole read fails with DATA_LOSS', async () => {
    const data = content(100_000, 4);
    const a = (await upload(admin, data)).artifact!;
    const ok = await admin.call(admin.artifacts, 'verifyArtifact', { name: a.name });
    expect(ok).toMatchObject({ valid: true, expectedDigest: sha(data), actualDigest: sha(data) });

    chmodSync(a.path, 0o644);
    const damaged = Buffer.from(data);
    damaged[50_000] = damaged[50_000]! ^ 0x01;
    writeFileSync(a.path, damaged);
    const bad = await admin.call(admin.artifacts, 'verifyArtifact', { name: a.name });
    expect(bad).toMatchObject({
      valid: false,
      expectedDigest: sha(data),
      actualDigest: sha(damaged),
      expectedSizeBytes: 100_000n,
      actualSizeBytes: 100_000n,
    });
    const read = await failure(readAll(admin, { name: a.name }));
    expect(read.code).toBe(status.DATA_LOSS);
    expect(read.reason).toBe('BLOB_CORRUPTED');

    rmSync(a.path);
    const gone = await failure(admin.call(admin.artifacts, 'verifyArtifact', { name: a.name }));
    expect(gone.code).toBe(status.DATA_LOSS);
    expect(gone.reason).toBe('BLOB_MISSING');
  });

  it('answers lineage queries both ways, and shows a deleted ancestor as deleted', async () => {
    const raw = (await upload(admin, content(1000, 5), { metadata: { filename: 'raw' } })).artifact!;
    const clean = (await upload(admin, content(1000, 6), { metadata: { derivedFrom: [raw.name] } }))
      .artifact!;
    const model = (await upload(admin, content(1000, 7), { metadata: { derivedFrom: [clean.name] } }))
      .artifact!;
    expect(model.derivedFrom).toEqual([clean.name]);

    const lineage = (name: string, over: Partial<artifactsV1.GetArtifactLineageRequest> = {}) =>
      admin.call(
        admin.artifacts,
        'getArtifactLineage',
        artifactsV1.GetArtifactLineageRequest.fromPartial({ name, ...over }),
      );
    const direct = await lineage(clean.name);
    expect(direct.nodes.map((n) => [n.name, n.depth])).toEqual([
      [clean.name, 0],
      [raw.name, -1],
      [model.name, 1],
    ]);
    expect(direct.edges).toEqual(
      expect.arrayContaining([
        { parent: raw.name, child: clean.name },
        { parent: clean.name, child: model.name },
      ]),
    );

    await admin.call(admin.artifacts, 'deleteArtifact', { name: clean.name });
    const up = await lineage(model.name, {
      direction: LineageDirection.LINEAGE_DIRECTION_ANCESTORS,
      maxDepth: 5,
    });
    expect(up.nodes.map((n) => [n.name, n.depth, n.deleted, n.artifact?.name])).toEqual([
      [model.name, 0, false, model.name],
      [clean.name, -1, true, undefined],
      [raw.name, -2, false, raw.name],
    ]);
    expect(up.truncated).toBe(false);
    const down = await lineage(raw.name, {
      direction: LineageDirection.LINEAGE_DIRECTION_DESCENDANTS,
      maxDepth: 2,
      maxNodes: 2,
    });
    expect(down.nodes.map((n) => n.name)).toEqual([raw.name, clean.name]);
    expect(down.truncated).toBe(true);
    // The descendant still names its deleted input.
    expect(
      (await admin.call(admin.artifacts, 'getArtifact', { name: model.name })).artifact!.derivedFrom,
    ).toEqual([clean.name]);
  });

  it('refuses path traversal, symlink and hard-link escapes, and what is not a regular file', async () => {
    writeFileSync(join(outside, 'secret.txt'), 'secret');
    symlinkSync(join(outside, 'secret.txt'), join(importRoot, 'link.txt'));
    symlinkSync(outside, join(importRoot, 'dir-link'));
    execFileSync('ln', [join(outside, 'secret.txt'), join(importRoot, 'hard.txt')]);
    execFileSync('mkfifo', [join(importRoot, 'fifo')]);
    const create = (sourcePath: string, metadata: Partial<artifactsV1.ArtifactMetadata> = {}) =>
      failure(
        admin.call(
          admin.artifacts,
          'createArtifact',
          artifactsV1.CreateArtifactRequest.fromPartial({ sourcePath, metadata }),
        ),
      );
    const cases: [string, number, string][] = [
      [`${importRoot}/../outside/secret.txt`, status.INVALID_ARGUMENT, 'INVALID_PATH'],
      ['train.csv', status.INVALID_ARGUMENT, 'INVALID_PATH'],
      ['/etc/passwd', status.PERMISSION_DENIED, 'PATH_OUTSIDE_ROOT'],
      [join(importRoot, 'link.txt'), status.PERMISSION_DENIED, 'PATH_OUTSIDE_ROOT'],
      [join(importRoot, 'dir-link', 'secret.txt'), status.PERMISSION_DENIED, 'PATH_OUTSIDE_ROOT'],
      [join(importRoot, 'hard.txt'), status.PERMISSION_DENIED, 'PATH_OUTSIDE_ROOT'],
      [join(importRoot, 'fifo'), status.FAILED_PRECONDITION, 'NOT_A_REGULAR_FILE'],
      [importRoot, status.FAILED_PRECONDITION, 'NOT_A_REGULAR_FILE'],
      [join(importRoot, 'missing.bin'), status.NOT_FOUND, 'SOURCE_NOT_FOUND'],
    ];
    for (const [path, code, reason] of cases) {
      const err = await create(path);
      expect({ path, code: err.code, reason: err.reason }).toEqual({ path, code, reason });
    }
    const noJob = await create('/work/outputs/x', { jobId: '0'.repeat(26) });
    expect([noJob.code, noJob.reason]).toEqual([status.NOT_FOUND, 'JOB_NOT_FOUND']);
    writeFileSync(join(importRoot, 'ok.txt'), 'ok');
    const noInput = await create(join(importRoot, 'ok.txt'), {
      derivedFrom: [`artifacts/${'0'.repeat(26)}`],
    });
    expect([noInput.code, noInput.reason]).toEqual([status.NOT_FOUND, 'ARTIFACT_NOT_FOUND']);
    expect(readdirSync(tmpDir)).toEqual([]);
  });

  it('a digest or size mismatch registers nothing', async () => {
    const before = await listAll(admin);
    const data = content(50_000, 8);
    const wrong = sha('not this');
    const up = await failure(upload(admin, data, { expectedDigest: wrong }));
    expect([up.code, up.reason]).toEqual([status.INVALID_ARGUMENT, 'DIGEST_MISMATCH']);
    expect(up.metadata).toEqual({ expected: wrong, actual: sha(data) });
    writeFileSync(join(importRoot, 'mismatch.bin'), data);
    const byPath = await failure(
      admin.call(admin.artifacts, 'createArtifact', {
        sourcePath: join(importRoot, 'mismatch.bin'),
        metadata: undefined,
        expectedDigest: wrong,
        idempotencyKey: '',
      }),
    );
    expect(byPath.reason).toBe('DIGEST_MISMATCH');
    const size = await failure(upload(admin, data, { expectedSizeBytes: 50_001n }));
    expect([size.code, size.reason]).toEqual([status.INVALID_ARGUMENT, 'SIZE_MISMATCH']);
    expect(await listAll(admin)).toEqual(before);
    expect(await emptied(tmpDir)).toEqual([]);
  });

  it('an upload cut mid-stream (cancelled, or past its deadline) registers nothing and leaves no temporary file', async () => {
    const before = await listAll(admin);
    const chunk = Buffer.alloc(MiB, 9);
    for (const cut of ['cancel', 'deadline'] as const) {
      let outcome: (err: RpcError | null) => void = () => undefined;
      const ended = new Promise<RpcError | null>((r) => (outcome = r));
      const call = admin.artifacts.uploadArtifact(
        new Metadata(),
        cut === 'deadline' ? { deadline: new Date(Date.now() + 800) } : {},
        (err) => outcome(err as RpcError | null),
      );
      call.write(uploadMessages(Buffer.alloc(0), { metadata: { filename: `cut-${cut}` } })[0]!);
      for (let i = 0; i < 3; i++) call.write({ payload: { $case: 'chunk', value: chunk } });
      // Wait until the server is writing a temporary file, then cut (or let the deadline pass).
      const until = Date.now() + 5_000;
      while (readdirSync(tmpDir).length === 0 && Date.now() < until) await sleep(10);
      expect(readdirSync(tmpDir)).toHaveLength(1);
      if (cut === 'cancel') call.cancel();
      const err = await ended;
      expect(err?.code).toBe(cut === 'cancel' ? status.CANCELLED : status.DEADLINE_EXCEEDED);
      expect(await emptied(tmpDir)).toEqual([]);
    }
    expect(await listAll(admin)).toEqual(before);
    await stack.daemons
      .get('aetherd')!
      .waitForLog(
        (l) =>
          l['rpc'] === '/aether.artifacts.v1.ArtifactService/UploadArtifact' && l['code'] === 'CANCELLED',
      );
  });

  it('refuses what would exceed the store quota, up front or as the upload grows', async () => {
    const before = await listAll(admin);
    const declared = await failure(
      clientStreamCall(admin.artifacts.uploadArtifact.bind(admin.artifacts), [
        artifactsV1.UploadArtifactRequest.fromPartial({
          payload: { $case: 'metadata', value: { expectedSizeBytes: BigInt(64 * MiB) } },
        }),
      ]),
    );
    expect([declared.code, declared.reason]).toEqual([status.RESOURCE_EXHAUSTED, 'STORE_QUOTA_EXCEEDED']);
    const grown = await failure(upload(admin, Buffer.alloc(50 * MiB, 10)));
    expect([grown.code, grown.reason]).toEqual([status.RESOURCE_EXHAUSTED, 'STORE_QUOTA_EXCEEDED']);
    expect(await listAll(admin)).toEqual(before);
    expect(await emptied(tmpDir)).toEqual([]);
  });

  it('replays an idempotency key with the same arguments and refuses it with others', async () => {
    const data = content(10_000, 11);
    const meta = { metadata: { filename: 'once.bin' }, idempotencyKey: 'upload-once' };
    const first = await upload(admin, data, meta);
    const again = await upload(admin, data, meta);
    expect(again.artifact!.name).toBe(first.artifact!.name);
    const other = await failure(upload(admin, data, { ...meta, metadata: { filename: 'other.bin' } }));
    expect([other.code, other.reason]).toEqual([status.ALREADY_EXISTS, 'IDEMPOTENCY_KEY_REUSED']);
  });

  it('refuses malformed names, pages, selectors and streams as INVALID_ARGUMENT', async () => {
    const bad = async (p: Promise<unknown>, reason: string): Promise<void> => {
      const err = await failure(p);
      expect([err.code, err.reason]).toEqual([status.INVALID_ARGUMENT, reason]);
    };
    await bad(admin.call(admin.artifacts, 'getArtifact', { name: 'artifacts/nope' }), 'INVALID_NAME');
    await bad(
      admin.call(admin.artifacts, 'deleteArtifact', { name: 'jobs/01kaj6m1x5q2w3e4r5t6y7u8i9' }),
      'INVALID_NAME',
    );
    await bad(readAll(admin, { name: 'x' }), 'INVALID_NAME');
    const list = (over: Partial<artifactsV1.ListArtifactsRequest>) =>
      admin.call(admin.artifacts, 'listArtifacts', artifactsV1.ListArtifactsRequest.fromPartial(over));
    await bad(list({ pageToken: 'abc' }), 'INVALID_PAGE_TOKEN');
    await bad(list({ pageSize: -1 }), 'INVALID_FIELD');
    await bad(list({ labelSelector: 'a=b,,' }), 'INVALID_LABEL_SELECTOR');
    await bad(list({ digest: 'md5:abc' }), 'INVALID_FIELD');
    await bad(
      admin.call(
        admin.artifacts,
        'getArtifactLineage',
        artifactsV1.GetArtifactLineageRequest.fromPartial({
          name: `artifacts/${'0'.repeat(26)}`,
          maxDepth: 65,
        }),
      ),
      'INVALID_FIELD',
    );
    await bad(
      clientStreamCall(admin.artifacts.uploadArtifact.bind(admin.artifacts), [
        artifactsV1.UploadArtifactRequest.fromPartial({
          payload: { $case: 'chunk', value: Buffer.from('x') },
        }),
      ]),
      'INVALID_FIELD',
    );
    await bad(
      upload(admin, Buffer.from('x'), { metadata: { labels: { 'Not Valid': '' } } }),
      'INVALID_FIELD',
    );
    const second = uploadMessages(Buffer.from('x'));
    await bad(
      clientStreamCall(admin.artifacts.uploadArtifact.bind(admin.artifacts), [...second, second[0]!]),
      'INVALID_FIELD',
    );
    const notFound = await failure(
      admin.call(admin.artifacts, 'getArtifact', { name: `artifacts/${'0'.repeat(26)}` }),
    );
    expect([notFound.code, notFound.reason]).toEqual([status.NOT_FOUND, 'ARTIFACT_NOT_FOUND']);
  });

  it('pages through a listing newest first', async () => {
    const all = await listAll(admin);
    const seen: string[] = [];
    let pageToken = '';
    do {
      const res = await admin.call(
        admin.artifacts,
        'listArtifacts',
        artifactsV1.ListArtifactsRequest.fromPartial({ pageSize: 2, pageToken }),
      );
      expect(res.artifacts.length).toBeLessThanOrEqual(2);
      seen.push(...res.artifacts.map((a) => a.name));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(all);
    expect(all.length).toBeGreaterThan(4);
  });

  it('policy decides with the artifact type: a stranger is denied, aurorad may not upload models, cfcd may not read reports', async () => {
    const stranger = stack.client('stranger');
    const aurorad = stack.client('aurorad');
    const cfcd = stack.client('cfcd');
    try {
      for (const p of [
        upload(stranger, Buffer.from('x')),
        stranger.call(stranger.artifacts, 'listArtifacts', artifactsV1.ListArtifactsRequest.fromPartial({})),
        stranger.call(stranger.artifacts, 'getArtifact', { name: `artifacts/${'0'.repeat(26)}` }),
      ]) {
        const err = await failure(p);
        expect([err.code, err.reason]).toEqual([status.PERMISSION_DENIED, 'POLICY_DENIED']);
      }
      const model = await failure(
        upload(aurorad, Buffer.from('m'), { metadata: { type: ArtifactType.ARTIFACT_TYPE_MODEL } }),
      );
      expect(model.reason).toBe('POLICY_DENIED');
      const report = (
        await upload(aurorad, content(100, 12), { metadata: { type: ArtifactType.ARTIFACT_TYPE_REPORT } })
      ).artifact!;
      expect(report.actor).toBe('spiffe://aether.local/aurorad');
      const cfcdRead = await failure(cfcd.call(cfcd.artifacts, 'getArtifact', { name: report.name }));
      expect(cfcdRead.reason).toBe('POLICY_DENIED');
      const ckpt = (
        await upload(cfcd, content(100, 13), { metadata: { type: ArtifactType.ARTIFACT_TYPE_CHECKPOINT } })
      ).artifact!;
      expect((await cfcd.call(cfcd.artifacts, 'getArtifact', { name: ckpt.name })).artifact!.name).toBe(
        ckpt.name,
      );
    } finally {
      stranger.close();
      aurorad.close();
      cfcd.close();
    }
  });

  it("registers a job's output by the path the job saw, and refuses its escapes and its quota overflow", async () => {
    const { job } = await run(
      admin,
      spec(
        [
          '/bin/sh',
          '-c',
          'mkdir -p /work/outputs && printf model > /work/outputs/model.onnx && ln -s /etc/passwd /work/outputs/passwd && head -c 2000 /dev/zero > /work/outputs/big.bin',
        ],
        { intentId: 'intent-job' },
        { maxOutputBytes: 1000n },
      ),
    );
    expect(stateName(job.state)).toBe('SUCCEEDED');
    const created = await admin.call(
      admin.artifacts,
      'createArtifact',
      artifactsV1.CreateArtifactRequest.fromPartial({
        sourcePath: '/work/outputs/model.onnx',
        metadata: { jobId: job.id },
      }),
    );
    expect(created.artifact).toMatchObject({
      jobId: job.id,
      intentId: 'intent-job',
      digest: sha('model'),
      filename: 'model.onnx',
    });
    // Relative to /work, with the job named by the call's metadata.
    const again = await admin.call(
      admin.artifacts,
      'createArtifact',
      artifactsV1.CreateArtifactRequest.fromPartial({ sourcePath: 'outputs/model.onnx' }),
      { jobId: job.id },
    );
    expect(again.deduplicated).toBe(true);
    expect(await listAll(admin, { jobId: job.id })).toEqual([again.artifact!.name, created.artifact!.name]);

    const escape = await failure(
      admin.call(
        admin.artifacts,
        'createArtifact',
        artifactsV1.CreateArtifactRequest.fromPartial({
          sourcePath: 'outputs/passwd',
          metadata: { jobId: job.id },
        }),
      ),
    );
    expect(escape.reason).toBe('PATH_OUTSIDE_ROOT');
    const big = await failure(
      admin.call(
        admin.artifacts,
        'createArtifact',
        artifactsV1.CreateArtifactRequest.fromPartial({
          sourcePath: 'outputs/big.bin',
          metadata: { jobId: job.id },
        }),
      ),
    );
    expect([big.code, big.reason]).toEqual([status.RESOURCE_EXHAUSTED, 'JOB_OUTPUT_QUOTA_EXCEEDED']);
    expect(readdirSync(tmpDir)).toEqual([]);
  });

  it('logged no unexpected error along the way (only the corruption the verify test caused)', () => {
    const errors = stack.daemons
      .get('aetherd')!
      .lines.filter((l) => l['level'] === 'error' || l['level'] === 'fatal')
      .map((l) => (l['msg'] === 'unexpected error in handler' ? JSON.stringify(l) : l['msg']));
    expect(errors).toEqual(['artifacts: a blob no longer matches its digest']);
  });
});

describe('artifacts: a full disk (ENOSPC on a small tmpfs)', () => {
  let stack: Stack;
  let admin: AetherClient;
  let mnt: string;

  beforeAll(async () => {
    mnt = mkdtempSync(join(tmpdir(), 'aether-artifacts-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
    stack = await new Stack({ artifacts: { dir: mnt, reserveFreeBytes: 0 } }).init();
    await stack.start('aetherd');
    admin = stack.client();
  }, 60_000);
  afterAll(async () => {
    admin.close();
    await stack.close();
    execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  it('answers DISK_FULL, registers nothing and leaves no temporary file; the store keeps working', async () => {
    const data = content(16 * MiB, 14);
    // Undeclared size: the filesystem runs out mid-upload (ENOSPC).
    const midway = await failure(upload(admin, data));
    expect([midway.code, midway.reason]).toEqual([status.RESOURCE_EXHAUSTED, 'DISK_FULL']);
    expect(await emptied(join(mnt, 'tmp'))).toEqual([]);
    // Declared: refused before any byte, from the free space.
    const declared = await failure(upload(admin, data, { expectedSizeBytes: BigInt(data.length) }));
    expect([declared.code, declared.reason]).toEqual([status.RESOURCE_EXHAUSTED, 'DISK_FULL']);
    expect(await emptied(join(mnt, 'tmp'))).toEqual([]);
    expect(await listAll(admin)).toEqual([]);
    expect(readdirSync(join(mnt, 'blobs', 'sha256'))).toEqual([]);

    const small = await upload(admin, content(MiB, 15));
    expect(small.artifact!.path.startsWith(mnt)).toBe(true);
    expect(await listAll(admin)).toEqual([small.artifact!.name]);
  });
});
