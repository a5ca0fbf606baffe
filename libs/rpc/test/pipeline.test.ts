import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { status } from '@grpc/grpc-js';
import { defaultServerConfig, type ClientEndpointConfig } from '@aether/config';
import { createLogger } from '@aether/log';
import { initDevPki, type DevPkiLayout } from '@aether/pki';
import { jobsV1 } from '@aether/proto';
import {
  AetherServer,
  createClient,
  NotFoundError,
  type RpcError,
  serverStream,
  serverStreamCall,
  unary,
  unaryCall,
  Violations,
  type CallRecord,
  type Decision,
} from '../src';

/** A real server on a real socket with real certificates, and handlers that exercise the pipeline. */
describe('the request pipeline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'aether-rpc-'));
  let pki: DevPkiLayout;
  let server: AetherServer;
  let client: jobsV1.JobServiceClient;
  const records: { rec: CallRecord; durable: boolean }[] = [];
  const logLines: Record<string, unknown>[] = [];
  let decision: Decision = { effect: 'allow', policyIds: ['test-allow'], reason: 'test' };
  let auditBroken = false;
  let slowDone = false;

  beforeAll(async () => {
    pki = await initDevPki(join(dir, 'pki'), { names: ['aetherd', 'admin'] });
    const config = defaultServerConfig('aetherd', dir);
    config.socket = { path: join(dir, 'run', 'aetherd.sock'), mode: '0660', group: '' };
    config.tls = {
      ...config.tls,
      caFile: pki.caCertPath,
      certFile: pki.identities['aetherd']!.certPath,
      keyFile: pki.identities['aetherd']!.keyPath,
    };
    config.shutdownGraceMs = 3_000;
    const log = createLogger({
      service: 'test',
      destination: new Writable({
        write(chunk: Buffer, _e, cb) {
          for (const l of chunk.toString().split('\n').filter(Boolean))
            logLines.push(JSON.parse(l) as Record<string, unknown>);
          cb();
        },
      }),
    });
    server = new AetherServer({
      name: 'test',
      config,
      log,
      policy: { decide: () => decision },
      audit: {
        record: (rec, { durable }) => {
          if (auditBroken && durable) return Promise.reject(new Error('ENOSPC: no space left on device'));
          records.push({ rec, durable });
          return Promise.resolve();
        },
      },
    });
    server.addService(jobsV1.JobServiceService, {
      submitJob: unary<jobsV1.SubmitJobRequest, jobsV1.SubmitJobResponse>({
        mutates: true,
        validate: (req) => {
          const v = new Violations();
          v.check((req.spec?.argv.length ?? 0) > 0, 'spec.argv', 'must not be empty');
          v.check(!(req.spec?.cwd ?? '').includes('..'), 'spec.cwd', 'must not contain ".."');
          v.throwIfAny();
        },
        resource: (req) => ({ type: 'job', id: '', attributes: { argv0: req.spec?.argv[0] } }),
        handle: (req, ctx) =>
          Promise.resolve({
            job: jobsV1.Job.fromPartial({ name: 'jobs/1', actor: ctx.principal.id, spec: req.spec }),
          }),
      }),
      getJob: unary<jobsV1.GetJobRequest, jobsV1.GetJobResponse>({
        handle: async (req, ctx) => {
          if (req.name === 'jobs/crash') throw new Error('secret internal detail');
          if (req.name === 'jobs/slow') {
            await new Promise((r) => setTimeout(r, 1_000));
            slowDone = true;
            return { job: jobsV1.Job.fromPartial({ name: req.name }) };
          }
          if (req.name === 'jobs/wait-for-cancel') {
            await new Promise((r) => ctx.signal.addEventListener('abort', r));
            throw new NotFoundError(req.name);
          }
          throw new NotFoundError(req.name);
        },
      }),
      streamJobLogs: serverStream<jobsV1.StreamJobLogsRequest, jobsV1.StreamJobLogsResponse>({
        handle: async (_req, _ctx, send) => {
          for (let i = 0; i < 5; i++)
            await send(
              jobsV1.StreamJobLogsResponse.fromPartial({
                data: Buffer.from(`line ${i}\n`),
                offset: BigInt(i * 7),
              }),
            );
        },
      }),
    });
    await server.start();
    const endpoint: ClientEndpointConfig = {
      socket: config.socket.path,
      serverId: 'spiffe://aether.local/aetherd',
      mode: 'mtls',
      caFile: pki.caCertPath,
      certFile: pki.identities['admin']!.certPath,
      keyFile: pki.identities['admin']!.keyPath,
    };
    client = createClient(jobsV1.JobServiceClient, endpoint);
  });

  afterAll(async () => {
    client.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const submit = (spec: Partial<jobsV1.JobSpec>, opts = {}): Promise<jobsV1.SubmitJobResponse> =>
    unaryCall(client.submitJob.bind(client), jobsV1.SubmitJobRequest.fromPartial({ spec }), opts);

  it('hands the handler the caller identity from its certificate, never from the request', async () => {
    const res = await submit({ argv: ['/bin/true'] });
    expect(res.job?.actor).toBe('spiffe://aether.local/admin');
  });

  it('rejects an invalid request with INVALID_ARGUMENT, every field path, and BadRequest details', async () => {
    const err = (await submit({ argv: [], cwd: '../etc' }).catch((e: unknown) => e)) as RpcError;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.fieldViolations).toEqual([
      { field: 'spec.argv', description: 'must not be empty' },
      { field: 'spec.cwd', description: 'must not contain ".."' },
    ]);
    expect(err.message).toContain('spec.argv: must not be empty');
  });

  it('maps a typed domain error to its code and ErrorInfo reason', async () => {
    const err = (await unaryCall(client.getJob.bind(client), { name: 'jobs/none' }).catch(
      (e: unknown) => e,
    )) as RpcError;
    expect(err).toMatchObject({
      code: status.NOT_FOUND,
      reason: 'NOT_FOUND',
      metadata: { resource: 'jobs/none' },
    });
  });

  it('turns an unexpected error into INTERNAL without leaking its message, and logs it', async () => {
    const err = (await unaryCall(
      client.getJob.bind(client),
      { name: 'jobs/crash' },
      { requestId: 'crash-1' },
    ).catch((e: unknown) => e)) as RpcError;
    expect(err.code).toBe(status.INTERNAL);
    expect(err.message).not.toContain('secret');
    expect(err.message).toContain('crash-1');
    expect(
      logLines.some((l) => l['msg'] === 'unexpected error in handler' && l['requestId'] === 'crash-1'),
    ).toBe(true);
  });

  it('asks policy with the action and resource and refuses a deny with the deciding policy', async () => {
    decision = { effect: 'deny', policyIds: ['no-host-network'], reason: 'host network is not allowed' };
    const err = (await submit({ argv: ['/bin/true'] }).catch((e: unknown) => e)) as RpcError;
    decision = { effect: 'allow', policyIds: ['test-allow'], reason: 'test' };
    expect(err).toMatchObject({
      code: status.PERMISSION_DENIED,
      reason: 'POLICY_DENIED',
      metadata: { policy: 'no-host-network' },
    });
    const last = records[records.length - 1]!;
    expect(last.durable).toBe(true);
    expect(last.rec).toMatchObject({
      action: 'jobs.SubmitJob',
      outcome: 'PERMISSION_DENIED',
      resource: { type: 'job', attributes: { argv0: '/bin/true' } },
    });
  });

  it('reports an ask decision as APPROVAL_REQUIRED', async () => {
    decision = { effect: 'ask', policyIds: ['ask-gpu'], reason: 'GPU use needs a human' };
    const err = (await submit({ argv: ['/bin/true'] }).catch((e: unknown) => e)) as RpcError;
    decision = { effect: 'allow', policyIds: ['test-allow'], reason: 'test' };
    expect(err).toMatchObject({ code: status.PERMISSION_DENIED, reason: 'APPROVAL_REQUIRED' });
  });

  it('audits every call once, durably for state changes, with correlation ids', async () => {
    const before = records.length;
    await submit({ argv: ['/bin/true'] }, { requestId: 'r-audit', intentId: 'i-9', jobId: 'j-3' });
    await unaryCall(client.getJob.bind(client), { name: 'jobs/none' }, { requestId: 'r-read' }).catch(
      () => undefined,
    );
    const added = records.slice(before);
    expect(added).toHaveLength(2);
    expect(added[0]).toMatchObject({
      durable: true,
      rec: { requestId: 'r-audit', intentId: 'i-9', jobId: 'j-3', outcome: 'OK' },
    });
    expect(added[1]).toMatchObject({ durable: false, rec: { requestId: 'r-read', outcome: 'NOT_FOUND' } });
  });

  it('runs an approved call and audits its token and on whose behalf it was made', async () => {
    decision = {
      effect: 'allow',
      policyIds: ['ask-gpu'],
      reason: 'approved by spiffe://aether.local/admin: GPU use needs a human',
      tokenId: 'tok-7',
      onBehalfOf: 'spiffe://aether.local/admin',
      approvedBy: 'spiffe://aether.local/admin',
    };
    const res = await submit({ argv: ['/bin/true'] }, { requestId: 'r-approved' });
    decision = { effect: 'allow', policyIds: ['test-allow'], reason: 'test' };
    expect(res.job?.name).toBe('jobs/1');
    expect(records[records.length - 1]).toMatchObject({
      durable: true,
      rec: {
        requestId: 'r-approved',
        outcome: 'OK',
        tokenId: 'tok-7',
        onBehalfOf: 'spiffe://aether.local/admin',
        decision: { effect: 'allow', approvedBy: 'spiffe://aether.local/admin' },
      },
    });
  });

  it('fails a state-changing call closed with UNAVAILABLE when its audit record cannot be written', async () => {
    auditBroken = true;
    const err = (await submit({ argv: ['/bin/true'] }).catch((e: unknown) => e)) as RpcError;
    auditBroken = false;
    expect(err).toMatchObject({ code: status.UNAVAILABLE, reason: 'AUDIT_UNAVAILABLE' });
  });

  it('streams responses in order', async () => {
    const chunks: string[] = [];
    for await (const c of serverStreamCall(
      client.streamJobLogs.bind(client),
      jobsV1.StreamJobLogsRequest.fromPartial({ name: 'jobs/1' }),
    )) {
      chunks.push(c.data.toString());
    }
    expect(chunks).toEqual(['line 0\n', 'line 1\n', 'line 2\n', 'line 3\n', 'line 4\n']);
  });

  it('tells the handler when the client gives up (deadline), through its abort signal', async () => {
    const err = (await unaryCall(
      client.getJob.bind(client),
      { name: 'jobs/wait-for-cancel' },
      { timeoutMs: 200 },
    ).catch((e: unknown) => e)) as RpcError;
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
  });

  it('answers methods without a handler with UNIMPLEMENTED after policy', async () => {
    const err = (await unaryCall(client.killJob.bind(client), { name: 'jobs/1' }).catch(
      (e: unknown) => e,
    )) as RpcError;
    expect(err).toMatchObject({ code: status.UNIMPLEMENTED, reason: 'NOT_IMPLEMENTED' });
  });

  it('drains an in-flight call on stop before closing, then removes the socket', async () => {
    slowDone = false;
    const slow = unaryCall(client.getJob.bind(client), { name: 'jobs/slow' });
    await new Promise((r) => setTimeout(r, 100));
    await server.stop();
    expect(slowDone).toBe(true);
    await expect(slow).resolves.toMatchObject({ job: { name: 'jobs/slow' } });
    expect(logLines.some((l) => l['msg'] === 'draining in-flight calls')).toBe(true);
    expect(existsSync(join(dir, 'run', 'aetherd.sock'))).toBe(false);
  });
});
