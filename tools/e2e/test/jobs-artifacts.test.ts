import { status } from '@grpc/grpc-js';
import { clientStreamCall, type AetherClient, type RpcError } from '@aether/client';
import { artifactsV1, jobsV1 } from '@aether/proto';
import { serverStreamCall } from '@aether/rpc';
import { Stack } from '../src';
import { JobState, MiB, run, spec, submit } from './jobs-helpers';

const { ArtifactType, LineageDirection } = artifactsV1;
const { JobEventType } = jobsV1;

async function upload(c: AetherClient, content: Buffer, filename: string): Promise<artifactsV1.Artifact> {
  const res = await clientStreamCall(c.artifacts.uploadArtifact.bind(c.artifacts), [
    artifactsV1.UploadArtifactRequest.fromPartial({
      payload: {
        $case: 'metadata',
        value: { metadata: { filename, type: ArtifactType.ARTIFACT_TYPE_DATASET } },
      },
    }),
    artifactsV1.UploadArtifactRequest.fromPartial({ payload: { $case: 'chunk', value: content } }),
  ]);
  return res.artifact!;
}

async function read(c: AetherClient, name: string): Promise<string> {
  const parts: Buffer[] = [];
  for await (const m of serverStreamCall(
    c.artifacts.readArtifact.bind(c.artifacts),
    artifactsV1.ReadArtifactRequest.fromPartial({ name }),
  ))
    parts.push(m.data);
  return Buffer.concat(parts).toString();
}

const events = (job: jobsV1.Job, type: jobsV1.JobEventType): string[] =>
  job.events.filter((e) => e.type === type).map((e) => e.message);

describe('jobs and artifacts: inputs bound read-only, declared outputs registered with provenance', () => {
  let stack: Stack;
  let c: AetherClient;
  let input: artifactsV1.Artifact;

  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
    c = stack.client();
    input = await upload(c, Buffer.from('hello input\n'), 'input.txt');
  }, 60_000);
  afterAll(async () => {
    c.close();
    await stack.close();
  });

  it('binds inputs read-only at /work/inputs/<id> and registers outputs (files and globs) on success', async () => {
    const inPath = `/work/inputs/${input.id}`;
    const { job, out } = await run(
      c,
      spec(
        [
          '/bin/sh',
          '-c',
          `mkdir -p /work/outputs/ckpt && tr a-z A-Z < ${inPath} > /work/outputs/result.txt && ` +
            'echo 1 > /work/outputs/ckpt/a.ckpt && echo 2 > /work/outputs/ckpt/b.ckpt && ' +
            `(echo x > ${inPath} && echo WRITABLE || echo READ-ONLY)`,
        ],
        {
          inputArtifacts: [input.name],
          outputs: [
            {
              path: 'result.txt',
              artifactType: 'REPORT',
              mediaType: '',
              labels: { kind: 'upper' },
              optional: false,
            },
            { path: 'ckpt/*.ckpt', artifactType: 'CHECKPOINT', mediaType: '', labels: {}, optional: false },
            { path: 'not-there.bin', artifactType: '', mediaType: '', labels: {}, optional: true },
          ],
        },
      ),
    );
    expect(out).toContain('READ-ONLY');
    expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    expect(job.outputArtifacts).toHaveLength(3);
    expect(events(job, JobEventType.JOB_EVENT_TYPE_OUTPUT_REGISTERED)).toHaveLength(3);
    expect(events(job, JobEventType.JOB_EVENT_TYPE_OUTPUT_FAILED)).toEqual([]);

    const got = await Promise.all(
      job.outputArtifacts.map(async (name) => (await c.call(c.artifacts, 'getArtifact', { name })).artifact!),
    );
    const report = got.find((a) => a.filename === 'result.txt')!;
    expect(report).toMatchObject({
      type: ArtifactType.ARTIFACT_TYPE_REPORT,
      jobId: job.id,
      actor: 'spiffe://aether.local/admin',
      derivedFrom: [input.name],
      labels: { kind: 'upper' },
      mediaType: 'text/plain',
    });
    expect(await read(c, report.name)).toBe('HELLO INPUT\n');
    expect(
      got
        .filter((a) => a.type === ArtifactType.ARTIFACT_TYPE_CHECKPOINT)
        .map((a) => a.filename)
        .sort(),
    ).toEqual(['a.ckpt', 'b.ckpt']);

    // Provenance answers questions: what did this job produce, and what came of this input?
    const byJob = await c.call(
      c.artifacts,
      'listArtifacts',
      artifactsV1.ListArtifactsRequest.fromPartial({ jobId: job.id }),
    );
    expect(byJob.artifacts.map((a) => a.name).sort()).toEqual([...job.outputArtifacts].sort());
    const lineage = await c.call(c.artifacts, 'getArtifactLineage', {
      name: input.name,
      direction: LineageDirection.LINEAGE_DIRECTION_DESCENDANTS,
      maxDepth: 1,
      maxNodes: 0,
    });
    expect(
      lineage.nodes
        .filter((n) => n.depth === 1)
        .map((n) => n.name)
        .sort(),
    ).toEqual([...job.outputArtifacts].sort());

    // A file the job left in /work can also be registered afterwards, named as the job saw it.
    const later = await c.call(
      c.artifacts,
      'createArtifact',
      artifactsV1.CreateArtifactRequest.fromPartial({
        sourcePath: 'outputs/ckpt/a.ckpt',
        metadata: { jobId: job.id },
      }),
    );
    expect(later.deduplicated).toBe(true);
    expect(later.artifact!.jobId).toBe(job.id);
  });

  it('registers nothing for a job that fails', async () => {
    const { job } = await run(
      c,
      spec(['/bin/sh', '-c', 'mkdir -p /work/outputs && echo x > /work/outputs/r.txt; exit 3'], {
        outputs: [{ path: 'r.txt', artifactType: '', mediaType: '', labels: {}, optional: false }],
      }),
    );
    expect(job.state).toBe(JobState.JOB_STATE_FAILED);
    expect(job.outputArtifacts).toEqual([]);
    expect(job.events.some((e) => e.type === JobEventType.JOB_EVENT_TYPE_OUTPUT_REGISTERED)).toBe(false);
  });

  it('records OUTPUT_FAILED for a missing output, a symlink out of /work and the job’s output quota', async () => {
    const { job } = await run(
      c,
      spec(
        [
          '/bin/sh',
          '-c',
          'mkdir -p /work/outputs && ln -s /etc/passwd /work/outputs/leak && ' +
            'head -c 2097152 /dev/zero > /work/outputs/big.bin && echo ok > /work/outputs/small.txt',
        ],
        {
          outputs: [
            { path: 'missing.bin', artifactType: '', mediaType: '', labels: {}, optional: false },
            { path: 'leak', artifactType: '', mediaType: '', labels: {}, optional: false },
            { path: 'small.txt', artifactType: '', mediaType: '', labels: {}, optional: false },
            { path: 'big.bin', artifactType: '', mediaType: '', labels: {}, optional: false },
          ],
        },
        { maxOutputBytes: BigInt(MiB) },
      ),
    );
    expect(job.state).toBe(JobState.JOB_STATE_SUCCEEDED);
    const failed = events(job, JobEventType.JOB_EVENT_TYPE_OUTPUT_FAILED);
    expect(failed).toHaveLength(3);
    expect(failed.find((m) => m.includes('missing.bin'))).toContain('no such file');
    expect(failed.find((m) => m.includes('leak'))).toContain('PATH_OUTSIDE_ROOT');
    expect(failed.find((m) => m.includes('big.bin'))).toContain('JOB_OUTPUT_QUOTA_EXCEEDED');
    expect(job.outputArtifacts).toHaveLength(1);
    const listed = await c.call(
      c.artifacts,
      'listArtifacts',
      artifactsV1.ListArtifactsRequest.fromPartial({ jobId: job.id }),
    );
    expect(listed.artifacts.map((a) => a.filename)).toEqual(['small.txt']);
  });

  it('refuses a job whose input does not exist, and malformed outputs, before it is queued', async () => {
    const missing = (await submit(
      c,
      spec(['/bin/true'], { inputArtifacts: [`artifacts/${'0'.repeat(26)}`] }),
    ).catch((e: RpcError) => e)) as RpcError;
    expect(missing).toMatchObject({ code: status.NOT_FOUND, reason: 'ARTIFACT_NOT_FOUND' });
    const bad = (await submit(
      c,
      spec(['/bin/true'], {
        outputs: [
          { path: '../etc/passwd', artifactType: 'WEIGHTS', mediaType: '', labels: {}, optional: false },
        ],
      }),
    ).catch((e: RpcError) => e)) as RpcError;
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.message).toContain('spec.outputs[0].path');
    expect(bad.message).toContain('spec.outputs[0].artifact_type');
  });
});
