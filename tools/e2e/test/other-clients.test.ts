import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createFileRegistry, fromBinary, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { reflectionV1 } from '@aether/proto';
import { createClient } from '@aether/rpc';
import { repoRoot, Stack } from '../src';

const buf = join(repoRoot, 'node_modules', '.bin', 'buf');

describe('clients that are not ours', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await new Stack().init();
    await stack.start('aetherd');
  });
  afterAll(() => stack.close());

  const bufCurl = (...args: string[]): { status: number | null; out: string } => {
    const admin = stack.pki.identities['admin']!;
    const r = spawnSync(
      buf,
      [
        'curl',
        '--unix-socket',
        stack.socket('aetherd'),
        '--protocol',
        'grpc',
        '--cacert',
        stack.pki.caCertPath,
        '--cert',
        admin.certPath,
        '--key',
        admin.keyPath,
        '--servername',
        'aetherd',
        ...args,
      ],
      { encoding: 'utf8' },
    );
    return { status: r.status, out: r.stdout + r.stderr };
  };

  it('buf curl lists every service through server reflection', () => {
    const r = bufCurl('--list-services', 'https://aetherd');
    expect(r.status).toBe(0);
    const services = r.out.trim().split('\n').sort();
    expect(services).toEqual(
      [
        'aether.artifacts.v1.ArtifactService',
        'aether.events.v1.EventService',
        'aether.governance.v1.AuditService',
        'aether.governance.v1.PolicyService',
        'aether.governance.v1.TokenService',
        'aether.jobs.v1.JobService',
        'aether.memory.v1.MemoryService',
        'aether.metrics.v1.MetricsService',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
      ].sort(),
    );
  });

  it('buf curl emits an event with a google.protobuf.Struct and lists it by Timestamp, resolved through reflection', () => {
    const emitted = bufCurl(
      '-d',
      '{"event": {"type": "test.from_buf", "subject": "x/1", "data": {"n": 2, "tags": ["a"], "ok": true}}}',
      'https://aetherd/aether.events.v1.EventService/EmitEvent',
    );
    expect(emitted.status).toBe(0);
    const event = (JSON.parse(emitted.out) as { event: { sequence: string; data: unknown } }).event;
    expect(event.data).toEqual({ n: 2, tags: ['a'], ok: true });
    const r = bufCurl(
      '-d',
      `{"pageSize": 5, "startTime": "2026-01-01T00:00:00Z", "filter": {"types": ["test.from_buf"]}}`,
      'https://aetherd/aether.events.v1.EventService/ListEvents',
    );
    expect(r.status).toBe(0);
    const listed = JSON.parse(r.out) as { events: { sequence: string; subject: string }[] };
    expect(listed.events.map((e) => [e.sequence, e.subject])).toEqual([[event.sequence, 'x/1']]);
  });

  it('buf curl calls health', () => {
    const r = bufCurl('https://aetherd/grpc.health.v1.Health/Check');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ status: 'SERVING' });
  });

  it('reflection describes the Job message with its Timestamp fields and ships timestamp.proto', async () => {
    const admin = stack.pki.identities['admin']!;
    const client = createClient(reflectionV1.ServerReflectionClient, {
      socket: stack.socket('aetherd'),
      serverId: 'spiffe://aether.local/aetherd',
      mode: 'mtls',
      caFile: stack.pki.caCertPath,
      certFile: admin.certPath,
      keyFile: admin.keyPath,
    });
    const call = client.serverReflectionInfo();
    const response = new Promise<reflectionV1.ServerReflectionResponse>((resolve, reject) => {
      call.once('data', resolve);
      call.once('error', reject);
    });
    call.write({ host: '', messageRequest: { $case: 'fileContainingSymbol', value: 'aether.jobs.v1.Job' } });
    const res = await response;
    call.end();
    client.close();
    if (res.messageResponse?.$case !== 'fileDescriptorResponse') throw new Error(JSON.stringify(res));
    const files = res.messageResponse.value.fileDescriptorProto.map((b) =>
      fromBinary(FileDescriptorProtoSchema, b),
    );
    expect(files.map((f) => f.name)).toContain('google/protobuf/timestamp.proto');
    const registry = createFileRegistry(files[files.length - 1]!, (name) =>
      files.find((f) => f.name === name),
    );
    const job = registry.getMessage('aether.jobs.v1.Job') as DescMessage;
    const timestampFields = job.fields.filter((f) => f.message?.typeName === 'google.protobuf.Timestamp');
    expect(timestampFields.map((f) => f.name)).toEqual(expect.arrayContaining(['create_time']));
  });

  it('a Python client generated from proto/ with Debian grpcio calls aetherd over mTLS and reads ErrorInfo and the request id', () => {
    const gen = join(stack.dir, 'py');
    mkdirSync(gen);
    const protos = ['aether/jobs/v1/jobs.proto', 'google/rpc/status.proto', 'google/rpc/error_details.proto'];
    execFileSync('protoc', [
      `-I${join(repoRoot, 'proto')}`,
      `-I${join(repoRoot, 'proto', 'vendor')}`,
      '-I/usr/include',
      `--python_out=${gen}`,
      `--grpc_python_out=${gen}`,
      '--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin',
      ...protos,
    ]);
    const admin = stack.pki.identities['admin']!;
    const out = execFileSync(
      '/usr/bin/python3',
      [
        join(__dirname, '..', 'python', 'client.py'),
        gen,
        stack.socket('aetherd'),
        stack.pki.caCertPath,
        admin.certPath,
        admin.keyPath,
      ],
      { encoding: 'utf8', env: { ...process.env, PYTHONPATH: '' } },
    );
    expect(JSON.parse(out)).toEqual({
      get_job: 'NOT_FOUND',
      request_id: 'python-1',
      reason: 'JOB_NOT_FOUND',
      domain: 'aether.dev',
    });
  });
});
