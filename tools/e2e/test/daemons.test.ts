import { readFileSync, statSync } from 'node:fs';
import { Metadata, status } from '@grpc/grpc-js';
import { healthV1 } from '@aether/proto';
import { type RpcError, unaryCall } from '@aether/rpc';
import { Stack } from '../src';

const auditLines = (path: string): Record<string, unknown>[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the three daemons over mTLS Unix sockets', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await (await new Stack({ extraIdentities: ['stranger'] }).init()).startAll();
  });
  afterAll(() => stack.close());

  it('all serve health to the admin identity through the TypeScript SDK', async () => {
    const client = stack.client();
    const reports = await Promise.all((['aetherd', 'aurorad', 'cfcd'] as const).map((d) => client.health(d)));
    client.close();
    expect(reports.map((r) => [r.daemon, r.status])).toEqual([
      ['aetherd', 'SERVING'],
      ['aurorad', 'SERVING'],
      ['cfcd', 'SERVING'],
    ]);
  });

  it('reports each registered service as SERVING and an unknown one as NOT_FOUND', async () => {
    const client = stack.client();
    const health = client.healthOf('aetherd');
    const res = await unaryCall(health.check.bind(health), { service: 'aether.jobs.v1.JobService' });
    expect(res.status).toBe(healthV1.HealthCheckResponse_ServingStatus.SERVING);
    await expect(unaryCall(health.check.bind(health), { service: 'no.such.Service' })).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
    client.close();
  });

  it('creates sockets with mode 0660', () => {
    for (const d of ['aetherd', 'aurorad', 'cfcd'] as const) {
      const st = statSync(stack.socket(d));
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o660);
    }
  });

  it('denies an identity that no policy names, with default-deny, and audits the denial durably', async () => {
    const client = stack.client('stranger');
    const err = (await client
      .call(
        client.jobs,
        'getJob',
        { name: 'jobs/01aaaaaaaaaaaaaaaaaaaaaaaa' },
        { requestId: 'req-deny-1', intentId: 'intent-7' },
      )
      .catch((e: unknown) => e)) as RpcError;
    client.close();
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.reason).toBe('POLICY_DENIED');
    expect(err.metadata['policy']).toBe('default-deny');
    const rec = auditLines(stack.auditPath('aetherd')).find((r) => r['request_id'] === 'req-deny-1');
    expect(rec).toMatchObject({
      action: 'jobs.GetJob',
      actor: 'spiffe://aether.local/stranger',
      intent_id: 'intent-7',
      outcome: 'PERMISSION_DENIED',
      decision: { allowed: false, effect: 'deny', policy_ids: ['default-deny'] },
    });
    expect((rec?.['decision'] as Record<string, unknown>)['policy_set_hash']).toMatch(/^[0-9a-f]{16,}$/);
  });

  it('echoes the request id in response metadata and writes one access-log line per call', async () => {
    const client = stack.client();
    const jobs = client.jobs;
    const md = new Metadata();
    md.set('x-aether-request-id', 'req-echo-42');
    const headers = await new Promise<Metadata>((resolve) => {
      const call = jobs.getJob({ name: 'jobs/01bbbbbbbbbbbbbbbbbbbbbbbb' }, md, () => undefined);
      call.on('metadata', resolve);
    });
    client.close();
    expect(headers.get('x-aether-request-id')).toEqual(['req-echo-42']);
    const line = await stack.daemons
      .get('aetherd')!
      .waitForLog((l) => l['msg'] === 'rpc' && l['requestId'] === 'req-echo-42');
    expect(line).toMatchObject({
      rpc: '/aether.jobs.v1.JobService/GetJob',
      principal: 'spiffe://aether.local/admin',
      code: 'NOT_FOUND',
      decision: 'allow',
    });
    expect(stack.daemons.get('aetherd')!.lines.filter((l) => l['requestId'] === 'req-echo-42')).toHaveLength(
      1,
    );
  });

  it('gives aurorad and cfcd a working client to aetherd from the start', async () => {
    for (const d of ['aurorad', 'cfcd'] as const) {
      await stack.daemons.get(d)!.waitForLog((l) => l['msg'] === 'aetherd is serving');
    }
  });

  it('serves each daemon its own API: intents on aurorad, models on cfcd', async () => {
    const client = stack.client();
    // aurorad answers for intents (a malformed name is its validation, not UNIMPLEMENTED)…
    await expect(client.call(client.intents, 'getIntent', { name: 'intents/1' })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      reason: 'INVALID_NAME',
    });
    // …and cfcd for models and training runs.
    await expect(client.call(client.models, 'getModel', { name: 'models/1' })).rejects.toMatchObject({
      reason: 'INVALID_NAME',
    });
    await expect(
      client.call(client.models, 'getTrainingRun', { name: 'trainingRuns/01aaaaaaaaaaaaaaaaaaaaaaaa' }),
    ).rejects.toMatchObject({ code: status.NOT_FOUND, reason: 'TRAINING_RUN_NOT_FOUND' });
    client.close();
  });
});
